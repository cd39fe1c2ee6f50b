"""omitUnhealthy: unhealthy tasks out of the names they share, fail open.

Poll mode: real-shaped ``/master/state`` documents through ``parse_state``,
the batch generator and the incremental one. Stream mode: health updates as
TASK_UPDATED events from the fake master's operator API, the records served
over DNS equal to a poll's. Then the incremental generator against the batch
one for random health sequences, the metric and the config key.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from fakemaster import FakeMaster, minimal_state
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_incremental import SETTINGS, Reference, apply, as_sets, check_table
from test_stream import Harness, run, served_records, until, until_equal

from mesosdns.app import App
from mesosdns.builder.service import HOT_FIELDS, BuilderService, generator_params
from mesosdns.config import parse_config
from mesosdns.dns.incremental import LiveAnswers
from mesosdns.metrics import Metrics, RefreshStats
from mesosdns.records.counted import plain
from mesosdns.records.generator import (
    GeneratorParams,
    _Generation,
    generate,
    is_unhealthy,
    task_hash,
)
from mesosdns.records.incremental import IncrementalGenerator
from mesosdns.records.model import RecordSet
from mesosdns.server.service import ServingService
from mesosdns.state.model import (
    Agent,
    ContainerStatus,
    DiscoveryInfo,
    DiscoveryPort,
    DiscoveryPorts,
    Framework,
    IPAddress,
    NetworkInfo,
    Resources,
    State,
    Status,
    Task,
    parse_state,
)
from mesosdns.state.v1 import TaskUpdated, decode_event
from mesosdns.store.snapshot import SnapshotStore
from mesosdns.store.update import stats_frame

FW = "5b0e3a1c-8d2f-4c6e-9a7b-1f2e3d4c5b6a-0000"
AGENT = "20160107-001256-134875658-5050-27524-S1"
AGENT2 = "20160107-001256-134875658-5050-27524-S2"
ON = GeneratorParams(listener_ips=("127.0.0.1",), omit_unhealthy=True)
OFF = GeneratorParams(listener_ips=("127.0.0.1",))
SHARED_A = ("web.marathon.mesos.", "web.marathon.slave.mesos.")
SHARED_SRV = (
    "_web._tcp.marathon.mesos.",
    "_web._udp.marathon.mesos.",
    "_web._tcp.marathon.slave.mesos.",
    "_web._udp.marathon.slave.mesos.",
)


def status(
    ip: str, healthy: bool | None, timestamp: float, state: str = "TASK_RUNNING"
) -> dict[str, Any]:
    """A task status as /master/state shows it (``healthy`` only when the
    task has a health check)."""
    out: dict[str, Any] = {
        "state": state,
        "timestamp": timestamp,
        "container_status": {
            "container_id": {"value": "c-" + ip},
            "network_infos": [{"ip_addresses": [{"protocol": "IPv4", "ip_address": ip}]}],
        },
    }
    if healthy is not None:
        out["healthy"] = healthy
    return out


def task(
    n: int,
    health: list[bool | None],
    *,
    name: str = "web",
    agent: str = AGENT,
    discovery: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Task ``n`` (IP 10.0.3.n, port 3100n): TASK_STARTING, then one
    TASK_RUNNING status per entry of ``health``, as Mesos keeps them (the
    last one replacing the previous TASK_RUNNING status is what the master
    does; a state can also list several, the latest by timestamp counts)."""
    ip = f"10.0.3.{n}"
    statuses = [status(ip, None, 1715508000.0 + n, "TASK_STARTING")]
    statuses += [status(ip, h, 1715508010.0 + n + 10 * i) for i, h in enumerate(health)]
    out: dict[str, Any] = {
        "id": f"{name}.{n:04d}-1d4b-11ef-9c3a-0242ac110002",
        "name": name,
        "framework_id": FW,
        "executor_id": "",
        "slave_id": agent,
        "state": "TASK_RUNNING",
        "resources": {"cpus": 0.5, "mem": 256.0, "ports": f"[{31000 + n}-{31000 + n}]"},
        "statuses": statuses,
    }
    if discovery is not None:
        out["discovery"] = discovery
    return out


