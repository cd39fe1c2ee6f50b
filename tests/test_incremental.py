"""The incremental generator and the live answer table against the batch ones.

The property: after any sequence of changes (the operator API's events, a new
leader, masters list or host resolution), the incremental record set equals,
name by name as sets, what ``generate()`` produces for the state a plain
reference model of the same changes holds; the enumeration is equal exactly;
and the answer table kept current in place equals (entry by entry, with its
names, slow names and additional records) a fresh compile of the records.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mesosdns.dns import wire
from mesosdns.dns.answers import HOT_PREFIX, AnswerTable, compile_answers, pack_v4, pack_v6
from mesosdns.dns.incremental import LiveAnswers
from mesosdns.dns.settings import DNSSettings, RRLSettings
from mesosdns.records.counted import plain
from mesosdns.records.generator import GeneratorParams, _Generation, generate
from mesosdns.records.incremental import FINAL_STATES, IncrementalGenerator
from mesosdns.records.model import RecordSet
from mesosdns.state.model import (
    MESOS_IP_LABEL,
    Agent,
    ContainerStatus,
    DiscoveryInfo,
    DiscoveryPort,
    DiscoveryPorts,
    Framework,
    IPAddress,
    Label,
    NetworkInfo,
    Resources,
    State,
    Status,
    Task,
    parse_pid,
)

PARAMS = GeneratorParams(
    domain="mesos",
    ns_name="ns1.mesos.",
    listener_ips=("10.0.0.1",),
    masters=("", "10.0.0.11:5050", "10.0.0.12:5050"),
    resolved=MappingProxyType({"agent-b.example": ("10.0.2.1", "10.0.2.2")}),
)
SETTINGS = DNSSettings(domain="mesos", aliases=("mesos.c1.dcos.directory",), ttl=60)

# -- the universe the changes are drawn from ----------------------------------

AGENTS = {
    "20160107-001256-134875658-5050-27524-S1": "slave(1)@10.0.1.1:5051",
    "20160107-001256-134875658-5050-27524-S2": "slave(1)@10.0.1.2:5051",
    "20170101-000000-000000000-5050-00001-S1": "slave(1)@agent-b.example:5051",
    "A-S3": "slave(1)@[fd00::3]:5051",
    "A-S4": "slave(1)@unresolved.example:5051",
}
AGENT_IDS = [*AGENTS, "Z-S9"]  # the last never exists
FRAMEWORK_IDS = ["fw-1", "fw-2", "fw-3", "fw-9"]
TASK_IDS = ["t1", "t2", "t3", "t4", "t5", "t6"]
IPS = ["10.0.3.1", "10.0.3.2", "fd00::31", "::ffff:10.0.3.9", "bogus"]

agent_pids = st.sampled_from(
    [*AGENTS.values(), "slave(1)@10.0.1.7:5051", "slave(1)@10.0.1.1:5052", "no-pid"]
)
# "master": its A records sit in master.<domain>, which the masters' records
# depend on (10.0.0.11 and 10.0.0.12 are masters)
framework_names = st.sampled_from(
    ["marathon", "master", "master", "Marathon.Prod", "leader", "", "x_y"]
)
framework_pids = st.sampled_from(
    [
        None,
        "scheduler@10.0.0.11:8080",
        "scheduler@10.0.0.12:9090",
        "scheduler@10.0.0.99:9090",
        "scheduler@sched.example:1",
    ]
)
framework_hosts = st.sampled_from(["10.0.0.11", "10.0.0.12", "sched.example", "fd00::11", ""])
task_names = st.sampled_from(["web", "api", "web.v2", "Db_1", ""])
task_states = st.sampled_from(["TASK_RUNNING", "TASK_RUNNING", "TASK_STAGING", "TASK_LOST"])
update_states = st.sampled_from(
    ["TASK_RUNNING", "TASK_RUNNING", "TASK_STARTING", "TASK_KILLED", "TASK_FINISHED", "TASK_LOST"]
)
ports_texts = st.sampled_from(["", "[31000-31001]", "[31000-31000, 31005-31005]", "[31002-31002]"])


@st.composite
def statuses(draw: st.DrawFn, state: str | None = None) -> Status:
    ips = draw(st.lists(st.sampled_from(IPS), max_size=2))
    labels: tuple[Label, ...] = ()
    if draw(st.booleans()):
        labels = (Label(MESOS_IP_LABEL, draw(st.sampled_from(IPS))),)
    return Status(
        state=state or draw(st.sampled_from(["TASK_RUNNING", "TASK_STARTING"])),
        timestamp=float(draw(st.integers(1, 5))),
        labels=labels,
        container_status=ContainerStatus(
            network_infos=(NetworkInfo(ip_addresses=tuple(IPAddress(ip) for ip in ips)),)
        )
        if ips
        else None,
        # a health check's result (None: no health check); read with omitUnhealthy
        healthy=draw(st.sampled_from([None, None, True, False, False])),
    )


discoveries = st.one_of(
    st.none(),
    st.builds(
        DiscoveryInfo,
        name=st.sampled_from(["svc", "Svc.A", ""]),
        ports=st.one_of(
            st.none(),
            st.builds(
                DiscoveryPorts,
                ports=st.lists(
                    st.builds(
                        DiscoveryPort,
                        number=st.sampled_from([80, 8080]),
                        name=st.sampled_from(["", "http", "Admin"]),
                        protocol=st.sampled_from(["tcp", "UDP", ""]),
                    ),
                    max_size=2,
                ).map(tuple),
            ),
        ),
    ),
)


@st.composite
def tasks(draw: st.DrawFn) -> Task:
    ports = draw(ports_texts)
    return Task(
        id=draw(st.sampled_from(TASK_IDS)),
        name=draw(task_names),
        state=draw(task_states),
        agent_id=draw(st.sampled_from(AGENT_IDS)),
        framework_id=draw(st.sampled_from(FRAMEWORK_IDS)),
        statuses=tuple(draw(st.lists(statuses(), max_size=3))),
        resources=Resources(ports=ports) if ports else None,
        discovery=draw(discoveries),
    )


frameworks = st.builds(
    Framework,
    id=st.sampled_from(FRAMEWORK_IDS[:3]),
    name=framework_names,
    pid=framework_pids,
    hostname=framework_hosts,
)
agents = st.builds(
    Agent,
    id=st.sampled_from(AGENT_IDS[:-1]),
    hostname=st.just("h"),
    pid=agent_pids,
)

changes = st.one_of(
    st.tuples(st.just("put_task"), tasks()),
    st.tuples(st.just("put_task"), tasks()),
    st.tuples(
        st.just("update_task"),
        st.sampled_from(FRAMEWORK_IDS),
        st.sampled_from(TASK_IDS),
        update_states.flatmap(lambda s: st.tuples(st.just(s), statuses(s))),
    ),
    st.tuples(
        st.just("update_task"),
        st.sampled_from(FRAMEWORK_IDS),
        st.sampled_from(TASK_IDS),
        st.tuples(st.just("TASK_RUNNING"), statuses("TASK_RUNNING")),
    ),
    st.tuples(st.just("put_framework"), frameworks),
    st.tuples(st.just("remove_framework"), st.sampled_from(FRAMEWORK_IDS)),
    st.tuples(st.just("put_agent"), agents),
    st.tuples(st.just("remove_agent"), st.sampled_from(AGENT_IDS)),
    st.tuples(
        st.just("leader"),
        st.sampled_from(["master@10.0.0.11:5050", "master@10.0.0.13:5050", "bad", ""]),
    ),
    st.tuples(
        st.just("masters"),
        st.sampled_from([("", "10.0.0.11:5050"), ("10.0.0.12:5050", "10.0.0.11:5050"), ("",)]),
    ),
    st.tuples(
        st.just("resolved"),
        st.sampled_from(["agent-b.example", "sched.example", "unresolved.example"]),
        st.sampled_from([(), ("10.0.2.1",), ("10.0.2.7", "fd00::27")]),
    ),
)


# -- the reference: the same changes on plain dicts ---------------------------


@dataclass
class Reference:
    leader: str = "master@10.0.0.11:5050"
    params: GeneratorParams = PARAMS
    frameworks: dict[str, Framework] = field(default_factory=dict)
    tasks: dict[str, dict[str, Task]] = field(default_factory=dict)
    agents: dict[str, Agent] = field(default_factory=dict)

    def apply(self, change: tuple[Any, ...]) -> None:
        op = change[0]
        if op == "put_task":
            task = change[1]
            self.tasks.setdefault(task.framework_id, {})[task.id] = task
        elif op == "update_task":
            fid, tid, (state, status) = change[1:]
            task = self.tasks.get(fid, {}).get(tid)
            if task is None:
                return
            if state in FINAL_STATES:
                del self.tasks[fid][tid]
                return
            kept = task.statuses
            if kept and kept[-1].state == status.state:
                kept = kept[:-1]
            self.tasks[fid][tid] = msgspec.structs.replace(
                task, state=state, statuses=(*kept, status)
            )
        elif op == "put_framework":
            self.frameworks[change[1].id] = change[1]
        elif op == "remove_framework":
            self.frameworks.pop(change[1], None)
            self.tasks.pop(change[1], None)
        elif op == "put_agent":
            if parse_pid(change[1].pid) is not None:
                self.agents[change[1].id] = change[1]
        elif op == "remove_agent":
            self.agents.pop(change[1], None)
        elif op == "leader":
            self.leader = change[1]
        elif op == "masters":
            self.params = replace(self.params, masters=change[1])
        elif op == "resolved":
            resolved = dict(self.params.resolved)
            if change[2]:
                resolved[change[1]] = change[2]
            else:
                resolved.pop(change[1], None)
            self.params = replace(self.params, resolved=MappingProxyType(resolved))

    def state(self) -> State:
        return State(
            leader=self.leader,
            frameworks=tuple(
                msgspec.structs.replace(fw, tasks=tuple(self.tasks.get(fid, {}).values()))
                for fid, fw in self.frameworks.items()
            ),
            agents=tuple(self.agents.values()),
        )

    def orphans(self) -> list[Task]:
        return [
            t for fid, ts in self.tasks.items() if fid not in self.frameworks for t in ts.values()
        ]


def apply(gen: IncrementalGenerator, change: tuple[Any, ...]) -> None:
    op = change[0]
    if op == "put_task":
        gen.put_task(change[1])
    elif op == "update_task":
        fid, tid, (state, status) = change[1:]
        gen.update_task(fid, tid, status, state)
    elif op == "put_framework":
        gen.put_framework(change[1])
    elif op == "remove_framework":
        gen.remove_framework(change[1])
    elif op == "put_agent":
        gen.put_agent(change[1])
    elif op == "remove_agent":
        gen.remove_agent(change[1])
    elif op == "leader":
        gen.set_leader(change[1])
    elif op == "masters":
        gen.set_masters(change[1])
    elif op == "resolved":
        gen.set_resolved(change[1], change[2])


def as_sets(rs: RecordSet) -> dict[str, dict[str, set[str]]]:
    return {
        kind: {name: {str(v) for v in values} for name, values in getattr(rs, kind).items()}
        for kind in ("a", "aaaa", "srv")
    }


def check_records(gen: IncrementalGenerator, ref: Reference) -> None:
    expected = generate(ref.state(), ref.params)
    live = gen.record_set()
    assert as_sets(live) == as_sets(expected)
    assert tuple(live.frameworks) == tuple(expected.frameworks)
    assert gen.state() == ref.state()


def as_values(rs: RecordSet) -> tuple[dict[str, tuple[Any, ...]], ...]:
    """A record set's maps, values in their order."""
    return tuple({n: tuple(v) for n, v in getattr(rs, k).items()} for k in ("a", "aaaa", "srv"))


