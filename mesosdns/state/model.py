"""The Mesos master state, as typed, frozen objects.

``parse_state`` turns the JSON of ``/master/state`` into a :class:`State`,
reading only the fields Mesos-DNS uses. The structs mirror the JSON shape and
are decoded by msgspec in one pass straight from the bytes: fields we do not
read are skipped without being materialised, which makes a large state both
fast to parse and small in memory (a 100k-task state: about 0.4 s and a few
hundred MiB, against several seconds and over a GiB for a generic decode).

A well-formed document takes that one pass. If msgspec rejects the document,
it is decoded generically (orjson) and converted item by item: a malformed
item (a task whose id is not a string, a status whose timestamp is not a
number, an agent without a valid pid, ...) is skipped and counted in
``State.skipped``. A malformed document (not JSON, not an object, no leader)
raises :class:`~mesosdns.errors.StateError`.

Pure: no I/O, no logging, no clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from typing import Any, NamedTuple

import msgspec
import orjson

from mesosdns.errors import StateError
from mesosdns.gcpause import gc_paused

DOCKER_IP_LABEL = "Docker.NetworkSettings.IPAddress"
MESOS_IP_LABEL = "MesosContainerizer.NetworkSettings.IPAddress"


class PID(NamedTuple):
    """A libprocess UPID: ``id@host:port`` (host may be ``[v6]``)."""

    id: str
    host: str
    port: str


# gc=False: these objects never form reference cycles, so the cyclic GC need
# not track (and rescan) the millions of them a large state holds.
class Label(msgspec.Struct, frozen=True, gc=False):
    key: str = ""
    value: str = ""


class IPAddress(msgspec.Struct, frozen=True, gc=False):
    ip_address: str = ""


class NetworkInfo(msgspec.Struct, frozen=True, gc=False):
    ip_addresses: tuple[IPAddress, ...] = ()
    ip_address: str = ""  # the single address of Mesos before 0.26


class ContainerStatus(msgspec.Struct, frozen=True, gc=False):
    network_infos: tuple[NetworkInfo, ...] = ()


class Status(msgspec.Struct, frozen=True, gc=False):
    state: str = ""
    timestamp: float = 0.0
    labels: tuple[Label, ...] = ()
    container_status: ContainerStatus | None = None
    # the task's health check result; None when it has no health check
    healthy: bool | None = None

    def netinfo_ips(self) -> list[str]:
        """Container network addresses; the old single field where the list is empty."""
        ips: list[str] = []
        if self.container_status is not None:
            for info in self.container_status.network_infos:
                if info.ip_addresses:
                    ips.extend(a.ip_address for a in info.ip_addresses)
                elif info.ip_address:
                    ips.append(info.ip_address)
        return ips

    def label_values(self, key: str) -> list[str]:
        return [label.value for label in self.labels if label.key == key]


def latest_running(statuses: Iterable[Status]) -> Status | None:
    """The TASK_RUNNING status with the greatest timestamp (first on ties)."""
    best: Status | None = None
    best_ts = -1.0
    for status in statuses:
        if status.state == "TASK_RUNNING" and status.timestamp > best_ts:
            best, best_ts = status, status.timestamp
    return best


def latest_status(statuses: Iterable[Status]) -> Status | None:
    """The status with the greatest timestamp (first on ties). For a running
    task it is its latest TASK_RUNNING status: Mesos sends each health check
    result as a new TASK_RUNNING status, which replaces the previous one."""
    best: Status | None = None
    best_ts = -1.0
    for status in statuses:
        if status.timestamp > best_ts:
            best, best_ts = status, status.timestamp
    return best


def read_statuses(statuses: tuple[Status, ...]) -> tuple[Status, ...]:
    """The statuses of a polled task that its records read, in their order:
    the latest and the latest TASK_RUNNING (each the same status for these
    as for them all). A running task usually keeps one of its two or three.
    (Not for a task whose statuses then change: the master replaces the
    last one when the next has the same state.)"""
    if len(statuses) < 2:
        return statuses
    last = statuses[-1]
    if last.state == "TASK_RUNNING":  # the usual case: the last is the latest
        ts = last.timestamp
        for s in statuses[:-1]:
            if s.timestamp >= ts:
                break
        else:
            return (last,)
    latest, running = latest_status(statuses), latest_running(statuses)
    kept = tuple(s for s in statuses if s is latest or s is running)
    return statuses if len(kept) == len(statuses) else kept


class Resources(msgspec.Struct, frozen=True, gc=False):
    ports: str = ""


class DiscoveryPort(msgspec.Struct, frozen=True, gc=False):
    number: int = 0
    name: str = ""
    protocol: str = ""


class DiscoveryPorts(msgspec.Struct, frozen=True, gc=False):
    ports: tuple[DiscoveryPort, ...] = ()


class DiscoveryInfo(msgspec.Struct, frozen=True, gc=False):
    name: str = ""
    ports: DiscoveryPorts | None = None


class Task(msgspec.Struct, frozen=True, gc=False):
    id: str = ""
    name: str = ""
    state: str = ""
    agent_id: str = msgspec.field(default="", name="slave_id")
    framework_id: str = ""
    statuses: tuple[Status, ...] = ()
    resources: Resources | None = None
    # (no labels: Mesos-DNS reads a task's statuses' labels, never its own;
    # the original does not decode them either)
    discovery: DiscoveryInfo | None = None

    @property
    def has_discovery(self) -> bool:
        """DiscoveryInfo with a non-empty name (an empty name means none)."""
        return self.discovery is not None and self.discovery.name != ""

    def ports(self) -> tuple[int, ...]:
        return parse_ports(self.resources.ports) if self.resources is not None else ()

    def discovery_ports(self) -> tuple[DiscoveryPort, ...]:
        d = self.discovery
        return d.ports.ports if d is not None and d.ports is not None else ()


class Framework(msgspec.Struct, frozen=True, gc=False):
    id: str = ""
    name: str = ""
    pid: str | None = None
    hostname: str = ""
    tasks: tuple[Task, ...] = ()

    def host_port(self) -> tuple[str, str]:
        """Where the scheduler listens: the pid's host and port, else the hostname."""
        pid = parse_pid(self.pid) if self.pid is not None else None
        if pid is not None:
            return pid.host, pid.port
        return self.hostname, ""