def document(*tasks: dict[str, Any]) -> dict[str, Any]:
    doc = minimal_state("master@10.0.0.11:5050")
    doc["slaves"] = [
        {"id": AGENT, "hostname": "10.0.1.1", "port": 5051, "pid": "slave(1)@10.0.1.1:5051"},
        {"id": AGENT2, "hostname": "10.0.1.2", "port": 5051, "pid": "slave(1)@10.0.1.2:5051"},
    ]
    doc["frameworks"] = [
        {"id": FW, "name": "marathon", "hostname": "10.0.0.11", "tasks": list(tasks)}
    ]
    return doc


def canonical(t: dict[str, Any], slave: bool = False) -> str:
    agent = t["slave_id"].rsplit("-", 1)[-1].lower()
    return f"{t['name']}-{task_hash(t['id'])}-{agent}.marathon.{'slave.' if slave else ''}mesos."


def records(doc: dict[str, Any], params: GeneratorParams = ON) -> RecordSet:
    """The batch generator's records of ``doc``, checked against the
    incremental generator's (records, enumeration, tasks left out)."""
    state = parse_state(json.dumps(doc).encode())
    batch = generate(state, params)
    gen = IncrementalGenerator.from_state(state, params)
    assert as_sets(gen.record_set()) == as_sets(batch)
    assert tuple(gen.enumeration()) == tuple(batch.frameworks)
    return batch


def omitted(doc: dict[str, Any], params: GeneratorParams = ON) -> int:
    gen = _Generation(parse_state(json.dumps(doc).encode()), params)
    gen.run()
    inc = IncrementalGenerator.from_state(parse_state(json.dumps(doc).encode()), params)
    assert inc.omitted == gen.omitted
    return gen.omitted


def a(rs: RecordSet, name: str) -> set[str]:
    return set(rs.a.get(name, ()))


def srv(rs: RecordSet, name: str) -> set[str]:
    return {str(t) for t in rs.srv.get(name, ())}


# -- poll: the table ----------------------------------------------------------------

# (what, each task's TASK_RUNNING statuses' health in time order, the tasks
# expected under the shared names, how many tasks are counted as left out)
CASES: list[tuple[str, list[list[bool | None]], set[int], int]] = [
    ("one unhealthy of three is left out", [[True], [False], [True]], {1, 3}, 1),
    ("unchecked tasks are always in", [[None], [False], [None]], {1, 3}, 1),
    ("healthy, unchecked and unhealthy", [[True], [None], [False]], {1, 2}, 1),
    ("two unhealthy of three", [[False], [True], [False]], {2}, 2),
    ("every task unhealthy: all kept (fail open)", [[False], [False]], {1, 2}, 0),
    ("the only task, unhealthy: kept (fail open)", [[False]], {1}, 0),
    ("health flipped back: the latest status counts", [[True], [True, False, True]], {1, 2}, 0),
    ("healthy, then failing: out", [[True], [True, False]], {1}, 1),
    ("unhealthy, then recovered: in", [[True], [False, True]], {1, 2}, 0),
    ("no health check at all", [[None], [None]], {1, 2}, 0),
]


@pytest.mark.parametrize(("what", "health", "kept", "out"), CASES, ids=[c[0] for c in CASES])
def test_shared_names_leave_unhealthy_tasks_out(
    what: str, health: list[list[bool | None]], kept: set[int], out: int
) -> None:
    tasks = [task(n, h) for n, h in enumerate(health, start=1)]
    rs = records(document(*tasks))
    ips = {f"10.0.3.{n}" for n in kept}
    assert a(rs, "web.marathon.mesos.") == ips
    for name in SHARED_SRV:
        assert srv(rs, name) == {f"{canonical(tasks[n - 1], True)}:{31000 + n}" for n in kept}
    # every task's own canonical names answer, healthy or not
    for n, t in enumerate(tasks, start=1):
        assert a(rs, canonical(t)) == {f"10.0.3.{n}"}
        assert a(rs, canonical(t, slave=True)) == {"10.0.1.1"}
    assert omitted(document(*tasks)) == out


