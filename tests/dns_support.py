"""Helpers for the DNS tests: the server in a background event loop, a small
upstream DNS server for forwarding, a hand-made record set, and query helpers.

The server runs in its own thread with its own event loop so that tests can
use blocking clients (dnspython's ``dns.query``, ``dig``) as a user would.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
import time
from collections.abc import Callable, Coroutine
from types import MappingProxyType
from typing import Any, TypeVar, cast

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.rrset

from mesosdns.dns.answers import AnswerTable, compile_answers
from mesosdns.dns.protocol import DNSServer
from mesosdns.dns.settings import DNSSettings
from mesosdns.records.model import RecordSet, SRVTarget

T = TypeVar("T")

SERIAL = 1_700_000_000


def ips(prefix: str, n: int) -> tuple[str, ...]:
    return tuple(f"{prefix}.{i // 250}.{i % 250 + 1}" for i in range(n))


def record_set() -> RecordSet:
    """A record set with every kind of name the tests need."""
    big_targets = tuple(SRVTarget(f"big-{i:02d}-s1.marathon.mesos.", 31000 + i) for i in range(40))
    a: dict[str, tuple[str, ...]] = {
        "nginx.marathon.mesos.": ("10.0.1.1", "10.0.1.2", "10.0.1.3"),
        "nginx-aaaaa-s1.marathon.mesos.": ("10.0.1.1",),
        "nginx-bbbbb-s2.marathon.mesos.": ("10.0.1.2",),
        "nginx-ccccc-s3.marathon.mesos.": ("10.0.1.3",),
        "dual.marathon.mesos.": ("10.0.2.1",),
        "leader.mesos.": ("10.0.0.11",),
        "master.mesos.": ("10.0.0.11",),
        "master0.mesos.": ("10.0.0.11",),
        "ns1.mesos.": ("10.0.0.1",),
        "slave.mesos.": ("10.0.3.1", "10.0.3.2"),
        "bad.mesos.": ("agent-host.example",),  # an unresolved agent host name
        "half.mesos.": ("10.0.4.1", "agent-host.example"),
        "Upper.marathon.mesos.": ("10.0.5.1",),  # raw DiscoveryInfo name
        ".marathon.mesos.": ("10.0.5.2",),  # empty task label
        "many.marathon.mesos.": ips("10.9", 40),
        "outside.example.": ("10.0.6.1",),
    }
    for i, t in enumerate(big_targets):
        a[t.host] = (f"10.8.0.{i + 1}",)
    return RecordSet(
        domain="mesos",
        a=MappingProxyType(a),
        aaaa=MappingProxyType(
            {
                "dual.marathon.mesos.": ("fd00::2:1",),
                "v6only.marathon.mesos.": ("fd00::3:1", "fd00::3:2"),
            }
        ),
        srv=MappingProxyType(
            {
                "_nginx._tcp.marathon.mesos.": (
                    SRVTarget("nginx-aaaaa-s1.marathon.mesos.", 31001),
                    SRVTarget("nginx-bbbbb-s2.marathon.mesos.", 31002),
                    SRVTarget("nginx-ccccc-s3.marathon.mesos.", 31003),
                ),
                "_dual._tcp.marathon.mesos.": (SRVTarget("dual.marathon.mesos.", 8080),),
                "_nohost._udp.marathon.mesos.": (SRVTarget("gone.marathon.mesos.", 53),),
                "_big._tcp.marathon.mesos.": big_targets,
                "_leader._tcp.mesos.": (SRVTarget("leader.mesos.", 5050),),
            }
        ),
    )


def compile_table(
    settings: DNSSettings, rs: RecordSet | None = None, serial: int = SERIAL
) -> AnswerTable:
    return compile_answers(rs or record_set(), settings, serial, random.Random(42))


class LoopThread:
    """An asyncio event loop in a daemon thread."""

    def __init__(
        self, loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop
    ) -> None:
        self.loop = loop_factory()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 10.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def call(self, fn: Callable[[], T], timeout: float = 10.0) -> T:
        async def wrapper() -> T:
            return fn()

        return self.run(wrapper(), timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


class ServerThread:
    """A DNSServer on 127.0.0.1 in its own loop thread."""

    def __init__(
        self,
        settings: DNSSettings,
        table: AnswerTable | None = None,
        *,
        ready: bool = True,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] = asyncio.new_event_loop,
    ) -> None:
        self.settings = settings
        self.lt = LoopThread(loop_factory)
        self.server = DNSServer(settings, rng=random.Random(7))
        self.lt.run(self.server.start())
        self.port = self.server.port
        if ready:
            self.set_table(table or compile_table(settings))

    def set_table(self, table: AnswerTable) -> None:
        self.lt.call(lambda: self.server.set_table(table))

    def stats(self) -> dict[str, int]:
        return self.lt.call(self.server.stats.as_dict)

    def close(self) -> None:
        try:
            self.lt.run(self.server.stop())
        finally:
            self.lt.close()


class FakeSocket:
    """Hands the server's UDP reader the given packets; keeps what it sends."""

    def __init__(self, packets: list[bytes]) -> None:
        self.packets = list(packets)
        self.sent: list[bytes] = []

    def recvfrom(self, size: int) -> tuple[bytes, tuple[str, int]]:
        if not self.packets:
            raise BlockingIOError
        return self.packets.pop(0), ("127.0.0.1", 5353)

    def sendto(self, data: bytes, addr: Any) -> int:
        self.sent.append(data)
        return len(data)

    def fileno(self) -> int:
        return -1


