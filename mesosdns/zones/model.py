"""Operator zones: the validated model of the config's ``zones`` list.

``load_zones`` turns the raw JSON objects into frozen `Zone` values (reading
the zone files they import) and reports every problem as
``zones[i].field: reason`` (``zones[i].records[j].field: reason`` for a
record), the way every config problem is reported. Keys are matched
case-insensitively, as the rest of the config; unknown keys are warnings.

A zone (see docs/zones.md for the full format)::

    {"name": "corp", "origin": "corp.example.", "priority": 10, "ttl": 300,
     "continue": false, "filters": [{"type": "pktsrc", "filter": "10.1.0.0/16"}],
     "forwarders": ["10.1.0.2"], "file": "zones/corp.zone",
     "params": {"dns-domain": "apps.corp.example"},
     "records": [{"type": "A", "name": "www", "value": "10.1.2.3", "ttl": 0},
                 {"type": "A", "name": "eval:{agent.hostname}", "value": "{agent.ip}"}]}

Pure apart from reading the zone files named in the config.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from mesosdns.dns import wire
from mesosdns.jsonfold import json_type as _type_name
from mesosdns.zones.records import (
    MAX_TTL,
    RR,
    RTYPES,
    TYPE_NAMES,
    absolute,
    parse_rdata,
    txt_tokens,
)
from mesosdns.zones.templates import Template, TemplateError, parse_template
from mesosdns.zones.zonefile import ZoneFileError, parse_zone_text, tokenize

__all__ = [
    "DEFAULT_ZONE_TTL",
    "EVAL_PREFIX",
    "Filter",
    "TemplateRecord",
    "Zone",
    "ZoneLoad",
    "load_zones",
]

DEFAULT_ZONE_TTL: Final = 3600
EVAL_PREFIX: Final = "eval:"
FILTER_TYPES: Final = ("pktsrc",)
_ZONE_KEYS: Final = frozenset(
    {
        "name",
        "description",
        "documentation",
        "meta",
        "origin",
        "priority",
        "ttl",
        "continue",
        "filters",
        "forwarders",
        "records",
        "file",
        "params",
        "autoptr",
    }
)
_RECORD_KEYS: Final = frozenset({"type", "name", "value", "ttl"})
_FILTER_KEYS: Final = frozenset({"type", "filter"})
_INT32: Final = 2**31

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class Filter:
    """A source filter: ``pktsrc`` matches the client's address against a network."""

    kind: str
    network: Network

    def __str__(self) -> str:
        return f"{self.kind} {self.network}"


@dataclass(frozen=True, slots=True)
class TemplateRecord:
    """A record whose name starts with ``eval:``: expanded at every refresh."""

    where: str  # "zones[i].records[j]", for messages
    rtype: str
    name: Template  # without the "eval:" prefix
    value: Template
    ttl: int  # 0: the zone's

    @property
    def objects(self) -> frozenset[str]:
        return self.name.objects | self.value.objects


@dataclass(frozen=True, slots=True)
class Zone:
    """One operator zone, validated. ``ttl`` is effective (0 in the config: 3600)."""

    index: int  # position in the config's list
    name: str
    origin: str  # absolute, lower case
    priority: int = 0
    ttl: int = DEFAULT_ZONE_TTL
    cont: bool = False  # "continue"
    description: str = ""
    filters: tuple[Filter, ...] = ()
    forwarders: tuple[tuple[str, int], ...] = ()
    records: tuple[RR, ...] = ()  # static: the config's and the zone file's
    templates: tuple[TemplateRecord, ...] = ()
    params: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    file: str = ""  # absolute path of the imported zone file, or ""
    auto_ptr: bool = True  # PTR records for the zone's A and AAAA records

    @property
    def where(self) -> str:
        return f"zones[{self.index}]"

    @property
    def label(self) -> str:
        return f"zones[{self.index}] ({self.name})"


@dataclass
class ZoneLoad:
    """The result of `load_zones`: zones in config order, problems, warnings."""

    zones: tuple[Zone, ...] = ()
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


