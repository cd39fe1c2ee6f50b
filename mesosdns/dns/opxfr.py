"""What a zone transfer of an operator zone (``zones``) holds, and which
zone a transfer request gets.

An operator zone is compiled once per refresh into an immutable
`CompiledZone` (`mesosdns.zones.compile`), swapped in by reference: a
transfer holds the one it started with, so it shows one version without
copies or journal. Its content is exactly what DNS answers for the zone:
the SOA first and last, then every record of every name at or under the
origin (the origin's NS, MX... records, wildcard owners as ``*`` names,
CNAMEs, the records templates expanded this refresh, automatic PTR
records that fall under the origin), each with its own TTL. Automatic PTR
names outside the origin are answered by the zone but belong to the
reverse tree, not to it: they are left out.

Which zone (`transfer_zone`): the first zone in look-up order whose origin
is the asked name and whose source filters admit the client (none: all
do). That zone must hold data of its own (records from the config or a
zone file, or templates): a zone that only forwards is not authoritative
for its names, and its transfer is refused as NOTAUTH, as is a name that no
zone admitting the client has as origin: a client outside a zone's
filters cannot tell it from a zone that does not exist. The cluster's
reverse PTR records (``reversePTR``) are not a zone (exact names only, no
origin): never transferred.

The serial is the zone's SOA serial: a zone file's or config's own, else
the refresh's (the cluster serial), which the compiler writes into the
generated SOA. A zone with its own SOA keeps its serial across refreshes
even when its templated records change: secondaries see the change only
on their next AXFR, so templated zones are best left without an SOA.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator

from mesosdns.dns import wire
from mesosdns.dns.opzones import CompiledZone, CompiledZones, client_key

__all__ = [
    "ZoneRR",
    "pack_rrs",
    "transfer_serials",
    "transfer_zone",
    "zone_records",
    "zone_soa",
]

# a record as the compiler packs it: owner (lower-case wire), then type,
# class, TTL, length and rdata (names in it uncompressed)
ZoneRR = tuple[bytes, bytes]


def _admits(z: CompiledZone, key: tuple[int, int] | None) -> bool:
    if not z.nets:
        return True
    if key is None:
        return False
    version, value = key
    return any(v == version and value & mask == net for v, net, mask in z.nets)


def transfer_zone(
    zones: CompiledZones | None, lname: bytes, host: str | None
) -> CompiledZone | None:
    """The operator zone a transfer of ``lname`` (lower-case wire) from the
    client ``host`` gets, or None (NOTAUTH): see the module doc."""
    if zones is None:
        return None
    key = client_key(host)
    for z in zones.zones:
        if z.origin != lname or not _admits(z, key):
            continue
        return z if z.own_data else None
    return None


def transfer_serials(zones: CompiledZones | None) -> dict[str, int]:
    """The origin (text) and serial of every zone that can be transferred,
    for NOTIFY; for an origin several zones share, the first one's in
    look-up order (a client outside every filter gets none of them)."""
    out: dict[str, int] = {}
    if zones is None:
        return out
    for z in zones.zones:
        if z.own_data and z.origin is not None:
            name = wire.wire_to_text(z.origin)
            if name not in out:
                out[name] = zone_soa(z)[1]
    return out


def zone_soa(z: CompiledZone) -> tuple[ZoneRR, int]:
    """The zone's SOA record (owner the origin, its own TTL) and serial."""
    origin = z.origin
    assert origin is not None
    tail = z.nodes[origin].rrs[wire.TYPE_SOA][0]
    serial = int(struct.unpack_from(">I", tail, len(tail) - 20)[0])
    return (origin, tail), serial


def zone_records(z: CompiledZone) -> Iterator[ZoneRR]:
    """The zone's AXFR: SOA, the origin's other records, every other name's
    records under the origin, SOA."""
    origin = z.origin
    assert origin is not None
    soa, _ = zone_soa(z)
    yield soa
    nodes = z.nodes
    for rtype, tails in nodes[origin].rrs.items():
        if rtype != wire.TYPE_SOA:
            for tail in tails:
                yield origin, tail
    for name, node in nodes.items():
        if name == origin or not wire.in_zone(name, origin):
            continue
        for tails in node.rrs.values():
            for tail in tails:
                yield name, tail
    yield soa


def pack_rrs(
    ident: bytes, flags: bytes, question: bytes, records: Iterable[ZoneRR], limit: int
) -> Iterator[bytes]:
    """Records in messages of at most about ``limit`` octets, owners
    compressed; the question in the first message only."""
    first = True
    comp = wire.NameCompressor()
    if question:
        comp.remember(question[:-4], wire.HEADER_LEN)
    pos = wire.HEADER_LEN + len(question)
    parts: list[bytes] = []
    for owner, tail in records:
        rr = comp.name(owner, pos) + tail
        if pos + len(rr) > limit and parts:
            # full: this message goes, the record starts the next one
            yield transfer_message(ident, flags, question if first else b"", parts)
            first = False
            comp = wire.NameCompressor()
            pos = wire.HEADER_LEN
            parts = []
            rr = comp.name(owner, pos) + tail
        parts.append(rr)
        pos += len(rr)
    yield transfer_message(ident, flags, question if first else b"", parts)


def transfer_message(ident: bytes, flags: bytes, question: bytes, parts: list[bytes]) -> bytes:
    """One message of a transfer: the question in the first only."""
    return b"".join(
        (ident, flags, struct.pack(">HHHH", 1 if question else 0, len(parts), 0, 0), question,
         *parts)
    )
