"""The wire layer and the UDP/TCP handlers on hostile input (no network)."""

from __future__ import annotations

import random

import dns.message
import dns.name
import pytest
from dns_support import FakeSocket, compile_table, settings
from hypothesis import HealthCheck, example, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from mesosdns.dns import wire
from mesosdns.dns.protocol import DNSServer
from mesosdns.dns.settings import parse_resolver

# -- unit tests -----------------------------------------------------------

_ONE_Q = b"\x00\x01\x01\x00\x00\x01" + b"\x00" * 6  # a header announcing one question


def test_parse_query_basics() -> None:
    q = dns.message.make_query("Leader.Mesos.", "SRV", use_edns=0, payload=1400, want_dnssec=True)
    q.id = 0x0102
    parsed = wire.parse_query(q.to_wire())
    assert isinstance(parsed, wire.Query)
    assert parsed.ident == b"\x01\x02"
    assert parsed.qname == b"\x06Leader\x05Mesos\x00"
    assert parsed.qtype == wire.TYPE_SRV and parsed.qclass == wire.CLASS_IN
    assert parsed.question == parsed.qname + b"\x00\x21\x00\x01"
    assert parsed.edns_size == 1400 and parsed.edns_do and parsed.edns_version == 0


@pytest.mark.parametrize(
    ("packet", "status"),
    [
        (b"", wire.ParseStatus.DROP),
        (b"\x00" * 11, wire.ParseStatus.DROP),
        (b"\x00\x01\x80\x00" + b"\x00" * 8, wire.ParseStatus.DROP),  # a response
        (b"\x00\x01\x01\x00" + b"\x00" * 8, wire.ParseStatus.NOQUESTION),
        (b"\x00\x01\x01\x00\x00\x01" + b"\x00" * 6, wire.ParseStatus.NOQUESTION),  # count lies
        (b"\x00\x01\x01\x00\x00\x01" + b"\x00" * 6 + b"\x03ab", wire.ParseStatus.FORMERR),
        (b"\x00\x01\x01\x00\x00\x01" + b"\x00" * 6 + b"\x00\x00", wire.ParseStatus.FORMERR),
        (
            b"\x00\x01\x01\x00\x00\x01" + b"\x00" * 6 + b"\x80a\x00\x00\x01\x00\x01",
            wire.ParseStatus.FORMERR,
        ),
    ],
)
def test_parse_query_statuses(packet: bytes, status: wire.ParseStatus) -> None:
    assert wire.parse_query(packet) == status


def test_two_opt_records_are_formerr() -> None:
    q = dns.message.make_query("x.mesos.", "A", use_edns=0).to_wire()
    opt = q[-11:]
    packet = q[:10] + b"\x00\x02" + q[12:] + opt
    assert wire.parse_query(packet) == wire.ParseStatus.FORMERR


def test_reply_flags() -> None:
    # QR, opcode echoed, AA, RD and CD copied for QUERY, RA per config
    assert wire.reply_flags(0x01, 0x10, aa=True, tc=False, ra=True, rcode=3) == b"\x85\x93"
    assert wire.reply_flags(0x21, 0x30, aa=True, tc=True, ra=False, rcode=0) == b"\xa6\x00"
    table = wire.flag_table(True, False, True, 0)
    for b2 in range(0, 0x80):
        for b3 in (0x00, 0x10, 0x20, 0xFF):
            expect = wire.reply_flags(b2, b3, aa=True, tc=False, ra=True, rcode=0)
            assert table[wire.flag_index(b2, b3)] == expect


@pytest.mark.parametrize(
    ("text", "wire_form"),
    [
        (".", b"\x00"),
        ("mesos.", b"\x05mesos\x00"),
        ("a.b", b"\x01a\x01b\x00"),
        ("a\\.b.c.", b"\x03a.b\x01c\x00"),
        ("\\065.x.", b"\x01A\x01x\x00"),
        ("a..b.", None),
        ("x" * 64 + ".", None),
        (".".join(["x" * 60] * 5) + ".", None),
    ],
)
def test_text_to_wire(text: str, wire_form: bytes | None) -> None:
    assert wire.text_to_wire(text) == wire_form


