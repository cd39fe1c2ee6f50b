"""The slow path: answer any in-domain question straight from the RecordSet.

Used for what the prepacked table does not cover: ANY, names holding values
that are not addresses, questions with ``.*`` or odd bytes, and as the
reference the compiled answers are tested against. It follows the original's
``HandleMesos`` step by step: lower-case the presentation name with ``.*``
removed, collect SRV / A / AAAA / SOA / NS per the question type, shuffle
the answers, then the empty-answer rules (SRV, SOA, NS: NOERROR; otherwise
NXDOMAIN unless the name has any record, which gives NODATA), SOA in
authority for those.
"""

from __future__ import annotations

import random
import struct

from mesosdns.dns import wire
from mesosdns.dns.answers import (
    OUTCOME_FAILED,
    OUTCOME_NXDOMAIN,
    OUTCOME_SUCCESS,
    AnswerTable,
    assemble,
    pack_v4,
    pack_v6,
)

_ANSWER_TYPES = frozenset((wire.TYPE_A, wire.TYPE_AAAA, wire.TYPE_SRV, wire.TYPE_ANY))


class _Names:
    """Owner names of records being written, compressed by exact match only.

    Pointers are made only to a name written earlier with the same bytes, so
    compression never changes a name's case.
    """

    def __init__(self, question: bytes, qname: bytes) -> None:
        self.pos = wire.HEADER_LEN + len(question)
        self.seen: dict[bytes, int] = {qname: wire.HEADER_LEN}

    def owner(self, name: bytes) -> bytes:
        off = self.seen.get(name)
        if off is not None and off < 0x4000:
            return struct.pack(">H", 0xC000 | off)
        self.seen.setdefault(name, self.pos)
        return name

    def put(self, rr: bytes, target: bytes | None = None, target_at: int = 0) -> bytes:
        """Account for ``rr`` written at the current position."""
        if target is not None:
            self.seen.setdefault(target, self.pos + target_at)
        self.pos += len(rr)
        return rr


def resolve(
    table: AnswerTable,
    query: wire.Query,
    limit: int,
    opt: bytes,
    rng: random.Random,
) -> tuple[bytes, int]:
    """The reply to an in-domain question and its counter outcome."""
    rs = table.rs
    ttl = table.ttl
    name = wire.ascii_lower(wire.clean_wild(wire.wire_to_text(query.qname)))
    qtype = query.qtype
    failed = False
    # logical answers: (kind, owner wire, rdata), shuffled before packing
    logical: list[tuple[int, bytes, bytes, bytes | None]] = []
    glue_hosts: list[tuple[str, bytes]] = []
    if qtype in (wire.TYPE_SRV, wire.TYPE_ANY):
        weight = struct.pack(">H", table.settings.srv_weight & 0xFFFF)
        for target in rs.srv.get(name, ()):
            twire = wire.text_to_wire(target.host)
            if twire is None:
                failed = True
                continue
            rdata = b"\x00\x00" + weight + struct.pack(">H", target.port & 0xFFFF) + twire
            logical.append((wire.TYPE_SRV, query.qname, rdata, twire))
            glue_hosts.append((target.host, twire))
    owner = b""
    if qtype in (wire.TYPE_A, wire.TYPE_AAAA, wire.TYPE_ANY):
        owner = wire.text_to_wire(name) or b""
    if qtype in (wire.TYPE_A, wire.TYPE_ANY):
        for value in rs.a.get(name, ()):
            p4 = pack_v4(value)
            if p4 is None or not owner:
                failed = True
            else:
                logical.append((wire.TYPE_A, owner, p4, None))
    if qtype in (wire.TYPE_AAAA, wire.TYPE_ANY):
        for value in rs.aaaa.get(name, ()):
            p6 = pack_v6(value)
            if p6 is None or not owner:
                failed = True
            else:
                logical.append((wire.TYPE_AAAA, owner, p6, None))
    auth: list[bytes] = []
    if qtype in (wire.TYPE_SOA, wire.TYPE_ANY):
        auth.append(table.soa_rr)
    if qtype in (wire.TYPE_NS, wire.TYPE_ANY):
        auth.append(table.ns_rr)
    rcode = wire.RCODE_NOERROR
    if logical:
        rng.shuffle(logical)
        outcome = OUTCOME_SUCCESS
    elif qtype in (wire.TYPE_SOA, wire.TYPE_NS, wire.TYPE_SRV):
        outcome = OUTCOME_SUCCESS
    else:
        outcome = OUTCOME_NXDOMAIN
        if not (rs.srv.get(name) or rs.a.get(name) or rs.aaaa.get(name)):
            rcode = wire.RCODE_NXDOMAIN
        if table.soa_rr not in auth:  # ANY already has it (the original adds it twice)
            auth.insert(0, table.soa_rr)
    names = _Names(query.question, query.qname)
    ans: list[bytes] = []
    for kind, rname, rdata, twire in logical:
        rr = names.owner(rname) + struct.pack(">HH", kind, wire.CLASS_IN) + ttl
        rr += struct.pack(">H", len(rdata)) + rdata
        ans.append(names.put(rr, twire, len(rr) - len(twire) if twire else 0))
    for rr in auth:
        names.put(rr)
    add, nadd, glue_failed = _glue(table, names, glue_hosts)
    failed |= glue_failed
    if failed:
        outcome |= OUTCOME_FAILED
    reply = assemble(
        query.ident,
        query.b2,
        query.b3,
        query.question,
        ans,
        auth,
        add,
        nadd,
        opt,
        limit,
        rcode=rcode,
        ra=table.ra,
        set_tc=table.set_tc,
    )
    return reply, outcome


def _glue(
    table: AnswerTable, names: _Names, hosts: list[tuple[str, bytes]]
) -> tuple[bytes, int, bool]:
    """One A and one AAAA per distinct SRV target, owner the lower-cased target."""
    rs = table.rs
    ttl = table.ttl
    parts: list[bytes] = []
    failed = False
    seen: set[str] = set()
    for host, twire in hosts:
        if host in seen:
            continue
        seen.add(host)
        owner_wire = twire.lower()
        for values, pack, rtype in (
            (rs.a.get(host, ()), pack_v4, wire.TYPE_A),
            (rs.aaaa.get(host, ()), pack_v6, wire.TYPE_AAAA),
        ):
            if not values:
                continue
            packed = pack(values[0])
            if packed is None:
                failed = True
                continue
            rr = names.owner(owner_wire) + struct.pack(">HH", rtype, wire.CLASS_IN) + ttl
            rr += struct.pack(">H", len(packed)) + packed
            parts.append(names.put(rr))
    return b"".join(parts), len(parts), failed


def badvers(table: AnswerTable, query: wire.Query) -> bytes:
    """BADVERS for an EDNS version we do not speak (RFC 6891)."""
    flags = wire.reply_flags(query.b2, query.b3, aa=True, tc=False, ra=table.ra, rcode=0)
    return (
        query.ident
        + flags
        + struct.pack(">HHHH", 1, 0, 0, 1)
        + query.question
        + wire.opt_rr(query.edns_do, ext_rcode=wire.RCODE_BADVERS >> 4)
    )
