"""Property-based fuzz of the DNS packet path, over UDP, TCP and in-process.

Structured generators build the hostile inputs a DNS server meets: truncated
headers, compression loops and pointers out of bounds, oversized labels and
names, counts that lie, every opcode, unknown classes and types, EDNS with
random options, bad versions, two OPT records or a lying RDLENGTH, responses
(QR set), and random mutations of valid queries. Each case knows the answer
the server documents for it (``docs/reliability.md``):

- fewer than 12 bytes, or QR set: no reply at all;
- an unreadable question or record: FORMERR (opcode QUERY, no question);
- no question: SERVFAIL;
- a question in the domain: NOERROR or NXDOMAIN (BADVERS for an EDNS
  version other than 0), whatever the opcode, class or type;
- a question outside the domain: REFUSED here (no resolvers configured);
- never NOTIMP: like the original, every opcode is answered as a QUERY.

Every reply must have QR set, the query's ID, the opcode echoed, parse with
dnspython, fit 512 bytes over UDP without EDNS (the EDNS size, at most 1232,
with it) and carry no OPT record unless the query had one. The server must
never count an internal error and must still answer afterwards.

The packets go through the in-process handlers (fast: most examples), the
real server on loopback over UDP, and over TCP (including random framing:
messages split at random points, several per write, an unfinished last one).
The number of inputs tried is printed at the end of the module; scale it with
``MESOSDNS_FUZZ_SCALE`` (a multiplier, default 1)::

    MESOSDNS_FUZZ_SCALE=20 python -m pytest tests/test_fuzz_dns.py -q
"""

from __future__ import annotations

import os
import random
import socket
import struct
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import dns.exception
import dns.message
import dns.rcode
import pytest
from dns_support import FakeSocket, ServerThread, compile_table, read_frames, settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from mesosdns.dns.protocol import DNSServer

SCALE = max(1, int(os.environ.get("MESOSDNS_FUZZ_SCALE", "1")))
TRIED: Counter[str] = Counter()

NOERROR, FORMERR, SERVFAIL, NXDOMAIN, REFUSED = 0, 1, 2, 3, 5
BADVERS = 16
IN_DOMAIN = frozenset({NOERROR, NXDOMAIN})
DROP: frozenset[int] = frozenset()  # no reply expected
ANY_RCODE = frozenset({NOERROR, FORMERR, SERVFAIL, NXDOMAIN, REFUSED, BADVERS})

# -- the server ------------------------------------------------------------

_SETTINGS = settings()  # domain mesos, no resolvers: outside names are REFUSED
_TABLE = compile_table(_SETTINGS)


def _handler_server() -> DNSServer:
    server = DNSServer(_SETTINGS, rng=random.Random(3))
    server.set_table(_TABLE)
    return server


_HANDLER = _handler_server()


@pytest.fixture(scope="module")
def live() -> Iterator[ServerThread]:
    server = ServerThread(_SETTINGS, _TABLE)
    yield server
    server.close()


