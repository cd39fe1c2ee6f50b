"""Import of standard zone files (RFC 1035 section 5, with BIND's usual extensions).

Understood: ``$ORIGIN`` and ``$TTL``; ``@``; relative names; a blank owner
(the previous line's); TTL and class in either order, both optional; TTLs
with units (``1h``, ``2d``, ``1w``); parentheses spanning lines (the
multi-line SOA); comments; quoted strings with ``\\"`` and ``\\DDD`` escapes.
Records of the supported types (SOA, NS, MX, CNAME, A, AAAA, PTR, TXT, SRV)
are imported; records of other types (CAA, DS, DNSKEY, HINFO, SPF, ...) are
skipped with a warning, as are records outside the zone's origin (as BIND
ignores out-of-zone data). ``$INCLUDE`` and ``$GENERATE`` are refused.

A TTL left out is ``$TTL``, else the last TTL written, else the SOA's
MINIMUM (as BIND and dnspython), else 0 (the zone's TTL).

Pure: parses text; reading the file is the caller's business.

Why not dnspython's ``dns.zone.from_text``: it is not a runtime dependency,
it rejects a whole file for one record type it does not know, and its errors
do not fit the config's ``zones[i].field: reason`` reports. The tests check
this parser against dnspython on every fixture.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Final

from mesosdns.dns import wire
from mesosdns.zones.records import RR, RTYPES, Token, absolute, parse_rdata, parse_ttl

__all__ = ["ZoneFile", "ZoneFileError", "parse_zone_text", "tokenize"]

_CLASSES: Final = frozenset({"IN", "CH", "CS", "HS", "NONE", "ANY"})
_TYPE_RE: Final = re.compile(r"[A-Z][A-Z0-9-]*|TYPE[0-9]+")


class ZoneFileError(ValueError):
    """A zone file that cannot be imported; the message starts with ``line N:``."""


@dataclass
class ZoneFile:
    """What a zone file holds for one zone: records and warnings."""

    records: list[RR] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


@dataclass
class _Line:
    number: int
    blank_owner: bool
    tokens: list[Token]


def _logical_lines(text: str) -> Iterator[_Line]:
    """Tokens per logical line (parentheses join physical lines)."""
    tokens: list[Token] = []
    buf: list[str] = []
    depth = 0
    line_no = 1
    start_no = 1
    blank_owner = False
    at_line_start = True
    i, n = 0, len(text)

    def flush_word() -> None:
        if buf:
            tokens.append(Token("".join(buf)))
            buf.clear()

    while i < n:
        c = text[i]
        if at_line_start:
            at_line_start = False
            if depth == 0:
                start_no = line_no
                blank_owner = c in " \t"
        if c == "\n":
            flush_word()
            line_no += 1
            at_line_start = True
            if depth == 0 and tokens:
                yield _Line(start_no, blank_owner, tokens)
                tokens = []
            i += 1
        elif c == ";":
            flush_word()
            end = text.find("\n", i)
            i = n if end < 0 else end
        elif c in " \t\r":
            flush_word()
            i += 1
        elif c == "(":
            flush_word()
            depth += 1
            i += 1
        elif c == ")":
            flush_word()
            depth -= 1
            if depth < 0:
                raise ZoneFileError(f"line {line_no}: unbalanced ')'")
            i += 1
        elif c == '"':
            flush_word()
            i, word = _quoted(text, i + 1, line_no)
            tokens.append(Token(word, True))
        elif c == "\\" and i + 1 < n and text[i + 1] != "\n":
            buf.append(text[i : i + 2])
            i += 2
        else:
            buf.append(c)
            i += 1
    flush_word()
    if depth:
        raise ZoneFileError(f"line {start_no}: unbalanced '(' (not closed at the end of the file)")
    if tokens:
        yield _Line(start_no, blank_owner, tokens)


def tokenize(text: str) -> list[Token]:
    """The tokens of one record value (``"a" "b"``, ``10 mail``): the zone-file
    rules on a single line. Raises ValueError when unbalanced."""
    if "\n" in text:
        raise ValueError("line break in a value")
    try:
        lines = list(_logical_lines(text))
    except ZoneFileError as exc:
        raise ValueError(str(exc).removeprefix("line 1: ")) from None
    return [t for line in lines for t in line.tokens]


def _quoted(text: str, i: int, line_no: int) -> tuple[int, str]:
    """Read a quoted string from ``i`` (after the quote); escapes kept raw."""
    out: list[str] = []
    n = len(text)
    while i < n:
        c = text[i]
        if c == '"':
            return i + 1, "".join(out)
        if c == "\n":
            break
        if c == "\\" and i + 1 < n:
            out.append(text[i : i + 2])
            i += 2
            continue
        out.append(c)
        i += 1
    raise ZoneFileError(f"line {line_no}: unterminated quoted string")


def _is_ttl(token: Token) -> bool:
    if token.quoted:
        return False
    try:
        parse_ttl(token.text)
    except ValueError:
        return False
    return True


class _Parser:
    def __init__(self, zone_origin: str) -> None:
        self.zone_origin = zone_origin
        self.zone_wire = wire.text_to_wire(zone_origin.lower()) or b"\x00"
        self.origin = zone_origin
        self.default_ttl: int | None = None
        self.last_ttl: int | None = None
        self.soa_ttl: int | None = None  # SOA MINIMUM: the default without $TTL
        self.owner: str | None = None
        self.out = ZoneFile()

    def line(self, line: _Line) -> None:
        tokens = line.tokens
        first = tokens[0]
        if not line.blank_owner and not first.quoted and first.text.startswith("$"):
            self.directive(first.text.upper(), tokens[1:])
            return
        if line.blank_owner:
            if self.owner is None:
                raise ValueError("no owner name (the first record needs one)")
            owner = self.owner
        else:
            owner = absolute(first.text, self.origin)
            tokens = tokens[1:]
        self.owner = owner
        ttl: int | None = None
        k = 0
        while k < len(tokens) and k < 2:
            t = tokens[k]
            word = t.text.upper()
            if ttl is None and _is_ttl(t):
                ttl = parse_ttl(t.text)
            elif word in _CLASSES and not t.quoted:
                if word != "IN":
                    raise ValueError(f"class {t.text} is not supported (only IN)")
            else:
                break
            k += 1
        if k >= len(tokens):
            raise ValueError("missing record type")
        rtype = tokens[k].text.upper()
        data = tokens[k + 1 :]
        if ttl is not None:
            self.last_ttl = ttl
        if rtype not in RTYPES:
            if tokens[k].quoted or not _TYPE_RE.fullmatch(rtype):
                raise ValueError(f"invalid record type {tokens[k].text!r}")
            self.warn(line, f"record type {rtype} is not supported; {owner} {rtype} skipped")
            return
        rdata, text, target = parse_rdata(rtype, data, self.origin)
        if rtype == "SOA" and self.soa_ttl is None:
            self.soa_ttl = int.from_bytes(rdata[-4:], "big")
        if ttl is None:
            ttl = self.implicit_ttl()
        lowner = wire.text_to_wire(owner.lower()) or b""
        if not wire.in_zone(lowner, self.zone_wire):
            self.warn(line, f"{owner} is outside the zone {self.zone_origin}; skipped")
            return
        self.out.records.append(RR(owner, rtype, ttl, rdata, text, target))

    def implicit_ttl(self) -> int:
        """As BIND and dnspython: ``$TTL``, else the last TTL written, else the
        SOA's MINIMUM, else 0 (the zone's TTL)."""
        for ttl in (self.default_ttl, self.last_ttl, self.soa_ttl):
            if ttl is not None:
                return ttl
        return 0

    def directive(self, name: str, args: list[Token]) -> None:
        if name == "$ORIGIN":
            if len(args) != 1:
                raise ValueError("$ORIGIN takes one domain name")
            self.origin = absolute(args[0].text, self.origin)
        elif name == "$TTL":
            if len(args) != 1:
                raise ValueError("$TTL takes one TTL")
            self.default_ttl = parse_ttl(args[0].text)
        elif name in ("$INCLUDE", "$GENERATE"):
            raise ValueError(f"{name} is not supported")
        else:
            raise ValueError(f"unknown directive {name}")

    def warn(self, line: _Line, message: str) -> None:
        self.out.warnings.append(f"line {line.number}: {message}")


def parse_zone_text(text: str, origin: str) -> ZoneFile:
    """Parse a zone file for the zone ``origin`` (absolute; the initial ``$ORIGIN``).

    Raises ZoneFileError (``line N: reason``) at the first error.
    """
    parser = _Parser(origin)
    for line in _logical_lines(text):
        try:
            parser.line(line)
        except ZoneFileError:
            raise
        except ValueError as exc:
            raise ZoneFileError(f"line {line.number}: {exc}") from None
    return parser.out
