"""What a zone holds, as records: the contents of its zone transfers.

A transferred zone holds exactly what mesosdns answers over DNS: the apex's
SOA and NS records, then the A, AAAA and SRV records of every name a
question can reach. The names are those the answer compiler keeps
(`mesosdns.dns.answers.zone_owner`: lower case, labels of at most 63 and
names of at most 255 octets, inside the zone, not under a forwarded zone);
the values are those its answers carry: A and AAAA values that are
addresses (`pack_v4` / `pack_v6`, so a value that is not an IP is skipped as
the compiler skips it), SRV targets that are valid names (priority 0, the
configured weight). Duplicate values give one record: a zone holds RRsets.

A record is ``(owner, type, rdata)``: the owner in lower-case wire form, the
rdata uncompressed. An alias zone (`mesosdns.dns.aliases`) is the cluster
domain's record set renamed: names and SRV targets inside the cluster
domain move into the alias.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from mesosdns.dns import wire
from mesosdns.dns.aliases import Renamer
from mesosdns.dns.answers import (
    AnswerTable,
    _zones_inside,
    ns_record,
    pack_v4,
    pack_v6,
    soa_record,
    zone_owner,
)
from mesosdns.dns.settings import DNSSettings
from mesosdns.records.model import SRVTarget

Record = tuple[bytes, int, bytes]  # owner (lower-case wire), type, rdata

KIND_A = 0
KIND_AAAA = 1
KIND_SRV = 2
KIND_TYPES = (wire.TYPE_A, wire.TYPE_AAAA, wire.TYPE_SRV)
_SRV_FIXED = struct.Struct(">HHH").pack  # priority, weight, port


class ZoneRules:
    """One transferable zone: its apex, settings and naming rules."""

    __slots__ = ("apex", "forwarded", "renamer", "settings", "weight")

    def __init__(self, apex: bytes, settings: DNSSettings, renamer: Renamer | None) -> None:
        self.apex = apex
        self.settings = settings  # the zone's: an alias's has its SOA names renamed
        self.renamer = renamer  # None: the cluster domain itself
        self.forwarded = _zones_inside(settings, apex)
        self.weight = settings.srv_weight & 0xFFFF

    def owner(self, name: str) -> bytes | None:
        """The owner of a cluster-domain record-set key in this zone, or None."""
        ren = self.renamer
        if ren is not None:
            renamed = ren.rename(name)
            if renamed is None:
                return None
            name = renamed
        return zone_owner(name, self.apex, self.forwarded)

    def rdatas(
        self,
        kind: int,
        values: Iterable[str] | Iterable[SRVTarget],
        targets: dict[str, bytes | None] | None = None,
    ) -> list[bytes]:
        """The distinct rdatas of a name's values of one kind, in order.
        ``targets``: SRV targets' wire forms already made (filled in here)."""
        out: dict[bytes, None] = {}
        if kind == KIND_SRV:
            ren = self.renamer
            weight = self.weight
            if targets is None:
                targets = {}
            for t in values:
                assert isinstance(t, SRVTarget)
                twire = targets.get(t.host, b"")
                if twire == b"":
                    host = t.host if ren is None else ren.rename_or_keep(t.host)
                    twire = targets[t.host] = wire.text_to_wire(host)
                if twire is not None:
                    out[_SRV_FIXED(0, weight, t.port & 0xFFFF) + twire] = None
            return list(out)
        pack = pack_v4 if kind == KIND_A else pack_v6
        for value in values:
            assert isinstance(value, str)
            packed = pack(value)
            if packed is not None:
                out[packed] = None
        return list(out)

    def soa(self, serial: int) -> bytes:
        """The SOA record, owner the apex in full, rdata uncompressed."""
        return soa_record(self.settings, serial, self.apex)

    def ns(self) -> bytes:
        return ns_record(self.settings, self.apex)

    def records(self, kind: int, name: str, values: Sequence[object] | None) -> set[Record]:
        """The records of one name's values of one kind (empty: none in the zone)."""
        if not values:
            return set()
        owner = self.owner(name)
        if owner is None:
            return set()
        rtype = KIND_TYPES[kind]
        return {(owner, rtype, r) for r in self.rdatas(kind, values)}  # type: ignore[arg-type]


def zone_rules(table: AnswerTable) -> dict[bytes, ZoneRules]:
    """The zones a table answers for, by lower-case wire apex: the cluster
    domain, then its alias zones."""
    settings = table.settings
    out = {table.domain: ZoneRules(table.domain, settings, None)}
    for view in table.aliases:
        out[view.domain] = ZoneRules(
            view.domain, view.settings, Renamer(settings.domain, wire.wire_to_text(view.domain))
        )
    return out


# the three record maps of a version: A, AAAA, SRV (name -> values)
Maps = tuple[
    Mapping[str, Sequence[str]], Mapping[str, Sequence[str]], Mapping[str, Sequence[SRVTarget]]
]


class VersionView:
    """The record maps as they were when it was made, while they change in place.

    The replica changes its maps between two callbacks of the event loop;
    copying them (hundreds of thousands of names) would hold the loop for
    tens of milliseconds. So this keeps the list of their names and, for
    each name changed since, its values of then (`note`, called by the
    replica's journal with the values it is about to overwrite). With
    ``copy``, the maps are copied instead (nothing tells it of changes).
    """

    __slots__ = ("keys", "live", "saved")

    def __init__(self, maps: Maps, copy: bool = False) -> None:
        self.live: Maps = (dict(maps[0]), dict(maps[1]), dict(maps[2])) if copy else maps
        self.keys = (list(self.live[0]), list(self.live[1]), list(self.live[2]))
        # kind -> name -> its values when the view was made (None: absent)
        self.saved: tuple[dict[str, Any], dict[str, Any], dict[str, Any]] = ({}, {}, {})

    def note(self, changes: Iterable[tuple[int, str, Any, Any]]) -> None:
        """Values about to be replaced: (kind, name, old, new); the first kept."""
        saved = self.saved
        for kind, name, old, _ in changes:
            saved[kind].setdefault(name, old)

    def get(self, kind: int, name: str) -> Any:
        s = self.saved[kind]
        return s[name] if name in s else self.live[kind].get(name)

    def present(self, kind: int, name: str) -> bool:
        s = self.saved[kind]
        return s[name] is not None if name in s else name in self.live[kind]


def zone_names(
    rules: ZoneRules, view: VersionView
) -> Iterator[tuple[bytes, list[tuple[int, bytes]]]]:
    """Every name of the zone with its records, (owner, [(type, rdata), ...]),
    as they were when ``view`` was made."""
    rdatas = rules.rdatas
    owner_of = rules.owner
    get, present = view.get, view.present
    targets: dict[str, bytes | None] = {}  # a task is the target of several SRV names
    for first, keys in enumerate(view.keys):
        for name in keys:
            # a name is listed under the first of A, AAAA, SRV that has it
            if (first > 0 and present(0, name)) or (first > 1 and present(1, name)):
                continue
            owner = owner_of(name)
            if owner is None:
                continue
            rrs: list[tuple[int, bytes]] = []
            for kind in range(first, 3):
                values = get(kind, name)
                if values:
                    rtype = KIND_TYPES[kind]
                    rrs.extend([(rtype, r) for r in rdatas(kind, values, targets)])
            if rrs:
                yield owner, rrs