@pytest.fixture(scope="module", autouse=True)
def _report(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    total = sum(TRIED.values())
    parts = ", ".join(f"{k} {v}" for k, v in sorted(TRIED.items()))
    line = f"DNS fuzz: {total} inputs tried ({parts}); scale {SCALE}"
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    if reporter is None or capture is None:  # pragma: no cover
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line("")
        reporter.write_line(line)


# -- building packets ------------------------------------------------------


@dataclass(frozen=True)
class Case:
    """A packet and the RCODEs the server may answer (empty: no reply)."""

    packet: bytes
    expect: frozenset[int]
    edns_size: int = -1  # the query's EDNS payload size, -1 without, -2 unknown
    kind: str = ""


def header(ident: int, b2: int, b3: int, qd: int, an: int, ns: int, ar: int) -> bytes:
    return struct.pack(">HBBHHHH", ident, b2, b3, qd, an, ns, ar)


def name_wire(labels: list[bytes]) -> bytes:
    return b"".join(bytes([len(x)]) + x for x in labels) + b"\x00"


def opt_record(
    payload: int, version: int = 0, do: bool = False, options: bytes = b"", rdlen: int = -1
) -> bytes:
    size = len(options) if rdlen < 0 else rdlen
    return (
        b"\x00"
        + struct.pack(">HHBBHH", 41, payload, 0, version, 0x8000 if do else 0, size)
        + options
    )


POOL = [
    [b"nginx", b"marathon", b"mesos"],
    [b"_nginx", b"_tcp", b"marathon", b"mesos"],
    [b"_big", b"_tcp", b"marathon", b"mesos"],
    [b"many", b"marathon", b"mesos"],
    [b"dual", b"marathon", b"mesos"],
    [b"v6only", b"marathon", b"mesos"],
    [b"leader", b"mesos"],
    [b"leader", b"*", b"mesos"],
    [b"missing", b"mesos"],
    [b"mesos"],
    [b"www", b"example"],
    [b"example"],
    [],
]
TYPES = [1, 2, 5, 6, 12, 15, 16, 28, 33, 41, 43, 251, 252, 253, 254, 255, 0, 65535]
CLASSES = [1, 1, 1, 3, 4, 254, 255, 0, 65535]

label_st = st.binary(min_size=1, max_size=63)
ident_st = st.integers(0, 0xFFFF)


@st.composite
def qname(draw: st.DrawFn) -> list[bytes]:
    """A name from the pool (random case), or random labels, in or out of the domain."""
    if draw(st.booleans()):
        labels = list(draw(st.sampled_from(POOL)))
        if draw(st.booleans()):
            rng = random.Random(draw(st.integers(0, 1 << 16)))
            labels = [
                bytes(b ^ 0x20 if 97 <= b <= 122 and rng.random() < 0.5 else b for b in x)
                for x in labels
            ]
        return labels
    labels = draw(st.lists(label_st, max_size=3))
    if draw(st.booleans()):
        labels.append(draw(st.sampled_from([b"mesos", b"MESOS", b"Mesos"])))
    total = sum(len(x) + 1 for x in labels) + 1
    return labels if total <= 255 else [b"toolong", b"mesos"]


def in_domain(labels: list[bytes]) -> bool:
    return bool(labels) and labels[-1].lower() == b"mesos"


@st.composite
def flags(draw: st.DrawFn) -> tuple[int, int]:
    """Header bytes 2-3 of a query: QR clear, any opcode, any other bits."""
    opcode = draw(st.integers(0, 15))
    b2 = (opcode << 3) | draw(st.integers(0, 7))
    b3 = draw(st.integers(0, 255))
    return b2, b3


@st.composite
def edns_part(draw: st.DrawFn) -> tuple[bytes, int, int]:
    """An OPT record (or none): (record, payload size or -1, version)."""
    if draw(st.integers(0, 2)) == 0:
        return b"", -1, 0
    payload = draw(st.one_of(st.sampled_from([0, 512, 1232, 4096, 65535]), st.integers(0, 65535)))
    version = draw(st.sampled_from([0, 0, 0, 1, 255]))
    opts = b""
    for _ in range(draw(st.integers(0, 3))):
        code = draw(st.sampled_from([3, 8, 10, 12, 15, 65001, 0]))  # NSID, ECS, COOKIE, ...
        data = draw(st.binary(max_size=40))
        declared = draw(st.sampled_from([len(data), len(data), len(data) + 7, 0]))
        opts += struct.pack(">HH", code, declared) + data  # option lengths may lie
    return opt_record(payload, version, draw(st.booleans()), opts), payload, version


@st.composite
def valid_query(draw: st.DrawFn) -> Case:
    """A readable query: any opcode, class and type, maybe EDNS, counts that lie."""
    labels = draw(qname())
    qtype = draw(st.one_of(st.sampled_from(TYPES), st.integers(0, 65535)))
    qclass = draw(st.sampled_from(CLASSES))
    b2, b3 = draw(flags())
    opt, payload, version = draw(edns_part())
    question = name_wire(labels) + struct.pack(">HH", qtype, qclass)
    # counts that lie: more questions / records announced than present are
    # tolerated (nothing left to read)
    qd = draw(st.sampled_from([1, 1, 1, 2, 7, 65535]))
    an = draw(st.sampled_from([0, 0, 0, 3, 65535]))
    ns = draw(st.sampled_from([0, 0, 0, 1, 65535]))
    if opt:
        if qd != 1 or an or ns:
            # the OPT record would be read as the missing question or records
            qd, an, ns = 1, 0, 0
        ar = draw(st.sampled_from([1, 1, 2, 9]))
    else:
        ar = draw(st.sampled_from([0, 0, 0, 4]))
    packet = header(draw(ident_st), b2, b3, qd, an, ns, ar) + question + opt
    if not in_domain(labels) or qtype == 43:  # outside, or DS: to the (absent) forwarder
        expect = frozenset({REFUSED})
    elif opt and version != 0:
        expect = frozenset({BADVERS})
    else:
        expect = IN_DOMAIN
    return Case(packet, expect, payload, "valid")


@st.composite
def truncated(draw: st.DrawFn) -> Case:
    """A valid query cut short anywhere."""
    case = draw(valid_query())
    cut = draw(st.integers(0, len(case.packet) - 1))
    data = case.packet[:cut]
    if cut < 12:
        return Case(data, DROP, kind="truncated-header")
    qd = struct.unpack(">H", data[4:6])[0]
    if cut == 12 and qd:
        return Case(data, frozenset({SERVFAIL}), kind="truncated")
    # inside the question: FORMERR; between records: what is left is read
    return Case(data, ANY_RCODE, kind="truncated")


@st.composite
def compression(draw: st.DrawFn) -> Case:
    """Question names with pointer loops, forward pointers, pointers past the end."""
    ident = draw(ident_st)
    kind = draw(st.integers(0, 4))
    prefix = name_wire(draw(st.lists(st.binary(min_size=1, max_size=10), max_size=3)))[:-1]
    tail = struct.pack(">HH", 1, 1)
    if kind == 0:  # points at itself
        name = prefix + struct.pack(">H", 0xC000 | (12 + len(prefix)))
        expect = frozenset({FORMERR})
    elif kind == 1:  # points back to its own start: a loop
        name = prefix + b"\xc0\x0c"
        expect = frozenset({FORMERR})
    elif kind == 2:  # points forward
        name = prefix + struct.pack(
            ">H", 0xC000 | (12 + len(prefix) + 2 + draw(st.integers(0, 30)))
        )
        expect = frozenset({FORMERR})
    elif kind == 3:  # points past the end of the message
        name = prefix + struct.pack(">H", 0xC000 | draw(st.integers(300, 0x3FFF)))
        expect = frozenset({FORMERR})
    else:  # points into the header: bytes read as labels, anything may come of it
        name = prefix + struct.pack(">H", 0xC000 | draw(st.integers(0, 11)))
        expect = ANY_RCODE
    packet = header(ident, 0x01, 0, 1, 0, 0, 0) + name + tail
    return Case(packet, expect, kind="compression")


@st.composite
def bad_labels(draw: st.DrawFn) -> Case:
    """Label types 0x40/0x80, labels past the end, names over 255 bytes."""
    ident = draw(ident_st)
    kind = draw(st.integers(0, 2))
    if kind == 0:  # extended / reserved label type
        name = bytes([draw(st.integers(64, 191))]) + draw(st.binary(max_size=70)) + b"\x00"
    elif kind == 1:  # a label longer than what remains
        body = draw(st.binary(max_size=20))
        name = bytes([len(body) + draw(st.integers(5, 63))]) + body
    else:  # more than 255 bytes of name
        name = name_wire([b"x" * 63] * draw(st.integers(5, 8)))
    packet = header(ident, 0x01, 0, 1, 0, 0, 0) + name + struct.pack(">HH", 1, 1)
    return Case(packet, frozenset({FORMERR}), kind="labels")


@st.composite
def bad_counts(draw: st.DrawFn) -> Case:
    """No question, or records that do not parse."""
    ident = draw(ident_st)
    question = name_wire([b"leader", b"mesos"]) + struct.pack(">HH", 1, 1)
    kind = draw(st.integers(0, 3))
    if kind == 0:  # no question announced nor present
        return Case(header(ident, 0x01, 0, 0, 0, 0, 0), frozenset({SERVFAIL}), kind="counts")
    if kind == 1:  # a question present but not announced: not read
        packet = header(ident, 0x01, 0, 0, 0, 0, 0) + question
        return Case(packet, frozenset({SERVFAIL}), kind="counts")
    if kind == 2:  # garbage where an announced record should be
        junk = draw(st.binary(min_size=1, max_size=9))
        section = draw(st.integers(0, 2))
        counts = [0, 0, 0]
        counts[section] = draw(st.integers(1, 3))
        packet = header(ident, 0x01, 0, 1, *counts) + question + junk
        return Case(packet, frozenset({FORMERR}), kind="counts")
    # a second question that is garbage
    junk = draw(st.binary(min_size=1, max_size=4))
    packet = header(ident, 0x01, 0, 2, 0, 0, 0) + question + junk
    return Case(packet, frozenset({FORMERR}), kind="counts")


@st.composite
def bad_edns(draw: st.DrawFn) -> Case:
    """Two OPT records, or an OPT whose RDLENGTH runs past the end."""
    ident = draw(ident_st)
    question = name_wire([b"leader", b"mesos"]) + struct.pack(">HH", 1, 1)
    if draw(st.booleans()):
        opt = opt_record(1232)
        packet = header(ident, 0x01, 0, 1, 0, 0, 2) + question + opt + opt
    else:
        data = draw(st.binary(max_size=20))
        opt = opt_record(1232, options=data, rdlen=len(data) + draw(st.integers(1, 100)))
        packet = header(ident, 0x01, 0, 1, 0, 0, 1) + question + opt
    return Case(packet, frozenset({FORMERR}), kind="edns")


@st.composite
def responses(draw: st.DrawFn) -> Case:
    """A message with QR set: never answered (no reflection loops)."""
    case = draw(st.one_of(valid_query(), compression(), bad_labels()))
    data = bytearray(case.packet)
    data[2] |= 0x80
    return Case(bytes(data), DROP, kind="response")


@st.composite
def mutated(draw: st.DrawFn) -> Case:
    """Random byte flips, cuts and additions to a valid query."""
    data = bytearray(draw(valid_query()).packet)
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.integers(0, 2))
        if op == 0 and data:
            data[draw(st.integers(0, len(data) - 1))] = draw(st.integers(0, 255))
        elif op == 1 and data:
            del data[draw(st.integers(0, len(data) - 1)) :]
        else:
            at = draw(st.integers(0, len(data)))
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
    packet = bytes(data)
    if len(packet) < 12 or packet[2] & 0x80:
        return Case(packet, DROP, kind="mutated")
    return Case(packet, ANY_RCODE, -2, kind="mutated")


