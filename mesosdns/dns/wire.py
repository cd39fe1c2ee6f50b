"""DNS wire format: the pure, dependency-free part of the hot path.

Header checks before parsing, the question walk, EDNS OPT detection, name
conversions (wire <-> the presentation form the original's DNS library uses)
and reply header flags. Nothing here allocates per query beyond what the
caller asks for, and nothing uses dnslib.
"""

from __future__ import annotations

import functools
import re
import struct
from dataclasses import dataclass
from enum import IntEnum

# Record types and classes this server knows about.
TYPE_A = 1
TYPE_NS = 2
TYPE_SOA = 6
TYPE_AAAA = 28
TYPE_SRV = 33
TYPE_OPT = 41
TYPE_DS = 43
TYPE_TSIG = 250
TYPE_ANY = 255
CLASS_IN = 1

RCODE_NOERROR = 0
RCODE_FORMERR = 1
RCODE_SERVFAIL = 2
RCODE_NXDOMAIN = 3
RCODE_NOTIMP = 4
RCODE_REFUSED = 5
RCODE_BADVERS = 16  # extended RCODE, carried in OPT

HEADER_LEN = 12
MIN_UDP_PAYLOAD = 512
MAX_MESSAGE = 65535
# The default of ``maxUDPPayload``: the cap on every UDP reply (ours and
# forwarded ones), whatever a client advertises, and the payload size our OPT
# record offers. 1232 bytes of DNS fit the IPv6 minimum MTU (1280) with the
# IP and UDP headers, so replies are never fragmented (DNS Flag Day 2020,
# BIND's and Knot's default); a client that gets TC retries over TCP.
DEFAULT_UDP_PAYLOAD = 1232
OPT_RR_LEN = 11
_MAX_POINTER_HOPS = 64


class ParseStatus(IntEnum):
    """Why a message could not be turned into a `Query`."""

    DROP = 0  # too short for a header, or a response (QR set): never answered
    FORMERR = 1  # unreadable question or records
    NOQUESTION = 2  # no question: the original answers SERVFAIL


@dataclass(slots=True)
class Query:
    """A parsed query: the first question and the EDNS data."""

    ident: bytes  # the two ID bytes, as sent
    b2: int  # header byte 2 (QR, opcode, AA, TC, RD)
    b3: int  # header byte 3 (RA, Z, AD, CD, RCODE)
    qname: bytes  # the first question's name, uncompressed wire form, case as asked
    qtype: int
    qclass: int
    question: bytes  # the question section to echo: qname + qtype + qclass
    edns_size: int  # advertised UDP payload size, or -1 without EDNS
    edns_version: int
    edns_do: bool
    # offset of a TSIG record that ends the message as the last additional
    # record; -1: none; -2: a TSIG record elsewhere (RFC 8945: FORMERR)
    tsig_at: int = -1

    @property
    def opcode(self) -> int:
        return (self.b2 >> 3) & 0x0F


def flag_index(b2: int, b3: int) -> int:
    """Index into a `flag_table`: the query's opcode, RD and CD bits."""
    return (b2 & 0x79) | ((b3 & 0x10) << 3)


def reply_flags(b2: int, b3: int, *, aa: bool, tc: bool, ra: bool, rcode: int) -> bytes:
    """Header bytes 2-3 of a reply to a query with header bytes ``b2``, ``b3``.

    QR set, opcode echoed, RD and CD copied for standard queries (as the
    original's DNS library does in ``SetReply``), AD and Z never set.
    """
    opcode = b2 & 0x78
    hi = 0x80 | opcode | (0x04 if aa else 0) | (0x02 if tc else 0)
    lo = (0x80 if ra else 0) | (rcode & 0x0F)
    if opcode == 0:
        hi |= b2 & 0x01
        lo |= b3 & 0x10
    return bytes((hi, lo))


@functools.lru_cache(maxsize=64)
def flag_table(aa: bool, tc: bool, ra: bool, rcode: int) -> tuple[bytes, ...]:
    """All 256 possible reply flag pairs, indexed by `flag_index`."""
    return tuple(
        reply_flags(i & 0x79, (i & 0x80) >> 3, aa=aa, tc=tc, ra=ra, rcode=rcode) for i in range(256)
    )


def counts(qd: int, an: int, ns: int, ar: int) -> bytes:
    return struct.pack(">HHHH", qd, an, ns, ar)


def opt_rr(do: bool, payload: int, ext_rcode: int = 0) -> bytes:
    """Our OPT record: root owner, ``payload`` (the UDP size we accept),
    version 0, DO echoed, no options."""
    return struct.pack(">BHHBBHH", 0, TYPE_OPT, payload, ext_rcode, 0, 0x8000 if do else 0, 0)


