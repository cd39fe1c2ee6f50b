"""A versioned change of the compiled answers, as the builder publishes it.

An `Update` carries what one version changed: the record values of the
names that changed (for the slow path and the HTTP API), the table entries
replaced or removed (prepacked answers, keyed as the hot path looks them up),
each zone's name and slow-name marks, the SOA serial, and what else the
serving side shows (operator zones, prebuilt HTTP bodies, the builder's
counters). A *full* update replaces everything; the others apply to the
version before them.

On the wire (`frames`), an update is a sequence of pickled frames, each
behind a 4-byte length: a large one (a full update, or a poll that changed
many names) is cut into parts of a bounded number of items, so that a reader
decodes it piece by piece between other work, and a ``commit`` frame ends
it. The reader applies nothing before the commit, so a version is seen whole
or not at all (`mesosdns.store.replica`).
"""

from __future__ import annotations

import copyreg
import operator
import pickle
import struct
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from functools import partial
from types import MappingProxyType
from typing import Any, cast

from mesosdns.dns.answers import Entry, TableInfo
from mesosdns.dns.opzones import CompiledZones
from mesosdns.dns.settings import DNSSettings
from mesosdns.records.model import SRVTarget
from mesosdns.store.bodyfiles import BodyFile

# items (entries, names, record values) per frame of a full update: a frame
# of this many entries decodes in a few milliseconds
PART_ITEMS = 4096
LENGTH = struct.Struct(">I")
# a frame up to this size (a task's change) is applied without pausing the GC
SMALL_FRAME = 16 * 1024

# a zone's mark of a name: in the zone's names, in its slow names
IN_NAMES = 1
IN_SLOW = 2


class Keep:
    """The value of a field that did not change in this version."""

    def __repr__(self) -> str:
        return "KEEP"

    def __reduce__(self) -> str:
        return "KEEP"


KEEP = Keep()


@dataclass(slots=True)
class Update:
    version: int
    full: bool
    serial: int
    source: str = ""
    loaded_at: float = 0.0
    # full updates only: what the tables are built for
    settings: DNSSettings | None = None
    skipped: int = 0
    # name -> values (None: the name has none of that type any more)
    a: dict[str, tuple[str, ...] | None] = field(default_factory=dict)
    aaaa: dict[str, tuple[str, ...] | None] = field(default_factory=dict)
    srv: dict[str, tuple[SRVTarget, ...] | None] = field(default_factory=dict)
    # table key -> entry (None: removed)
    entries: dict[bytes, Entry | None] = field(default_factory=dict)
    # per zone (the cluster domain first, then the aliases): wire name -> marks
    marks: list[dict[bytes, int]] = field(default_factory=list)
    exotic: list[bool] = field(default_factory=list)
    zone_info: list[TableInfo] = field(default_factory=list)
    info: TableInfo | None = None
    opzones: CompiledZones | Keep | None = KEEP
    # the prebuilt HTTP bodies, or the files the builder wrote them to
    bodies: dict[str, bytes | BodyFile] | Keep = KEEP
    stats: dict[str, Any] = field(default_factory=dict)
    # a first version's records before they are compiled (no entries, every
    # zone answered from the records); see `Engine.preliminary`
    preliminary: bool = False

    def __reduce__(self) -> tuple[Any, ...]:
        # the fields in order: a dataclass's own pickling looks them up by
        # name and sets them one by one, most of a small update's cost
        values = list(_field_values(self))
        values[_SRV] = _plain_srv(self.srv)
        return _update, tuple(values)

    def size(self) -> int:
        """Items carried (names, entries and marks)."""
        return (
            len(self.a) + len(self.aaaa) + len(self.srv) + len(self.entries)
            + sum(map(len, self.marks))
        )


# an update's field values, in the order Update() takes them
_field_values = operator.attrgetter(*(f.name for f in fields(Update)))
_SRV = [f.name for f in fields(Update)].index("srv")

