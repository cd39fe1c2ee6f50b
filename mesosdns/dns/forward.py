"""Forwarding of questions outside the cluster domain to upstream resolvers.

As the original: the resolvers of the longest matching ``zoneResolvers`` zone,
else ``resolvers``, are tried in order, each with the ``timeout``; the first
reply is relayed as it is (only the ID is restored), whatever its RCODE; when
every resolver failed the client gets SERVFAIL, with no resolver at all
REFUSED. UDP questions go upstream over UDP, TCP ones over TCP, and a
truncated UDP reply is passed on with TC so that the client retries over TCP.

Differences, on purpose:

- UDP forwarding runs on callbacks, without a task per query: a query goes
  out on one of a few connected sockets per upstream under a fresh random ID,
  and the reply is accepted only from that upstream (the connected socket),
  with that ID and the same question (case-insensitively), QR set. Timeouts
  are swept by one timer, in order, as they all have the same length.
- The number of forwards in flight is bounded; over the bound the answer is
  SERVFAIL at once.
- A resolver that is this server itself (its listen address and port) is
  dropped from the lists at start, so a query can never loop.
- An upstream reply larger than the client can take over UDP (512 bytes, or
  its EDNS size capped at ``maxUDPPayload``, the caller's ``limit``) becomes
  an empty reply with TC set (the original answered SERVFAIL).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ipaddress
import logging
import random
import socket
import struct
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from mesosdns.dns import wire
from mesosdns.dns.settings import DNSSettings, is_ip, parse_resolver

log = logging.getLogger(__name__)

SOCKETS_PER_UPSTREAM = 4
_RECV_BATCH = 64

SendFn = Callable[[bytes, object], None]


class ForwardStats:
    """The original's non-Mesos counters (``logging.go``), as plain ints.

    ``requests`` counts questions routed to forwarding; ``forwarded`` every
    exchange with an upstream (one per resolver tried), ``success`` / ``failed``
    how those exchanges ended; ``nxdomain`` relayed replies with no answer.
    """

    __slots__ = ("failed", "forwarded", "nxdomain", "requests", "success")

    def __init__(self) -> None:
        self.requests = 0
        self.forwarded = 0
        self.success = 0
        self.failed = 0
        self.nxdomain = 0


@dataclass(frozen=True, slots=True)
class Upstream:
    host: str
    port: int

    @property
    def family(self) -> int:
        return socket.AF_INET6 if ":" in self.host else socket.AF_INET

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class _Pending:
    __slots__ = ("cid", "client", "data", "index", "limit", "question", "raw", "send", "ups")

    def __init__(
        self,
        data: bytes,
        cid: bytes,
        question: bytes,
        client: object,
        send: SendFn,
        limit: int,
        ups: tuple[Upstream, ...],
    ) -> None:
        self.data = data  # the query as received
        self.cid = cid
        self.question = question  # lower-cased question section
        self.client = client
        self.send = send
        self.limit = limit
        self.ups = ups
        self.index = 0
        self.raw = False  # `Forwarder.ask_udp`: b"" instead of SERVFAIL on failure


class _UpSocket:
    """A connected UDP socket to one upstream, with its queries in flight."""

    __slots__ = ("pending", "sock", "upstream")

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self.sock = socket.socket(upstream.family, socket.SOCK_DGRAM)
        self.sock.setblocking(False)
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
        self.sock.connect((upstream.host, upstream.port))
        self.pending: dict[int, _Pending] = {}


def servfail(data: bytes, question: bytes) -> bytes:
    return wire.error_reply(data, wire.RCODE_SERVFAIL, question)


def refused(data: bytes, question: bytes) -> bytes:
    return wire.error_reply(data, wire.RCODE_REFUSED, question)


def _question_matches(reply: bytes, question: bytes) -> bool:
    """Does ``reply`` (QR set) answer the lower-cased question section?"""
    if len(reply) < wire.HEADER_LEN or not reply[2] & 0x80:
        return False
    qd = (reply[4] << 8) | reply[5]
    if qd == 1:
        end = wire.HEADER_LEN + len(question)
        return reply[wire.HEADER_LEN : end].lower() == question
    # error replies may come without the question (as dnspython accepts)
    return qd == 0 and reply[3] & 0x0F in (
        wire.RCODE_FORMERR,
        wire.RCODE_SERVFAIL,
        wire.RCODE_NOTIMP,
        wire.RCODE_REFUSED,
    )


def _fit(reply: bytes, question: bytes, limit: int) -> bytes:
    """``reply`` as is if it fits ``limit``, else header + question with TC."""
    if len(reply) <= limit:
        return reply
    qd = 1 if (reply[4] << 8 | reply[5]) else 0
    q = reply[wire.HEADER_LEN : wire.HEADER_LEN + len(question)] if qd else b""
    return reply[0:2] + bytes((reply[2] | 0x02, reply[3])) + struct.pack(">HHHH", qd, 0, 0, 0) + q


class Forwarder:
    """Forwards questions outside the domain; owns the upstream sockets."""

    def __init__(self, settings: DNSSettings, stats: ForwardStats | None = None) -> None:
        self.settings = settings
        self.stats = stats or ForwardStats()
        self.timeout = settings.timeout if settings.timeout > 0 else 5.0
        self.max_inflight = max(1, settings.max_inflight_forwards)
        self.inflight = 0
        self._default: tuple[Upstream, ...] = ()
        self._zones: dict[bytes, tuple[Upstream, ...]] = {}
        self._socks: dict[Upstream, list[_UpSocket]] = {}
        self._queue: collections.deque[tuple[float, _Pending, _UpSocket, int]] = collections.deque()
        self._timer: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        # IDs and sockets of upstream queries are what an off-path spoofer
        # has to guess: draw them from the system's CSPRNG
        self._rng = random.SystemRandom()

    # -- set-up ---------------------------------------------------------

    async def start(self, own: Iterable[tuple[str, int]] = ()) -> None:
        """Resolve the resolver lists, drop this server itself, open sockets.

        ``own`` lists the (host, port) pairs this server listens on; a
        wildcard host stands for every local address.
        """
        self._loop = asyncio.get_running_loop()
        own_list = list(own)
        if not self.settings.external_on:
            return
        self._default = await self._upstreams(self.settings.resolvers, own_list)
        for zone, resolvers in self.settings.zone_resolvers.items():
            zwire = wire.text_to_wire(zone.strip(".").lower() + ".")
            if zwire is None:
                log.warning("zone %r is not a valid name; ignored", zone)
                continue
            self._zones[zwire] = await self._upstreams(resolvers, own_list)
        for ups in (self._default, *self._zones.values()):
            for up in ups:
                if up not in self._socks:
                    self._open(up)

    def start_now(self, own: Iterable[tuple[str, int]] = ()) -> None:
        """`start` for resolvers that are IP literals, synchronously (on the loop).

        For the forwarders of operator zones, opened when a zone set is
        published. ``zone_resolvers`` are not used; names are skipped.
        """
        self._loop = asyncio.get_running_loop()
        own_list = list(own)
        out: list[Upstream] = []
        for text in self.settings.resolvers:
            try:
                host, port = parse_resolver(text)
                up = Upstream(str(ipaddress.ip_address(host)), port)
            except ValueError as exc:
                log.warning("%s; resolver ignored", exc)
                continue
            if _is_self(up, own_list):
                log.warning("resolver %s is this server itself; ignored", up)
                continue
            if up not in out:
                out.append(up)
        self._default = tuple(out)
        for up in self._default:
            if up not in self._socks:
                self._open(up)

    def _open(self, up: Upstream) -> None:
        assert self._loop is not None
        socks = []
        for _ in range(SOCKETS_PER_UPSTREAM):
            try:
                us = _UpSocket(up)
            except OSError as exc:
                log.warning("cannot open a socket to resolver %s: %s", up, exc)
                continue
            self._loop.add_reader(us.sock.fileno(), self._on_readable, us)
            socks.append(us)
        self._socks[up] = socks

    async def _upstreams(
        self, resolvers: Iterable[str], own: list[tuple[str, int]]
    ) -> tuple[Upstream, ...]:
        out: list[Upstream] = []
        for text in resolvers:
            try:
                host, port = parse_resolver(text)
            except ValueError as exc:
                log.warning("%s; resolver ignored", exc)
                continue
            hosts = [host] if is_ip(host) else await self._lookup(host, port)
            for h in hosts:
                up = Upstream(str(ipaddress.ip_address(h)), port)
                if _is_self(up, own):
                    log.warning("resolver %s is this server itself; ignored", up)
                    continue
                if up not in out:
                    out.append(up)
        return tuple(out)

    async def _lookup(self, host: str, port: int) -> list[str]:
        assert self._loop is not None
        try:
            infos = await self._loop.getaddrinfo(host, port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            log.warning("cannot resolve resolver %s: %s; ignored", host, exc)
            return []
        return [str(info[4][0]) for info in infos]

    def close(self) -> None:
        for socks in self._socks.values():
            for us in socks:
                if self._loop is not None:
                    with contextlib.suppress(Exception):
                        self._loop.remove_reader(us.sock.fileno())
                us.sock.close()
                for p in us.pending.values():
                    self._finish_failed(p)
                us.pending.clear()
        self._socks.clear()
        self._queue.clear()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        for task in list(self._tasks):
            task.cancel()

    # -- routing --------------------------------------------------------

    @property
    def upstreams(self) -> tuple[Upstream, ...]:
        return self._default

    def zones(self) -> Mapping[bytes, tuple[Upstream, ...]]:
        return self._zones

    def route(self, lname: bytes, qtype: int) -> tuple[Upstream, ...]:
        """Resolvers for a lower-cased wire name: longest zone, else default.

        A DS question goes to the default resolvers, as the original's
        library hands DS to the parent zone's handler, which is the root's.
        """
        if self._zones and qtype != wire.TYPE_DS:
            p = 0
            while True:
                ups = self._zones.get(lname[p:])
                if ups is not None:
                    return ups
                length = lname[p]
                if length == 0:
                    break
                p += length + 1
        return self._default

    # -- UDP ------------------------------------------------------------

    def forward_udp(
        self,
        data: bytes,
        question: bytes,
        client: object,
        send: SendFn,
        limit: int,
        ups: tuple[Upstream, ...],
    ) -> None:
        """Forward a UDP query; ``send(reply, client)`` is called exactly once.

        ``question`` is the query's question section (name, type, class).
        """
        stats = self.stats
        stats.requests += 1
        if not ups:
            send(refused(data, question), client)
            return
        if self.inflight >= self.max_inflight:
            stats.failed += 1
            send(servfail(data, question), client)
            return
        self.inflight += 1
        p = _Pending(data, data[0:2], question.lower(), client, send, limit, ups)
        self._attempt(p)

    # -- asking without answering (operator zones) ----------------------

    def ask_udp(
        self,
        data: bytes,
        question: bytes,
        client: object,
        send: SendFn,
        limit: int,
        ups: tuple[Upstream, ...],
    ) -> None:
        """As `forward_udp`, but ``send(b"", client)`` when no upstream replied.

        For the forwarders of operator zones, whose caller decides what a
        failure means (the next zone, or SERVFAIL). Not counted in
        ``requests`` (the caller counts the question once).
        """
        if not ups or self.inflight >= self.max_inflight:
            if ups:
                self.stats.failed += 1
            send(b"", client)
            return
        self.inflight += 1
        p = _Pending(data, data[0:2], question.lower(), client, send, limit, ups)
        p.raw = True
        self._attempt(p)

    def ask_tcp(
        self,
        data: bytes,
        question: bytes,
        reply: Callable[[bytes], None],
        ups: tuple[Upstream, ...],
    ) -> None:
        """As `forward_tcp`, but ``reply(b"")`` when no upstream replied."""
        if not ups or self.inflight >= self.max_inflight:
            if ups:
                self.stats.failed += 1
            reply(b"")
            return
        self.inflight += 1
        task = asyncio.ensure_future(self._tcp(data, question, reply, ups, raw=True))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _attempt(self, p: _Pending) -> None:
        stats = self.stats
        data = p.data
        rng = self._rng
        while p.index < len(p.ups):
            socks = self._socks.get(p.ups[p.index])
            if not socks:
                p.index += 1
                continue
            bits = rng.getrandbits(24)  # one draw: 8 bits of socket, 16 of ID
            us = socks[(bits >> 16) % len(socks)]
            pending = us.pending
            qid = bits & 0xFFFF
            while qid in pending:
                qid = rng.getrandbits(16)
            stats.forwarded += 1
            try:
                us.sock.send(struct.pack(">H", qid) + data[2:])
            except OSError:
                stats.failed += 1
                p.index += 1
                # The error may be an ICMP unreachable caused by an earlier
                # query on this socket, which then waits for no error to wake
                # it: everything in flight here fails over now.
                self._fail_socket(us)
                continue
            pending[qid] = p
            self._remember(p, us, qid)
            return
        self._finish_failed(p)

    def _remember(self, p: _Pending, us: _UpSocket, qid: int) -> None:
        assert self._loop is not None
        deadline = self._loop.time() + self.timeout
        self._queue.append((deadline, p, us, qid))
        if self._timer is None:
            # at the queue's head, not this deadline: called from _expire (the
            # next resolver), older entries must not wait a timeout more
            self._timer = self._loop.call_at(self._queue[0][0], self._expire)

    def _expire(self) -> None:
        assert self._loop is not None
        self._timer = None
        now = self._loop.time()
        queue = self._queue
        while queue and queue[0][0] <= now:
            _, p, us, qid = queue.popleft()
            if us.pending.get(qid) is not p:
                continue  # answered already
            del us.pending[qid]
            self.stats.failed += 1
            p.index += 1
            self._attempt(p)
        if queue and self._timer is None:
            self._timer = self._loop.call_at(queue[0][0], self._expire)

    def _finish_failed(self, p: _Pending) -> None:
        self.inflight -= 1
        query = p.data
        reply = (
            b""
            if p.raw
            else servfail(query, query[wire.HEADER_LEN : wire.HEADER_LEN + len(p.question)])
        )
        try:
            p.send(reply, p.client)
        except Exception:  # a client that went away must not stop the loop
            log.debug("cannot send SERVFAIL for a forward", exc_info=True)

    def _on_readable(self, us: _UpSocket) -> None:
        recv = us.sock.recv
        pending = us.pending
        stats = self.stats
        for _ in range(_RECV_BATCH):
            try:
                reply = recv(65535)
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                # ICMP unreachable on the connected socket: the upstream is
                # down; everything in flight on it moves to the next resolver
                self._fail_socket(us)
                return
            if len(reply) < wire.HEADER_LEN:
                continue
            qid = (reply[0] << 8) | reply[1]
            p = pending.get(qid)
            if p is None or not _question_matches(reply, p.question):
                continue
            del pending[qid]
            self.inflight -= 1
            stats.success += 1
            if reply[6] == 0 and reply[7] == 0:
                stats.nxdomain += 1
            out = _fit(p.cid + reply[2:], p.question, p.limit)
            try:
                p.send(out, p.client)
            except Exception:  # a client that went away must not stop the loop
                log.debug("cannot send a forwarded reply", exc_info=True)

    def _fail_socket(self, us: _UpSocket) -> None:
        items = list(us.pending.values())
        us.pending.clear()
        for p in items:
            self.stats.failed += 1
            p.index += 1
            self._attempt(p)

    # -- TCP ------------------------------------------------------------

    def forward_tcp(
        self,
        data: bytes,
        question: bytes,
        reply: Callable[[bytes], None],
        ups: tuple[Upstream, ...],
    ) -> None:
        """Forward a TCP query in a task; ``reply(bytes)`` is called once."""
        stats = self.stats
        stats.requests += 1
        if not ups:
            reply(refused(data, question))
            return
        if self.inflight >= self.max_inflight:
            stats.failed += 1
            reply(servfail(data, question))
            return
        self.inflight += 1
        task = asyncio.ensure_future(self._tcp(data, question, reply, ups))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _tcp(
        self,
        data: bytes,
        question: bytes,
        reply: Callable[[bytes], None],
        ups: tuple[Upstream, ...],
        raw: bool = False,
    ) -> None:
        stats = self.stats
        lower_q = question.lower()
        try:
            for up in ups:
                stats.forwarded += 1
                try:
                    got = await asyncio.wait_for(self._tcp_exchange(up, data), self.timeout)
                except (TimeoutError, OSError, asyncio.IncompleteReadError, ValueError):
                    stats.failed += 1
                    continue
                if got[0:2] != data[0:2] or not _question_matches(got, lower_q):
                    stats.failed += 1
                    continue
                stats.success += 1
                if got[6] == 0 and got[7] == 0:
                    stats.nxdomain += 1
                reply(got)
                return
            reply(b"" if raw else servfail(data, question))
        finally:
            self.inflight -= 1

    @staticmethod
    async def _tcp_exchange(up: Upstream, data: bytes) -> bytes:
        reader, writer = await asyncio.open_connection(up.host, up.port)
        try:
            writer.write(struct.pack(">H", len(data)) + data)
            await writer.drain()
            head = await reader.readexactly(2)
            return await reader.readexactly((head[0] << 8) | head[1])
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


def _is_self(up: Upstream, own: list[tuple[str, int]]) -> bool:
    """Is ``up`` one of the addresses this server listens on?"""
    for host, port in own:
        if port != up.port:
            continue
        try:
            listen = ipaddress.ip_address(host)
        except ValueError:
            continue
        target = ipaddress.ip_address(up.host)
        if listen == target:
            return True
        if listen.is_unspecified and _is_local(up.host):
            return True
    return False


def _is_local(host: str) -> bool:
    """Is ``host`` an address of this machine? (Can a socket bind to it?)"""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            s.bind((host, 0))
    except OSError:
        return False
    return True