def test_the_slave_name_follows_the_agents_of_the_tasks_kept() -> None:
    """``web.marathon.slave.mesos`` lists the agents of the tasks in: an
    unhealthy task alone on its agent takes that agent out of it."""
    tasks = [task(1, [True]), task(2, [False], agent=AGENT2)]
    rs = records(document(*tasks))
    assert a(rs, "web.marathon.slave.mesos.") == {"10.0.1.1"}
    assert a(rs, canonical(tasks[1], slave=True)) == {"10.0.1.2"}
    assert srv(rs, "_web._tcp.marathon.slave.mesos.") == {f"{canonical(tasks[0], True)}:31001"}


def test_discovery_names_leave_unhealthy_tasks_out() -> None:
    """DiscoveryInfo names (``_svc._tcp``, named ports, the raw name's
    records) are shared too; their SRV targets are canonical names, whose A
    records keep answering."""
    disc = {
        "name": "Svc",
        "ports": {"ports": [{"number": 8080, "name": "http", "protocol": "tcp"}]},
    }
    tasks = [task(n, [n != 2], name="web", discovery=disc) for n in (1, 2)]
    rs = records(document(*tasks))
    hashes = [task_hash(t["id"]) for t in tasks]
    for label in ("Svc", "svc"):
        assert a(rs, f"{label}.marathon.mesos.") == {"10.0.3.1"}
        assert srv(rs, f"_{label}._tcp.marathon.mesos.") == {
            f"{label}-{hashes[0]}-s1.marathon.mesos.:8080"
        }
        assert srv(rs, f"_http._{label}._tcp.marathon.mesos.") == {
            f"{label}-{hashes[0]}-s1.marathon.mesos.:8080"
        }
        assert srv(rs, f"_{label}._tcp.marathon.slave.mesos.") == {
            f"{label}-{hashes[0]}-s1.marathon.slave.mesos.:31001"
        }
        # the unhealthy task's own names
        assert a(rs, f"{label}-{hashes[1]}-s1.marathon.mesos.") == {"10.0.3.2"}
        assert a(rs, f"{label}-{hashes[1]}-s1.marathon.slave.mesos.") == {"10.0.1.1"}


def test_fail_open_is_per_name() -> None:
    """A name is judged on the tasks that give it: ``api`` (all unhealthy)
    keeps its tasks while ``web`` leaves its unhealthy one out."""
    tasks = [task(1, [True]), task(2, [False]), task(3, [False], name="api")]
    rs = records(document(*tasks))
    assert a(rs, "web.marathon.mesos.") == {"10.0.3.1"}
    assert a(rs, "api.marathon.mesos.") == {"10.0.3.3"}
    assert omitted(document(*tasks)) == 1


def test_off_is_todays_behaviour_exactly() -> None:
    """omitUnhealthy off: unhealthy tasks answer everywhere, the records (in
    order) and the enumeration are what they were; on, a state without an
    unhealthy task gives exactly the same too."""
    tasks = [task(1, [True]), task(2, [False]), task(3, [None])]
    off = records(document(*tasks), OFF)
    assert a(off, "web.marathon.mesos.") == {"10.0.3.1", "10.0.3.2", "10.0.3.3"}
    assert omitted(document(*tasks), OFF) == 0
    demo = parse_state(Path(__file__).resolve().parent.parent.joinpath(
        "fixtures", "demo-state.json").read_bytes())
    assert not any(is_unhealthy(t) for fw in demo.frameworks for t in fw.tasks)
    assert generate(demo, replace(OFF, omit_unhealthy=True)) == generate(demo, OFF)
    healthy = [task(1, [True]), task(2, [None])]
    state = parse_state(json.dumps(document(*healthy)).encode())
    assert generate(state, ON) == generate(state, OFF)