@st.composite
def raw(draw: st.DrawFn) -> Case:
    packet = draw(st.binary(max_size=120))
    if len(packet) < 12 or packet[2] & 0x80:
        return Case(packet, DROP, kind="random")
    return Case(packet, ANY_RCODE, -2, kind="random")


cases = st.one_of(
    valid_query(),
    truncated(),
    compression(),
    bad_labels(),
    bad_counts(),
    bad_edns(),
    responses(),
    mutated(),
    raw(),
)

# -- checking replies ------------------------------------------------------


def check(case: Case, reply: bytes | None, udp: bool) -> None:
    packet = case.packet
    if not case.expect:
        assert reply is None, f"a reply to a {case.kind} packet that must be dropped"
        return
    assert reply is not None, f"no reply to a {case.kind} packet"
    assert len(reply) >= 12
    assert reply[:2] == packet[:2], "the ID is echoed"
    assert reply[2] & 0x80, "QR is set"
    rcode_low = reply[3] & 0x0F
    if rcode_low == FORMERR:
        assert reply[2] & 0x78 == 0 and reply[4:6] == b"\x00\x00"
    else:
        assert reply[2] & 0x78 == packet[2] & 0x78, "the opcode is echoed"
    limit = 65535
    if udp:
        size = 4096 if case.edns_size == -2 else case.edns_size
        limit = 512 if size < 0 else min(max(size, 512), 1232)  # maxUDPPayload's default
    assert len(reply) <= limit
    # dnspython reads other opcodes (UPDATE) with other section rules
    try:
        msg = dns.message.from_wire(reply[:2] + bytes([reply[2] & 0x87]) + reply[3:])
    except dns.exception.DNSException as exc:  # pragma: no cover - the failure message
        raise AssertionError(f"unreadable reply {reply!r}: {exc}") from None
    rcode = msg.rcode()
    assert rcode in case.expect, f"{case.kind}: rcode {rcode}, expected {set(case.expect)}"
    assert rcode != dns.rcode.NOTIMP
    if case.edns_size == -1:
        assert msg.edns < 0, "OPT only in replies to EDNS queries"
    if msg.question and case.kind == "valid":
        qlen = len(reply_question(packet))
        assert reply[12 : 12 + qlen].lower() == packet[12 : 12 + qlen].lower()


