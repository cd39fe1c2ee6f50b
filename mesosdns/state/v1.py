"""The Mesos v1 operator API's events, as the state model's structs.

``decode_event`` turns one event of the master's ``SUBSCRIBE`` stream (the
JSON of ``mesos.v1.master.Event``, see ``include/mesos/v1/master/master.proto``)
into a typed event whose tasks, agents and frameworks are the very structs
``/master/state`` parses into (`mesosdns.state.model`), so the record
generator is reused unchanged. The v1 JSON differs from ``/master/state``:

- ids are objects: ``task_id``/``agent_id``/``framework_id`` ``{"value": ...}``;
- labels are ``{"labels": [...]}``; resources are a list of ``Resource``,
  the ports being ``{"name": "ports", "ranges": {"range": [{"begin", "end"}]}}``
  (rendered here as ``/master/state`` renders them: the non-revocable port
  ranges merged and sorted, ``[31000-31001, 31005-31005]``);
- an agent is ``{"agent_info": {"id", "hostname", "port"}, "pid", ...}``: its
  pid is ``pid`` when present, else ``slave(1)@hostname:port``;
- a framework is ``{"framework_info": {"id", "name", "hostname"}, ...}``. The
  v1 API does not expose the scheduler's libprocess pid, which the records
  of a pid framework come from (its A record and ``_framework._tcp`` SRV):
  the stream poller reads the pids from ``/master/state-summary``
  (`framework_pids`) and fills them in. Without a pid, a framework's records
  come from its ``hostname``, as for a v1 scheduler API framework in
  ``/master/state``;
- ``SUBSCRIBED`` carries ``get_state`` (tasks apart from their frameworks)
  and ``heartbeat_interval_seconds``; the leader is not in it (the stream
  subscriber asks the master with ``GET_MASTER``).

Each event is decoded by msgspec in one pass into structs holding only the
fields read. If msgspec rejects it, it is decoded generically and converted
item by item: a malformed task, agent or framework of a ``SUBSCRIBED`` state is
skipped and counted (``State.skipped``); a malformed incremental event becomes
`Malformed`. Bytes that are not a JSON object raise `StateError`.

Pure: no I/O, no logging, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import msgspec
import orjson

from mesosdns.errors import StateError
from mesosdns.gcpause import gc_paused
from mesosdns.state.model import (
    Agent,
    ContainerStatus,
    DiscoveryInfo,
    Framework,
    Label,
    Resources,
    State,
    Status,
    Task,
    parse_pid,
)

DEFAULT_AGENT_PORT = 5051  # AgentInfo.port's default in mesos.proto


# -- the v1 JSON, as far as it is read ------------------------------------


class _ID(msgspec.Struct, frozen=True, gc=False):
    value: str = ""


class _Labels(msgspec.Struct, frozen=True, gc=False):
    labels: tuple[Label, ...] = ()


class _Status(msgspec.Struct, frozen=True, gc=False):
    task_id: _ID | None = None
    agent_id: _ID | None = None
    state: str = ""
    timestamp: float = 0.0
    labels: _Labels | None = None
    container_status: ContainerStatus | None = None
    healthy: bool | None = None


class _Range(msgspec.Struct, frozen=True, gc=False):
    begin: int = 0
    end: int = 0


class _Ranges(msgspec.Struct, frozen=True, gc=False):
    range: tuple[_Range, ...] = ()


class _Resource(msgspec.Struct, frozen=True, gc=False):
    name: str = ""
    ranges: _Ranges | None = None
    revocable: dict[str, Any] | None = None


class _Task(msgspec.Struct, frozen=True, gc=False):
    name: str = ""
    task_id: _ID = _ID()
    framework_id: _ID = _ID()
    agent_id: _ID = _ID()
    state: str = ""
    statuses: tuple[_Status, ...] = ()
    resources: tuple[_Resource, ...] = ()
    discovery: DiscoveryInfo | None = None


class _AgentInfo(msgspec.Struct, frozen=True, gc=False):
    id: _ID = _ID()
    hostname: str = ""
    port: int = DEFAULT_AGENT_PORT


class _Agent(msgspec.Struct, frozen=True, gc=False):
    agent_info: _AgentInfo = _AgentInfo()
    pid: str = ""


class _FrameworkInfo(msgspec.Struct, frozen=True, gc=False):
    id: _ID = _ID()
    name: str = ""
    hostname: str = ""


class _Framework(msgspec.Struct, frozen=True, gc=False):
    framework_info: _FrameworkInfo = _FrameworkInfo()


class _GetTasks(msgspec.Struct, frozen=True, gc=False):
    # pending tasks are not launched yet, completed and unreachable ones are
    # not in a framework's ``tasks`` of /master/state either: none has records
    tasks: tuple[_Task, ...] = ()


class _GetAgents(msgspec.Struct, frozen=True, gc=False):
    agents: tuple[_Agent, ...] = ()


class _GetFrameworks(msgspec.Struct, frozen=True, gc=False):
    frameworks: tuple[_Framework, ...] = ()


class _GetState(msgspec.Struct, frozen=True, gc=False):
    get_tasks: _GetTasks | None = None
    get_agents: _GetAgents | None = None
    get_frameworks: _GetFrameworks | None = None


class _Subscribed(msgspec.Struct, frozen=True, gc=False):
    get_state: _GetState | None = None
    heartbeat_interval_seconds: float | None = None


class _TaskAdded(msgspec.Struct, frozen=True, gc=False):
    task: _Task = _Task()


class _TaskUpdated(msgspec.Struct, frozen=True, gc=False):
    framework_id: _ID = _ID()
    status: _Status = _Status()
    state: str = ""
    # early documentation shows these at the top level; the proto has them
    # in the status only
    task_id: _ID | None = None
    agent_id: _ID | None = None


class _AgentAdded(msgspec.Struct, frozen=True, gc=False):
    agent: _Agent = _Agent()


class _AgentRemoved(msgspec.Struct, frozen=True, gc=False):
    agent_id: _ID = _ID()


class _FrameworkChanged(msgspec.Struct, frozen=True, gc=False):
    framework: _Framework = _Framework()


class _FrameworkRemoved(msgspec.Struct, frozen=True, gc=False):
    framework_info: _FrameworkInfo = _FrameworkInfo()


class _Event(msgspec.Struct, frozen=True, gc=False):
    type: str = "UNKNOWN"
    subscribed: _Subscribed | None = None
    task_added: _TaskAdded | None = None
    task_updated: _TaskUpdated | None = None
    agent_added: _AgentAdded | None = None
    agent_removed: _AgentRemoved | None = None
    framework_added: _FrameworkChanged | None = None
    framework_updated: _FrameworkChanged | None = None
    framework_removed: _FrameworkRemoved | None = None


class _MasterAddress(msgspec.Struct, frozen=True, gc=False):
    ip: str = ""
    port: int = 0


class _MasterInfo(msgspec.Struct, frozen=True, gc=False):
    pid: str = ""
    port: int = 0
    address: _MasterAddress | None = None


class _GetMaster(msgspec.Struct, frozen=True, gc=False):
    master_info: _MasterInfo | None = None


class _GetMasterResponse(msgspec.Struct, frozen=True, gc=False):
    get_master: _GetMaster | None = None


_EVENT_DECODER = msgspec.json.Decoder(_Event)
_MASTER_DECODER = msgspec.json.Decoder(_GetMasterResponse)


# -- the events -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Subscribed:
    """The first event: the whole state (its ``leader`` empty) and how often
    the master sends heartbeats (None: it does not say).

    ``orphans`` are tasks whose framework is not in the state's frameworks.
    """

    state: State
    heartbeat_interval: float | None = None
    orphans: tuple[Task, ...] = ()


@dataclass(frozen=True, slots=True)
class TaskAdded:
    task: Task


@dataclass(frozen=True, slots=True)
class TaskUpdated:
    """A task's new status; ``state`` is its latest state per the agent."""

    framework_id: str
    task_id: str
    status: Status
    state: str