class _Problem(Exception):
    """A field's value is invalid (args: field path, reason)."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(path, reason)
        self.path = path
        self.reason = reason


def load_zones(
    raw: Sequence[object],
    *,
    base_dir: str = "",
    domains: Sequence[str] = (),
    key: str = "zones",
) -> ZoneLoad:
    """Validate the config's zones; read the zone files they import.

    ``base_dir`` resolves relative ``file`` paths (the config file's
    directory); ``domains`` are the cluster domain and its aliases (an origin
    at or under them could never answer); ``key`` is how the config spelled
    ``zones``, for the messages.
    """
    out = ZoneLoad()
    names: dict[str, int] = {}
    zones: list[Zone] = []
    for i, item in enumerate(raw):
        checker = _ZoneChecker(i, f"{key}[{i}]", base_dir, domains, out)
        zone = checker.run(item)
        if zone is None:
            continue
        if zone.name in names:
            out.problems.append(
                f"{key}[{i}].name: duplicate zone name {zone.name!r} "
                f"(also {key}[{names[zone.name]}])"
            )
        names.setdefault(zone.name, i)
        zones.append(zone)
    out.zones = tuple(zones)
    return out


def _fold(
    item: Mapping[str, Any], known: frozenset[str], where: str, out: ZoneLoad
) -> dict[str, Any]:
    """Keys lower-cased (Go's case-insensitive match); unknown keys warned about."""
    found: dict[str, Any] = {}
    for k, v in item.items():
        folded = k.lower()
        if folded not in known:
            out.warnings.append(f"{where}.{k}: unknown key, ignored")
            continue
        found[folded] = v
    return found


class _ZoneChecker:
    """Validates one zone object, collecting every problem."""

    def __init__(
        self, index: int, where: str, base_dir: str, domains: Sequence[str], out: ZoneLoad
    ) -> None:
        self.index = index
        self.where = where
        self.base_dir = base_dir
        self.domains = [d.strip(".").lower() + "." for d in domains if d.strip(".")]
        self.out = out
        self.bad = False

    def problem(self, path: str, reason: str) -> None:
        self.bad = True
        self.out.problems.append(f"{self.where}.{path}: {reason}")

    def run(self, item: object) -> Zone | None:
        if not isinstance(item, Mapping):
            self.bad = True
            self.out.problems.append(f"{self.where}: expected an object, got {_type_name(item)}")
            return None
        d = _fold(item, _ZONE_KEYS, self.where, self.out)
        name = self.string(d, "name", required=True)
        origin = self.origin(d, name)
        params = self.params(d.get("params"))
        zone = Zone(
            index=self.index,
            name=name,
            origin=origin,
            priority=self.integer(d, "priority", -_INT32, _INT32 - 1, 0),
            ttl=self.integer(d, "ttl", 0, MAX_TTL, 0) or DEFAULT_ZONE_TTL,
            cont=self.boolean(d, "continue"),
            auto_ptr=self.boolean(d, "autoptr", True),
            description=self.string(d, "description"),
            filters=self.filters(d.get("filters")),
            forwarders=self.forwarders(d.get("forwarders")),
            params=MappingProxyType(params),
        )
        records, templates = self.records(d.get("records"), origin, params)
        path = self.string(d, "file")
        if path and origin:
            path = os.path.normpath(os.path.join(self.base_dir, os.path.expanduser(path)))
            records.extend(self.zone_file(path, origin))
        if origin:
            self.check_static(records)
        if self.bad:
            return None
        return Zone(
            **{
                f: getattr(zone, f)
                for f in Zone.__dataclass_fields__
                if f not in ("records", "templates", "file")
            },
            records=tuple(records),
            templates=tuple(templates),
            file=path,
        )

    # -- scalar fields ----------------------------------------------------

    def string(self, d: dict[str, Any], key: str, *, required: bool = False) -> str:
        value = d.get(key)
        if value is None:
            if required:
                self.problem(key, "required")
            return ""
        if not isinstance(value, str):
            self.problem(key, f"expected a string, got {_type_name(value)}")
            return ""
        if required and not value.strip():
            self.problem(key, "must not be empty")
        return value

    def integer(self, d: dict[str, Any], key: str, lo: int, hi: int, default: int) -> int:
        value = d.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.problem(key, f"expected an integer, got {_type_name(value)}")
            return default
        if isinstance(value, float) and not value.is_integer():
            self.problem(key, f"expected an integer, got {value}")
            return default
        if not lo <= value <= hi:
            self.problem(key, f"{int(value)} is out of range ({lo}..{hi})")
            return default
        return int(value)

    def boolean(self, d: dict[str, Any], key: str, default: bool = False) -> bool:
        value = d.get(key)
        if value is None:
            return default
        if not isinstance(value, bool):
            self.problem(key, f"expected true or false, got {_type_name(value)}")
            return False
        return value

    def origin(self, d: dict[str, Any], name: str) -> str:
        """The origin, absolute and lower case ("" when invalid)."""
        given = d.get("origin")
        if given is None:
            if not name:
                return ""
            given = name  # the origin defaults to the zone's name
        elif not isinstance(given, str):
            self.problem("origin", f"expected a string, got {_type_name(given)}")
            return ""
        text = given.strip()
        try:
            origin = absolute(text if text.endswith(".") else text + ".", ".").lower()
        except ValueError:
            if "origin" in d:
                self.problem("origin", f"{given!r} is not a domain name")
            else:
                self.problem("origin", f"required (the name {name!r} is not a domain name)")
            return ""
        for domain in self.domains:
            if ("." + origin).endswith("." + domain):
                self.problem(
                    "origin",
                    f"{origin!r} is inside the cluster domain {domain!r}, "
                    "which always answers first",
                )
                return ""
        return origin

    def params(self, value: object) -> dict[str, str]:
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            self.problem("params", f"expected an object of strings, got {_type_name(value)}")
            return {}
        out: dict[str, str] = {}
        for k, v in value.items():
            if not isinstance(v, str):
                self.problem(f"params.{k}", f"expected a string, got {_type_name(v)}")
                continue
            out[k] = v
        return out

    def filters(self, value: object) -> tuple[Filter, ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.problem("filters", f"expected an array of objects, got {_type_name(value)}")
            return ()
        found: list[Filter] = []
        for j, item in enumerate(value):
            path = f"filters[{j}]"
            if not isinstance(item, Mapping):
                self.problem(path, f"expected an object, got {_type_name(item)}")
                continue
            d = _fold(item, _FILTER_KEYS, f"{self.where}.{path}", self.out)
            kind = d.get("type")
            if not isinstance(kind, str) or kind.lower() not in FILTER_TYPES:
                self.problem(
                    f"{path}.type", f"must be one of {', '.join(FILTER_TYPES)}; got {kind!r}"
                )
                continue
            text = d.get("filter")
            if not isinstance(text, str):
                self.problem(f"{path}.filter", f"expected a CIDR string, got {_type_name(text)}")
                continue
            try:
                net = ipaddress.ip_network(text.strip(), strict=False)
            except ValueError:
                self.problem(f"{path}.filter", f"{text!r} is not a CIDR or an IP address")
                continue
            found.append(Filter(kind.lower(), net))
        return tuple(found)

    def forwarders(self, value: object) -> tuple[tuple[str, int], ...]:
        if value is None:
            return ()
        if not isinstance(value, list):
            self.problem("forwarders", f"expected an array of strings, got {_type_name(value)}")
            return ()
        found: list[tuple[str, int]] = []
        for j, item in enumerate(value):
            if not isinstance(item, str):
                self.problem(f"forwarders[{j}]", f"expected a string, got {_type_name(item)}")
                continue
            try:
                addr = parse_forwarder(item)
            except ValueError as exc:
                self.problem(f"forwarders[{j}]", f"{item!r}: {exc}")
                continue
            if addr in found:
                self.problem(f"forwarders[{j}]", f"duplicate {item!r}")
                continue
            found.append(addr)
        return tuple(found)

    # -- records ----------------------------------------------------------

    def records(
        self, value: object, origin: str, params: Mapping[str, str]
    ) -> tuple[list[RR], list[TemplateRecord]]:
        rrs: list[RR] = []
        templates: list[TemplateRecord] = []
        if value is None or not origin:  # no origin: the zone has a problem already
            return rrs, templates
        if not isinstance(value, list):
            self.problem("records", f"expected an array of objects, got {_type_name(value)}")
            return rrs, templates
        for j, item in enumerate(value):
            path = f"records[{j}]"
            if not isinstance(item, Mapping):
                self.problem(path, f"expected an object, got {_type_name(item)}")
                continue
            try:
                got = self.record(path, item, origin, params)
            except _Problem as exc:
                self.problem(f"{path}.{exc.path}" if exc.path else path, exc.reason)
                continue
            if isinstance(got, TemplateRecord):
                templates.append(got)
            else:
                rrs.extend(got)
        return rrs, templates

    def record(
        self, path: str, item: Mapping[str, Any], origin: str, params: Mapping[str, str]
    ) -> list[RR] | TemplateRecord:
        d = _fold(item, _RECORD_KEYS, f"{self.where}.{path}", self.out)
        rtype = _record_type(d.get("type"))
        name_value = d.get("name", "@")
        if name_value is None:
            name_value = "@"
        if not isinstance(name_value, str):
            raise _Problem("name", f"expected a string, got {_type_name(name_value)}")
        values = _values(d.get("value"))
        ttl_value = d.get("ttl", 0)
        if (
            isinstance(ttl_value, bool)
            or not isinstance(ttl_value, int)
            or not (0 <= ttl_value <= MAX_TTL)
        ):
            raise _Problem("ttl", f"expected an integer 0..{MAX_TTL}, got {ttl_value!r}")
        if name_value.startswith(EVAL_PREFIX):
            if len(values) != 1:
                raise _Problem("value", "a template record takes one value")
            if rtype == "SOA":
                raise _Problem("type", "SOA records cannot be templates")
            name_t = _template(name_value[len(EVAL_PREFIX) :], params, "name")
            value_t = _template(values[0], params, "value")
            if name_t.is_static and not name_t.static_text().strip():
                raise _Problem("name", "empty template")
            return TemplateRecord(f"{self.where}.{path}", rtype, name_t, value_t, ttl_value)
        name_t = _template(name_value, params, "name")
        if not name_t.is_static:
            raise _Problem("name", f"template fields need a name starting with {EVAL_PREFIX!r}")
        try:
            owner = absolute(name_t.static_text().strip() or "@", origin)
        except ValueError as exc:
            raise _Problem("name", str(exc)) from None
        if not wire.in_zone(_lower_wire(owner), _lower_wire(origin)):
            raise _Problem("name", f"{owner!r} is outside the zone's origin {origin!r}")
        if rtype == "SOA" and owner.lower() != origin:
            raise _Problem("name", f"the SOA record belongs at the origin {origin!r}")
        out = []
        for k, text in enumerate(values):
            value_t = _template(text, params, "value")
            if not value_t.is_static:
                raise _Problem(
                    "value", f"template fields need a name starting with {EVAL_PREFIX!r}"
                )
            try:
                out.append(make_rr(owner, rtype, ttl_value, value_t.static_text(), origin))
            except ValueError as exc:
                where = "value" if len(values) == 1 else f"value[{k}]"
                raise _Problem(where, f"{text!r}: {exc}") from None
        return out

    def zone_file(self, path: str, origin: str) -> list[RR]:
        if "\x00" in path:
            self.problem("file", "contains a NUL byte")
            return []
        try:
            with open(path, encoding="utf-8") as fh:
                text = fh.read()
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            self.problem("file", f"{path!r}: cannot read: {reason}")
            return []
        try:
            parsed = parse_zone_text(text, origin)
        except ZoneFileError as exc:
            self.problem("file", f"{path!r}: {exc}")
            return []
        self.out.warnings.extend(f"{self.where}.file: {path!r}: {w}" for w in parsed.warnings)
        return parsed.records

    def check_static(self, records: list[RR]) -> None:
        """One SOA at most; a CNAME owner has no other records (RFC 1034 3.6.2)."""
        soas = [rr for rr in records if rr.rtype == "SOA"]
        if len(soas) > 1:
            self.problem("records", f"more than one SOA record ({len(soas)}, config and file)")
        types: dict[str, set[str]] = {}
        for rr in records:
            types.setdefault(rr.name.lower(), set()).add(rr.rtype)
        for owner, kinds in types.items():
            if "CNAME" in kinds and len(kinds) > 1:
                self.problem(
                    "records",
                    f"{owner!r} has a CNAME and other records "
                    f"({', '.join(sorted(kinds - {'CNAME'}))})",
                )


def make_rr(owner: str, rtype: str, ttl: int, value: str, origin: str) -> RR:
    """A record from a config value (TXT: the text as one string unless quoted)."""
    if rtype == "TXT" and not value.lstrip().startswith('"'):
        tokens = txt_tokens(value)
    else:
        tokens = tokenize(value)
    rdata, text, target = parse_rdata(rtype, tokens, origin)
    return RR(owner, rtype, ttl, rdata, text, target)


def parse_forwarder(text: str) -> tuple[str, int]:
    """``ip``, ``ip:port``, ``[v6]:port`` or a bare IPv6 -> (canonical ip, port)."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError("malformed address")
        port_text = rest[1:] if rest else "53"
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
    else:
        host, port_text = text, "53"
    try:
        ip = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            "not an IP address" if host == text else f"{host!r} is not an IP address"
        ) from None
    if not port_text.isdigit() or not 0 < int(port_text) < 65536:
        raise ValueError(f"invalid port {port_text!r}")
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return str(ip), int(port_text)


def _lower_wire(name: str) -> bytes:
    return (wire.text_to_wire(name) or b"\x00").lower()


def _record_type(value: object) -> str:
    if isinstance(value, str) and value.strip().upper() in RTYPES:
        return value.strip().upper()
    if isinstance(value, int) and not isinstance(value, bool) and value in TYPE_NAMES:
        return TYPE_NAMES[value]
    raise _Problem("type", f"must be one of {', '.join(RTYPES)}; got {value!r}")


def _values(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return list(value)
    raise _Problem(
        "value", f"expected a string or a non-empty array of strings, got {_type_name(value)}"
    )


def _template(text: str, params: Mapping[str, str], key: str) -> Template:
    try:
        return parse_template(text, params)
    except TemplateError as exc:
        raise _Problem(key, f"{text!r}: {exc}") from None
