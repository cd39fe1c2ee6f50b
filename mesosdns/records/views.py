"""Read-only views of the incremental generator's records: maps that follow
its changes (`CountedView`), and ``/v1/enumerate``'s list worked out when
first asked (`LazyEnumeration`, `enumeration`), from the generator itself or
from a snapshot's copies of its parts."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TypeVar, overload

from mesosdns.records.counted import Counted
from mesosdns.records.model import EnumFramework, EnumRecord, EnumTask
from mesosdns.state.model import Framework, Task

T = TypeVar("T")
V = TypeVar("V")


def enumeration(
    contrib: Mapping[tuple[str, str, str], tuple[EnumRecord, ...]],
    frameworks: Mapping[str, Framework],
    tasks: Mapping[str, Mapping[str, Task]],
    agents: Mapping[str, object],
    gates: Mapping[tuple[str, str, str], frozenset[str]],
    support: Mapping[str, object],
) -> tuple[EnumFramework, ...]:
    """``RecordSet.frameworks`` of the incremental generator's parts, as the
    batch generator builds it: per framework and task in state order, each
    task listing the records it was the first to add. ``contrib``: each
    contributor's records (a task's key is ``("t", framework id, task
    id)``); ``agents``: the agents with addresses; ``gates``: the unhealthy
    tasks' own names and ``support`` the names a healthy or unchecked task
    gives, with omit_unhealthy."""
    seen: set[EnumRecord] = set()
    for key, records in contrib.items():
        if key[0] != "t":
            seen.update(records)
    out: list[EnumFramework] = []
    empty: dict[str, Task] = {}
    for fid, fw in frameworks.items():
        enum_tasks: list[EnumTask] = []
        for tid, task in tasks.get(fid, empty).items():
            if task.state != "TASK_RUNNING" or task.agent_id not in agents:
                continue
            fresh = []
            key = ("t", fid, tid)
            gate = gates.get(key)
            for rec in contrib.get(key, ()):
                if gate is not None and rec[0] not in gate and rec[0] in support:
                    continue  # withheld: an unhealthy task's shared name
                if rec not in seen:
                    seen.add(rec)
                    fresh.append(rec)
            enum_tasks.append(EnumTask(task.name, task.id, tuple(fresh)))
        out.append(EnumFramework(fw.name, tuple(enum_tasks)))
    return tuple(out)


class CountedView(Mapping[str, tuple[V, ...]]):
    """A live, read-only view of counted values: name -> the values (A or
    AAAA addresses, SRV targets) whose count is positive."""

    __slots__ = ("_d",)

    def __init__(self, d: Counted[V]) -> None:
        self._d = d

    def __getitem__(self, name: str) -> tuple[V, ...]:
        got = self._d[name]
        # `counted.values`, inline: the compiler asks per name and type
        return tuple(got) if type(got) is dict else (got,)  # type: ignore[return-value]

    @overload
    def get(self, name: str, /) -> tuple[V, ...] | None: ...
    @overload
    def get(self, name: str, /, default: tuple[V, ...] | T) -> tuple[V, ...] | T: ...
    def get(
        self, name: str, /, default: tuple[V, ...] | T | None = None
    ) -> tuple[V, ...] | T | None:
        got = self._d.get(name)
        if got is None:
            return default
        return tuple(got) if type(got) is dict else (got,)  # type: ignore[return-value]

    def __contains__(self, name: object) -> bool:
        return name in self._d

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)


class LazyEnumeration(Sequence[EnumFramework]):
    """``RecordSet.frameworks`` built on first use (``/v1/enumerate``), by
    ``make``: from the generator as it is then, or from a snapshot's copies."""

    __slots__ = ("_items", "_make")

    def __init__(self, make: Callable[[], tuple[EnumFramework, ...]]) -> None:
        self._make = make
        self._items: tuple[EnumFramework, ...] | None = None

    def _get(self) -> tuple[EnumFramework, ...]:
        if self._items is None:
            self._items = self._make()
        return self._items

    @overload
    def __getitem__(self, i: int) -> EnumFramework: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[EnumFramework]: ...
    def __getitem__(self, i: int | slice) -> EnumFramework | Sequence[EnumFramework]:
        return self._get()[i]

    def __len__(self) -> int:
        return len(self._get())

    def __iter__(self) -> Iterator[EnumFramework]:
        return iter(self._get())


__all__ = ["CountedView", "LazyEnumeration", "enumeration"]