class Snapshots:
    """Snapshots taken along a run of changes, each with what it showed when
    it was taken: it must equal the live records then, and never change."""

    def __init__(self) -> None:
        self.taken: list[tuple[RecordSet, tuple[Any, ...], tuple[Any, ...]]] = []

    def take(self, gen: IncrementalGenerator) -> None:
        snap = gen.snapshot()
        live = gen.record_set()
        assert as_values(snap) == as_values(live)
        self.taken.append((snap, as_values(live), tuple(live.frameworks)))

    def check(self) -> None:
        for snap, values, frameworks in self.taken:
            assert as_values(snap) == values
            assert tuple(snap.frameworks) == frameworks  # its enumeration: of its time


# -- the answer table -----------------------------------------------------------


def entry_form(e: Any) -> tuple[Any, ...]:
    """An entry without what its orderings (random) decide."""
    return (e.kind, e.qsec, e.n, frozenset(e.rrs), e.additional(0)[1], e.trunc, len(e.tails()) > 0)


def check_glue(table: AnswerTable, rs: RecordSet) -> None:
    """Each SRV entry's additional records carry each target's current first
    A / AAAA value (the targets' changes reached the SRV names)."""
    ttl = struct.pack(">I", table.settings.ttl)
    for e in table.entries.values():
        if e.kind != 2:
            continue
        name = e.qsec[:-4]
        text = _text(name)
        zone = table if text.endswith(".mesos.") else table.aliases[0]
        blob = e.additional(0)[0]
        for target in zone.rs.srv.get(text, ()):
            for values, pack, head in (
                (zone.rs.a.get(target.host), pack_v4, b"\x00\x01\x00\x01"),
                (zone.rs.aaaa.get(target.host), pack_v6, b"\x00\x1c\x00\x01"),
            ):
                if values and pack(values[0]) is not None:
                    packed = pack(values[0])
                    assert packed is not None
                    size = struct.pack(">H", len(packed))
                    assert head + ttl + size + packed in blob, (text, target)


