"""A polled state applied to the incremental generator as a diff.

A poll gets the whole state; the generator holds the previous one. Applying
only what differs (tasks, agents, frameworks, the leader, the masters list and
the resolved host names) makes a poll cost what a stream of the same changes
would: the records of the names that changed are regenerated, nothing else.
`apply_state` leaves the generator holding the records a full build of
``state`` would give (tests compare the two).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

import msgspec

from mesosdns.records.generator import GeneratorParams
from mesosdns.records.incremental import IncrementalGenerator
from mesosdns.state.model import Framework, State, Task


def compatible(gen: IncrementalGenerator, params: GeneratorParams) -> bool:
    """Whether ``params`` differ from the generator's only in what a diff can
    apply (the masters list and the resolved host names)."""
    have = gen.params
    return replace(params, masters=have.masters, resolved=have.resolved) == have


def apply_state(gen: IncrementalGenerator, state: State, params: GeneratorParams) -> int:
    """Make ``gen`` hold ``state`` (with ``params``' masters and resolved
    names); returns how many tasks, agents and frameworks changed."""
    changed = 0
    _apply_resolved(gen, params.resolved)
    gen.set_masters(params.masters)
    gen.set_leader(state.leader)
    gen.skipped = state.skipped

    agents = {a.id: a for a in state.agents}
    for aid in [aid for aid in gen.agents if aid not in agents]:
        gen.remove_agent(aid)
        changed += 1
    for aid, agent in agents.items():
        if gen.agents.get(aid) != agent:
            gen.put_agent(agent)
            changed += 1

    frameworks = {fw.id: fw for fw in state.frameworks}
    for fid in [fid for fid in gen.tasks if fid not in frameworks]:
        gen.remove_framework(fid)
        changed += 1
    for fid, fw in frameworks.items():
        if gen.frameworks.get(fid) != _bare(fw):
            gen.put_framework(fw)
            changed += 1
        changed += _apply_tasks(gen, fid, fw.tasks)
    _follow_order(gen, frameworks)
    return changed


def _follow_order(gen: IncrementalGenerator, frameworks: dict[str, Framework]) -> None:
    """Frameworks and tasks in the state's order, as a full build has them:
    the enumeration lists them so, and gives a record two tasks share to
    the first."""
    if list(gen.frameworks) != list(frameworks):
        gen.frameworks = {fid: gen.frameworks[fid] for fid in frameworks}
    for fid, fw in frameworks.items():
        known = gen.tasks.get(fid)
        if known is None:
            continue
        ids = list(dict.fromkeys(t.id for t in fw.tasks))
        if list(known) != ids:
            gen.tasks[fid] = {tid: known[tid] for tid in ids}


def _bare(fw: Framework) -> Framework:
    return msgspec.structs.replace(fw, tasks=()) if fw.tasks else fw


def _apply_tasks(gen: IncrementalGenerator, fid: str, tasks: tuple[Task, ...]) -> int:
    known = gen.tasks.get(fid, {})
    changed = 0
    seen: set[str] = set()
    for task in tasks:
        seen.add(task.id)
        if known.get(task.id) != task:
            gen.put_task(task, fid)
            changed += 1
    if len(seen) != len(known):
        for tid in [tid for tid in known if tid not in seen]:
            gen.remove_task(fid, tid)
            changed += 1
    return changed


def _apply_resolved(gen: IncrementalGenerator, resolved: Mapping[str, tuple[str, ...]]) -> None:
    have = gen.params.resolved
    for host in [h for h in have if h not in resolved]:
        gen.set_resolved(host, ())
    for host, ips in resolved.items():
        if have.get(host) != ips:
            gen.set_resolved(host, ips)
