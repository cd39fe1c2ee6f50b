"""The builder's engine, end to end: polled states, updates, frames, replicas.

The properties: an `Engine` that builds a first state and applies each later
one as a diff (`apply_state` + `flush`) holds the records ``generate()`` gives
for that state and a live table equal to ``compile_answers`` of them; the
updates it publishes, cut into frames and fed to a `Replica`, give the serving
side the builder's table after every version (alias zones included). Then the
replica's edges (a full update in parts, a version gap, frames that are not
ours), the SOA serial, and the deferred large SRV names.
"""

from __future__ import annotations

import asyncio
import importlib
import os
import pickle
import random
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType, SimpleNamespace
from typing import Any

import msgspec
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_incremental import (
    AGENTS,
    PARAMS,
    agent_pids,
    agents,
    as_sets,
    check_table,
    discoveries,
    entry_form,
    framework_hosts,
    framework_names,
    framework_pids,
    frameworks,
    ports_texts,
    statuses,
    task_names,
    tasks,
)

import mesosdns.builder.engine as engine_mod
import mesosdns.store.update as update_mod
from mesosdns.builder.engine import Compilers, Engine
from mesosdns.dns import wire
from mesosdns.dns.aliases import alias_domains
from mesosdns.dns.answers import HOT_PREFIX, AnswerTable, Entry, compile_answers, soa_record
from mesosdns.dns.settings import DNSSettings
from mesosdns.records.generator import GeneratorParams, generate
from mesosdns.records.incremental import IncrementalGenerator
from mesosdns.records.model import EnumFramework
from mesosdns.state.model import (
    Agent,
    ContainerStatus,
    Framework,
    IPAddress,
    NetworkInfo,
    Resources,
    State,
    Status,
    Task,
    parse_state,
)
from mesosdns.state.reuse import StateDecoder, held_state
from mesosdns.store.channel import Follower
from mesosdns.store.replica import Replica, ReplicaError
from mesosdns.store.update import Update, frames

# one alias (the helpers of test_incremental know one alias zone)
SETTINGS = DNSSettings(domain="mesos", aliases=("mesos.c1.dcos.directory",), ttl=60)
# two alias zones, as a configuration with a cluster ID and domainAliases has them
ALIASES = alias_domains("mesos", "c1", ["Example.Internal.", "mesos.c1.dcos.directory"])
SETTINGS2 = DNSSettings(domain="mesos", aliases=ALIASES, ttl=30)

AGENT = "20160107-001256-134875658-5050-27524-S1"
LEADERS = ["master@10.0.0.11:5050", "master@10.0.0.13:5050", "master@[fd00::11]:5050", "bad"]
MASTERS = [
    ("", "10.0.0.11:5050", "10.0.0.12:5050"),
    ("", "10.0.0.11:5050"),
    ("10.0.0.12:5050", "10.0.0.11:5050"),
    ("",),
]
RESOLVED_HOSTS = ["agent-b.example", "sched.example", "unresolved.example"]
RESOLUTIONS: list[tuple[str, ...]] = [(), ("10.0.2.1",), ("10.0.2.7", "fd00::27")]


# -- a cluster that changes: the model behind each polled state -----------------