@dataclass(frozen=True, slots=True)
class AgentAdded:
    agent: Agent


@dataclass(frozen=True, slots=True)
class AgentRemoved:
    agent_id: str


@dataclass(frozen=True, slots=True)
class FrameworkAdded:
    """FRAMEWORK_ADDED, or FRAMEWORK_UPDATED when ``updated``."""

    framework: Framework
    updated: bool = False


@dataclass(frozen=True, slots=True)
class FrameworkRemoved:
    framework_id: str


@dataclass(frozen=True, slots=True)
class Heartbeat:
    pass


@dataclass(frozen=True, slots=True)
class Unknown:
    """An event type this server does not use (new Mesos versions add some)."""

    type: str


@dataclass(frozen=True, slots=True)
class Malformed:
    """An event whose payload could not be read (its type, and why)."""

    type: str
    reason: str


Event = (
    Subscribed
    | TaskAdded
    | TaskUpdated
    | AgentAdded
    | AgentRemoved
    | FrameworkAdded
    | FrameworkRemoved
    | Heartbeat
    | Unknown
    | Malformed
)


def decode_event(data: bytes) -> Event:
    """One RecordIO record of the SUBSCRIBE stream, as a typed event."""
    with gc_paused():
        try:
            raw = _EVENT_DECODER.decode(data)
        except msgspec.ValidationError:
            try:
                doc = orjson.loads(data)
            except orjson.JSONDecodeError as exc:
                raise StateError(f"event is not valid JSON: {exc}") from None
            return _lenient_event(doc)
        except msgspec.DecodeError as exc:
            raise StateError(f"event is not valid JSON: {exc}") from None
        return _event(raw)


