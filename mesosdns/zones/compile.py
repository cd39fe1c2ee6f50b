"""Compile the operator zones, once per refresh, into look-up structures.

Per zone: the static records (config and zone file), the templated records
expanded over the current state, a SOA (the zone's own, else one made from
the cluster's SOA settings), the automatic PTR records of its A and AAAA
records; all packed into `match.Node` values keyed by lower-case wire name.
With ``reverse_ptr``, the cluster's own addresses get PTR records too (see
`cluster_ptr`), in a zone consulted before the operator zones.

Templates (``eval:`` names) are expanded per object of the state: per task
when a task field is used (or agent and framework fields together), else per
agent, else per framework; once per address for ``.ip`` fields. Only
expansions whose name falls under the zone's origin are kept; an expansion
whose value does not fit the record type is skipped (an address of the other
family silently, anything else reported in `CompiledZones.problems` with the
zone and record named).

Pure: no I/O, no clock, no logging.
"""

from __future__ import annotations

import ipaddress
import itertools
import re
import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType

from mesosdns.dns import wire
from mesosdns.dns.opzones import CompiledZone, CompiledZones, Node
from mesosdns.dns.settings import DNSSettings, fqdn, soa_rname_fqdn
from mesosdns.records.generator import (
    GeneratorParams,
    agent_tail,
    canonical_ip,
    task_hash,
    task_ips,
)
from mesosdns.records.labels import LabelFunc, domain_frag, rfc952, rfc1123
from mesosdns.records.model import RecordSet
from mesosdns.state.model import State
from mesosdns.zones.model import TemplateRecord, Zone, make_rr
from mesosdns.zones.records import RR, RTYPES, absolute, name_wire

__all__ = ["ClusterPTR", "cluster_ptr", "compile_zones", "reverse_name"]

_TYPE_PTR = RTYPES["PTR"]
_CLASS_IN = 1
_REV_ROOTS = {4: "in-addr.arpa.", 6: "ip6.arpa."}
MAX_PROBLEMS_PER_RECORD = 1  # examples kept per template record (plus a count)


def reverse_name(ip: str) -> str:
    """``10.0.0.1`` -> ``1.0.0.10.in-addr.arpa.``; IPv6 -> nibbles in ``ip6.arpa.``."""
    return ipaddress.ip_address(ip).reverse_pointer + "."


def _lower_wire(name: str) -> bytes:
    return name_wire(name).lower()


def _tail(code: int, ttl: int, rdata: bytes) -> bytes:
    return struct.pack(">HHIH", code, _CLASS_IN, ttl & 0xFFFFFFFF, len(rdata)) + rdata


# --------------------------------------------------------------------------- state objects


@dataclass(frozen=True, slots=True)
class _Objects:
    """The state's objects as template fields: key -> values (``.ip``: several)."""

    agents: tuple[Mapping[str, tuple[str, ...]], ...] = ()
    tasks: tuple[Mapping[str, tuple[str, ...]], ...] = ()
    frameworks: tuple[Mapping[str, tuple[str, ...]], ...] = ()


def _ips_of(host: str, params: GeneratorParams) -> tuple[str, ...]:
    literal = canonical_ip(host)
    if literal is not None:
        return (literal[0],)
    found = (canonical_ip(ip) for ip in params.resolved.get(host, ()))
    return tuple(dict.fromkeys(ip[0] for ip in found if ip is not None))


@dataclass(frozen=True, slots=True)
class _Agent:
    fields: Mapping[str, tuple[str, ...]]
    ips: tuple[str, ...]  # addresses (for PTR)
    host_ips: tuple[str, ...]  # as the generator hands them to task_ips


@dataclass(frozen=True, slots=True)
class _Task:
    fields: Mapping[str, tuple[str, ...]]
    canonical: str  # <task>-<hash>-<agent>.<framework>.<domain>.
    ips: tuple[str, ...]


def _agents(state: State, params: GeneratorParams) -> dict[str, _Agent]:
    spec = rfc952 if params.rfc952 else rfc1123
    out: dict[str, _Agent] = {}
    for agent in state.agents:
        host = agent.upid().host
        ips = _ips_of(host, params)
        fields = {
            "agent.id": (agent.id,) if agent.id else (),
            "agent.hostname": (agent.hostname,) if agent.hostname else (),
            "agent.ip": ips,
        }
        out[agent.id] = _Agent(fields, ips, ips or (domain_frag(host, spec),))
    return out


