"""The journal of recent versions, for IXFR (RFC 1995).

The replica (`mesosdns.store.replica`) applies each change of the record
set in place; just before it overwrites a name's values it notes them here,
with the new ones: per version, (old serial, new serial, [(kind, name, old
values, new values), ...]). The records these stand for (what was deleted,
what was added) are worked out only when a secondary asks
(`mesosdns.dns.xfr`), with the zone's own rules (`mesosdns.dns.zonedata`), so
applying a version costs a list append per changed name.

Bounded: at most `MAX_VERSIONS` versions and `MAX_VALUES` values (old and
new, counted over every version kept); the oldest versions go first. A
version larger than the whole budget empties the journal, and so does a
full update (`reset`): a secondary whose serial is not in the journal gets
the whole zone.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Protocol

# at most this many versions are kept
MAX_VERSIONS: Final = 1000
# at most this many values (old and new, over all versions kept): about one
# record each, so the journal holds at most this many records' worth
MAX_VALUES: Final = 500_000

# kind (0: A, 1: AAAA, 2: SRV; see mesosdns.dns.zonedata), the name (a key of
# the cluster domain's record set), its values before and after (None: none)
Change = tuple[int, str, Sequence[object] | None, Sequence[object] | None]


class Listener(Protocol):
    """Told of every change before the journal keeps it (a transfer's view
    of the version it started at, `mesosdns.dns.zonedata.VersionView`)."""

    def note(self, changes: Iterable[tuple[int, str, Any, Any]]) -> None: ...


@dataclass(slots=True)
class Version:
    old: int  # the serial before
    new: int  # the serial after
    changes: list[Change]
    size: int  # values noted


class Journal:
    """The versions after the last full update, oldest first (bounded)."""

    def __init__(self, max_versions: int = MAX_VERSIONS, max_values: int = MAX_VALUES) -> None:
        self.max_versions = max_versions
        self.max_values = max_values
        self.enabled = False  # noted only while zone transfers are on
        self.versions: deque[Version] = deque()
        self.values = 0
        # running transfers, told of each change to the maps they read
        self.listeners: set[Listener] = set()

    def reset(self, enabled: bool) -> None:
        """Forget every version (a full update); note the next ones if ``enabled``.

        A full update replaces the maps (new objects): the transfers reading
        the old ones need no more news of changes."""
        self.enabled = enabled
        self.versions.clear()
        self.values = 0
        self.listeners.clear()

    def add(self, old: int, new: int, changes: list[Change]) -> None:
        """One version's changes (in the order they were applied)."""
        if not self.enabled:
            return
        for listener in self.listeners:
            listener.note(changes)
        if old == new:
            if changes:  # records changed under the same serial: IXFR cannot say it
                self.reset(True)
            return
        size = sum(len(o or ()) + len(n or ()) for _, _, o, n in changes)
        if size > self.max_values:
            self.reset(True)
            return
        if self.versions and self.versions[-1].new != old:
            self.reset(True)  # not the version after the last one: start again
        self.versions.append(Version(old, new, changes, size))
        self.values += size
        while len(self.versions) > self.max_versions or self.values > self.max_values:
            self.values -= self.versions.popleft().size

    def since(self, serial: int) -> list[Version] | None:
        """The versions after ``serial``, or None when it is not in the journal."""
        versions = self.versions
        for i in range(len(versions) - 1, -1, -1):
            if versions[i].old == serial:
                return list(versions)[i:]
        return None

    @property
    def latest(self) -> int | None:
        """The serial after the last version kept (None: empty)."""
        return self.versions[-1].new if self.versions else None
