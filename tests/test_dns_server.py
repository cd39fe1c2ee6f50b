"""Integration tests: the real DNS server on 127.0.0.1, queried over UDP and
TCP with dnspython, for every kind of answer the original gives in its domain."""

from __future__ import annotations

import socket
import struct
import time
from collections.abc import Iterator

import dns.edns
import dns.flags
import dns.message
import dns.opcode
import dns.query
import dns.rcode
import dns.rdataclass
import pytest
from dns_support import (
    SERIAL,
    ServerThread,
    compile_table,
    query,
    raw_tcp,
    raw_udp,
    record_set,
    section_texts,
    settings,
    wait_for,
)

from mesosdns.dns.answers import compile_answers
from mesosdns.records.model import RecordSet

NOERROR = dns.rcode.NOERROR
NXDOMAIN = dns.rcode.NXDOMAIN
SOA = "60 IN SOA ns1.mesos. root.ns1.mesos. 1700000000 60 600 86400 60"


@pytest.fixture(scope="module")
def srv() -> Iterator[ServerThread]:
    server = ServerThread(settings())
    yield server
    server.close()


def flags_of(r: dns.message.Message) -> set[str]:
    return set(dns.flags.to_text(r.flags).split())


# -- positive answers -----------------------------------------------------


@pytest.mark.parametrize("tcp", [False, True])
def test_a_records(srv: ServerThread, tcp: bool) -> None:
    r = query(srv.port, "nginx.marathon.mesos.", "A", tcp=tcp)
    assert r.rcode() == NOERROR
    assert flags_of(r) == {"QR", "AA", "RD", "RA"}
    assert sorted(section_texts(r.answer)) == [
        f"nginx.marathon.mesos. 60 IN A 10.0.1.{i}" for i in (1, 2, 3)
    ]
    assert r.authority == [] and r.additional == []


def test_answers_are_shuffled(srv: ServerThread) -> None:
    firsts = set()
    for _ in range(12):
        r = query(srv.port, "nginx.marathon.mesos.", "A")
        firsts.add(r.answer[0][0].to_text())
    assert firsts == {"10.0.1.1", "10.0.1.2", "10.0.1.3"}
    firsts = set()
    for _ in range(12):
        r = query(srv.port, "_nginx._tcp.marathon.mesos.", "SRV")
        firsts.add(r.answer[0][0].target.to_text())
    assert len(firsts) == 3


def test_aaaa_records(srv: ServerThread) -> None:
    r = query(srv.port, "v6only.marathon.mesos.", "AAAA")
    assert sorted(section_texts(r.answer)) == [
        "v6only.marathon.mesos. 60 IN AAAA fd00::3:1",
        "v6only.marathon.mesos. 60 IN AAAA fd00::3:2",
    ]


@pytest.mark.parametrize("tcp", [False, True])
def test_srv_with_additional(srv: ServerThread, tcp: bool) -> None:
    r = query(srv.port, "_nginx._tcp.marathon.mesos.", "SRV", tcp=tcp)
    assert r.rcode() == NOERROR and {"AA", "RA"} <= flags_of(r)
    assert sorted(section_texts(r.answer)) == [
        f"_nginx._tcp.marathon.mesos. 60 IN SRV 0 1 3100{i} nginx-{c * 5}-s{i}.marathon.mesos."
        for i, c in ((1, "a"), (2, "b"), (3, "c"))
    ]
    assert sorted(section_texts(r.additional)) == [
        f"nginx-{c * 5}-s{i}.marathon.mesos. 60 IN A 10.0.1.{i}"
        for i, c in ((1, "a"), (2, "b"), (3, "c"))
    ]
    assert r.authority == []


def test_srv_additional_a_and_aaaa(srv: ServerThread) -> None:
    r = query(srv.port, "_dual._tcp.marathon.mesos.", "SRV")
    assert section_texts(r.answer) == [
        "_dual._tcp.marathon.mesos. 60 IN SRV 0 1 8080 dual.marathon.mesos."
    ]
    assert sorted(section_texts(r.additional)) == [
        "dual.marathon.mesos. 60 IN A 10.0.2.1",
        "dual.marathon.mesos. 60 IN AAAA fd00::2:1",
    ]