def _tasks(state: State, params: GeneratorParams, agents: Mapping[str, _Agent]) -> Iterator[_Task]:
    spec: LabelFunc = rfc952 if params.rfc952 else rfc1123
    domain = params.domain
    for fw in state.frameworks:
        fname = domain_frag(fw.name, spec)
        fw_fields = {
            "framework.id": (fw.id,) if fw.id else (),
            "framework.name": (fname,) if fname else (),
        }
        for task in fw.tasks:
            agent = agents.get(task.agent_id)
            if agent is None or task.state != "TASK_RUNNING":
                continue
            raw = (
                task.discovery.name
                if task.discovery is not None and task.has_discovery
                else task.name
            )
            tname = spec(raw)
            ips = tuple(ip for ip, _ in task_ips(task, params.ip_sources, agent.host_ips))
            label = f"{tname}-{task_hash(task.id)}-{agent_tail(task.agent_id)}"
            canonical = f"{label}.{fname}.{domain}."
            fields = {
                **agent.fields,
                **fw_fields,
                "task.id": (task.id,) if task.id else (),
                "task.name": (tname,) if tname else (),
                "task.ip": ips,
            }
            yield _Task(fields, canonical, ips)


def _objects(
    state: State, params: GeneratorParams, agents: Mapping[str, _Agent], tasks: Sequence[_Task]
) -> _Objects:
    spec = rfc952 if params.rfc952 else rfc1123
    frameworks = tuple(
        {
            "framework.id": (fw.id,) if fw.id else (),
            "framework.name": (name,) if (name := domain_frag(fw.name, spec)) else (),
        }
        for fw in state.frameworks
    )
    return _Objects(
        agents=tuple(a.fields for a in agents.values()),
        tasks=tuple(t.fields for t in tasks),
        frameworks=frameworks,
    )


# --------------------------------------------------------------------------- templates


@dataclass
class _Expansion:
    rrs: list[RR] = field(default_factory=list)
    skipped: int = 0
    examples: list[str] = field(default_factory=list)

    def skip(self, reason: str) -> None:
        self.skipped += 1
        if len(self.examples) < MAX_PROBLEMS_PER_RECORD:
            self.examples.append(reason)


def _pool(tr: TemplateRecord, objects: _Objects) -> Sequence[Mapping[str, tuple[str, ...]]]:
    kinds = tr.objects
    if "task" in kinds or {"agent", "framework"} <= kinds:
        return objects.tasks
    if "agent" in kinds:
        return objects.agents
    if "framework" in kinds:
        return objects.frameworks
    return ({},)  # parameters only: expanded once


def _describe(values: Mapping[str, str]) -> str:
    for key in ("task.id", "agent.id", "framework.id", "framework.name"):
        if key in values:
            return f"{key.split('.')[0]} {values[key]!r}"
    return "parameters"


def expand_template(tr: TemplateRecord, zone: Zone, objects: _Objects) -> _Expansion:
    """The records of one template over the state's objects."""
    out = _Expansion()
    keys = sorted(f.key for f in tr.name.fields | tr.value.fields)
    origin_wire = _lower_wire(zone.origin)
    seen: set[tuple[str, str]] = set()
    for obj in _pool(tr, objects):
        choices = [obj.get(k, ()) for k in keys]
        if not all(choices):
            continue  # a field without a value (a task without an address...)
        for combo in itertools.product(*choices):
            values = dict(zip(keys, combo, strict=True))
            name_text = tr.name.expand(values).strip()
            value_text = tr.value.expand(values).strip()
            if (name_text, value_text) in seen:
                continue
            seen.add((name_text, value_text))
            try:
                owner = absolute(name_text if name_text.endswith(".") else name_text + ".", ".")
            except ValueError as exc:
                out.skip(f"{exc} ({_describe(values)})")
                continue
            if not wire.in_zone(_lower_wire(owner), origin_wire):
                continue  # outside the origin: not this zone's
            if tr.rtype in ("A", "AAAA") and _other_family(tr.rtype, value_text):
                continue
            try:
                out.rrs.append(make_rr(owner, tr.rtype, tr.ttl, value_text, "."))
            except ValueError as exc:
                out.skip(f"{owner} {tr.rtype} {value_text!r}: {exc} ({_describe(values)})")
    return out


