"""Zone transfers: AXFR (RFC 5936) and IXFR (RFC 1995), signed with TSIG.

Served by every worker from its replica, for the sources in
``zoneTransfer.allow`` (others: REFUSED), and with a TSIG key set only to
requests signed with it (unsigned: REFUSED); any query that carries a TSIG
record gets its reply signed (`mesosdns.dns.signing`).

Zones: the cluster domain and each alias zone (`mesosdns.dns.zonedata`
says what each holds), then each operator zone (``zones``) with data of its
own, whose origin is the asked name and whose source filters admit the
client (`mesosdns.dns.opxfr` says which and what it holds; it is compiled
once per refresh and immutable, so a transfer holds one version without
copies). A transfer request for any other name gets NOTAUTH; one with other
than one question FORMERR (RFC 5936 section 2.2.1).

One version per transfer: the replica updates its record maps in place
between two callbacks of the event loop, so a transfer takes its own
copies of the maps (a dict copy: a few milliseconds for 100k tasks) and
the serial at its start, then writes messages of about `MESSAGE_SIZE`
octets, names compressed, one at a time: it waits while the connection's
transport asks to pause writing (TCP flow control), and yields to the loop
after each message, so queries keep being answered.

IXFR of the cluster's zones: from the replica's journal (`mesosdns.dns.journal`), the condensed
differences between the client's serial and now (SOA new, SOA old,
deletions, SOA new, additions, SOA new); a single SOA for a client that is
current; the whole zone, in AXFR form, for a serial the journal does not
hold. Over UDP the reply is the current SOA alone, as BIND answers: the
client is current, or it retries over TCP (RFC 1995 section 2). IXFR of an
operator zone: no journal; the SOA alone for a client that is current, else
the whole zone in AXFR form.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Final, Protocol

from mesosdns.dns import wire
from mesosdns.dns.answers import AnswerTable
from mesosdns.dns.journal import Journal, Version
from mesosdns.dns.opxfr import (
    ZoneRR,
    pack_rrs,
    transfer_message,
    transfer_zone,
    zone_records,
    zone_soa,
)
from mesosdns.dns.opzones import CompiledZone, CompiledZones
from mesosdns.dns.settings import TransferSettings
from mesosdns.dns.signing import (
    BADTIME,
    BADTRUNC,
    MAC_SIZE_FORMERR,
    RequestTSIG,
    Signer,
    error_reply,
    read_tsig,
)
from mesosdns.dns.zonedata import Record, VersionView, ZoneRules, zone_names, zone_rules

log = logging.getLogger(__name__)

TYPE_IXFR: Final = 251
TYPE_AXFR: Final = 252
XFR_TYPES: Final = frozenset((TYPE_IXFR, TYPE_AXFR))
# a transfer's messages are cut at about this size (RFC 5936 leaves it to the
# server; 64 KiB, the most a TCP message can hold, less room for the TSIG
# record and one record that may go over)
MESSAGE_SIZE: Final = 64000


class Connection(Protocol):
    """What a transfer needs of a TCP connection (`mesosdns.dns.tcp.TCPConnection`)."""

    pending: int
    peer: Any

    def send(self, reply: bytes) -> None: ...

    def closed(self) -> bool: ...

    async def writable(self) -> None: ...


class TransferStats:
    """Counts of transfer requests by outcome."""

    __slots__ = ("axfr", "formerr", "ixfr", "ixfr_full", "notauth", "refused", "tsig_errors")

    def __init__(self) -> None:
        self.axfr = 0  # AXFR replies started
        self.ixfr = 0  # IXFR replies (condensed, or a single SOA)
        self.ixfr_full = 0  # IXFR answered with the whole zone
        self.refused = 0
        self.notauth = 0
        self.tsig_errors = 0  # BADKEY, BADSIG, BADTIME, BADTRUNC
        self.formerr = 0  # transfer requests without exactly one question

    def as_dict(self) -> dict[str, int]:
        """The counters by their metric names (``mesosdns_xfr_axfr`` ...)."""
        return {
            "XfrAXFR": self.axfr,
            "XfrIXFR": self.ixfr,
            "XfrIXFRFull": self.ixfr_full,
            "XfrRefused": self.refused,
            "XfrNotAuth": self.notauth,
            "XfrTSIGErrors": self.tsig_errors,
            "XfrFormErr": self.formerr,
        }


def serial_lt(a: int, b: int) -> bool:
    """RFC 1982: is serial ``a`` before serial ``b``?"""
    return a != b and ((b - a) & 0xFFFFFFFF) < 0x80000000


def client_serial(data: bytes) -> int | None:
    """The serial of the SOA record in an IXFR request's authority section
    (None: there is none, or the message is malformed)."""
    try:
        qd, an, ns = struct.unpack_from(">HHH", data, 4)
        off = wire.HEADER_LEN
        for _ in range(qd):
            _, off = wire.read_name(data, off)
            off += 4
        for i in range(an + ns):
            _, off = wire.read_name(data, off)
            if off + 10 > len(data):
                return None
            rtype, _, _, rdlen = struct.unpack_from(">HHIH", data, off)
            rdata = off + 10
            off = rdata + rdlen
            if off > len(data):
                return None
            if i >= an and rtype == wire.TYPE_SOA:
                _, p = wire.read_name(data, rdata)
                _, p = wire.read_name(data, p)
                if p + 4 > off:
                    return None
                return int(struct.unpack_from(">I", data, p)[0])
    except (ValueError, struct.error):
        return None
    return None


def _split(rr: bytes, owner: bytes) -> Record:
    """A prepacked record owned by ``owner`` (in full) as (owner, type, rdata)."""
    rtype = (rr[len(owner)] << 8) | rr[len(owner) + 1]
    return owner, rtype, rr[len(owner) + 10 :]


def pack_messages(
    ident: bytes,
    flags: bytes,
    question: bytes,
    records: Iterable[Record],
    ttl: int,
    limit: int = MESSAGE_SIZE,
) -> Iterator[bytes]:
    """The records in messages of at most about ``limit`` octets, each with
    its names compressed (owners, and the names SRV targets end with); the
    question in the first message only."""
    heads = {t: struct.pack(">HHI", t, wire.CLASS_IN, ttl & 0xFFFFFFFF)
             for t in (wire.TYPE_A, wire.TYPE_AAAA, wire.TYPE_SRV, wire.TYPE_NS, wire.TYPE_SOA)}
    comp = wire.NameCompressor()
    if question:
        comp.remember(question[:-4], wire.HEADER_LEN)
    pos = wire.HEADER_LEN + len(question)
    pack_len = struct.Struct(">H").pack
    try:
        yield from _pack(ident, flags, question, records, heads, limit, comp, pos, pack_len)
    finally:
        close = getattr(records, "close", None)
        if close is not None:
            close()  # cut short: the records' snapshot stops listening


def _pack(
    ident: bytes,
    flags: bytes,
    question: bytes,
    records: Iterable[Record],
    heads: dict[int, bytes],
    limit: int,
    comp: wire.NameCompressor,
    pos: int,
    pack_len: Callable[[int], bytes],
) -> Iterator[bytes]:
    first = True
    parts: list[bytes] = []
    for owner, rtype, rdata in records:
        for _ in range(2):
            o = comp.name(owner, pos)
            if rtype == wire.TYPE_SRV:
                comp.remember(rdata[6:], pos + len(o) + 16)
            rr = o + heads[rtype] + pack_len(len(rdata)) + rdata
            if pos + len(rr) <= limit or not parts:
                break
            # full: this message goes, the record starts the next one
            yield transfer_message(ident, flags, question if first else b"", parts)
            first = False
            comp = wire.NameCompressor()
            pos = wire.HEADER_LEN
            parts = []
        parts.append(rr)
        pos += len(rr)
    yield transfer_message(ident, flags, question if first else b"", parts)



class Snapshot:
    """One version of one zone, taken at the start of a transfer.

    The replica changes its maps in place between callbacks: with its
    journal, the snapshot reads them as they were at its start (the journal
    tells it of each change, `VersionView`); without one (a server fed
    tables by hand), it copies them.
    """

    __slots__ = ("journal", "rules", "serial", "soa", "view")

    def __init__(self, table: AnswerTable, rules: ZoneRules, journal: Journal | None) -> None:
        rs = table.rs
        watched = journal is not None and journal.enabled
        self.view = VersionView((rs.a, rs.aaaa, rs.srv), copy=not watched)
        self.journal = journal if watched else None
        if self.journal is not None:
            self.journal.listeners.add(self.view)
        self.serial = table.serial
        self.rules = rules
        self.soa = _split(rules.soa(self.serial), rules.apex)

    def close(self) -> None:
        if self.journal is not None:
            self.journal.listeners.discard(self.view)

    def axfr(self) -> Iterator[Record]:
        """SOA, NS, every name's records, SOA."""
        rules = self.rules
        try:
            yield self.soa
            yield _split(rules.ns(), rules.apex)
            for owner, rrs in zone_names(rules, self.view):
                for rtype, rdata in rrs:
                    yield owner, rtype, rdata
            yield self.soa
        finally:
            self.close()