def udp_limit(edns_size: int, cap: int) -> int:
    """The size a UDP reply must fit: 512 without EDNS (``edns_size`` < 0),
    else the client's size, raised to 512 and capped at ``cap``
    (``maxUDPPayload``, itself at least 512)."""
    if edns_size < 0:
        return MIN_UDP_PAYLOAD
    return min(max(edns_size, MIN_UDP_PAYLOAD), cap)


def read_name(data: bytes, off: int) -> tuple[bytes, int]:
    """Read a (possibly compressed) name at ``off``.

    Returns the uncompressed wire form (case kept) and the offset after the
    name in the message. Raises ``ValueError`` on anything malformed.
    """
    out = bytearray()
    end = -1
    hops = 0
    n = len(data)
    while True:
        if off >= n:
            raise ValueError("name runs past the end")
        length = data[off]
        if length == 0:
            out.append(0)
            if end < 0:
                end = off + 1
            break
        kind = length & 0xC0
        if kind == 0xC0:
            if off + 1 >= n:
                raise ValueError("truncated pointer")
            target = ((length & 0x3F) << 8) | data[off + 1]
            if end < 0:
                end = off + 2
            hops += 1
            if hops > _MAX_POINTER_HOPS or target >= off:
                raise ValueError("bad compression pointer")
            off = target
            continue
        if kind:
            raise ValueError("bad label type")
        if off + 1 + length > n:
            raise ValueError("label runs past the end")
        out += data[off : off + 1 + length]
        off += 1 + length
        if len(out) > 254:
            raise ValueError("name too long")
    return bytes(out), end


def _skip_rr(data: bytes, off: int) -> tuple[int, int, int]:
    """Skip one resource record; return (type, offset of its fixed part, end)."""
    _, off = read_name(data, off)
    if off + 10 > len(data):
        raise ValueError("truncated record")
    rtype = (data[off] << 8) | data[off + 1]
    rdlen = (data[off + 8] << 8) | data[off + 9]
    end = off + 10 + rdlen
    if end > len(data):
        raise ValueError("truncated rdata")
    return rtype, off, end


def parse_query(data: bytes) -> Query | ParseStatus:
    """Parse a query as the original's server does, to decide how to answer.

    Short messages and responses are dropped. Header counts larger than the
    message are tolerated (a record is only required when bytes remain), as
    the original's library does; anything unreadable is FORMERR. Only the
    first question is kept.
    """
    n = len(data)
    if n < HEADER_LEN or data[2] & 0x80:
        return ParseStatus.DROP
    qdcount = (data[4] << 8) | data[5]
    others = (
        ((data[6] << 8) | data[7]),
        ((data[8] << 8) | data[9]),
        ((data[10] << 8) | data[11]),
    )
    off = HEADER_LEN
    first: tuple[bytes, int, int, bytes] | None = None
    edns_size, edns_version, edns_do, opts = -1, 0, False, 0
    tsig_at = -1
    try:
        for _ in range(qdcount):
            if off >= n:
                break
            start = off
            name, off = read_name(data, off)
            if off + 4 > n:
                raise ValueError("truncated question")
            qtype = (data[off] << 8) | data[off + 1]
            qclass = (data[off + 2] << 8) | data[off + 3]
            off += 4
            if first is None:
                question = (
                    data[start:off] if off - start == len(name) + 4 else name + data[off - 4 : off]
                )
                first = (name, qtype, qclass, question)
        for section, count in enumerate(others):
            for i in range(count):
                if off >= n:
                    break
                rtype, fixed, end = _skip_rr(data, off)
                if rtype == TYPE_TSIG:
                    last = section == 2 and i == count - 1 and end == n and tsig_at == -1
                    tsig_at = off if last else -2
                if section == 2 and rtype == TYPE_OPT:
                    opts += 1
                    edns_size = (data[fixed + 2] << 8) | data[fixed + 3]
                    edns_version = data[fixed + 5]
                    edns_do = bool(data[fixed + 6] & 0x80)
                off = end
    except ValueError:
        return ParseStatus.FORMERR
    if opts > 1:
        return ParseStatus.FORMERR
    if first is None:
        return ParseStatus.NOQUESTION
    name, qtype, qclass, question = first
    return Query(
        ident=data[0:2],
        b2=data[2],
        b3=data[3],
        qname=name,
        qtype=qtype,
        qclass=qclass,
        question=question,
        edns_size=edns_size,
        edns_version=edns_version,
        edns_do=edns_do,
        tsig_at=tsig_at,
    )