def test_a_health_flip_changes_only_that_apps_names() -> None:
    """Incrementally: a task failing its health check reports the app's
    shared names changed and nothing else; failing open and back reports the
    names whose values move."""
    state = parse_state(json.dumps(document(task(1, [True]), task(2, [True]))).encode())
    gen = IncrementalGenerator.from_state(state, ON)
    tid1, tid2 = (t.id for t in state.frameworks[0].tasks)

    def health(tid: str, n: int, healthy: bool, ts: float) -> None:
        st_ = msgspec.convert(status(f"10.0.3.{n}", healthy, ts), Status)
        assert gen.update_task(FW, tid, st_, "TASK_RUNNING")

    health(tid2, 2, False, 1715509000.0)
    changed = gen.take_changes()
    # both tasks run on one agent: web.marathon.slave.mesos. keeps its value
    assert changed == {"web.marathon.mesos.", *SHARED_SRV}
    assert plain(gen.a)["web.marathon.mesos."] == {"10.0.3.1": 1}
    assert gen.omitted == 1
    health(tid1, 1, False, 1715509001.0)  # both unhealthy now: fail open
    assert plain(gen.a)["web.marathon.mesos."].keys() == {"10.0.3.1", "10.0.3.2"}
    assert gen.omitted == 0
    assert "web.marathon.mesos." in gen.take_changes()
    health(tid2, 2, True, 1715509002.0)  # task 2 recovers: task 1 out
    assert plain(gen.a)["web.marathon.mesos."] == {"10.0.3.2": 1}
    assert gen.omitted == 1
    gen.take_changes()
    health(tid2, 2, True, 1715509003.0)  # the same health again: nothing
    assert gen.take_changes() == set()
    ref = generate(gen.state(), ON)
    assert as_sets(gen.record_set()) == as_sets(ref)


# -- random health sequences: incremental equals batch ----------------------------

HEALTH_AGENTS = {AGENT: "slave(1)@10.0.1.1:5051", AGENT2: "slave(1)@10.0.1.2:5051"}
HEALTH_FWS = ["fw-1", "fw-2"]
HEALTH_TASKS = ["t1", "t2", "t3", "t4", "t5"]


@st.composite
def running_statuses(draw: st.DrawFn) -> Status:
    ip = draw(st.sampled_from(["10.0.3.1", "10.0.3.2", "10.0.3.3", None]))
    return Status(
        state="TASK_RUNNING",
        timestamp=float(draw(st.integers(1, 6))),
        container_status=ContainerStatus((NetworkInfo((IPAddress(ip),)),)) if ip else None,
        healthy=draw(st.sampled_from([None, True, False, False])),
    )


@st.composite
def health_tasks(draw: st.DrawFn) -> Task:
    named = draw(st.booleans())
    return Task(
        id=draw(st.sampled_from(HEALTH_TASKS)),
        name=draw(st.sampled_from(["web", "web", "api"])),
        state=draw(st.sampled_from(["TASK_RUNNING", "TASK_RUNNING", "TASK_STAGING"])),
        agent_id=draw(st.sampled_from(list(HEALTH_AGENTS))),
        framework_id=draw(st.sampled_from(HEALTH_FWS)),
        statuses=tuple(draw(st.lists(running_statuses(), min_size=1, max_size=3))),
        resources=Resources(draw(st.sampled_from(["[31000-31000]", "[31000-31001]", ""]))),
        discovery=DiscoveryInfo(
            "web", DiscoveryPorts((DiscoveryPort(80, "http", "tcp"),))
        ) if named else None,
    )