def _text(wname: bytes) -> str:
    out, i = [], 0
    while wname[i]:
        out.append(wname[i + 1 : i + 1 + wname[i]].decode())
        i += 1 + wname[i]
    return ".".join(out) + "."


def check_table(
    live: LiveAnswers, gen: IncrementalGenerator, settings: DNSSettings = SETTINGS
) -> None:
    fresh = compile_answers(gen.snapshot(), settings, live.serial)
    table = live.table
    assert set(table.entries) == set(fresh.entries)
    # the hot view holds only names asked since their last change, each
    # with its entry's current replies
    for key, v in table.hot.items():
        assert key in table.entries and v[2:] == table.entries[key].tails(), key
    for key, e in fresh.entries.items():
        mine = table.entries[key]
        assert entry_form(mine) == entry_form(e), key
        tails = mine.tails()
        # each ready reply tail: the counts, then this entry's own question
        assert all(t[8 : 8 + len(mine.qsec)] == mine.qsec for t in tails), key
        assert len(tails) == len(e.tails())
        # the ready tails are what rendering that ordering gives
        for v, tail in enumerate(tails if mine.kind == 2 else ()):
            flags = table.hot.flags[bool(mine.trunc)][wire.flag_index(0x01, 0x00)]
            rendered = table.render(mine, v, b"\x42\x42", 0x01, 0x00, mine.qsec, 512, b"")
            assert b"\x42\x42" + flags + tail == rendered, key
    assert set(table.names) == set(fresh.names)
    assert set(table.slow_names) == set(fresh.slow_names)
    assert table.soa_rr == fresh.soa_rr
    for view, fview in zip(table.aliases, fresh.aliases, strict=True):
        assert set(view.names) == set(fview.names)
        assert set(view.slow_names) == set(fview.slow_names)
        assert view.soa_rr == fview.soa_rr
        assert as_sets(view.rs) == as_sets(fview.rs)
    check_glue(table, gen.record_set())