def walk_name(name: bytes) -> int:
    """Validate an uncompressed wire name; return its length, or -1 if invalid."""
    p = 0
    n = len(name)
    while p < n:
        length = name[p]
        if length == 0:
            return p + 1
        if length > 63:
            return -1
        p += length + 1
    return -1


def label_offsets(name: bytes) -> list[int]:
    """Offsets of every label of a valid wire name, the root's included."""
    out = []
    p = 0
    while True:
        out.append(p)
        length = name[p]
        if length == 0:
            return out
        p += length + 1


class NameCompressor:
    """Names of a message being written, compressed as the original's DNS
    library does when it packs a reply: a name becomes a pointer to the
    longest label-aligned suffix of it written earlier with the same bytes
    (so compression never maps one case onto another), its labels before
    that written out and remembered for later names.

    ``cut``: only names written before that offset may be pointed at, for a
    message whose records after it are being dropped.
    """

    __slots__ = ("seen",)

    def __init__(self, seen: dict[bytes, int] | None = None) -> None:
        self.seen: dict[bytes, int] = {} if seen is None else seen

    def upto(self, cut: int) -> NameCompressor:
        """A copy that knows only the names written before offset ``cut``."""
        return NameCompressor({k: v for k, v in self.seen.items() if v < cut})

    def remember(self, name: bytes, at: int) -> None:
        """Note every suffix of ``name``, written in full at offset ``at``."""
        offs = label_offsets(name)
        offs.pop()  # the root: never pointed at
        self._note(name, at, offs)

    def _note(self, name: bytes, at: int, offs: list[int]) -> None:
        seen = self.seen
        for off in offs:
            if at + off < 0x4000:  # 14 bits of pointer
                seen.setdefault(name[off:], at + off)

    def name(self, name: bytes, at: int) -> bytes:
        """``name`` as written at offset ``at``: pointer to a known suffix when
        there is one (the root alone is never replaced: a pointer is longer)."""
        seen = self.seen
        p = seen.get(name)
        if p is not None:  # the whole name (often: owners)
            return bytes((0xC0 | (p >> 8), p & 0xFF))
        offs = label_offsets(name)
        offs.pop()
        for i, off in enumerate(offs):
            p = seen.get(name[off:])
            if p is not None:
                self._note(name, at, offs[:i])
                return name[:off] + bytes((0xC0 | (p >> 8), p & 0xFF))
        self._note(name, at, offs)
        return name


def in_zone(name: bytes, zone: bytes) -> bool:
    """Is the (lower-cased) wire ``name`` equal to or below wire ``zone``?"""
    k = len(name) - len(zone)
    if k < 0 or not name.endswith(zone):
        return False
    if k == 0:
        return True
    p = 0
    while p < k:
        p += name[p] + 1
    return p == k


# Characters the original's DNS library escapes with a backslash in names.
_ESCAPED = frozenset(b'.()";@\\ ')


def wire_to_text(name: bytes) -> str:
    """Presentation form of a wire name, as the original's DNS library prints it.

    Dots and special characters inside labels are backslash-escaped, bytes
    outside printable ASCII become ``\\DDD``. The root is ``.``.
    """
    if name == b"\x00":
        return "."
    parts: list[str] = []
    p = 0
    while name[p]:
        length = name[p]
        label = name[p + 1 : p + 1 + length]
        p += 1 + length
        if all(33 <= b < 127 and b not in _ESCAPED for b in label):
            parts.append(label.decode("ascii"))
            continue
        chars = []
        for b in label:
            if b in _ESCAPED:
                chars.append("\\" + chr(b))
            elif b < 32 or b > 126:
                chars.append(f"\\{b:03d}")
            else:
                chars.append(chr(b))
        parts.append("".join(chars))
    return ".".join(parts) + "."