@pytest.mark.parametrize(
    ("name", "expect"),
    [
        ("nginx.marathon.mesos.", b"\x05nginx\x08marathon\x05mesos\x00"),
        ("_nginx._tcp.marathon.mesos.", b"\x06_nginx\x04_tcp\x08marathon\x05mesos\x00"),
        ("Nginx.marathon.mesos.", None),  # never matched by a lower-cased question
        ("ngïnx.marathon.mesos.", None),
        ("a b.mesos.", None),
        ("a.*.mesos.", None),
        (".marathon.mesos.", None),
        ("x" * 64 + ".mesos.", None),
        ("nginx.marathon.mesos", None),
    ],
)
def test_plain_key_wire(name: str, expect: bytes | None) -> None:
    assert wire.plain_key_wire(name) == expect


def test_plain_key_wire_takes_names_of_up_to_255_octets() -> None:
    longest = ".".join(["x" * 63] * 3 + ["y" * 61]) + "."
    assert len(wire.plain_key_wire(longest) or b"") == 255
    assert wire.plain_key_wire("y" + longest) is None


def _plain_key_wire_by_labels(name: str) -> bytes | None:
    """The rule of `wire.plain_key_wire`, label by label (its reference)."""
    if not name.endswith(".") or ".*" in name or not name.isascii():
        return None
    plain = {c for c in map(chr, range(33, 127)) if c not in '.()";@\\ ' and not c.isupper()}
    out = b""
    for label in name[:-1].split("."):
        if not 1 <= len(label) <= 63 or not set(label) <= plain:
            return None
        out += bytes((len(label),)) + label.encode()
    out += b"\x00"
    return out if len(out) <= 255 else None


@hsettings(max_examples=3000, deadline=None)
@given(st.lists(st.sampled_from(["a", "Z", "-", "_", "*", ".", "\\", " ", "é", "x" * 40, "0"]),
                max_size=40))
@example(["a", "."] * 2000)  # thousands of labels
@example(["x" * 40, "x" * 40, "."] * 4)
def test_plain_key_wire_follows_its_rule(parts: list[str]) -> None:
    name = "".join(parts)
    for candidate in (name, name + ".", "x." + name + "."):
        assert wire.plain_key_wire(candidate) == _plain_key_wire_by_labels(candidate), candidate


def test_in_zone() -> None:
    mesos = b"\x05mesos\x00"
    assert wire.in_zone(b"\x05mesos\x00", mesos)
    assert wire.in_zone(b"\x01a\x05mesos\x00", mesos)
    assert not wire.in_zone(b"\x06xmesos\x00", mesos)
    assert not wire.in_zone(b"\x06\x05mesos\x00", mesos)  # a label ending in "\x05mesos"
    assert not wire.in_zone(b"\x03com\x00", mesos)


@pytest.mark.parametrize(
    ("text", "port"),
    [("8.8.8.8", ("8.8.8.8", 53)), ("1.2.3.4:5353", ("1.2.3.4", 5353)), ("::1", ("::1", 53))],
)
def test_parse_resolver(text: str, port: tuple[str, int]) -> None:
    assert parse_resolver(text) == port


def test_parse_resolver_v6_port() -> None:
    assert parse_resolver("[fd00::1]:5353") == ("fd00::1", 5353)
    with pytest.raises(ValueError):
        parse_resolver("1.2.3.4:99999")


# -- properties -----------------------------------------------------------

labels = st.binary(min_size=1, max_size=20)


@given(st.lists(labels, min_size=1, max_size=5))
@example(parts=[b"$"])
def test_presentation_round_trip(parts: list[bytes]) -> None:
    name = b"".join(bytes([len(p)]) + p for p in parts) + b"\x00"
    text = wire.wire_to_text(name)
    assert wire.text_to_wire(text) == name
    # and dnspython reads the text as the same name (it may escape more, e.g. "$")
    assert dns.name.from_text(text) == dns.name.from_wire(name, 0)[0]