# -- the properties ---------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(initial=st.lists(changes, max_size=12), later=st.lists(changes, min_size=1, max_size=20))
def test_changes_match_the_batch_generator(
    initial: list[tuple[Any, ...]], later: list[tuple[Any, ...]]
) -> None:
    ref = Reference()
    for change in initial:
        ref.apply(change)
    gen = IncrementalGenerator.from_state(ref.state(), ref.params, ref.orphans())
    check_records(gen, ref)
    # SRV names of more than 2 targets are deferred: exercised too
    live = LiveAnswers(gen.record_set(), SETTINGS, 1, random.Random(0), defer_targets=2)
    check_table(live, gen)
    snaps = Snapshots()
    for serial, change in enumerate(later, start=2):
        ref.apply(change)
        apply(gen, change)
        check_records(gen, ref)
        if serial % 2:  # with changes not taken yet, and right after
            snaps.take(gen)
        live.update(gen.take_changes())
        live.set_serial(serial)
        if serial % 4 == 0:
            snaps.take(gen)
        if serial % 3 == 0 or serial == len(later) + 1:
            live.compile_pending()
            check_table(live, gen)
    snaps.check()


OMIT = replace(PARAMS, omit_unhealthy=True)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(initial=st.lists(changes, max_size=12), later=st.lists(changes, min_size=1, max_size=20))
def test_changes_match_the_batch_generator_with_omit_unhealthy(
    initial: list[tuple[Any, ...]], later: list[tuple[Any, ...]]
) -> None:
    """omitUnhealthy: the same property, health flipping at random (statuses
    draw ``healthy`` true, false or absent): records, enumeration, the count
    of tasks left out, and the answer table follow the batch generator."""
    ref = Reference(params=OMIT)
    for change in initial:
        ref.apply(change)
    gen = IncrementalGenerator.from_state(ref.state(), ref.params, ref.orphans())
    check_records(gen, ref)
    live = LiveAnswers(gen.record_set(), SETTINGS, 1, random.Random(0), defer_targets=2)
    snaps = Snapshots()
    for serial, change in enumerate(later, start=2):
        ref.apply(change)
        apply(gen, change)
        check_records(gen, ref)
        batch = _Generation(ref.state(), ref.params)
        batch.run()
        assert gen.omitted == batch.omitted
        if serial % 2:
            snaps.take(gen)
        live.update(gen.take_changes())
        live.set_serial(serial)
    live.compile_pending()
    snaps.check()
    check_table(live, gen)


