"""The one engine: records and compiled answers, kept current by changes.

`Engine` holds the incremental generator (the records of the cluster state)
and the live answer table compiled from it. Both modes feed it: a stream
event is a small change of the generator, a poll is the diff of the new
state against the one it holds (`mesosdns.builder.diff`); only a first
state, or a configuration that changes what every record looks like, is
built whole. After a change, `flush` recompiles the names that changed and
returns the `Update` that carries them to the serving processes; `full`
returns the whole current version, for a server that starts or restarts.
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from mesosdns.builder.diff import apply_state, compatible
from mesosdns.dns.answers import TableInfo
from mesosdns.dns.incremental import DEFER_TARGETS, LiveAnswers, zone_specs
from mesosdns.dns.opzones import CompiledZones
from mesosdns.dns.settings import DNSSettings
from mesosdns.gcpause import gc_paused
from mesosdns.records.generator import GeneratorParams
from mesosdns.records.incremental import IncrementalGenerator
from mesosdns.records.model import RecordSet, SRVTarget
from mesosdns.state.model import State, Task
from mesosdns.store.bodyfiles import BodyFile
from mesosdns.store.update import IN_NAMES, IN_SLOW, KEEP, Keep, Update

# a first build with at least this many names (about 25k tasks: a compile of
# a second or more) sends its records ahead of its answers (`preliminary`)
PRELIMINARY_NAMES = 100_000


@dataclass(frozen=True, slots=True)
class Compilers:
    """What the answers are compiled with: the DNS settings, and the operator
    zones' compile step (None: no operator zones)."""

    settings: DNSSettings
    zones: Any = None  # Callable[[RecordSet, int, State, GeneratorParams], CompiledZones | None]


