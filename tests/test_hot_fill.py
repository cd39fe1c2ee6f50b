"""The UDP hot view is filled on a name's first plain query, and emptied of a
name when its entry changes: the first reply (made from the entry) is one of
the hot path's own replies, a changed name answers with its new records, and
the rate limiter debits the first reply as it debits the others."""

from __future__ import annotations

import random
import struct

import dns.flags
import dns.message
from dns_support import FakeSocket, compile_table, record_set, settings

from mesosdns.dns import wire
from mesosdns.dns.incremental import LiveAnswers
from mesosdns.dns.protocol import DNSServer
from mesosdns.dns.settings import RRLSettings
from mesosdns.records.model import RecordSet


def serve(server: DNSServer, packets: list[bytes]) -> list[bytes]:
    sock = FakeSocket(packets)
    server._udp = sock  # type: ignore[assignment]
    try:
        while sock.packets:
            if server._rrl is not None:
                server._on_udp_rrl()
            else:
                server._on_udp()
    finally:
        server._udp = None
    return sock.sent


def plain(name: str, rdtype: str, ident: int = 0x4242) -> bytes:
    q = dns.message.make_query(name, rdtype, use_edns=False)
    q.id = ident
    q.flags = dns.flags.RD
    return q.to_wire()


def key_of(packet: bytes) -> bytes:
    return packet[4:]


CASES = [
    ("nginx.marathon.mesos.", "A"),  # three addresses: three rotations
    ("dual.marathon.mesos.", "AAAA"),
    ("many.marathon.mesos.", "A"),  # truncated at 512 bytes
    ("_nginx._tcp.marathon.mesos.", "SRV"),  # glue in the additional section
    ("_big._tcp.marathon.mesos.", "SRV"),  # truncated
]


def test_the_first_query_fills_the_hot_view_with_the_hot_paths_reply() -> None:
    table = compile_table(settings())
    server = DNSServer(settings(), rng=random.Random(1))
    server.set_table(table)
    assert not table.hot
    for name, rdtype in CASES:
        packet = plain(name, rdtype)
        key = key_of(packet)
        assert key in table.entries and key not in table.hot
        first, *rest = serve(server, [packet] * 9)
        v = table.hot[key]  # (flag table, rrl slot, tails)
        fl = v[0][wire.flag_index(packet[2], packet[3])]
        # the first reply is the hot path's reply for one of the orderings
        assert first[:2] == packet[:2] and first[2:4] == fl
        assert first[4:] in v[2:], name
        assert {r[4:] for r in rest} == set(v[2:]), name  # every ordering served
        m = dns.message.from_wire(first)
        assert m.question[0].name.to_text() == name
        assert bool(m.flags & dns.flags.TC) == (name in {"many.marathon.mesos.",
                                                         "_big._tcp.marathon.mesos."})
    stats = server.stats
    assert stats.mesos_requests == stats.mesos_success == 9 * len(CASES)


def test_other_queries_do_not_fill_it() -> None:
    """Only the question the hot loop looks up, as a query: not another case,
    not a reply, not a name without records of the type."""
    table = compile_table(settings())
    server = DNSServer(settings(), rng=random.Random(1))
    server.set_table(table)
    upper = plain("NGINX.marathon.mesos.", "A")
    response = bytearray(plain("nginx.marathon.mesos.", "A"))
    response[2] |= 0x80
    packets = [upper, bytes(response), plain("nginx.marathon.mesos.", "SRV"),
               plain("nothing.mesos.", "A")]
    sent = serve(server, packets)
    assert not table.hot
    assert len(sent) == 3  # a response gets no reply
    assert dns.message.from_wire(sent[0]).answer  # the general path answered


def test_a_changed_name_leaves_the_hot_view_and_answers_with_its_new_records() -> None:
    base = record_set()
    a = dict(base.a)
    rs = RecordSet(domain="mesos", a=a, aaaa=base.aaaa, srv=base.srv)
    live = LiveAnswers(rs, settings(), 1, random.Random(0))
    server = DNSServer(settings(), rng=random.Random(1))
    server.set_table(live.table)
    packet = plain("nginx.marathon.mesos.", "A")
    key = key_of(packet)
    before = serve(server, [packet] * 3)
    assert key in live.table.hot
    other = key_of(plain("dual.marathon.mesos.", "A"))
    serve(server, [plain("dual.marathon.mesos.", "A")])
    a["nginx.marathon.mesos."] = ("10.0.1.1", "10.0.1.2", "10.0.1.3", "10.0.1.4")
    live.update(["nginx.marathon.mesos."], defer=False)
    assert key not in live.table.hot and other in live.table.hot
    after = serve(server, [packet] * 4)
    assert key in live.table.hot and len(live.table.hot[key]) == 2 + 4
    for reply in after:
        got = {rr.to_text() for rrset in dns.message.from_wire(reply).answer for rr in rrset}
        assert got == {f"10.0.1.{i}" for i in range(1, 5)}
    assert all(len(dns.message.from_wire(r).answer[0]) == 3 for r in before)


def test_the_rate_limiter_debits_the_first_reply() -> None:
    """Three responses a second, no slip: of ten queries in one second the
    first three are answered, the first of them made from the entry."""
    s = settings(rrl=RRLSettings(responses_per_second=3, slip=0))
    table = compile_table(s)
    server = DNSServer(s, rng=random.Random(1))
    server.set_table(table)
    rl = server._rrl
    assert rl is not None
    rl.clock = lambda: 5000.0
    packets = [plain("_nginx._tcp.marathon.mesos.", "SRV", i) for i in range(10)]
    sent = serve(server, packets)
    assert [struct.unpack(">H", r[:2])[0] for r in sent] == [0, 1, 2]
    assert key_of(packets[0]) in table.hot
    assert server.stats.rrl_dropped == 7