def _event(raw: _Event) -> Event:
    kind = raw.type
    if kind == "HEARTBEAT":
        return Heartbeat()
    if kind == "SUBSCRIBED":
        if raw.subscribed is None:
            return Malformed(kind, "no subscribed field")
        return _subscribed(raw.subscribed)
    if kind == "TASK_ADDED":
        if raw.task_added is None:
            return Malformed(kind, "no task_added field")
        return TaskAdded(task(raw.task_added.task))
    if kind == "TASK_UPDATED":
        if raw.task_updated is None:
            return Malformed(kind, "no task_updated field")
        return _task_updated(raw.task_updated)
    if kind == "AGENT_ADDED":
        if raw.agent_added is None:
            return Malformed(kind, "no agent_added field")
        got = agent(raw.agent_added.agent)
        return AgentAdded(got) if got is not None else Malformed(kind, "agent without a valid pid")
    if kind == "AGENT_REMOVED":
        if raw.agent_removed is None:
            return Malformed(kind, "no agent_removed field")
        return AgentRemoved(raw.agent_removed.agent_id.value)
    if kind in ("FRAMEWORK_ADDED", "FRAMEWORK_UPDATED"):
        changed = raw.framework_added if kind == "FRAMEWORK_ADDED" else raw.framework_updated
        if changed is None:
            return Malformed(kind, f"no {kind.lower()} field")
        return FrameworkAdded(framework(changed.framework), updated=kind == "FRAMEWORK_UPDATED")
    if kind == "FRAMEWORK_REMOVED":
        if raw.framework_removed is None:
            return Malformed(kind, "no framework_removed field")
        return FrameworkRemoved(raw.framework_removed.framework_info.id.value)
    return Unknown(kind)


def _task_updated(raw: _TaskUpdated) -> TaskUpdated | Malformed:
    sid = raw.status.task_id or raw.task_id
    if sid is None or not sid.value:
        return Malformed("TASK_UPDATED", "no task id")
    st = status(raw.status)
    return TaskUpdated(raw.framework_id.value, sid.value, st, raw.state or st.state)


def _subscribed(raw: _Subscribed) -> Subscribed:
    gs = raw.get_state or _GetState()
    frameworks = gs.get_frameworks.frameworks if gs.get_frameworks else ()
    agents = gs.get_agents.agents if gs.get_agents else ()
    tasks = gs.get_tasks.tasks if gs.get_tasks else ()
    return _assemble(
        [framework(f) for f in frameworks],
        [agent(a) for a in agents],
        [task(t) for t in tasks],
        raw.heartbeat_interval_seconds,
        0,
    )


