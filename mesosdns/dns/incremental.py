"""Compiled answers kept current in place, name by name (stream mode).

`LiveAnswers` compiles a record set whose maps are live views (see
`mesosdns.records.incremental`) into an `AnswerTable` exactly as
`compile_answers` does, and afterwards recompiles only the names it is told
changed: their entries are replaced in the table's dicts *in place*
(``entries``; their keys leave the hot path's ``hot``), and the sets of names and slow names
are updated. Copying the dicts per change would cost O(names), far too much
for one task event in a large cluster; in place, a change costs O(its names).

Why in place is safe: the DNS server reads the table from the event loop's
thread only, and updates run on that thread too, between two callbacks. A
query therefore sees every change of a batch or none. The table's record set
(``rs``, read by the slow path) is a live view, current at the same moments.

Each alias zone gets the same changes, renamed (`mesosdns.dns.aliases`); its
zone view reads live renamed views. A SOA serial change replaces the few
SOA records (`set_serial`): the negative answers splice ``soa_rr`` per query,
so nothing else embeds the serial.

Large SRV names (a big app's ``_app._tcp``: one target per instance and
port) cost O(targets) to recompile and change with each of the app's tasks;
when one already has an entry, it keeps that entry while the change is
deferred (`pending`), and the caller recompiles the deferred names together a
little later (`compile_pending`): scaling a 1000-instance app then costs a
few recompiles per second instead of one per task, and only those SRV
answers lag, by that delay.

Once `pending` is compiled, the result is the table `compile_answers` would
build for the current records (the values of a name in the order the
incremental generator keeps them), except for two harmless things: an
``exotic`` flag, once set, stays set (it only sends misses to the slow
path), and ``info.skipped_names`` keeps the count of the full compile.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TypeVar, overload

from mesosdns.dns import wire
from mesosdns.dns.aliases import Renamer, alias_settings, overlaps
from mesosdns.dns.answers import (
    _QTAIL,
    HOT_PREFIX,
    AnswerTable,
    Entry,
    SRVShape,
    TableInfo,
    _compile_name,
    _compile_zone,
    _Compiler,
    _Glue,
    _starts,
    _zones_inside,
    ns_record,
    soa_record,
)
from mesosdns.dns.settings import DNSSettings, fqdn
from mesosdns.records.model import RecordSet, SRVTarget

T = TypeVar("T")
V = TypeVar("V")

# SRV names with more targets than this are recompiled in batches (`update`)
DEFER_TARGETS = 64
# SRV names with at least this many targets keep their order across changes
PRIOR_ORDER_MIN = 8
# names whose wire form is remembered (cleared when full)
WIRE_CACHE = 100_000


@dataclass(slots=True)
class _Zone:
    """One zone of the table: the cluster domain or an alias."""

    apex: bytes
    table: AnswerTable  # the main table, or the alias's zone view
    settings: DNSSettings
    rs: RecordSet
    names: set[bytes]
    slow: set[bytes]
    forwarded: list[bytes]
    renamer: Renamer | None  # None: the cluster domain itself


@dataclass(frozen=True, slots=True)
class ZoneSpec:
    """Where one zone of a table lives: the cluster domain or an alias."""

    apex: bytes
    settings: DNSSettings
    renamer: Renamer | None  # None: the cluster domain itself
    forwarded: list[bytes]  # zones inside it that zoneResolvers forward


@dataclass(slots=True)
class ZoneSets:
    """What a zone's compile found besides its entries."""

    names: set[bytes]
    slow: set[bytes]
    exotic: bool
    info: TableInfo


def zone_specs(settings: DNSSettings) -> list[ZoneSpec]:
    """The cluster domain, then each alias that overlaps no earlier zone."""
    domain = wire.text_to_wire(fqdn(settings.domain.lower())) or b"\x00"
    specs = [ZoneSpec(domain, settings, None, _zones_inside(settings, domain))]
    zones = [settings.domain]
    for alias in settings.aliases:
        apex = wire.text_to_wire(fqdn(alias.lower()))
        if apex is None or any(overlaps(alias, z) for z in zones):
            continue
        zones.append(alias)
        specs.append(
            ZoneSpec(
                apex,
                alias_settings(settings, alias),
                Renamer(settings.domain, alias),
                _zones_inside(settings, apex),
            )
        )
    return specs


