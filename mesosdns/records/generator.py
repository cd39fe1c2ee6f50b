"""The record generator: a pure function from a Mesos state to a RecordSet.

It produces exactly the records the original Mesos-DNS produces for the same
state and configuration, inserted in the same order: framework records, agent
records, the server's own name, master records, then task records. Host names
that are not IP literals are resolved by the caller and passed in as data
(``GeneratorParams.resolved``); the generator does no I/O.
"""

from __future__ import annotations

import hashlib
import ipaddress
import socket
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from mesosdns.gcpause import gc_paused
from mesosdns.records.labels import LabelFunc, domain_frag, rfc952, rfc1123
from mesosdns.records.model import (
    EnumFramework,
    EnumRecord,
    EnumTask,
    RecordSet,
    RType,
    SRVTarget,
)
from mesosdns.state.model import (
    DOCKER_IP_LABEL,
    MESOS_IP_LABEL,
    Agent,
    Framework,
    State,
    Task,
    latest_running,
    latest_status,
    split_host_port,
)

# NamedTuple construction without the Python-level __new__ (the generator
# builds about a million of these for 100k tasks)
_new = tuple.__new__

_ZBASE32 = "ybndrfg8ejkmcpqxot1uwisza345h769"


@dataclass(frozen=True, slots=True)
class GeneratorParams:
    """Everything besides the state that the records depend on."""

    domain: str = "mesos"
    ns_name: str = "ns1.mesos."  # SOAMname, normalised with a trailing dot
    listener_ips: tuple[str, ...] = ("127.0.0.1",)  # addresses the ns name gets
    # the masters list as the original hands it to the generator: the leader
    # slot first ("" when no ZooKeeper leader is known), then the masters
    masters: tuple[str, ...] = ("",)
    ip_sources: tuple[str, ...] = ("netinfo", "mesos", "host")
    rfc952: bool = False
    # omitUnhealthy: a task whose latest status says ``healthy: false`` is
    # left out of the names it shares with other tasks (see
    # `_Generation.health_aware_task_records`)
    omit_unhealthy: bool = False
    # host name -> addresses, for agent and framework hosts that are not IPs
    resolved: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )


def task_hash(task_id: str) -> str:
    """First 5 characters of z-base-32 of SHA-1 of the task id."""
    digest = hashlib.sha1(task_id.encode("utf-8", "surrogatepass")).digest()
    # z-base-32 reads the digest 5 bits at a time from the most significant
    # end, as standard base32 does: 5 characters are the first 25 bits
    bits = int.from_bytes(digest[:4], "big") >> 7
    return _ZBASE32_PAIRS[bits >> 15] + _ZBASE32_PAIRS[(bits >> 5) & 1023] + _ZBASE32[bits & 31]


# every two z-base-32 characters, indexed by their 10 bits
_ZBASE32_PAIRS = [a + b for a in _ZBASE32 for b in _ZBASE32]


def agent_tail(agent_id: str) -> str:
    """The last ``-`` separated field of an agent id, lower-cased."""
    return agent_id.rsplit("-", 1)[-1].lower()


_IP_CACHE: dict[str, tuple[str, RType] | None] = {}


def canonical_ip(text: str) -> tuple[str, RType] | None:
    """An IP literal in Go's canonical text form and its record type.

    IPv4-mapped IPv6 addresses become A records; scoped addresses are refused
    (Go's parser refuses them too). Memoised: agent addresses recur per task.
    """
    try:
        return _IP_CACHE[text]
    except KeyError:
        pass
    if len(_IP_CACHE) > 200_000:
        _IP_CACHE.clear()
    found = _IP_CACHE[text] = _canonical_ip(text)
    return found


def _canonical_ip(text: str) -> tuple[str, RType] | None:
    if not text or "%" in text:
        return None
    if ":" not in text:
        # inet_pton accepts exactly the dotted quads Go's parser accepts
        # (four decimal parts, no leading zeros); such text is canonical
        try:
            socket.inet_pton(socket.AF_INET, text)
        except OSError:
            return None
        return text, "A"
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped), "A"
        return ip.compressed, "AAAA"
    return str(ip), "A"


def hosts_to_resolve(state: State) -> set[str]:
    """Agent and framework host names that are not IP literals."""
    hosts = {agent.upid().host for agent in state.agents}
    hosts.update(fw.host_port()[0] for fw in state.frameworks)
    return {h for h in hosts if h and canonical_ip(h) is None}


