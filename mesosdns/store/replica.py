"""A serving process's copy of the compiled answers, one version at a time.

`Replica.feed` takes the frames of the builder's updates (see
`mesosdns.store.update`). A change of a few names is applied at once, in
place, between two callbacks of the event loop: a query sees the version
before or after it, never half of it, and the SOA serial it sees is that
version's. A full update is decoded part by part (each part a few
milliseconds) into fresh tables while the old ones keep answering, and
published with one swap at its commit; a large change is decoded part by
part too, then applied at its commit. A preliminary full update (a large
first build's records, before they are compiled) is published only by a
server that has no table yet: it answers every question from the records.

After each version, ``on_version(replica, full)`` is called: the DNS server
takes the new table on a full update (entries changed in place need nothing),
and the HTTP API a new `Snapshot`.
"""

from __future__ import annotations

import gc
import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from itertools import chain, islice
from typing import Any

from mesosdns.dns.answers import AnswerTable, Entry, TableInfo
from mesosdns.dns.incremental import (
    ZoneSets,
    _Zone,
    assemble,
    set_zone_serial,
    zone_specs,
)
from mesosdns.dns.journal import Change, Journal
from mesosdns.dns.opzones import CompiledZones
from mesosdns.dns.settings import DNSSettings
from mesosdns.gcpause import gc_paused
from mesosdns.records.model import RecordSet, SRVTarget
from mesosdns.store.bodyfiles import Body, BodyFile, open_body
from mesosdns.store.snapshot import Snapshot
from mesosdns.store.update import IN_NAMES, IN_SLOW, KEEP, SMALL_FRAME, Update, read

log = logging.getLogger(__name__)


def _settle() -> None:
    """Move what a part of a full update built out of the cyclic GC's sight.

    A full update is millions of acyclic objects (freed by reference
    counting). Left in view, each young collection would scan a part's
    objects again and the full collections, coming as the staged tables
    grow, the whole of them, more than once: at 100k tasks that doubled the
    decoding time. Freezing after each part (a constant-time splice of the
    GC's lists) leaves the collector only what came since.
    """
    gc.freeze()


class ReplicaError(Exception):
    """The frames do not continue the version held (the reader must start
    again from a full update)."""


_RECORD_MAPS = ("a", "aaaa", "srv")
# a record map's type, as `RecordSet.count` names it
_TYPES = {"a": "A", "aaaa": "AAAA", "srv": "SRV"}


@dataclass(slots=True)
class _Staged:
    """A full update being received."""

    head: Update
    a: dict[str, tuple[str, ...]]
    aaaa: dict[str, tuple[str, ...]]
    srv: dict[str, tuple[SRVTarget, ...]]
    entries: dict[bytes, Entry]
    sets: list[ZoneSets]
    # per record map ("a", "aaaa", "srv"): while the update's names and
    # values are the held map's, in its order, the held map's items still to
    # come (the map is then taken as it is, not built again); None once they
    # differ
    follow: dict[str, Iterator[tuple[str, Any]] | None] = field(default_factory=dict)
    matched: dict[str, int] = field(default_factory=dict)
    # (name, value) pairs received per record type
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(_TYPES.values(), 0))


_END = object()