def zone_records(rs: RecordSet, spec: ZoneSpec) -> RecordSet:
    """The zone's record set: ``rs`` itself, or live renamed views of it."""
    ren = spec.renamer
    if ren is None:
        return rs
    return RecordSet(
        domain=ren.alias.rstrip("."),
        a=RenamedView(rs.a, ren, _same),
        aaaa=RenamedView(rs.aaaa, ren, _same),
        srv=RenamedView(rs.srv, ren, _renamed_targets(ren)),
        skipped=rs.skipped,
    )


def assemble(
    rs: RecordSet,
    settings: DNSSettings,
    serial: int,
    entries: dict[bytes, Entry],
    specs: Sequence[ZoneSpec],
    sets: Sequence[ZoneSets],
    info: TableInfo,
) -> tuple[AnswerTable, list[_Zone]]:
    """The main table (alias zone views inside) and its zones, from compiled
    entries and each zone's sets; the zones share the sets given."""
    zones: list[_Zone] = []
    views: list[AnswerTable] = []
    for spec, got in zip(specs[1:], sets[1:], strict=True):
        zrs = zone_records(rs, spec)
        view = AnswerTable(
            rs=zrs,
            settings=spec.settings,
            serial=serial,
            domain=spec.apex,
            entries={},
            names=got.names,
            slow_names=got.slow,
            exotic=got.exotic,
            soa_rr=soa_record(spec.settings, serial, spec.apex),
            ns_rr=ns_record(spec.settings, spec.apex),
            info=got.info,
            alias_zone=True,
        )
        views.append(view)
        zones.append(
            _Zone(spec.apex, view, spec.settings, zrs, got.names, got.slow, spec.forwarded,
                  spec.renamer)
        )
    main, got = specs[0], sets[0]
    table = AnswerTable(
        rs=rs,
        settings=settings,
        serial=serial,
        domain=main.apex,
        entries=entries,
        names=got.names,
        slow_names=got.slow,
        exotic=got.exotic,
        soa_rr=soa_record(settings, serial),
        ns_rr=ns_record(settings),
        info=info,
        aliases=tuple(views),
    )
    zones.insert(0, _Zone(main.apex, table, settings, rs, got.names, got.slow, main.forwarded,
                          None))
    return table, zones


def set_zone_serial(zones: Sequence[_Zone], serial: int) -> None:
    """A new SOA serial for every zone (the SOA records are rebuilt)."""
    for zone in zones:
        t = zone.table
        t.serial = serial
        if zone.renamer is None:
            t.soa_rr = soa_record(zone.settings, serial)
        else:
            t.soa_rr = soa_record(zone.settings, serial, zone.apex)


def table_info(zones: Sequence[_Zone], skipped: int) -> TableInfo:
    return TableInfo(
        entries=len(zones[0].table.entries),
        names=sum(len(z.names) for z in zones),
        skipped_names=skipped,
        slow_names=sum(len(z.slow) for z in zones),
    )


