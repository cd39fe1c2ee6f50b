"""Malformed Mesos state through the real poller (``stateFile`` and a fake
master), with the whole service running: the last good records stay served
over DNS, the problem is counted (RefreshStats, ``/metrics``) and logged once.

The state has a "victim" task (in framework ``marathon``, on agent S1) that
the tests break in every field, and a "sentinel" task (``chronos``, agent S2)
that must keep resolving whatever happens to the victim. A broken *item* is
skipped and counted, the rest published; a broken *document* (not JSON, not
an object, no leader) is refused and the last good records stay.

"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from fakemaster import FakeMaster
from reliability_support import AppThread, deep, good_state

from mesosdns.state.model import State

SENTINEL = "sentinel.chronos.mesos."
VICTIM = "victim.marathon.mesos."
WRONG_VALUES: list[Any] = [None, 7, -1.5, "x", True, [], {}, [1, "a"], {"k": 1}]


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[AppThread, Path]]:
    state = tmp_path / "state.json"
    state.write_bytes(orjson.dumps(good_state()))
    app = AppThread({"stateFile": str(state)})
    try:
        app.wait_ready()
        yield app, state
    finally:
        app.stop()


def write(path: Path, doc: Any) -> None:
    path.write_bytes(doc if isinstance(doc, bytes) else orjson.dumps(doc))


def failures(app: AppThread) -> dict[str, int]:
    """Failed refreshes by kind (the kind names are the poller's)."""
    return dict(app.app.refresh_stats.failures_by_kind or {})


def state_errors(app: AppThread) -> int:
    """Failed refreshes of a kind that says the document was bad (not internal)."""
    return sum(n for kind, n in failures(app).items() if kind != "internal")


def assert_good_records(app: AppThread) -> None:
    assert app.addresses(SENTINEL) == {"10.250.0.2"}
    assert app.addresses(VICTIM) == {"10.250.0.1"}


def typed_ok(doc: Any) -> bool:
    """Does the document decode into the state structs without any skip?"""
    try:
        msgspec.json.decode(orjson.dumps(doc), type=State)
    except msgspec.ValidationError:
        return False
    return True


# -- wrong types in every field ----------------------------------------------

# paths into the good state: (section, index) then keys / list indexes
TASK = ("frameworks", 0, "tasks", 0)
STATUS = (*TASK, "statuses", 0)
FIELD_PATHS: list[tuple[Any, ...]] = [
    (*TASK, "id"),
    (*TASK, "name"),
    (*TASK, "framework_id"),
    (*TASK, "slave_id"),
    (*TASK, "state"),
    (*TASK, "resources"),
    (*TASK, "resources", "ports"),
    (*TASK, "statuses"),
    STATUS,
    (*STATUS, "state"),
    (*STATUS, "timestamp"),
    (*STATUS, "labels"),
    (*STATUS, "labels", 0),
    (*STATUS, "labels", 0, "value"),
    (*STATUS, "container_status"),
    (*STATUS, "container_status", "network_infos"),
    (*STATUS, "container_status", "network_infos", 0),
    (*STATUS, "container_status", "network_infos", 0, "ip_addresses"),
    (*STATUS, "container_status", "network_infos", 0, "ip_addresses", 0),
    (*STATUS, "container_status", "network_infos", 0, "ip_addresses", 0, "ip_address"),
    (*TASK, "discovery"),
    (*TASK, "discovery", "name"),
    (*TASK, "discovery", "ports"),
    (*TASK, "discovery", "ports", "ports"),
    (*TASK, "discovery", "ports", "ports", 0),
    (*TASK, "discovery", "ports", "ports", 0, "number"),
    (*TASK, "discovery", "ports", "ports", 0, "name"),
    (*TASK, "discovery", "ports", "ports", 0, "protocol"),
    ("frameworks", 0),
    ("frameworks", 0, "id"),
    ("frameworks", 0, "name"),
    ("frameworks", 0, "pid"),
    ("frameworks", 0, "hostname"),
    ("frameworks", 0, "tasks"),
    (*TASK,),
    ("slaves", 0),
    ("slaves", 0, "id"),
    ("slaves", 0, "hostname"),
    ("slaves", 0, "pid"),
]


def get_path(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


def set_path(doc: Any, path: tuple[Any, ...], value: Any) -> None:
    for key in path[:-1]:
        doc = doc[key]
    doc[path[-1]] = value


@pytest.mark.parametrize("path", FIELD_PATHS, ids=lambda p: ".".join(map(str, p)))
def test_wrong_type_in_a_field_skips_the_item_and_counts_it(
    env: tuple[AppThread, Path], path: tuple[Any, ...]
) -> None:
    app, state = env
    for value in WRONG_VALUES:
        write(state, good_state())
        assert app.refresh()
        serial = app.serial()
        doc = good_state()
        set_path(doc, path, value)
        write(state, doc)
        published = app.refresh()
        stats = app.app.refresh_stats
        what = f"{'.'.join(map(str, path))} = {value!r}"
        assert "internal" not in failures(app), what
        # null for a list is an empty list (as Go decodes it): not a problem
        null_list = value is None and isinstance(get_path(good_state(), path), list)
        if published:
            if not typed_ok(doc) and not null_list:
                assert stats.skipped_items >= 1, f"{what}: not counted"
        else:
            assert app.serial() == serial, what
        # the sentinel's records never go
        assert app.addresses(SENTINEL) == {"10.250.0.2"}, what
        assert app.query("sentinel.chronos.mesos.", "A", tcp=True).answer, what


@pytest.mark.parametrize("labels", [42, "x", [{"key": 5}], [None], {"labels": []}])
def test_a_task_label_of_any_shape_keeps_the_task(
    env: tuple[AppThread, Path], labels: Any
) -> None:
    """Mesos-DNS never reads a task's own labels (the original does not
    decode them): whatever they hold, the task keeps its records."""
    app, state = env
    doc = good_state()
    set_path(doc, (*TASK, "labels"), labels)
    write(state, doc)
    assert app.refresh()
    assert app.app.refresh_stats.skipped_items == 0
    assert app.addresses(VICTIM) == {"10.250.0.1"}


def test_skipped_items_are_counted_in_metrics(env: tuple[AppThread, Path]) -> None:
    app, state = env
    doc = good_state()
    doc["frameworks"][0]["tasks"][0]["name"] = 42
    doc["slaves"].append({"id": "S9", "hostname": "10.0.0.9", "pid": "no pid here"})
    write(state, doc)
    assert app.refresh()
    metrics = app.metrics()
    assert metrics["mesosdns_state_skipped_items"] == 2
    assert app.addresses(SENTINEL) == {"10.250.0.2"}
    assert app.query(VICTIM).rcode() == 3  # the broken task is gone, nothing else


# -- broken documents: the last good records stay, logged once, counted -----

GOOD = orjson.dumps(good_state())
BROKEN_DOCUMENTS: dict[str, bytes] = {
    "truncated at 1%": GOOD[: len(GOOD) // 100],
    "truncated at 50%": GOOD[: len(GOOD) // 2],
    "truncated before the last brace": GOOD[:-1],
    "empty file": b"",
    "not JSON": b"<html>502 Bad Gateway</html>",
    "a JSON array": b"[]",
    "a JSON string": b'"state"',
    "null": b"null",
    "leader missing": orjson.dumps({k: v for k, v in good_state().items() if k != "leader"}),
    "leader empty": orjson.dumps({**good_state(), "leader": ""}),
    "leader a number": orjson.dumps({**good_state(), "leader": 5050}),
    "leader an object": orjson.dumps({**good_state(), "leader": {"pid": "x"}}),
    "a lone surrogate escape": GOOD.replace(b'"victim"', b'"vic\\ud800tim"', 1),
    "NaN": GOOD.replace(b"1715508012.5", b"NaN", 1),
}
# documents the JSON decoder rejects with an exception of its own, not a decode error
UNDECODABLE: dict[str, bytes] = {
    "invalid UTF-8": GOOD.replace(b'"victim"', b'"vic\xff\xfetim"', 1),
    "nested 100,000 deep": b'{"leader": "m@1.2.3.4:5050", "x": '
    + b"[" * 100_000
    + b"]" * 100_000
    + b"}",
}


@pytest.mark.parametrize("name", list(BROKEN_DOCUMENTS))
def test_broken_document_keeps_records_logged_once_and_counted(
    env: tuple[AppThread, Path], name: str, caplog: pytest.LogCaptureFixture
) -> None:
    app, state = env
    data = BROKEN_DOCUMENTS[name]
    serial = app.serial()
    before = state_errors(app)
    write(state, data)
    with caplog.at_level(logging.DEBUG, logger="mesosdns"):
        for _ in range(3):
            assert not app.refresh(), name
    assert app.serial() == serial
    assert state_errors(app) == before + 3, failures(app)
    assert "internal" not in failures(app)
    assert_good_records(app)
    errors = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert "state refresh failed (" in errors[0].getMessage()
    assert errors[0].exc_info is None  # a message, not a traceback
    metrics = app.metrics()
    counted = sum(v for k, v in metrics.items() if k.startswith("mesosdns_refresh_failures_total"))
    assert counted >= 3
    # recovery: the next good state is published at once, and said so
    write(state, good_state())
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="mesosdns"):
        assert app.refresh()
    assert "state refresh recovered" in caplog.text


@pytest.mark.parametrize("name", list(UNDECODABLE))
def test_undecodable_document_is_a_state_error(env: tuple[AppThread, Path], name: str) -> None:
    app, state = env
    write(state, UNDECODABLE[name])
    assert not app.refresh()
    assert state_errors(app) == 1 and "internal" not in failures(app), failures(app)


@pytest.mark.parametrize("name", list(UNDECODABLE))
def test_undecodable_document_never_loses_the_records(
    env: tuple[AppThread, Path], name: str
) -> None:
    app, state = env
    serial = app.serial()
    write(state, UNDECODABLE[name])
    for _ in range(2):
        assert not app.refresh()
    assert app.serial() == serial
    assert_good_records(app)
    assert sum(failures(app).values()) == 2


def test_missing_state_file_keeps_records(env: tuple[AppThread, Path]) -> None:
    app, state = env
    state.unlink()
    assert not app.refresh()
    assert state_errors(app) == 1, failures(app)
    assert_good_records(app)


# -- missing or mistyped sections ---------------------------------------------


@pytest.mark.parametrize(
    "change",
    [
        {"frameworks": None},
        {"frameworks": "x"},
        {"frameworks": {}},
        {"slaves": None},
        {"slaves": 7},
    ],
    ids=str,
)
def test_missing_or_mistyped_section_keeps_records(
    env: tuple[AppThread, Path], change: dict[str, Any]
) -> None:
    app, state = env
    doc = good_state()
    for key, value in change.items():
        if value is None:
            doc.pop(key)
        else:
            doc[key] = value
    write(state, doc)
    app.refresh()
    assert_good_records(app)


def test_missing_or_mistyped_section_is_counted(env: tuple[AppThread, Path]) -> None:
    """A mistyped section refuses the document, counted as an invalid state."""
    app, state = env
    before = app.app.refresh_stats.failures_by_kind or {}
    doc = good_state()
    doc["frameworks"] = "x"
    write(state, doc)
    assert not app.refresh()
    after = app.app.refresh_stats.failures_by_kind or {}
    assert after.get("invalid_state", 0) == before.get("invalid_state", 0) + 1
    assert_good_records(app)


# -- huge, odd and hostile values ------------------------------------------------


def test_huge_names_unicode_and_control_characters(env: tuple[AppThread, Path]) -> None:
    app, state = env
    doc = good_state()
    victim = doc["frameworks"][0]["tasks"][0]
    odd = [
        "x" * 1_000_000,  # a 1 MB task name
        "a." * 50_000,  # 50,000 labels
        "🦄 unicorn ‮evil‬ zero​width",  # emoji, RTL override, zero-width space
        "nul\x00byte\ttab\nnewline",
        "Ωmega-ñandú-日本語",
        "..",
        "",
    ]
    for i, name in enumerate(odd):
        extra = deep(victim)
        extra["id"] = f"odd-{i}"
        extra["name"] = name
        extra["discovery"]["name"] = name
        extra["discovery"]["ports"]["ports"][0]["name"] = name
        extra["discovery"]["ports"]["ports"][0]["protocol"] = name
        doc["frameworks"][0]["tasks"].append(extra)
    doc["frameworks"].append({"id": "fw-9", "name": "b." * 50_000, "pid": None, "tasks": []})
    doc["slaves"].append({"id": "S-huge", "hostname": "h" * 1_000_000, "pid": "s@10.0.0.9:5051"})
    write(state, doc)
    assert app.refresh()
    assert "internal" not in failures(app)
    assert_good_records(app)
    assert app.query("_victim._tcp.marathon.mesos.", "SRV").answer
    # the raw (unlabelled) DiscoveryInfo name is served as it is, where DNS can carry it
    r = app.query("Ωmega-ñandú-日本語.marathon.mesos.".encode("idna").decode(), "A")
    assert r.rcode() in (0, 3)
    for path in ("/v1/enumerate", "/v1/axfr", "/v1/hosts/victim.marathon.mesos"):
        status, body = app.http(path)
        assert status == 200, path
        orjson.loads(body)


def test_a_huge_port_range_is_clamped(env: tuple[AppThread, Path]) -> None:
    app, state = env
    doc = good_state()
    doc["frameworks"][0]["tasks"][0]["resources"]["ports"] = "[0-4294967295]"
    write(state, doc)
    assert app.refresh()
    assert_good_records(app)
    r = app.query("_victim._tcp.marathon.slave.mesos.", "SRV")
    assert r.answer  # truncated to fit 512 bytes, but answered
    r = app.query("_victim._tcp.marathon.slave.mesos.", "SRV", tcp=True)
    assert sum(len(rrset) for rrset in r.answer) > 100


def test_repeated_port_ranges_are_bounded() -> None:
    from mesosdns.state.model import parse_ports

    assert len(parse_ports("[" + ", ".join(["0-99999999"] * 100) + "]")) <= 65536


def test_skipped_items_logged_once(
    env: tuple[AppThread, Path], caplog: pytest.LogCaptureFixture
) -> None:
    app, state = env
    doc = good_state()
    doc["frameworks"][0]["tasks"][0]["name"] = 42
    write(state, doc)
    with caplog.at_level(logging.WARNING, logger="mesosdns"):
        for _ in range(3):
            assert app.refresh()
    assert caplog.text.count("malformed items skipped") == 1


# -- through a fake master (HTTP) ------------------------------------------------


@pytest.fixture
def master_env() -> Iterator[tuple[AppThread, FakeMaster]]:
    app: AppThread | None = None
    lt_master = None
    from dns_support import LoopThread

    lt_master = LoopThread()
    master = lt_master.run(FakeMaster(good_state(), host="127.0.0.1").start())
    try:
        app = AppThread({"masters": [master.address]})
        app.wait_ready()
        yield app, master
    finally:
        if app is not None:
            app.stop()
        lt_master.run(master.stop())
        lt_master.close()


@pytest.mark.parametrize(
    "name", ["truncated at 50%", "not JSON", "leader a number", "a lone surrogate escape"]
)
def test_broken_document_from_a_master(
    master_env: tuple[AppThread, FakeMaster], name: str, caplog: pytest.LogCaptureFixture
) -> None:
    app, master = master_env
    body = BROKEN_DOCUMENTS[name]
    master.state = body
    serial = app.serial()
    with caplog.at_level(logging.WARNING, logger="mesosdns"):
        for _ in range(3):
            assert not app.refresh()
    assert app.serial() == serial
    assert_good_records(app)
    assert state_errors(app) == 3 and "internal" not in failures(app), failures(app)
    assert len(caplog.records) == 1, caplog.text
    master.state = good_state(leader=master.pid)
    assert app.refresh()


def test_wrong_types_from_a_master(master_env: tuple[AppThread, FakeMaster]) -> None:
    app, master = master_env
    doc = good_state(leader=master.pid)
    doc["frameworks"][0]["tasks"][0]["statuses"][0]["timestamp"] = "yesterday"
    doc["slaves"][0]["pid"] = ["not", "a", "pid"]
    master.state = orjson.dumps(doc)
    assert app.refresh()
    assert app.app.refresh_stats.skipped_items >= 2
    assert app.addresses(SENTINEL) == {"10.250.0.2"}