class _Builder:
    """Accumulates records with the original's set semantics and order.

    Values are kept per name in an insertion-ordered dict (a set that keeps
    order); an SRV value's text ``host:port`` maps to its parsed target.
    """

    def __init__(self) -> None:
        self.rrs: dict[RType, dict[str, dict[str, SRVTarget | None]]] = {
            "A": {},
            "AAAA": {},
            "SRV": {},
        }

    def add(self, name: str, host: str, kind: RType) -> bool:
        if not host:
            return False
        values = self.rrs[kind].setdefault(name, {})
        if host in values:
            return False
        values[host] = _srv_target(host) if kind == "SRV" else None
        return True

    def put(self, rec: EnumRecord) -> bool:
        """A task's record, as `context_records` adds it (an empty value
        included); whether it is new."""
        name, host, kind = rec
        values = self.rrs[kind].setdefault(name, {})
        if host in values:
            return False
        values[host] = _srv_target(host) if kind == "SRV" else None
        return True


def generate(state: State, params: GeneratorParams) -> RecordSet:
    """Generate every record the original Mesos-DNS generates for ``state``."""
    with gc_paused():
        gen = _Generation(state, params)
        gen.run()
        return gen.result()


class _Generation:
    def __init__(self, state: State, params: GeneratorParams) -> None:
        self.state = state
        self.params = params
        self.spec: LabelFunc = rfc952 if params.rfc952 else rfc1123
        self.tail = "." + params.domain + "."
        self.b = _Builder()
        self.agent_ips: dict[str, tuple[str, ...]] = {}
        self.enum: list[EnumFramework] = []
        # omitUnhealthy: how many tasks were left out of some shared name
        self.omitted = 0

    def ips_of(self, host: str) -> list[tuple[str, RType]]:
        """hostToIPs: the literal itself, else the caller's resolution."""
        literal = canonical_ip(host)
        if literal is not None:
            return [literal]
        found = (canonical_ip(ip) for ip in self.params.resolved.get(host, ()))
        return [ip for ip in found if ip is not None]

    def run(self) -> None:
        self.framework_records()
        self.agent_records()
        self.listener_records()
        self.master_records()
        self.task_records()

    def result(self) -> RecordSet:
        def freeze(kind: RType) -> Mapping[str, tuple[str, ...]]:
            return MappingProxyType({k: tuple(v) for k, v in self.b.rrs[kind].items()})

        srv = {
            name: tuple(t for t in values.values() if t is not None)
            for name, values in self.b.rrs["SRV"].items()
        }
        return RecordSet(
            domain=self.params.domain,
            a=freeze("A"),
            aaaa=freeze("AAAA"),
            srv=MappingProxyType(srv),
            frameworks=tuple(self.enum),
            skipped=self.state.skipped,
        )

    def framework_records(self) -> None:
        for fw in self.state.frameworks:
            self.framework_record(fw)

    def framework_record(self, fw: Framework) -> None:
        """One framework's records (also used alone, by the incremental generator)."""
        host, port = fw.host_port()
        ips = self.ips_of(host)
        if not ips:
            return
        name = domain_frag(fw.name, self.spec) + self.tail
        for ip, kind in ips:
            self.b.add(name, ip, kind)
        if port:
            self.b.add("_framework._tcp." + name, _join(name, port), "SRV")

    def agent_records(self) -> None:
        for agent in self.state.agents:
            self.agent_record(agent)

    def agent_record(self, agent: Agent) -> None:
        """One agent's records and the addresses its tasks get (also used alone)."""
        name = "slave" + self.tail
        pid = agent.upid()
        ips = self.ips_of(pid.host)
        for ip, kind in ips:
            self.b.add(name, ip, kind)
        if ips:
            self.b.add("_slave._tcp" + self.tail, _join(name, pid.port), "SRV")
            self.agent_ips[agent.id] = tuple(ip for ip, _ in ips)
        else:
            # as the original: the labelled host name stands in for an IP
            self.agent_ips[agent.id] = (domain_frag(pid.host, self.spec),)

    def listener_records(self) -> None:
        for address in self.params.listener_ips:
            ip = canonical_ip(address)
            if ip is not None:
                self.b.add(self.params.ns_name, ip[0], ip[1])

    def master_records(self) -> None:
        hp = self.state.leader_host_port()
        if hp is None:
            return
        leader_address = self.state.leader.split("@")[1]
        ip = canonical_ip(hp[0])
        if ip is None:
            return
        leader_name, all_name = "leader" + self.tail, "master" + self.tail
        self.b.add(leader_name, ip[0], ip[1])
        self.b.add(all_name, ip[0], ip[1])
        target = leader_name + ":" + hp[1]
        self.b.add("_leader._tcp" + self.tail, target, "SRV")
        self.b.add("_leader._udp" + self.tail, target, "SRV")
        added_leader, idx = False, 0
        for master in self.params.masters:
            mhp = split_host_port(master)
            mip = canonical_ip(mhp[0]) if mhp is not None else None
            if mip is None:
                continue
            is_leader = master == leader_address
            if not is_leader and not self.b.add(all_name, mip[0], mip[1]):
                continue  # an address already listed
            if is_leader and added_leader:
                continue  # the leader listed twice
            self.b.add(f"master{idx}{self.tail}", mip[0], mip[1])
            idx += 1
            added_leader = added_leader or is_leader
        if not added_leader:
            self.b.add(f"master{idx}{self.tail}", ip[0], ip[1])

    def task_records(self) -> None:
        if self.params.omit_unhealthy:
            self.health_aware_task_records()
            return
        for fw in self.state.frameworks:
            fname = domain_frag(fw.name, self.spec)
            tasks: list[EnumTask] = []
            for task in fw.tasks:
                agent_ips = self.agent_ips.get(task.agent_id)
                if agent_ips is None or task.state != "TASK_RUNNING":
                    continue
                tasks.append(self.task_record(task, fname, agent_ips))
            self.enum.append(EnumFramework(fw.name, tuple(tasks)))

    def health_aware_task_records(self) -> None:
        """`task_records` with omitUnhealthy: every task's records are made
        alone first (as the incremental generator keeps them), so that the
        names some healthy or unchecked task gives are known before the
        unhealthy tasks' records are added: an unhealthy task's records under
        its own canonical names always, under any other name only when no
        healthy or unchecked task gives that name (fail open)."""
        main = self.b
        made: list[tuple[str, list[tuple[Task, tuple[EnumRecord, ...], frozenset[str] | None]]]]
        made = []
        supported: set[str] = set()  # names a healthy or unchecked task gives
        for fw in self.state.frameworks:
            fname = domain_frag(fw.name, self.spec)
            items: list[tuple[Task, tuple[EnumRecord, ...], frozenset[str] | None]] = []
            for task in fw.tasks:
                agent_ips = self.agent_ips.get(task.agent_id)
                if agent_ips is None or task.state != "TASK_RUNNING":
                    continue
                self.b = _Builder()
                records = self.task_record(task, fname, agent_ips).records
                own = self.own_names(task, fname) if is_unhealthy(task) else None
                if own is None:
                    supported.update(rec[0] for rec in records)
                items.append((task, records, own))
            made.append((fw.name, items))
        self.b = main
        for fw_name, items in made:
            tasks: list[EnumTask] = []
            for task, records, own in items:
                if own is not None:
                    kept = tuple(r for r in records if r[0] in own or r[0] not in supported)
                    self.omitted += len(kept) < len(records)
                    records = kept
                fresh = tuple(filter(main.put, records))
                tasks.append(EnumTask(task.name, task.id, fresh))
            self.enum.append(EnumFramework(fw_name, tuple(tasks)))

    def task_names(self, task: Task) -> tuple[str, ...]:
        """The labels a task's records are made under: the raw DiscoveryInfo
        name first (kept by the original for compatibility), then its label;
        without DiscoveryInfo the task name's label."""
        if task.discovery is not None and task.has_discovery:
            raw, labelled = task.discovery.name, self.spec(task.discovery.name)
            # the same twice would only repeat the first pass
            return (raw,) if labelled == raw else (raw, labelled)
        return (self.spec(task.name),)

    def own_names(self, task: Task, fname: str) -> frozenset[str]:
        """A task's canonical names (``label-hash-agent.fw.domain.`` and its
        ``.slave.`` form, per label): the names no other task shares."""
        hash_, agent = task_hash(task.id), agent_tail(task.agent_id)
        tail = self.tail
        out: set[str] = set()
        for tname in self.task_names(task):
            canonical = f"{tname}-{hash_}-{agent}.{fname}"
            out.add(canonical + tail)
            out.add(canonical + ".slave" + tail)
        return frozenset(out)

    def task_record(self, task: Task, fname: str, agent_ips: tuple[str, ...]) -> EnumTask:
        records: list[EnumRecord] = []
        ctx = _TaskContext(
            hash=task_hash(task.id),
            agent=agent_tail(task.agent_id),
            task_ips=task_ips(task, self.params.ip_sources, agent_ips),
            agent_ips=agent_ips,
        )
        for tname in self.task_names(task):
            self.context_records(task, fname, tname, ctx, records)
        return EnumTask(task.name, task.id, tuple(records))

    def context_records(
        self,
        task: Task,
        fname: str,
        tname: str,
        ctx: _TaskContext,
        records: list[EnumRecord],
    ) -> None:
        tail = self.tail
        rrs = self.b.rrs
        srvs = rrs["SRV"]

        def add(name: str, host: str, kind: RType) -> None:
            # the hot loop of the generator: _Builder.add, inlined
            values = rrs[kind].get(name)
            if values is None:
                values = rrs[kind][name] = {}
            elif host in values:
                return
            values[host] = None
            records.append(_new(EnumRecord, (name, host, kind)))

        def add_srv(names: list[str], host: str, port: int) -> None:
            # one target under several names: its text and tuple built once
            text = f"{host}:{port}"
            target: SRVTarget | None = None
            for name in names:
                values = srvs.get(name)
                if values is None:
                    values = srvs[name] = {}
                elif text in values:
                    continue
                if target is None:
                    target = _new(SRVTarget, (host, port))
                values[text] = target
                records.append(_new(EnumRecord, (name, text, "SRV")))

        canonical = f"{tname}-{ctx.hash}-{ctx.agent}.{fname}"
        arec = f"{tname}.{fname}"
        if ctx.task_ips:
            a_name, c_name = arec + tail, canonical + tail
            for ip, kind in ctx.task_ips:
                add(a_name, ip, kind)
                add(c_name, ip, kind)
        slave_a, slave_target = arec + ".slave" + tail, canonical + ".slave" + tail
        for address in ctx.agent_ips:
            parsed = canonical_ip(address)
            akind: RType = parsed[1] if parsed is not None else "A"
            add(slave_a, address, akind)
            add(slave_target, address, akind)

        ports = task.ports()
        has_discovery = task.has_discovery
        if ports:
            srv_names = [f"_{tname}._tcp.{fname}.slave{tail}", f"_{tname}._udp.{fname}.slave{tail}"]
            if not has_discovery:
                srv_names += [f"_{tname}._tcp.{fname}{tail}", f"_{tname}._udp.{fname}{tail}"]
            for port in ports:
                add_srv(srv_names, slave_target, port)
        if not has_discovery:
            return
        target = canonical + tail
        for dport in task.discovery_ports():
            proto = self.spec(dport.protocol)
            names = [f"_{tname}._{p}.{fname}" for p in ((proto,) if proto else ("tcp", "udp"))]
            add_srv([name + tail for name in names], target, dport.number)
            port_name = self.spec(dport.name)
            if port_name:
                add_srv([f"_{port_name}.{name}{tail}" for name in names], target, dport.number)