class Agent(msgspec.Struct, frozen=True, gc=False):
    id: str = ""
    hostname: str = ""
    pid: str = ""

    def upid(self) -> PID:
        """The agent's pid; agents without a valid one are dropped at parse time."""
        pid = parse_pid(self.pid)
        assert pid is not None
        return pid


class State(msgspec.Struct, frozen=True, gc=False):
    leader: str = ""
    frameworks: tuple[Framework, ...] = ()
    agents: tuple[Agent, ...] = msgspec.field(default=(), name="slaves")
    # not a JSON field (no key can match the name): malformed items skipped
    skipped: int = msgspec.field(default=0, name="mesosdns.skipped")

    def leader_host_port(self) -> tuple[str, str] | None:
        """The leader's (host, port) from ``master@host:port``, if well formed."""
        parts = self.leader.split("@")
        if len(parts) < 2:
            return None
        return split_host_port(parts[1])


class _Doc(msgspec.Struct, frozen=True, gc=False):
    """The top level as decoded: sections may be absent (None) here."""

    leader: str = ""
    frameworks: tuple[Framework, ...] | None = None
    slaves: tuple[Agent, ...] | None = None


_DECODER = msgspec.json.Decoder(_Doc)


def split_host_port(text: str) -> tuple[str, str] | None:
    """Split ``host:port`` / ``[v6]:port`` as Go's net.SplitHostPort does."""
    if text.startswith("["):
        end = text.find("]")
        if end < 0 or text[end + 1 : end + 2] != ":":
            return None
        host, port = text[1:end], text[end + 2 :]
        if "[" in host or "]" in port:
            return None
        return host, port
    colon = text.rfind(":")
    if colon < 0 or ":" in text[:colon]:
        return None
    return text[:colon], text[colon + 1 :]


@lru_cache(maxsize=4096)
def parse_pid(text: str) -> PID | None:
    """Parse ``id@host:port``; None when malformed."""
    parts = text.split("@")
    if len(parts) != 2:
        return None
    hp = split_host_port(parts[1])
    if hp is None or not hp[0] or not hp[1].isdigit() or int(hp[1]) > 65535:
        return None
    return PID(parts[0], hp[0], hp[1])


def parse_ports(text: str) -> tuple[int, ...]:
    """Expand a Mesos ports resource ``[31000-31002, 31005-31005]`` into ports.

    Ranges are expanded in the order given; a range whose bounds are not whole
    numbers is skipped (as the original does), a single number is one port,
    and bounds are clamped to 0..65535. A port listed twice is kept once (its
    records would collapse anyway), and expansion stops once every port is
    listed, so a hostile resource cannot expand to millions. Text without
    ``[`` has no ports.
    """
    start = text.find("[")
    if start < 0 or text == "[]":
        return ()
    inner = text[start + 1 :].split("]")[0]
    ports: dict[int, None] = {}
    for part in inner.split(","):
        bounds = part.strip().split("-")
        try:
            lo = int(bounds[0])
            hi = int(bounds[1]) if len(bounds) > 1 else lo
        except ValueError:
            continue
        ports.update(dict.fromkeys(range(max(lo, 0), min(hi, 65535) + 1)))
        if len(ports) > 65535:
            break
    return tuple(ports)


