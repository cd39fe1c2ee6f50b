"""The Mesos master state, as typed, frozen objects.

``parse_state`` turns the JSON of ``/master/state`` into a :class:`State`,
reading only the fields Mesos-DNS uses. A malformed item (a task whose id is
not a string, a status whose timestamp is not a number, ...) is skipped and
counted in ``State.skipped``; a malformed document (not JSON, not an object,
no leader) raises :class:`~mesosdns.errors.StateError`.

Pure: no I/O, no logging, no clock.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

from mesosdns.errors import StateError

DOCKER_IP_LABEL = "Docker.NetworkSettings.IPAddress"
MESOS_IP_LABEL = "MesosContainerizer.NetworkSettings.IPAddress"


class PID(NamedTuple):
    """A libprocess UPID: ``id@host:port`` (host may be ``[v6]``)."""

    id: str
    host: str
    port: str


class Status(NamedTuple):
    timestamp: float
    state: str
    labels: tuple[tuple[str, str], ...]
    # addresses of container_status.network_infos, with the pre-0.26
    # single ``ip_address`` used only where ``ip_addresses`` is empty
    netinfo_ips: tuple[str, ...]


class DiscoveryPort(NamedTuple):
    number: int
    name: str
    protocol: str


class DiscoveryInfo(NamedTuple):
    name: str
    ports: tuple[DiscoveryPort, ...]


class Task(NamedTuple):
    id: str
    name: str
    state: str
    agent_id: str
    framework_id: str
    statuses: tuple[Status, ...]
    ports: tuple[int, ...]
    labels: tuple[tuple[str, str], ...]
    discovery: DiscoveryInfo | None  # None when absent or its name is empty


class Framework(NamedTuple):
    id: str
    name: str
    pid: PID | None
    hostname: str
    tasks: tuple[Task, ...]

    def host_port(self) -> tuple[str, str]:
        """Where the scheduler listens: the pid's host and port, else the hostname."""
        if self.pid is not None:
            return self.pid.host, self.pid.port
        return self.hostname, ""


class Agent(NamedTuple):
    id: str
    hostname: str
    pid: PID


class State(NamedTuple):
    leader: str
    frameworks: tuple[Framework, ...]
    agents: tuple[Agent, ...]
    skipped: int = 0

    def leader_host_port(self) -> tuple[str, str] | None:
        """The leader's (host, port) from ``master@host:port``, if well formed."""
        parts = self.leader.split("@")
        if len(parts) < 2:
            return None
        return split_host_port(parts[1])


