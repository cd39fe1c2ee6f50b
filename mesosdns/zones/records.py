"""Zone records: names, TTLs and record data in presentation and wire form.

One parser for the record data of every source (the config's ``records``,
imported zone files, expanded templates): tokens in, wire rdata out, so a
record is checked and packed once, when it is loaded (or, for templates,
once per refresh). Names inside record data are written uncompressed.

Supported types: SOA, NS, MX, CNAME, A, AAAA, PTR, TXT, SRV.

Pure: no I/O.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import struct
from dataclasses import dataclass
from typing import Final

from mesosdns.dns import wire

__all__ = [
    "RR",
    "RTYPES",
    "Token",
    "absolute",
    "is_absolute",
    "name_wire",
    "parse_rdata",
    "parse_ttl",
    "txt_tokens",
]

RTYPES: Final[dict[str, int]] = {  # in the order of the documentation
    "SOA": 6,
    "NS": 2,
    "MX": 15,
    "CNAME": 5,
    "A": 1,
    "AAAA": 28,
    "PTR": 12,
    "TXT": 16,
    "SRV": 33,
}
TYPE_NAMES: Final[dict[int, str]] = {code: name for name, code in RTYPES.items()}
MAX_TTL: Final = 2**31 - 1
_TTL_RE: Final = re.compile(r"(?:[0-9]+[smhdwSMHDW]?)+")
_TTL_PART_RE: Final = re.compile(r"([0-9]+)([smhdwSMHDW]?)")
_UNITS: Final = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


@dataclass(frozen=True, slots=True)
class Token:
    """One word of a record line; ``quoted`` when it was a "quoted string"."""

    text: str
    quoted: bool = False


@dataclass(frozen=True, slots=True)
class RR:
    """One record of a zone.

    ``name`` is absolute (trailing dot), case as written; ``ttl`` 0 means the
    zone's TTL; ``rdata`` is the wire form; ``text`` the presentation form of
    the data; ``target`` the (absolute) target of a CNAME, for chasing.
    """

    name: str
    rtype: str
    ttl: int
    rdata: bytes
    text: str
    target: str = ""

    @property
    def code(self) -> int:
        return RTYPES[self.rtype]

    def __str__(self) -> str:
        return f"{self.name} {self.ttl} IN {self.rtype} {self.text}"


def is_absolute(name: str) -> bool:
    """Does the presentation name end with an unescaped dot?"""
    if not name.endswith("."):
        return False
    slashes = len(name) - 1 - len(name[:-1].rstrip("\\"))
    return slashes % 2 == 0


def absolute(name: str, origin: str) -> str:
    """``name`` made absolute: ``@`` is the origin, a relative name gets it appended.

    ``origin`` is absolute. Raises ValueError for a name that is not a valid
    DNS name (empty label, label over 63 or name over 255 octets, blanks).
    """
    if name == "@":
        full = origin
    elif is_absolute(name):
        full = name
    else:
        full = name + "." + origin if origin != "." else name + "."
    name_wire(full)
    return full


def name_wire(name: str) -> bytes:
    """The wire form of an absolute presentation name (case kept)."""
    if not name or any(c.isspace() or ord(c) < 32 for c in name):
        raise ValueError(f"invalid domain name {name!r}")
    if name != "." and not is_absolute(name):
        raise ValueError(f"domain name {name!r} is not absolute")
    if name.startswith(".") and name != ".":
        raise ValueError(f"invalid domain name {name!r}")
    out = wire.text_to_wire(name)
    if out is None:
        raise ValueError(f"invalid domain name {name!r}")
    return out


def parse_ttl(text: str) -> int:
    """A TTL: seconds, or BIND's units (``1h30m``, ``2d``, ``1w``)."""
    if not _TTL_RE.fullmatch(text):
        raise ValueError(f"invalid TTL {text!r}")
    total = sum(int(n) * _UNITS[u.lower()] for n, u in _TTL_PART_RE.findall(text))
    if total > MAX_TTL:
        raise ValueError(f"TTL {text!r} exceeds {MAX_TTL}")
    return total


def _uint(text: str, bits: int, what: str) -> int:
    if not text.isdigit() or int(text) >= 1 << bits:
        raise ValueError(f"invalid {what} {text!r} (0..{(1 << bits) - 1})")
    return int(text)


def _uint32_time(text: str, what: str) -> int:
    try:
        return parse_ttl(text) if not text.isdigit() else _uint(text, 32, what)
    except ValueError:
        raise ValueError(f"invalid {what} {text!r}") from None