def test_srv_target_without_address_has_no_additional(srv: ServerThread) -> None:
    r = query(srv.port, "_nohost._udp.marathon.mesos.", "SRV")
    assert section_texts(r.answer) == [
        "_nohost._udp.marathon.mesos. 60 IN SRV 0 1 53 gone.marathon.mesos."
    ]
    assert r.additional == []


@pytest.mark.parametrize("tcp", [False, True])
@pytest.mark.parametrize("edns", [False, True])
def test_mixed_case_owners(srv: ServerThread, tcp: bool, edns: bool) -> None:
    # A/AAAA owners are lower-cased; SRV owners echo the question as asked;
    # additional owners are the lower-cased targets
    r = query(srv.port, "NGINX.Marathon.MESOS.", "A", tcp=tcp, edns=edns)
    assert r.question[0].name.to_text() == "NGINX.Marathon.MESOS."
    assert {t.split()[0] for t in section_texts(r.answer)} == {"nginx.marathon.mesos."}
    assert len(section_texts(r.answer)) == 3
    r = query(srv.port, "_NGINX._tcp.Marathon.mesos.", "SRV", tcp=tcp, edns=edns)
    assert {t.split()[0] for t in section_texts(r.answer)} == {"_NGINX._tcp.Marathon.mesos."}
    assert {t.split()[0] for t in section_texts(r.additional)} == {
        "nginx-aaaaa-s1.marathon.mesos.",
        "nginx-bbbbb-s2.marathon.mesos.",
        "nginx-ccccc-s3.marathon.mesos.",
    }


def test_mixed_case_negative(srv: ServerThread) -> None:
    r = query(srv.port, "Missing.MESOS.", "A")
    assert r.rcode() == NXDOMAIN
    assert section_texts(r.authority) == [f"Missing.MESOS. {SOA}"]
    r = query(srv.port, "NGINX.marathon.mesos.", "AAAA")
    assert r.rcode() == NOERROR and r.answer == []
    assert section_texts(r.authority) == [f"NGINX.marathon.mesos. {SOA}"]


# -- SOA, NS and negative answers -----------------------------------------


@pytest.mark.parametrize("name", ["mesos.", "nginx.marathon.mesos.", "no.such.name.mesos."])
def test_soa_question(srv: ServerThread, name: str) -> None:
    r = query(srv.port, name, "SOA")
    assert r.rcode() == NOERROR and r.answer == [] and r.additional == []
    assert {"AA", "RA"} <= flags_of(r)
    assert section_texts(r.authority) == [f"{name} {SOA}"]


@pytest.mark.parametrize("name", ["mesos.", "NoSuch.mesos."])
def test_ns_question(srv: ServerThread, name: str) -> None:
    r = query(srv.port, name, "NS")
    assert r.rcode() == NOERROR and r.answer == []
    assert section_texts(r.authority) == [f"{name} 60 IN NS ns1.mesos."]


@pytest.mark.parametrize("tcp", [False, True])
@pytest.mark.parametrize("rdtype", ["A", "AAAA", "TXT", "MX", "PTR"])
def test_nxdomain(srv: ServerThread, rdtype: str, tcp: bool) -> None:
    r = query(srv.port, "missing.marathon.mesos.", rdtype, tcp=tcp)
    assert r.rcode() == NXDOMAIN
    assert flags_of(r) == {"QR", "AA", "RD", "RA"}
    assert r.answer == [] and r.additional == []
    assert section_texts(r.authority) == [f"missing.marathon.mesos. {SOA}"]


@pytest.mark.parametrize(
    ("name", "rdtype"),
    [
        ("nginx.marathon.mesos.", "AAAA"),
        ("v6only.marathon.mesos.", "A"),
        ("nginx.marathon.mesos.", "TXT"),
        ("_nginx._tcp.marathon.mesos.", "A"),
        ("bad.mesos.", "A"),  # holds only a host name that is not an IP
    ],
)
def test_nodata(srv: ServerThread, name: str, rdtype: str) -> None:
    r = query(srv.port, name, rdtype)
    assert r.rcode() == NOERROR and r.answer == []
    assert section_texts(r.authority) == [f"{name} {SOA}"]


@pytest.mark.parametrize("name", ["_missing._tcp.marathon.mesos.", "nginx.marathon.mesos."])
def test_srv_miss_is_noerror_without_soa(srv: ServerThread, name: str) -> None:
    r = query(srv.port, name, "SRV")
    assert r.rcode() == NOERROR
    assert r.answer == [] and r.authority == [] and r.additional == []