def text_to_wire(text: str) -> bytes | None:
    """Wire form of a presentation name (``\\X`` and ``\\DDD`` escapes allowed).

    A missing trailing dot is added. Returns None for a name that cannot be
    encoded: an empty label, a label over 63 bytes, a name over 255 bytes.
    Characters outside ASCII are encoded as UTF-8 bytes.
    """
    if text in (".", ""):
        return b"\x00"
    if "\\" not in text:
        return _plain_to_wire(text)
    raw = text.encode("utf-8")
    out = bytearray()
    label = bytearray()
    i = 0
    n = len(raw)
    ended = False
    while i < n:
        c = raw[i]
        if c == 0x5C:  # backslash
            if i + 4 <= n and raw[i + 1 : i + 4].isdigit():
                value = int(raw[i + 1 : i + 4])
                if value > 255:
                    return None
                label.append(value)
                i += 4
                continue
            if i + 1 >= n:
                return None
            label.append(raw[i + 1])
            i += 2
            continue
        if c == 0x2E:  # dot
            if not label or len(label) > 63:
                return None
            out.append(len(label))
            out += label
            label.clear()
            i += 1
            ended = i == n
            continue
        label.append(c)
        i += 1
    if not ended:
        if not label or len(label) > 63:
            return None
        out.append(len(label))
        out += label
    out.append(0)
    if len(out) > 255:
        return None
    return bytes(out)


def _plain_to_wire(text: str) -> bytes | None:
    """`text_to_wire` for a name without escapes."""
    out = bytearray()
    for label in text[:-1].split(".") if text.endswith(".") else text.split("."):
        raw = label.encode("utf-8")
        if not raw or len(raw) > 63:
            return None
        out.append(len(raw))
        out += raw
    out.append(0)
    return bytes(out) if len(out) <= 255 else None


# Bytes a record name may hold to be matched byte-for-byte by a lower-cased
# question: printable ASCII that the original's library does not escape and
# that is not upper case.
_PLAIN = frozenset(b for b in range(33, 127) if b not in _ESCAPED and not (0x41 <= b <= 0x5A))


def plain_key_wire(name: str) -> bytes | None:
    """Wire form of a record-set key that a DNS question can match, else None.

    The original lower-cases the question's presentation form, removes
    ``.*``, and looks the result up as a key, as-is. So a key can match only if
    it is lower case, free of characters that would appear escaped, and holds
    no ``.*``; it also has to be a valid DNS name (no empty label, labels of at
    most 63 bytes, at most 255 bytes in all).

    The first label is checked here; the rest of the name is one of few
    (the framework's, the domain's: ``marathon.mesos.``), so its wire form
    is looked up, made once by this same rule (`_PLAIN_TAILS`).
    """
    if len(name) > 254 or ".*" in name:  # over 255 octets in wire form
        return None
    m = _PLAIN_HEAD(name)
    if m is None:
        return None
    end = m.end()
    rest = name[end:]
    tail = _PLAIN_TAILS.get(rest)
    if tail is None:
        if len(_PLAIN_TAILS) > 100_000:
            _PLAIN_TAILS.clear()
        tail = _PLAIN_TAILS[rest] = (plain_key_wire(rest) or b"") if rest else b"\x00"
    if not tail or end + len(tail) > 255:
        return None
    return _LABEL_LENGTH[end - 1] + name[: end - 1].encode("ascii") + tail


# a first label a question can match, with the dot after it (ASCII only)
_PLAIN_HEAD = re.compile(
    "[" + "".join(re.escape(chr(b)) for b in sorted(_PLAIN)) + "]{1,63}\\."
).match
# the rest of a name -> its wire form (b"": no question can match it)
_PLAIN_TAILS: dict[str, bytes] = {}
_LABEL_LENGTH = [bytes((n,)) for n in range(64)]


def clean_wild(text: str) -> str:
    """Remove every ``.*`` from a presentation name, as the original does."""
    return text.replace(".*", "") if ".*" in text else text


def ascii_lower(text: str) -> str:
    """Lower-case ASCII letters only (escapes stay as they are)."""
    return text.translate(_LOWER)


_LOWER = {c: c + 32 for c in range(0x41, 0x5B)}


def header_reply(ident: bytes, flags: bytes, qd: int, an: int, ns: int, ar: int) -> bytes:
    return ident + flags + struct.pack(">HHHH", qd, an, ns, ar)


def error_reply(data: bytes, rcode: int, question: bytes | None, *, opt: bytes = b"") -> bytes:
    """A reply without records, as the original's ``SetRcode`` builds it.

    ID and opcode echoed, RD and CD copied for standard queries, AA and RA
    clear, the first question echoed when there is one.
    """
    flags = reply_flags(data[2], data[3], aa=False, tc=False, ra=False, rcode=rcode)
    body = question or b""
    return (
        data[0:2]
        + flags
        + struct.pack(">HHHH", 1 if question else 0, 0, 0, 1 if opt else 0)
        + body
        + opt
    )


def formerr_reply(data: bytes) -> bytes:
    """FORMERR as the original's server sends for an unreadable message.

    Only the ID is kept: opcode QUERY, QR set, no question.
    """
    return data[0:2] + b"\x80\x01" + b"\x00" * 8