class LiveAnswers:
    """An `AnswerTable` for live records, updated in place by `update`.

    Every table key and every zone name that an update may have changed is
    remembered (`take_touched`), so that the change can be published to
    other copies of the table (`mesosdns.store`).
    """

    def __init__(
        self,
        rs: RecordSet,
        settings: DNSSettings,
        serial: int,
        rng: random.Random | None = None,
        *,
        defer_targets: int = DEFER_TARGETS,
    ) -> None:
        self.settings = settings
        self.rng = rng or random.Random()
        self.defer_targets = defer_targets
        self.pending: set[str] = set()  # names whose recompiling was deferred
        # name -> its wire form (None: no question matches it); an app's
        # names change with each of its tasks
        self._wires: dict[str, bytes | None] = {}
        entries: dict[bytes, Entry] = {}
        self.specs = zone_specs(settings)
        sets: list[ZoneSets] = []
        for spec in self.specs:
            got = _compile_zone(zone_records(rs, spec), settings, spec.apex, entries, self.rng)
            if spec.renamer is not None:
                # the apex exists (SOA, NS): NODATA, never NXDOMAIN
                got.names.add(spec.apex)
            sets.append(ZoneSets(got.names, got.slow, got.exotic, got.info()))
        self._skipped = sum(z.info.skipped_names for z in sets)
        main = sets[0].info
        info = TableInfo(main.entries, main.names, self._skipped, main.slow_names)
        self.table, self._zones = assemble(
            rs, settings, serial, entries, self.specs, sets, info
        )
        self._compilers = [_LiveCompiler(z.rs, settings, self.rng) for z in self._zones]
        self.touched: set[bytes] = set()  # table keys changed since take_touched
        self.touched_names: list[set[bytes]] = [set() for _ in self._zones]
        self._update_info()

    @property
    def zones(self) -> list[_Zone]:
        return self._zones

    @property
    def skipped(self) -> int:
        return self._skipped

    def take_touched(self) -> tuple[set[bytes], list[set[bytes]]]:
        """The table keys and the zones' names changed since the last call."""
        keys, self.touched = self.touched, set()
        names, self.touched_names = self.touched_names, [set() for _ in self._zones]
        return keys, names

    @property
    def serial(self) -> int:
        return self.table.serial

    def update(self, changed: Iterable[str], *, defer: bool = True, seed: bool = True) -> int:
        """Recompile the names of the cluster domain in ``changed`` (and their
        renamed forms in each alias), in place. Returns the number of names
        recompiled over all zones.

        With ``defer``, an SRV name with more than ``defer_targets`` targets
        that already has an entry keeps it (stale) and joins `pending`:
        recompiling such a name costs O(targets) (a large app's SRV names
        change with each of its tasks), so the caller batches those
        (`compile_pending`, a fraction of a second later).

        With ``seed``, the SRV targets' additional records are taken from
        the entries being replaced, except for the hosts in ``changed``; a
        deferred name's entry can predate a change of its targets' own
        records (an earlier update's), so `compile_pending` builds them anew.
        """
        names = list(changed)
        if not names:
            return 0
        table = self.table
        entries, hot = table.entries, table.hot
        plain, wires = wire.plain_key_wire, self._wires
        if len(wires) > WIRE_CACHE:
            wires.clear()
        in_zone = wire.in_zone
        srv_key = _QTAIL[wire.TYPE_SRV]
        limit = self.defer_targets if defer else -1
        deferred: set[str] = set()  # decided in the cluster domain, for every zone
        done = 0
        touched = self.touched
        for zone, comp, marked in zip(
            self._zones, self._compilers, self.touched_names, strict=True
        ):
            rs, ren = zone.rs, zone.renamer
            comp.new_update(name if ren is None else ren.rename(name) for name in names)
            for name in names:
                if name in deferred:
                    continue
                zname = name if ren is None else ren.rename(name)
                if zname is None:
                    continue
                wname = wires.get(zname, b"")
                if wname == b"":
                    wname = wires[zname] = plain(zname)
                if wname is None:
                    if "\\" in zname and _has(rs, zname):
                        zone.table.exotic = True
                    continue
                if not in_zone(wname, zone.apex) or (
                    zone.forwarded and any(in_zone(wname, z) for z in zone.forwarded)
                ):
                    continue
                a_values = rs.a.get(zname)
                aaaa_values = rs.aaaa.get(zname)
                srv_values = rs.srv.get(zname)
                if ren is None and limit >= 0:
                    if (
                        srv_values is not None
                        and len(srv_values) > limit
                        and not (a_values or aaaa_values)
                        and HOT_PREFIX + wname + srv_key in entries
                    ):
                        self.pending.add(name)
                        deferred.add(name)
                        continue
                    self.pending.discard(name)
                done += 1
                prefix = HOT_PREFIX + wname
                old = entries.get(prefix + srv_key)
                if seed and old is not None and old.glue is not None:
                    comp.seed(old.glue)
                comp.prior = old
                for tail in _QTAIL.values():
                    key = prefix + tail
                    if entries.pop(key, None) is not None:
                        hot.drop(key)
                        touched.add(key)
                marked.add(wname)
                zone.slow.discard(wname)
                if not (a_values or aaaa_values or srv_values):
                    if wname != zone.apex or ren is None:
                        zone.names.discard(wname)
                    continue
                zone.names.add(wname)
                fresh: dict[bytes, Entry] = {}
                if _compile_name(comp, wname, a_values, aaaa_values, srv_values, fresh):
                    zone.slow.add(wname)
                    continue
                entries.update(fresh)
                touched.update(fresh)
        self._update_info()
        return done

    def compile_pending(self) -> int:
        """Recompile the names `update` deferred; how many were compiled."""
        names, self.pending = self.pending, set()
        return self.update(names, defer=False, seed=False)

    def set_serial(self, serial: int) -> None:
        """A new SOA serial for every zone (the SOA records are rebuilt)."""
        set_zone_serial(self._zones, serial)

    def _update_info(self) -> None:
        self.table.info = table_info(self._zones, self._skipped)


