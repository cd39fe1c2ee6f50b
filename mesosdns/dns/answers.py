"""Compile a RecordSet into prepacked DNS answers, once per refresh.

The table maps the lower-cased wire question (name + type + class IN), behind
the counts of a plain query (`HOT_PREFIX`), of every name that has records to
an `Entry`: answer records packed in advance, a few orderings for the
original's per-query shuffling, and ready replies for UDP without EDNS (512
bytes, truncated the original's way when needed). A plain query for a
lower-case name is answered by splicing the client's ID and flags onto those
bytes.

Names in the answers follow the original exactly (see shared/BEHAVIOUR.md):
SRV, SOA and NS owners are the question as asked (a pointer to the question),
A and AAAA owners are the lower-cased name, additional-section owners the
lower-cased SRV targets. Compression never maps one case onto another.

Negative answers need no per-name data: the SOA and NS records are packed
once, with the question as owner.

Alias zones (`DNSSettings.aliases`, see `mesosdns.dns.aliases`): the record
set renamed into each alias is compiled into the same entries, so the hot path
does not change. Each alias also gets a zone view, an `AnswerTable` without
entries of its own that holds the alias's records, names and SOA / NS
records (owned by the alias apex, not the question, so that a forwarding
server such as BIND finds them inside its zone): negative answers and the
slow path use it for questions in the alias.
"""

from __future__ import annotations

import copyreg
import functools
import ipaddress
import random
import socket
import struct
from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Any

from mesosdns.dns import wire
from mesosdns.dns.aliases import alias_record_set, alias_settings, overlaps
from mesosdns.dns.hotview import HotView
from mesosdns.dns.settings import DNSSettings, fqdn, soa_rname_fqdn
from mesosdns.records.model import RecordSet, SRVTarget

# Orderings kept per SRV name (and per big A/AAAA set): each record comes
# first in one of them when there are at most this many records.
MAX_ROTATIONS = 8

# Counter outcomes of an in-domain answer, as the original counts them.
OUTCOME_SUCCESS = 0
OUTCOME_NXDOMAIN = 1
OUTCOME_FAILED = 2  # bit: a record could not be formatted (counted as failed too)

# Hot-table keys are a query's bytes after the ID and flags: the counts of a
# plain query (one question, nothing else) and the question, lower case, IN.
HOT_PREFIX = b"\x00\x01\x00\x00\x00\x00\x00\x00"
_KEY_QSEC = len(HOT_PREFIX)  # where a key's question section starts

# pickle writes a reduction by this function as its NEWOBJ opcode: the class's
# __new__, called by the unpickler itself
_NEWOBJ = copyreg.__newobj__  # type: ignore[attr-defined]

_KIND_A = 0
_KIND_AAAA = 1
_KIND_SRV = 2

_QTAIL = {
    wire.TYPE_A: b"\x00\x01\x00\x01",
    wire.TYPE_AAAA: b"\x00\x1c\x00\x01",
    wire.TYPE_SRV: b"\x00\x21\x00\x01",
}