def condensed(rules: ZoneRules, versions: list[Version]) -> tuple[set[Record], set[Record]]:
    """The records deleted and added over ``versions``, net."""
    deleted: set[Record] = set()
    added: set[Record] = set()
    records = rules.records
    for version in versions:
        for kind, name, old, new in version.changes:
            before = records(kind, name, old)
            after = records(kind, name, new)
            for r in before - after:
                if r in added:
                    added.discard(r)
                else:
                    deleted.add(r)
            for r in after - before:
                if r in deleted:
                    deleted.discard(r)
                else:
                    added.add(r)
    return deleted, added


class Transfers:
    """Answers AXFR and IXFR requests, and signs replies to signed requests."""

    def __init__(self, settings: TransferSettings, allows: Callable[[Any], bool]) -> None:
        self.settings = settings
        self.allows = allows  # is this source in zoneTransfer.allow?
        self.signer = None if settings.tsig is None else Signer(settings.tsig)
        self.journal: Journal | None = None  # the replica's (set_journal)
        self.stats = TransferStats()
        self.tasks: set[asyncio.Task[None]] = set()
        self._rules: tuple[AnswerTable | None, dict[bytes, ZoneRules]] = (None, {})

    def zones(self, table: AnswerTable) -> dict[bytes, ZoneRules]:
        """The transferable zones of ``table`` (remade when the table is)."""
        held, rules = self._rules
        if held is not table:
            rules = zone_rules(table)
            self._rules = (table, rules)
        return rules

    # -- TSIG --------------------------------------------------------------

    def verify(self, data: bytes, query: wire.Query) -> RequestTSIG | bytes:
        """The request's TSIG record when it verifies, else the error reply."""
        try:
            t = read_tsig(data, query.tsig_at)
        except (ValueError, struct.error):
            return wire.formerr_reply(data)
        signer = self.signer
        error = 17 if signer is None else signer.check(data, t)  # BADKEY without a key
        if error == 0:
            return t
        if error == MAC_SIZE_FORMERR:
            return wire.formerr_reply(data)
        self.stats.tsig_errors += 1
        if error == BADTIME and signer is not None:
            return signer.badtime(data, query.question, t)
        if error == BADTRUNC and signer is not None:
            return signer.badtrunc(data, query.question, t)
        return error_reply(data, query.question, t, error)

    def sign(self, reply: bytes, t: RequestTSIG | None) -> bytes:
        """``reply`` signed for a signed request (as it is for an unsigned one)."""
        if t is None or self.signer is None:
            return reply
        return self.signer.sign(reply, t.mac, t.original_id)[0]

    @property
    def room(self) -> int:
        """Octets a reply must leave for our TSIG record."""
        return 0 if self.signer is None else self.signer.room

    # -- transfer requests ------------------------------------------------

    def request(
        self,
        table: AnswerTable | None,
        data: bytes,
        query: wire.Query,
        t: RequestTSIG | None,
        source: Any,
        conn: Connection | None,
        zones: CompiledZones | None = None,
    ) -> bytes | None:
        """The reply to an AXFR or IXFR request (None: a transfer started);
        ``zones``: the operator zones served now."""
        stats = self.stats
        if data[4:6] != b"\x00\x01":  # one question, no more (RFC 5936 section 2.2.1)
            stats.formerr += 1
            return self.sign(wire.formerr_reply(data), t)
        if not self.allows(source) or (self.signer is not None and t is None):
            stats.refused += 1
            return self.sign(wire.error_reply(data, wire.RCODE_REFUSED, query.question), t)
        if table is None:
            return self.sign(wire.error_reply(data, wire.RCODE_SERVFAIL, query.question), t)
        lname = query.qname.lower()
        rules = self.zones(table).get(lname)
        opzone = None
        if rules is None and query.qclass == wire.CLASS_IN:
            host = source[0] if isinstance(source, tuple) and source else None
            opzone = transfer_zone(zones, lname, host)
        if (rules is None and opzone is None) or query.qclass != wire.CLASS_IN:
            stats.notauth += 1
            return self.sign(wire.error_reply(data, 9, query.question), t)  # NOTAUTH
        ixfr = query.qtype == TYPE_IXFR
        flags = wire.reply_flags(query.b2, query.b3, aa=True, tc=False, ra=False, rcode=0)
        if conn is None:
            if not ixfr:  # AXFR is TCP only (RFC 5936 section 4.2)
                return self.sign(wire.error_reply(data, wire.RCODE_NOTIMP, query.question), t)
            stats.ixfr += 1
            if opzone is not None:
                msg = next(pack_rrs(query.ident, flags, query.question, [zone_soa(opzone)[0]],
                                    MESSAGE_SIZE))
                return self.sign(msg, t)
            assert rules is not None
            soa = _split(rules.soa(table.serial), rules.apex)
            msg = next(pack_messages(query.ident, flags, query.question, [soa], table.settings.ttl))
            return self.sign(msg, t)
        serial = None
        if ixfr:
            serial = client_serial(data)
            if serial is None:
                return wire.formerr_reply(data)
        messages: Iterator[bytes]
        limit = MESSAGE_SIZE - self.room
        if opzone is not None:
            messages = pack_rrs(query.ident, flags, query.question,
                                self._opzone(opzone, serial), limit)
        else:
            assert rules is not None
            records: Iterable[Record]
            if serial is not None:
                records = self._ixfr(table, rules, serial)
            else:
                stats.axfr += 1
                records = Snapshot(table, rules, self.journal).axfr()
            messages = pack_messages(query.ident, flags, query.question, records,
                                     table.settings.ttl, limit)
        task = asyncio.get_running_loop().create_task(self._send(conn, messages, t))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return None

    def _opzone(self, zone: CompiledZone, serial: int | None) -> Iterable[ZoneRR]:
        """An operator zone's AXFR (``serial`` None), or its IXFR: the SOA
        alone for a client that is current, else the whole zone (no journal:
        the compiled zone holds one version)."""
        stats = self.stats
        if serial is None:
            stats.axfr += 1
            return zone_records(zone)
        soa, current = zone_soa(zone)
        if not serial_lt(serial, current):
            stats.ixfr += 1
            return [soa]
        stats.ixfr_full += 1
        return zone_records(zone)

    def _ixfr(self, table: AnswerTable, rules: ZoneRules, serial: int) -> Iterable[Record]:
        """IXFR's records: condensed from the journal, the SOA alone, or the
        whole zone."""
        stats = self.stats
        current = table.serial
        soa = _split(rules.soa(current), rules.apex)
        if not serial_lt(serial, current):
            stats.ixfr += 1
            return [soa]  # current (or ahead): the SOA alone
        journal = self.journal
        versions = None
        if journal is not None and journal.latest == current:
            versions = journal.since(serial)
        if not versions:
            stats.ixfr_full += 1
            return Snapshot(table, rules, journal).axfr()
        stats.ixfr += 1
        deleted, added = condensed(rules, versions)
        old = _split(rules.soa(serial), rules.apex)
        return [soa, old, *sorted(deleted), soa, *sorted(added), soa]

    async def _send(
        self, conn: Connection, messages: Iterator[bytes], t: RequestTSIG | None
    ) -> None:
        """Write a transfer's messages one by one, signed when asked, as the
        connection can take them."""
        conn.pending += 1  # not idle while it runs
        signer = self.signer if t is not None else None
        ctx: Any = None
        mac = b"" if t is None else t.mac
        try:
            for msg in messages:  # (the records are read as the messages are made)
                if conn.closed():
                    return
                if signer is not None and t is not None:
                    msg, ctx = signer.sign(msg, mac, t.original_id, ctx=ctx, multi=True)
                conn.send(msg)
                await conn.writable()
                await asyncio.sleep(0)
        except Exception:
            log.exception("zone transfer failed")
        finally:
            conn.pending -= 1
            close = getattr(messages, "close", None)
            if close is not None:
                close()  # cut short: its records' snapshot stops listening

    async def close(self) -> None:
        """Stop the transfers under way."""
        tasks = list(self.tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