def _assemble(
    frameworks: Iterable[Framework],
    agents: Iterable[Agent | None],
    tasks: Iterable[Task],
    heartbeat: float | None,
    skipped: int,
) -> Subscribed:
    """Group the tasks into their frameworks, as /master/state nests them."""
    by_fw: dict[str, list[Task]] = {}
    for t in tasks:
        by_fw.setdefault(t.framework_id, []).append(t)
    fws = []
    for fw in frameworks:
        fws.append(msgspec.structs.replace(fw, tasks=tuple(by_fw.pop(fw.id, ()))))
    good_agents = tuple(a for a in agents if a is not None)
    skipped += sum(1 for a in agents if a is None)
    orphans = tuple(t for ts in by_fw.values() for t in ts)
    state = State(leader="", frameworks=tuple(fws), agents=good_agents, skipped=skipped)
    return Subscribed(state, heartbeat, orphans)


# -- conversions ----------------------------------------------------------------


def status(raw: _Status) -> Status:
    return Status(
        state=raw.state,
        timestamp=raw.timestamp,
        labels=raw.labels.labels if raw.labels is not None else (),
        container_status=raw.container_status,
        healthy=raw.healthy,
    )


def ports_text(resources: Iterable[_Resource]) -> str:
    """The non-revocable ``ports`` ranges as /master/state shows them:
    merged, sorted, ``[a-b, c-d]``; "" when there are none."""
    ranges = sorted(
        (r.begin, r.end)
        for res in resources
        if res.name == "ports" and res.revocable is None and res.ranges is not None
        for r in res.ranges.range
        if r.begin <= r.end
    )
    if not ranges:
        return ""
    merged: list[list[int]] = []
    for lo, hi in ranges:
        if merged and lo <= merged[-1][1] + 1:
            merged[-1][1] = max(merged[-1][1], hi)
        else:
            merged.append([lo, hi])
    return "[" + ", ".join(f"{lo}-{hi}" for lo, hi in merged) + "]"


def task(raw: _Task) -> Task:
    ports = ports_text(raw.resources)
    return Task(
        id=raw.task_id.value,
        name=raw.name,
        state=raw.state,
        agent_id=raw.agent_id.value,
        framework_id=raw.framework_id.value,
        statuses=tuple(status(s) for s in raw.statuses),
        resources=Resources(ports=ports) if ports else None,
        discovery=raw.discovery,
    )


def agent(raw: _Agent) -> Agent | None:
    """An agent; None when it has no valid pid (dropped, as /master/state's are)."""
    info = raw.agent_info
    pid = raw.pid
    if not pid:
        host = f"[{info.hostname}]" if ":" in info.hostname else info.hostname
        pid = f"slave(1)@{host}:{info.port}"
    if parse_pid(pid) is None:
        return None
    return Agent(id=info.id.value, hostname=info.hostname, pid=pid)


def framework(raw: _Framework) -> Framework:
    return framework_info(raw.framework_info)


def framework_info(info: _FrameworkInfo) -> Framework:
    return Framework(id=info.id.value, name=info.name, pid=None, hostname=info.hostname)


# -- lenient decoding -------------------------------------------------------


def _convert(raw: Any, kind: type[Any]) -> Any:
    try:
        return msgspec.convert(raw, kind)
    except msgspec.ValidationError:
        return None


def _items(raw: Any, key: str) -> list[Any]:
    got = raw.get(key) if isinstance(raw, dict) else None
    return got if isinstance(got, list) else []