@dataclass
class Cluster:
    """The master's view, changed step by step; `poll` is what a poll gets.

    Changes name what they change by kind and index (``k``: the k-th existing
    task, framework or agent, modulo their number), so that most of them
    change something."""

    leader: str = LEADERS[0]
    frameworks: dict[str, Framework] = field(default_factory=dict)  # without tasks
    tasks: dict[str, dict[str, Task]] = field(default_factory=dict)
    agents: dict[str, Agent] = field(default_factory=dict)
    params: GeneratorParams = PARAMS

    def _task(self, k: int) -> tuple[str, Task] | None:
        every = [(fid, t) for fid, ts in self.tasks.items() for t in ts.values()]
        return every[k % len(every)] if every else None

    def _pick(self, d: dict[str, Any], k: int) -> str | None:
        return list(d)[k % len(d)] if d else None

    def change(self, op: tuple[Any, ...]) -> None:
        kind = op[0]
        if kind == "task":  # a task added, or replaced whole
            fid = self._pick(self.frameworks, op[1])
            if fid is not None:
                task = msgspec.structs.replace(op[2], framework_id=fid)
                self.tasks[fid][task.id] = task
        elif kind == "drop_task":
            got = self._task(op[1])
            if got is not None:
                del self.tasks[got[0]][got[1].id]
        elif kind == "edit_task":
            got = self._task(op[1])
            if got is not None:
                what, value = op[2], op[3]
                if what == "resources":
                    value = Resources(ports=value) if value else None
                fid, task = got
                self.tasks[fid][task.id] = msgspec.structs.replace(task, **{what: value})
        elif kind == "framework":  # added, or replaced (its tasks kept)
            fw = op[1]
            self.frameworks[fw.id] = fw
            self.tasks.setdefault(fw.id, {})
        elif kind == "edit_framework":
            fid = self._pick(self.frameworks, op[1])
            if fid is not None:
                fw = self.frameworks[fid]
                self.frameworks[fid] = msgspec.structs.replace(fw, **{op[2]: op[3]})
        elif kind == "drop_framework":
            fid = self._pick(self.frameworks, op[1])
            if fid is not None:
                del self.frameworks[fid], self.tasks[fid]
        elif kind == "agent":
            self.agents[op[1].id] = op[1]
        elif kind == "edit_agent":
            aid = self._pick(self.agents, op[1])
            if aid is not None:
                self.agents[aid] = msgspec.structs.replace(self.agents[aid], pid=op[2])
        elif kind == "drop_agent":
            aid = self._pick(self.agents, op[1])
            if aid is not None:
                del self.agents[aid]
        elif kind == "leader":
            self.leader = op[1]
        elif kind == "masters":
            self.params = replace(self.params, masters=op[1])
        elif kind == "resolved":
            resolved = dict(self.params.resolved)
            if op[2]:
                resolved[op[1]] = op[2]
            else:
                resolved.pop(op[1], None)
            self.params = replace(self.params, resolved=MappingProxyType(resolved))
        elif kind == "shuffle":  # the master lists things in another order
            rng = random.Random(op[1])
            self.frameworks = _shuffled(self.frameworks, rng)
            self.agents = _shuffled(self.agents, rng)
            self.tasks = {fid: _shuffled(ts, rng) for fid, ts in self.tasks.items()}
        else:  # pragma: no cover
            raise AssertionError(op)

    def poll(self) -> tuple[State, GeneratorParams]:
        """The state as a poll decodes it (``parse_state`` of the JSON: agents
        without a valid pid dropped and counted), with its params."""
        raw = State(
            leader=self.leader,
            frameworks=tuple(
                msgspec.structs.replace(fw, tasks=tuple(self.tasks.get(fid, {}).values()))
                for fid, fw in self.frameworks.items()
            ),
            agents=tuple(self.agents.values()),
        )
        return parse_state(msgspec.json.encode(raw)), self.params


