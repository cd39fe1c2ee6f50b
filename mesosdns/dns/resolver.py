"""The slow path: answer any in-domain question straight from the RecordSet.

Used for what the prepacked table does not cover: ANY, names holding values
that are not addresses, questions with ``.*`` or odd bytes, and as the
reference the compiled answers are tested against. It follows the original's
``HandleMesos`` step by step: lower-case the presentation name with ``.*``
removed, collect SRV / A / AAAA / SOA / NS per the question type, shuffle
the answers, then the empty-answer rules (SRV, SOA, NS: NOERROR; otherwise
NXDOMAIN unless the name has any record, which gives NODATA), SOA in
authority for those.

Names are compressed as the original's DNS library packs them: owners, NS
targets and SOA names point at the longest suffix already written with the
same bytes, SRV targets are written in full (later names may point into
them). That is what lets an ANY answer keep as many records beside its SOA
and NS as the original's does within 512 octets.
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
    message,
    pack_v4,
    pack_v6,
)

_ANSWER_TYPES = frozenset((wire.TYPE_A, wire.TYPE_AAAA, wire.TYPE_SRV, wire.TYPE_ANY))


# how a part of an rdata is written (see `_pack`)
_LITERAL = 0
_NAME = 1  # a name, compressed
_TARGET = 2  # an SRV target: written in full, but later names may point into it

_Part = tuple[bytes, int]
# a record to write: owner (uncompressed wire), type + class + TTL, rdata parts
_Logical = tuple[bytes, bytes, tuple[_Part, ...]]


def _pack(comp: wire.NameCompressor, at: int, rec: _Logical) -> bytes:
    """One record written at offset ``at``, its names compressed with ``comp``.

    SRV targets stay uncompressed, as RFC 2782 asks and the original writes
    them; owners and NS / SOA rdata names take pointers.
    """
    owner, head, parts = rec
    o = comp.name(owner, at)
    p = at + len(o) + 10
    out: list[bytes] = []
    for data, mode in parts:
        if mode == _NAME:
            data = comp.name(data, p)
        elif mode == _TARGET:
            comp.remember(data, p)
        out.append(data)
        p += len(data)
    rdata = b"".join(out)
    return o + head + struct.pack(">H", len(rdata)) + rdata


def _authority_logical(rr: bytes, qname: bytes) -> _Logical:
    """A prepacked SOA or NS record (owner the question pointer or a full
    name, rdata names uncompressed) as a record to write again compressed."""
    if rr[0] >= 0xC0:
        owner, o = qname, 2
    else:
        o = wire.walk_name(rr)
        owner = rr[:o]
    head = rr[o : o + 8]
    rdata = rr[o + 10 :]
    n1 = wire.walk_name(rdata)
    if head[:2] == b"\x00\x02":  # NS: one name
        return owner, head, ((rdata, _NAME),)
    n2 = n1 + wire.walk_name(rdata[n1:])  # SOA: MNAME, RNAME, five numbers
    return owner, head, ((rdata[:n1], _NAME), (rdata[n1:n2], _NAME), (rdata[n2:], _LITERAL))


def resolve(
    table: AnswerTable,
    query: wire.Query,
    limit: int,
    opt: bytes,
    rng: random.Random,
) -> tuple[bytes, int]:
    """The reply to an in-domain question and its counter outcome.

    Names are compressed as the original's DNS library compresses them (see
    `wire.NameCompressor`); when the reply exceeds ``limit``, the
    additional section goes, then answers from the end, and the authority
    records are written again against the answers kept.
    """
    rs = table.rs
    ttl = table.ttl
    name = wire.ascii_lower(wire.clean_wild(wire.wire_to_text(query.qname)))
    qtype = query.qtype
    failed = False
    # answers to write, shuffled before packing
    logical: list[_Logical] = []
    glue_hosts: list[tuple[str, bytes]] = []
    if qtype in (wire.TYPE_SRV, wire.TYPE_ANY):
        head = struct.pack(">HH", wire.TYPE_SRV, wire.CLASS_IN) + ttl
        weight = struct.pack(">H", table.settings.srv_weight & 0xFFFF)
        for target in rs.srv.get(name, ()):
            twire = wire.text_to_wire(target.host)
            if twire is None:
                failed = True
                continue
            fixed = b"\x00\x00" + weight + struct.pack(">H", target.port & 0xFFFF)
            logical.append((query.qname, head, ((fixed, _LITERAL), (twire, _TARGET))))
            glue_hosts.append((target.host, twire))
    owner = b""
    if qtype in (wire.TYPE_A, wire.TYPE_AAAA, wire.TYPE_ANY):
        owner = wire.text_to_wire(name) or b""
    if qtype in (wire.TYPE_A, wire.TYPE_ANY):
        head = struct.pack(">HH", wire.TYPE_A, wire.CLASS_IN) + ttl
        for value in rs.a.get(name, ()):
            p4 = pack_v4(value)
            if p4 is None or not owner:
                failed = True
            else:
                logical.append((owner, head, ((p4, _LITERAL),)))
    if qtype in (wire.TYPE_AAAA, wire.TYPE_ANY):
        head = struct.pack(">HH", wire.TYPE_AAAA, wire.CLASS_IN) + ttl
        for value in rs.aaaa.get(name, ()):
            p6 = pack_v6(value)
            if p6 is None or not owner:
                failed = True
            else:
                logical.append((owner, head, ((p6, _LITERAL),)))
    auth_rrs: list[bytes] = []
    if qtype in (wire.TYPE_SOA, wire.TYPE_ANY):
        auth_rrs.append(table.soa_rr)
    if qtype in (wire.TYPE_NS, wire.TYPE_ANY):
        auth_rrs.append(table.ns_rr)
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
        if table.soa_rr not in auth_rrs:  # ANY already has it (the original adds it twice)
            auth_rrs.insert(0, table.soa_rr)
    auth_logical = [_authority_logical(rr, query.qname) for rr in auth_rrs]

    comp = wire.NameCompressor()
    comp.remember(query.qname, wire.HEADER_LEN)
    base = wire.HEADER_LEN + len(query.question) + len(opt)
    first = pos = wire.HEADER_LEN + len(query.question)  # where the answers start
    ans: list[bytes] = []
    ends: list[int] = []
    for rec in logical:
        parts = rec[2]
        if len(parts) == 1:  # A / AAAA: only the owner can be compressed
            data = parts[0][0]
            rr = comp.name(rec[0], pos) + rec[1] + struct.pack(">H", len(data)) + data
        else:
            rr = _pack(comp, pos, rec)
        ans.append(rr)
        pos += len(rr)
        ends.append(pos)
    size_ans = pos - first
    auth = _pack_all(comp, pos, auth_logical)
    add, nadd, glue_failed = _glue(table, comp, pos + sum(map(len, auth)), glue_hosts)
    failed |= glue_failed
    if failed:
        outcome |= OUTCOME_FAILED
    truncated = base + size_ans + sum(map(len, auth)) + len(add) > limit
    if truncated:
        add, nadd = b"", 0
        ans, auth = _cut(comp, ans, ends, auth, auth_logical, base, limit, first)
    reply = message(
        query.ident,
        query.b2,
        query.b3,
        query.question,
        ans,
        auth,
        add,
        nadd,
        opt,
        truncated,
        rcode=rcode,
        ra=table.ra,
        set_tc=table.set_tc,
    )
    return reply, outcome


def _pack_all(comp: wire.NameCompressor, at: int, recs: list[_Logical]) -> list[bytes]:
    out: list[bytes] = []
    for rec in recs:
        rr = _pack(comp, at, rec)
        out.append(rr)
        at += len(rr)
    return out


def _cut(
    comp: wire.NameCompressor,
    ans: list[bytes],
    ends: list[int],
    auth: list[bytes],
    auth_logical: list[_Logical],
    base: int,
    limit: int,
    first: int,
) -> tuple[list[bytes], list[bytes]]:
    """The answers (cut from the end) and authority records that fit in
    ``limit`` without the additional section; ``base`` is the size of the
    rest (header, question, OPT), ``first`` where the answers start.

    The authority records may point into the answers, so they are written
    again for each number of answers tried. With fewer answers they can only
    grow, so the count that fits with all answers' compression is an upper
    bound to start from.
    """
    size_auth = sum(map(len, auth))
    if base + sum(map(len, ans)) + size_auth <= limit:
        return ans, auth
    k, used = 0, base + size_auth
    for rr in ans:
        used += len(rr)
        if used > limit:
            break
        k += 1
    while True:
        start = ends[k - 1] if k else first
        auth = _pack_all(comp.upto(start), start, auth_logical)
        if k == 0 or base + start - first + sum(map(len, auth)) <= limit:
            return ans[:k], auth
        k -= 1


def _glue(
    table: AnswerTable, comp: wire.NameCompressor, at: int, hosts: list[tuple[str, bytes]]
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
            head = struct.pack(">HH", rtype, wire.CLASS_IN) + ttl
            rr = _pack(comp, at, (owner_wire, head, ((packed, _LITERAL),)))
            parts.append(rr)
            at += len(rr)
    return b"".join(parts), len(parts), failed


def badvers(table: AnswerTable, query: wire.Query, payload: int) -> bytes:
    """BADVERS for an EDNS version we do not speak (RFC 6891); the OPT
    offers ``payload`` (``maxUDPPayload``)."""
    flags = wire.reply_flags(query.b2, query.b3, aa=True, tc=False, ra=table.ra, rcode=0)
    return (
        query.ident
        + flags
        + struct.pack(">HHHH", 1, 0, 0, 1)
        + query.question
        + wire.opt_rr(query.edns_do, payload, ext_rcode=wire.RCODE_BADVERS >> 4)
    )