def _other_family(rtype: str, text: str) -> bool:
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return False
    return (ip.version == 6) == (rtype == "A")


# --------------------------------------------------------------------------- cluster PTR


@dataclass(frozen=True, slots=True)
class ClusterPTR:
    """The cluster's reverse records: address -> names, and which rule named it."""

    names: Mapping[str, tuple[str, ...]]
    kind: Mapping[str, str]  # address -> "master", "agent" or "task"


_MASTER_RE = re.compile(r"master[0-9]+\.")


def cluster_ptr(state: State, params: GeneratorParams, records: RecordSet | None) -> ClusterPTR:
    """PTR data for the cluster's own addresses.

    Rules, for an address several names share: a master's ``masterN`` names
    win over an agent's host name, which wins over task names; within the
    winning kind every name is answered, sorted. Agents whose host name is
    an IP address or not a valid DNS name give no PTR; task names are the
    canonical ``<task>-<hash>-<agent>.<framework>.<domain>.`` names of the
    task's container addresses.
    """
    agents = _agents(state, params)
    return _cluster_ptr(agents, list(_tasks(state, params, agents)), params, records)


def _cluster_ptr(
    agents: Mapping[str, _Agent],
    tasks: Sequence[_Task],
    params: GeneratorParams,
    records: RecordSet | None,
) -> ClusterPTR:
    by_kind: dict[str, dict[str, set[str]]] = {"master": {}, "agent": {}, "task": {}}
    domain = params.domain
    if records is not None:
        for mapping in (records.a, records.aaaa):
            for name, ips in mapping.items():
                if name.endswith("." + domain + ".") and _MASTER_RE.fullmatch(
                    name[: -len(domain) - 1]
                ):
                    for ip in ips:
                        if canonical_ip(ip) is not None:
                            by_kind["master"].setdefault(ip, set()).add(name)
    for agent in agents.values():
        hostname = next(iter(agent.fields["agent.hostname"]), "").rstrip(".")
        if not hostname or canonical_ip(hostname) is not None:
            continue
        try:
            target = absolute(hostname + ".", ".")
        except ValueError:
            continue
        for ip in agent.ips:
            by_kind["agent"].setdefault(ip, set()).add(target)
    known = None if records is None else (records.a, records.aaaa)
    for task in tasks:
        if wire.plain_key_wire(task.canonical) is None:
            continue  # not a name a question can reach
        if known is not None and not any(task.canonical in m for m in known):
            continue
        for ip in task.ips:
            by_kind["task"].setdefault(ip, set()).add(task.canonical)
    names: dict[str, tuple[str, ...]] = {}
    kind: dict[str, str] = {}
    for k in ("master", "agent", "task"):
        for ip, found in by_kind[k].items():
            if ip not in names:
                names[ip] = tuple(sorted(found))
                kind[ip] = k
    return ClusterPTR(MappingProxyType(names), MappingProxyType(kind))


# --------------------------------------------------------------------------- zones


class _NodeBuilder:
    """Collects packed records per name, without duplicates."""

    def __init__(self) -> None:
        self.rrs: dict[bytes, dict[int, list[bytes]]] = {}
        self.cnames: dict[bytes, bytes] = {}
        self.seen: set[tuple[bytes, int, bytes]] = set()

    def types(self, lname: bytes) -> set[int]:
        return set(self.rrs.get(lname, ()))

    def add(self, lname: bytes, code: int, ttl: int, rdata: bytes, target: str = "") -> bool:
        key = (lname, code, rdata)
        if key in self.seen:
            return False
        self.seen.add(key)
        self.rrs.setdefault(lname, {}).setdefault(code, []).append(_tail(code, ttl, rdata))
        if target:
            self.cnames[lname] = _lower_wire(target)
        return True

    def nodes(self) -> dict[bytes, Node]:
        return {
            name: Node(
                MappingProxyType({c: tuple(v) for c, v in types.items()}), self.cnames.get(name)
            )
            for name, types in self.rrs.items()
        }


