"""Counted values per name: the compact form behaves as value -> count dicts."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mesosdns.records import counted
from mesosdns.records.model import SRVTarget

NAMES = st.sampled_from(["a.", "b.", "c."])
VALUES = st.sampled_from(["10.0.0.1", "10.0.0.2", "10.0.0.3"])
OPS = st.lists(st.tuples(st.sampled_from(["up", "down", "add"]), NAMES, VALUES,
                         st.integers(1, 3)), max_size=60)


def _model_up(model: dict[str, dict[str, int]], name: str, value: str, n: int) -> bool:
    values = model.setdefault(name, {})
    had = values.get(value, 0)
    values[value] = had + n
    return not had


def _model_down(model: dict[str, dict[str, int]], name: str, value: str) -> bool:
    values = model[name]
    values[value] -= 1
    if values[value]:
        return False
    del values[value]
    if not values:
        del model[name]
    return True


def _check_canonical(counts: counted.Counted[str]) -> None:
    for v in counts.values():
        if isinstance(v, dict):
            assert v and not (len(v) == 1 and next(iter(v.values())) == 1), v
            assert all(n > 0 for n in v.values())


@given(OPS)
def test_ops_match_a_dict_of_counts(ops: list[tuple[str, str, str, int]]) -> None:
    counts: counted.Counted[str] = {}
    model: dict[str, dict[str, int]] = {}
    for op, name, value, n in ops:
        if op == "up":
            assert counted.count_up(counts, name, value) == _model_up(model, name, value, 1)
        elif op == "add":
            assert counted.count_up(counts, name, value, n) == _model_up(model, name, value, n)
        elif value in model.get(name, {}):
            assert counted.count_down(counts, name, value) == _model_down(model, name, value)
        else:
            with pytest.raises(KeyError):
                counted.count_down(counts, name, value)
        _check_canonical(counts)
        assert counted.plain(counts) == model
        # the values in the order they were added, as a dict keeps them
        for name_, values in model.items():
            assert counted.values(counts[name_]) == tuple(values)
        assert counted.total(counts) == sum(map(len, model.values()))


def test_a_single_value_is_held_bare_and_srv_targets_too() -> None:
    counts: counted.Counted[SRVTarget] = {}
    t1, t2 = SRVTarget("h1.", 80), SRVTarget("h2.", 81)
    assert counted.count_up(counts, "_s._tcp.", t1)
    assert counts["_s._tcp."] == t1  # the target itself, not a dict
    assert counted.values(counts["_s._tcp."]) == (t1,)
    assert counted.count_up(counts, "_s._tcp.", t2)
    assert counts["_s._tcp."] == {t1: 1, t2: 1}
    assert counted.count_down(counts, "_s._tcp.", t1)
    assert counts["_s._tcp."] == t2
    assert not counted.count_up(counts, "_s._tcp.", t2)
    assert counts["_s._tcp."] == {t2: 2}
    assert not counted.count_down(counts, "_s._tcp.", t2)
    assert counts["_s._tcp."] == t2
    assert counted.count_down(counts, "_s._tcp.", t2)
    assert counts == {}