def same_counts(built: IncrementalGenerator, gen: IncrementalGenerator) -> None:
    """The same contributors per value and SRV target index: the changes
    that follow a first build take values away right."""
    assert (built.a, built.aaaa, built.srv) == (gen.a, gen.aaaa, gen.srv)
    assert built._srv_targets == gen._srv_targets
    assert dict(built._contrib) == dict(gen._contrib)


@settings(max_examples=60, deadline=None)
@given(initial=st.lists(changes, max_size=12))
def test_from_state_equals_replaying_the_changes(initial: list[tuple[Any, ...]]) -> None:
    """Building from a state and reaching it change by change agree."""
    ref = Reference()
    gen = IncrementalGenerator(PARAMS, ref.leader)
    for change in initial:
        ref.apply(change)
        apply(gen, change)
    built = IncrementalGenerator.from_state(ref.state(), ref.params, ref.orphans())
    assert as_sets(built.record_set()) == as_sets(gen.record_set())
    assert built.enumeration() == gen.enumeration()
    same_counts(built, gen)


@settings(max_examples=60, deadline=None)
@given(initial=st.lists(changes, max_size=12))
def test_from_state_equals_replaying_the_changes_with_omit_unhealthy(
    initial: list[tuple[Any, ...]],
) -> None:
    ref = Reference(params=OMIT)
    gen = IncrementalGenerator(OMIT, ref.leader)
    for change in initial:
        ref.apply(change)
        apply(gen, change)
    built = IncrementalGenerator.from_state(ref.state(), ref.params, ref.orphans())
    assert as_sets(built.record_set()) == as_sets(gen.record_set())
    assert built.enumeration() == gen.enumeration()
    same_counts(built, gen)
    assert built.omitted == gen.omitted


# -- cases worth naming ------------------------------------------------------------


def running(tid: str, agent: str, ip: str | None = None, fw: str = "fw-1") -> Task:
    status = Status(
        state="TASK_RUNNING",
        timestamp=1.0,
        container_status=ContainerStatus((NetworkInfo((IPAddress(ip),)),)) if ip else None,
    )
    return Task(
        id=tid,
        name="web",
        state="TASK_RUNNING",
        agent_id=agent,
        framework_id=fw,
        statuses=(status,),
        resources=Resources("[31000-31000]"),
    )


AGENT1 = "20160107-001256-134875658-5050-27524-S1"


def base_generator() -> IncrementalGenerator:
    state = State(
        leader="master@10.0.0.11:5050",
        frameworks=(Framework(id="fw-1", name="marathon", pid="scheduler@10.0.0.11:8080"),),
        agents=(Agent(id=AGENT1, hostname="h", pid=AGENTS[AGENT1]),),
    )
    return IncrementalGenerator.from_state(state, PARAMS)


def test_a_task_change_reports_only_its_names() -> None:
    gen = base_generator()
    gen.put_task(running("t1", AGENT1, "10.0.3.1"))
    changed = gen.take_changes()
    assert "web.marathon.mesos." in changed
    assert "_web._tcp.marathon.slave.mesos." in changed
    assert all("web" in name for name in changed)
    # a health update with the same address changes nothing
    assert gen.update_task(
        "fw-1", "t1", running("t1", AGENT1, "10.0.3.1").statuses[0], "TASK_RUNNING"
    )
    assert gen.take_changes() == set()


def test_agent_address_change_reaches_its_tasks_and_their_srv_glue() -> None:
    gen = base_generator()
    gen.put_task(running("t1", AGENT1))  # host IP: the agent's
    gen.take_changes()
    gen.put_agent(Agent(id=AGENT1, hostname="h", pid="slave(1)@10.0.1.50:5051"))
    changed = gen.take_changes()
    assert plain(gen.a)["web.marathon.mesos."] == {"10.0.1.50": 1}
    # the SRV names keep their values but their targets' addresses changed
    assert "_web._tcp.marathon.slave.mesos." in changed