def _soa_rdata(settings: DNSSettings, serial: int, minimum: int) -> tuple[bytes, str]:
    mname = fqdn(settings.soa_mname)
    rname = soa_rname_fqdn(settings.soa_rname)
    nums = (
        serial & 0xFFFFFFFF,
        settings.soa_refresh & 0xFFFFFFFF,
        settings.soa_retry & 0xFFFFFFFF,
        settings.soa_expire & 0xFFFFFFFF,
        minimum & 0xFFFFFFFF,
    )
    rdata = name_wire(mname) + name_wire(rname) + struct.pack(">IIIII", *nums)
    return rdata, f"{mname} {rname} " + " ".join(map(str, nums))


def _negative_soa(owner: bytes, soa: RR, zone_ttl: int) -> bytes:
    """The SOA for authority sections: TTL = min(SOA TTL, MINIMUM) (RFC 2308)."""
    minimum = int.from_bytes(soa.rdata[-4:], "big")
    ttl = min(soa.ttl or zone_ttl, minimum)
    return owner + _tail(RTYPES["SOA"], ttl, soa.rdata)


def _nets(zone: Zone) -> tuple[tuple[int, int, int], ...]:
    return tuple(
        (f.network.version, int(f.network.network_address), int(f.network.netmask))
        for f in zone.filters
    )


def _ents(names: Iterable[bytes], origin: bytes) -> frozenset[bytes]:
    """Empty non-terminals: ancestors (under the origin) that own no record."""
    existing = set(names)
    out: set[bytes] = set()
    for name in existing:
        if not wire.in_zone(name, origin):
            continue
        p = 0
        while name[p:] != origin:
            p += name[p] + 1
            parent = name[p:]
            if parent not in existing:
                out.add(parent)
    return frozenset(out)


def _compile_zone(
    zone: Zone, settings: DNSSettings, serial: int, objects: _Objects, problems: list[str]
) -> tuple[CompiledZone, int]:
    origin = _lower_wire(zone.origin)
    rrs = list(zone.records)
    soa = next((rr for rr in rrs if rr.rtype == "SOA"), None)
    if soa is None:
        rdata, text = _soa_rdata(settings, serial, zone.ttl)
        soa = RR(zone.origin, "SOA", zone.ttl, rdata, text)
        rrs.insert(0, soa)
    b = _NodeBuilder()
    for rr in rrs:
        b.add(_lower_wire(rr.name), rr.code, rr.ttl or zone.ttl, rr.rdata, rr.target)
    for tr in zone.templates:
        got = expand_template(tr, zone, objects)
        for rr in got.rrs:
            lname = _lower_wire(rr.name)
            kinds = b.types(lname)
            if (rr.rtype == "CNAME" and kinds - {rr.code}) or (
                RTYPES["CNAME"] in kinds and rr.rtype != "CNAME"
            ):
                got.skip(f"{rr.name} {rr.rtype}: the name has a CNAME and other records")
                continue
            b.add(lname, rr.code, rr.ttl or zone.ttl, rr.rdata, rr.target)
            rrs.append(rr)
        if got.skipped:
            problems.append(
                f"{tr.where} (zone {zone.name}): {got.skipped} expansion(s) skipped, "
                f"e.g. {got.examples[0]}"
            )
    exact: set[bytes] = set()
    rev_roots: set[int] = set()
    if zone.auto_ptr:
        _auto_ptr(zone, rrs, b, origin, exact, rev_roots)
    nodes = b.nodes()
    soa_auth = _negative_soa(origin, soa, zone.ttl)
    rev_soa = {
        _lower_wire(_REV_ROOTS[v]): _negative_soa(_lower_wire(_REV_ROOTS[v]), soa, zone.ttl)
        for v in sorted(rev_roots)
    }
    compiled = CompiledZone(
        name=zone.name,
        where=zone.where,
        origin=origin,
        nets=_nets(zone),
        nodes=MappingProxyType(nodes),
        exact=frozenset(exact),
        ents=_ents(nodes, origin),
        wild=any(name.startswith(b"\x01*") for name in nodes),
        soa_auth=soa_auth,
        rev_soa=MappingProxyType(rev_soa),
        forwarders=zone.forwarders,
        cont=zone.cont,
        own_data=bool(zone.records or zone.templates),
    )
    return compiled, len(b.seen)