@pytest.mark.parametrize(
    "name",
    [
        "mesos.",  # the apex
        "marathon.mesos.",
        "_tcp.marathon.mesos.",  # empty non-terminal
        "upper.marathon.mesos.",  # the key is "Upper...": never matched
        "Upper.marathon.mesos.",
    ],
)
def test_names_without_records_are_nxdomain(srv: ServerThread, name: str) -> None:
    assert query(srv.port, name, "A").rcode() == NXDOMAIN


def test_any(srv: ServerThread) -> None:
    r = query(srv.port, "_nginx._tcp.marathon.mesos.", "ANY")
    assert r.rcode() == NOERROR
    assert len(section_texts(r.answer)) == 3
    assert sorted(section_texts(r.authority)) == [
        "_nginx._tcp.marathon.mesos. 60 IN NS ns1.mesos.",
        f"_nginx._tcp.marathon.mesos. {SOA}",
    ]
    assert len(section_texts(r.additional)) == 3
    r = query(srv.port, "Dual.marathon.mesos.", "ANY")
    assert sorted(section_texts(r.answer)) == [
        "dual.marathon.mesos. 60 IN A 10.0.2.1",
        "dual.marathon.mesos. 60 IN AAAA fd00::2:1",
    ]
    r = query(srv.port, "missing.mesos.", "ANY")
    assert r.rcode() == NXDOMAIN
    assert sorted(section_texts(r.authority)) == [
        "missing.mesos. 60 IN NS ns1.mesos.",
        f"missing.mesos. {SOA}",
    ]


def test_wildcard_label_is_stripped(srv: ServerThread) -> None:
    r = query(srv.port, "leader.*.mesos.", "A")
    assert section_texts(r.answer) == ["leader.mesos. 60 IN A 10.0.0.11"]
    r = query(srv.port, "_leader._tcp.*.mesos.", "SRV")
    assert section_texts(r.answer) == ["_leader._tcp.*.mesos. 60 IN SRV 0 1 5050 leader.mesos."]
    assert section_texts(r.additional) == ["leader.mesos. 60 IN A 10.0.0.11"]
    r = query(srv.port, "nope.*.mesos.", "A")
    assert r.rcode() == NXDOMAIN


def test_value_that_is_not_an_ip_is_skipped(srv: ServerThread) -> None:
    before = srv.stats()["MesosFailed"]
    r = query(srv.port, "half.mesos.", "A")
    assert section_texts(r.answer) == ["half.mesos. 60 IN A 10.0.4.1"]
    assert srv.stats()["MesosFailed"] == before + 1


def test_names_outside_the_domain_are_not_answered_from_records(srv: ServerThread) -> None:
    # outside.example. is in the record set but not in the domain: forwarded,
    # and with no resolvers that is REFUSED
    r = query(srv.port, "outside.example.", "A")
    assert r.rcode() == dns.rcode.REFUSED
    assert "AA" not in flags_of(r)


def test_soa_rname_at_sign() -> None:
    server = ServerThread(
        settings(soa_rname="admin@example.org", soa_mname="ns9.mesos", ttl=30, soa_refresh=7)
    )
    try:
        r = query(server.port, "x.mesos.", "SOA")
        assert section_texts(r.authority) == [
            "x.mesos. 30 IN SOA ns9.mesos. admin.example.org. 1700000000 7 600 86400 30"
        ]
        r = query(server.port, "nginx.marathon.mesos.", "A")
        assert {t.split()[1] for t in section_texts(r.answer)} == {"30"}
    finally:
        server.close()


# -- header rules ---------------------------------------------------------


def test_rd_copied_and_ra_per_config(srv: ServerThread) -> None:
    r = query(srv.port, "leader.mesos.", "A", rd=False)
    assert flags_of(r) == {"QR", "AA", "RA"}
    server = ServerThread(settings(recurse_on=False))
    try:
        r = query(server.port, "leader.mesos.", "A")
        assert flags_of(r) == {"QR", "AA", "RD"}
        r = query(server.port, "missing.mesos.", "A")
        assert flags_of(r) == {"QR", "AA", "RD"}
    finally:
        server.close()