@given(st.binary(max_size=300))
def test_parse_query_never_raises(data: bytes) -> None:
    res = wire.parse_query(data)
    assert isinstance(res, (wire.Query, wire.ParseStatus))


class FakeConn:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.pending = 0

    def send(self, reply: bytes) -> None:
        self.sent.append(reply)

    def send_forwarded(self, reply: bytes) -> None:
        self.sent.append(reply)


_SETTINGS = settings()
_TABLE = compile_table(_SETTINGS)
_SERVER = DNSServer(_SETTINGS, rng=random.Random(1))
_SERVER.set_table(_TABLE)

_SAMPLES = [
    dns.message.make_query(name, rdtype, use_edns=edns).to_wire()
    for name in ("nginx.marathon.mesos.", "_big._tcp.marathon.mesos.", "x.mesos.", "a.example.")
    for rdtype in ("A", "SRV", "ANY", "SOA")
    for edns in (False, 0)
]


def _check_replies(queries: list[bytes], replies: list[bytes]) -> None:
    for reply in replies:
        assert len(reply) >= 12
        assert reply[2] & 0x80, "a reply always has QR set"
        # and is well formed; read as a QUERY, since dnspython gives other
        # opcodes (UPDATE) their own section rules that an error reply to a
        # malformed update need not follow
        dns.message.from_wire(reply[:2] + bytes([reply[2] & 0x87]) + reply[3:])
    ids = {q[:2] for q in queries if len(q) >= 2}
    for reply in replies:
        assert reply[:2] in ids


def _serve_udp(packets: list[bytes]) -> list[bytes]:
    sock = FakeSocket(packets)
    _SERVER._udp = sock  # type: ignore[assignment]
    try:
        while sock.packets:
            _SERVER._on_udp()
    finally:
        _SERVER._udp = None
    return sock.sent


# an UPDATE-opcode packet with an A question (dnspython cannot read the reply
# as an UPDATE message, only as a plain one)
_UPDATE_OPCODE = (
    b"\x17\xa7(\x00\x00\x01\x00\x00\x00\x00\x00\x00"
    b"\x05nginx\x08marathon\x05mesos\x00\x00\x01\x00\x01"
)


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    base = bytearray(draw(st.sampled_from(_SAMPLES)))
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.integers(0, 2))
        if kind == 0 and base:
            i = draw(st.integers(0, len(base) - 1))
            base[i] = draw(st.integers(0, 255))
        elif kind == 1 and base:
            i = draw(st.integers(0, len(base)))
            del base[i:]
        else:
            base += draw(st.binary(max_size=8))
    return bytes(base)


@hsettings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.one_of(st.binary(max_size=80), mutated()), min_size=1, max_size=5))
@example(packets=[_UPDATE_OPCODE])
def test_udp_handler_never_raises(packets: list[bytes]) -> None:
    errors = _SERVER.stats.errors
    replies = _serve_udp(packets)
    assert _SERVER.stats.errors == errors
    _check_replies(packets, replies)
    responses = [p for p in packets if len(p) >= 3 and p[2] & 0x80]
    assert len(replies) <= len(packets) - len(responses)


@hsettings(max_examples=200, deadline=None)
@given(st.one_of(st.binary(max_size=80), mutated()))
@example(packet=_UPDATE_OPCODE)
def test_tcp_handler_never_raises(packet: bytes) -> None:
    conn = FakeConn()
    errors = _SERVER.stats.errors
    _SERVER._tcp_message(packet, conn)  # type: ignore[arg-type]
    assert _SERVER.stats.errors == errors
    _check_replies([packet], conn.sent)


def test_every_sample_gets_a_reply() -> None:
    replies = _serve_udp(list(_SAMPLES))
    assert len(replies) == len(_SAMPLES)
    _check_replies(_SAMPLES, replies)
