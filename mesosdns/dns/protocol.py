"""The DNS server: UDP and TCP listeners around the compiled answer table.

UDP hot path: a reader callback on the non-blocking socket drains up to
`UDP_BATCH` datagrams per wake-up and answers each synchronously: the bytes
after the ID and flags (counts and question) are the table key, so one dict
look-up both checks the query's shape and finds the answer; the client's ID
and flags are spliced onto the prepacked reply, which is sent. No task
per packet, no parsing library, no per-query logging. (A plain
``asyncio.DatagramProtocol`` costs more per packet than the whole answer:
measured on this machine, a trivial reply reaches about 90k queries/s through
uvloop's datagram transport and about 115k through a reader callback.)
Everything else (EDNS, mixed case, negatives, forwarding, malformed packets)
takes the general path, which parses the query fully.

TCP: 2-byte length framing, pipelining (replies may come out of order when
some are forwarded), an idle timeout and a cap on connections.

Before the first `set_table` nothing is answered from records: every query
gets SERVFAIL (the original does not listen before its first load; SERVFAIL
makes clients move to their next server at once, like a refused port does,
instead of waiting for a timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import socket
import struct
import time
from typing import Any, TypeVar

from mesosdns.dns import wire
from mesosdns.dns.answers import (
    HOT_PREFIX,
    OUTCOME_FAILED,
    OUTCOME_NXDOMAIN,
    AnswerTable,
    Entry,
    zone_wires,
)
from mesosdns.dns.forward import Forwarder, ForwardStats, Upstream, refused, servfail
from mesosdns.dns.hotview import HotView
from mesosdns.dns.opzones import Answer, CompiledZones, lookup, render  # operator zones
from mesosdns.dns.resolver import badvers, resolve
from mesosdns.dns.rrl import (
    ERROR_KEY,
    OK,
    ONE,
    SECOND_MASK,
    SLIP,
    RateLimiter,
    RRLTable,
    response_key,
    slipped,
    zone_key,
)
from mesosdns.dns.settings import DNSSettings
from mesosdns.dns.signing import RequestTSIG
from mesosdns.dns.tcp import TCPConnection
from mesosdns.dns.xfr import XFR_TYPES, Transfers
from mesosdns.dns.zone_router import ZoneRouter, ZoneStats  # operator zones

log = logging.getLogger(__name__)

T = TypeVar("T")

UDP_BATCH = 256
_PLAIN_COUNTS = HOT_PREFIX
_IN = b"\x00\x01"
_EMPTY_HOT = HotView()
_SPECIAL = frozenset((wire.TYPE_SRV, wire.TYPE_SOA, wire.TYPE_NS, wire.TYPE_ANY))
_COUNTS_EMPTY = b"\x00\x01\x00\x00\x00\x00\x00\x00"
_COUNTS_OPT = b"\x00\x01\x00\x00\x00\x00\x00\x01"
_COUNTS_AUTH = b"\x00\x01\x00\x00\x00\x01\x00\x00"
_COUNTS_AUTH_OPT = b"\x00\x01\x00\x00\x00\x01\x00\x01"
_COUNTS_ANS = b"\x00\x01\x00\x01\x00\x00\x00\x00"
_COUNTS_ANS_OPT = b"\x00\x01\x00\x01\x00\x00\x00\x01"
_COUNTS_ANS2 = b"\x00\x01\x00\x02\x00\x00\x00\x00"
_COUNTS_ANS2_OPT = b"\x00\x01\x00\x02\x00\x00\x00\x01"


class DNSStats:
    """The original's counters (``logging.go``), as plain ints.

    Mesos (in-domain) requests / success / NXDOMAIN / failed, and the
    non-Mesos ones in ``forward`` (requests, forwarded, success, failed,
    NXDOMAIN). NODATA counts as NXDOMAIN and SOA/NS/SRV misses as success,
    as in the original. ``dropped`` and ``errors`` are ours: packets not
    answered (responses, short packets, send failures) and internal errors.
    ``rrl_dropped`` and ``rrl_slipped``: UDP responses that rate limiting
    (``rrl``) dropped, and sent truncated (or, errors, as they are) instead;
    shown only when ``rrl`` is on.
    """

    __slots__ = (
        "dropped",
        "errors",
        "forward",
        "mesos_failed",
        "mesos_nxdomain",
        "mesos_requests",
        "mesos_success",
        "recursion_refused",
        "rrl",
        "rrl_dropped",
        "rrl_slipped",
        "tcp_connections",
    )

    def __init__(self, rrl: bool = False) -> None:
        self.mesos_requests = 0
        self.mesos_success = 0
        self.mesos_nxdomain = 0
        self.mesos_failed = 0
        self.forward = ForwardStats()
        self.dropped = 0
        self.errors = 0
        self.tcp_connections = 0
        self.recursion_refused = 0  # allowRecursion
        self.rrl = rrl  # response rate limiting on: its counters are shown
        self.rrl_dropped = 0
        self.rrl_slipped = 0

    def as_dict(self) -> dict[str, int]:
        f = self.forward
        counters = {
            "MesosRequests": self.mesos_requests,
            "MesosSuccess": self.mesos_success,
            "MesosNXDomain": self.mesos_nxdomain,
            "MesosFailed": self.mesos_failed,
            "NonMesosRequests": f.requests,
            "NonMesosForwarded": f.forwarded,
            "NonMesosSuccess": f.success,
            "NonMesosFailed": f.failed,
            "NonMesosNXDomain": f.nxdomain,
            "Dropped": self.dropped,
            "Errors": self.errors,
            "TCPConnections": self.tcp_connections,
            "RecursionRefused": self.recursion_refused,
        }
        if self.rrl:
            counters["RRLDropped"] = self.rrl_dropped
            counters["RRLSlipped"] = self.rrl_slipped
        return counters


class _RateLimitedLog:
    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self.last = 0.0
        self.suppressed = 0

    def exception(self, msg: str) -> None:
        now = time.monotonic()
        if now - self.last < self.interval:
            self.suppressed += 1
            return
        self.last = now
        log.exception("%s (%d similar suppressed)", msg, self.suppressed)
        self.suppressed = 0


def _sockets(family: int, reuse_port: bool = False) -> tuple[socket.socket, socket.socket]:
    """Non-blocking UDP and TCP sockets; IPv6 ones take IPv4 too (as Go's do).
    With ``reuse_port``, several processes bind the same port and the kernel
    spreads the queries over them (SO_REUSEPORT)."""
    udp = socket.socket(family, socket.SOCK_DGRAM)
    tcp = socket.socket(family, socket.SOCK_STREAM)
    for sock in (udp, tcp):
        sock.setblocking(False)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    with contextlib.suppress(OSError):
        udp.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    return udp, tcp


# -- allowRecursion ------------------------------------------------


class RecursionACL:
    """``allowRecursion``: may a client have names outside the domain forwarded?

    The networks are parsed once into (address, mask) integers; a verdict is
    cached per source address (a cache miss costs about 1 us, a hit a dict
    look-up). The cache is cleared when it reaches ``max_cached`` entries, so
    a flood of spoofed sources costs CPU, never memory. IPv4-mapped IPv6
    sources (``::ffff:a.b.c.d``, from a dual-stack socket) are checked as IPv4.
    A source that is not an IP address (a UNIX socket, None) is a stranger.
    """

    def __init__(self, cidrs: tuple[str, ...], max_cached: int = 4096) -> None:
        nets = [ipaddress.ip_network(c, strict=False) for c in cidrs]
        self.v4 = tuple((int(n.network_address), int(n.netmask)) for n in nets if n.version == 4)
        self.v6 = tuple((int(n.network_address), int(n.netmask)) for n in nets if n.version == 6)
        # everyone: no check at all on the forwarding path
        self.everyone = any(n.prefixlen == 0 for n in nets if n.version == 4) and any(
            n.prefixlen == 0 for n in nets if n.version == 6
        )
        self.max_cached = max(1, max_cached)
        self.cache: dict[object, bool] = {}

    def allows(self, addr: Any) -> bool:
        """Is the client at ``addr`` (a socket address tuple) allowed?"""
        if self.everyone:
            return True
        host = addr[0] if isinstance(addr, tuple) and addr else None
        cache = self.cache
        ok = cache.get(host)
        if ok is None:
            ok = self.check(host)
            if len(cache) >= self.max_cached:
                cache.clear()
            cache[host] = ok
        return ok

    def check(self, host: object) -> bool:
        """The uncached verdict for a host address in text form."""
        if not isinstance(host, str):
            return False
        text = host.partition("%")[0]  # a scoped IPv6 address: fe80::1%eth0
        try:
            if ":" in text:
                value = int.from_bytes(socket.inet_pton(socket.AF_INET6, text), "big")
                if value >> 32 == 0xFFFF:  # IPv4-mapped
                    return any(value & 0xFFFFFFFF & m == n for n, m in self.v4)
                return any(value & m == n for n, m in self.v6)
            value = int.from_bytes(socket.inet_pton(socket.AF_INET, text), "big")
        except (OSError, ValueError):
            return False
        return any(value & m == n for n, m in self.v4)


# -- end allowRecursion ----------------------------------------------------


class DNSServer:
    """Serves the current `AnswerTable` over UDP and TCP and forwards the rest."""

    def __init__(
        self,
        settings: DNSSettings,
        *,
        rng: random.Random | None = None,
        forwarder: Forwarder | None = None,
        reuse_port: bool = False,
        rrl_table: RRLTable | None = None,
    ) -> None:
        self.settings = settings
        self.reuse_port = reuse_port
        self.stats = DNSStats(rrl=settings.rrl is not None)
        self._rng = rng or random.Random()
        self._forwarder = forwarder or Forwarder(settings, self.stats.forward)
        self._forwarder.stats = self.stats.forward
        # operator zones: consulted before forwarding, see set_zones
        self._opzones = ZoneRouter(settings, self._forwarder, self.stats.forward, self._udp_send)
        self._table: AnswerTable | None = None
        self._hot: HotView = _EMPTY_HOT
        self._ctr = self._rng.randrange(1 << 16)
        self._domain = wire.text_to_wire(settings.domain.strip(".").lower() + ".") or b"\x00"
        # forwarded zones at or below the domain (or an alias) take precedence
        apexes = [self._domain]
        for alias in settings.aliases:
            apex = wire.text_to_wire(alias.strip(".").lower() + ".")
            if apex is not None:
                apexes.append(apex)
        self._inner_zones = (
            [z for z in zone_wires(settings) if any(wire.in_zone(z, a) for a in apexes)]
            if settings.external_on
            else []
        )
        self._udp: socket.socket | None = None
        self._tcp: asyncio.AbstractServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conns: set[TCPConnection] = set()
        self._errlog = _RateLimitedLog()
        self._log_queries = settings.log_queries
        # maxUDPPayload: the cap on every UDP reply and the size our OPT
        # offers, one record per DO bit (the config keeps it in 512..65535;
        # clamped here for settings built by hand)
        cap = min(max(settings.max_udp_payload, wire.MIN_UDP_PAYLOAD), wire.MAX_MESSAGE)
        self._udp_cap = cap
        self._opts = (wire.opt_rr(False, cap), wire.opt_rr(True, cap))
        self.recursion = RecursionACL(settings.allow_recursion)  # allowRecursion
        # zoneTransfer: AXFR / IXFR and TSIG; None (the default): neither,
        # and AXFR, IXFR and signed questions are answered as any other
        self.transfers: Transfers | None = None
        # with transfers on, the apex's SOA and NS questions get their record
        # in the answer, as a secondary's refresh query expects (the original
        # puts it in authority, which BIND reads as NODATA)
        self._apex_answers = settings.transfer is not None
        if settings.transfer is not None:
            self.transfers = Transfers(
                settings.transfer, RecursionACL(settings.transfer.allow).allows
            )
        # rrl: the accounts (in ``rrl_table``, shared by the serving
        # processes, or a table of this server's own)
        self._rrl = (
            RateLimiter(settings.rrl, rrl_table) if settings.rrl is not None else None
        )
        self._rrl_now = 0
        # the limiter's own accounts and prefix cache (cleared in place)
        self._rrl_local: dict[object, dict[bytes, int]] = (
            {} if self._rrl is None else self._rrl.local
        )
        self._rrl_prefixes: dict[object, int] = (
            {} if self._rrl is None else self._rrl.prefixes
        )
        self._rrl_domain_key = zone_key(self._domain)
        if self._rrl is not None:
            self._opzones.answer_send = self._rrl_send
        self.udp_port = 0
        self.tcp_port = 0

    # -- lifecycle ------------------------------------------------------

    @property
    def ready(self) -> bool:
        return self._table is not None

    @property
    def table(self) -> AnswerTable | None:
        return self._table

    @property
    def port(self) -> int:
        return self.udp_port

    def set_table(self, table: AnswerTable) -> None:
        """Publish a new table (one reference swap; queries see old or new)."""
        self._table = table
        self._hot = _EMPTY_HOT if self.settings.log_queries else table.hot
        if self._rrl is not None:
            self._rrl.set_hot(table.hot)

    async def start(self) -> None:
        """Bind UDP and TCP on (listen_host, port); port 0 picks a free one
        (the same for both)."""
        self._loop = asyncio.get_running_loop()
        host = self.settings.listen_host
        family = await self._family(host)
        for attempt in range(20):
            udp, tcp = _sockets(family, self.reuse_port)
            try:
                udp.bind((host, self.settings.port))
                port = int(udp.getsockname()[1])
                tcp.bind((host, port))
                tcp.listen(1024)
            except OSError:
                udp.close()
                tcp.close()
                if self.settings.port != 0 or attempt == 19:
                    raise
                continue
            break
        self._tcp = await self._loop.create_server(lambda: TCPConnection(self), sock=tcp)
        self._udp = udp
        self.udp_port = self.tcp_port = port
        self._loop.add_reader(
            udp.fileno(), self._on_udp if self._rrl is None else self._on_udp_rrl
        )
        await self._forwarder.start([(host, port)])
        self._opzones.start([(host, port)])  # operator zones
        log.info("DNS listening on %s port %d (UDP and TCP)", host, port)

    @staticmethod
    async def _family(host: str) -> int:
        try:
            return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
        except ValueError:
            infos = await asyncio.get_running_loop().getaddrinfo(host, None)
            return int(infos[0][0])

    async def stop(self) -> None:
        """Close the listeners, the connections and the upstream sockets."""
        if self._udp is not None:
            if self._loop is not None:
                self._loop.remove_reader(self._udp.fileno())
            self._udp.close()
            self._udp = None
        if self._tcp is not None:
            self._tcp.close()
            for conn in list(self._conns):
                conn.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._tcp.wait_closed(), 2.0)
            self._tcp = None
        self._forwarder.close()
        self._opzones.close()  # operator zones
        if self.transfers is not None:
            await self.transfers.close()

    # -- UDP ------------------------------------------------------------

    def _on_udp(self) -> None:
        """Drain the UDP socket; answer table hits inline (the hot path)."""
        sock = self._udp
        if sock is None:
            return
        recv = sock.recvfrom
        send = sock.sendto
        hot = self._hot
        ctr = self._ctr
        ok = 0
        try:
            for _ in range(UDP_BATCH):
                try:
                    data, addr = recv(65535)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    continue
                key = data[4:]
                v = hot.get(key)
                if v is not None and data[2] < 0x80:
                    # v = (flag table, slot, tail, tail, ...): pick a flag
                    # pair by the query's opcode/RD/CD, and the next ordering
                    ctr += 1
                    fi = (data[2] & 0x79) | ((data[3] & 0x10) << 3)
                    send(data[:2] + v[0][fi] + v[2 + ctr % (len(v) - 2)], addr)
                    ok += 1
                    continue
                self._udp_other(data, addr, key)
        except OSError:
            self.stats.dropped += 1
        except Exception:
            self.stats.errors += 1
            self._errlog.exception("error answering a UDP query")
        finally:
            self._ctr = ctr
            stats = self.stats
            stats.mesos_requests += ok
            stats.mesos_success += ok

    def _on_udp_rrl(self) -> None:
        """`_on_udp` with response rate limiting (``rrl``): the same loop, each
        reply debited to its account first (see `mesosdns.dns.rrl`); a
        limited one is dropped or sent truncated. The clock is read once
        per batch (accounts count whole seconds). A hot-path reply of a
        client whose prefix has counters in this second costs one index
        into them while its count is below the limiter's ``limit``."""
        sock = self._udp
        if sock is None:
            return
        recv = sock.recvfrom
        send = sock.sendto
        hot = self._hot
        ctr = self._ctr
        rl = self._rrl
        assert rl is not None
        take = rl.take
        self._rrl_now = now = int(rl.clock())
        rl.second(now)
        arrays, limit = rl.arrays, rl.limit
        stats = self.stats
        ok = 0
        try:
            for _ in range(UDP_BATCH):
                try:
                    data, addr = recv(65535)
                except (BlockingIOError, InterruptedError):
                    break
                except OSError:
                    continue
                key = data[4:]
                v = hot.get(key)
                if v is not None and data[2] < 0x80:
                    ctr += 1
                    ok += 1
                    flags = v[0][(data[2] & 0x79) | ((data[3] & 0x10) << 3)]
                    # take's common case inline: the account's count in
                    # this second, by the reply's slot (see rrl.RateLimiter)
                    counts = arrays.get(addr[0])
                    if counts is not None:
                        slot = v[1]
                        c = counts[slot]
                        if c < limit:
                            counts[slot] = c + 1
                            send(data[:2] + flags + v[2 + ctr % (len(v) - 2)], addr)
                            continue
                    verdict = take(addr, key, now)
                    if verdict == OK:
                        send(data[:2] + flags + v[2 + ctr % (len(v) - 2)], addr)
                    elif verdict == SLIP:
                        stats.rrl_slipped += 1
                        send(data[:2] + bytes((flags[0] | 0x02, flags[1])) + key, addr)
                    else:
                        stats.rrl_dropped += 1
                    continue
                self._udp_other_rrl(data, addr, key)
        except OSError:
            self.stats.dropped += 1
        except Exception:
            self.stats.errors += 1
            self._errlog.exception("error answering a UDP query")
        finally:
            self._ctr = ctr
            stats.mesos_requests += ok
            stats.mesos_success += ok

    def _udp_other_rrl(self, data: bytes, addr: Any, key: bytes) -> None:
        """`_udp_other`, the reply through the rate limiter."""
        try:
            table = self._table
            e = None if table is None else table.entries.get(key)
            v = None if e is None else self._warm(data, key, e)
            if v is not None:
                rl = self._rrl
                assert rl is not None
                rl.second(self._rrl_now)  # the counters cover the new slot
                fi = (data[2] & 0x79) | ((data[3] & 0x10) << 3)
                reply = data[:2] + v[0][fi] + v[2 + self._ctr % (len(v) - 2)]
                self.stats.mesos_requests += 1
                self.stats.mesos_success += 1
                self._rrl_send(reply, addr, key)
                return
            reply = self._fast_negative(data, addr)
            if reply is None:
                reply = self._respond(data, addr, None)
            elif (
                reply
                and reply[3] & 0x0F == 3  # wire.RCODE_NXDOMAIN
                and self._table is not None
                and reply.endswith(self._table.soa_rr)
            ):
                # the negative fast path's NXDOMAIN in the cluster domain:
                # RateLimiter.take's "credit left in this second" case,
                # inline (a call would cost about 120 ns per NXDOMAIN)
                mine = self._rrl_local.get(self._rrl_prefixes.get(addr[0]))
                if mine is not None:
                    key = self._rrl_domain_key
                    state = mine.get(key)
                    if (state is not None and state >= ONE
                            and state & SECOND_MASK == self._rrl_now & SECOND_MASK):
                        mine[key] = state - ONE
                        self._udp_send(reply, addr)
                        return
                self._rrl_send(reply, addr, self._rrl_domain_key)
                return
            if not reply:
                return
            if data[4:12] == _PLAIN_COUNTS and len(reply) > 12:
                # a plain query: its question is the reply's (the key
                # without walking the reply; see rrl.response_key)
                rcode = reply[3] & 0x0F
                if rcode == wire.RCODE_NOERROR:
                    key = _PLAIN_COUNTS + data[12:-4].lower() + data[-4:]
                elif rcode == wire.RCODE_NXDOMAIN:
                    lname = data[12:-4].lower()
                    if lname.endswith(self._domain):
                        key = self._rrl_domain_key
                    else:
                        zone = self._rrl_zone(lname)
                        key = zone_key(zone) if zone is not None else response_key(reply)
                else:
                    key = ERROR_KEY
                self._rrl_send(reply, addr, key)
            else:
                self._rrl_send(reply, addr)
        except Exception:
            self.stats.errors += 1
            self._errlog.exception("error answering a UDP query")

    def _rrl_send(self, reply: bytes, addr: Any, key: bytes | None = None) -> None:
        """Send a UDP reply the server made, as its account allows (``key``:
        the reply's account, when the caller knows it)."""
        rl = self._rrl
        if rl is None:
            self._udp_send(reply, addr)
            return
        if key is None:
            key = response_key(reply, self._rrl_zone)
        verdict = rl.take(addr, key, self._rrl_now)
        if verdict == OK:
            self._udp_send(reply, addr)
        elif verdict == SLIP:
            self.stats.rrl_slipped += 1
            # an error cannot be truncated: it is sent as it is ("leaked")
            self._udp_send(reply if key is ERROR_KEY else slipped(reply), addr)
        else:
            self.stats.rrl_dropped += 1

    def _rrl_zone(self, lname: bytes) -> bytes | None:
        """The zone of an in-domain name (the domain or an alias), for the
        NXDOMAIN account; None elsewhere (operator zones: their SOA owner)."""
        if wire.in_zone(lname, self._domain):
            return self._domain
        table = self._table
        if table is not None:
            for view in table.aliases:
                if wire.in_zone(lname, view.domain):
                    return view.domain
        return None

    def _udp_send(self, reply: bytes, addr: Any) -> None:
        sock = self._udp
        if sock is None:
            return
        try:
            sock.sendto(reply, addr)
        except OSError:
            self.stats.dropped += 1

    def _udp_other(self, data: bytes, addr: Any, key: bytes) -> None:
        """A UDP query the hot view did not answer (``key``: its bytes after
        the ID and flags, the hot view's key)."""
        try:
            # the entries looked up here, not in _warm: most misses have none
            table = self._table
            e = None if table is None else table.entries.get(key)
            v = None if e is None else self._warm(data, key, e)
            if v is not None:
                # the name's first plain query since its entry changed: the
                # hot loop's reply, from the replies just made
                fi = (data[2] & 0x79) | ((data[3] & 0x10) << 3)
                self._udp_send(data[:2] + v[0][fi] + v[2 + self._ctr % (len(v) - 2)], addr)
                self.stats.mesos_requests += 1
                self.stats.mesos_success += 1
                return
            reply = self._fast_negative(data, addr)
            if reply is None:
                reply = self._respond(data, addr, None)
            if reply:
                self._udp_send(reply, addr)
        except Exception:
            self.stats.errors += 1
            self._errlog.exception("error answering a UDP query")

    def _warm(self, data: bytes, key: bytes, e: Entry) -> tuple[Any, ...] | None:
        """A query the hot view missed whose ``key`` has an entry ``e`` in the
        table: if the hot loop answers it, the entry's replies, now in the
        hot view (see `HotView.fill`)."""
        table = self._table
        if table is None or data[2] >= 0x80 or self._hot is not table.hot:
            return None  # not a query, or queries are logged (no hot path)
        return table.hot.fill(key, e)

    def _fast_negative(self, data: bytes, addr: Any) -> bytes | None:
        """Negative answers and forwards for plain queries, without a full parse.

        A plain query: QR clear, one question of class IN, nothing else.
        Returns the reply, ``b""`` when handled without a reply to send now
        (forwarded), or None to take the general path.
        """
        table = self._table
        if table is None or data[4:12] != _PLAIN_COUNTS or data[2] >= 0x80 or self._log_queries:
            return None
        # walk the name (rest = name, type, class), noting whether the
        # domain's labels start on a label boundary
        rest = data[12:]
        n = len(rest)
        k = n - 4 - len(self._domain)
        boundary = False
        p = 0
        while p < n:
            length = rest[p]
            if p == k:
                boundary = True
            if length == 0:
                break
            if length > 63:
                return None
            p += length + 1
        p += 1
        if p + 4 != n or rest[-2:] != _IN or p > 255:  # over 255 bytes: FORMERR
            return None
        name = rest[:p]
        lname = name.lower()
        qtype = (rest[p] << 8) | rest[p + 1]
        if lname != name and _PLAIN_COUNTS + lname + rest[p:] in table.entries:
            return None  # a question in another case: the general path renders it
        if self.transfers is not None and qtype in XFR_TYPES:
            return None  # zoneTransfer: the general path answers it
        if qtype == wire.TYPE_DS:
            zone = None
        elif boundary and lname.endswith(self._domain) and not self._inner_zones:
            zone = table
        elif table.aliases or self._inner_zones:
            zone = self._zone(table, lname)
        else:
            zone = None
        if zone is None:
            # allowRecursion
            if not self.recursion.everyone and self._refuse_recursion(table, lname, qtype, addr):
                return self._refused(data, rest)
            if self._opzones.active and (qtype != wire.TYPE_DS or self._zone(table, lname) is None):
                # operator zones
                self._opzones.udp(data, rest, lname, qtype, addr, wire.MIN_UDP_PAYLOAD, b"")
                return b""
            self._forwarder.forward_udp(
                data,
                rest,
                addr,
                self._udp_send,
                wire.MIN_UDP_PAYLOAD,
                self._forwarder.route(lname, qtype),
            )
            return b""
        if b"*" in lname or zone.exotic or lname in zone.slow_names:
            return None
        return self._negative(zone, data, rest, lname, qtype, b"")

    def _negative(
        self,
        table: AnswerTable,
        data: bytes,
        question: bytes,
        lname: bytes,
        qtype: int,
        opt: bytes,
    ) -> bytes | None:
        """Reply for an in-domain question with no table entry (None: slow path).

        ``table`` is the zone's: the cluster domain's table or an alias's zone
        view. ``data`` starts with the query's ID and flags.
        """
        stats = self.stats
        stats.mesos_requests += 1
        fi = (data[2] & 0x79) | ((data[3] & 0x10) << 3)
        if qtype == wire.TYPE_A or qtype == wire.TYPE_AAAA or qtype not in _SPECIAL:
            stats.mesos_nxdomain += 1
            flags = table.fl_nodata if lname in table.names else table.fl_nxdomain
            counts = _COUNTS_AUTH_OPT if opt else _COUNTS_AUTH
            return data[0:2] + flags[fi] + counts + question + table.soa_rr + opt
        if qtype == wire.TYPE_ANY:
            stats.mesos_requests -= 1
            return None
        stats.mesos_success += 1
        if (table.alias_zone or (self._apex_answers and lname == table.domain)) and (
            qtype != wire.TYPE_SRV
        ):
            return self._soa_ns(table, data, question, lname, qtype, opt)
        if qtype == wire.TYPE_SRV:
            counts = _COUNTS_OPT if opt else _COUNTS_EMPTY
            return data[0:2] + table.fl_nodata[fi] + counts + question + opt
        counts = _COUNTS_AUTH_OPT if opt else _COUNTS_AUTH
        auth = table.soa_rr if qtype == wire.TYPE_SOA else table.ns_rr
        return data[0:2] + table.fl_nodata[fi] + counts + question + auth + opt

    @staticmethod
    def _apex(zone: AnswerTable, lname: bytes) -> bool:
        """Is ``lname`` (``.*`` removed, as before any look-up) the zone's apex?"""
        if b"*" in lname:
            lname = wire.text_to_wire(wire.clean_wild(wire.wire_to_text(lname))) or b""
        return lname == zone.domain

    def _bare_apex(self, zone: AnswerTable, lname: bytes) -> bool:
        """The apex of an alias zone, with no A, AAAA or SRV record of its own."""
        if not self._apex(zone, lname):
            return False
        name = wire.wire_to_text(zone.domain)
        rs = zone.rs
        return not (rs.a.get(name) or rs.aaaa.get(name) or rs.srv.get(name))

    def _soa_ns(
        self, zone: AnswerTable, data: bytes, question: bytes, lname: bytes, qtype: int, opt: bytes
    ) -> bytes:
        """A SOA, NS (or, at a bare apex, ANY) question in an alias zone
        (counted by the caller).

        Not the original's shape (the record in authority, owned by the
        question, for any name): a forwarding BIND rejects an NS record in
        authority as a "non-improving referral" (FORMERR, then SERVFAIL to
        its client). So, as an authoritative server does: at the alias
        apex the records are the answer; below it, NODATA with the SOA.
        """
        fi = (data[2] & 0x79) | ((data[3] & 0x10) << 3)
        if not self._apex(zone, lname):
            counts = _COUNTS_AUTH_OPT if opt else _COUNTS_AUTH
            return data[0:2] + zone.fl_nodata[fi] + counts + question + zone.soa_rr + opt
        if qtype == wire.TYPE_ANY:
            counts = _COUNTS_ANS2_OPT if opt else _COUNTS_ANS2
            rrs = zone.soa_rr + zone.ns_rr
        else:
            counts = _COUNTS_ANS_OPT if opt else _COUNTS_ANS
            rrs = zone.soa_rr if qtype == wire.TYPE_SOA else zone.ns_rr
        return data[0:2] + zone.fl_nodata[fi] + counts + question + rrs + opt

    def _zone(self, table: AnswerTable, lname: bytes) -> AnswerTable | None:
        """The zone answering ``lname``: ``table`` (the cluster domain), an
        alias's zone view, or None (not ours: forward it)."""
        if self._inner_zones and any(wire.in_zone(lname, z) for z in self._inner_zones):
            return None
        if wire.in_zone(lname, self._domain):
            return table
        for view in table.aliases:
            if wire.in_zone(lname, view.domain):
                return view
        return None

    # -- allowRecursion ---------------------------------------

    def _refuse_recursion(self, table: AnswerTable, lname: bytes, qtype: int, addr: Any) -> bool:
        """Must a question headed out of the domain be REFUSED to ``addr``?

        Clients inside ``allowRecursion`` never are. For the others, a
        question is refused whenever it would be sent to an upstream: the
        ``resolvers``, ``zoneResolvers`` or an operator zone's forwarders.
        Operator zones still answer them from their own data (the first
        verdict of the look-up is an answer); a question that a zone would
        forward, even one that could continue to a later zone, is refused.
        """
        if self.recursion.allows(addr):
            return False
        zones = self._opzones.zones
        if (
            self._opzones.active
            and zones is not None
            and (qtype != wire.TYPE_DS or self._zone(table, lname) is None)
        ):
            host = addr[0] if isinstance(addr, tuple) and addr else None
            if isinstance(lookup(zones, lname, qtype, host), Answer):
                return False
        return True

    def _refused(self, data: bytes, question: bytes) -> bytes:
        """REFUSED for a stranger's question outside the domain (counted)."""
        stats = self.stats
        stats.forward.requests += 1
        stats.recursion_refused += 1
        return refused(data, question)

    # -- the general path (UDP and TCP) ---------------------------------

    def _respond(self, data: bytes, addr: Any, conn: TCPConnection | None) -> bytes | None:
        """Reply to any message; None when there is none (yet).

        ``conn`` is the TCP connection, None for UDP (then ``addr`` is the
        client's address).
        """
        query = wire.parse_query(data)
        if query is wire.ParseStatus.DROP:
            self.stats.dropped += 1
            return None
        if query is wire.ParseStatus.FORMERR:
            return wire.formerr_reply(data)
        if query is wire.ParseStatus.NOQUESTION:
            return wire.error_reply(data, wire.RCODE_SERVFAIL, None)
        assert isinstance(query, wire.Query)
        if self.transfers is not None and (query.tsig_at != -1 or query.qtype in XFR_TYPES):
            return self._transfer_or_signed(data, query, addr, conn)
        if self.settings.log_queries:
            log.debug(
                "query %s type %d class %d from %s over %s",
                wire.wire_to_text(query.qname),
                query.qtype,
                query.qclass,
                addr,
                "tcp" if conn else "udp",
            )
        table = self._table
        if table is None:
            return servfail(data, query.question)
        lname = query.qname.lower()
        zone = None if query.qtype == wire.TYPE_DS else self._zone(table, lname)
        if zone is None:
            # allowRecursion
            # (a connection without a peer, such as a test double, is a stranger)
            client = addr if conn is None else getattr(conn, "peer", None)
            if not self.recursion.everyone and self._refuse_recursion(
                table, lname, query.qtype, client
            ):
                return self._refused(data, query.question)
            if self._opzones.active and (
                query.qtype != wire.TYPE_DS or self._zone(table, lname) is None
            ):
                self._zones_query(data, query, lname, addr, conn)  # operator zones
                return None
            ups = self._forwarder.route(lname, query.qtype)
            if conn is None:
                limit = wire.udp_limit(query.edns_size, self._udp_cap)
                self._forwarder.forward_udp(data, query.question, addr, self._udp_send, limit, ups)
            else:
                conn.pending += 1
                self._forwarder.forward_tcp(data, query.question, conn.send_forwarded, ups)
            return None
        return self._answer(table, zone, query, lname, conn is None)

    # -- zoneTransfer: AXFR, IXFR, TSIG ---------------------------------

    def _transfer_or_signed(
        self, data: bytes, query: wire.Query, addr: Any, conn: TCPConnection | None
    ) -> bytes | None:
        """A transfer request, or a question signed with TSIG (transfers on)."""
        transfers = self.transfers
        assert transfers is not None
        if query.tsig_at == -2:  # a TSIG record that is not the last one
            return wire.formerr_reply(data)
        t: RequestTSIG | None = None
        if query.tsig_at >= 0:
            got = transfers.verify(data, query)
            if isinstance(got, bytes):
                return got
            t = got
        if query.qtype in XFR_TYPES:
            source = addr if conn is None else conn.peer
            return transfers.request(self._table, data, query, t, source, conn,
                                     self._opzones.zones)
        return transfers.sign(self._signed_answer(data, query, addr, conn, transfers.room), t)

    def _signed_answer(
        self, data: bytes, query: wire.Query, addr: Any, conn: TCPConnection | None, room: int
    ) -> bytes:
        """The reply to a verified signed question, before it is signed: as
        any in-domain answer, leaving ``room`` for the TSIG record in a UDP
        reply; an operator zone's answer from its own data (a secondary's
        SOA query before it transfers the zone); other questions outside the
        cluster's zones are REFUSED (a signed reply from an upstream or an
        operator zone's forwarder is not ours to sign)."""
        table = self._table
        if table is None:
            return servfail(data, query.question)
        lname = query.qname.lower()
        zone = None if query.qtype == wire.TYPE_DS else self._zone(table, lname)
        if zone is None:
            zones = self._opzones.zones
            if self._opzones.active and zones is not None and self._zone(table, lname) is None:
                client = addr if conn is None else conn.peer
                host = client[0] if isinstance(client, tuple) and client else None
                found = lookup(zones, lname, query.qtype, host)
                if isinstance(found, Answer):
                    self._opzones.stats.answered += 1
                    limit = (wire.udp_limit(query.edns_size, self._udp_cap) if conn is None
                             else wire.MAX_MESSAGE) - room
                    opt = self._opts[query.edns_do] if query.edns_size >= 0 else b""
                    return render(found, data[0:2], data[2], data[3], query.question, limit,
                                  opt, ra=zones.ra, set_tc=zones.set_tc)
            return refused(data, query.question)
        return self._answer(table, zone, query, lname, conn is None, room)

    def _answer(
        self,
        table: AnswerTable,
        zone: AnswerTable,
        query: wire.Query,
        lname: bytes,
        udp: bool,
        room: int = 0,
    ) -> bytes:
        """The reply to an in-domain query; ``zone`` is the question's zone
        (``table`` or an alias's zone view), ``table`` holds every entry.
        ``room``: octets a UDP reply must leave free (for a TSIG record)."""
        stats = self.stats
        edns = query.edns_size >= 0
        if edns and query.edns_version != 0:
            stats.mesos_requests += 1
            return badvers(table, query, self._udp_cap)
        opt = self._opts[query.edns_do] if edns else b""
        limit = wire.udp_limit(query.edns_size, self._udp_cap) - room if udp else wire.MAX_MESSAGE
        qtype = query.qtype
        e = table.entries.get(_PLAIN_COUNTS + lname + struct.pack(">H", qtype) + _IN)
        if e is not None:
            self._ctr += 1
            stats.mesos_requests += 1
            stats.mesos_success += 1
            return table.render(
                e, self._ctr, query.ident, query.b2, query.b3, query.question, limit, opt
            )
        if (
            zone.alias_zone
            and (
                qtype == wire.TYPE_SOA
                or qtype == wire.TYPE_NS
                or (qtype == wire.TYPE_ANY and self._bare_apex(zone, lname))
            )
        ) or (
            self._apex_answers
            and lname == zone.domain
            and (qtype == wire.TYPE_SOA or qtype == wire.TYPE_NS)
        ):
            stats.mesos_requests += 1
            stats.mesos_success += 1
            ident = query.ident + bytes((query.b2, query.b3))
            return self._soa_ns(zone, ident, query.question, lname, qtype, opt)
        if b"*" not in lname and lname not in zone.slow_names and not zone.exotic:
            reply = self._negative(
                zone,
                query.ident + bytes((query.b2, query.b3)),
                query.question,
                lname,
                qtype,
                opt,
            )
            if reply is not None:
                return reply
        reply, outcome = resolve(zone, query, limit, opt, self._rng)
        stats.mesos_requests += 1
        if outcome & OUTCOME_NXDOMAIN:
            stats.mesos_nxdomain += 1
        else:
            stats.mesos_success += 1
        if outcome & OUTCOME_FAILED:
            stats.mesos_failed += 1
        return reply

    # -- operator zones ---------------------------------------

    def set_zones(self, zones: CompiledZones | None) -> None:
        """Publish a refresh's operator zones (one reference swap, on the loop).

        Call it with the table of the same refresh; None turns zones off.
        """
        self._opzones.set_zones(zones)

    @property
    def zones(self) -> CompiledZones | None:
        return self._opzones.zones

    @property
    def zone_stats(self) -> ZoneStats:
        return self._opzones.stats

    def _zones_query(
        self, data: bytes, query: wire.Query, lname: bytes, addr: Any, conn: TCPConnection | None
    ) -> None:
        """A parsed question outside the domain, to the operator zones."""
        opt = self._opts[query.edns_do] if query.edns_size >= 0 else b""
        if conn is None:
            limit = wire.udp_limit(query.edns_size, self._udp_cap)
            self._opzones.udp(data, query.question, lname, query.qtype, addr, limit, opt)
            return
        conn.pending += 1
        peer = conn.transport.get_extra_info("peername") if conn.transport is not None else None
        self._opzones.tcp(
            data, query.question, lname, query.qtype, peer, opt, conn.send_forwarded
        )

    # -- TCP ------------------------------------------------------------

    def _tcp_message(self, data: bytes, conn: TCPConnection) -> None:
        try:
            reply = self._respond(data, None, conn)
        except Exception:
            self.stats.errors += 1
            self._errlog.exception("error answering a TCP query")
            reply = wire.error_reply(data, wire.RCODE_SERVFAIL, None) if len(data) >= 12 else None
        if reply:
            conn.send(reply)


__all__ = ["DNSServer", "DNSStats", "Upstream"]