def test_framework_named_master_shifts_the_master_indexes() -> None:
    """The original skips a master whose address master.<domain> already has
    (from a framework named "master"): the masters' records follow."""
    gen = base_generator()
    assert plain(gen.a)["master1.mesos."] == {"10.0.0.12": 1}
    gen.put_framework(Framework(id="fw-2", name="master", pid="scheduler@10.0.0.12:1"))
    ref = replace(Reference(), frameworks={}, agents={})
    state = gen.state()
    assert as_sets(gen.record_set()) == as_sets(generate(state, gen.params))
    assert "master1.mesos." not in gen.a  # 10.0.0.12 was listed by the framework
    gen.remove_framework("fw-2")
    assert plain(gen.a)["master1.mesos."] == {"10.0.0.12": 1}
    del ref


def test_final_states_drop_the_task_and_unknown_updates_are_reported() -> None:
    gen = base_generator()
    gen.put_task(running("t1", AGENT1, "10.0.3.1"))
    kill = Status(state="TASK_KILLED", timestamp=2.0)
    assert gen.update_task("fw-1", "t1", kill, "TASK_KILLED")
    assert "t1" not in gen.tasks["fw-1"]
    assert "web.marathon.mesos." not in gen.a
    assert not gen.update_task("fw-1", "t1", kill, "TASK_KILLED")


@pytest.mark.parametrize("orphan_first", [True, False])
def test_tasks_wait_for_their_framework(orphan_first: bool) -> None:
    gen = base_generator()
    task = running("t1", AGENT1, "10.0.3.1", fw="fw-2")
    fw = Framework(id="fw-2", name="chronos", hostname="10.0.0.20")
    if orphan_first:
        gen.put_task(task)
        assert "web.chronos.mesos." not in gen.a
        gen.put_framework(fw)
    else:
        gen.put_framework(fw)
        gen.put_task(task)
    assert plain(gen.a)["web.chronos.mesos."] == {"10.0.3.1": 1}
    gen.put_framework(replace_name(fw, "cron"))  # renamed: its tasks follow
    assert "web.chronos.mesos." not in gen.a
    assert plain(gen.a)["web.cron.mesos."] == {"10.0.3.1": 1}


def replace_name(fw: Framework, name: str) -> Framework:
    return msgspec.structs.replace(fw, name=name)


def test_a_first_build_counts_what_tasks_share() -> None:
    """Two tasks on one agent give the same slave-name address: built from
    a state, the value counts both, so that losing one task keeps it and
    losing both removes it, with the SRV names and their target index."""
    gen = base_generator()
    gen.put_task(running("t1", AGENT1, "10.0.3.1"))
    gen.put_task(running("t2", AGENT1, "10.0.3.2"))
    built = IncrementalGenerator.from_state(gen.state(), gen.params)
    same_counts(built, gen)
    assert built.a["web.marathon.slave.mesos."] == {"10.0.1.1": 2}
    built.remove_task("fw-1", "t1")
    assert built.record_set().a["web.marathon.slave.mesos."] == ("10.0.1.1",)
    built.remove_task("fw-1", "t2")
    rs = built.record_set()
    assert "web.marathon.slave.mesos." not in rs.a
    assert not any("web" in name for name in rs.srv)
    assert not any("web" in host for host in built._srv_targets)


def test_live_record_set_and_lazy_enumeration_follow_changes() -> None:
    gen = base_generator()
    rs = gen.record_set()
    assert rs.a.get("web.marathon.mesos.") is None
    gen.put_task(running("t1", AGENT1, "10.0.3.1"))
    assert rs.a.get("web.marathon.mesos.") == ("10.0.3.1",)
    assert "web.marathon.mesos." in rs.a
    snap = gen.record_set()
    assert [t.id for f in snap.frameworks for t in f.tasks] == ["t1"]
    assert len(snap.frameworks) == 1 and snap.frameworks[0].name == "marathon"
    frozen = gen.snapshot()
    gen.remove_task("fw-1", "t1")
    assert frozen.a["web.marathon.mesos."] == ("10.0.3.1",)
    assert rs.a.get("web.marathon.mesos.") is None


def test_forwarded_zones_inside_the_domain_stay_out_of_the_live_table() -> None:
    settings = DNSSettings(
        domain="mesos",
        aliases=("mesos.c1.dcos.directory",),
        zone_resolvers=MappingProxyType({"chronos.mesos": ("10.9.9.9",)}),
    )
    gen = base_generator()
    live = LiveAnswers(gen.record_set(), settings, 1, random.Random(0))
    gen.put_framework(Framework(id="fw-2", name="chronos", hostname="10.0.0.20"))
    gen.put_task(running("t1", AGENT1, "10.0.3.1", fw="fw-2"))
    gen.put_task(running("t2", AGENT1, "10.0.3.2"))
    live.update(gen.take_changes())
    check_table(live, gen, settings)
    assert not any(b"\x07chronos\x05mesos\x00" in key for key in live.table.entries)


