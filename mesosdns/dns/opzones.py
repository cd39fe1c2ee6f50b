"""The zone lookup order, as a pure function of (name, type, client address).

For a name outside the cluster domain, the compiled zones are walked in
priority order (low to high; config order breaks ties). For each zone:

1. if it has source filters and the client's address matches none: next zone;
2. if its origin does not hold the name: next zone;
3. if it has data for the name: the authoritative answer (CNAMEs chased
   inside the zone, wildcards expanded, NXDOMAIN / NODATA with its SOA);
4. else, if it has forwarders: `Forward` (the caller asks them, and calls
   `lookup` again from the next zone when they give no answer and the
   zone continues);
5. else, if ``continue`` is set: next zone;
6. else: the zone's NXDOMAIN.

No zone claimed the name: None (the default resolvers apply).

"Data for the name" means the name exists in the zone: it owns records,
is an empty non-terminal, or matches a wildcard. The cluster's reverse
(PTR) records, when enabled, come first as a zone that claims only its own
names.

Pure: no I/O. Answers are records packed at compile time with their owner
in front; the caller frames them (`render`).
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass

from mesosdns.dns import wire
from mesosdns.dns.answers import assemble

__all__ = [
    "Answer",
    "CompiledZone",
    "CompiledZones",
    "Forward",
    "Node",
    "client_key",
    "lookup",
    "render",
]

TYPE_CNAME = 5
MAX_CHAIN = 8  # CNAME hops followed inside one zone
QNAME_PTR = b"\xc0\x0c"  # owner = the question's name (as the client wrote it)
_WILD = b"\x01*"


@dataclass(frozen=True, slots=True)
class Node:
    """The records of one name: type -> packed records without the owner
    (type, class, TTL, length, data); the CNAME target (lower-case wire)."""

    rrs: Mapping[int, tuple[bytes, ...]]
    cname: bytes | None = None


@dataclass(frozen=True, slots=True)
class CompiledZone:
    """One zone, ready for look-ups (built per refresh by `compile`)."""

    name: str
    where: str  # "zones[i]", or "reversePTR" for the cluster's PTR records
    origin: bytes | None  # lower-case wire; None: claims its exact names only
    nets: tuple[tuple[int, int, int], ...]  # filters: (IP version, network, mask)
    nodes: Mapping[bytes, Node]  # lower-case wire name -> records
    exact: frozenset[bytes]  # names outside the origin it answers (auto PTR)
    ents: frozenset[bytes]  # empty non-terminals under the origin
    wild: bool  # has a wildcard name
    soa_auth: bytes  # SOA record for negative answers (owner: origin)
    rev_soa: Mapping[bytes, bytes]  # for exact names: reverse root -> SOA record
    forwarders: tuple[tuple[str, int], ...]
    cont: bool
    # records of its own (config, zone file or templates): the zone can be
    # transferred (`mesosdns.dns.opxfr`); False for a zone that only forwards
    own_data: bool = False

    def claims(self, lname: bytes) -> bool:
        origin = self.origin
        return (origin is not None and wire.in_zone(lname, origin)) or lname in self.exact


@dataclass(frozen=True, slots=True)
class CompiledZones:
    """Every zone of one refresh, in look-up order."""

    zones: tuple[CompiledZone, ...]
    ra: bool = True  # RA bit of zone answers (``recurseon``)
    set_tc: bool = True
    serial: int = 0
    problems: tuple[str, ...] = ()  # template expansions skipped this refresh
    records: int = 0  # records compiled, for logs

    @property
    def active(self) -> bool:
        return bool(self.zones)


@dataclass(frozen=True, slots=True)
class Answer:
    """An authoritative answer: complete records (owner included)."""

    zone: CompiledZone
    rcode: int
    answer: tuple[bytes, ...]
    authority: tuple[bytes, ...] = ()


@dataclass(frozen=True, slots=True)
class Forward:
    """Ask the zone's forwarders; on no answer, continue at ``index + 1``
    if the zone continues, else give the negative reply."""

    index: int
    zone: CompiledZone


@functools.lru_cache(maxsize=4096)
def client_key(host: str | None) -> tuple[int, int] | None:
    """A client address as (IP version, integer); IPv4-mapped IPv6 is IPv4."""
    if not host:
        return None
    try:
        ip = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.version, int(ip)


def _matches(nets: tuple[tuple[int, int, int], ...], key: tuple[int, int]) -> bool:
    version, value = key
    return any(v == version and value & mask == net for v, net, mask in nets)


def lookup(
    zones: CompiledZones,
    lname: bytes,
    qtype: int,
    client: str | None,
    start: int = 0,
) -> Answer | Forward | None:
    """The zones' verdict on a lower-case wire name, from zone ``start`` on.

    ``client`` is the client's source address (text). Returns an `Answer`,
    a `Forward`, or None when no zone claims the name.
    """
    key: tuple[int, int] | None = None
    keyed = False
    items = zones.zones
    for i in range(start, len(items)):
        z = items[i]
        if z.nets:
            if not keyed:
                key, keyed = client_key(client), True
            if key is None or not _matches(z.nets, key):
                continue
        if not z.claims(lname):
            continue
        found = zone_answer(z, lname, qtype)
        if found is not None:
            return found
        if z.forwarders:
            return Forward(i, z)
        if z.cont:
            continue
        return Answer(z, wire.RCODE_NXDOMAIN, (), (_soa_for(z, lname),))
    return None


def zone_answer(z: CompiledZone, lname: bytes, qtype: int) -> Answer | None:
    """The zone's answer for a name it holds; None when it does not hold it."""
    node = z.nodes.get(lname)
    if node is None:
        if lname in z.ents:
            return Answer(z, wire.RCODE_NOERROR, (), (_soa_for(z, lname),))
        node = _wildcard(z, lname) if z.wild else None
        if node is None:
            return None
    answers: list[bytes] = []
    owner = QNAME_PTR
    name = lname
    seen = {lname}
    for _ in range(MAX_CHAIN + 1):
        if qtype == wire.TYPE_ANY:
            for group in node.rrs.values():
                answers.extend(owner + rr for rr in group)
            return Answer(z, wire.RCODE_NOERROR, tuple(answers))
        rrs = node.rrs.get(qtype)
        if rrs:
            answers.extend(owner + rr for rr in rrs)
            return Answer(z, wire.RCODE_NOERROR, tuple(answers))
        target = node.cname
        if target is None or qtype == TYPE_CNAME:
            return Answer(z, wire.RCODE_NOERROR, tuple(answers), (_soa_for(z, name),))
        answers.append(owner + node.rrs[TYPE_CNAME][0])
        if target in seen or not z.claims(target):
            return Answer(z, wire.RCODE_NOERROR, tuple(answers))  # the resolver goes on
        seen.add(target)
        nxt = z.nodes.get(target)
        if nxt is None and z.wild:
            nxt = _wildcard(z, target)
        if nxt is None:
            rcode = wire.RCODE_NOERROR if target in z.ents else wire.RCODE_NXDOMAIN
            return Answer(z, rcode, tuple(answers), (_soa_for(z, target),))
        node, owner, name = nxt, target, target
    return Answer(z, wire.RCODE_NOERROR, tuple(answers))  # a chain too long: as far as we got