def _lenient_event(doc: Any) -> Event:
    if not isinstance(doc, dict):
        raise StateError("event is not a JSON object")
    kind = doc.get("type")
    if not isinstance(kind, str):
        return Malformed(str(kind), "no valid type")
    if kind != "SUBSCRIBED":
        event = _convert({"type": kind, _field(kind): doc.get(_field(kind))}, _Event)
        if event is None:
            return Malformed(kind, "invalid payload")
        return _event(event)
    sub = doc.get("subscribed")
    gs = sub.get("get_state") if isinstance(sub, dict) else None
    skipped = 0
    frameworks = []
    for raw in _items(gs.get("get_frameworks") if isinstance(gs, dict) else None, "frameworks"):
        got = _convert(raw, _Framework)
        if got is None:
            skipped += 1
        else:
            frameworks.append(framework(got))
    agents: list[Agent | None] = []
    for raw in _items(gs.get("get_agents") if isinstance(gs, dict) else None, "agents"):
        got = _convert(raw, _Agent)
        agents.append(agent(got) if got is not None else None)
    tasks = []
    for raw in _items(gs.get("get_tasks") if isinstance(gs, dict) else None, "tasks"):
        got = _lenient_task(raw)
        if got is None:
            skipped += 1
        else:
            tasks.append(got)
    hb = sub.get("heartbeat_interval_seconds") if isinstance(sub, dict) else None
    heartbeat = float(hb) if isinstance(hb, (int, float)) and not isinstance(hb, bool) else None
    return _assemble(frameworks, agents, tasks, heartbeat, skipped)


def _lenient_task(raw: Any) -> Task | None:
    """A task; a malformed status or resource is dropped, not the whole task."""
    got = _convert(raw, _Task)
    if got is not None:
        return task(got)
    if not isinstance(raw, dict):
        return None
    fixed = dict(raw)
    fixed["statuses"] = [s for s in _items(raw, "statuses") if _convert(s, _Status) is not None]
    fixed["resources"] = [r for r in _items(raw, "resources") if _convert(r, _Resource) is not None]
    got = _convert(fixed, _Task)
    return task(got) if got is not None else None


def _field(kind: str) -> str:
    """The event's payload field: ``TASK_ADDED`` -> ``task_added``."""
    return kind.lower()


# -- framework pids ----------------------------------------------------------


class _PidFramework(msgspec.Struct, frozen=True, gc=False):
    id: str = ""
    pid: str | None = None


class _PidSummary(msgspec.Struct, frozen=True, gc=False):
    frameworks: list[_PidFramework]


_PIDS_DECODER = msgspec.json.Decoder(_PidSummary)


def framework_pids(data: bytes) -> dict[str, str | None]:
    """Framework id -> scheduler pid (None: an HTTP API framework, which has
    none) from ``/master/state-summary`` (or any document whose
    ``frameworks`` list has the masters' framework summaries: ``/master/state``,
    ``/master/frameworks``). Raises StateError for a document without one."""
    try:
        summary = _PIDS_DECODER.decode(data)
    except (msgspec.ValidationError, msgspec.DecodeError) as exc:
        raise StateError(f"framework pids: {exc}") from None
    return {fw.id: fw.pid or None for fw in summary.frameworks if fw.id}


# -- GET_MASTER ------------------------------------------------------------------


def leader_from_get_master(data: bytes) -> str | None:
    """``master@ip:port`` from a ``GET_MASTER`` response, None if absent."""
    try:
        info = _MASTER_DECODER.decode(data).get_master
    except (msgspec.ValidationError, msgspec.DecodeError):
        return None
    mi = info.master_info if info is not None else None
    if mi is None:
        return None
    if mi.pid and parse_pid(mi.pid) is not None:
        return mi.pid
    if mi.address is not None and mi.address.ip and mi.address.port:
        host = f"[{mi.address.ip}]" if ":" in mi.address.ip else mi.address.ip
        return f"master@{host}:{mi.address.port}"
    return None


__all__ = [
    "AgentAdded",
    "AgentRemoved",
    "Event",
    "FrameworkAdded",
    "FrameworkRemoved",
    "Heartbeat",
    "Malformed",
    "Subscribed",
    "TaskAdded",
    "TaskUpdated",
    "Unknown",
    "decode_event",
    "framework_pids",
    "leader_from_get_master",
    "ports_text",
]