def _auto_ptr(
    zone: Zone,
    rrs: Sequence[RR],
    b: _NodeBuilder,
    origin: bytes,
    exact: set[bytes],
    rev_roots: set[int],
) -> None:
    """PTR records for the zone's A and AAAA records (names under a wildcard excluded).

    An address several names share gets a PTR to each, sorted; an explicit PTR
    record at the reverse name wins (no automatic ones are added there).
    """
    targets: dict[str, dict[str, int]] = {}
    for rr in rrs:
        if rr.rtype not in ("A", "AAAA") or rr.name.startswith("*"):
            continue
        ip = str(ipaddress.ip_address(rr.rdata))
        targets.setdefault(ip, {}).setdefault(rr.name.lower(), rr.ttl or zone.ttl)
    for ip, names in targets.items():
        rname = reverse_name(ip)
        lname = _lower_wire(rname)
        if _TYPE_PTR in b.types(lname):
            continue
        for target in sorted(names):
            b.add(lname, _TYPE_PTR, names[target], name_wire(target))
        if not wire.in_zone(lname, origin):
            exact.add(lname)
            rev_roots.add(ipaddress.ip_address(ip).version)


def _cluster_zone(data: ClusterPTR, settings: DNSSettings, serial: int) -> CompiledZone:
    ttl = settings.ttl
    b = _NodeBuilder()
    roots: set[int] = set()
    for ip, names in data.names.items():
        lname = _lower_wire(reverse_name(ip))
        roots.add(ipaddress.ip_address(ip).version)
        for target in names:
            b.add(lname, _TYPE_PTR, ttl, name_wire(target))
    rdata, text = _soa_rdata(settings, serial, ttl)
    soa = RR(".", "SOA", ttl, rdata, text)
    rev_soa = {
        _lower_wire(_REV_ROOTS[v]): _negative_soa(_lower_wire(_REV_ROOTS[v]), soa, ttl)
        for v in sorted(roots)
    }
    nodes = b.nodes()
    return CompiledZone(
        name="cluster reverse",
        where="reversePTR",
        origin=None,
        nets=(),
        nodes=MappingProxyType(nodes),
        exact=frozenset(nodes),
        ents=frozenset(),
        wild=False,
        soa_auth=next(iter(rev_soa.values()), b""),
        rev_soa=MappingProxyType(rev_soa),
        forwarders=(),
        cont=True,
    )


def compile_zones(
    zones: Sequence[Zone],
    settings: DNSSettings,
    serial: int,
    *,
    state: State | None = None,
    params: GeneratorParams | None = None,
    records: RecordSet | None = None,
    reverse_ptr: bool = False,
) -> CompiledZones:
    """Compile the zones for one refresh (pure).

    ``state`` and ``params`` (the generator's: domain, IPSources, RFC 952,
    resolved host names) feed the templates and the cluster PTR records;
    ``records`` (the refresh's record set) names the masters. ``serial`` is
    the SOA serial of zones without their own SOA.
    """
    params = params or GeneratorParams(domain=settings.domain)
    objects = _Objects()
    problems: list[str] = []
    compiled: list[CompiledZone] = []
    count = 0
    if state is not None and (reverse_ptr or any(z.templates for z in zones)):
        agents = _agents(state, params)
        tasks = list(_tasks(state, params, agents))
        objects = _objects(state, params, agents, tasks)
        if reverse_ptr:
            data = _cluster_ptr(agents, tasks, params, records)
            cluster = _cluster_zone(data, settings, serial)
            if cluster.nodes:
                compiled.append(cluster)
                count += sum(len(rrs) for n in cluster.nodes.values() for rrs in n.rrs.values())
    for zone in sorted(zones, key=lambda z: (z.priority, z.index)):
        cz, n = _compile_zone(zone, settings, serial, objects, problems)
        compiled.append(cz)
        count += n
    return CompiledZones(
        zones=tuple(compiled),
        ra=settings.recurse_on,
        set_tc=settings.set_truncate_bit,
        serial=serial,
        problems=tuple(problems),
        records=count,
    )
