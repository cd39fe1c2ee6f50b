"""The HTTP API's view of a version: the records, the serial, the bodies.

A :class:`Snapshot` is what a serving process's replica publishes for each
version it applies: the record set, the SOA serial, and the large HTTP bodies
the builder prebuilt for it (or, without a builder, built once on first
use). The API reads ``store.current``; nothing is served before the first.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mesosdns.records.model import RecordSet
from mesosdns.store.bodyfiles import Body


@dataclass(frozen=True, slots=True)
class Snapshot:
    records: RecordSet
    serial: int  # Unix time of the refresh that produced it (the SOA serial)
    loaded_at: float = field(default_factory=time.time)
    source: str = ""  # the master (or file) the state came from
    # HTTP bodies built at most once per snapshot (lazily: a large cluster's
    # enumeration is only serialised if someone asks for it)
    _bodies: dict[str, Body] = field(default_factory=dict, repr=False, compare=False)
    # the builder sends the bodies (a replica's records hold no enumeration):
    # until they come, there is none to build here
    prebuilt: bool = False
    # False while the DNS answers come from the records alone (a preliminary
    # version: the first build's answers still compiling)
    compiled: bool = True
    # the records' (name, value) pairs per type, as `RecordSet.count` gives
    # them, when the holder kept them (None: count them)
    counts: dict[str, int] | None = None

    def count(self) -> dict[str, int]:
        return self.counts if self.counts is not None else self.records.count()

    def body(self, key: str, build: Callable[[], bytes]) -> Body | None:
        """The body ``key``, built at most once; None while a prebuilt one
        has not come yet."""
        cached = self._bodies.get(key)
        if cached is None:
            if self.prebuilt:
                return None
            cached = self._bodies[key] = build()
        return cached


class SnapshotStore:
    """Holds the current snapshot and tells listeners when it changes."""

    def __init__(self) -> None:
        self.current: Snapshot | None = None
        self._listeners: list[Callable[[Snapshot], None]] = []

    @property
    def ready(self) -> bool:
        return self.current is not None

    def subscribe(self, listener: Callable[[Snapshot], None]) -> None:
        self._listeners.append(listener)

    def publish(self, snapshot: Snapshot) -> None:
        self.current = snapshot
        for listener in self._listeners:
            listener(snapshot)
