"""The incremental record generator: the record set kept current event by event.

`IncrementalGenerator` holds the pieces of the Mesos state (frameworks, agents
and tasks by id, the leader) and the record set they produce, and applies one
change at a time: a task added or updated, an agent or framework added,
updated or removed, a new leader, a host name resolved. Each change recomputes
only what depends on it, with the batch generator's own code
(`mesosdns.records.generator._Generation`), so that after any sequence of
changes the record set equals, name by name and value by value, what
``generate()`` produces for the equivalent `State` (`IncrementalGenerator.state`).

How the original's set semantics are kept: every *contributor* (a framework,
an agent, a task, the listener, the masters) has its records computed alone
(a fresh builder: values unique within the contributor) and kept; the record
set holds, per (name, value), the number of contributors that produce it. A
value exists while its count is positive, so the set per name is the union of
the contributions, as in the batch generator, whatever the order of events.
What depends on what:

- a task's records depend on the task, its framework's (labelled) name and its
  agent's addresses: an agent change recomputes every task on the agent, a
  framework rename every task of the framework;
- the masters' records depend on the leader and the masters list, and on the
  values the frameworks and the listener already gave ``master.<domain>`` (the
  original skips a master whose address is listed there): a framework change
  that touches that name recomputes them;
- host names resolved outside (``GeneratorParams.resolved``) feed the agents
  and frameworks on that host;
- with ``omit_unhealthy``, an unhealthy task's records under the names it
  shares with other tasks (all but its canonical names) count only while no
  healthy or unchecked task gives that name (see `_set_task`).

Changed names are collected for the DNS compiler (`take_changes`), with the
SRV names whose targets' addresses changed (their additional records).

Values of a name keep the order their contributors added them in, which after
updates is not always the batch generator's order; the DNS answers shuffle
them anyway. ``/v1/enumerate`` is rebuilt exactly, in the equivalent state's
order, when asked (`enumeration`).

Pure and single-threaded: call it from one thread at a time (the event loop,
or a thread holding the lock every change is made under); a `snapshot` may
be read anywhere.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import replace
from itertools import chain
from types import MappingProxyType

import msgspec

from mesosdns.gcpause import gc_paused
from mesosdns.records import counted
from mesosdns.records.counted import Counted, count_down, count_up
from mesosdns.records.generator import (
    GeneratorParams,
    _Builder,
    _Generation,
    _srv_target,
    is_unhealthy,
)
from mesosdns.records.labels import domain_frag
from mesosdns.records.model import (
    EnumFramework,
    EnumRecord,
    RecordSet,
    RType,
    SRVTarget,
)
from mesosdns.records.views import CountedView, LazyEnumeration, enumeration
from mesosdns.state.model import Agent, Framework, State, Status, Task, parse_pid

RUNNING = "TASK_RUNNING"
# States after which a task never runs again: the task is dropped. (TASK_LOST
# and TASK_UNREACHABLE are kept: such a task can come back.)
FINAL_STATES = frozenset(
    {
        "TASK_FINISHED",
        "TASK_FAILED",
        "TASK_KILLED",
        "TASK_ERROR",
        "TASK_DROPPED",
        "TASK_GONE",
        "TASK_GONE_BY_OPERATOR",
    }
)

# contributor keys: ("t", framework id, task id), ("f", framework id, ""),
# ("a", agent id, ""), ("l", "", "") the listener, ("m", "", "") the masters
Key = tuple[str, str, str]
_LISTENER: Key = ("l", "", "")
_MASTERS: Key = ("m", "", "")
_new = tuple.__new__
_EMPTY: tuple[EnumRecord, ...] = ()

# the role of a task's record with omit_unhealthy (`_set_task`): given by a
# healthy or unchecked task (it keeps the name from failing open), under an
# unhealthy task's own canonical name, or under a name an unhealthy task shares
# (counted only while no healthy or unchecked task gives the name)
_SUPPORT, _OWN, _GATED = 0, 1, 2
Role = tuple[EnumRecord, int]


class IncrementalGenerator:
    """The record set of a changing Mesos state (see the module docstring)."""

    def __init__(self, params: GeneratorParams, leader: str = "") -> None:
        self.params = params
        self.leader = leader
        self.skipped = 0
        self.frameworks: dict[str, Framework] = {}  # stored without their tasks
        self.tasks: dict[str, dict[str, Task]] = {}  # framework id -> task id -> task
        self.agents: dict[str, Agent] = {}
        self.agent_ips: dict[str, tuple[str, ...]] = {}
        # name -> value -> number of contributors giving it (`counted`: a
        # name with one value counted once holds that value itself)
        self.a: Counted[str] = {}
        self.aaaa: Counted[str] = {}
        # SRV values as SRVTarget (converted once, when a value first appears)
        self.srv: Counted[SRVTarget] = {}
        self._maps: dict[str, Counted[str]] = {"A": self.a, "AAAA": self.aaaa}
        self._contrib: dict[Key, tuple[EnumRecord, ...]] = {}
        self._fnames: dict[str, str] = {}  # framework id -> labelled name
        self._agent_tasks: dict[str, dict[tuple[str, str], None]] = {}
        self._srv_targets: Counted[str] = {}  # target -> SRV names
        self._changed: set[str] = set()
        self._changed_addr: set[str] = set()
        # the last `snapshot`'s maps, and the names changed since (taken from
        # `take_changes`; the changes not taken yet are in `_changed`)
        self._snap: tuple[dict[str, tuple[str, ...]], dict[str, tuple[str, ...]],
                          dict[str, tuple[SRVTarget, ...]]] | None = None
        self._snap_dirty: set[str] = set()
        # omit_unhealthy: the unhealthy tasks' own names; per name, how many
        # records healthy or unchecked tasks give there, and the unhealthy
        # tasks' records there by task; per unhealthy task, how many of the
        # names it shares are withheld (given by a healthy task too)
        self._gates: dict[Key, frozenset[str]] = {}
        self._support: dict[str, int] = {}
        self._gated: dict[str, dict[Key, list[EnumRecord]]] = {}
        self._withheld: dict[Key, int] = {}
        self._gen = _Generation(State(leader=leader), params)
        self._master_name = "master" + self._gen.tail
        self._set(_LISTENER, self._listener_records())
        self._update_masters()

    @classmethod
    def from_state(
        cls, state: State, params: GeneratorParams, orphans: Iterable[Task] = ()
    ) -> IncrementalGenerator:
        """The generator holding ``state`` (``orphans``: tasks of frameworks
        not in it, kept until their framework appears)."""
        with gc_paused():
            gen = cls(params, state.leader)
            gen.skipped = state.skipped
            for fw in state.frameworks:
                gen._store_framework(fw)
                gen._set(("f", fw.id, ""), gen._framework_records(fw))
            for agent in state.agents:
                gen._store_agent(agent)
            # the tasks' records are counted together at the end, in C (as
            # replaying them one by one would), but for omit_unhealthy's roles
            store = gen._store_task if params.omit_unhealthy else gen._store_uncounted
            for fw in state.frameworks:
                for task in fw.tasks:
                    store(task, fw.id)
            for task in orphans:
                store(task, task.framework_id)
            if not params.omit_unhealthy:
                contrib = gen._contrib
                gen._count_many(chain.from_iterable(
                    recs for key, recs in contrib.items() if key[0] == "t"))
            gen._update_masters()
            gen._changed.clear()
            gen._changed_addr.clear()
        return gen

    # -- changes -------------------------------------------------------

    def put_task(self, task: Task, framework_id: str | None = None) -> None:
        """A task added (TASK_ADDED) or replaced; it belongs to
        ``framework_id`` when given (a polled state lists tasks under their
        framework), else to its own ``framework_id``."""
        self._store_task(task, task.framework_id if framework_id is None else framework_id)

    def update_task(self, framework_id: str, task_id: str, status: Status, state: str) -> bool:
        """A task's new status (TASK_UPDATED); False when the task is unknown.

        As the master does: ``state`` becomes the task's state and the status
        is appended to its statuses, replacing the last one when that has the
        same state. A task in a final state is dropped.
        """
        task = self.tasks.get(framework_id, {}).get(task_id)
        if task is None:
            return False
        state = state or status.state
        if state in FINAL_STATES:
            self.remove_task(framework_id, task_id)
            return True
        statuses = task.statuses
        if statuses and statuses[-1].state == status.state:
            statuses = statuses[:-1]
        self._store_task(
            msgspec.structs.replace(task, state=state, statuses=(*statuses, status)),
            framework_id,
        )
        return True

    def remove_task(self, framework_id: str, task_id: str) -> None:
        tasks = self.tasks.get(framework_id)
        task = tasks.pop(task_id, None) if tasks is not None else None
        if task is None:
            return
        self._unindex(task, framework_id)
        self._set_task(("t", framework_id, task_id), _EMPTY, None)
        if not tasks and framework_id not in self.frameworks:
            del self.tasks[framework_id]

    def put_framework(self, fw: Framework) -> None:
        """A framework added or updated (FRAMEWORK_ADDED / _UPDATED); its
        ``tasks`` are ignored (tasks come as tasks)."""
        fid = fw.id
        known = fid in self.frameworks
        old_fname = self._fnames.get(fid)
        self._store_framework(fw)
        touched = self._set(("f", fid, ""), self._framework_records(fw))
        if not known or old_fname != self._fnames[fid]:
            for tid, task in self.tasks.get(fid, {}).items():
                self._set_task(("t", fid, tid), *self._task_records(fid, task))
        if touched:
            self._update_masters()

    def remove_framework(self, framework_id: str) -> None:
        """A framework removed (FRAMEWORK_REMOVED), with its tasks."""
        self.frameworks.pop(framework_id, None)
        self._fnames.pop(framework_id, None)
        touched = self._set(("f", framework_id, ""), _EMPTY)
        for tid, task in self.tasks.pop(framework_id, {}).items():
            self._unindex(task, framework_id)
            self._set_task(("t", framework_id, tid), _EMPTY, None)
        if touched:
            self._update_masters()

    def put_agent(self, agent: Agent) -> bool:
        """An agent added or re-registered (AGENT_ADDED); False (and nothing
        changes) when its pid is not valid."""
        if parse_pid(agent.pid) is None:
            return False
        old_ips = self.agent_ips.get(agent.id)
        self._store_agent(agent)
        if self.agent_ips[agent.id] != old_ips:
            self._retask_agent(agent.id)
        return True

    def remove_agent(self, agent_id: str) -> None:
        """An agent removed (AGENT_REMOVED): its tasks lose their records
        (they are kept: Mesos reports their fate with TASK_UPDATED)."""
        self.agents.pop(agent_id, None)
        if self.agent_ips.pop(agent_id, None) is None:
            return
        self._set(("a", agent_id, ""), _EMPTY)
        self._retask_agent(agent_id)

    def set_leader(self, leader: str) -> None:
        if leader != self.leader:
            self.leader = leader
            self._update_masters()

    def set_masters(self, masters: Sequence[str]) -> None:
        """The masters list (``GeneratorParams.masters``) changed."""
        masters = tuple(masters)
        if masters != self.params.masters:
            self._set_params(replace(self.params, masters=masters))
            self._update_masters()

    def set_resolved(self, host: str, ips: Sequence[str]) -> None:
        """``host`` (an agent's or framework's) resolves to ``ips`` now."""
        ips = tuple(ips)
        if self.params.resolved.get(host, ()) == ips:
            return
        resolved = dict(self.params.resolved)
        if ips:
            resolved[host] = ips
        else:
            resolved.pop(host, None)
        self._set_params(replace(self.params, resolved=MappingProxyType(resolved)))
        for agent in [a for a in self.agents.values() if a.upid().host == host]:
            self.put_agent(agent)
        touched = False
        for fw in [f for f in self.frameworks.values() if f.host_port()[0] == host]:
            touched |= self._set(("f", fw.id, ""), self._framework_records(fw))
        if touched:
            self._update_masters()

    def take_changes(self) -> set[str]:
        """Names whose records changed since the last call, and the SRV names
        whose targets' addresses changed."""
        changed, self._changed = self._changed, set()
        addr, self._changed_addr = self._changed_addr, set()
        if self._snap is not None:
            self._snap_dirty |= changed
        targets = self._srv_targets
        for name in addr:
            deps = targets.get(name)
            if deps is not None:
                changed.update(counted.values(deps))
        return changed

    # -- views ---------------------------------------------------------

    def record_set(self) -> RecordSet:
        """The current records as a RecordSet whose maps are live views
        (they follow later changes; the enumeration is built on first use)."""
        return RecordSet(
            domain=self.params.domain,
            a=CountedView(self.a),
            aaaa=CountedView(self.aaaa),
            srv=CountedView(self.srv),
            frameworks=LazyEnumeration(self.enumeration),
            skipped=self.skipped,
        )

    def snapshot(self) -> RecordSet:
        """A copy of the current records that later changes leave alone, made
        in time proportional to the names changed since the last snapshot
        rather than to all of them: the last one's maps are copied whole (a
        C-speed copy of references) and only the changed names are read
        again. Its enumeration is worked out on first use, from copies of
        what it depends on, so that the snapshot may be read in another
        thread while this generator goes on changing."""
        snap = self._snap
        if snap is None:
            vals = counted.values
            a = {k: vals(v) for k, v in self.a.items()}
            aaaa = {k: vals(v) for k, v in self.aaaa.items()}
            srv = {k: vals(t) for k, t in self.srv.items()}
        else:  # copies: a map handed out never changes
            a, aaaa, srv = dict(snap[0]), dict(snap[1]), dict(snap[2])
            for name in self._snap_dirty | self._changed:
                for values, out in ((self.a, a), (self.aaaa, aaaa)):
                    got = values.get(name)
                    if got is None:
                        out.pop(name, None)
                    else:
                        out[name] = counted.values(got)
                targets = self.srv.get(name)
                if targets is None:
                    srv.pop(name, None)
                else:
                    srv[name] = counted.values(targets)
        self._snap, self._snap_dirty = (a, aaaa, srv), set()
        sources = (
            dict(self._contrib), dict(self.frameworks),
            {fid: dict(tasks) for fid, tasks in self.tasks.items()},
            dict.fromkeys(self.agent_ips), dict(self._gates), dict.fromkeys(self._support),
        )
        return RecordSet(
            domain=self.params.domain,
            a=MappingProxyType(a),
            aaaa=MappingProxyType(aaaa),
            srv=MappingProxyType(srv),
            frameworks=LazyEnumeration(lambda: enumeration(*sources)),
            skipped=self.skipped,
        )

    def orphans(self) -> tuple[Task, ...]:
        """Tasks kept for frameworks not (or no longer) known."""
        return tuple(
            task
            for fid, tasks in self.tasks.items()
            if fid not in self.frameworks
            for task in tasks.values()
        )

    def state(self) -> State:
        """The equivalent state: ``generate(gen.state(), gen.params)`` has the
        same records (and the same enumeration)."""
        empty: dict[str, Task] = {}
        return State(
            leader=self.leader,
            frameworks=tuple(
                msgspec.structs.replace(fw, tasks=tuple(self.tasks.get(fid, empty).values()))
                for fid, fw in self.frameworks.items()
            ),
            agents=tuple(self.agents.values()),
            skipped=self.skipped,
        )

    def enumeration(self) -> tuple[EnumFramework, ...]:
        """``RecordSet.frameworks`` as the batch generator builds it: per
        framework and task in state order, each task listing the records it
        was the first to add."""
        return enumeration(self._contrib, self.frameworks, self.tasks, self.agent_ips,
                            self._gates, self._support)

    @property
    def omitted(self) -> int:
        """omit_unhealthy: how many tasks are left out of some shared name."""
        return len(self._withheld)

    def counts(self) -> dict[str, int]:
        """Number of records (name, value pairs) per type."""
        out = {kind: counted.total(m) for kind, m in self._maps.items()}
        out["SRV"] = counted.total(self.srv)
        return out

    # -- internals -----------------------------------------------------

    def _set_params(self, params: GeneratorParams) -> None:
        self.params = params
        self._gen.params = params

    def _store_framework(self, fw: Framework) -> None:
        if fw.tasks:
            fw = msgspec.structs.replace(fw, tasks=())
        self.frameworks[fw.id] = fw
        self._fnames[fw.id] = domain_frag(fw.name, self._gen.spec)
        self.tasks.setdefault(fw.id, {})

    def _store_agent(self, agent: Agent) -> None:
        if parse_pid(agent.pid) is None:
            self.skipped += 1
            return
        gen = self._gen
        gen.b = _Builder()
        gen.agent_ips = {}
        gen.agent_record(agent)
        self.agents[agent.id] = agent
        self.agent_ips[agent.id] = gen.agent_ips[agent.id]
        self._set(("a", agent.id, ""), _records(gen.b))

    def _store_task(self, task: Task, fid: str) -> None:
        self._keep_task(task, fid)
        self._set_task(("t", fid, task.id), *self._task_records(fid, task))

    def _store_uncounted(self, task: Task, fid: str) -> None:
        """`_store_task` for a first build: the records are kept, and
        counted later (`_count_many`)."""
        self._keep_task(task, fid)
        records = self._task_records(fid, task)[0]
        key = ("t", fid, task.id)
        if records:
            self._contrib[key] = records
        else:
            self._contrib.pop(key, None)

    def _count_many(self, records: Iterable[EnumRecord]) -> None:
        """`_inc` of each of ``records``, the equal ones at once. (The names
        are not noted as changed: for a first build only.)"""
        maps, srv, targets = self._maps, self.srv, self._srv_targets
        up = count_up
        for rec, n in Counter(records).items():
            name, value, kind = rec
            if kind != "SRV":
                up(maps[kind], name, value, n)
            else:
                target = _target(value)
                if up(srv, name, target, n):
                    up(targets, target.host, name)

    def _keep_task(self, task: Task, fid: str) -> None:
        """The task stored under its framework and indexed by its agent."""
        tasks = self.tasks.setdefault(fid, {})
        old = tasks.get(task.id)
        if old is not None and old.agent_id != task.agent_id:
            self._unindex(old, fid)
        tasks[task.id] = task
        self._agent_tasks.setdefault(task.agent_id, {})[(fid, task.id)] = None

    def _unindex(self, task: Task, fid: str) -> None:
        on_agent = self._agent_tasks.get(task.agent_id)
        if on_agent is not None:
            on_agent.pop((fid, task.id), None)
            if not on_agent:
                del self._agent_tasks[task.agent_id]

    def _retask_agent(self, agent_id: str) -> None:
        for fid, tid in list(self._agent_tasks.get(agent_id, ())):
            task = self.tasks[fid][tid]
            self._set_task(("t", fid, tid), *self._task_records(fid, task))

    def _task_records(
        self, fid: str, task: Task
    ) -> tuple[tuple[EnumRecord, ...], frozenset[str] | None]:
        """A task's records, and its own names when its shared ones are to be
        withheld (unhealthy, with omit_unhealthy), else None."""
        if task.state != RUNNING:
            return _EMPTY, None
        agent_ips = self.agent_ips.get(task.agent_id)
        fname = self._fnames.get(fid)
        if agent_ips is None or fname is None:
            return _EMPTY, None
        gen = self._gen
        gen.b = _Builder()
        records = gen.task_record(task, fname, agent_ips).records
        if self.params.omit_unhealthy and is_unhealthy(task):
            return records, gen.own_names(task, fname)
        return records, None

    def _framework_records(self, fw: Framework) -> tuple[EnumRecord, ...]:
        gen = self._gen
        gen.b = _Builder()
        gen.framework_record(fw)
        return _records(gen.b)

    def _listener_records(self) -> tuple[EnumRecord, ...]:
        gen = self._gen
        gen.b = _Builder()
        gen.listener_records()
        return _records(gen.b)

    def _update_masters(self) -> None:
        """Recompute the masters' records, ``master.<domain>`` seeded with the
        values the frameworks and the listener give it (as the batch
        generator has them when it reaches the masters)."""
        gen = self._gen
        gen.state = State(leader=self.leader)
        gen.b = _Builder()
        name = self._master_name
        own = set(self._contrib.get(_MASTERS, _EMPTY))
        seeded: set[EnumRecord] = set()
        for kind in ("A", "AAAA"):
            values = self._maps[kind].get(name)
            if values is None:
                continue
            for value, count in counted.items(values):
                rec = _new(EnumRecord, (name, value, kind))
                if count - (rec in own) > 0:
                    gen.b.rrs[kind].setdefault(name, {})[value] = None
                    seeded.add(rec)
        gen.master_records()
        self._set(_MASTERS, tuple(r for r in _records(gen.b) if r not in seeded))

    def _set(self, key: Key, new: tuple[EnumRecord, ...]) -> bool:
        """Replace a contributor's records; whether ``master.<domain>`` was
        among the old or new ones."""
        contrib = self._contrib
        old = contrib.get(key, _EMPTY)
        if old == new:
            return False
        if new:
            contrib[key] = new
        else:
            del contrib[key]
        if old and new:
            old_set, new_set = set(old), set(new)
            removed: Iterable[EnumRecord] = [r for r in old if r not in new_set]
            added: Iterable[EnumRecord] = [r for r in new if r not in old_set]
        else:
            removed, added = old, new
        for rec in removed:
            self._dec(rec)
        for rec in added:
            self._inc(rec)
        if key[0] != "f":  # only frameworks give master.<domain> before the masters
            return False
        name = self._master_name
        return any(r[0] == name for r in old) or any(r[0] == name for r in new)

    def _set_task(
        self, key: Key, new: tuple[EnumRecord, ...], gate: frozenset[str] | None
    ) -> None:
        """Replace a task's records (``gate``: see `_task_records`).

        With omit_unhealthy each record has a role (`_SUPPORT`, `_OWN`,
        `_GATED`) and the counts hold, per name, the values of the healthy
        and unchecked tasks and of the unhealthy tasks' own names, plus the
        unhealthy tasks' gated values where no healthy or unchecked task
        gives the name (fail open). A task whose health flips changes roles
        only: the cost is its own records, and the gated records of the
        names whose support starts or ends (that app's other unhealthy tasks).
        """
        if not self.params.omit_unhealthy:
            self._set(key, new)
            return
        if not new:
            gate = None
        contrib, gates = self._contrib, self._gates
        old = contrib.get(key, _EMPTY)
        old_gate = gates.get(key)
        if old == new and old_gate == gate:
            return
        if new:
            contrib[key] = new
        else:
            contrib.pop(key, None)
        if gate is not None:
            gates[key] = gate
        else:
            gates.pop(key, None)
        old_roles, new_roles = _roles(old, old_gate), _roles(new, gate)
        if old_roles and new_roles:
            old_set, new_set = set(old_roles), set(new_roles)
            removed: Iterable[Role] = [r for r in old_roles if r not in new_set]
            added: Iterable[Role] = [r for r in new_roles if r not in old_set]
        else:
            removed, added = old_roles, new_roles
        # additions first: a value that only changes role is counted twice
        # for a moment rather than going and coming back (which would report
        # its name changed and move the serial for nothing)
        for rec, role in added:
            self._add_role(key, rec, role)
        for rec, role in removed:
            self._remove_role(key, rec, role)

    def _add_role(self, key: Key, rec: EnumRecord, role: int) -> None:
        name = rec[0]
        if role == _OWN:
            self._inc(rec)
        elif role == _SUPPORT:
            self._inc(rec)
            n = self._support.get(name, 0)
            self._support[name] = n + 1
            if not n:  # the name's unhealthy tasks are left out from now on
                for k, recs in self._gated.get(name, {}).items():
                    for r in recs:
                        self._dec(r)
                    self._withheld[k] = self._withheld.get(k, 0) + 1
        else:
            by_task = self._gated.setdefault(name, {})
            mine = by_task.get(key)
            if mine is None:
                by_task[key] = [rec]
            else:
                mine.append(rec)
            if name not in self._support:
                self._inc(rec)
            elif mine is None:  # one more name this task is withheld from
                self._withheld[key] = self._withheld.get(key, 0) + 1

    def _remove_role(self, key: Key, rec: EnumRecord, role: int) -> None:
        name = rec[0]
        if role == _OWN:
            self._dec(rec)
        elif role == _SUPPORT:
            n = self._support[name]
            if n > 1:
                self._support[name] = n - 1
            else:  # no healthy task left there: the unhealthy ones are back
                del self._support[name]
                for k, recs in self._gated.get(name, {}).items():
                    for r in recs:
                        self._inc(r)
                    self._unwithhold(k)
            self._dec(rec)
        else:
            by_task = self._gated[name]
            recs = by_task[key]
            recs.remove(rec)
            if not recs:
                del by_task[key]
                if not by_task:
                    del self._gated[name]
            if name not in self._support:
                self._dec(rec)
            elif not recs:
                self._unwithhold(key)

    def _unwithhold(self, key: Key) -> None:
        n = self._withheld[key]
        if n > 1:
            self._withheld[key] = n - 1
        else:
            del self._withheld[key]

    def _inc(self, rec: EnumRecord) -> None:
        name, value, kind = rec
        if kind != "SRV":
            if count_up(self._maps[kind], name, value):
                self._changed.add(name)
                self._changed_addr.add(name)
            return
        target = _target(value)
        if count_up(self.srv, name, target):
            self._changed.add(name)
            count_up(self._srv_targets, target.host, name)

    def _dec(self, rec: EnumRecord) -> None:
        name, value, kind = rec
        if kind != "SRV":
            if count_down(self._maps[kind], name, value):
                self._changed.add(name)
                self._changed_addr.add(name)
            return
        target = _target(value)
        if count_down(self.srv, name, target):
            self._changed.add(name)
            count_down(self._srv_targets, target.host, name)


def _roles(records: tuple[EnumRecord, ...], gate: frozenset[str] | None) -> list[Role]:
    """A task's records with their roles (see `_set_task`)."""
    if gate is None:
        return [(rec, _SUPPORT) for rec in records]
    return [(rec, _OWN if rec[0] in gate else _GATED) for rec in records]


def _records(b: _Builder) -> tuple[EnumRecord, ...]:
    """A builder's contents as records (its only contributor's)."""
    out: list[EnumRecord] = []
    kind: RType
    for kind, names in b.rrs.items():
        for name, values in names.items():
            out.extend(_new(EnumRecord, (name, value, kind)) for value in values)
    return tuple(out)


_TARGETS: dict[str, SRVTarget] = {}


def _target(text: str) -> SRVTarget:
    """The SRVTarget of an SRV value's ``host:port`` text (memoised)."""
    got = _TARGETS.get(text)
    if got is None:
        if len(_TARGETS) > 1_000_000:
            _TARGETS.clear()
        got = _TARGETS[text] = _srv_target(text)
    return got


__all__ = [
    "FINAL_STATES",
    "IncrementalGenerator",
]