class Entry:
    """Prepacked answers for one (name, type).

    ``rrs`` holds the answer records. A/AAAA: in the values' order, rotated
    at query time, so each address comes first equally often. SRV: in one
    random order; the orderings are its rotations that start at ``starts``
    (up to `MAX_ROTATIONS`, each led by a different record), and ``glue``
    holds each record's target, for the additional section.

    For a lower-case question over UDP without EDNS, ``trunc`` says whether
    the 512-byte reply is truncated (None: the hot path does not answer the
    question) and `tails` makes the ready reply tails (counts, question,
    records), one per ordering. The tails are not kept here: the serving process makes them for
    the names that are asked (`mesosdns.dns.hotview`). They are most of an
    SRV name's bytes (eight copies of up to 512), so the builder neither
    makes nor sends them.

    The additional sections are built when first needed (`additional`): a
    reply of a large SRV name over 512 bytes drops them anyway.
    """

    __slots__ = ("adds", "glue", "key", "kind", "n", "rrs", "starts", "trunc")

    def __init__(
        self,
        kind: int,
        qsec: bytes,
        rrs: tuple[bytes, ...],
        starts: tuple[int, ...] = (0,),
        glue: tuple[_Glue, ...] | None = None,
        adds: list[tuple[bytes, int] | None] | None = None,
    ) -> None:
        self.kind = kind
        # the hot table's key: a plain query's counts and the question
        # section (lower case, class IN); the table holds this very object
        self.key = HOT_PREFIX + qsec
        self.rrs = rrs
        self.starts = starts  # SRV: where each ordering starts in ``rrs``
        self.glue = glue  # SRV: the target of each record of ``rrs``
        # SRV, per ordering: (additional bytes, record count) once built
        # (None: no list yet). Entries for questions of the same length may
        # share this list: the sections' pointers depend on the question's
        # length only.
        self.adds: list[tuple[bytes, int] | None] | None = adds
        self.n = len(rrs)
        self.trunc: bool | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        # Sent to the serving processes as the class and its fields, plain
        # values the unpickler sets without running Python code (NEWOBJ,
        # then each slot); the additional sections left out (a cache,
        # rebuilt where they are needed).
        return _NEWOBJ, (Entry,), (None, {
            "kind": self.kind, "key": self.key, "rrs": self.rrs, "starts": self.starts,
            "glue": self.glue, "n": self.n, "trunc": self.trunc, "adds": None,
        })

    @property
    def qsec(self) -> bytes:
        """The question section (kept once, in the key: it is most of it)."""
        return self.key[_KEY_QSEC:]

    def tails(self) -> tuple[bytes, ...]:
        """The ready reply tails within 512 bytes, one per ordering (see the
        class docstring); ``trunc`` says whether they are truncated. Empty
        for an entry the hot path does not answer."""
        if self.trunc is None:
            return ()
        limit = wire.MIN_UDP_PAYLOAD
        qsec, rrs, n = self.qsec, self.rrs, self.n
        base = wire.HEADER_LEN + len(qsec)
        if self.kind != _KIND_SRV:
            # every record has the same length: a rotation of the records is
            # a rotation of their bytes, and truncation keeps a whole number
            rrlen = len(rrs[0])
            room = (limit - base) // rrlen
            body = b"".join(rrs)
            if n <= room:
                head = pack_counts(1, n, 0, 0) + qsec
                return tuple([head + body[k * rrlen :] + body[: k * rrlen] for k in range(n)])
            count = min(n, MAX_ROTATIONS)
            head = pack_counts(1, room, 0, 0) + qsec
            twice, size = body + body, room * rrlen
            return tuple([head + twice[j * n // count * rrlen :][:size] for j in range(count)])
        if base + sum(map(len, rrs)) <= limit:
            out: list[bytes] = []
            for v in range(len(self.starts)):
                add, nadd = self.additional(v)
                out.append(_tail(qsec, self.ordering(v), add, nadd, limit)[0])
            return tuple(out)
        if len(set(map(len, rrs))) == 1:
            # truncated whatever the order, to the same number of records
            room = (limit - base) // len(rrs[0])
            counts, ring = pack_counts(1, room, 0, 0) + qsec, rrs + rrs
            return tuple([counts + b"".join(ring[k : k + room]) for k in self.starts])
        # truncated whatever the order: the records that fit, no glue
        out = []
        for k in self.starts:
            kept: list[bytes] = []
            used = base
            while True:  # ends: all n records together exceed the limit
                rr = rrs[k]
                used += len(rr)
                if used > limit:
                    break
                kept.append(rr)
                k = k + 1 if k + 1 < n else 0
            out.append(pack_counts(1, len(kept), 0, 0) + qsec + b"".join(kept))
        return tuple(out)

    def ordering(self, v: int) -> tuple[bytes, ...]:
        """The answer records of ordering ``v`` (SRV)."""
        k = self.starts[v]
        rrs = self.rrs
        return rrs[k:] + rrs[:k] if k else rrs

    def additional(self, v: int) -> tuple[bytes, int]:
        """The additional section of ordering ``v``: (bytes, record count)."""
        if self.glue is None:
            return b"", 0
        adds = self.adds
        if adds is None:
            adds = self.adds = [None] * len(self.starts)
        got = adds[v]
        if got is None:
            k = self.starts[v]
            glue = self.glue[k:] + self.glue[:k] if k else self.glue
            got = adds[v] = _glue_section(self.qsec, self.ordering(v), glue)
        return got


@dataclass(frozen=True, slots=True)
class TableInfo:
    """Sizes of a compiled table, for logs and metrics."""

    entries: int
    names: int
    skipped_names: int
    slow_names: int

    def __reduce__(self) -> tuple[Any, ...]:
        # sent with every update: as its values (a dataclass's own pickling
        # looks each field up by name)
        return TableInfo, (self.entries, self.names, self.skipped_names, self.slow_names)


class AnswerTable:
    """One refresh's compiled answers. Immutable once built; swap it whole."""

    __slots__ = (
        "alias_zone",
        "aliases",
        "domain",
        "entries",
        "exotic",
        "fl_nodata",
        "fl_nxdomain",
        "hot",
        "info",
        "names",
        "ns_rr",
        "ra",
        "rs",
        "serial",
        "set_tc",
        "settings",
        "slow_names",
        "soa_rr",
        "ttl",
    )

    def __init__(
        self,
        *,
        rs: RecordSet,
        settings: DNSSettings,
        serial: int,
        domain: bytes,
        entries: dict[bytes, Entry],
        names: AbstractSet[bytes],
        slow_names: AbstractSet[bytes],
        exotic: bool,
        soa_rr: bytes,
        ns_rr: bytes,
        info: TableInfo,
        aliases: tuple[AnswerTable, ...] = (),
        alias_zone: bool = False,
    ) -> None:
        self.rs = rs
        self.settings = settings
        self.serial = serial
        self.domain = domain
        self.entries = entries
        # the UDP hot path's view, filled as names are asked; slotted for
        # the rate limiter's counters
        tc = settings.set_truncate_bit
        self.hot = HotView(settings.rrl is not None, (
            wire.flag_table(True, False, settings.recurse_on, wire.RCODE_NOERROR),
            wire.flag_table(True, tc, settings.recurse_on, wire.RCODE_NOERROR),
        ))
        self.names = names
        self.slow_names = slow_names
        self.exotic = exotic
        self.soa_rr = soa_rr
        self.ns_rr = ns_rr
        self.ra = settings.recurse_on
        self.set_tc = settings.set_truncate_bit
        self.ttl = struct.pack(">I", settings.ttl & 0xFFFFFFFF)
        self.info = info
        # zone views of the alias zones (their entries are in this table's)
        self.aliases = aliases
        # this is an alias's zone view: SOA / NS questions are answered as
        # a forwarding server accepts them (see DNSServer._soa_ns)
        self.alias_zone = alias_zone
        # header flags of negative answers, by `wire.flag_index`
        self.fl_nodata = wire.flag_table(True, False, self.ra, wire.RCODE_NOERROR)
        self.fl_nxdomain = wire.flag_table(True, False, self.ra, wire.RCODE_NXDOMAIN)

    def render(
        self,
        e: Entry,
        ctr: int,
        ident: bytes,
        b2: int,
        b3: int,
        question: bytes,
        limit: int,
        opt: bytes,
    ) -> bytes:
        """A full reply from an entry, for any question case and size limit."""
        if e.kind == _KIND_SRV:
            v = ctr % len(e.starts)
            ans: Sequence[bytes] = e.ordering(v)
            size = wire.HEADER_LEN + len(question) + len(opt) + sum(map(len, ans))
            # too big already: the additional section would be dropped
            add, nadd = e.additional(v) if size <= limit else (b"", 0)
        else:
            rrs = e.rrs
            k = ctr % e.n
            ans = rrs[k:] + rrs[:k]
            add, nadd = b"", 0
            if question[:-4] != e.qsec[:-4]:
                ans = _literal_owner(ans, e.qsec[:-4], question)
        return assemble(
            ident,
            b2,
            b3,
            question,
            ans,
            (),
            add,
            nadd,
            opt,
            limit,
            rcode=wire.RCODE_NOERROR,
            ra=self.ra,
            set_tc=self.set_tc,
        )


def _literal_owner(ans: Sequence[bytes], owner: bytes, question: bytes) -> list[bytes]:
    """Answers whose owner pointer (to the question) becomes the lower-case name.

    The first record carries the name, its labels up to the longest suffix
    the question spells with the same bytes and a pointer to that suffix
    (as the original's DNS library compresses it), the others point to it.
    """
    qname = question[:-4]
    first = owner
    for off in wire.label_offsets(owner)[1:-1]:
        if qname[off:] == owner[off:]:
            first = owner[:off] + struct.pack(">H", 0xC000 | (wire.HEADER_LEN + off))
            break
    ptr = struct.pack(">H", 0xC000 | (wire.HEADER_LEN + len(question)))
    out = [first + ans[0][2:]]
    out.extend(ptr + rr[2:] for rr in ans[1:])
    return out


def assemble(
    ident: bytes,
    b2: int,
    b3: int,
    question: bytes,
    ans: Sequence[bytes],
    auth: Sequence[bytes],
    add: bytes,
    nadd: int,
    opt: bytes,
    limit: int,
    *,
    rcode: int,
    ra: bool,
    set_tc: bool,
    aa: bool = True,
) -> bytes:
    """Build a reply, truncated the original's way if it exceeds ``limit``.

    When too big: the additional section goes first (``opt`` stays), then
    answers from the end until the rest fits; TC is set when anything was
    dropped, unless ``set_tc`` is false. Authority records and additional
    ones may only point backwards to the question or the answers kept.
    """
    base = wire.HEADER_LEN + len(question) + len(opt)
    size_auth = sum(map(len, auth))
    size_ans = sum(map(len, ans))
    truncated = False
    if base + size_ans + size_auth + len(add) > limit:
        truncated = True
        add, nadd = b"", 0
        budget = limit - base - size_auth
        if size_ans > budget:
            kept: list[bytes] = []
            used = 0
            for rr in ans:
                used += len(rr)
                if used > budget:
                    break
                kept.append(rr)
            ans = kept
    return message(
        ident,
        b2,
        b3,
        question,
        ans,
        auth,
        add,
        nadd,
        opt,
        truncated,
        rcode=rcode,
        ra=ra,
        set_tc=set_tc,
        aa=aa,
    )


def message(
    ident: bytes,
    b2: int,
    b3: int,
    question: bytes,
    ans: Sequence[bytes],
    auth: Sequence[bytes],
    add: bytes,
    nadd: int,
    opt: bytes,
    truncated: bool,
    *,
    rcode: int,
    ra: bool,
    set_tc: bool,
    aa: bool = True,
) -> bytes:
    """A reply from its sections, as given (``truncated``: records were
    dropped; TC is set then unless ``set_tc`` is false)."""
    flags = wire.reply_flags(b2, b3, aa=aa, tc=truncated and set_tc, ra=ra, rcode=rcode)
    return b"".join(
        (
            ident,
            flags,
            struct.pack(">HHHH", 1, len(ans), len(auth), nadd + (1 if opt else 0)),
            question,
            *ans,
            *auth,
            add,
            opt,
        )
    )


def soa_record(settings: DNSSettings, serial: int, owner: bytes = b"\xc0\x0c") -> bytes:
    """The SOA record, owner = the question (pointer) unless given, rdata
    uncompressed."""
    ttl = settings.ttl & 0xFFFFFFFF
    rdata = (
        _soa_names(settings.soa_mname, settings.soa_rname)
        + struct.pack(
            ">IIIII",
            serial & 0xFFFFFFFF,
            settings.soa_refresh & 0xFFFFFFFF,
            settings.soa_retry & 0xFFFFFFFF,
            settings.soa_expire & 0xFFFFFFFF,
            ttl,
        )
    )
    return owner + struct.pack(">HHIH", wire.TYPE_SOA, wire.CLASS_IN, ttl, len(rdata)) + rdata


@functools.lru_cache(maxsize=16)
def _soa_names(soa_mname: str, soa_rname: str) -> bytes:
    """The SOA's MNAME and RNAME in wire form (the SOA is rebuilt with each
    new serial, at every change)."""
    mname = wire.text_to_wire(fqdn(soa_mname)) or b"\x00"
    rname = wire.text_to_wire(soa_rname_fqdn(soa_rname)) or b"\x00"
    return mname + rname


def ns_record(settings: DNSSettings, owner: bytes = b"\xc0\x0c") -> bytes:
    """The NS record (target SOAMname), owner = the question (pointer) unless
    given."""
    mname = wire.text_to_wire(fqdn(settings.soa_mname)) or b"\x00"
    ttl = settings.ttl & 0xFFFFFFFF
    return owner + struct.pack(">HHIH", wire.TYPE_NS, wire.CLASS_IN, ttl, len(mname)) + mname


_V4_CACHE: dict[str, bytes | None] = {}
_V6_CACHE: dict[str, bytes | None] = {}


def pack_v4(text: str) -> bytes | None:
    """4 address bytes for an A value, None if it is not an IPv4 address.

    An IPv4-mapped IPv6 address counts as its IPv4 address, as Go's ``To4``.
    """
    got = _V4_CACHE.get(text, b"")
    if got != b"":
        return got
    try:
        packed: bytes | None = socket.inet_pton(socket.AF_INET, text)
    except OSError:
        try:
            mapped = ipaddress.IPv6Address(text).ipv4_mapped
        except ValueError:
            mapped = None
        packed = mapped.packed if mapped is not None else None
    if len(_V4_CACHE) < 1_000_000:
        _V4_CACHE[text] = packed
    return packed


def pack_v6(text: str) -> bytes | None:
    """16 address bytes for an AAAA value (IPv4 text maps, as Go's ``To16``)."""
    got = _V6_CACHE.get(text, b"")
    if got != b"":
        return got
    try:
        packed: bytes | None = ipaddress.ip_address(text).packed
    except ValueError:
        packed = None
    if packed is not None and len(packed) == 4:
        packed = b"\x00" * 10 + b"\xff\xff" + packed
    if len(_V6_CACHE) < 1_000_000:
        _V6_CACHE[text] = packed
    return packed


# an SRV name's records in one random order, each record's target (for the
# additional section), where the orderings start, and whether a target could
# not be formatted
SRVShape = tuple[tuple[bytes, ...], tuple["_Glue", ...], tuple[int, ...], bool]


def _starts(n: int) -> tuple[int, ...]:
    """Where up to MAX_ROTATIONS rotations of n records start: evenly apart,
    so each ordering is led by a different record (every record leads one
    when n <= MAX_ROTATIONS)."""
    count = min(n, MAX_ROTATIONS)
    return tuple(j * n // count for j in range(count))


def _tail(
    qsec: bytes, ans: Sequence[bytes], add: bytes, nadd: int, limit: int
) -> tuple[bytes, bool]:
    """Reply tail (counts, question, records) within ``limit``; and truncated?"""
    base = wire.HEADER_LEN + len(qsec)
    size = base + sum(map(len, ans))
    if size + len(add) <= limit:
        return struct.pack(">HHHH", 1, len(ans), 0, nadd) + qsec + b"".join(ans) + add, False
    kept: list[bytes] = []
    used = base
    for rr in ans:
        used += len(rr)
        if used > limit:
            break
        kept.append(rr)
    return struct.pack(">HHHH", 1, len(kept), 0, 0) + qsec + b"".join(kept), True


pack_counts = struct.Struct(">HHHH").pack
_PORT = struct.Struct(">H").pack


class _Compiler:
    def __init__(self, rs: RecordSet, settings: DNSSettings, rng: random.Random) -> None:
        self.rs = rs
        self.settings = settings
        self.rng = rng
        self.ttl = struct.pack(">I", settings.ttl & 0xFFFFFFFF)
        self.ra = settings.recurse_on
        ttl = self.ttl
        self.a_head = b"\xc0\x0c\x00\x01\x00\x01" + ttl + b"\x00\x04"
        self.aaaa_head = b"\xc0\x0c\x00\x1c\x00\x01" + ttl + b"\x00\x10"
        self.srv_head = b"\xc0\x0c\x00\x21\x00\x01" + ttl
        self.weight = struct.pack(">H", settings.srv_weight & 0xFFFF)
        self.targets: dict[str, _Glue | None] = {}
        self.shared: dict[bytes, bytes] = {}  # the glue's parts, one object each
        self.a_rrs: dict[str, bytes] = {}  # an address's answer record
        self.aaaa_rrs: dict[str, bytes] = {}
        self.srv_rrs: dict[SRVTarget, bytes] = {}  # a target's SRV record
        # The SRV names with the same targets (a task's ports give four:
        # ``_tcp`` / ``_udp``, under the framework and under ``slave``) share
        # the work: the shuffled records are built once per set of targets
        # (targets -> their shuffled records), the additional sections once
        # per question length ((targets, question length) -> entry).
        self.shapes: dict[tuple[SRVTarget, ...], SRVShape] = {}
        self.memo: dict[tuple[tuple[SRVTarget, ...], int], tuple[Entry | None, bool]] = {}

    def address_entry(
        self, wname: bytes, values: Iterable[str], kind: int
    ) -> tuple[Entry | None, bool]:
        """A/AAAA entry; and whether a value could not be formatted."""
        if kind == _KIND_A:
            head, pack, rrlen, made = self.a_head, pack_v4, 16, self.a_rrs
        else:
            head, pack, rrlen, made = self.aaaa_head, pack_v6, 28, self.aaaa_rrs
        if len(made) > 500_000:
            made.clear()
        rrs: list[bytes] = []
        failed = False
        for value in values:
            # an address's record is made once per compiler: one object for
            # all the names with that address, here and in the servers
            rr = made.get(value)
            if rr is None:
                packed = pack(value)
                if packed is None:
                    failed = True
                    continue
                rr = made[value] = head + packed
            rrs.append(rr)
        if not rrs:
            return None, failed
        qsec = wname + (_QTAIL[wire.TYPE_A] if kind == _KIND_A else _QTAIL[wire.TYPE_AAAA])
        e = Entry(kind, qsec, tuple(rrs))
        # truncated when the records do not all fit in 512 bytes
        room = (wire.MIN_UDP_PAYLOAD - wire.HEADER_LEN - len(qsec)) // rrlen
        e.trunc = e.n > room
        return e, failed

    def srv_entry(self, wname: bytes, targets: Sequence[SRVTarget]) -> tuple[Entry | None, bool]:
        """SRV entry; and whether a target could not be formatted."""
        tkey = tuple(targets)
        key = (tkey, len(wname))
        hit = self.memo.get(key)
        qsec = wname + _QTAIL[wire.TYPE_SRV]
        if hit is not None:
            first, failed = hit
            if first is None:
                return hit
            # same records, question of the same length: the additional
            # sections (built on first use) are shared
            if first.adds is None:
                first.adds = [None] * len(first.starts)
            e = Entry(first.kind, qsec, first.rrs, first.starts, first.glue, first.adds)
            e.trunc = first.trunc
            return e, failed
        shape = self.shapes.get(tkey)
        if shape is None:
            shape = self.shapes[tkey] = self._srv_shape(tkey)
        if not shape[0]:
            self.memo[key] = (None, shape[3])
            return None, shape[3]
        e = self._srv_from_shape(qsec, shape)
        self.memo[key] = (e, shape[3])
        return e, shape[3]

    def _srv_records(self, targets: Sequence[SRVTarget]) -> tuple[dict[bytes, _Glue], bool]:
        """Each target's SRV record, with its glue; and whether a target could
        not be formatted. A target's record is built once per compiler."""
        failed = False
        records: dict[bytes, _Glue] = {}
        cache, known = self.srv_rrs, self.targets
        for target in targets:
            host, port = target
            g = known.get(host)  # (`_target` inlined for the hosts it has done)
            if g is None:
                g = self._target(host)
                if g is None:
                    failed = True
                    continue
            rr = cache.get(target)
            if rr is None:  # the SRV record up to the port, the port, the target
                rr = cache[target] = g[3] + _PORT(port & 0xFFFF) + g[1]
            records[rr] = g
            failed |= g[6]  # its first address is not one
        return records, failed

    def _srv_shape(self, targets: Sequence[SRVTarget]) -> SRVShape:
        """The records of ``targets`` in a random order, with their glue."""
        records, failed = self._srv_records(targets)
        if not records:
            return (), (), (), failed
        pairs = list(records.items())
        if len(pairs) > 1:
            self.rng.shuffle(pairs)
        rrs, glue = zip(*pairs, strict=True)
        return rrs, glue, _starts(len(rrs)), failed

    def _srv_from_shape(self, qsec: bytes, shape: SRVShape) -> Entry:
        """The SRV entry for one question, with its 512-byte flags.

        The additional sections are built here only when the answers fit in
        512 bytes (whether the glue fits decides truncation); otherwise on
        first use. When the orderings disagree on truncation, ``trunc`` stays
        None: the hot path does not answer the name.
        """
        rrs, glue, starts, _ = shape
        e = Entry(_KIND_SRV, qsec, rrs, starts, glue)
        limit = wire.MIN_UDP_PAYLOAD
        size = wire.HEADER_LEN + len(qsec) + sum(map(len, rrs))
        if size <= limit:
            truncs = {size + len(e.additional(v)[0]) > limit for v in range(len(starts))}
            if len(truncs) == 1:
                e.trunc = True in truncs
        else:
            e.trunc = True
        return e

    def _target(self, host: str) -> _Glue | None:
        """What an SRV target needs, computed once per host per compile."""
        got = self.targets.get(host)
        if got is not None or host in self.targets:
            return got
        twire = wire.text_to_wire(host)
        if twire is None:
            self.targets[host] = None
            return None
        rs = self.rs
        failed = False
        a_rdata = aaaa_rdata = b""
        a_values = rs.a.get(host, ())
        aaaa_values = rs.aaaa.get(host, ())
        # equal parts are one object (many targets share an agent's address,
        # all of one length the SRV record's head): less memory here and in
        # the servers, and pickle writes a repeated object as a reference
        shared = self.shared
        if len(shared) > 200_000:
            shared.clear()
        share = shared.setdefault
        if a_values:
            p4 = pack_v4(a_values[0])
            if p4 is None:
                failed = True
            else:
                a_rdata = b"\x00\x01\x00\x01" + self.ttl + b"\x00\x04" + p4
                a_rdata = share(a_rdata, a_rdata)
        if aaaa_values:
            p6 = pack_v6(aaaa_values[0])
            if p6 is None:
                failed = True
            else:
                aaaa_rdata = b"\x00\x1c\x00\x01" + self.ttl + b"\x00\x10" + p6
                aaaa_rdata = share(aaaa_rdata, aaaa_rdata)
        prefix = self.srv_head + struct.pack(">H", 6 + len(twire)) + b"\x00\x00" + self.weight
        lower = twire.lower()
        g = (host, twire, twire if lower == twire else lower, share(prefix, prefix),
             a_rdata, aaaa_rdata, failed)
        self.targets[host] = g
        return g


# What an SRV target needs in an answer: (host, the target as written in the
# SRV record, the additional records' owner, the SRV record up to the port,
# the A and AAAA records' type, class, TTL, length and address (empty if
# none), whether the first A/AAAA value is not an address). A plain tuple:
# an entry sent to the servers carries one per SRV target, and pickle
# encodes and decodes a plain tuple in C, a named tuple through Python
# (per 1,000 targets: 1.2 -> 0.12 ms to encode, 0.5 -> 0.11 ms to decode).
_Glue = tuple[str, bytes, bytes, bytes, bytes, bytes, bool]


def _glue_section(qsec: bytes, ans: Sequence[bytes], glue: Sequence[_Glue]) -> tuple[bytes, int]:
    """Additional records for the SRV targets, owners pointing at the targets."""
    pos = wire.HEADER_LEN + len(qsec)
    parts: list[bytes] = []
    seen: set[str] = set()
    for rr, (host, twire, lower, _, a_rdata, aaaa_rdata, _) in zip(ans, glue, strict=True):
        target_pos = pos + 18
        pos += len(rr)
        if host in seen or not (a_rdata or aaaa_rdata):
            continue
        seen.add(host)
        if lower == twire and target_pos < 0x4000:
            owner = struct.pack(">H", 0xC000 | target_pos)
        else:
            owner = lower
        if a_rdata:
            parts.append(owner + a_rdata)
        if aaaa_rdata:
            parts.append(owner + aaaa_rdata)
    return b"".join(parts), len(parts)


def compile_answers(
    rs: RecordSet,
    settings: DNSSettings,
    serial: int,
    rng: random.Random | None = None,
) -> AnswerTable:
    """Compile ``rs`` into an `AnswerTable` (pure; no I/O, no clock).

    ``serial`` is the SOA serial (the Unix time of the refresh); ``rng``
    drives the orderings kept for shuffling (inject one for repeatable tests).
    Names that no question can match (upper case, characters the original
    escapes, ``.*``, empty or over-long labels), names outside the domain and
    names under a zone that ``zone_resolvers`` forwards are left out; values
    that are not addresses are skipped and the name is answered by the slow
    path, which counts the failure as the original does.

    Each alias of ``settings.aliases`` gets the records renamed into it, in
    the same entries, and a zone view (`AnswerTable.aliases`). An alias that
    equals, contains or lies inside the domain or an earlier alias is
    ignored (the configuration refuses those).
    """
    rng = rng or random.Random()
    domain = wire.text_to_wire(fqdn(settings.domain.lower())) or b"\x00"
    hot: dict[bytes, Entry] = {}  # becomes the table's ``entries``
    main = _compile_zone(rs, settings, domain, hot, rng)
    views: list[AnswerTable] = []
    zones = [settings.domain]
    for alias in settings.aliases:
        apex = wire.text_to_wire(fqdn(alias.lower()))
        if apex is None or any(overlaps(alias, z) for z in zones):
            continue
        zones.append(alias)
        zsettings = alias_settings(settings, alias)
        zrs = alias_record_set(rs, settings.domain, alias)
        got = _compile_zone(zrs, settings, apex, hot, rng)
        # the apex exists (SOA, NS): NODATA, never NXDOMAIN, which a caching
        # server would apply to the apex's SOA and NS too
        got.names.add(apex)
        views.append(
            AnswerTable(
                rs=zrs,
                settings=zsettings,
                serial=serial,
                domain=apex,
                entries={},
                names=frozenset(got.names),
                slow_names=frozenset(got.slow),
                exotic=got.exotic,
                soa_rr=soa_record(zsettings, serial, apex),
                ns_rr=ns_record(zsettings, apex),
                info=got.info(),
                alias_zone=True,
            )
        )
    info = main.info()
    if views:
        info = TableInfo(
            entries=len(hot),
            names=sum(v.info.names for v in views) + info.names,
            skipped_names=sum(v.info.skipped_names for v in views) + info.skipped_names,
            slow_names=sum(v.info.slow_names for v in views) + info.slow_names,
        )
    return AnswerTable(
        rs=rs,
        settings=settings,
        serial=serial,
        domain=domain,
        entries=hot,
        names=frozenset(main.names),
        slow_names=frozenset(main.slow),
        exotic=main.exotic,
        soa_rr=soa_record(settings, serial),
        ns_rr=ns_record(settings),
        info=info,
        aliases=tuple(views),
    )


class _ZoneResult:
    """What compiling one zone's names found (its entries go to the shared dict)."""

    __slots__ = ("entries", "exotic", "names", "skipped", "slow")

    def __init__(self) -> None:
        self.names: set[bytes] = set()
        self.slow: set[bytes] = set()
        self.exotic = False
        self.skipped = 0
        self.entries = 0

    def info(self) -> TableInfo:
        return TableInfo(
            entries=self.entries,
            names=len(self.names),
            skipped_names=self.skipped,
            slow_names=len(self.slow),
        )


def _compile_zone(
    rs: RecordSet,
    settings: DNSSettings,
    zone: bytes,
    hot: dict[bytes, Entry],
    rng: random.Random,
) -> _ZoneResult:
    """Compile the names of ``rs`` inside wire ``zone`` into ``hot``."""
    comp = _Compiler(rs, settings, rng)
    forwarded_zones = _zones_inside(settings, zone)
    out = _ZoneResult()
    names, slow = out.names, out.slow
    before = len(hot)
    a_map, aaaa_map, srv_map = rs.a, rs.aaaa, rs.srv
    all_names: dict[str, None] = dict.fromkeys(a_map)
    all_names.update(dict.fromkeys(aaaa_map))
    all_names.update(dict.fromkeys(srv_map))
    for name in all_names:
        wname = zone_owner(name, zone, forwarded_zones)
        if wname is None:
            out.skipped += 1
            if "\\" in name:  # never a plain key: answered by the slow path
                out.exotic = True
            continue
        a_values = a_map.get(name)
        aaaa_values = aaaa_map.get(name)
        srv_values = srv_map.get(name)
        if not (a_values or aaaa_values or srv_values):
            continue
        names.add(wname)
        if _compile_name(comp, wname, a_values, aaaa_values, srv_values, hot):
            slow.add(wname)
    for wname in slow:
        for tail in _QTAIL.values():
            hot.pop(HOT_PREFIX + wname + tail, None)
    out.entries = len(hot) - before
    return out


def zone_owner(name: str, zone: bytes, forwarded: Sequence[bytes]) -> bytes | None:
    """The wire owner of record-set key ``name`` in wire ``zone``, or None
    when the zone does not hold it: a name no question can match (see
    `wire.plain_key_wire`: upper case, escaped characters, ``.*``, labels over
    63 or names over 255 octets), outside the zone, or under a zone that
    ``zoneResolvers`` forwards (``forwarded``, see `_zones_inside`).

    The compiler keeps exactly these names (`_compile_zone`), and so do the
    zone transfers (`mesosdns.dns.zonedata`).
    """
    wname = wire.plain_key_wire(name)
    if wname is None or not wire.in_zone(wname, zone):
        return None
    if forwarded and any(wire.in_zone(wname, z) for z in forwarded):
        return None
    return wname


def _compile_name(
    comp: _Compiler,
    wname: bytes,
    a_values: Sequence[str] | None,
    aaaa_values: Sequence[str] | None,
    srv_values: Sequence[SRVTarget] | None,
    hot: dict[bytes, Entry],
) -> bool:
    """Compile one name's entries into ``hot``; whether the slow path must
    answer it (a value could not be formatted). Also used alone, by the
    incremental compiler (`mesosdns.dns.incremental`)."""
    failed = False
    if a_values:
        e, bad = comp.address_entry(wname, a_values, _KIND_A)
        failed |= bad
        if e is not None:
            hot[e.key] = e
    if aaaa_values:
        e, bad = comp.address_entry(wname, aaaa_values, _KIND_AAAA)
        failed |= bad
        if e is not None:
            hot[e.key] = e
    if srv_values:
        e, bad = comp.srv_entry(wname, srv_values)
        failed |= bad
        if e is not None:
            if e.trunc is not None:
                hot[e.key] = e
            else:
                failed = True
    return failed


def zone_wires(settings: DNSSettings) -> dict[bytes, tuple[str, ...]]:
    """Wire forms (lower case) of the forwarded zones, with their resolvers."""
    out: dict[bytes, tuple[str, ...]] = {}
    for zone, resolvers in settings.zone_resolvers.items():
        zwire = wire.text_to_wire(fqdn(zone.lower()))
        if zwire is not None:
            out[zwire] = tuple(resolvers)
    return out


def _zones_inside(settings: DNSSettings, domain: bytes) -> list[bytes]:
    """Forwarded zones at or below the domain (or an alias): they win over it."""
    if not settings.external_on:
        return []
    return [z for z in zone_wires(settings) if wire.in_zone(z, domain)]
