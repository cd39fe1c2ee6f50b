"""NOTIFY (RFC 1996) to the secondaries whenever the SOA serial changes.

Worker 0 sends, once it has applied the version: a secondary that asks for
the SOA right after the NOTIFY then sees the new serial (a NOTIFY sent
before the workers had the version would make it look again only at its
SOA refresh, which operators set to an hour). With several workers, the
others apply the same version within milliseconds.

Each (zone, target) pair has one sender task: it sends, waits for the
answer (an exponentially growing wait, 1 s up to 60 s) and sends again
until it is answered, as RFC 1996 section 3.6 asks. A newer serial replaces
the older one's task, so that a target that was down gets the latest
serial, once. With a TSIG key, every NOTIFY is signed, and an answer counts
only when its signature verifies.

The cluster domain (and the zones passed with it) share the cluster's
serial (`changed`); operator zones that can be transferred have serials of
their own (a zone file's SOA), so they are notified by their own serial
(`zones_changed`), each when it changes.

The message (opcode NOTIFY, AA set, the zone's SOA as the question) is made
and signed with dnspython; a NOTIFY a second is nowhere near a hot path.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdatatype
import dns.tsig
import dns.tsigkeyring

log = logging.getLogger(__name__)

FIRST_RETRY = 1.0  # seconds before the first resend
MAX_RETRY = 60.0  # the longest wait between two sends


class NotifyKey(Protocol):
    """The TSIG key NOTIFYs are signed with."""

    @property
    def name(self) -> str: ...
    @property
    def algorithm(self) -> str: ...
    @property
    def secret(self) -> bytes: ...


@dataclass(slots=True)
class NotifyStats:
    sent: int = 0  # messages sent, resends included
    answered: int = 0  # NOTIFYs a target answered
    superseded: int = 0  # given up for a newer serial before an answer came

    def as_dict(self) -> dict[str, int]:
        return {
            "NotifySent": self.sent,
            "NotifyAnswered": self.answered,
            "NotifySuperseded": self.superseded,
        }


class _Endpoint(asyncio.DatagramProtocol):
    def __init__(self, owner: Notifier) -> None:
        self.owner = owner

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self.owner._reply(data, addr)

    def error_received(self, exc: Exception) -> None:  # ICMP unreachable
        log.debug("NOTIFY socket error: %s", exc)


def _family(host: str) -> int:
    return socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET


class Notifier:
    """Tells ``targets`` ((ip, port) pairs) about each new serial of ``zones``."""

    def __init__(
        self,
        zones: Sequence[str],
        targets: Sequence[tuple[str, int]],
        key: NotifyKey | None = None,
        source: str = "",
        *,
        first_retry: float = FIRST_RETRY,
        max_retry: float = MAX_RETRY,
    ) -> None:
        self.zones = tuple(dns.name.from_text(z) for z in zones)
        self.targets = tuple((str(ipaddress.ip_address(h)), int(p)) for h, p in targets)
        self.source = source  # the address to send from ("" or a wildcard: any)
        self.first_retry, self.max_retry = first_retry, max_retry
        self.stats = NotifyStats()
        self.serial = 0
        self._zone_serials: dict[dns.name.Name, int] = {}  # operator zones
        self._keyring: dict[dns.name.Name, dns.tsig.Key] | None = None
        self._keyname: dns.name.Name | None = None
        if key is not None:
            self._keyname = dns.name.from_text(key.name)
            self._keyring = {
                self._keyname: dns.tsig.Key(self._keyname, key.secret, key.algorithm)
            }
        self._transports: dict[int, asyncio.DatagramTransport] = {}
        self._tasks: dict[tuple[dns.name.Name, tuple[str, int]], asyncio.Task[None]] = {}
        # (target, message id) -> (the NOTIFY sent, the future its answer sets)
        self._waiting: dict[
            tuple[tuple[str, int], int], tuple[dns.message.Message, asyncio.Future[dns.rcode.Rcode]]
        ] = {}

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            source = ipaddress.ip_address(self.source) if self.source else None
        except ValueError:  # a host name: let the kernel pick
            source = None
        for family in {_family(h) for h, _ in self.targets}:
            local: tuple[str, int] | None = None
            if source is not None and not source.is_unspecified and _family(str(source)) == family:
                local = (str(source), 0)
            transport, _ = await loop.create_datagram_endpoint(
                lambda: _Endpoint(self), local_addr=local, family=family
            )
            self._transports[family] = transport

    def changed(self, serial: int) -> None:
        """A version with ``serial`` is served: notify every target (again)."""
        if serial == self.serial or not self._transports:
            return
        self.serial = serial
        for zone in self.zones:
            self._notify_all(zone, serial)

    def zones_changed(self, serials: Mapping[str, int]) -> None:
        """The operator zones served now, origin -> serial: notify every
        target of each zone that is new or whose serial changed."""
        if not self._transports:
            return
        known = self._zone_serials
        for text, serial in serials.items():
            zone = dns.name.from_text(text)
            if known.get(zone) != serial:
                known[zone] = serial
                self._notify_all(zone, serial)

    def _notify_all(self, zone: dns.name.Name, serial: int) -> None:
        for target in self.targets:
            old = self._tasks.get((zone, target))
            if old is not None and not old.done():
                old.cancel()
                self.stats.superseded += 1
            self._tasks[(zone, target)] = asyncio.get_running_loop().create_task(
                self._notify(zone, target, serial)
            )

    def _message(self, zone: dns.name.Name) -> dns.message.Message:
        msg = dns.message.make_query(zone, dns.rdatatype.SOA)
        msg.set_opcode(dns.opcode.NOTIFY)  # the opcode lives in the flags
        msg.flags = (msg.flags & ~dns.flags.RD) | dns.flags.AA
        if self._keyring is not None:
            msg.use_tsig(self._keyring, keyname=self._keyname)
        return msg

    async def _notify(self, zone: dns.name.Name, target: tuple[str, int], serial: int) -> None:
        transport = self._transports[_family(target[0])]
        wait = self.first_retry
        loop = asyncio.get_running_loop()
        while True:
            msg = self._message(zone)
            wire = msg.to_wire()
            future: asyncio.Future[dns.rcode.Rcode] = loop.create_future()
            key = (target, msg.id)
            self._waiting[key] = (msg, future)
            try:
                transport.sendto(wire, target)
                self.stats.sent += 1
                rcode = await asyncio.wait_for(future, wait)
            except TimeoutError:
                wait = min(wait * 2, self.max_retry)
                log.debug("NOTIFY %s serial %d to %s:%d: no answer yet",
                          zone, serial, *target)
                continue
            except OSError as exc:
                log.debug("NOTIFY %s to %s:%d: %s", zone, *target, exc)
                await asyncio.sleep(wait)
                wait = min(wait * 2, self.max_retry)
                continue
            finally:
                self._waiting.pop(key, None)
            self.stats.answered += 1
            if rcode != dns.rcode.NOERROR:
                log.warning("NOTIFY %s serial %d: %s:%d answered %s", zone, serial,
                            *target, dns.rcode.to_text(rcode))
            else:
                log.debug("NOTIFY %s serial %d: %s:%d answered", zone, serial, *target)
            return

    def _reply(self, data: bytes, addr: Any) -> None:
        """An answer: it counts when it matches a NOTIFY sent (target, ID,
        question, opcode) and, with a key, carries a valid signature."""
        if len(data) < 12:
            return
        target = (str(ipaddress.ip_address(addr[0].split("%")[0])), int(addr[1]))
        waiting = self._waiting.get((target, int.from_bytes(data[:2], "big")))
        if waiting is None:
            return
        sent, future = waiting
        try:
            reply = dns.message.from_wire(
                data, keyring=self._keyring, request_mac=sent.mac if self._keyring else b""
            )
        except dns.exception.DNSException as exc:
            log.debug("NOTIFY answer from %s:%d rejected: %s", *target, exc)
            return
        if not sent.is_response(reply) or reply.opcode() != dns.opcode.NOTIFY:
            return
        if self._keyring is not None and not reply.had_tsig:
            return  # an unsigned answer to a signed NOTIFY does not count
        if not future.done():
            future.set_result(reply.rcode())

    async def stop(self) -> None:
        tasks = [t for t in self._tasks.values() if not t.done()]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        for transport in self._transports.values():
            transport.close()
        self._transports.clear()