def parse_state(data: bytes | memoryview | str | dict[str, Any]) -> State:
    """Parse a ``/master/state`` document (bytes, text or already decoded).

    A document without a ``frameworks`` or ``slaves`` list is refused (a
    StateError keeps the last good records) rather than read as an empty
    cluster, which would withdraw every record at once.
    """
    with gc_paused():
        try:
            return _parse(data)
        except (UnicodeError, RecursionError, ValueError) as exc:
            # invalid UTF-8, nesting too deep for a decoder, ... : a bad
            # document like any other (msgspec/orjson errors are ValueErrors)
            raise StateError(f"state cannot be decoded: {type(exc).__name__}") from None


def _parse(data: bytes | memoryview | str | dict[str, Any]) -> State:
    if isinstance(data, dict):
        return _lenient(data)
    state = strict(data)
    if state is None:
        try:
            raw = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise StateError(f"state is not valid JSON: {exc}") from None
        return _lenient(raw)
    return state


def strict(data: bytes | memoryview | str) -> State | None:
    """The one strict pass: None when an item is malformed (the lenient pass
    decides then); StateError for a document that is not JSON or lacks a
    section."""
    try:
        doc = _DECODER.decode(data)
    except msgspec.ValidationError:
        return None
    except msgspec.DecodeError as exc:
        raise StateError(f"state is not valid JSON: {exc}") from None
    if doc.frameworks is None or doc.slaves is None:
        raise StateError(_missing_sections(doc.frameworks is None, doc.slaves is None))
    state = State(leader=doc.leader, frameworks=doc.frameworks, agents=doc.slaves)
    return checked(state, 0)


def _missing_sections(frameworks: bool, slaves: bool) -> str:
    names = [n for n, missing in (("frameworks", frameworks), ("slaves", slaves)) if missing]
    return "state has no " + " and no ".join(f"'{n}' list" for n in names)


def checked(state: State, skipped: int = 0) -> State:
    """Require a leader; drop agents without a valid pid; count what was dropped."""
    if not state.leader:
        raise StateError("state names no leader")
    agents = tuple(a for a in state.agents if parse_pid(a.pid) is not None)
    skipped += len(state.agents) - len(agents)
    skipped += sum(1 for f in state.frameworks if f.pid is not None and parse_pid(f.pid) is None)
    if skipped == 0:
        return state
    return msgspec.structs.replace(state, agents=agents, skipped=skipped)


class _Counter:
    def __init__(self) -> None:
        self.n = 0

    def convert(self, raw: Any, kind: type[Any]) -> Any:
        """msgspec.convert, or None (counted) for a malformed item."""
        try:
            return msgspec.convert(raw, kind)
        except msgspec.ValidationError:
            self.n += 1
            return None

    def items(self, raw: Any) -> list[Any]:
        if raw is None:
            return []
        if not isinstance(raw, list):
            self.n += 1
            return []
        return raw


def _lenient(doc: Any) -> State:
    """Convert a generically decoded document item by item."""
    if not isinstance(doc, dict):
        raise StateError("state is not a JSON object")
    leader = doc.get("leader")
    if not isinstance(leader, str) or not leader:
        raise StateError("state names no leader")
    sections = doc.get("frameworks"), doc.get("slaves")
    if not all(isinstance(section, list) for section in sections):
        raise StateError(
            _missing_sections(*(not isinstance(section, list) for section in sections))
        )
    c = _Counter()
    frameworks = []
    for raw in c.items(doc.get("frameworks")):
        if not isinstance(raw, dict):
            c.n += 1
            continue
        tasks = tuple(t for t in map(lambda r: _task(r, c), c.items(raw.get("tasks"))) if t)
        fw = c.convert({**raw, "tasks": []}, Framework)
        if fw is not None:
            frameworks.append(msgspec.structs.replace(fw, tasks=tasks))
    agents = [a for a in (c.convert(r, Agent) for r in c.items(doc.get("slaves"))) if a]
    state = State(leader=leader, frameworks=tuple(frameworks), agents=tuple(agents))
    return checked(state, c.n)


def _task(raw: Any, c: _Counter) -> Task | None:
    """A task; a malformed status is dropped (counted), not the whole task."""
    try:
        return msgspec.convert(raw, Task)
    except msgspec.ValidationError:
        pass
    if not isinstance(raw, dict):
        c.n += 1
        return None
    fixed = dict(raw)
    items = c.items(raw.get("statuses"))
    good = [s for s in (c.convert(item, Status) for item in items) if s is not None]
    fixed["statuses"] = [msgspec.to_builtins(s) for s in good]
    task: Task | None = c.convert(fixed, Task)
    return task