def test_large_srv_names_are_recompiled_together() -> None:
    gen = base_generator()
    for i in range(3):
        gen.put_task(running(f"t{i}", AGENT1, f"10.0.3.{i + 1}"))
    live = LiveAnswers(gen.record_set(), SETTINGS, 1, random.Random(0), defer_targets=2)
    key = (
        b"\x00\x01\x00\x00\x00\x00\x00\x00\x04_web\x04_tcp\x08marathon\x05mesos\x00\x00\x21\x00\x01"
    )
    before = live.table.entries[key]
    assert before.n == 3
    gen.put_task(running("t3", AGENT1, "10.0.3.4"))
    live.update(gen.take_changes())
    # the A records follow at once; the large SRV name keeps its entry...
    a_key = b"\x00\x01\x00\x00\x00\x00\x00\x00\x03web\x08marathon\x05mesos\x00\x00\x01\x00\x01"
    assert live.table.entries[a_key].n == 4
    assert live.table.entries[key] is before
    assert live.pending == {
        "_web._tcp.marathon.mesos.",
        "_web._udp.marathon.mesos.",
        "_web._tcp.marathon.slave.mesos.",
        "_web._udp.marathon.slave.mesos.",
    }
    # ... until the deferred names are compiled
    assert live.compile_pending() == 8  # 4 names, 2 zones
    assert live.table.entries[key].n == 4
    assert not live.pending
    check_table(live, gen)


def test_srv_names_keep_their_order_as_an_app_scales() -> None:
    """An app's SRV names (over PRIOR_ORDER_MIN targets) keep their random
    order across changes, new records going in at random places: the table
    still equals a fresh compile, each ordering is led by another record,
    and over many scalings every record leads."""
    gen = base_generator()
    live = LiveAnswers(gen.record_set(), SETTINGS, 1, random.Random(7))
    rng = random.Random(3)
    up: list[str] = []
    leaders: set[bytes] = set()
    key = HOT_PREFIX + wire.text_to_wire("_web._tcp.marathon.mesos.") + b"\x00\x21\x00\x01"
    udp = HOT_PREFIX + wire.text_to_wire("_web._udp.marathon.mesos.") + b"\x00\x21\x00\x01"
    for step in range(120):
        if len(up) < 4 or (rng.random() < 0.6 and len(up) < 30):
            tid = f"t{step}"
            gen.put_task(running(tid, AGENT1, f"10.0.4.{step + 1}"))
            up.append(tid)
        else:
            gen.remove_task("fw-1", up.pop(rng.randrange(len(up))))
        # _tcp and _udp have the same targets: compiled once, from the order
        # one of them had
        priors = [live.table.entries[k].rrs for k in (key, udp) if k in live.table.entries]
        live.update(gen.take_changes(), defer=False)
        live.set_serial(step + 2)
        check_table(live, gen)
        e = live.table.entries[key]
        if priors and len(e.rrs) >= 8:  # the records that remain keep their order
            kept = [rr for rr in e.rrs if rr in priors[0]]
            assert any(kept == [rr for rr in p if rr in e.rrs] for p in priors)
        firsts = [e.ordering(v)[0] for v in range(len(e.starts))]
        assert len(set(firsts)) == len(firsts) == min(len(up), 8)
        leaders.update(firsts)
    assert len(leaders) > 40