def test_opcode_and_class_echoed(srv: ServerThread) -> None:
    q = dns.message.make_query("leader.mesos.", "A", rdclass=dns.rdataclass.CH)
    r = dns.message.from_wire(raw_udp(srv.port, q.to_wire()) or b"")
    assert r.question[0].rdclass == dns.rdataclass.CH
    assert section_texts(r.answer) == ["leader.mesos. 60 IN A 10.0.0.11"]
    q = dns.message.make_query("leader.mesos.", "A")
    q.set_opcode(dns.opcode.NOTIFY)
    r = dns.message.from_wire(raw_udp(srv.port, q.to_wire()) or b"")
    assert r.opcode() == dns.opcode.NOTIFY
    assert section_texts(r.answer) == ["leader.mesos. 60 IN A 10.0.0.11"]


def test_cd_copied_ad_not(srv: ServerThread) -> None:
    q = dns.message.make_query("leader.mesos.", "A")
    q.flags |= dns.flags.CD | dns.flags.AD
    r = dns.message.from_wire(raw_udp(srv.port, q.to_wire()) or b"")
    assert flags_of(r) == {"QR", "AA", "RD", "RA", "CD"}


def test_response_packets_are_dropped(srv: ServerThread) -> None:
    q = dns.message.make_query("leader.mesos.", "A")
    wire = bytearray(q.to_wire())
    wire[2] |= 0x80
    assert raw_udp(srv.port, bytes(wire), timeout=0.3) is None
    assert raw_udp(srv.port, b"\x12\x34\x01", timeout=0.3) is None  # shorter than a header


def test_unreadable_question_is_formerr(srv: ServerThread) -> None:
    header = b"\xab\xcd\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    for body in (b"\x05mes", b"\x05mesos\x00\x00", b"\xc0\x0c\x00\x01\x00\x01", b"\x70abc"):
        reply = raw_udp(srv.port, header + body)
        assert reply is not None
        assert reply[:2] == b"\xab\xcd"
        assert reply[2] & 0x80 and reply[3] & 0x0F == dns.rcode.FORMERR
        assert reply[4:6] == b"\x00\x00"


def test_no_question_is_servfail(srv: ServerThread) -> None:
    header = b"\xab\xcd\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00"
    reply = raw_udp(srv.port, header)
    assert reply is not None
    r = dns.message.from_wire(reply)
    assert r.id == 0xABCD and r.rcode() == dns.rcode.SERVFAIL and r.question == []
    assert flags_of(r) == {"QR", "RD"}


def test_only_first_question_is_answered(srv: ServerThread) -> None:
    q1 = dns.message.make_query("leader.mesos.", "A").to_wire()
    q2 = dns.message.make_query("nginx.marathon.mesos.", "A").to_wire()
    packet = q1[:4] + b"\x00\x02" + q1[6:] + q2[12:]
    r = dns.message.from_wire(raw_udp(srv.port, packet) or b"")
    assert len(r.question) == 1 and r.question[0].name.to_text() == "leader.mesos."
    assert section_texts(r.answer) == ["leader.mesos. 60 IN A 10.0.0.11"]


def test_compressed_question_name(srv: ServerThread) -> None:
    # a question whose name is a pointer into another name is still read
    packet = (
        b"\x00\x07\x01\x00\x00\x02\x00\x00\x00\x00\x00\x00"
        b"\x01x\x05mesos\x00\x00\x01\x00\x01"
        b"\x06leader\xc0\x0e\x00\x01\x00\x01"
    )
    r = dns.message.from_wire(raw_udp(srv.port, packet) or b"")
    assert r.rcode() == NXDOMAIN and r.question[0].name.to_text() == "x.mesos."


# -- EDNS and truncation --------------------------------------------------


def test_udp_without_edns_truncates_at_512(srv: ServerThread) -> None:
    q = dns.message.make_query("_big._tcp.marathon.mesos.", "SRV", use_edns=False)
    reply = raw_udp(srv.port, q.to_wire())
    assert reply is not None and len(reply) <= 512
    r = dns.message.from_wire(reply)
    assert "TC" in flags_of(r)
    assert r.additional == [] and 0 < len(section_texts(r.answer)) < 40
    assert r.edns == -1
    # one more answer would not have fitted
    assert len(reply) + 48 > 512
    q = dns.message.make_query("many.marathon.mesos.", "A", use_edns=False)
    reply = raw_udp(srv.port, q.to_wire())
    assert reply is not None and len(reply) <= 512
    r = dns.message.from_wire(reply)
    assert "TC" in flags_of(r) and len(section_texts(r.answer)) == (512 - 12 - 30) // 16


