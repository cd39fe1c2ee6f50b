"""Serving operator zones: the look-up order driven over the network.

The DNS server hands every question outside the cluster domain to
`ZoneRouter.udp` / `ZoneRouter.tcp` when zones are published. The router runs
`match.lookup`; an authoritative answer is rendered and sent at once; a
`Forward` asks the zone's forwarders (one `Forwarder` per distinct list,
opened when a zone set is published) and, when they give no answer, goes on
with the next zone if the zone continues, else relays their negative reply
(SERVFAIL when none came); a name no zone claims goes to the default
forwarder (``zoneResolvers`` / ``resolvers``), exactly as without zones.

A forwarder "answers" when its reply has RCODE NOERROR and records in the
answer section (or is truncated, so that the client retries over TCP);
NXDOMAIN, NODATA, SERVFAIL, REFUSED and silence are no answer.

The compiled zones are swapped in one assignment (`set_zones`), like the
answer table; a question in flight finishes with the zones it started with.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Iterable
from types import MappingProxyType
from typing import Any

from mesosdns.dns import wire
from mesosdns.dns.forward import Forwarder, ForwardStats, SendFn, servfail
from mesosdns.dns.opzones import Answer, CompiledZone, CompiledZones, lookup, render
from mesosdns.dns.settings import DNSSettings

__all__ = ["ZoneRouter", "ZoneStats"]

log = logging.getLogger(__name__)

MAX_LOGGED_PROBLEMS = 20
Addrs = tuple[tuple[str, int], ...]


class ZoneStats:
    """Counters of questions the zones saw (beside the forwarder's own)."""

    __slots__ = (
        "answered",
        "continued",
        "failed",
        "forward_answered",
        "forwarded",
        "nxdomain",
        "unclaimed",
    )

    def __init__(self) -> None:
        self.answered = 0  # authoritative answers from zone data (NXDOMAIN included)
        self.nxdomain = 0  # of which NXDOMAIN
        self.forwarded = 0  # questions handed to a zone's forwarders
        self.forward_answered = 0  # ... that came back with an answer
        self.continued = 0  # no answer from the forwarders: on to the next zone
        self.failed = 0  # no answer and the zone stops: the negative reply relayed
        self.unclaimed = 0  # no zone claimed the name: default forwarding

    def as_dict(self) -> dict[str, int]:
        return {
            "ZoneAnswered": self.answered,
            "ZoneNXDomain": self.nxdomain,
            "ZoneForwarded": self.forwarded,
            "ZoneForwardAnswered": self.forward_answered,
            "ZoneContinued": self.continued,
            "ZoneFailed": self.failed,
            "ZoneUnclaimed": self.unclaimed,
        }


def answered(reply: bytes) -> bool:
    """Does an upstream reply count as an answer (see the module doc)?"""
    if len(reply) < wire.HEADER_LEN or reply[3] & 0x0F != wire.RCODE_NOERROR:
        return False
    return bool(reply[2] & 0x02) or (reply[6] | reply[7]) != 0


class _Query:
    """One question on its way through the zones."""

    __slots__ = (
        "addr",
        "data",
        "host",
        "index",
        "limit",
        "lname",
        "opt",
        "qtype",
        "question",
        "reply",
        "zone",
        "zones",
    )

    def __init__(
        self,
        data: bytes,
        question: bytes,
        lname: bytes,
        qtype: int,
        host: str | None,
        limit: int,
        opt: bytes,
        zones: CompiledZones,
    ) -> None:
        self.data = data
        self.question = question
        self.lname = lname
        self.qtype = qtype
        self.host = host
        # what a reply must fit, relayed or our own: over UDP the client's
        # EDNS size capped at maxUDPPayload (512 without EDNS)
        self.limit = limit
        self.opt = opt
        self.zones = zones
        self.addr: Any = None  # UDP: the client's address
        self.reply: Callable[[bytes], None] | None = None  # TCP: the connection's sender
        self.index = 0
        self.zone: CompiledZone | None = None


class ZoneRouter:
    """Owns the published zones and their forwarders; answers for them."""

    def __init__(
        self,
        settings: DNSSettings,
        default: Forwarder,
        stats: ForwardStats,
        udp_send: SendFn,
    ) -> None:
        self.settings = settings
        self.default = default
        self.forward_stats = stats
        self.stats = ZoneStats()
        self.zones: CompiledZones | None = None
        self.active = False
        self._udp_send = udp_send
        # where a UDP reply made from a zone's own data goes (the server's
        # rate limiter, when ``rrl`` is on); relayed replies use _udp_send
        self.answer_send: SendFn = udp_send
        self._forwarders: dict[Addrs, Forwarder] = {}
        self._own: list[tuple[str, int]] = []
        self._started = False
        self._problems: frozenset[str] = frozenset()

    # -- lifecycle --------------------------------------------------------

    def start(self, own: Iterable[tuple[str, int]]) -> None:
        """The server listens now (on ``own``): open the zones' forwarders."""
        self._own = list(own)
        self._started = True
        if self.zones is not None:
            self._open(self.zones)

    def set_zones(self, zones: CompiledZones | None) -> None:
        """Publish a refresh's zones (on the event loop; one reference swap)."""
        if zones is not None and self._started:
            self._open(zones)
        self.zones = zones
        self.active = zones is not None and zones.active
        self._report(zones)

    def close(self) -> None:
        for fw in self._forwarders.values():
            fw.close()
        self._forwarders.clear()
        self._started = False

    def _open(self, zones: CompiledZones) -> None:
        wanted = {z.forwarders for z in zones.zones if z.forwarders}
        for addrs in wanted - set(self._forwarders):
            resolvers = tuple(f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in addrs)
            settings = dataclasses.replace(
                self.settings,
                resolvers=resolvers,
                zone_resolvers=MappingProxyType({}),
                external_on=True,
            )
            fw = Forwarder(settings, self.forward_stats)
            fw.start_now(self._own)
            self._forwarders[addrs] = fw
        for addrs in set(self._forwarders) - wanted:
            self._forwarders.pop(addrs).close()

    def _report(self, zones: CompiledZones | None) -> None:
        problems = frozenset(zones.problems) if zones is not None else frozenset()
        new = sorted(problems - self._problems)
        self._problems = problems
        for message in new[:MAX_LOGGED_PROBLEMS]:
            log.warning("zone template: %s", message)
        if len(new) > MAX_LOGGED_PROBLEMS:
            log.warning("zone templates: %d more problems", len(new) - MAX_LOGGED_PROBLEMS)

    # -- questions ----------------------------------------------------------

    def udp(
        self,
        data: bytes,
        question: bytes,
        lname: bytes,
        qtype: int,
        addr: Any,
        limit: int,
        opt: bytes,
    ) -> None:
        """Answer a UDP question outside the domain; the reply goes to ``addr``."""
        zones = self.zones
        if zones is None:
            self._default_udp(data, question, lname, qtype, addr, limit)
            return
        host = addr[0] if isinstance(addr, tuple) and addr else None
        q = _Query(data, question, lname, qtype, host, limit, opt, zones)
        q.addr = addr
        self._step(q, 0)

    def tcp(
        self,
        data: bytes,
        question: bytes,
        lname: bytes,
        qtype: int,
        peer: Any,
        opt: bytes,
        reply: Callable[[bytes], None],
    ) -> None:
        """Answer a TCP question outside the domain; ``reply`` is called once."""
        zones = self.zones
        if zones is None:
            self.default.forward_tcp(data, question, reply, self.default.route(lname, qtype))
            return
        host = peer[0] if isinstance(peer, tuple) and peer else None
        q = _Query(data, question, lname, qtype, host, wire.MAX_MESSAGE, opt, zones)
        q.reply = reply
        self._step(q, 0)

    def _deliver(self, q: _Query, message: bytes) -> None:
        if q.reply is not None:
            q.reply(message)
        else:
            self._udp_send(message, q.addr)

    def _default_udp(
        self, data: bytes, question: bytes, lname: bytes, qtype: int, addr: Any, limit: int
    ) -> None:
        ups = self.default.route(lname, qtype)
        self.default.forward_udp(data, question, addr, self._udp_send, limit, ups)

    def _step(self, q: _Query, start: int) -> None:
        found = lookup(q.zones, q.lname, q.qtype, q.host, start)
        stats = self.stats
        if found is None:
            stats.unclaimed += 1
            if q.reply is not None:
                ups = self.default.route(q.lname, q.qtype)
                self.default.forward_tcp(q.data, q.question, q.reply, ups)
            else:
                self._default_udp(q.data, q.question, q.lname, q.qtype, q.addr, q.limit)
            return
        if isinstance(found, Answer):
            stats.answered += 1
            if found.rcode == wire.RCODE_NXDOMAIN:
                stats.nxdomain += 1
            data = q.data
            zones = q.zones
            message = render(
                found,
                data[0:2],
                data[2],
                data[3],
                q.question,
                q.limit,
                q.opt,
                ra=zones.ra,
                set_tc=zones.set_tc,
            )
            if q.reply is not None:
                q.reply(message)
            else:
                self.answer_send(message, q.addr)
            return
        q.index = found.index
        q.zone = found.zone
        stats.forwarded += 1
        fw = self._forwarders.get(found.zone.forwarders)
        if fw is None:  # not opened (the server is not listening yet)
            self._forwarded(q, b"")
        elif q.reply is not None:
            fw.ask_tcp(q.data, q.question, lambda reply: self._forwarded(q, reply), fw.upstreams)
        else:
            fw.ask_udp(q.data, q.question, q, self._udp_reply, q.limit, fw.upstreams)

    def _udp_reply(self, reply: bytes, client: object) -> None:
        assert isinstance(client, _Query)
        self._forwarded(client, reply)

    def _forwarded(self, q: _Query, reply: bytes) -> None:
        """The zone's forwarders came back (``b""``: no reply at all)."""
        stats = self.stats
        if reply and answered(reply):
            stats.forward_answered += 1
            self._deliver(q, reply)
            return
        zone = q.zone
        if zone is not None and zone.cont:
            stats.continued += 1
            self._step(q, q.index + 1)
            return
        stats.failed += 1
        self._deliver(q, reply or servfail(q.data, q.question))
