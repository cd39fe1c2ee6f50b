"""Counted values per name, compact where a name has one value.

The incremental generator keeps, per name, each value with the number of
contributors that give it (a value exists while its count is positive).
Most names (a task's own names, an agent's) have one value from one
contributor: for those the map holds the value itself, not a dict of one
item, which would cost about 200 bytes more per name (at 100k tasks, about
400k names). A value is never a dict (a string or an `SRVTarget`), so the
two forms are told apart by type.

The form is canonical: a name holds its bare value exactly when it has one
value counted once, so that two maps with the same counts are equal however
they got there. A dict keeps its values in the order they were added; a
bare value that gets a second one becomes a dict with the first one first.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

K = TypeVar("K")

# name -> its one value counted once, or value -> count (two or more
# values, or a value counted more than once)
Counted = dict[str, dict[K, int] | K]


def values(v: dict[K, int] | K) -> tuple[K, ...]:
    """A name's values, in the order they were added."""
    return tuple(v) if type(v) is dict else (v,)  # type: ignore[return-value]


def items(v: dict[K, int] | K) -> Iterator[tuple[K, int]]:
    """A name's values with their counts."""
    if type(v) is dict:
        yield from v.items()
    else:
        yield v, 1  # type: ignore[misc]


def total(counts: Counted[K]) -> int:
    """How many (name, value) pairs a map holds."""
    return sum(len(v) if type(v) is dict else 1 for v in counts.values())


def count_up(counts: Counted[K], name: str, key: K, n: int = 1) -> bool:
    """``n`` more contributors of ``key`` under ``name`` (a first build
    counts equal records together); whether the value is new."""
    v = counts.get(name)
    if v is None:
        counts[name] = key if n == 1 else {key: n}
        return True
    if type(v) is dict:
        had = v.get(key, 0)
        v[key] = had + n
        return not had
    if v == key:
        counts[name] = {key: n + 1}
        return False
    counts[name] = {v: 1, key: n}  # type: ignore[dict-item]
    return True


def count_down(counts: Counted[K], name: str, key: K) -> bool:
    """One contributor of ``key`` under ``name`` fewer; whether it is gone.
    KeyError when ``name`` does not count ``key``."""
    v = counts[name]
    if type(v) is not dict:
        if v != key:
            raise KeyError(key)
        del counts[name]
        return True
    n = v[key]
    if n > 1:
        v[key] = n - 1
        if n == 2 and len(v) == 1:
            counts[name] = key
        return False
    del v[key]
    if len(v) == 1:
        ((last, m),) = v.items()
        if m == 1:
            counts[name] = last
    elif not v:
        del counts[name]
    return True


def plain(counts: Counted[K]) -> dict[str, dict[K, int]]:
    """The map with every name as value -> count (for tests and checks)."""
    return {name: dict(items(v)) for name, v in counts.items()}