health_changes = st.one_of(
    st.tuples(st.just("put_task"), health_tasks()),
    st.tuples(st.just("put_task"), health_tasks()),
    st.tuples(
        st.just("update_task"),
        st.sampled_from(HEALTH_FWS),
        st.sampled_from(HEALTH_TASKS),
        running_statuses().map(lambda s: ("TASK_RUNNING", s)),
    ),
    st.tuples(
        st.just("update_task"),
        st.sampled_from(HEALTH_FWS),
        st.sampled_from(HEALTH_TASKS),
        running_statuses().map(lambda s: ("TASK_RUNNING", s)),
    ),
    st.tuples(
        st.just("update_task"),
        st.sampled_from(HEALTH_FWS),
        st.sampled_from(HEALTH_TASKS),
        st.just(("TASK_KILLED", Status(state="TASK_KILLED", timestamp=9.0))),
    ),
    st.tuples(
        st.just("put_framework"),
        st.builds(
            Framework,
            id=st.sampled_from(HEALTH_FWS),
            name=st.sampled_from(["marathon", "chronos"]),
            hostname=st.just("10.0.0.11"),
        ),
    ),
    st.tuples(st.just("remove_agent"), st.sampled_from(list(HEALTH_AGENTS))),
    st.tuples(
        st.just("put_agent"),
        st.sampled_from(list(HEALTH_AGENTS)).map(
            lambda aid: Agent(id=aid, hostname="h", pid=HEALTH_AGENTS[aid])
        ),
    ),
)


def health_reference() -> Reference:
    ref = Reference(params=ON)
    ref.frameworks = {
        "fw-1": Framework(id="fw-1", name="marathon", hostname="10.0.0.11"),
        "fw-2": Framework(id="fw-2", name="marathon", hostname="10.0.0.12"),
    }
    ref.agents = {aid: Agent(id=aid, hostname="h", pid=pid) for aid, pid in HEALTH_AGENTS.items()}
    return ref


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    initial=st.lists(health_changes, max_size=10),
    later=st.lists(health_changes, min_size=1, max_size=25),
)
def test_random_health_sequences_match_the_batch_generator(
    initial: list[tuple[Any, ...]], later: list[tuple[Any, ...]]
) -> None:
    """Tasks of one app (two frameworks of the same name, two agents)
    starting, flipping health, dying, moving; frameworks renamed; agents
    leaving: after each change the incremental records, enumeration and
    count of tasks left out equal the batch generator's, and the answer
    table kept current from the changed names equals a fresh compile."""
    ref = health_reference()
    for change in initial:
        ref.apply(change)
    gen = IncrementalGenerator.from_state(ref.state(), ON, ref.orphans())
    live = LiveAnswers(gen.record_set(), SETTINGS, 1, random.Random(0), defer_targets=2)
    for serial, change in enumerate(later, start=2):
        ref.apply(change)
        apply(gen, change)
        batch = _Generation(ref.state(), ON)
        batch.run()
        assert as_sets(gen.record_set()) == as_sets(batch.result())
        assert gen.enumeration() == tuple(batch.enum)
        assert gen.omitted == batch.omitted
        live.update(gen.take_changes())
        live.set_serial(serial)
    live.compile_pending()
    check_table(live, gen)
    built = IncrementalGenerator.from_state(ref.state(), ON, ref.orphans())
    assert as_sets(built.record_set()) == as_sets(gen.record_set())
    assert built.omitted == gen.omitted


# -- stream: health updates as TASK_UPDATED ----------------------------------------


def test_v1_statuses_carry_healthy() -> None:
    event = {
        "type": "TASK_UPDATED",
        "task_updated": {
            "framework_id": {"value": FW},
            "state": "TASK_RUNNING",
            "status": {
                "task_id": {"value": "web.1"},
                "agent_id": {"value": AGENT},
                "state": "TASK_RUNNING",
                "timestamp": 1715509000.5,
                "healthy": False,
            },
        },
    }
    got = decode_event(json.dumps(event).encode())
    assert isinstance(got, TaskUpdated) and got.status.healthy is False
    del event["task_updated"]["status"]["healthy"]  # type: ignore[index]
    got = decode_event(json.dumps(event).encode())
    assert isinstance(got, TaskUpdated) and got.status.healthy is None