def char_string(token: Token) -> bytes:
    """A <character-string>: escapes (``\\X``, ``\\DDD``) decoded, at most 255 octets."""
    raw = token.text
    if "\\" not in raw:
        out = raw.encode("utf-8")
    else:
        buf = bytearray()
        i = 0
        while i < len(raw):
            c = raw[i]
            if c == "\\" and i + 1 < len(raw):
                if raw[i + 1 : i + 4].isdigit() and len(raw[i + 1 : i + 4]) == 3:
                    value = int(raw[i + 1 : i + 4])
                    if value > 255:
                        raise ValueError(f"invalid escape \\{raw[i + 1 : i + 4]}")
                    buf.append(value)
                    i += 4
                    continue
                buf += raw[i + 1].encode("utf-8")
                i += 2
                continue
            buf += c.encode("utf-8")
            i += 1
        out = bytes(buf)
    if len(out) > 255:
        raise ValueError(f"character string of {len(out)} octets (at most 255)")
    return out


def txt_tokens(value: str) -> list[Token]:
    """A config TXT value as tokens: the whole text as one string, cut in
    255-octet pieces (a value starting with a quote is tokenized instead, by
    the caller)."""
    raw = value.encode("utf-8")
    pieces = [raw[i : i + 255] for i in range(0, len(raw), 255)] or [b""]
    return [Token(_escape(p), True) for p in pieces]


def _escape(data: bytes) -> str:
    out = []
    for b in data:
        if b in (0x22, 0x5C):
            out.append("\\" + chr(b))
        elif 32 <= b < 127:
            out.append(chr(b))
        else:
            out.append(f"\\{b:03d}")
    return "".join(out)


def _quote(data: bytes) -> str:
    return '"' + _escape(data) + '"'


def _expect(tokens: list[Token], count: int, shape: str) -> list[str]:
    if len(tokens) != count:
        raise ValueError(f"expected {shape}")
    return [t.text for t in tokens]


def parse_rdata(rtype: str, tokens: list[Token], origin: str) -> tuple[bytes, str, str]:
    """Wire rdata, presentation text and CNAME target of one record.

    Names in the data are made absolute against ``origin``. Raises
    ValueError with the reason.
    """
    if not tokens:
        raise ValueError("missing value")
    if rtype == "TXT":
        strings = [char_string(t) for t in tokens]
        return b"".join(bytes((len(s),)) + s for s in strings), " ".join(map(_quote, strings)), ""
    if any(t.quoted for t in tokens):
        raise ValueError("unexpected quoted string")
    if rtype == "A":
        (text,) = _expect(tokens, 1, "an IPv4 address")
        try:
            return socket.inet_pton(socket.AF_INET, text), text, ""
        except OSError:
            raise ValueError(f"invalid IPv4 address {text!r}") from None
    if rtype == "AAAA":
        (text,) = _expect(tokens, 1, "an IPv6 address")
        try:
            ip = ipaddress.IPv6Address(text)
        except ValueError:
            raise ValueError(f"invalid IPv6 address {text!r}") from None
        return ip.packed, ip.compressed, ""
    if rtype in ("CNAME", "NS", "PTR"):
        (text,) = _expect(tokens, 1, "a domain name")
        target = absolute(text, origin)
        return name_wire(target), target, target if rtype == "CNAME" else ""
    if rtype == "MX":
        pref, host = _expect(tokens, 2, "'preference exchange'")
        target = absolute(host, origin)
        return (
            struct.pack(">H", _uint(pref, 16, "preference")) + name_wire(target),
            f"{int(pref)} {target}",
            "",
        )
    if rtype == "SRV":
        prio, weight, port, host = _expect(tokens, 4, "'priority weight port target'")
        nums = [_uint(prio, 16, "priority"), _uint(weight, 16, "weight"), _uint(port, 16, "port")]
        target = absolute(host, origin)
        return (
            struct.pack(">HHH", *nums) + name_wire(target),
            f"{nums[0]} {nums[1]} {nums[2]} {target}",
            "",
        )
    if rtype == "SOA":
        fields = _expect(tokens, 7, "'mname rname serial refresh retry expire minimum'")
        mname, rname = absolute(fields[0], origin), absolute(fields[1], origin)
        serial = _uint(fields[2], 32, "serial")
        times = [_uint32_time(t, w) for t, w in zip(fields[3:], _SOA_TIMES, strict=True)]
        rdata = name_wire(mname) + name_wire(rname) + struct.pack(">IIIII", serial, *times)
        return rdata, f"{mname} {rname} {serial} " + " ".join(map(str, times)), ""
    raise ValueError(f"unsupported record type {rtype!r}")


_SOA_TIMES: Final = ("refresh", "retry", "expire", "minimum")