@dataclass(frozen=True, slots=True)
class _TaskContext:
    hash: str
    agent: str
    task_ips: tuple[tuple[str, RType], ...]
    agent_ips: tuple[str, ...]


def is_unhealthy(task: Task) -> bool:
    """Whether the task's latest status carries ``healthy: false`` (a task
    without a health check has no ``healthy`` field: never unhealthy)."""
    latest = latest_status(task.statuses)
    return latest is not None and latest.healthy is False


def task_ips(
    task: Task, sources: Iterable[str], agent_ips: tuple[str, ...]
) -> tuple[tuple[str, RType], ...]:
    """The task's addresses from the first IP source that yields any."""
    latest = latest_running(task.statuses)
    for source in sources:
        if source == "host":
            candidates: Iterable[str] = agent_ips
        elif latest is None:
            continue
        elif source == "netinfo":
            candidates = latest.netinfo_ips()
        elif source == "mesos":
            candidates = latest.label_values(MESOS_IP_LABEL)
        elif source == "docker":
            candidates = latest.label_values(DOCKER_IP_LABEL)
        else:
            continue
        found = tuple(ip for ip in map(canonical_ip, candidates) if ip is not None)
        if found:
            return found
    return ()


def _join(host: str, port: str) -> str:
    """net.JoinHostPort: bracket a host that contains a colon."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def _srv_target(text: str) -> SRVTarget:
    host, _, port = text.rpartition(":")
    return SRVTarget(host, int(port))


__all__ = [
    "Framework",
    "GeneratorParams",
    "agent_tail",
    "canonical_ip",
    "generate",
    "hosts_to_resolve",
    "is_unhealthy",
    "latest_status",
    "task_hash",
    "task_ips",
]
