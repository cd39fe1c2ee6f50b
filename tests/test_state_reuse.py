"""A state decoded again reuses the unchanged tasks, and equals a fresh parse
(its tasks as they are held)."""

from __future__ import annotations

import copy
import importlib
import sys
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mesosdns.errors import StateError
from mesosdns.records.generator import GeneratorParams, generate
from mesosdns.state.model import (
    ContainerStatus,
    Framework,
    IPAddress,
    NetworkInfo,
    State,
    Status,
    latest_running,
    latest_status,
    parse_state,
    read_statuses,
)
from mesosdns.state.reuse import StateDecoder, _RawFramework, held_state

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = sorted((ROOT / "fixtures").glob("*-state.json"))


def synth_doc(tasks: int, agents: int, seed: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        synth = importlib.import_module("synth")
    finally:
        sys.path.pop(0)
    doc: dict[str, Any] = synth.make_state(tasks, agents, seed)
    return doc


def fresh(data: bytes) -> State:
    return held_state(parse_state(data))


def tasks_of(state: State) -> list[Any]:
    return [t for fw in state.frameworks for t in fw.tasks]


def test_the_raw_framework_has_the_frameworks_fields() -> None:
    assert _RawFramework.__struct_fields__ == Framework.__struct_fields__
    assert _RawFramework.__struct_encode_fields__ == Framework.__struct_encode_fields__


@pytest.mark.parametrize("path", FIXTURES, ids=lambda p: p.stem)
def test_a_fixture_decodes_as_a_fresh_parse_first_and_again(path: Path) -> None:
    data = path.read_bytes()
    decoder = StateDecoder()
    first = decoder.decode(data)
    assert first == fresh(data)
    again = decoder.decode(data)
    assert again == first
    # every task of the second decode is the first decode's object
    assert all(a is b for a, b in zip(tasks_of(again), tasks_of(first), strict=True))


def test_only_the_changed_and_new_tasks_are_new_objects() -> None:
    doc = synth_doc(300, 30, 3)
    decoder = StateDecoder()
    first = decoder.decode(orjson.dumps(doc))
    old = {t.id: t for t in tasks_of(first)}

    changed = copy.deepcopy(doc)
    fw = changed["frameworks"][0]
    fw["tasks"][0]["state"] = "TASK_KILLED"
    moved_id = fw["tasks"][1]["id"]
    fw["tasks"][1]["slave_id"] = changed["slaves"][-1]["id"]
    removed_id = fw["tasks"].pop(2)["id"]
    new_task = copy.deepcopy(fw["tasks"][3])
    new_task["id"] = "brand-new-task"
    fw["tasks"].append(new_task)
    data = orjson.dumps(changed)

    second = decoder.decode(data)
    assert second == fresh(data)
    renewed = {t.id for t in tasks_of(second) if t is not old.get(t.id)}
    assert renewed == {fw["tasks"][0]["id"], moved_id, "brand-new-task"}
    assert removed_id not in {t.id for t in tasks_of(second)}
    # the decoder now remembers exactly the second state's tasks
    assert len(decoder) == len({orjson.dumps(t) for f in changed["frameworks"]
                                for t in f["tasks"]})


def test_the_same_text_twice_in_one_state_is_one_task() -> None:
    doc = synth_doc(20, 4, 1)
    tasks = doc["frameworks"][0]["tasks"]
    tasks.append(copy.deepcopy(tasks[0]))
    data = orjson.dumps(doc)
    decoder = StateDecoder()
    assert decoder.decode(data) == fresh(data)
    state = decoder.decode(data)
    assert state == fresh(data)
    got = state.frameworks[0].tasks
    assert got[0] is got[-1]


@pytest.mark.parametrize(
    "path, value",
    [
        (("frameworks", 0, "tasks", 0, "id"), 7),
        (("frameworks", 0, "tasks", 0, "statuses", 0, "timestamp"), "soon"),
        (("frameworks", 0, "tasks", 0), 5),
        (("frameworks", 0, "tasks"), {"k": 1}),
        (("frameworks", 0, "pid"), 3),
        (("slaves", 0, "pid"), "not-a-pid"),
        (("slaves", 0, "id"), []),
    ],
    ids=lambda v: ".".join(map(str, v)) if isinstance(v, tuple) else repr(v),
)
def test_a_malformed_item_decodes_as_the_lenient_parse_does(
    path: tuple[Any, ...], value: Any
) -> None:
    doc = synth_doc(40, 4, 2)
    decoder = StateDecoder()
    good = decoder.decode(orjson.dumps(doc))
    remembered = len(decoder)
    target: Any = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    data = orjson.dumps(doc)
    expected = fresh(data)
    assert expected.skipped > 0
    got = decoder.decode(data)
    assert got == expected
    assert got.skipped == expected.skipped
    # the tasks remembered are the good state's, ready for the next poll
    assert len(decoder) == remembered
    again = decoder.decode(orjson.dumps(msgspec.to_builtins(good)))
    assert again == good


@pytest.mark.parametrize(
    "data",
    [b"", b"{", b"[]", b"null", b'{"frameworks": []}', b'{"leader": "", "frameworks": [],'
     b' "slaves": []}', b'{"leader": "m@1.2.3.4:5050", "slaves": []}', b"\xff\xfe"],
)
def test_a_broken_document_is_the_same_state_error(data: bytes) -> None:
    with pytest.raises(StateError) as fresh:
        parse_state(data)
    decoder = StateDecoder()
    decoder.decode(orjson.dumps(synth_doc(10, 2, 0)))
    remembered = len(decoder)
    with pytest.raises(StateError) as reused:
        decoder.decode(data)
    assert str(reused.value) == str(fresh.value)
    assert len(decoder) == remembered


def test_a_memoryview_of_a_reused_buffer_is_read_before_it_changes() -> None:
    doc = synth_doc(50, 5, 4)
    buf = bytearray(orjson.dumps(doc))
    decoder = StateDecoder()
    first = decoder.decode(memoryview(buf))
    # the buffer can be resized (no view of it is left) and overwritten
    buf.append(0)
    buf[:] = b" " * len(buf)
    assert first == fresh(orjson.dumps(doc))


# -- the tasks as they are held ------------------------------------------------

STATES = ["TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_RUNNING", "TASK_KILLED"]


@st.composite
def statuses(draw: st.DrawFn) -> Status:
    ip = draw(st.sampled_from(["10.0.3.1", "10.0.3.2", None]))
    return Status(
        state=draw(st.sampled_from(STATES)),
        # few timestamps: ties and statuses out of order are common
        timestamp=float(draw(st.integers(0, 4))),
        container_status=ContainerStatus((NetworkInfo((IPAddress(ip),)),)) if ip else None,
        healthy=draw(st.sampled_from([None, True, False])),
    )


@settings(max_examples=400, deadline=None)
@given(st.lists(statuses(), max_size=6))
def test_the_statuses_kept_are_the_ones_read(whole: list[Status]) -> None:
    """The latest and the latest TASK_RUNNING status of the kept ones are
    the whole list's; the kept ones are some of its statuses, in its order."""
    kept = read_statuses(tuple(whole))
    assert latest_status(kept) is latest_status(whole)
    assert latest_running(kept) is latest_running(whole)
    positions = [next(i for i, w in enumerate(whole) if w is s) for s in kept]
    assert positions == sorted(set(positions))
    assert len(kept) <= 2


def test_a_running_task_keeps_its_one_latest_status() -> None:
    doc = synth_doc(200, 20, 5)
    state = StateDecoder().decode(orjson.dumps(doc))
    whole = parse_state(orjson.dumps(doc))
    pairs = list(zip(tasks_of(state), tasks_of(whole), strict=True))
    assert sum(len(h.statuses) for h, _ in pairs) < sum(len(w.statuses) for _, w in pairs) / 1.5
    for h, w in pairs:
        assert h.id == w.id and h.statuses == read_statuses(w.statuses)
        if w.state == "TASK_RUNNING" and len(w.statuses) > 1:
            assert h.statuses == (w.statuses[-1],)
    # the values most tasks repeat are one object each
    by_agent: dict[str, Any] = {}
    for h, _ in pairs:
        assert by_agent.setdefault(h.agent_id, h.agent_id) is h.agent_id
    assert len(by_agent) < len(pairs)


@pytest.mark.parametrize("source", [*FIXTURES, "synth"], ids=lambda p: getattr(p, "stem", p))
@pytest.mark.parametrize("omit_unhealthy", [False, True])
def test_the_held_tasks_give_the_same_records(source: Path | str, omit_unhealthy: bool) -> None:
    data = orjson.dumps(synth_doc(300, 30, 6)) if source == "synth" else Path(source).read_bytes()
    params = GeneratorParams(
        ip_sources=("netinfo", "mesos", "docker", "host"), omit_unhealthy=omit_unhealthy
    )
    decoder = StateDecoder()
    for _ in range(2):  # a first decode, then one that reuses the tasks
        held_records = generate(decoder.decode(data), params)
        assert held_records == generate(parse_state(data), params)