class Replica:
    def __init__(self, on_version: Callable[[Replica, bool], None] | None = None) -> None:
        self.on_version = on_version
        # the builder's counters, sent now and then between versions
        self.on_stats: Callable[[dict[str, Any]], None] | None = None
        self.version = 0
        self.lineage = ""  # the builder run whose versions these are
        self.serial = 0
        self.source = ""
        self.loaded_at = 0.0
        self.settings: DNSSettings | None = None
        self.records: RecordSet | None = None
        self.table: AnswerTable | None = None
        self.zones: list[_Zone] = []
        self.opzones: CompiledZones | None = None
        self.bodies: dict[str, Body] = {}
        self.stats: dict[str, Any] = {}
        self.applied_at = 0.0  # monotonic time of the last version applied
        self.preliminary = False  # the version held is a preliminary one
        # the records' (name, value) pairs per type, kept as versions come
        # (``RecordSet.count`` walks every name: too slow for each scrape)
        self.counts: dict[str, int] = {}
        self._staged: _Staged | None = None  # a full update being received
        self._change: Update | None = None  # a large change being received
        # recent versions' changes, for IXFR (noted while zone transfers are on)
        self.journal = Journal()

    @property
    def ready(self) -> bool:
        return self.table is not None

    def snapshot(self) -> Snapshot | None:
        """The HTTP API's view of the current version."""
        if self.records is None:
            return None
        return Snapshot(
            self.records, self.serial, loaded_at=self.loaded_at, source=self.source,
            _bodies=dict(self.bodies), prebuilt=True, compiled=not self.preliminary,
            counts=dict(self.counts),
        )

    # -- frames --------------------------------------------------------

    def feed(self, body: bytes) -> bool:
        """One frame; True when it completed a version (now applied). A
        large frame is decoded and applied with the cyclic GC paused."""
        if len(body) <= SMALL_FRAME:
            return self._feed(read(body))
        # thousands of acyclic objects: out of the cyclic GC's way from their
        # decoding to the freeze after the part (a young collection between
        # the two would scan them all)
        with gc_paused():
            return self._feed(read(body))

    def _feed(self, msg: tuple[Any, ...]) -> bool:
        kind = msg[0]
        if kind == "stats":
            self.stats = msg[1]
            if self.on_stats is not None:
                self.on_stats(self.stats)
            return False
        if kind == "update":
            self._staged = self._change = None
            self.apply(msg[1])
            return True
        if kind == "begin":
            head: Update = msg[1]
            self._staged = None
            self._change = None
            if head.full:
                self._begin(head)
            else:
                self._change = head
            return False
        change = self._change
        if change is not None:
            return self._feed_change(change, kind, msg)
        staged = self._staged
        if staged is None:
            raise ReplicaError(f"a {kind!r} frame outside an update")
        if kind == "part":
            self._part(staged, msg[1], msg[2])
            _settle()
            return False
        if kind == "marks":
            self._marks(staged.sets[msg[1]], msg[2])
            _settle()
            return False
        if kind == "commit":
            self._staged = None
            if msg[1] != staged.head.version:
                raise ReplicaError(f"commit {msg[1]} ends update {staged.head.version}")
            self._publish_full(staged)
            return True
        raise ReplicaError(f"unknown frame kind {kind!r}")

    def _feed_change(self, change: Update, kind: str, msg: tuple[Any, ...]) -> bool:
        """A large change arrives in parts: decoded as they come, applied at
        its commit (all at once, so still one step for the queries)."""
        if kind == "part":
            getattr(change, msg[1]).update(msg[2])
            return False
        if kind == "marks":
            change.marks[msg[1]].update(msg[2])
            return False
        if kind == "commit":
            self._change = None
            if msg[1] != change.version:
                raise ReplicaError(f"commit {msg[1]} ends update {change.version}")
            self._apply_change(change)
            return True
        raise ReplicaError(f"unknown frame kind {kind!r}")

    def apply(self, u: Update) -> None:
        """A whole update (full, or the change after the version held)."""
        if u.full:
            self._begin(u)
            staged = self._staged
            assert staged is not None
            for name in ("a", "aaaa", "srv", "entries"):
                self._part(staged, name, getattr(u, name))
            for sets, marks in zip(staged.sets, u.marks, strict=True):
                self._marks(sets, marks)
            self._staged = None
            self._publish_full(staged)
            return
        self._apply_change(u)

    # -- full updates --------------------------------------------------

    def _begin(self, head: Update) -> None:
        if head.settings is None:
            raise ReplicaError("a full update without settings")
        nzones = len(head.marks)
        sets = [
            ZoneSets(set(), set(), head.exotic[i], head.zone_info[i]) for i in range(nzones)
        ]
        staged = self._staged = _Staged(head, {}, {}, {}, {}, sets)
        if self.records is not None:
            for name in _RECORD_MAPS:
                held: dict[str, Any] = getattr(self.records, name)
                staged.follow[name] = iter(held.items())
                staged.matched[name] = 0

    def _part(self, staged: _Staged, name: str, chunk: dict[Any, Any]) -> None:
        if name == "entries":
            entries = staged.entries
            for key, e in chunk.items():
                if e is not None:
                    entries[key] = e
            return
        target: dict[Any, Any] = getattr(staged, name)
        staged.counts[_TYPES[name]] += sum(map(len, filter(None, chunk.values())))
        held: dict[str, Any] = {} if self.records is None else getattr(self.records, name)
        items = iter(chunk.items())
        follow = staged.follow.get(name)
        if follow is not None:
            for n, item in enumerate(items):
                if next(follow, _END) != item:
                    # they differ from here: the held items that matched, then
                    # the rest as they come
                    target.update(islice(held.items(), staged.matched[name] + n))
                    staged.follow[name] = None
                    items = chain((item,), items)
                    break
            else:
                staged.matched[name] += len(chunk)
                return
        # a name's values equal to the version held are kept as its objects:
        # while both versions are held (the new one decoded while the old
        # one answers), they are held once
        had = held.get
        for key, values in items:
            if values is not None:
                old = had(key)
                target[key] = old if old == values else values

    @staticmethod
    def _marks(sets: ZoneSets, marks: dict[bytes, int]) -> None:
        for wname, m in marks.items():
            if m & IN_NAMES:
                sets.names.add(wname)
            if m & IN_SLOW:
                sets.slow.add(wname)

    def _publish_full(self, staged: _Staged) -> None:
        head = staged.head
        if head.preliminary and self.table is not None and not self.preliminary:
            # records not compiled yet: a server with a compiled table (its
            # builder restarted) answers from it until the compiled version
            return
        self.preliminary = head.preliminary
        settings = head.settings
        assert settings is not None
        specs = zone_specs(settings)
        if len(specs) != len(staged.sets):
            raise ReplicaError("the update's zones do not match its settings")
        for name in _RECORD_MAPS:
            follow = staged.follow.get(name)
            if follow is None:
                continue
            held = getattr(self.records, name)
            if next(follow, _END) is _END:  # the very map held
                setattr(staged, name, held)
            else:
                setattr(staged, name, dict(islice(held.items(), staged.matched[name])))
        rs = RecordSet(
            domain=settings.domain, a=staged.a, aaaa=staged.aaaa, srv=staged.srv,
            skipped=head.skipped,
        )
        info = head.info or TableInfo(len(staged.entries), 0, 0, 0)
        table, zones = assemble(
            rs, settings, head.serial, staged.entries, specs, staged.sets, info
        )
        self.settings, self.records, self.table, self.zones = settings, rs, table, zones
        self.counts = staged.counts
        self.journal.reset(settings.transfer is not None)
        self.opzones = None if head.opzones is KEEP else head.opzones  # type: ignore[assignment]
        self._common(head)
        if self.on_version is not None:
            self.on_version(self, True)

    # -- changes -------------------------------------------------------

    def _apply_change(self, u: Update) -> None:
        rs, table = self.records, self.table
        if rs is None or table is None:
            raise ReplicaError(f"update {u.version} without a full update before it")
        if u.version != self.version + 1:
            raise ReplicaError(f"update {u.version} does not follow version {self.version}")
        noted: list[Change] | None = [] if self.journal.enabled else None
        counts = self.counts
        for kind, name in enumerate(_RECORD_MAPS):
            target: dict[str, Any] = getattr(rs, name)
            held = target.get
            pairs = 0
            for key, values in getattr(u, name).items():
                old = held(key)
                if noted is not None:  # the values about to be replaced, for IXFR
                    noted.append((kind, key, old, values))
                if old is not None:
                    pairs -= len(old)
                if values is None:
                    target.pop(key, None)
                else:
                    target[key] = values
                    pairs += len(values)
            counts[_TYPES[name]] += pairs
        entries, hot = table.entries, table.hot
        for key, e in u.entries.items():
            # the hot view makes the new replies when the name is next asked
            hot.drop(key)
            if e is None:
                entries.pop(key, None)
            else:
                entries[key] = e
        for zone, marks, exotic in zip(self.zones, u.marks, u.exotic, strict=True):
            names, slow = zone.names, zone.slow
            for wname, m in marks.items():
                if m & IN_NAMES:
                    names.add(wname)
                else:
                    names.discard(wname)
                if m & IN_SLOW:
                    slow.add(wname)
                else:
                    slow.discard(wname)
            zone.table.exotic = exotic
        if u.info is not None:
            table.info = u.info
        if noted is not None:
            self.journal.add(self.serial, u.serial, noted)
        set_zone_serial(self.zones, u.serial)
        if u.skipped != rs.skipped:
            self.records = rs = RecordSet(
                domain=rs.domain, a=rs.a, aaaa=rs.aaaa, srv=rs.srv, skipped=u.skipped
            )
            table.rs = rs
        if u.opzones is not KEEP:
            self.opzones = u.opzones  # type: ignore[assignment]
        self._common(u)
        if self.on_version is not None:
            self.on_version(self, False)

    def _bodies(self, sent: dict[str, bytes | BodyFile]) -> dict[str, Body]:
        """The bodies of a version: the files the builder wrote, mapped (one
        that cannot be opened keeps the last one, and says so)."""
        out: dict[str, Body] = {}
        for key, body in sent.items():
            if isinstance(body, BodyFile):
                try:
                    out[key] = open_body(body)
                except OSError as exc:
                    log.warning("HTTP body %s: %s; serving the last one", key, exc)
                    last = self.bodies.get(key)
                    if last is not None:
                        out[key] = last
            else:
                out[key] = body
        return out

    def _common(self, u: Update) -> None:
        self.version, self.serial, self.source = u.version, u.serial, u.source
        self.loaded_at = u.loaded_at
        if u.bodies is not KEEP:
            self.bodies = self._bodies(u.bodies)  # type: ignore[arg-type]
        if u.stats:
            self.stats = u.stats
        self.applied_at = time.monotonic()
