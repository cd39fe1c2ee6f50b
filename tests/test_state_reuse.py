"""A state decoded again reuses the unchanged tasks, and equals a fresh parse."""

from __future__ import annotations

import copy
import importlib
import sys
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest

from mesosdns.errors import StateError
from mesosdns.state.model import Framework, State, parse_state
from mesosdns.state.reuse import StateDecoder, _RawFramework

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
    assert first == parse_state(data)
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
    assert second == parse_state(data)
    fresh = {t.id for t in tasks_of(second) if t is not old.get(t.id)}
    assert fresh == {fw["tasks"][0]["id"], moved_id, "brand-new-task"}
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
    assert decoder.decode(data) == parse_state(data)
    state = decoder.decode(data)
    assert state == parse_state(data)
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
    expected = parse_state(data)
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
    assert first == parse_state(orjson.dumps(doc))