def fill_hot(table: AnswerTable) -> dict[bytes, tuple[Any, ...]]:
    """Every entry's hot-path replies, as the first plain query of each name
    makes them (`HotView.fill`); the table's hot view, filled."""
    for key, e in table.entries.items():
        assert table.hot.fill(key, e) is not None, key
    return table.hot


def settings(**kw: Any) -> DNSSettings:
    base: dict[str, Any] = {
        "listen_host": "127.0.0.1",
        "port": 0,
        "resolvers": (),
        "timeout": 1.0,
        "tcp_idle_timeout": 2.0,
    }
    base.update(kw)
    return DNSSettings(**base)


def query(
    port: int,
    name: str,
    rdtype: str = "A",
    *,
    edns: int | bool = False,
    payload: int = 1232,
    tcp: bool = False,
    rd: bool = True,
    timeout: float = 2.0,
) -> dns.message.Message:
    """One query with dnspython; EDNS off unless ``edns`` (then ``payload``)."""
    q = dns.message.make_query(
        name, rdtype, use_edns=0 if edns is not False else False, payload=payload
    )
    if not rd:
        q.flags &= ~dns.flags.RD
    if tcp:
        return dns.query.tcp(q, "127.0.0.1", port=port, timeout=timeout)
    return dns.query.udp(q, "127.0.0.1", port=port, timeout=timeout)


def raw_udp(port: int, packet: bytes, timeout: float = 1.0) -> bytes | None:
    """Send raw bytes over UDP; the reply, or None when none came in time."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(timeout)
        s.sendto(packet, ("127.0.0.1", port))
        try:
            data, _ = s.recvfrom(65535)
        except TimeoutError:
            return None
        return data


def raw_tcp(port: int, packets: list[bytes], expect: int, timeout: float = 2.0) -> list[bytes]:
    """Send length-framed packets in one write; read ``expect`` replies."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(b"".join(struct.pack(">H", len(p)) + p for p in packets))
        return read_frames(s, expect)


def read_frames(sock: socket.socket, count: int) -> list[bytes]:
    """Read up to ``count`` length-framed DNS messages (fewer if the peer closes)."""
    out: list[bytes] = []
    buf = b""
    while len(out) < count:
        chunk = sock.recv(65535)
        if not chunk:
            break
        buf += chunk
        while len(buf) >= 2 and len(buf) >= 2 + struct.unpack(">H", buf[:2])[0]:
            size = struct.unpack(">H", buf[:2])[0]
            out.append(buf[2 : 2 + size])
            buf = buf[2 + size :]
    return out


def section_texts(section: list[dns.rrset.RRset]) -> list[str]:
    """Every record as 'owner ttl class type rdata', owner case kept."""
    out = []
    for rrset in section:
        for rd in rrset:
            out.append(
                f"{rrset.name.to_text()} {rrset.ttl} {dns.rdataclass.to_text(rrset.rdclass)} "
                f"{dns.rdatatype.to_text(rrset.rdtype)} {rd.to_text()}"
            )
    return out


