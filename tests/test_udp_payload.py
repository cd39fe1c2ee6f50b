"""``maxUDPPayload``: the cap on UDP replies, over real DNS on loopback.

Over UDP an EDNS client gets at most min(its buffer size, maxUDPPayload)
bytes (512 when it advertises less), a client without EDNS 512 bytes; our
OPT record offers maxUDPPayload; what does not fit is truncated the
original's way (the additional section first, then answers from the end)
with TC. The same holds for forwarded replies (cut to an empty reply with
TC), operator-zone answers and their forwarders' replies. TCP is not
limited by it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import dns.flags
import dns.message
import dns.query
import dns.rcode
import pytest
from dns_support import (
    SERIAL,
    LoopThread,
    ServerThread,
    Upstream,
    raw_udp,
    section_texts,
    settings,
)

from mesosdns.dns import wire
from mesosdns.dns.opzones import CompiledZones
from mesosdns.dns.settings import DNSSettings
from mesosdns.zones.compile import compile_zones
from mesosdns.zones.model import load_zones

BIG = "_big._tcp.marathon.mesos."  # 40 SRV records + 40 A in additional: 2,453 bytes
MANY = "many.marathon.mesos."  # 40 A records: 688 bytes with an OPT
SRV_RR = 44  # one of BIG's answers: owner pointer, fixed part, target written in full
A_RR = 16  # one A record with its owner compressed
ZONE_RECORDS = 100  # many.corp.example: 1,646 bytes with an OPT


def zones(upstream: int) -> list[dict[str, Any]]:
    return [
        {
            "name": "corp",
            "origin": "corp.example",
            "records": [
                {"type": "A", "name": "many", "value": f"10.8.0.{i + 1}"}
                for i in range(ZONE_RECORDS)
            ],
        },
        {"name": "fwd", "origin": "fwd.example", "forwarders": [f"127.0.0.1:{upstream}"]},
    ]


def compiled(upstream: int, s: DNSSettings) -> CompiledZones:
    loaded = load_zones(zones(upstream), domains=["mesos"])
    assert loaded.problems == []
    return compile_zones(loaded.zones, s, SERIAL)


class Servers:
    """One server per (maxUDPPayload, operator zones on?), forwarding to one upstream."""

    def __init__(self) -> None:
        self.lt = LoopThread()
        self.upstream = Upstream(self.lt)
        self.servers: dict[tuple[int, bool], ServerThread] = {}

    def get(self, cap: int, with_zones: bool = False) -> ServerThread:
        key = (cap, with_zones)
        if key not in self.servers:
            s = settings(resolvers=(f"127.0.0.1:{self.upstream.port}",), max_udp_payload=cap)
            server = ServerThread(s)
            if with_zones:
                zs = compiled(self.upstream.port, s)
                server.lt.call(lambda: server.server.set_zones(zs))
            self.servers[key] = server
        return self.servers[key]

    def close(self) -> None:
        for server in self.servers.values():
            server.close()
        self.upstream.close()
        self.lt.close()


@pytest.fixture(scope="module")
def servers() -> Iterator[Servers]:
    s = Servers()
    yield s
    s.close()


def ask_udp(
    port: int, name: str, rdtype: str, edns: int | None
) -> tuple[bytes, dns.message.Message]:
    q = dns.message.make_query(
        name, rdtype, use_edns=False if edns is None else 0, payload=edns or 512
    )
    reply = raw_udp(port, q.to_wire())
    assert reply is not None, (name, rdtype, edns)
    return reply, dns.message.from_wire(reply)


def ask_tcp(port: int, name: str, rdtype: str, edns: int) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, use_edns=0, payload=edns)
    return dns.query.tcp(q, "127.0.0.1", port=port, timeout=3)


def truncated(r: dns.message.Message) -> bool:
    return bool(r.flags & dns.flags.TC)


def check_opt(r: dns.message.Message, edns: int | None, cap: int) -> None:
    if edns is None:
        assert r.edns == -1  # no OPT to a client without EDNS
    else:
        assert r.edns == 0 and r.payload == cap  # we offer maxUDPPayload


# -- answers in the cluster domain --------------------------------------------------

# maxUDPPayload, the client's EDNS size (None: no EDNS), name, type,
# the size the reply must fit, truncated?
IN_DOMAIN = [
    (1232, 4096, BIG, "SRV", 1232, True),
    (1232, 65535, BIG, "SRV", 1232, True),
    (1232, 1232, BIG, "SRV", 1232, True),
    (1232, 1000, BIG, "SRV", 1000, True),
    (1232, 100, BIG, "SRV", 512, True),  # below 512 counts as 512
    (1232, None, BIG, "SRV", 512, True),  # no EDNS: 512, as the original
    (1232, 4096, MANY, "A", 1232, False),
    (1232, 600, MANY, "A", 600, True),
    (1232, None, MANY, "A", 512, True),
    (4096, 4096, BIG, "SRV", 4096, False),  # maxUDPPayload 4096: the former behaviour
    (4096, 65535, BIG, "SRV", 4096, False),
    (4096, 1232, BIG, "SRV", 1232, True),
    (4096, None, BIG, "SRV", 512, True),
    (512, 4096, BIG, "SRV", 512, True),
    (512, 4096, MANY, "A", 512, True),
    (512, None, MANY, "A", 512, True),
]


@pytest.mark.parametrize(("cap", "edns", "name", "rdtype", "limit", "tc"), IN_DOMAIN)
def test_in_domain_udp_replies_fit_the_cap(
    servers: Servers,
    cap: int,
    edns: int | None,
    name: str,
    rdtype: str,
    limit: int,
    tc: bool,
) -> None:
    reply, r = ask_udp(servers.get(cap).port, name, rdtype, edns)
    assert len(reply) <= limit
    assert r.rcode() == dns.rcode.NOERROR and truncated(r) == tc
    check_opt(r, edns, cap)
    answers = section_texts(r.answer)
    rr = SRV_RR if rdtype == "SRV" else A_RR
    if tc:
        # the additional section went first, then answers from the end,
        # as few as possible: one more would not have fitted
        assert r.additional == [] and 0 < len(answers) < 40
        assert len(reply) + rr > limit
    else:
        assert len(answers) == 40
        assert len(section_texts(r.additional)) == (40 if rdtype == "SRV" else 0)


@pytest.mark.parametrize("cap", [512, 1232, 4096])
def test_tcp_is_not_limited_by_the_cap(servers: Servers, cap: int) -> None:
    port = servers.get(cap).port
    r = ask_tcp(port, BIG, "SRV", 4096)
    assert not truncated(r) and r.payload == cap
    assert len(section_texts(r.answer)) == 40 and len(section_texts(r.additional)) == 40


@pytest.mark.parametrize("cap", [1232, 4096])
def test_badvers_offers_the_cap(servers: Servers, cap: int) -> None:
    q = dns.message.make_query("leader.mesos.", "A", use_edns=1, payload=4096)
    r = dns.message.from_wire(raw_udp(servers.get(cap).port, q.to_wire()) or b"")
    assert r.rcode() == dns.rcode.BADVERS and r.payload == cap


def test_default_cap_is_1232() -> None:
    assert DNSSettings().max_udp_payload == wire.DEFAULT_UDP_PAYLOAD == 1232


# -- forwarded replies ------------------------------------------------------------

# maxUDPPayload, the client's EDNS size, name (big: 1,004 bytes upstream,
# huge: 1,645), the size the reply must fit, records expected (0: cut to
# an empty reply with TC)
FORWARDED = [
    (1232, 4096, "huge.example.com.", 1232, 0),
    (1232, 65535, "huge.example.com.", 1232, 0),
    (1232, 4096, "big.example.com.", 1232, 60),
    (1232, 900, "big.example.com.", 900, 0),
    (1232, None, "huge.example.com.", 512, 0),  # the upstream truncates itself
    (4096, 4096, "huge.example.com.", 4096, 100),
    (4096, 1232, "huge.example.com.", 1232, 0),
    (512, 4096, "big.example.com.", 512, 0),
]


@pytest.mark.parametrize("with_zones", [False, True], ids=["plain", "zones-unclaimed"])
@pytest.mark.parametrize(("cap", "edns", "name", "limit", "records"), FORWARDED)
def test_forwarded_udp_replies_fit_the_cap(
    servers: Servers,
    with_zones: bool,
    cap: int,
    edns: int | None,
    name: str,
    limit: int,
    records: int,
) -> None:
    # with operator zones on, a name no zone claims takes the router's way
    # to the default resolvers
    reply, r = ask_udp(servers.get(cap, with_zones).port, name, "A", edns)
    assert len(reply) <= limit
    assert r.rcode() == dns.rcode.NOERROR
    assert len(section_texts(r.answer)) == records
    assert truncated(r) == (records == 0)


@pytest.mark.parametrize("with_zones", [False, True], ids=["plain", "zones-unclaimed"])
def test_forwarded_tcp_replies_are_whole(servers: Servers, with_zones: bool) -> None:
    r = ask_tcp(servers.get(1232, with_zones).port, "huge.example.com.", "A", 4096)
    assert not truncated(r) and len(section_texts(r.answer)) == 100


# -- operator zones ---------------------------------------------------------------

# maxUDPPayload, the client's EDNS size, name, the size the reply must fit,
# truncated?
ZONES = [
    (1232, 4096, "many.corp.example.", 1232, True),
    (1232, 1000, "many.corp.example.", 1000, True),
    (1232, None, "many.corp.example.", 512, True),
    (4096, 4096, "many.corp.example.", 4096, False),
    (1232, 4096, "huge.fwd.example.", 1232, True),  # a zone's forwarder
    (4096, 4096, "huge.fwd.example.", 4096, False),
]


@pytest.mark.parametrize(("cap", "edns", "name", "limit", "tc"), ZONES)
def test_operator_zone_udp_replies_fit_the_cap(
    servers: Servers, cap: int, edns: int | None, name: str, limit: int, tc: bool
) -> None:
    reply, r = ask_udp(servers.get(cap, True).port, name, "A", edns)
    assert len(reply) <= limit
    assert r.rcode() == dns.rcode.NOERROR and truncated(r) == tc
    answers = section_texts(r.answer)
    if name.startswith("many."):  # our own answer: OPT offers the cap, cut from the end
        check_opt(r, edns, cap)
        if tc:
            assert 0 < len(answers) < ZONE_RECORDS and len(reply) + A_RR > limit
        else:
            assert len(answers) == ZONE_RECORDS
    else:  # relayed: all or nothing
        assert len(answers) == (0 if tc else 100)


@pytest.mark.parametrize("name", ["many.corp.example.", "huge.fwd.example."])
def test_operator_zone_tcp_replies_are_whole(servers: Servers, name: str) -> None:
    r = ask_tcp(servers.get(1232, True).port, name, "A", 4096)
    assert not truncated(r)
    assert len(section_texts(r.answer)) == (ZONE_RECORDS if name.startswith("many.") else 100)
