"""Forwarding of names outside the domain, against small in-test upstreams."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import dns.flags
import dns.message
import dns.rcode
import pytest
from conftest import find_free_port
from dns_support import (
    LoopThread,
    ServerThread,
    Upstream,
    query,
    raw_udp,
    section_texts,
    settings,
)


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[Upstream, Upstream]]:
    lt = LoopThread()
    first, second = Upstream(lt, tag=1), Upstream(lt, tag=2)
    yield first, second
    first.close()
    second.close()
    lt.close()


@pytest.fixture(scope="module")
def fwd(upstreams: tuple[Upstream, Upstream]) -> Iterator[ServerThread]:
    first, second = upstreams
    server = ServerThread(
        settings(
            resolvers=(f"127.0.0.1:{first.port}",),
            zone_resolvers={"corp.example": (f"127.0.0.1:{second.port}",)},
            timeout=0.5,
        )
    )
    yield server
    server.close()


def flags_of(r: dns.message.Message) -> set[str]:
    return set(dns.flags.to_text(r.flags).split())


@pytest.mark.parametrize("tcp", [False, True])
def test_forward_success(
    fwd: ServerThread, upstreams: tuple[Upstream, Upstream], tcp: bool
) -> None:
    first, _ = upstreams
    before = len(first.queries)
    r = query(fwd.port, "ok.example.com.", "A", tcp=tcp)
    assert r.rcode() == dns.rcode.NOERROR
    assert section_texts(r.answer) == ["ok.example.com. 300 IN A 192.0.2.1"]
    assert "AA" in flags_of(r)  # the upstream's flags are relayed as they are
    proto, sent = first.queries[before]
    assert proto == ("tcp" if tcp else "udp")
    assert dns.message.from_wire(sent).question[0].name.to_text() == "ok.example.com."


def test_forward_relays_bytes_and_restores_id(fwd: ServerThread) -> None:
    q = dns.message.make_query("echo.example.com.", "A")
    q.id = 0x1234
    q.flags |= dns.flags.CD
    reply = raw_udp(fwd.port, q.to_wire())
    assert reply is not None and reply[:2] == b"\x12\x34"
    r = dns.message.from_wire(reply)
    assert "CD" in flags_of(r)  # the upstream echoed the query's flags


@pytest.mark.parametrize("tcp", [False, True])
def test_forward_nxdomain_and_servfail_are_relayed(fwd: ServerThread, tcp: bool) -> None:
    assert query(fwd.port, "nx.example.com.", "A", tcp=tcp).rcode() == dns.rcode.NXDOMAIN
    assert query(fwd.port, "fail.example.com.", "A", tcp=tcp).rcode() == dns.rcode.SERVFAIL


@pytest.mark.parametrize("tcp", [False, True])
def test_forward_timeout_is_servfail(fwd: ServerThread, tcp: bool) -> None:
    started = time.monotonic()
    r = query(fwd.port, "slow.example.com.", "A", tcp=tcp, timeout=3)
    elapsed = time.monotonic() - started
    assert r.rcode() == dns.rcode.SERVFAIL
    assert "AA" not in flags_of(r) and "RA" not in flags_of(r)
    assert r.question[0].name.to_text() == "slow.example.com."
    assert 0.4 < elapsed < 1.5


def test_timeouts_do_not_hold_up_other_queries(fwd: ServerThread) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(2)
        slow = dns.message.make_query("slow.example.com.", "A")
        s.sendto(slow.to_wire(), ("127.0.0.1", fwd.port))
        started = time.monotonic()
        r = query(fwd.port, "ok2.example.com.", "A")
        assert r.answer and time.monotonic() - started < 0.45
        assert query(fwd.port, "leader.mesos.", "A").answer
        data, _ = s.recvfrom(4096)
        assert dns.message.from_wire(data).rcode() == dns.rcode.SERVFAIL


def test_forward_truncated_reply_is_passed_on(fwd: ServerThread) -> None:
    q = dns.message.make_query("big.example.com.", "A", use_edns=False)
    reply = raw_udp(fwd.port, q.to_wire())
    assert reply is not None
    r = dns.message.from_wire(reply)
    assert "TC" in flags_of(r) and r.answer == []
    r = query(fwd.port, "big.example.com.", "A", tcp=True)
    assert len(section_texts(r.answer)) == 60


def test_forward_reply_too_big_for_client_becomes_tc(fwd: ServerThread) -> None:
    # with EDNS the upstream sends 60 records; a client that advertised 512
    # would not get that over UDP
    q = dns.message.make_query("big.example.com.", "A", use_edns=0, payload=4096)
    r = dns.message.from_wire(raw_udp(fwd.port, q.to_wire()) or b"")
    assert len(section_texts(r.answer)) == 60
    q = dns.message.make_query("big.example.com.", "A", use_edns=0, payload=512)
    reply = raw_udp(fwd.port, q.to_wire())
    assert reply is not None and len(reply) <= 512
    r = dns.message.from_wire(reply)
    assert "TC" in flags_of(r) and r.answer == []


def test_spoofed_replies_are_ignored(fwd: ServerThread) -> None:
    # a reply with another ID, or for another question, is not accepted
    for name in ("wrongid.example.com.", "wrongq.example.com."):
        r = query(fwd.port, name, "A", timeout=3)
        assert r.rcode() == dns.rcode.SERVFAIL


def test_zone_resolvers_longest_match(fwd: ServerThread) -> None:
    r = query(fwd.port, "ok.corp.example.", "A")
    assert section_texts(r.answer) == ["ok.corp.example. 300 IN A 192.0.2.2"]
    r = query(fwd.port, "ok.a.b.CORP.example.", "A")
    assert section_texts(r.answer) == ["ok.a.b.CORP.example. 300 IN A 192.0.2.2"]
    r = query(fwd.port, "ok.example.", "A")
    assert section_texts(r.answer) == ["ok.example. 300 IN A 192.0.2.1"]
    r = query(fwd.port, "ok.notcorp.example.", "A")
    assert section_texts(r.answer) == ["ok.notcorp.example. 300 IN A 192.0.2.1"]


def test_ds_in_the_domain_is_forwarded(
    fwd: ServerThread, upstreams: tuple[Upstream, Upstream]
) -> None:
    first, _ = upstreams
    before = len(first.queries)
    query(fwd.port, "ok.mesos.", "DS")
    assert len(first.queries) == before + 1


def test_in_domain_names_are_not_forwarded(
    fwd: ServerThread, upstreams: tuple[Upstream, Upstream]
) -> None:
    first, second = upstreams
    before = len(first.queries) + len(second.queries)
    assert query(fwd.port, "ok.mesos.", "A").rcode() == dns.rcode.NXDOMAIN
    assert len(first.queries) + len(second.queries) == before


def test_counters(upstreams: tuple[Upstream, Upstream]) -> None:
    first, _ = upstreams
    server = ServerThread(settings(resolvers=(f"127.0.0.1:{first.port}",), timeout=0.3))
    try:
        query(server.port, "ok.example.com.", "A")
        query(server.port, "nx.example.com.", "A")
        query(server.port, "ok.example.com.", "A", tcp=True)
        query(server.port, "slow.example.com.", "A")
        s = server.stats()
        assert s["NonMesosRequests"] == 4
        assert s["NonMesosForwarded"] == 4
        assert s["NonMesosSuccess"] == 3
        assert s["NonMesosFailed"] == 1
        assert s["NonMesosNXDomain"] == 1
        assert s["MesosRequests"] == 0
    finally:
        server.close()


def test_next_resolver_after_a_failure(upstreams: tuple[Upstream, Upstream]) -> None:
    first, second = upstreams
    dead = find_free_port()  # nothing listens there
    server = ServerThread(
        settings(
            resolvers=(
                f"127.0.0.1:{dead}",
                f"127.0.0.1:{first.port}",
                f"127.0.0.1:{second.port}",
            ),
            timeout=1.0,
        )
    )
    try:
        # the dead port is refused at once, the first upstream answers
        started = time.monotonic()
        r = query(server.port, "ok.example.com.", "A", timeout=3)
        assert section_texts(r.answer) == ["ok.example.com. 300 IN A 192.0.2.1"]
        assert time.monotonic() - started < 0.8
        # the first upstream stays silent for this one: after the timeout the
        # second answers
        started = time.monotonic()
        r = query(server.port, "only2.example.com.", "A", timeout=3)
        assert section_texts(r.answer) == ["only2.example.com. 300 IN A 192.0.2.2"]
        assert 0.9 < time.monotonic() - started < 2.5
        s = server.stats()
        assert s["NonMesosRequests"] == 2
        assert s["NonMesosForwarded"] == 5
        assert s["NonMesosFailed"] == 3
        assert s["NonMesosSuccess"] == 2
    finally:
        server.close()


def test_unreachable_upstream_fails_fast() -> None:
    dead = find_free_port()
    server = ServerThread(settings(resolvers=(f"127.0.0.1:{dead}",), timeout=3.0))
    try:
        started = time.monotonic()
        r = query(server.port, "ok.example.com.", "A", timeout=5)
        assert r.rcode() == dns.rcode.SERVFAIL
        assert time.monotonic() - started < 1.0
    finally:
        server.close()


@pytest.mark.parametrize(
    "kw",
    [
        {"resolvers": ()},
        {"resolvers": ("127.0.0.1:9",), "external_on": False},
    ],
    ids=["no-resolvers", "external-off"],
)
@pytest.mark.parametrize("tcp", [False, True])
def test_refused(kw: dict[str, object], tcp: bool) -> None:
    server = ServerThread(settings(**kw))
    try:
        r = query(server.port, "ok.example.com.", "A", tcp=tcp)
        assert r.rcode() == dns.rcode.REFUSED
        assert flags_of(r) == {"QR", "RD"}
        assert r.question[0].name.to_text() == "ok.example.com."
        assert server.stats()["NonMesosRequests"] == 1
    finally:
        server.close()


@pytest.mark.parametrize("listen", ["127.0.0.1", "0.0.0.0"])
def test_never_forwards_to_itself(listen: str) -> None:
    port, dead = find_free_port(), find_free_port()
    resolvers = (f"127.0.0.1:{port}", f"127.0.0.1:{dead}")
    server = ServerThread(settings(listen_host=listen, port=port, resolvers=resolvers))
    try:
        assert server.port == port
        r = query(server.port, "ok.example.com.", "A", timeout=3)
        # our own address is dropped; the dead one is refused at once
        assert r.rcode() == dns.rcode.SERVFAIL
        s = server.stats()
        assert s["NonMesosRequests"] == 1 and s["NonMesosForwarded"] == 1
    finally:
        server.close()


def test_only_self_as_resolver_is_refused() -> None:
    port = find_free_port()
    server = ServerThread(settings(port=port, resolvers=(f"127.0.0.1:{port}",)))
    try:
        assert query(server.port, "ok.example.com.", "A").rcode() == dns.rcode.REFUSED
    finally:
        server.close()


def test_inflight_bound(upstreams: tuple[Upstream, Upstream]) -> None:
    first, _ = upstreams
    server = ServerThread(
        settings(resolvers=(f"127.0.0.1:{first.port}",), timeout=1.0, max_inflight_forwards=2)
    )
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.settimeout(0.5)
            for i in range(5):
                q = dns.message.make_query(f"slow{i}.example.com.", "A")
                q.id = i
                s.sendto(q.to_wire(), ("127.0.0.1", server.port))
            started = time.monotonic()
            quick = []
            for _ in range(3):
                data, _ = s.recvfrom(4096)
                quick.append(dns.message.from_wire(data))
            assert time.monotonic() - started < 0.8
            assert all(r.rcode() == dns.rcode.SERVFAIL for r in quick)
            assert sorted(r.id for r in quick) == [2, 3, 4]
    finally:
        server.close()