def test_edns_size_is_honoured_up_to_max_udp_payload(srv: ServerThread) -> None:
    r = query(srv.port, "many.marathon.mesos.", "A", edns=True, payload=1232)
    assert "TC" not in flags_of(r) and len(section_texts(r.answer)) == 40
    assert r.edns == 0 and r.payload == 1232  # we offer maxUDPPayload (default 1232)
    # a client offering 4096 still gets at most 1232 bytes: TC
    q = dns.message.make_query("_big._tcp.marathon.mesos.", "SRV", use_edns=0, payload=4096)
    reply = raw_udp(srv.port, q.to_wire())
    assert reply is not None and len(reply) <= 1232
    r = dns.message.from_wire(reply)
    assert "TC" in flags_of(r) and r.additional == [] and r.payload == 1232


def test_max_udp_payload_4096_lets_big_answers_through() -> None:
    server = ServerThread(settings(max_udp_payload=4096))
    try:
        r = query(server.port, "_big._tcp.marathon.mesos.", "SRV", edns=True, payload=4096)
        assert "TC" not in flags_of(r)
        assert len(section_texts(r.answer)) == 40 and len(section_texts(r.additional)) == 40
        assert r.edns == 0 and r.payload == 4096
    finally:
        server.close()


def test_edns_truncation_drops_additional_then_answers(srv: ServerThread) -> None:
    q = dns.message.make_query("_big._tcp.marathon.mesos.", "SRV", use_edns=0, payload=1232)
    reply = raw_udp(srv.port, q.to_wire())
    assert reply is not None and len(reply) <= 1232
    r = dns.message.from_wire(reply)
    assert "TC" in flags_of(r) and r.edns == 0
    assert [rr.rdtype for rr in r.additional] == []
    assert 0 < len(section_texts(r.answer)) < 40
    # a size below 512 counts as 512
    q = dns.message.make_query("_big._tcp.marathon.mesos.", "SRV", use_edns=0, payload=100)
    reply = raw_udp(srv.port, q.to_wire())
    assert reply is not None and 400 < len(reply) <= 512


def test_edns_do_bit_and_opt_echo(srv: ServerThread) -> None:
    q = dns.message.make_query("leader.mesos.", "A", want_dnssec=True)
    r = dns.message.from_wire(raw_udp(srv.port, q.to_wire()) or b"")
    assert r.edns == 0 and r.ednsflags & dns.flags.DO
    r = query(srv.port, "missing.mesos.", "A", edns=True)
    assert r.edns == 0 and r.rcode() == NXDOMAIN


def test_edns_bad_version(srv: ServerThread) -> None:
    q = dns.message.make_query("leader.mesos.", "A", use_edns=1)
    r = dns.message.from_wire(raw_udp(srv.port, q.to_wire()) or b"")
    assert r.rcode() == dns.rcode.BADVERS and r.answer == []


def test_tcp_carries_the_full_answer(srv: ServerThread) -> None:
    r = query(srv.port, "_big._tcp.marathon.mesos.", "SRV", tcp=True)
    assert "TC" not in flags_of(r)
    assert len(section_texts(r.answer)) == 40 and len(section_texts(r.additional)) == 40


def test_truncate_bit_off() -> None:
    server = ServerThread(settings(set_truncate_bit=False))
    try:
        q = dns.message.make_query("_big._tcp.marathon.mesos.", "SRV", use_edns=False)
        reply = raw_udp(server.port, q.to_wire())
        assert reply is not None and len(reply) <= 512
        r = dns.message.from_wire(reply)
        assert "TC" not in flags_of(r) and r.additional == []
    finally:
        server.close()


# -- TCP ------------------------------------------------------------------


def test_tcp_pipelining(srv: ServerThread) -> None:
    names = ["leader.mesos.", "missing.mesos.", "nginx.marathon.mesos."]
    packets = []
    for i, name in enumerate(names):
        q = dns.message.make_query(name, "A")
        q.id = 100 + i
        packets.append(q.to_wire())
    replies = [dns.message.from_wire(b) for b in raw_tcp(srv.port, packets, 3)]
    assert sorted(r.id for r in replies) == [100, 101, 102]
    by_id = {r.id: r for r in replies}
    assert by_id[101].rcode() == NXDOMAIN
    assert len(section_texts(by_id[102].answer)) == 3


