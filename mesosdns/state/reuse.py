"""A polled state decoded again, the tasks that did not change not decoded.

Each poll gets the whole state, and between two polls almost every task is
byte for byte what it was. `StateDecoder` decodes the document with each
task left as its raw JSON text (`msgspec.Raw`: a slice of the document, not
a copy), and looks the text up among the last state's tasks: a task whose
text is the same is the very `Task` object of the last state; only the new
and changed ones are decoded. A reload of a 100k-task state then allocates
the few tasks that changed instead of a second copy of them all (about
160 MiB held on top of the last state until the diff is done), and the diff
compares the unchanged tasks with themselves.

With nothing to reuse (the first state), the document is decoded in the
one strict pass of `parse_state`, the faster way to decode every task, and
the tasks' texts are read from a second, shallow pass.

The tasks are kept as `held` makes them: only the statuses the records read
(`read_statuses`: a running task keeps its latest of two or three), and
the strings that most tasks repeat (their state, agent, framework and name)
shared. At 100k tasks that is about 60 MiB less, in the poller and in the
generator that holds the same tasks. The result equals `held_state` of
`parse_state` of the same document. Anything the one-pass
strict decode would refuse (a malformed task, a missing section, bad JSON)
is decoded by `parse_state` itself, which skips and counts the malformed
items or raises its `StateError`; the tasks remembered are then left as
they were.

A task's text is looked up by its keyed 64-bit hash (Python's SipHash, keyed
per process) and its length: two different texts of one length with the
same hash are a 2^-64 chance per pair, and no one outside the process can
aim for one.
"""

from __future__ import annotations

from typing import Any

import msgspec

from mesosdns.errors import StateError
from mesosdns.gcpause import gc_paused
from mesosdns.state.model import (
    Agent,
    Framework,
    State,
    Task,
    checked,
    parse_state,
    read_statuses,
    strict,
)


class _RawFramework(msgspec.Struct, frozen=True, gc=False):
    """`Framework` with its tasks left as their JSON text (same fields)."""

    id: str = ""
    name: str = ""
    pid: str | None = None
    hostname: str = ""
    tasks: tuple[msgspec.Raw, ...] = ()


class _RawDoc(msgspec.Struct, frozen=True, gc=False):
    leader: str = ""
    frameworks: tuple[_RawFramework, ...] | None = None
    slaves: tuple[Agent, ...] | None = None


_RAW_DECODER = msgspec.json.Decoder(_RawDoc)
_TASK_DECODER = msgspec.json.Decoder(Task)


def held(task: Task, shared: dict[Any, Any]) -> Task:
    """The task as it is kept: the statuses the records read, and its
    common values the objects of ``shared`` (value -> itself) where it has
    them already."""
    one = shared.setdefault
    res = task.resources
    return Task(
        id=task.id,
        name=one(task.name, task.name),
        state=one(task.state, task.state),
        agent_id=one(task.agent_id, task.agent_id),
        framework_id=one(task.framework_id, task.framework_id),
        statuses=read_statuses(task.statuses),
        resources=res if res is None else one(res, res),
        discovery=task.discovery,
    )


def held_state(state: State) -> State:
    """``state`` with every task `held`."""
    shared: dict[Any, Any] = {}
    return msgspec.structs.replace(state, frameworks=tuple(
        msgspec.structs.replace(fw, tasks=tuple([held(t, shared) for t in fw.tasks]))
        for fw in state.frameworks
    ))


class StateDecoder:
    """`parse_state`, reusing the last decoded state's unchanged tasks."""

    def __init__(self) -> None:
        # (hash, length) of a task's JSON text -> its Task, for the last state
        self._known: dict[tuple[int, int], Task] = {}

    def __len__(self) -> int:
        return len(self._known)

    def forget(self) -> None:
        self._known = {}

    def decode(self, data: bytes | memoryview | str | dict[str, Any]) -> State:
        if isinstance(data, (str, dict)):
            return held_state(parse_state(data))
        with gc_paused():
            state = self._reusing(data) if self._known else self._first(data)
            return held_state(parse_state(data)) if state is None else state

    def _first(self, data: bytes | memoryview) -> State | None:
        """Nothing to reuse: the one strict pass (faster than a task at a
        time), then the tasks' texts, which are in the same places."""
        try:
            state = strict(data)
            doc = _RAW_DECODER.decode(data) if state is not None else None
        except (msgspec.MsgspecError, StateError, UnicodeError, RecursionError, ValueError):
            return None
        if state is None or doc is None or doc.frameworks is None:
            return None
        state = held_state(state)
        seen: dict[tuple[int, int], Task] = {}
        for rf, fw in zip(doc.frameworks, state.frameworks, strict=True):
            for raw, task in zip(rf.tasks, fw.tasks, strict=True):
                text = bytes(raw)
                seen[(hash(text), len(text))] = task
        self._known = seen
        return state

    def _reusing(self, data: bytes | memoryview) -> State | None:
        """The state, or None where `parse_state` must decide (see the module)."""
        try:
            doc = _RAW_DECODER.decode(data)
        except (msgspec.MsgspecError, UnicodeError, RecursionError):
            return None
        if doc.frameworks is None or doc.slaves is None or not doc.leader:
            return None
        known = self._known
        shared: dict[Any, Any] = {}
        seen: dict[tuple[int, int], Task] = {}
        frameworks: list[Framework] = []
        decode = _TASK_DECODER.decode
        try:
            for rf in doc.frameworks:
                tasks: list[Task] = []
                for raw in rf.tasks:
                    text = bytes(raw)
                    key = (hash(text), len(text))
                    task = known.get(key) or seen.get(key)
                    if task is None:
                        task = held(decode(text), shared)
                    seen[key] = task
                    tasks.append(task)
                frameworks.append(Framework(
                    id=rf.id, name=rf.name, pid=rf.pid, hostname=rf.hostname,
                    tasks=tuple(tasks),
                ))
        except (msgspec.MsgspecError, UnicodeError, RecursionError):
            return None
        state = checked(State(leader=doc.leader, frameworks=tuple(frameworks), agents=doc.slaves))
        self._known = seen
        return state
