"""The v1 operator API's JSON converted to the state model (mesosdns.state.v1)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import orjson
import pytest
from fakemaster import (
    FakeMaster,
    v1_agent,
    v1_framework,
    v1_get_state,
    v1_task,
    without_framework_pids,
)

from mesosdns.builder.stream import with_pids
from mesosdns.errors import StateError
from mesosdns.records.generator import GeneratorParams, generate
from mesosdns.records.model import RecordSet
from mesosdns.state.model import parse_state
from mesosdns.state.v1 import (
    AgentAdded,
    AgentRemoved,
    FrameworkAdded,
    FrameworkRemoved,
    Heartbeat,
    Malformed,
    Subscribed,
    TaskAdded,
    TaskUpdated,
    Unknown,
    decode_event,
    framework_pids,
    leader_from_get_master,
)

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
PARAMS = GeneratorParams(masters=("", "10.0.0.11:5050", "10.0.0.12:5050"))


def event(kind: str, payload: Any = None) -> bytes:
    doc: dict[str, Any] = {"type": kind}
    if payload is not None:
        doc[kind.lower()] = payload
    return orjson.dumps(doc)


def subscribed(doc: dict[str, Any], heartbeat: float | None = 15.0) -> Subscribed:
    sub: dict[str, Any] = {"get_state": v1_get_state(doc)}
    if heartbeat is not None:
        sub["heartbeat_interval_seconds"] = heartbeat
    got = decode_event(event("SUBSCRIBED", sub))
    assert isinstance(got, Subscribed)
    return got


def as_sets(rs: RecordSet) -> dict[str, dict[str, set[str]]]:
    return {
        kind: {name: {str(v) for v in values} for name, values in getattr(rs, kind).items()}
        for kind in ("a", "aaaa", "srv")
    }


@pytest.mark.parametrize("fixture", ["demo-state.json", "edge-state.json", "ipv6-state.json"])
def test_subscribed_state_gives_the_records_of_master_state(fixture: str) -> None:
    """The same cluster through /master/state and through SUBSCRIBED with the
    framework pids of /master/state-summary: the same records and
    enumeration. Without the pids, pid frameworks answer by hostname."""
    doc = orjson.loads((FIXTURES / fixture).read_bytes())
    got = subscribed(doc)
    assert got.heartbeat_interval == 15.0
    assert got.orphans == ()
    state = msgspec.structs.replace(got.state, leader=doc["leader"])
    pids = framework_pids(orjson.dumps(FakeMaster(doc).state_summary()))
    assert pids == {fw["id"]: fw.get("pid") for fw in doc["frameworks"]}
    polled = parse_state(orjson.dumps(doc))
    streamed, expected = generate(with_pids(state, pids), PARAMS), generate(polled, PARAMS)
    assert as_sets(streamed) == as_sets(expected)
    assert tuple(streamed.frameworks) == tuple(expected.frameworks)
    assert [a.pid for a in state.agents] == [a.pid for a in polled.agents]
    # without the pids: what /master/state shows of HTTP API frameworks
    pidless = parse_state(orjson.dumps(without_framework_pids(doc)))
    assert as_sets(generate(state, PARAMS)) == as_sets(generate(pidless, PARAMS))
    if any(fw.get("pid") for fw in doc["frameworks"]):
        assert as_sets(generate(state, PARAMS)) != as_sets(expected)


@pytest.mark.parametrize(
    "body",
    [b"", b"[]", b'{"frameworks": 3}', b'{"frameworks": [{"id": 1}]}', b"{", b'{"slaves": []}'],
)
def test_framework_pids_refuse_other_documents(body: bytes) -> None:
    with pytest.raises(StateError):
        framework_pids(body)


def test_framework_pids_of_http_frameworks_are_none() -> None:
    body = orjson.dumps(
        {
            "frameworks": [
                {"id": "a", "pid": "scheduler@10.0.0.1:1"},
                {"id": "b"},
                {"id": "c", "pid": ""},
            ]
        }
    )
    assert framework_pids(body) == {"a": "scheduler@10.0.0.1:1", "b": None, "c": None}


def test_task_fields() -> None:
    raw = {
        "name": "web",
        "task_id": {"value": "web.1"},
        "framework_id": {"value": "fw"},
        "agent_id": {"value": "A-S1"},
        "state": "TASK_RUNNING",
        "statuses": [
            {
                "task_id": {"value": "web.1"},
                "state": "TASK_RUNNING",
                "timestamp": 12.5,
                "labels": {"labels": [{"key": "k", "value": "v"}]},
                "container_status": {
                    "network_infos": [{"ip_addresses": [{"ip_address": "10.1.1.1"}]}]
                },
            }
        ],
        "resources": [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 1}},
            {
                "name": "ports",
                "type": "RANGES",
                "ranges": {
                    "range": [{"begin": 31005, "end": 31005}, {"begin": 31000, "end": 31001}]
                },
            },
            {"name": "ports", "ranges": {"range": [{"begin": 31002, "end": 31002}]}},
            {"name": "ports", "revocable": {}, "ranges": {"range": [{"begin": 9, "end": 9}]}},
        ],
        "labels": {"labels": [{"key": "team", "value": "a"}]},
        "discovery": {"name": "web", "ports": {"ports": [{"number": 80, "protocol": "tcp"}]}},
    }
    got = decode_event(event("TASK_ADDED", {"task": raw}))
    assert isinstance(got, TaskAdded)
    t = got.task
    assert (t.id, t.name, t.framework_id, t.agent_id, t.state) == (
        "web.1",
        "web",
        "fw",
        "A-S1",
        "TASK_RUNNING",
    )
    # merged and sorted, revocable ranges left out, as /master/state shows them
    assert t.resources is not None and t.resources.ports == "[31000-31002, 31005-31005]"
    assert t.ports() == (31000, 31001, 31002, 31005)
    assert t.statuses[0].label_values("k") == ["v"]
    assert t.statuses[0].netinfo_ips() == ["10.1.1.1"]
    assert t.statuses[0].timestamp == 12.5
    assert t.has_discovery and t.discovery_ports()[0].number == 80


def test_task_without_ports_has_no_resources() -> None:
    got = decode_event(event("TASK_ADDED", {"task": v1_task({"id": "t", "slave_id": "a"})}))
    assert isinstance(got, TaskAdded)
    assert got.task.resources is None and got.task.ports() == ()


def test_task_updated() -> None:
    payload = {
        "framework_id": {"value": "fw"},
        "status": {"task_id": {"value": "t1"}, "state": "TASK_RUNNING", "timestamp": 3.0},
        "state": "TASK_RUNNING",
    }
    got = decode_event(event("TASK_UPDATED", payload))
    assert isinstance(got, TaskUpdated)
    assert (got.framework_id, got.task_id, got.state) == ("fw", "t1", "TASK_RUNNING")
    assert got.status.timestamp == 3.0
    # the early documentation's shape: the task id at the top level
    old = {"framework_id": {"value": "fw"}, "task_id": {"value": "t2"}, "state": "TASK_KILLED"}
    got = decode_event(event("TASK_UPDATED", old))
    assert isinstance(got, TaskUpdated) and got.task_id == "t2" and got.state == "TASK_KILLED"
    got = decode_event(event("TASK_UPDATED", {"framework_id": {"value": "fw"}}))
    assert isinstance(got, Malformed)


def test_agents() -> None:
    agent = {"id": "A-S1", "hostname": "h1", "port": 5051, "pid": "slave(1)@10.0.0.5:5051"}
    got = decode_event(event("AGENT_ADDED", {"agent": v1_agent(agent)}))
    assert isinstance(got, AgentAdded)
    assert (got.agent.id, got.agent.hostname, got.agent.pid) == (
        "A-S1",
        "h1",
        "slave(1)@10.0.0.5:5051",
    )
    # no pid: the agent's hostname and port stand in
    nopid = {"agent_info": {"id": {"value": "A-S2"}, "hostname": "fd00::5", "port": 5052}}
    got = decode_event(event("AGENT_ADDED", {"agent": nopid}))
    assert isinstance(got, AgentAdded) and got.agent.pid == "slave(1)@[fd00::5]:5052"
    bad = {"agent_info": {"id": {"value": "A-S3"}, "hostname": ""}}
    assert isinstance(decode_event(event("AGENT_ADDED", {"agent": bad})), Malformed)
    got = decode_event(event("AGENT_REMOVED", {"agent_id": {"value": "A-S1"}}))
    assert got == AgentRemoved("A-S1")


def test_frameworks() -> None:
    fw = {"id": "fw-1", "name": "marathon", "hostname": "10.0.0.11", "pid": "s@10.0.0.11:1"}
    got = decode_event(event("FRAMEWORK_ADDED", {"framework": v1_framework(fw)}))
    assert isinstance(got, FrameworkAdded) and not got.updated
    assert (got.framework.id, got.framework.name, got.framework.hostname) == (
        "fw-1",
        "marathon",
        "10.0.0.11",
    )
    assert got.framework.pid is None  # not in the v1 API
    assert got.framework.host_port() == ("10.0.0.11", "")
    got = decode_event(event("FRAMEWORK_UPDATED", {"framework": v1_framework(fw)}))
    assert isinstance(got, FrameworkAdded) and got.updated
    info = v1_framework(fw)["framework_info"]
    assert decode_event(event("FRAMEWORK_REMOVED", {"framework_info": info})) == (
        FrameworkRemoved("fw-1")
    )


def test_heartbeat_unknown_and_invalid() -> None:
    assert decode_event(b'{"type": "HEARTBEAT"}') == Heartbeat()
    assert decode_event(b'{"type": "OPERATION_UPDATED", "x": 1}') == Unknown("OPERATION_UPDATED")
    assert isinstance(decode_event(b'{"type": "TASK_ADDED"}'), Malformed)
    with pytest.raises(StateError):
        decode_event(b'{"type": ')
    with pytest.raises(StateError):
        decode_event(b"[1, 2]")


def test_malformed_items_of_subscribed_are_skipped_and_counted() -> None:
    doc = orjson.loads((FIXTURES / "demo-state.json").read_bytes())
    state = v1_get_state(doc)
    good = len(state["get_tasks"]["tasks"])
    state["get_tasks"]["tasks"].append({"task_id": {"value": 7}, "name": "bad"})
    # a malformed status is dropped, not its task
    state["get_tasks"]["tasks"][0]["statuses"].append({"state": "TASK_RUNNING", "timestamp": "x"})
    state["get_agents"]["agents"].append({"agent_info": {"id": {"value": "X"}, "hostname": ""}})
    got = decode_event(event("SUBSCRIBED", {"get_state": state}))
    assert isinstance(got, Subscribed)
    assert got.heartbeat_interval is None
    assert sum(len(f.tasks) for f in got.state.frameworks) == good
    assert got.state.skipped == 2
    assert len(got.state.agents) == len(doc["slaves"])


def test_orphan_tasks_are_kept_apart() -> None:
    doc = orjson.loads((FIXTURES / "demo-state.json").read_bytes())
    state = v1_get_state(doc)
    state["get_frameworks"]["frameworks"] = state["get_frameworks"]["frameworks"][1:]
    got = decode_event(event("SUBSCRIBED", {"get_state": state}))
    assert isinstance(got, Subscribed)
    assert len(got.orphans) == len(doc["frameworks"][0]["tasks"])


def test_leader_from_get_master() -> None:
    def resp(info: dict[str, Any]) -> bytes:
        return orjson.dumps({"type": "GET_MASTER", "get_master": {"master_info": info}})

    assert leader_from_get_master(resp({"pid": "master@10.0.0.1:5050"})) == "master@10.0.0.1:5050"
    assert leader_from_get_master(resp({"address": {"ip": "10.0.0.2", "port": 5050}})) == (
        "master@10.0.0.2:5050"
    )
    assert leader_from_get_master(resp({"pid": "junk"})) is None
    assert leader_from_get_master(b"{}") is None
    assert leader_from_get_master(b"nope") is None