class _Bad(Exception):
    """An item of the state is malformed; it is skipped and counted."""


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

    Ranges are expanded in the order given; a range that is not ``lo-hi`` with
    whole numbers is skipped (as the original does when a bound does not parse),
    bounds are clamped to 0..65535 so a hostile range cannot expand to millions.
    """
    if not text or text == "[]":
        return ()
    start = text.find("[")
    if start < 0:
        raise _Bad("ports")
    inner = text[start + 1 :].split("]")[0]
    ports: list[int] = []
    for part in inner.split(","):
        bounds = part.strip().split("-")
        try:
            lo = int(bounds[0])
            hi = int(bounds[1]) if len(bounds) > 1 else lo
        except ValueError:
            continue
        ports.extend(range(max(lo, 0), min(hi, 65535) + 1))
    return tuple(ports)


def _str(obj: dict[str, Any], key: str) -> str:
    value = obj.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Bad(key)
    return value


def _list(obj: dict[str, Any], key: str) -> list[Any]:
    value = obj.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise _Bad(key)
    return value


def _dict(obj: dict[str, Any], key: str) -> dict[str, Any]:
    value = obj.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise _Bad(key)
    return value


def _labels(items: list[Any]) -> tuple[tuple[str, str], ...]:
    out = []
    for item in items:
        if not isinstance(item, dict):
            raise _Bad("labels")
        out.append((_str(item, "key"), _str(item, "value")))
    return tuple(out)


def _netinfo_ips(container: Any) -> tuple[str, ...]:
    if not isinstance(container, dict):
        raise _Bad("container_status")
    ips: list[str] = []
    for info in _list(container, "network_infos"):
        if not isinstance(info, dict):
            raise _Bad("network_infos")
        addresses = _list(info, "ip_addresses")
        if addresses:
            for address in addresses:
                if not isinstance(address, dict):
                    raise _Bad("ip_addresses")
                ips.append(_str(address, "ip_address"))
        elif old := _str(info, "ip_address"):
            ips.append(old)
    return tuple(ips)


def _status(obj: Any) -> Status:
    if not isinstance(obj, dict):
        raise _Bad("status")
    ts = obj.get("timestamp")
    if ts is None:
        ts = 0.0
    elif ts.__class__ is not float and (ts.__class__ is not int):
        raise _Bad("timestamp")
    state = obj.get("state") or ""
    if state.__class__ is not str:
        raise _Bad("state")
    raw_labels = obj.get("labels")
    labels = _labels(raw_labels) if raw_labels else ()
    container = obj.get("container_status")
    ips = _netinfo_ips(container) if container else ()
    return Status(float(ts), state, labels, ips)


def _discovery(obj: dict[str, Any]) -> DiscoveryInfo | None:
    info = _dict(obj, "discovery")
    name = _str(info, "name")
    if not name:
        return None
    ports = []
    for port in _list(_dict(info, "ports"), "ports"):
        if not isinstance(port, dict):
            raise _Bad("discovery port")
        number = port.get("number", 0)
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number <= 65535:
            raise _Bad("discovery port number")
        ports.append(DiscoveryPort(number, _str(port, "name"), _str(port, "protocol")))
    return DiscoveryInfo(name, tuple(ports))


def _task(obj: Any, counter: list[int]) -> Task:
    if not isinstance(obj, dict):
        raise _Bad("task")
    statuses = []
    for raw in obj.get("statuses") or ():
        try:
            statuses.append(_status(raw))
        except (_Bad, AttributeError, TypeError):
            counter[0] += 1
    resources = obj.get("resources")
    ports_value = resources.get("ports") if isinstance(resources, dict) else None
    ports = parse_ports(ports_value) if ports_value.__class__ is str else ()
    fields = (obj.get("id"), obj.get("name"), obj.get("state"), obj.get("slave_id"))
    if any(f is not None and f.__class__ is not str for f in fields):
        raise _Bad("task field")
    discovery = obj.get("discovery")
    return Task(
        fields[0] or "",
        fields[1] or "",
        fields[2] or "",
        fields[3] or "",
        _str(obj, "framework_id"),
        tuple(statuses),
        ports,
        _task_labels(obj, counter) if obj.get("labels") else (),
        _discovery(obj) if discovery else None,
    )


def _task_labels(obj: dict[str, Any], counter: list[int]) -> tuple[tuple[str, str], ...]:
    try:
        return _labels(_list(obj, "labels"))
    except _Bad:
        counter[0] += 1  # labels are informational: drop them, keep the task
        return ()


def _framework(obj: Any, counter: list[int]) -> Framework:
    if not isinstance(obj, dict):
        raise _Bad("framework")
    pid: PID | None = None
    pid_text = obj.get("pid")
    if pid_text is not None and (
        not isinstance(pid_text, str) or (pid := parse_pid(pid_text)) is None
    ):
        counter[0] += 1  # a malformed pid is dropped, the framework kept
    tasks = []
    for raw in _list(obj, "tasks"):
        try:
            tasks.append(_task(raw, counter))
        except _Bad:
            counter[0] += 1
    return Framework(_str(obj, "id"), _str(obj, "name"), pid, _str(obj, "hostname"), tuple(tasks))


def _agent(obj: Any) -> Agent:
    if not isinstance(obj, dict):
        raise _Bad("agent")
    pid = parse_pid(_str(obj, "pid"))
    if pid is None:
        raise _Bad("agent pid")
    return Agent(_str(obj, "id"), _str(obj, "hostname"), pid)


def parse_state(data: bytes | str | dict[str, Any]) -> State:
    """Parse a ``/master/state`` document (bytes, text or already decoded)."""
    if isinstance(data, dict):
        doc: Any = data
    else:
        try:
            doc = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise StateError(f"state is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise StateError("state is not a JSON object")
    leader = doc.get("leader")
    if not isinstance(leader, str) or not leader:
        raise StateError("state names no leader")
    counter = [0]
    frameworks = []
    agents = []
    raw_frameworks = doc.get("frameworks")
    raw_agents = doc.get("slaves")
    if not isinstance(raw_frameworks, list):
        counter[0] += raw_frameworks is not None
        raw_frameworks = []
    if not isinstance(raw_agents, list):
        counter[0] += raw_agents is not None
        raw_agents = []
    for raw in raw_frameworks:
        try:
            frameworks.append(_framework(raw, counter))
        except _Bad:
            counter[0] += 1
    for raw in raw_agents:
        try:
            agents.append(_agent(raw))
        except _Bad:
            counter[0] += 1
    return State(leader, tuple(frameworks), tuple(agents), counter[0])