class Engine:
    def __init__(
        self,
        *,
        rng: random.Random | None = None,
        defer_targets: int = DEFER_TARGETS,
        preliminary_names: int = PRELIMINARY_NAMES,
    ) -> None:
        self.rng = rng or random.Random()
        self.defer_targets = defer_targets
        self.preliminary_names = preliminary_names
        self.gen: IncrementalGenerator | None = None
        self.live: LiveAnswers | None = None
        self.compilers: Compilers | None = None
        self.opzones: CompiledZones | None = None
        self.version = 0
        self.serial = 0
        self.source = ""
        self.loaded_at = 0.0

    @property
    def ready(self) -> bool:
        return self.live is not None

    def next_serial(self, now: float | None = None) -> int:
        """Unix time, but never going backwards (clock steps, sub-second
        changes)."""
        serial = int(time.time() if now is None else now) & 0xFFFFFFFF
        if self.serial and serial <= self.serial:
            serial = (self.serial + 1) & 0xFFFFFFFF
        return serial

    def can_diff(self, params: GeneratorParams, compilers: Compilers) -> bool:
        """Whether a state with ``params`` can be applied as a diff."""
        return (
            self.gen is not None
            and self.live is not None
            and compilers == self.compilers
            and compatible(self.gen, params)
        )

    # -- full builds ---------------------------------------------------

    def build(
        self,
        state: State,
        params: GeneratorParams,
        compilers: Compilers,
        serial: int,
        orphans: Sequence[Task] = (),
    ) -> tuple[IncrementalGenerator, LiveAnswers, CompiledZones | None]:
        """Everything of ``state``, built aside (pure CPU: may run in a
        thread); `install` makes it current."""
        gen = self.generate(state, params, orphans)
        return self.compile(gen, state, params, compilers, serial)

    @staticmethod
    def generate(
        state: State, params: GeneratorParams, orphans: Sequence[Task] = ()
    ) -> IncrementalGenerator:
        """The records of ``state``: the first half of `build`."""
        return IncrementalGenerator.from_state(state, params, orphans)

    def preliminary(
        self, gen: IncrementalGenerator, compilers: Compilers, serial: int, source: str
    ) -> Update | None:
        """A first version of ``gen``'s records, before they are compiled, or
        None: the engine has published a version already, or the records are
        few (their compile takes well under a second).

        Its tables have no entries and every zone is answered from the
        records (the slow path, which answers any question as the original
        does, in tens of microseconds): at 100k tasks the servers answer
        about as many seconds sooner as the compile takes. The compiled
        version, with the same serial, follows. A server that has a compiled
        table already (its builder restarted) keeps answering from it.
        """
        if self.ready or len(gen.a) + len(gen.aaaa) + len(gen.srv) < self.preliminary_names:
            return None
        nzones = len(zone_specs(compilers.settings))
        none = TableInfo(0, 0, 0, 0)
        self.version += 1
        with gc_paused():  # a copy of every name's values: acyclic
            a, aaaa, srv = _record_maps(gen)
            return Update(
                self.version, True, serial, source, time.time(),
                settings=compilers.settings, skipped=gen.skipped, a=a, aaaa=aaaa, srv=srv,
                marks=[{} for _ in range(nzones)], exotic=[True] * nzones,
                zone_info=[none] * nzones, info=none, opzones=None, bodies={},
                preliminary=True,
            )

    def compile(
        self,
        gen: IncrementalGenerator,
        state: State,
        params: GeneratorParams,
        compilers: Compilers,
        serial: int,
    ) -> tuple[IncrementalGenerator, LiveAnswers, CompiledZones | None]:
        """The answers of ``gen``'s records: the second half of `build`."""
        with gc_paused():
            live = LiveAnswers(
                gen.record_set(), compilers.settings, serial, self.rng,
                defer_targets=self.defer_targets,
            )
        zones = None
        if compilers.zones is not None:
            zones = compilers.zones(
                gen.snapshot(), serial, state, params
            )
        return gen, live, zones

    def install(
        self,
        built: tuple[IncrementalGenerator, LiveAnswers, CompiledZones | None],
        compilers: Compilers,
        source: str,
    ) -> Update:
        self.gen, self.live, self.opzones = built
        self.compilers = compilers
        self.live.take_touched()
        self.serial = self.live.serial
        self.source, self.loaded_at = source, time.time()
        self.version += 1
        return self.full()

    def full(self, bodies: dict[str, bytes | BodyFile] | Keep = KEEP) -> Update:
        """The current version, whole."""
        gen, live = self.gen, self.live
        assert gen is not None and live is not None
        with gc_paused():  # a copy of every name and entry: acyclic
            return self._full(gen, live, bodies)

    def _full(
        self, gen: IncrementalGenerator, live: LiveAnswers,
        bodies: dict[str, bytes | BodyFile] | Keep,
    ) -> Update:
        marks = [_marks(z.names, z.slow) for z in live.zones]
        a, aaaa, srv = _record_maps(gen)
        return Update(
            self.version, True, self.serial, self.source, self.loaded_at,
            settings=live.settings, skipped=gen.skipped,
            a=a, aaaa=aaaa, srv=srv,
            entries=dict(live.table.entries),
            marks=marks,
            exotic=[z.table.exotic for z in live.zones],
            zone_info=[_zone_info(z) for z in live.zones],
            info=live.table.info,
            opzones=self.opzones,
            bodies=bodies,
        )

    # -- changes -------------------------------------------------------

    def apply_state(self, state: State, params: GeneratorParams) -> int:
        """A polled state, as a diff (see `can_diff`)."""
        assert self.gen is not None
        return apply_state(self.gen, state, params)

    def flush(self, source: str | None = None, *, defer: bool = True) -> Update | None:
        """Recompile what the changes since the last flush touched; the update
        that carries it (None: no record changed). ``defer``: large SRV names
        may wait for `compile_pending` (a stream's events come one by one; a
        poll's changes are one batch already)."""
        gen, live = self.gen, self.live
        if gen is None or live is None:
            return None
        changed = gen.take_changes()
        if not changed:
            return None
        live.update(changed, defer=defer)
        self.serial = self.next_serial()
        live.set_serial(self.serial)
        if source is not None:
            self.source = source
        self.loaded_at = time.time()
        return self._change(changed)

    def compile_pending(self) -> Update | None:
        """The large SRV names `flush` deferred (see `LiveAnswers.update`)."""
        live = self.live
        if live is None or not live.pending:
            return None
        live.compile_pending()
        return self._change(())

    def set_opzones(self, zones: CompiledZones | None) -> Update:
        self.opzones = zones
        return self._change((), opzones=zones)

    def change(self, **fields: Any) -> Update:
        """An update of the current version's other parts (bodies, counters)."""
        return self._change((), **fields)

    def _change(self, names: Sequence[str] | set[str], **fields: Any) -> Update:
        gen, live = self.gen, self.live
        assert gen is not None and live is not None
        keys, touched_names = live.take_touched()
        rs = gen.record_set()
        entries = live.table.entries
        self.version += 1
        return Update(
            self.version, False, self.serial, self.source, self.loaded_at,
            skipped=gen.skipped,
            a={n: rs.a.get(n) for n in names},
            aaaa={n: rs.aaaa.get(n) for n in names},
            srv={n: rs.srv.get(n) for n in names},
            entries={k: entries.get(k) for k in keys},
            marks=[
                {w: (IN_NAMES if w in z.names else 0) | (IN_SLOW if w in z.slow else 0)
                 for w in touched}
                for z, touched in zip(live.zones, touched_names, strict=True)
            ],
            exotic=[z.table.exotic for z in live.zones],
            info=live.table.info,
            **fields,
        )

    def records(self) -> RecordSet | None:
        """A copy of the current records (with the enumeration), for the
        HTTP bodies."""
        return None if self.gen is None else self.gen.snapshot()


def _record_maps(gen: IncrementalGenerator) -> tuple[
    dict[str, tuple[str, ...] | None],
    dict[str, tuple[str, ...] | None],
    dict[str, tuple[SRVTarget, ...] | None],
]:
    """A copy of every name's values, for a full update (its ``a``, ``aaaa``
    and ``srv``)."""
    rs = gen.record_set()
    return dict(rs.a.items()), dict(rs.aaaa.items()), dict(rs.srv.items())


def _marks(names: set[bytes], slow: set[bytes]) -> dict[bytes, int]:
    marks = dict.fromkeys(names, IN_NAMES)
    for w in slow:
        marks[w] = marks.get(w, 0) | IN_SLOW
    return marks


def _zone_info(zone: Any) -> Any:
    return zone.table.info