def reply_question(packet: bytes) -> bytes:
    """The question section of a query made by ``valid_query``."""
    off = 12
    while packet[off]:
        off += packet[off] + 1
    return packet[12 : off + 5]


# -- in-process ------------------------------------------------------------


class _FakeConn:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.pending = 0
        self.peer = ("127.0.0.1", 5353)

    def send(self, reply: bytes) -> None:
        self.sent.append(reply)

    def send_forwarded(self, reply: bytes) -> None:
        self.pending -= 1
        self.sent.append(reply)


def handle_udp(packet: bytes) -> bytes | None:
    sock = FakeSocket([packet])
    _HANDLER._udp = sock  # type: ignore[assignment]
    try:
        _HANDLER._on_udp()
    finally:
        _HANDLER._udp = None
    assert len(sock.sent) <= 1
    return sock.sent[0] if sock.sent else None


def handle_tcp(packet: bytes) -> bytes | None:
    conn = _FakeConn()
    _HANDLER._tcp_message(packet, conn)  # type: ignore[arg-type]
    assert len(conn.sent) <= 1
    return conn.sent[0] if conn.sent else None


@hsettings(max_examples=2500 * SCALE, deadline=None, suppress_health_check=list(HealthCheck))
@given(cases)
def test_handlers_in_process(case: Case) -> None:
    errors = _HANDLER.stats.errors
    TRIED["in-process"] += 2
    check(case, handle_udp(case.packet), udp=True)
    check(case, handle_tcp(case.packet), udp=False)
    assert _HANDLER.stats.errors == errors