def test_stream_health_updates_follow_a_poll() -> None:
    """The fake master sends each health check result as TASK_UPDATED
    (TASK_RUNNING, ``healthy`` set): the app's name drops the failing task
    within the event, fails open when every task fails, comes back; the
    records served equal a poll of the same state throughout."""
    doc = document(task(1, [True]), task(2, [True]))
    t1, t2 = (t["id"] for t in doc["frameworks"][0]["tasks"])

    async def go() -> None:
        async with FakeMaster(doc) as m, Harness(["", m.address]) as h:
            h.poller.params = replace(h.poller.params, omit_unhealthy=True)
            h.poller.trigger()
            await until(lambda: h.poller.streaming)
            await until(lambda: h.poller.gen is not None and h.poller.gen.params.omit_unhealthy)
            assert await h.answer("web.marathon.mesos.") == ["10.0.3.1", "10.0.3.2"]
            await m.update_task(FW, t2, "TASK_RUNNING", ip="10.0.3.2", healthy=False)
            await until_equal(m, h)
            assert await h.answer("web.marathon.mesos.") == ["10.0.3.1"]
            assert await h.answer("_web._tcp.marathon.mesos.", "SRV") == [
                f"0 1 31001 {canonical(doc['frameworks'][0]['tasks'][0], True)}"
            ]
            unhealthy = canonical(m._framework(FW)["tasks"][1])
            assert await h.answer(unhealthy) == ["10.0.3.2"]
            assert h.poller.gen is not None and h.poller.gen.omitted == 1
            await m.update_task(FW, t1, "TASK_RUNNING", ip="10.0.3.1", healthy=False)
            await until_equal(m, h)
            assert await h.answer("web.marathon.mesos.") == ["10.0.3.1", "10.0.3.2"]
            assert h.poller.gen.omitted == 0
            await m.update_task(FW, t2, "TASK_RUNNING", ip="10.0.3.2", healthy=True)
            await until_equal(m, h)
            assert await h.answer("web.marathon.mesos.") == ["10.0.3.2"]
            # a task without a health check is always in
            await m.add_task(task(3, [None]))
            await until_equal(m, h)
            assert await h.answer("web.marathon.mesos.") == ["10.0.3.2", "10.0.3.3"]
            assert served_records(h)["a"]["web.marathon.mesos."] == {"10.0.3.2", "10.0.3.3"}
            assert h.poller.stream_stats.subscriptions == 1  # all incremental

    run(go)


# -- the metric ---------------------------------------------------------------------


def test_the_metric_counts_the_tasks_left_out() -> None:
    """``mesosdns_unhealthy_tasks_omitted`` comes with the builder's counters
    and is exported by the serving processes' /metrics."""
    doc = document(task(1, [True]), task(2, [False]), task(3, [False]))
    state = parse_state(json.dumps(doc).encode())
    config, _ = parse_config(json.dumps({"omitUnhealthy": True, "stateFile": "x"}))
    service = BuilderService(config, sink=lambda update: None)
    assert service.counters()["gauges"] == {
        "unhealthy_tasks_omitted": (
            "Unhealthy tasks left out of the names they share (omitUnhealthy)", 0
        )
    }

    holding(service, state)
    gauges = service.counters()["gauges"]
    assert gauges["unhealthy_tasks_omitted"][1] == 2  # type: ignore[index]

    class NoCounters:
        def as_dict(self) -> dict[str, int]:
            return {}

    metrics = Metrics(NoCounters(), RefreshStats(), SnapshotStore(), None, lambda: gauges)
    text = metrics.render().decode()
    assert "# TYPE mesosdns_unhealthy_tasks_omitted gauge" in text
    assert "\nmesosdns_unhealthy_tasks_omitted 2.0\n" in text


def holding(service: BuilderService, state: State) -> None:
    """Make ``service``'s engine hold ``state`` (as its poller's would)."""

    class Engine:
        gen = IncrementalGenerator.from_state(state, generator_params(service.config, []))

    class Poller:
        engine = Engine()

    service.poller = Poller()  # type: ignore[assignment]