def _shuffled(d: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    items = list(d.items())
    rng.shuffle(items)
    return dict(items)


k = st.integers(0, 20)
# tasks, most of them running on an agent that exists
landing_tasks = st.builds(
    lambda task, agent, running: msgspec.structs.replace(
        task, agent_id=agent, state="TASK_RUNNING" if running else task.state
    ),
    tasks(),
    st.sampled_from([*AGENTS]),
    st.integers(0, 3).map(bool),
)
task_edits = st.one_of(
    st.tuples(
        st.just("state"),
        st.sampled_from(["TASK_RUNNING", "TASK_STAGING", "TASK_LOST", "TASK_KILLED"]),
    ),
    st.tuples(st.just("statuses"), st.lists(statuses(), max_size=2).map(tuple)),
    st.tuples(st.just("resources"), ports_texts),
    st.tuples(st.just("discovery"), discoveries),
    st.tuples(st.just("agent_id"), st.sampled_from([*AGENTS])),
    st.tuples(st.just("name"), task_names),
)
framework_edits = st.one_of(
    st.tuples(st.just("name"), framework_names),
    st.tuples(st.just("pid"), framework_pids),
    st.tuples(st.just("hostname"), framework_hosts),
)
ops = st.one_of(
    st.tuples(st.just("task"), k, tasks()),
    st.tuples(st.just("task"), k, landing_tasks),
    st.tuples(st.just("drop_task"), k),
    st.tuples(st.just("drop_task"), k),
    st.builds(lambda i, e: ("edit_task", i, *e), k, task_edits),
    st.builds(lambda i, e: ("edit_task", i, *e), k, task_edits),
    st.tuples(st.just("framework"), frameworks),
    st.builds(lambda i, e: ("edit_framework", i, *e), k, framework_edits),
    st.tuples(st.just("drop_framework"), k),
    st.tuples(st.just("agent"), agents),
    st.tuples(st.just("edit_agent"), k, agent_pids),
    st.tuples(st.just("drop_agent"), k),
    st.tuples(st.just("leader"), st.sampled_from(LEADERS)),
    st.tuples(st.just("masters"), st.sampled_from(MASTERS)),
    st.tuples(
        st.just("resolved"), st.sampled_from(RESOLVED_HOSTS), st.sampled_from(RESOLUTIONS)
    ),
    st.tuples(st.just("resolved"), st.sampled_from(RESOLVED_HOSTS[:2]), st.just(())),
    st.tuples(st.just("shuffle"), st.integers(0, 1000)),
)
# a first state: agents (with their usual pids) and frameworks, then tasks (that
# land), then anything
initial_ops = st.tuples(
    st.lists(st.sampled_from([*AGENTS.items()]), min_size=2, max_size=4, unique=True).map(
        lambda items: [("agent", Agent(id=aid, hostname="h", pid=pid)) for aid, pid in items]
    ),
    st.lists(st.tuples(st.just("framework"), frameworks), min_size=1, max_size=3),
    st.lists(st.tuples(st.just("task"), k, landing_tasks), min_size=3, max_size=10),
    st.lists(ops, max_size=6),
).map(lambda t: [*t[0], *t[1], *t[2], *t[3]])
poll_steps = st.lists(st.lists(ops, min_size=1, max_size=4), min_size=1, max_size=6)


def polls(initial: list[tuple[Any, ...]], steps: list[list[tuple[Any, ...]]]
          ) -> Iterator[tuple[State, GeneratorParams]]:
    """The first state, then the state after each step."""
    cluster = Cluster()
    for op in initial:
        cluster.change(op)
    yield cluster.poll()
    for step in steps:
        for op in step:
            cluster.change(op)
        yield cluster.poll()


# -- checks ------------------------------------------------------------------------


def first_version(engine: Engine, state: State, params: GeneratorParams,
                  settings: DNSSettings) -> Update:
    compilers = Compilers(settings)
    built = engine.build(state, params, compilers, engine.next_serial())
    return engine.install(built, compilers, "first")


def poll(engine: Engine, state: State, params: GeneratorParams, *, defer: bool = False,
         source: str = "poll") -> Update | None:
    assert engine.compilers is not None
    assert engine.can_diff(params, engine.compilers)
    engine.apply_state(state, params)
    return engine.flush(source, defer=defer)


def check_like_batch(engine: Engine, state: State, params: GeneratorParams) -> None:
    """The engine holds what a batch build of ``state`` gives: the records,
    the enumeration, and the answer table."""
    gen, live = engine.gen, engine.live
    assert gen is not None and live is not None and engine.compilers is not None
    settings = engine.compilers.settings
    expected = generate(state, params)
    rs = gen.record_set()
    assert as_sets(rs) == as_sets(expected)
    assert rs.skipped == expected.skipped == state.skipped
    # the enumeration (its order: the test below)
    built = IncrementalGenerator.from_state(state, params).enumeration()
    assert built == expected.frameworks
    assert enumeration_form(rs.frameworks) == enumeration_form(built)
    assert engine.serial == live.serial == live.table.serial
    # the table, against a fresh compile of generate()'s records
    fresh = compile_answers(expected, settings, engine.serial, random.Random(1))
    same_table(live.table, fresh)
    # and exactly (orderings aside) against the records in the engine's order,
    # with each entry's ready tails and additional records checked
    check_table(live, gen, settings)


def enumeration_form(enum: Sequence[EnumFramework]) -> tuple[Any, ...]:
    """The enumeration without its order: the frameworks with their tasks,
    and the records the tasks list (each once, over all of them)."""
    listed = [r for fw in enum for t in fw.tasks for r in t.records]
    assert len(listed) == len(set(listed))
    return (
        sorted((fw.name, sorted((t.name, t.id) for t in fw.tasks)) for fw in enum),
        sorted(listed),
    )


def same_table(table: AnswerTable, fresh: AnswerTable) -> None:
    assert set(table.entries) == set(fresh.entries)
    for key, e in fresh.entries.items():
        assert entry_form(table.entries[key]) == entry_form(e), key
    assert set(table.names) == set(fresh.names)
    assert set(table.slow_names) == set(fresh.slow_names)
    assert table.soa_rr == fresh.soa_rr
    assert table.ns_rr == fresh.ns_rr
    assert len(table.aliases) == len(fresh.aliases)
    for view, fview in zip(table.aliases, fresh.aliases, strict=True):
        assert view.domain == fview.domain
        assert set(view.names) == set(fview.names)
        assert set(view.slow_names) == set(fview.slow_names)
        assert view.soa_rr == fview.soa_rr
        assert view.ns_rr == fview.ns_rr
        assert as_sets(view.rs) == as_sets(fview.rs)


def entry_state(e: Entry) -> tuple[Any, ...]:
    """Everything an entry answers with (a replica's copy is exact)."""
    return (
        e.kind, e.qsec, e.n, e.rrs, e.starts, e.glue, e.tails(), e.trunc,
        tuple(e.additional(v) for v in range(len(e.starts))),
    )


def check_replica(replica: Replica, engine: Engine) -> None:
    """The replica serves the builder's current version."""
    gen, live = engine.gen, engine.live
    assert gen is not None and live is not None
    assert replica.version == engine.version
    assert replica.serial == engine.serial
    assert replica.source == engine.source
    assert replica.settings == live.settings
    table, mine = replica.table, live.table
    assert table is not None and replica.records is not None
    assert table.serial == mine.serial == engine.serial
    assert table.entries.keys() == mine.entries.keys()
    for key, e in mine.entries.items():
        assert entry_state(table.entries[key]) == entry_state(e), key
    # nothing answers from the builder's table: its hot view stays empty;
    # the replica's holds the names asked since their change, as they are now
    assert not mine.hot
    for k, v in table.hot.items():
        e = table.entries[k]
        assert v == (table.hot.flags[bool(e.trunc)], 0, *e.tails()), k
    assert table.names == mine.names
    assert table.slow_names == mine.slow_names
    assert table.soa_rr == mine.soa_rr
    assert table.ns_rr == mine.ns_rr
    assert table.exotic == mine.exotic
    assert table.info == mine.info
    rs = gen.record_set()
    for kind in ("a", "aaaa", "srv"):
        assert dict(getattr(replica.records, kind)) == dict(getattr(rs, kind).items()), kind
    assert replica.records.skipped == gen.skipped
    assert len(replica.zones) == len(live.zones) == 1 + len(live.settings.aliases)
    for z, lz in zip(replica.zones, live.zones, strict=True):
        assert z.apex == lz.apex
        assert z.names == lz.names, z.apex
        assert z.slow == lz.slow, z.apex
        assert z.table.exotic == lz.table.exotic
        assert z.table.serial == lz.table.serial == engine.serial
        assert z.table.soa_rr == lz.table.soa_rr
        assert z.table.info == lz.table.info
        assert z.settings == lz.settings
    assert len(table.aliases) == len(mine.aliases)
    for view, mview in zip(table.aliases, mine.aliases, strict=True):
        assert view.domain == mview.domain
        assert view.names == mview.names and view.slow_names == mview.slow_names
        assert view.soa_rr == mview.soa_rr
        assert as_sets(view.rs) == as_sets(mview.rs)
    snap = replica.snapshot()
    assert snap is not None and snap.serial == engine.serial


def feed(replica: Replica, update: Update) -> list[bool]:
    return [replica.feed(frame[4:]) for frame in frames(update)]


# -- 1. polls as diffs equal batch builds -------------------------------------------


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(initial=initial_ops, steps=poll_steps)
def test_polls_applied_as_diffs_equal_a_batch_build(
    initial: list[tuple[Any, ...]], steps: list[list[tuple[Any, ...]]]
) -> None:
    engine = Engine(rng=random.Random(0))
    states = polls(initial, steps)
    state, params = next(states)
    first_version(engine, state, params, SETTINGS)
    check_like_batch(engine, state, params)
    for state, params in states:
        version = engine.version
        update = poll(engine, state, params)
        assert engine.version == version + (update is not None)
        check_like_batch(engine, state, params)


@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(initial=initial_ops, steps=poll_steps)
def test_polls_decoded_reusing_their_tasks_equal_a_batch_build(
    initial: list[tuple[Any, ...]], steps: list[list[tuple[Any, ...]]]
) -> None:
    """As the poller reads them: each state's JSON through one StateDecoder,
    which hands the unchanged tasks back as the last state's objects."""
    engine = Engine(rng=random.Random(0))
    decoder = StateDecoder()

    def decoded(state: State) -> State:
        data = msgspec.json.encode(state)
        got = decoder.decode(data)
        assert got == held_state(parse_state(data))
        return got

    states = polls(initial, steps)
    state, params = next(states)
    first_version(engine, decoded(state), params, SETTINGS)
    for state, params in states:
        got = decoded(state)
        poll(engine, got, params)
        check_like_batch(engine, got, params)


def host_task(tid: str) -> Task:
    """A running task with the agent's address (two such share their A record)."""
    status = Status(state="TASK_RUNNING", timestamp=1.0)
    return Task(id=tid, name="web", state="TASK_RUNNING", agent_id=AGENT, framework_id="fw-1",
                statuses=(status,))


@pytest.mark.parametrize("case", ["task back", "frameworks reordered"])
def test_the_enumeration_after_a_diff_is_a_full_builds(case: str) -> None:
    marathon = Framework(id="fw-1", name="marathon", pid="scheduler@10.0.0.11:8080")
    chronos = Framework(id="fw-2", name="chronos", hostname="10.0.0.12")
    agent = Agent(id=AGENT, hostname="h", pid=AGENTS[AGENT])
    t1, t2 = host_task("t1"), host_task("t2")

    def state(*fws: Framework) -> State:
        return State(leader="master@10.0.0.11:5050", frameworks=fws, agents=(agent,))

    if case == "task back":  # t1 goes away and comes back, listed first again
        both = state(msgspec.structs.replace(marathon, tasks=(t1, t2)))
        polls_ = [both, state(msgspec.structs.replace(marathon, tasks=(t2,))), both]
    else:  # the master lists the same frameworks in another order
        polls_ = [state(marathon, chronos), state(chronos, marathon)]
    engine = Engine(rng=random.Random(0))
    first_version(engine, polls_[0], PARAMS, SETTINGS)
    for s in polls_[1:]:
        poll(engine, s, PARAMS)
    assert engine.gen is not None
    assert engine.gen.enumeration() == generate(polls_[-1], PARAMS).frameworks


# -- 2. the same versions, through frames, in a replica -------------------------------


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(initial=initial_ops, steps=poll_steps, part_items=st.sampled_from([3, 4096]))
def test_a_replica_fed_the_frames_serves_the_builders_table(
    initial: list[tuple[Any, ...]], steps: list[list[tuple[Any, ...]]], part_items: int
) -> None:
    assert len(SETTINGS2.aliases) == 2
    seen: list[bool] = []
    replica = Replica(lambda r, full: seen.append(full))
    engine = Engine(rng=random.Random(0))
    states = polls(initial, steps)
    with pytest.MonkeyPatch.context() as mp:
        # 3: the first (full) version comes in parts, marks frames of each zone
        mp.setattr(update_mod, "PART_ITEMS", part_items)
        state, params = next(states)
        done = feed(replica, first_version(engine, state, params, SETTINGS2))
        assert done[-1] and not any(done[:-1])
        assert seen == [True]
        check_replica(replica, engine)
        for state, params in states:
            update = poll(engine, state, params)
            if update is None:
                continue
            assert not update.full
            # a large change comes in parts too, applied at its commit
            done = feed(replica, update)
            assert done[-1] and not any(done[:-1])
            assert seen[-1] is False
            check_replica(replica, engine)
        # a server that starts now gets the current version whole
        late = Replica()
        feed(late, engine.full())
        check_replica(late, engine)


# -- 3. full updates in parts, version gaps, frames that are not ours ----------------

def app_state(instances: int, *, fw_name: str = "marathon", ip_base: str = "10.0.3") -> State:
    tasks = tuple(
        Task(
            id=f"web.{i}", name="web", state="TASK_RUNNING", agent_id=AGENT, framework_id="fw-1",
            statuses=running_status(f"{ip_base}.{i + 1}"),
            resources=Resources(f"[{31000 + i}-{31000 + i}]"),
        )
        for i in range(instances)
    )
    return State(
        leader="master@10.0.0.11:5050",
        frameworks=(Framework(id="fw-1", name=fw_name, pid="scheduler@10.0.0.11:8080",
                              tasks=tasks),),
        agents=(Agent(id=AGENT, hostname="h", pid=AGENTS[AGENT]),),
    )


def running_status(ip: str) -> tuple[Status, ...]:
    network = NetworkInfo((IPAddress(ip),))
    container = ContainerStatus((network,))
    return (Status(state="TASK_RUNNING", timestamp=1.0, container_status=container),)


def synth_state(tasks: int, agents: int, seed: int) -> State:
    """A realistic state of bench/synth.py."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    try:
        synth = importlib.import_module("synth")
    finally:
        sys.path.pop(0)
    return parse_state(orjson.dumps(synth.make_state(tasks, agents, seed)))


SYNTH_PARAMS = GeneratorParams(listener_ips=("10.0.0.1",), masters=("", "10.0.0.11:5050"))


def frozen(replica: Replica) -> tuple[Any, ...]:
    """What the replica serves, as values (to compare before and after)."""
    assert replica.table is not None and replica.records is not None
    t = replica.table
    return (
        replica.version, replica.serial, replica.source, id(t), id(replica.records),
        dict(t.entries), dict(t.hot), t.soa_rr, t.info,
        [(frozenset(z.names), frozenset(z.slow), z.table.soa_rr) for z in replica.zones],
        {k: dict(getattr(replica.records, k)) for k in ("a", "aaaa", "srv")},
        replica.records.skipped,
    )


def test_a_full_update_in_parts_is_applied_at_its_commit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(update_mod, "PART_ITEMS", 50)
    seen: list[bool] = []
    replica = Replica(lambda r, full: seen.append(full))
    engine = Engine(rng=random.Random(0))
    feed(replica, first_version(engine, synth_state(40, 4, 1), SYNTH_PARAMS, SETTINGS2))
    check_replica(replica, engine)
    old_table = replica.table
    assert old_table is not None
    before = frozen(replica)

    # a configuration a diff cannot apply (here: another TTL): built whole
    state = synth_state(60, 5, 2)
    compilers = Compilers(replace(SETTINGS2, ttl=5))
    assert not engine.can_diff(SYNTH_PARAMS, compilers)
    built = engine.build(state, SYNTH_PARAMS, compilers, engine.next_serial())
    full = engine.install(built, compilers, "rebuilt")
    assert full.full and full.size() > 10 * update_mod.PART_ITEMS
    parts = list(frames(full))
    kinds = [update_mod.read(f[4:])[0] for f in parts]
    assert kinds[0] == "begin" and kinds[-1] == "commit"
    assert {"part", "marks"} <= set(kinds[1:-1]) <= {"part", "marks"}
    # a zone's marks come in several frames, for each zone
    assert {update_mod.read(f[4:])[1] for f in parts if update_mod.read(f[4:])[0] == "marks"} \
        == {0, 1, 2}
    for frame in parts[:-1]:
        assert replica.feed(frame[4:]) is False
        assert replica.table is old_table
        assert frozen(replica) == before  # still the old version, whole
    assert seen == [True]
    assert replica.feed(parts[-1][4:]) is True
    assert seen == [True, True]
    assert replica.table is not None and replica.table is not old_table
    assert replica.table.settings.ttl == 5
    check_replica(replica, engine)
    check_like_batch(engine, state, SYNTH_PARAMS)


def test_a_version_gap_and_a_wrong_commit_leave_the_replica_as_it_was(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(update_mod, "PART_ITEMS", 50)
    replica = Replica()
    engine = Engine(rng=random.Random(0))
    feed(replica, first_version(engine, app_state(3), PARAMS, SETTINGS2))
    before = frozen(replica)
    u1 = poll(engine, app_state(4), PARAMS)
    u2 = poll(engine, app_state(5), PARAMS)
    assert u1 is not None and u2 is not None and u2.version == u1.version + 1
    with pytest.raises(ReplicaError, match="does not follow"):
        feed(replica, u2)
    assert frozen(replica) == before
    # the same version again: a gap too (it does not follow the version held)
    feed(replica, u1)
    with pytest.raises(ReplicaError):
        feed(replica, u1)
    feed(replica, u2)
    check_replica(replica, engine)

    # a full update whose commit names another version: nothing applied
    before = frozen(replica)
    parts = list(frames(engine.full()))
    assert len(parts) > 2
    with pytest.raises(ReplicaError, match="commit"):
        for frame in [*parts[:-1], update_mod._frame(("commit", engine.version + 7))]:
            replica.feed(frame[4:])
    assert frozen(replica) == before
    # parts without their begin frame
    with pytest.raises(ReplicaError, match="outside an update"):
        replica.feed(parts[1][4:])
    assert frozen(replica) == before
    # a change before any full update
    with pytest.raises(ReplicaError, match="without a full update"):
        feed(Replica(), u1)


NOT_OURS = [
    b"",
    b"garbage",
    b"\x00\x01\x02\x03",
    pickle.dumps(42),  # a pickle, not a frame
    pickle.dumps(()),
    pickle.dumps(("nonsense", 1)),
    pickle.dumps(("part", "a", {})),  # a part with no full update begun
]


@pytest.mark.parametrize("body", NOT_OURS, ids=range(len(NOT_OURS)))
def test_a_frame_that_is_not_ours_raises_and_changes_nothing(
    body: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(update_mod, "PART_ITEMS", 50)
    replica = Replica()
    engine = Engine(rng=random.Random(0))
    feed(replica, first_version(engine, app_state(3), PARAMS, SETTINGS2))
    before = frozen(replica)
    with pytest.raises(Exception):  # noqa: B017 - a ValueError or ReplicaError: see below
        replica.feed(body)
    assert frozen(replica) == before
    # in the middle of a full update too: the old version keeps serving
    parts = list(frames(first_version(engine, app_state(6), PARAMS, SETTINGS2)))
    for frame in parts[: len(parts) // 2]:
        replica.feed(frame[4:])
    if body != pickle.dumps(("part", "a", {})):  # that one is a part, of the staged update
        with pytest.raises(Exception):  # noqa: B017
            replica.feed(body)
    assert frozen(replica) == before
    # and the builder's frames still work afterwards
    feed(replica, engine.full())
    check_replica(replica, engine)


@pytest.mark.parametrize("body", [b"", b"garbage", b"\x00\x01\x02\x03"], ids=range(3))
def test_a_frame_that_is_not_ours_raises_what_the_follower_handles(body: bytes) -> None:
    with pytest.raises((ReplicaError, ValueError)):
        Replica().feed(body)


def test_the_follower_starts_over_after_a_frame_that_is_not_ours() -> None:
    engine = Engine(rng=random.Random(0))
    full = first_version(engine, app_state(2), PARAMS, SETTINGS)
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        if connections == 1:
            writer.write(update_mod.LENGTH.pack(7) + b"garbage")
        else:
            writer.writelines(frames(full))
        await writer.drain()
        await reader.read()
        writer.close()

    async def main() -> int:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "b.sock")
            server = await asyncio.start_unix_server(serve, path=path)
            replica = Replica()
            follower = Follower(path, replica, retry=0.01, retry_max=0.02)
            follower.start()
            try:
                deadline = time.monotonic() + 2.0
                while replica.version != full.version and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                return replica.version
            finally:
                await follower.stop()
                server.close()

    assert asyncio.run(main()) == full.version


# -- 4. the SOA serial ---------------------------------------------------------------


def test_the_serial_moves_only_forward_and_only_on_a_change(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    replica = Replica()
    engine = Engine(rng=random.Random(0))
    state = app_state(3)
    feed(replica, first_version(engine, state, PARAMS, SETTINGS2))
    serial, version = engine.serial, engine.version
    assert abs(serial - time.time()) < 5

    # the same state polled again (and decoded again: equal, not the same objects)
    again = parse_state(msgspec.json.encode(state))
    for same in (state, again, again):
        assert poll(engine, same, PARAMS) is None
        assert engine.serial == serial and engine.version == version
        assert engine.live is not None and engine.live.table.serial == serial
    check_replica(replica, engine)

    # the clock steps back an hour: a change still moves the serial forward
    now = [serial - 3600.0]
    monkeypatch.setattr(engine_mod, "time", SimpleNamespace(time=lambda: now[0]))
    serials = [serial]
    for n in (4, 5, 4):
        update = poll(engine, app_state(n), PARAMS)
        assert update is not None and update.serial == engine.serial
        serials.append(engine.serial)
        feed(replica, update)
        check_replica(replica, engine)
    assert serials == [serial, serial + 1, serial + 2, serial + 3]
    # every zone's SOA record carries it
    live = engine.live
    assert live is not None
    assert live.table.soa_rr == soa_record(SETTINGS2, serial + 3)
    for zone in live.zones[1:]:
        assert zone.table.soa_rr == soa_record(zone.settings, serial + 3, zone.apex)
    # an unchanged poll still changes nothing
    assert poll(engine, app_state(4), PARAMS) is None
    assert engine.serial == serial + 3

    # a rebuild (settings a diff cannot apply) goes forward too
    compilers = Compilers(replace(SETTINGS2, ttl=7))
    built = engine.build(app_state(4), PARAMS, compilers, engine.next_serial())
    full = engine.install(built, compilers, "rebuilt")
    assert full.serial == engine.serial == serial + 4
    feed(replica, full)
    check_replica(replica, engine)

    # the clock back to normal, later: the serial follows it again
    now[0] = serial + 100.0
    update = poll(engine, app_state(6), PARAMS)
    assert update is not None and engine.serial == serial + 100
    # several changes within one second: one more each
    now[0] += 0.3
    update = poll(engine, app_state(2), PARAMS)
    assert update is not None and engine.serial == serial + 101


# -- 5. large SRV names deferred -----------------------------------------------------


def srv_key(name: str) -> bytes:
    wname = wire.text_to_wire(name)
    assert wname is not None
    return HOT_PREFIX + wname + b"\x00\x21\x00\x01"


def test_large_srv_names_wait_for_compile_pending() -> None:
    replica = Replica()
    engine = Engine(rng=random.Random(0), defer_targets=2)
    feed(replica, first_version(engine, app_state(3), PARAMS, SETTINGS))
    live = engine.live
    assert live is not None
    names = {
        "_web._tcp.marathon.mesos.", "_web._udp.marathon.mesos.",
        "_web._tcp.marathon.slave.mesos.", "_web._udp.marathon.slave.mesos.",
    }
    keys = [srv_key(n) for n in names]
    keys += [srv_key(n.replace(".mesos.", ".mesos.c1.dcos.directory.")) for n in names]
    stale = {k: live.table.entries[k] for k in keys}
    assert all(e.n == 3 for e in stale.values())

    state = app_state(4)
    update = poll(engine, state, PARAMS, defer=True, source="stream")
    assert update is not None
    feed(replica, update)
    assert live.pending == names
    # the A records follow at once, the large SRV names (every zone) keep theirs
    a_key = HOT_PREFIX + (wire.text_to_wire("web.marathon.mesos.") or b"") + b"\x00\x01\x00\x01"
    assert live.table.entries[a_key].n == 4
    assert all(live.table.entries[k] is stale[k] for k in keys)
    assert replica.table is not None and replica.table.entries[a_key].n == 4
    assert all(replica.table.entries[k].n == 3 for k in keys)
    check_replica(replica, engine)

    pending = engine.compile_pending()
    assert pending is not None and not pending.full
    assert not live.pending
    assert set(pending.entries) >= set(keys)
    assert all(live.table.entries[k].n == 4 for k in keys)
    check_like_batch(engine, state, PARAMS)
    feed(replica, pending)
    check_replica(replica, engine)
    assert engine.compile_pending() is None

    # a poll (defer=False) never defers
    state = app_state(6)
    update = poll(engine, state, PARAMS, defer=False)
    assert update is not None and not live.pending
    check_like_batch(engine, state, PARAMS)
    feed(replica, update)
    check_replica(replica, engine)