# -- the real server, UDP --------------------------------------------------


class UDPClient:
    def __init__(self, port: int) -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.settimeout(2.0)
        self.sock.connect(("127.0.0.1", port))
        self.probe_id = 0

    def exchange(self, packet: bytes) -> bytes | None:
        """Send ``packet``, then a probe; the reply to ``packet`` or None.

        The server reads datagrams in order and answers these synchronously,
        so a reply to ``packet`` arrives before the probe's.
        """
        self.probe_id = (self.probe_id + 1) & 0xFFFF
        if len(packet) >= 2 and self.probe_id == struct.unpack(">H", packet[:2])[0]:
            self.probe_id ^= 0x8000
        probe = (
            header(self.probe_id, 0x01, 0, 1, 0, 0, 0)
            + name_wire([b"probe", b"mesos"])
            + struct.pack(">HH", 1, 1)
        )
        self.sock.send(packet)  # an empty datagram too
        self.sock.send(probe)
        got: bytes | None = None
        while True:
            data = self.sock.recv(65535)
            if data[:2] == probe[:2] and data[12 : 12 + 13] == probe[12 : 12 + 13]:
                return got
            assert got is None, "two replies to one packet"
            got = data

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(scope="module")
def udp_client(live: ServerThread) -> Iterator[UDPClient]:
    client = UDPClient(live.port)
    yield client
    client.close()


@hsettings(max_examples=500 * SCALE, deadline=None, suppress_health_check=list(HealthCheck))
@given(cases)
def test_udp_loopback(live: ServerThread, udp_client: UDPClient, case: Case) -> None:
    TRIED["udp"] += 1
    check(case, udp_client.exchange(case.packet), udp=True)


# -- the real server, TCP --------------------------------------------------


def frame(message: bytes) -> bytes:
    return struct.pack(">H", len(message)) + message


@hsettings(max_examples=300 * SCALE, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(cases, min_size=1, max_size=6), st.data())
def test_tcp_loopback_framing(live: ServerThread, batch: list[Case], data: st.DataObject) -> None:
    """Several messages on one connection, the byte stream cut at random
    points, sometimes ending in an unfinished message: every complete message
    is answered in order (nothing here is forwarded), then the connection
    closes cleanly."""
    TRIED["tcp"] += len(batch)
    stream = b"".join(frame(c.packet) for c in batch)
    unfinished = data.draw(st.booleans())
    if unfinished:
        stream += data.draw(st.sampled_from([b"\x00", b"\x01\x00", b"\x00\x20abc"]))
    cuts = sorted(data.draw(st.lists(st.integers(0, len(stream)), max_size=5)))
    pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)], strict=True)]
    expected = [c for c in batch if c.expect]
    with socket.create_connection(("127.0.0.1", live.port), timeout=3) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for piece in pieces:
            if piece:
                sock.sendall(piece)
        sock.shutdown(socket.SHUT_WR)
        replies = read_frames(sock, len(expected))
        assert len(replies) == len(expected)
        for case, reply in zip(expected, replies, strict=True):
            check(case, reply, udp=False)
        assert sock.recv(10) == b"", "the server closes after the client's EOF"


def test_server_still_answers_and_counted_no_errors(live: ServerThread) -> None:
    stats = live.stats()
    assert stats["Errors"] == 0
    client = UDPClient(live.port)
    try:
        reply = client.exchange(
            header(7, 0x01, 0, 1, 0, 0, 0)
            + name_wire([b"leader", b"mesos"])
            + struct.pack(">HH", 1, 1)
        )
    finally:
        client.close()
    assert reply is not None and dns.message.from_wire(reply).answer
    assert _HANDLER.stats.errors == 0