def _wildcard(z: CompiledZone, lname: bytes) -> Node | None:
    """The wildcard node of the closest encloser (RFC 4592), if there is one."""
    origin = z.origin
    if origin is None or not wire.in_zone(lname, origin) or lname == origin:
        return None
    p = 0
    while lname[p]:
        p += lname[p] + 1
        parent = lname[p:]
        if parent in z.nodes or parent in z.ents:
            return z.nodes.get(_WILD + parent)
    return None


def _soa_for(z: CompiledZone, lname: bytes) -> bytes:
    origin = z.origin
    if origin is not None and wire.in_zone(lname, origin):
        return z.soa_auth
    for root, soa in z.rev_soa.items():
        if wire.in_zone(lname, root):
            return soa
    return z.soa_auth


def render(
    found: Answer,
    ident: bytes,
    b2: int,
    b3: int,
    question: bytes,
    limit: int,
    opt: bytes,
    *,
    ra: bool,
    set_tc: bool,
) -> bytes:
    """The reply message for an `Answer` (AA set, truncated to ``limit``)."""
    return assemble(
        ident,
        b2,
        b3,
        question,
        found.answer,
        found.authority,
        b"",
        0,
        opt,
        limit,
        rcode=found.rcode,
        ra=ra,
        set_tc=set_tc,
        aa=True,
    )