# SRV values travel as plain tuples: pickle encodes and decodes those in C,
# a named tuple through Python (per 1,000 targets, about 1 ms against 0.1)
_srv_target = partial(tuple.__new__, SRVTarget)
_plain = cast(Callable[[SRVTarget], tuple[str, int]], tuple)


def _plain_srv(srv: Mapping[str, tuple[SRVTarget, ...] | None]
               ) -> dict[str, tuple[tuple[str, int], ...] | None]:
    return {n: None if v is None else tuple(map(_plain, v)) for n, v in srv.items()}


def _typed_srv(srv: Mapping[str, tuple[tuple[str, int], ...] | None]
               ) -> dict[str, tuple[SRVTarget, ...] | None]:
    """The SRVTargets again, each target one object however many names give
    it (as the builder holds them, and as pickle's memo kept them)."""
    seen: dict[tuple[str, int], SRVTarget] = {}
    share = seen.setdefault
    return {
        n: None if v is None else tuple(map(share, v, map(_srv_target, v)))
        for n, v in srv.items()
    }


def _update(*values: Any) -> Update:
    """An update as `Update.__reduce__` gave its fields."""
    u = Update(*values)
    u.srv = _typed_srv(u.srv)
    return u


def _mapping_proxy(d: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(d)


def _reduce_mapping_proxy(mp: MappingProxyType[Any, Any]) -> tuple[Any, ...]:
    return _mapping_proxy, (dict(mp),)


# settings and compiled zones hold read-only mappings; pickle has no reducer
copyreg.pickle(MappingProxyType, _reduce_mapping_proxy)


# the dict fields a full update is cut along
_PARTED = ("a", "aaaa", "srv", "entries")


def frames(update: Update) -> Iterator[bytes]:
    """The update as length-prefixed frames (see the module docstring)."""
    if update.size() <= PART_ITEMS:
        yield _frame(("update", update))
        return
    head = Update(
        update.version, update.full, update.serial, update.source, update.loaded_at,
        update.settings, update.skipped, marks=[{} for _ in update.marks],
        exotic=update.exotic, zone_info=update.zone_info, info=update.info,
        opzones=update.opzones, bodies=update.bodies, stats=update.stats,
        preliminary=update.preliminary,
    )
    yield _frame(("begin", head))
    for name in _PARTED:
        for chunk in _chunks(getattr(update, name)):
            yield _frame(("part", name, _plain_srv(chunk) if name == "srv" else chunk))
    for i, marks in enumerate(update.marks):
        for chunk in _chunks(marks):
            yield _frame(("marks", i, chunk))
    yield _frame(("commit", update.version))


def _chunks(d: Mapping[Any, Any]) -> Iterator[dict[Any, Any]]:
    chunk: dict[Any, Any] = {}
    for k, v in d.items():
        chunk[k] = v
        if len(chunk) >= PART_ITEMS:
            yield chunk
            chunk = {}
    if chunk:
        yield chunk


def stats_frame(stats: dict[str, Any]) -> bytes:
    """A frame of the builder's counters alone."""
    return _frame(("stats", stats))


def read(body: bytes) -> tuple[Any, ...]:
    """One frame's message (a tuple whose first item names its kind)."""
    try:
        msg = pickle.loads(body)
    except Exception as exc:  # whatever unpickling bytes that are not ours raises
        raise ValueError(f"not a frame: {exc!r}") from None
    if not isinstance(msg, tuple) or not msg:
        raise ValueError("not a frame")
    if msg[0] == "part" and len(msg) == 3 and msg[1] == "srv":
        try:
            return ("part", "srv", _typed_srv(msg[2]))
        except (TypeError, AttributeError):
            raise ValueError("not a frame: malformed SRV values") from None
    return msg


def _frame(obj: object) -> bytes:
    body = pickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
    return LENGTH.pack(len(body)) + body