# -- a small upstream DNS server for the forwarding tests ------------------


class Upstream:
    """An authoritative-looking upstream on 127.0.0.1 (UDP and TCP, one port).

    Behaviour by the first label of the question name:
    ``ok*``: A 192.0.2.<tag>; ``only<N>``: as ``ok`` on the upstream tagged N,
    silence elsewhere; ``nx``: NXDOMAIN; ``fail``: SERVFAIL; ``slow``:
    never answers (also ``slow*``); ``big``: 60 A records (over UDP without EDNS: truncated,
    TC, no records), a reply of about 1,000 bytes; ``huge``: the same with 100 A records,
    about 1,650 bytes (over 1232); ``wrongid``: answers with another ID; ``wrongq``: answers
    another question; ``echo``: answers with the received query's flags.
    """

    def __init__(self, lt: LoopThread, tag: int = 1, port: int = 0) -> None:
        self.lt = lt
        self.tag = tag
        self.queries: list[tuple[str, bytes]] = []
        self.udp: asyncio.DatagramTransport | None = None
        self.tcp: asyncio.AbstractServer | None = None
        self.port = lt.run(self._start(port))

    async def _start(self, port: int) -> int:
        loop = asyncio.get_running_loop()
        outer = self

        class UDP(asyncio.DatagramProtocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                outer.udp = cast(asyncio.DatagramTransport, transport)

            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                outer.queries.append(("udp", data))
                reply = outer.answer(data, udp=True)
                if reply is not None and outer.udp is not None:
                    outer.udp.sendto(reply, addr)

        for attempt in range(20):
            await loop.create_datagram_endpoint(UDP, local_addr=("127.0.0.1", port))
            assert self.udp is not None
            bound = int(self.udp.get_extra_info("sockname")[1])
            try:
                self.tcp = await asyncio.start_server(self._handle, "127.0.0.1", bound)
            except OSError:  # the TCP port is taken: try another pair
                self.udp.close()
                if port or attempt == 19:
                    raise
                continue
            return bound
        raise AssertionError("unreachable")

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readexactly(2)
                data = await reader.readexactly(struct.unpack(">H", head)[0])
                self.queries.append(("tcp", data))
                reply = self.answer(data, udp=False)
                if reply is not None:
                    writer.write(struct.pack(">H", len(reply)) + reply)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def answer(self, data: bytes, udp: bool) -> bytes | None:
        q = dns.message.from_wire(data)
        name = q.question[0].name
        first = name.labels[0].decode().lower()
        r = dns.message.make_response(q)
        r.flags |= dns.flags.AA
        if first.startswith("only"):
            if first != f"only{self.tag}":
                return None
            first = "ok"
        if first.startswith("ok") or first == "echo":
            r.answer.append(dns.rrset.from_text(name, 300, "IN", "A", f"192.0.2.{self.tag}"))
            if first == "echo":
                r.flags = q.flags | dns.flags.QR
        elif first == "nx":
            r.set_rcode(dns.rcode.NXDOMAIN)
        elif first == "fail":
            r.set_rcode(dns.rcode.SERVFAIL)
        elif first.startswith("slow"):
            return None
        elif first in ("big", "huge"):
            if udp and q.edns < 0:
                r.flags |= dns.flags.TC
            else:
                n = 60 if first == "big" else 100
                r.answer.append(
                    dns.rrset.from_text_list(
                        name, 300, "IN", "A", [f"198.51.100.{i}" for i in range(1, n + 1)]
                    )
                )
        elif first == "wrongid":
            r.id = (q.id + 1) & 0xFFFF
        elif first == "wrongq":
            other = dns.message.make_query("other.example.", "A")
            other.id = q.id
            r = dns.message.make_response(other)
        return r.to_wire(max_size=65535)

    def close(self) -> None:
        async def stop() -> None:
            if self.udp is not None:
                self.udp.close()
            if self.tcp is not None:
                self.tcp.close()
                await self.tcp.wait_closed()

        self.lt.run(stop())


def wait_for(pred: Callable[[], bool], timeout: float = 2.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return pred()