def test_a_deferred_srv_name_gets_the_new_address_of_a_target_that_changed_meanwhile() -> None:
    """A large SRV name's recompiling is deferred; its target's A record
    changes in that update. The deferred compile must not reuse the target's
    additional records from the entry it replaces."""
    from mesosdns.records.model import SRVTarget

    srv_name = "_web._tcp.marathon.mesos."
    hosts = [f"web-{i}.marathon.mesos." for i in range(3)]
    a = {h: (f"10.0.3.{i + 1}",) for i, h in enumerate(hosts)}
    srv = {srv_name: tuple(SRVTarget(h, 80 + i) for i, h in enumerate(hosts))}
    rs = RecordSet("mesos", a=a, srv=srv)
    live = LiveAnswers(rs, SETTINGS, 1, random.Random(0), defer_targets=2)
    a[hosts[1]] = ("10.0.9.9",)
    srv[srv_name] = (*srv[srv_name][:2], SRVTarget(hosts[2], 8080))
    live.update([hosts[1], srv_name])
    assert live.pending == {srv_name}
    live.compile_pending()
    fresh = compile_answers(RecordSet("mesos", a=dict(a), srv=dict(srv)), SETTINGS, live.serial)
    key = HOT_PREFIX + wire.plain_key_wire(srv_name) + struct.pack(">HH", 33, 1)
    assert key in fresh.entries
    assert entry_form(live.table.entries[key]) == entry_form(fresh.entries[key])
    assert set(live.table.entries) == set(fresh.entries)
    for k, e in fresh.entries.items():
        assert entry_form(live.table.entries[k]) == entry_form(e), k
    check_glue(live.table, rs)  # web-1's additional record is 10.0.9.9


def test_a_recompiled_srv_name_reuses_what_its_old_entry_had() -> None:
    """An SRV name that gains a target takes the other targets' glue from
    the entry it replaces (not built again); a target whose host changed
    address gets new glue."""
    from mesosdns.records.model import SRVTarget

    srv_name = "_web._tcp.marathon.mesos."
    hosts = [f"web-{i}.marathon.mesos." for i in range(4)]
    a = {h: (f"10.0.3.{i + 1}",) for i, h in enumerate(hosts)}
    srv = {srv_name: tuple(SRVTarget(h, 80 + i) for i, h in enumerate(hosts[:3]))}
    live = LiveAnswers(RecordSet("mesos", a=a, srv=srv), SETTINGS, 1, random.Random(0))
    key = HOT_PREFIX + wire.plain_key_wire(srv_name) + struct.pack(">HH", 33, 1)
    old = live.table.entries[key]
    assert old.glue is not None
    srv[srv_name] = (*srv[srv_name], SRVTarget(hosts[3], 83))
    live.update([srv_name, hosts[3]])
    new = live.table.entries[key]
    assert new.glue is not None and len(new.rrs) == 4
    before = dict(zip(old.rrs, old.glue, strict=True))
    kept = [(rr, g) for rr, g in zip(new.rrs, new.glue, strict=True) if rr in before]
    assert len(kept) == 3 and all(g is before[rr] for rr, g in kept)
    a[hosts[1]] = ("10.0.9.9",)
    live.update([hosts[1], srv_name])
    check_glue(live.table, RecordSet("mesos", a=a, srv=srv))


def test_with_rrl_each_hot_key_keeps_a_slot_of_its_own() -> None:
    """The rate limiter's counters are indexed by the hot view's slots: each
    key holds a distinct one, a recompiled key keeps it (asked again after its
    change), and a removed key's slot goes to another key only after the view
    is recycled."""
    settings = replace(SETTINGS, rrl=RRLSettings(responses_per_second=10))
    gen = base_generator()
    for i in range(3):
        gen.put_task(running(f"t{i}", AGENT1, f"10.0.3.{i + 1}"))
    live = LiveAnswers(gen.record_set(), settings, 1, random.Random(0))
    hot = live.table.hot
    assert hot.slotted

    def slots() -> dict[bytes, int]:
        # every name asked once: the hot view fills what it misses
        for k, e in live.table.entries.items():
            if k not in hot:
                hot.fill(k, e)
        got = {k: v[1] for k, v in hot.items()}
        assert len(set(got.values())) == len(got)  # distinct
        assert max(got.values()) < hot.capacity
        return got

    before = slots()
    web = b"\x00\x01\x00\x00\x00\x00\x00\x00\x03web\x08marathon\x05mesos\x00\x00\x01\x00\x01"
    gen.put_task(running("t3", AGENT1, "10.0.3.4"))  # web's names are recompiled
    live.update(gen.take_changes(), defer=False)
    after = slots()
    assert after[web] == before[web] and live.table.entries[web].n == 4
    assert all(after[k] == s for k, s in before.items() if k in after)
    gone = set(before) - set(after)
    new = set(after) - set(before)
    assert new and not {after[k] for k in new} & set(before.values())
    gen.remove_task("fw-1", "t3")
    live.update(gen.take_changes(), defer=False)
    freed = {after[k] for k in set(after) - set(slots())}
    assert freed and not gone
    hot.recycle()
    gen.put_task(running("t4", AGENT1, "10.0.3.5"))
    live.update(gen.take_changes(), defer=False)
    assert freed & set(slots().values())  # reused once recycled
