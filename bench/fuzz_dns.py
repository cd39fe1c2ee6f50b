"""Coverage-guided fuzz of the DNS packet path with atheris (libFuzzer).

Each input is handed to the server's UDP reader (the hot path and the
general path behind it) and to its TCP message handler, in process, with the
record set of the tests (``tests/dns_support.py``). A finding is any
exception, an internal error counted by the server, or a reply that breaks
the rules the property-based tests check (``tests/test_fuzz_dns.py``): no
reply to a response or a short packet, QR set, the query's ID, at most one
reply, at most 512 bytes over UDP without EDNS, readable by dnspython.

    pip install atheris
    python bench/fuzz_dns.py -max_total_time=300          # 5 minutes
    python bench/fuzz_dns.py -runs=1000000 CORPUS_DIR     # keep a corpus

libFuzzer prints its statistics as it goes (``#N`` is the number of inputs
run) and ``Done N runs in T second(s)`` at the end; a finding stops it with
the traceback and the input saved as ``crash-*``.
"""

from __future__ import annotations

import random
import sys
from pathlib import Path
from typing import Any

import atheris

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

with atheris.instrument_imports(include=["mesosdns"]):
    from mesosdns.dns import wire
    from mesosdns.dns.protocol import DNSServer

import dns.message  # noqa: E402
from dns_support import compile_table, settings  # noqa: E402

SETTINGS = settings()
SERVER = DNSServer(SETTINGS, rng=random.Random(1))
SERVER.set_table(compile_table(SETTINGS))


class FakeSocket:
    def __init__(self, packet: bytes) -> None:
        self.packets = [packet]
        self.sent: list[bytes] = []

    def recvfrom(self, size: int) -> tuple[bytes, tuple[str, int]]:
        if not self.packets:
            raise BlockingIOError
        return self.packets.pop(), ("127.0.0.1", 5353)

    def sendto(self, data: bytes, addr: Any) -> int:
        self.sent.append(data)
        return len(data)


class FakeConn:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.pending = 0
        self.peer = ("127.0.0.1", 5353)

    def send(self, reply: bytes) -> None:
        self.sent.append(reply)

    def send_forwarded(self, reply: bytes) -> None:
        self.pending -= 1
        self.sent.append(reply)


def check(packet: bytes, replies: list[bytes], udp: bool) -> None:
    assert len(replies) <= 1, "more than one reply"
    if len(packet) < wire.HEADER_LEN or packet[2] & 0x80:
        assert not replies, "a reply to a short packet or a response"
        return
    assert replies, "no reply"
    reply = replies[0]
    assert reply[:2] == packet[:2], "the ID is not echoed"
    assert reply[2] & 0x80, "QR is not set"
    query = wire.parse_query(packet)
    if udp and not (isinstance(query, wire.Query) and query.edns_size >= 0):
        assert len(reply) <= wire.MIN_UDP_PAYLOAD, "over 512 bytes without EDNS"
    dns.message.from_wire(reply[:2] + bytes([reply[2] & 0x87]) + reply[3:])


def test_one_input(data: bytes) -> None:
    errors = SERVER.stats.errors
    sock = FakeSocket(data)
    SERVER._udp = sock  # type: ignore[assignment]
    try:
        SERVER._on_udp()
    finally:
        SERVER._udp = None
    check(data, sock.sent, udp=True)
    conn = FakeConn()
    SERVER._tcp_message(data, conn)  # type: ignore[arg-type]
    check(data, conn.sent, udp=False)
    assert SERVER.stats.errors == errors, "the server counted an internal error"


def seeds(directory: Path) -> None:
    """Write a few valid queries as a starting corpus (when the directory is empty)."""
    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.iterdir()):
        return
    names = ["nginx.marathon.mesos.", "_big._tcp.marathon.mesos.", "x.mesos.", "a.example."]
    for i, (name, rdtype, edns) in enumerate(
        (n, t, e) for n in names for t in ("A", "SRV", "ANY", "SOA") for e in (False, 0)
    ):
        q = dns.message.make_query(name, rdtype, use_edns=edns)
        (directory / f"seed-{i}").write_bytes(q.to_wire())


if __name__ == "__main__":
    corpus = [a for a in sys.argv[1:] if not a.startswith("-")]
    if corpus:
        seeds(Path(corpus[0]))
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()