class _LiveCompiler(_Compiler):
    """A zone's compiler, kept from one update to the next.

    The SRV targets' additional records (``targets``, one `_Glue` per target
    host) live for one update. They are seeded from the entries being
    replaced (`seed`: their ``glue``), except for the hosts whose own records
    changed, so recompiling a name rebuilds only what changed. Within one
    update, the SRV names with the same targets share the work, as in a
    whole compile (`_Compiler.srv_entry`).
    """

    def __init__(self, rs: RecordSet, settings: DNSSettings, rng: random.Random) -> None:
        super().__init__(rs, settings, rng)
        # ``shapes`` and ``memo`` (see `_Compiler`) live for one update
        self.stale: set[str] = set()  # per update: hosts not to seed
        # the SRV entry being replaced (set by LiveAnswers.update per name)
        self.prior: Entry | None = None

    def new_update(self, changed: Iterable[str | None]) -> None:
        self.shapes.clear()
        self.memo.clear()
        self.targets.clear()
        self.stale = {name for name in changed if name is not None}

    def seed(self, glue: Iterable[_Glue]) -> None:
        """Targets known from an entry about to be replaced (unless stale)."""
        targets, stale = self.targets, self.stale
        for g in glue:
            host = g[0]
            if host not in targets and host not in stale:
                targets[host] = g

    def _srv_shape(self, targets: Sequence[SRVTarget]) -> SRVShape:
        """As `_Compiler._srv_shape`, but a name that had an entry keeps its
        random order: the records that remain stay in place and new ones go
        in at random places (still a uniformly random order), so a change
        costs dictionary look-ups per target, not a shuffle."""
        prior = self.prior
        if prior is None or prior.glue is None or len(targets) < PRIOR_ORDER_MIN:
            return super()._srv_shape(targets)
        if len(self.srv_rrs) > 500_000:
            self.srv_rrs.clear()
        records, failed = self._srv_records(targets)
        if not records:
            return (), (), (), failed
        order = [rr for rr in prior.rrs if rr in records]
        if len(order) < len(records):
            had = set(order)
            randrange = self.rng.randrange
            for rr in records:
                if rr not in had:
                    order.insert(randrange(len(order) + 1), rr)
        rrs = tuple(order)
        return rrs, tuple(map(records.__getitem__, rrs)), _starts(len(rrs)), failed


def _has(rs: RecordSet, name: str) -> bool:
    return name in rs.a or name in rs.aaaa or name in rs.srv


def _same(values: V, ren: Renamer) -> V:
    return values


def _renamed_targets(
    ren: Renamer,
) -> Callable[[tuple[SRVTarget, ...], Renamer], tuple[SRVTarget, ...]]:
    """SRV targets renamed into the alias (each renamed target built once)."""
    cache: dict[SRVTarget, SRVTarget] = {}

    def rename(values: tuple[SRVTarget, ...], _: Renamer) -> tuple[SRVTarget, ...]:
        out = []
        for t in values:
            got = cache.get(t)
            if got is None:
                if len(cache) > 100_000:
                    cache.clear()
                got = cache[t] = SRVTarget(ren.rename_or_keep(t.host), t.port)
            out.append(got)
        return tuple(out)

    return rename


class RenamedView(Mapping[str, V]):
    """A live view of a cluster-domain map under an alias zone: names (and,
    through ``convert``, values) renamed; names outside the domain left out,
    as `mesosdns.dns.aliases.alias_record_set` does."""

    __slots__ = ("_base", "_convert", "_ren")

    def __init__(
        self, base: Mapping[str, V], ren: Renamer, convert: Callable[[V, Renamer], V]
    ) -> None:
        self._base = base
        self._ren = ren
        self._convert = convert

    def __getitem__(self, name: str) -> V:
        back = self._ren.back(name)
        if back is None:
            raise KeyError(name)
        return self._convert(self._base[back], self._ren)

    @overload
    def get(self, name: str, /) -> V | None: ...
    @overload
    def get(self, name: str, /, default: V | T) -> V | T: ...
    def get(self, name: str, /, default: V | T | None = None) -> V | T | None:
        back = self._ren.back(name)
        values = self._base.get(back) if back is not None else None
        return self._convert(values, self._ren) if values is not None else default

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        back = self._ren.back(name)
        return back is not None and back in self._base

    def __iter__(self) -> Iterator[str]:
        rename = self._ren.rename
        for name in self._base:
            new = rename(name)
            if new is not None:
                yield new

    def __len__(self) -> int:
        return sum(1 for _ in self)