def test_the_metric_over_http_in_poll_mode(tmp_path: Path) -> None:
    """The whole application polling a state file: /metrics shows the tasks
    left out, and a SIGHUP-style reload turning omitUnhealthy off rebuilds
    the records with every task in."""
    doc = document(task(1, [True]), task(2, [False]))
    (tmp_path / "state.json").write_text(json.dumps(doc))
    path = tmp_path / "config.json"

    def write(omit: bool) -> None:
        path.write_text(json.dumps({
            "stateFile": "state.json", "omitUnhealthy": omit, "refreshSeconds": 60,
            "dnson": False, "HTTPListener": "127.0.0.1", "httpport": 0, "externalon": False,
        }))

    write(True)

    async def go() -> None:
        config, _ = parse_config(path.read_bytes(), str(path))
        app = App(config)
        await app.start()
        try:
            store = app.serving.store
            await until(lambda: store.current is not None)
            assert store.current is not None
            assert store.current.records.a["web.marathon.mesos."] == ("10.0.3.1",)
            url = f"http://127.0.0.1:{app.serving.http_port}/metrics"
            async with aiohttp.ClientSession() as session, session.get(url) as resp:
                text = await resp.text()
            assert "\nmesosdns_unhealthy_tasks_omitted 1.0\n" in text
            write(False)
            app.reload()
            await until(lambda: store.current is not None and len(
                store.current.records.a.get("web.marathon.mesos.", ())) == 2)
            async with aiohttp.ClientSession() as session, session.get(url) as resp:
                text = await resp.text()
            assert "\nmesosdns_unhealthy_tasks_omitted 0.0\n" in text
        finally:
            await app.stop()

    asyncio.run(asyncio.wait_for(go(), 20.0))


# -- the config key -----------------------------------------------------------------


def test_the_config_key() -> None:
    default, _ = parse_config('{"masters": ["10.0.0.11:5050"]}')
    assert default.omit_unhealthy is False
    assert generator_params(default, []).omit_unhealthy is False
    config, _ = parse_config('{"masters": ["10.0.0.11:5050"], "OMITUNHEALTHY": true}')
    assert config.omit_unhealthy is True  # matched case-insensitively, as every key
    assert config.redacted(1)["omitUnhealthy"] is True
    assert generator_params(config, []).omit_unhealthy is True
    assert "omit_unhealthy" in HOT_FIELDS


def test_unhealthy_means_the_latest_status_says_so() -> None:
    def with_statuses(*statuses: Status) -> Task:
        return Task(id="t", state="TASK_RUNNING", statuses=statuses)

    failing = Status("TASK_RUNNING", 2.0, healthy=False)
    passing = Status("TASK_RUNNING", 3.0, healthy=True)
    assert is_unhealthy(with_statuses(failing))
    assert not is_unhealthy(with_statuses(failing, passing))
    assert is_unhealthy(with_statuses(passing, replace_ts(failing, 4.0)))
    assert not is_unhealthy(with_statuses(Status("TASK_RUNNING", 5.0)))  # no check
    assert not is_unhealthy(with_statuses())


def replace_ts(s: Status, ts: float) -> Status:
    return msgspec.structs.replace(s, timestamp=ts)



def test_the_metric_reaches_a_separate_serving_process() -> None:
    """With the builder in its own process the gauge travels in its stats
    frames; the serving process's /metrics reads it from its replica."""
    config, _ = parse_config('{"masters": ["10.0.0.11:5050"], "omitUnhealthy": true}')
    builder = BuilderService(config, sink=lambda update: None)
    holding(builder, parse_state(json.dumps(document(task(1, [True]), task(2, [False]))).encode()))
    serving = ServingService(config)
    assert serving._builder_gauges() is None  # nothing received yet
    serving.replica.feed(stats_frame(builder.counters())[4:])
    gauges = serving._builder_gauges()
    assert gauges is not None and gauges["unhealthy_tasks_omitted"][1] == 1