def test_tcp_partial_frames(srv: ServerThread) -> None:
    q = dns.message.make_query("leader.mesos.", "A").to_wire()
    framed = struct.pack(">H", len(q)) + q
    with socket.create_connection(("127.0.0.1", srv.port), timeout=2) as s:
        for i in range(len(framed)):
            s.sendall(framed[i : i + 1])
            time.sleep(0.001)
        head = s.recv(2)
        size = struct.unpack(">H", head)[0]
        body = b""
        while len(body) < size:
            body += s.recv(size - len(body))
    assert dns.message.from_wire(body).answer


def test_tcp_idle_timeout_and_connection_cap() -> None:
    server = ServerThread(settings(tcp_idle_timeout=0.3, max_tcp_connections=2))
    try:
        a = socket.create_connection(("127.0.0.1", server.port), timeout=2)
        b = socket.create_connection(("127.0.0.1", server.port), timeout=2)
        assert wait_for(lambda: server.stats()["TCPConnections"] == 2)
        c = socket.create_connection(("127.0.0.1", server.port), timeout=2)
        assert c.recv(10) == b""  # over the cap: closed at once
        started = time.monotonic()
        assert a.recv(10) == b""  # idle: closed by the server
        assert 0.2 < time.monotonic() - started < 1.5
        assert b.recv(10) == b""
        for s in (a, b, c):
            s.close()
        # a new connection works again
        r = query(server.port, "leader.mesos.", "A", tcp=True)
        assert r.answer
    finally:
        server.close()


# -- lifecycle and counters -----------------------------------------------


def test_servfail_before_the_first_table_then_answers() -> None:
    server = ServerThread(settings(), ready=False)
    try:
        for tcp in (False, True):
            r = query(server.port, "leader.mesos.", "A", tcp=tcp)
            assert r.rcode() == dns.rcode.SERVFAIL
        server.set_table(compile_table(server.settings))
        assert query(server.port, "leader.mesos.", "A").answer
    finally:
        server.close()


def test_table_swap(srv: ServerThread) -> None:
    server = ServerThread(settings())
    try:
        rs = record_set()
        a = dict(rs.a)
        a["leader.mesos."] = ("10.99.0.1",)
        new = RecordSet(domain="mesos", a=a, aaaa=rs.aaaa, srv=rs.srv)
        server.set_table(compile_answers(new, server.settings, SERIAL + 60))
        r = query(server.port, "leader.mesos.", "A")
        assert section_texts(r.answer) == ["leader.mesos. 60 IN A 10.99.0.1"]
        r = query(server.port, "x.mesos.", "SOA")
        assert r.authority[0][0].serial == SERIAL + 60
    finally:
        server.close()


def test_counters() -> None:
    server = ServerThread(settings())
    try:
        query(server.port, "leader.mesos.", "A")  # success (hot path)
        query(server.port, "LEADER.mesos.", "A", edns=True)  # success (general path)
        query(server.port, "leader.mesos.", "A", tcp=True)  # success
        query(server.port, "missing.mesos.", "A")  # NXDOMAIN
        query(server.port, "leader.mesos.", "AAAA")  # NODATA counts as NXDOMAIN
        query(server.port, "missing.mesos.", "SRV")  # success
        query(server.port, "x.mesos.", "SOA")  # success
        query(server.port, "half.mesos.", "A")  # success + failed
        query(server.port, "example.com.", "A")  # non-Mesos, REFUSED
        stats = server.stats()
        assert stats["MesosRequests"] == 8
        assert stats["MesosSuccess"] == 6
        assert stats["MesosNXDomain"] == 2
        assert stats["MesosFailed"] == 1
        assert stats["NonMesosRequests"] == 1
        assert stats["NonMesosForwarded"] == 0
    finally:
        server.close()


def test_ipv6_listener() -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6")
    try:
        server = ServerThread(settings(listen_host="::1"))
    except OSError:
        pytest.skip("cannot bind ::1")
    try:
        q = dns.message.make_query("leader.mesos.", "A")
        r = dns.query.udp(q, "::1", port=server.port, timeout=2)
        assert section_texts(r.answer) == ["leader.mesos. 60 IN A 10.0.0.11"]
    finally:
        server.close()
