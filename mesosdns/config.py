"""The configuration: the original's ``config.json`` as a validated, frozen value.

Keys are matched as Go's ``encoding/json`` matches them against the original's
``Config`` struct: case-insensitively (``refreshSeconds``, ``RefreshSeconds`` and
``REFRESHSECONDS`` are one key).  Types are checked as Go's decoder checks them
(a string where an integer belongs is an error, JSON ``null`` leaves a scalar at
its default and empties a list or a map), ranges as the Go field types and the
original's validation allow.  Unknown keys are warnings, never errors.  Every
problem is collected and raised together as ``ConfigError(["key: reason", ...])``
with the key as written in the file.

Deliberate differences from the original, all stricter and reported up front
instead of failing later: ``refreshSeconds`` and ``timeout`` must be positive
(the original panics or misbehaves), ``listener``/``HTTPListener`` must be IP
literals (an empty one means ``0.0.0.0``), a master needs a non-empty host, and
a ``zk`` URL must start with ``zk://`` and name at least one server.
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import re
import ssl
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from mesosdns.errors import ConfigError
from mesosdns.state.iam import read_iam_config
from mesosdns.zones.model import load_zones  # operator zones

__all__ = [
    "DEFAULT_ALLOW_RECURSION",
    "Config",
    "MesosCredentials",
    "ZkURL",
    "is_valid_domain",
    "load_config",
    "parse_config",
    "parse_zk_url",
    "split_host_port",
    "split_resolver",
]

DEFAULT_ALLOW_RECURSION: Final = (
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fc00::/7",
    "fe80::/10",
)
IP_SOURCES: Final = frozenset({"host", "docker", "mesos", "netinfo"})
AUTH_MECHANISMS: Final = ("", "basic", "iam")
STATE_SOURCES: Final = ("poll", "stream")
REDACTED: Final = "******"
RESOLV_CONF: Final = "/etc/resolv.conf"

_INT32_MAX: Final = 2**31 - 1
_UINT32_MAX: Final = 2**32 - 1
# The original's domain check, plus the DNS length limits it leaves out.
_DOMAIN_RE: Final = re.compile(r"[a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)*")
_PORT_RE: Final = re.compile(r"[+-]?[0-9]+")


# --------------------------------------------------------------------------- values


@dataclass(frozen=True)
class MesosCredentials:
    """HTTP Basic credentials for the Mesos masters (``mesosCredentials``)."""

    principal: str = ""
    secret: str = ""

    def __repr__(self) -> str:  # never print the secret by accident
        shown = REDACTED if self.secret else ""
        return f"MesosCredentials(principal={self.principal!r}, secret={shown!r})"


@dataclass(frozen=True)
class ZkURL:
    """A parsed ``zk://[auth@]host[:port][,host[:port]...]/path`` URL."""

    servers: tuple[tuple[str, int], ...]
    path: str
    auth: str = ""


@dataclass(frozen=True)
class Config:
    """Validated configuration; defaults are the original's."""

    # The original's keys (Go field name in the comment where it differs).
    refresh_seconds: int = 60  # RefreshSeconds
    port: int = 53
    timeout: int = 5
    state_timeout_seconds: int = 300
    zk_detection_timeout: int = 30
    http_port: int = 8123  # HttpPort
    ttl: int = 60  # TTL
    srv_record_default_weight: int = 1
    soa_refresh: int = 60
    soa_retry: int = 600
    soa_expire: int = 86400
    soa_minttl: int = 60
    soa_mname: str = "ns1.mesos."  # normalised: one trailing dot
    soa_rname: str = "root.ns1.mesos."  # normalised: '@' -> '.', one trailing dot
    masters: tuple[str, ...] = ()
    zone_resolvers: Mapping[str, tuple[str, ...]] = field(
        default_factory=lambda: MappingProxyType({})
    )
    resolvers: tuple[str, ...] = ("8.8.8.8",)
    ip_sources: tuple[str, ...] = ("netinfo", "mesos", "host")
    zk: str = field(default="", repr=False)  # may carry user:password@
    domain: str = "mesos"  # lower-cased
    file: str = ""  # absolute path of the config file ("" when parsed from text)
    listener: str = "0.0.0.0"
    http_listener: str = "0.0.0.0"
    recurse_on: bool = True
    dns_on: bool = True  # DnsOn
    http_on: bool = True  # HttpOn
    external_on: bool = True
    enforce_rfc952: bool = False
    set_truncate_bit: bool = True
    enumeration_on: bool = True
    mesos_https_on: bool = False
    ca_cert_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    mesos_credentials: MesosCredentials = field(default_factory=MesosCredentials)
    iam_config_file: str = ""
    mesos_authentication: str = ""  # "", "basic" or "iam"
    # Our extensions.
    state_file: str = ""  # absolute path, or ""
    cluster_id: str = ""
    domain_aliases: tuple[str, ...] = ()
    allow_recursion: tuple[str, ...] = DEFAULT_ALLOW_RECURSION  # normalised CIDRs
    zones: tuple[dict[str, Any], ...] = ()
    state_source: str = "poll"
    log_queries: bool = False
    max_tcp_connections: int = 1000
    tcp_idle_timeout: float = 10.0
    max_inflight_forwards: int = 1000
    max_udp_payload: int = 1232  # bytes: the cap on UDP replies (DNS Flag Day 2020)
    reverse_ptr: bool = False
    workers: int = 1  # DNS serving processes ("auto" in the file: one per core)

    def __post_init__(self) -> None:
        fix = {
            "domain": self.domain.lower(),
            "soa_mname": self.soa_mname.rstrip(".") + ".",
            "soa_rname": self.soa_rname.replace("@", ".").rstrip(".") + ".",
            "zone_resolvers": MappingProxyType(
                {k: tuple(v) for k, v in self.zone_resolvers.items()}
            ),
        }
        for name in ("masters", "resolvers", "ip_sources", "domain_aliases",
                     "allow_recursion", "zones"):
            fix[name] = tuple(getattr(self, name))
        for name, value in fix.items():
            object.__setattr__(self, name, value)

    # Convenience views for the I/O layers.
    @property
    def resolver_addrs(self) -> tuple[tuple[str, int], ...]:
        """``resolvers`` as ``(ip, port)`` pairs (port 53 when none is given)."""
        return tuple(split_resolver(r) for r in self.resolvers)

    @property
    def zone_resolver_addrs(self) -> dict[str, tuple[tuple[str, int], ...]]:
        """``zoneResolvers`` as zone -> ``(ip, port)`` pairs."""
        return {z: tuple(split_resolver(r) for r in rs) for z, rs in self.zone_resolvers.items()}

    @property
    def master_addrs(self) -> tuple[tuple[str, int], ...]:
        """``masters`` as ``(host, port)`` pairs, IPs in canonical text."""
        out = []
        for m in self.masters:
            host, port = split_host_port(m)
            out.append((_canonical_ip(host) or host, int(port)))
        return tuple(out)

    @property
    def zk_url(self) -> ZkURL | None:
        """``zk`` parsed, or None when it is not set."""
        return parse_zk_url(self.zk) if self.zk else None

    @property
    def allow_recursion_networks(
        self,
    ) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
        """``allowRecursion`` as network objects."""
        return tuple(ipaddress.ip_network(n) for n in self.allow_recursion)

    def redacted(self, soa_serial: int = 0) -> dict[str, object]:
        """The ``/v1/config`` body: the original's Go field names, secret hidden."""
        return {**_go_view(self, soa_serial), **_extension_view(self)}


def _go_view(c: Config, soa_serial: int) -> dict[str, object]:
    """The original struct as Go's json.Marshal writes it (declaration order)."""
    return {
        "RefreshSeconds": c.refresh_seconds,
        "Port": c.port,
        "Timeout": c.timeout,
        "StateTimeoutSeconds": c.state_timeout_seconds,
        "ZkDetectionTimeout": c.zk_detection_timeout,
        "HttpPort": c.http_port,
        "TTL": c.ttl,
        "SRVRecordDefaultWeight": c.srv_record_default_weight,
        "SOASerial": soa_serial,
        "SOARefresh": c.soa_refresh,
        "SOARetry": c.soa_retry,
        "SOAExpire": c.soa_expire,
        "SOAMinttl": c.soa_minttl,
        "SOAMname": c.soa_mname,
        "SOARname": c.soa_rname,
        "Masters": list(c.masters),
        "ZoneResolvers": {z: list(c.zone_resolvers[z]) for z in sorted(c.zone_resolvers)},
        "Resolvers": list(c.resolvers),
        "IPSources": list(c.ip_sources),
        "Zk": mask_url_password(c.zk),
        "Domain": c.domain,
        "File": c.file,
        "Listener": c.listener,
        "HTTPListener": c.http_listener,
        "RecurseOn": c.recurse_on,
        "DnsOn": c.dns_on,
        "HttpOn": c.http_on,
        "ExternalOn": c.external_on,
        "EnforceRFC952": c.enforce_rfc952,
        "SetTruncateBit": c.set_truncate_bit,
        "EnumerationOn": c.enumeration_on,
        "MesosHTTPSOn": c.mesos_https_on,
        "CACertFile": c.ca_cert_file,
        "CertFile": c.cert_file,
        "KeyFile": c.key_file,
        # basic.Credentials has no JSON tags, so Go writes the field names.
        "MesosCredentials": {
            "Principal": c.mesos_credentials.principal,
            "Secret": REDACTED if c.mesos_credentials.secret else "",
        },
        "IAMConfigFile": c.iam_config_file,
        "MesosAuthentication": c.mesos_authentication,
    }


def _extension_view(c: Config) -> dict[str, object]:
    return {
        "stateFile": c.state_file,
        "clusterID": c.cluster_id,
        "domainAliases": list(c.domain_aliases),
        "allowRecursion": list(c.allow_recursion),
        "zones": [dict(z) for z in c.zones],
        "stateSource": c.state_source,
        "logQueries": c.log_queries,
        "maxTcpConnections": c.max_tcp_connections,
        "tcpIdleTimeout": c.tcp_idle_timeout,
        "maxInflightForwards": c.max_inflight_forwards,
        "maxUDPPayload": c.max_udp_payload,
        "reversePTR": c.reverse_ptr,
        "workers": c.workers,
    }


# --------------------------------------------------------------------------- address helpers


def split_host_port(text: str) -> tuple[str, str]:
    """Split ``host:port`` / ``[v6]:port`` as Go's ``net.SplitHostPort`` does."""
    colon = text.rfind(":")
    if colon < 0:
        raise ValueError("missing port in address")
    if text.startswith("["):
        end = text.find("]")
        if end < 0:
            raise ValueError("missing ']' in address")
        if end + 1 == len(text):
            raise ValueError("missing port in address")
        if end + 1 != colon:
            raise ValueError("too many colons in address" if text[end + 1] == ":"
                             else "missing port in address")
        host = text[1:end]
        if "[" in text[1:] or "]" in text[end + 1:]:
            raise ValueError("unexpected bracket in address")
    else:
        host = text[:colon]
        if ":" in host:
            raise ValueError("too many colons in address")
        if "[" in host or "]" in host:
            raise ValueError("unexpected bracket in address")
    return host, text[colon + 1:]


def _port(text: str) -> int:
    """A port number as the original's validPortString accepts it (1..65535)."""
    if not _PORT_RE.fullmatch(text) or not 0 < int(text) <= 65535:
        raise ValueError(f"invalid port {text!r}")
    return int(text)


def _canonical_ip(text: str) -> str | None:
    """Go's ``net.ParseIP(text).String()``, or None when text is not an IP."""
    if "%" in text:
        return None
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def split_resolver(text: str) -> tuple[str, int]:
    """``ip`` or ``ip:port`` (``[v6]:port``) -> ``(ip, port)``; port 53 by default."""
    try:
        host, port_text = split_host_port(text)
    except ValueError:
        host, port_text = text, "53"
    ip = _canonical_ip(host)
    if ip is None:
        raise ValueError(f"illegal IP {host!r}")
    return ip, _port(port_text)


def is_valid_domain(name: str) -> bool:
    """The original's domain rule (letters, digits, '-', dot-separated, no
    leading/trailing dot), plus DNS's 63-octet label and 253-octet name limits."""
    if not _DOMAIN_RE.fullmatch(name) or len(name) > 253:
        return False
    return all(len(label) <= 63 for label in name.split("."))


def _zk_server(text: str) -> tuple[str, int]:
    if text.startswith("[") and text.endswith("]"):
        host, port = text[1:-1], 2181
    elif text.count(":") == 1 or text.startswith("["):
        host, port_text = split_host_port(text)
        port = _port(port_text)
    else:
        host, port = text, 2181
    if not host:
        raise ValueError(f"empty host in {text!r}")
    return host, port


def parse_zk_url(url: str) -> ZkURL:
    """Parse ``zk://[auth@]h1[:p1],h2[:p2]/path``; raise ValueError when malformed."""
    if not url.startswith("zk://"):
        raise ValueError("must start with zk://")
    rest = url[len("zk://"):]
    hosts, slash, path = rest.partition("/")
    auth, _, hosts = hosts.rpartition("@")
    if not hosts:
        raise ValueError("no ZooKeeper servers")
    servers = tuple(_zk_server(h) for h in hosts.split(","))
    return ZkURL(servers=servers, path="/" + path.rstrip("/") if slash else "/", auth=auth)


# --------------------------------------------------------------------------- decoding


class _Bad(Exception):
    """A value is of the wrong type or out of range (the message is the reason)."""


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    return "array" if isinstance(value, list) else "object"


def _expect(value: object, kind: type | tuple[type, ...], what: str) -> None:
    if isinstance(value, bool) and kind is not bool:
        raise _Bad(f"expected {what}, got boolean")
    if not isinstance(value, kind):
        raise _Bad(f"expected {what}, got {_json_type(value)}")


Decoder = Callable[[Any], object]


def _int(lo: int, hi: int) -> Decoder:
    def decode(value: Any) -> int:
        if isinstance(value, float) and not isinstance(value, bool):
            raise _Bad(f"expected an integer, got {value!r}")
        _expect(value, int, "an integer")
        if not lo <= value <= hi:
            raise _Bad(f"must be between {lo} and {hi}, got {value}")
        return int(value)

    return decode


def _positive_float(value: Any) -> float:
    _expect(value, (int, float), "a number")
    if not math.isfinite(value) or value <= 0:
        raise _Bad(f"must be a positive number of seconds, got {value!r}")
    return float(value)


def _bool(value: Any) -> bool:
    _expect(value, bool, "true or false")
    return bool(value)


def _str(value: Any) -> str:
    _expect(value, str, "a string")
    return str(value)


def _str_list(value: Any) -> tuple[str, ...]:
    _expect(value, list, "an array of strings")
    out = []
    for i, item in enumerate(value):
        if item is None:  # Go: null into a string leaves it ""
            item = ""
        if not isinstance(item, str):
            raise _Bad(f"item {i}: expected a string, got {_json_type(item)}")
        out.append(item)
    return tuple(out)


def _str_list_map(value: Any) -> dict[str, tuple[str, ...]]:
    _expect(value, dict, "an object of arrays of strings")
    out = {}
    for zone, servers in value.items():
        try:
            out[zone.lower()] = () if servers is None else _str_list(servers)
        except _Bad as exc:
            raise _Bad(f"{zone!r}: {exc}") from None
    return out


def _object_list(value: Any) -> tuple[dict[str, Any], ...]:
    _expect(value, list, "an array of objects")
    for i, item in enumerate(value):
        if not isinstance(item, dict):
            raise _Bad(f"item {i}: expected an object, got {_json_type(item)}")
    return tuple(dict(item) for item in value)


def _choice(options: tuple[str, ...]) -> Decoder:
    def decode(value: Any) -> str:
        text = _str(value)
        if text not in options:
            raise _Bad(f"must be one of {', '.join(repr(o) for o in options)}; got {text!r}")
        return text

    return decode


def _workers(value: Any) -> int:
    """A number of serving processes, or "auto": one per core."""
    if value == "auto":
        return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity")
                   else (os.cpu_count() or 1))
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Bad(f'expected a whole number or "auto", got {_json_type(value)}')
    if not 1 <= value <= MAX_WORKERS:
        raise _Bad(f"must be from 1 to {MAX_WORKERS}; got {value}")
    return value


@dataclass(frozen=True)
class _Key:
    """One accepted key: the name Go matches (field name or tag), the name we
    report when the file does not spell it, the attribute and the decoder."""

    go: str
    doc: str
    attr: str
    decode: Decoder
    null_empties: bool = False  # Go: null sets a slice or a map to nil


MAX_WORKERS: Final = 256
_SECONDS: Final = _int(1, _INT32_MAX)
_PORTS: Final = _int(0, 65535)
_UINT32: Final = _int(0, _UINT32_MAX)
_COUNT: Final = _int(1, _INT32_MAX)

_KEYS: Final[tuple[_Key, ...]] = (
    _Key("RefreshSeconds", "refreshSeconds", "refresh_seconds", _SECONDS),
    _Key("Port", "port", "port", _PORTS),
    _Key("Timeout", "timeout", "timeout", _SECONDS),
    _Key("StateTimeoutSeconds", "stateTimeoutSeconds", "state_timeout_seconds", _SECONDS),
    _Key("ZkDetectionTimeout", "zkDetectionTimeout", "zk_detection_timeout",
         _int(0, _INT32_MAX)),
    _Key("HttpPort", "httpport", "http_port", _PORTS),
    _Key("TTL", "ttl", "ttl", _int(0, _INT32_MAX)),
    _Key("SRVRecordDefaultWeight", "srvRecordDefaultWeight", "srv_record_default_weight",
         _int(0, 65535)),
    _Key("SOARefresh", "SOARefresh", "soa_refresh", _UINT32),
    _Key("SOARetry", "SOARetry", "soa_retry", _UINT32),
    _Key("SOAExpire", "SOAExpire", "soa_expire", _UINT32),
    _Key("SOAMinttl", "SOAMinttl", "soa_minttl", _UINT32),
    _Key("SOAMname", "SOAMname", "soa_mname", _str),
    _Key("SOARname", "SOARname", "soa_rname", _str),
    _Key("Masters", "masters", "masters", _str_list, null_empties=True),
    _Key("ZoneResolvers", "zoneResolvers", "zone_resolvers", _str_list_map, null_empties=True),
    _Key("Resolvers", "resolvers", "resolvers", _str_list, null_empties=True),
    _Key("IPSources", "IPSources", "ip_sources", _str_list, null_empties=True),
    _Key("Zk", "zk", "zk", _str),
    _Key("Domain", "domain", "domain", _str),
    _Key("Listener", "listener", "listener", _str),
    _Key("HTTPListener", "HTTPListener", "http_listener", _str),
    _Key("RecurseOn", "recurseon", "recurse_on", _bool),
    _Key("DnsOn", "dnson", "dns_on", _bool),
    _Key("HttpOn", "httpon", "http_on", _bool),
    _Key("ExternalOn", "externalon", "external_on", _bool),
    _Key("EnforceRFC952", "enforceRFC952", "enforce_rfc952", _bool),
    _Key("SetTruncateBit", "SetTruncateBit", "set_truncate_bit", _bool),
    _Key("EnumerationOn", "EnumerationOn", "enumeration_on", _bool),
    _Key("MesosHTTPSOn", "mesosHTTPSOn", "mesos_https_on", _bool),
    _Key("CACertFile", "caCertFile", "ca_cert_file", _str),
    _Key("CertFile", "certFile", "cert_file", _str),
    _Key("KeyFile", "keyFile", "key_file", _str),
    _Key("IAMConfigFile", "IAMConfigFile", "iam_config_file", _str),
    _Key("MesosAuthentication", "mesosAuthentication", "mesos_authentication",
         _choice(AUTH_MECHANISMS)),
    # Our extensions.
    _Key("stateFile", "stateFile", "state_file", _str),
    _Key("clusterID", "clusterID", "cluster_id", _str),
    _Key("domainAliases", "domainAliases", "domain_aliases", _str_list, null_empties=True),
    _Key("allowRecursion", "allowRecursion", "allow_recursion", _str_list, null_empties=True),
    _Key("zones", "zones", "zones", _object_list, null_empties=True),
    _Key("stateSource", "stateSource", "state_source", _choice(STATE_SOURCES)),
    _Key("logQueries", "logQueries", "log_queries", _bool),
    _Key("maxTcpConnections", "maxTcpConnections", "max_tcp_connections", _COUNT),
    _Key("tcpIdleTimeout", "tcpIdleTimeout", "tcp_idle_timeout", _positive_float),
    _Key("maxInflightForwards", "maxInflightForwards", "max_inflight_forwards", _COUNT),
    _Key("maxUDPPayload", "maxUDPPayload", "max_udp_payload", _int(512, 65535)),
    _Key("reversePTR", "reversePTR", "reverse_ptr", _bool),
    _Key("workers", "workers", "workers", _workers),
)
_CREDENTIALS_KEY: Final = "MesosCredentials"
# Keys the original decodes but then overwrites itself.
_OVERWRITTEN: Final = {"file": "File", "soaserial": "SOASerial"}


def _fold(name: str) -> str:
    """Go's case folding for ASCII field names (Kelvin sign and long s included)."""
    return name.replace("\u212a", "k").replace("\u017f", "s").lower()


_BY_FOLD: Final = {_fold(k.go): k for k in _KEYS}
_DOC_NAME: Final = {k.attr: k.doc for k in _KEYS} | {"mesos_credentials": "mesosCredentials"}


def config_key(attr: str) -> str:
    """The config.json key of a Config field (``http_port`` -> ``httpport``)."""
    return _DOC_NAME.get(attr, attr)


class _Decoded:
    """What the decoder found: values by attribute, the keys as written, problems."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.written: dict[str, str] = {}
        self.problems: list[str] = []
        self.warnings: list[str] = []
        self.failed: set[str] = set()  # attributes whose value did not decode

    def key(self, attr: str) -> str:
        """The key as the file wrote it, or its documented spelling."""
        return self.written.get(attr, _DOC_NAME[attr])

    def problem(self, attr: str, reason: str) -> None:
        if attr in self.failed:  # one problem per key: its type error says it all
            return
        self.problems.append(f"{self.key(attr)}: {reason}")

    def warn(self, message: str) -> None:
        if message not in self.warnings:
            self.warnings.append(message)


def _decode_credentials(value: Any, key: str, out: _Decoded) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        out.problems.append(f"{key}: expected an object, got {_json_type(value)}")
        out.failed.add("mesos_credentials")
        return
    current = out.values.get("mesos_credentials", MesosCredentials())
    found = {"principal": current.principal, "secret": current.secret}
    for sub, item in value.items():
        name = _fold(sub)
        if name not in found:
            out.warn(f"{key}.{sub}: unknown key, ignored")
        elif item is not None and not isinstance(item, str):
            out.problems.append(f"{key}.{sub}: expected a string, got {_json_type(item)}")
            out.failed.add("mesos_credentials")
        elif item is not None:
            found[name] = item
    out.values["mesos_credentials"] = MesosCredentials(**found)


def _decode_document(doc: dict[str, Any]) -> _Decoded:
    out = _Decoded()
    for name, value in doc.items():
        folded = _fold(name)
        if folded == _fold(_CREDENTIALS_KEY):
            out.written["mesos_credentials"] = name
            _decode_credentials(value, name, out)
            continue
        if folded in _OVERWRITTEN:
            out.warn(f"{name}: set by the server, ignored")
            continue
        spec = _BY_FOLD.get(folded)
        if spec is None:
            out.warn(f"{name}: unknown key, ignored")
            continue
        out.written[spec.attr] = name
        if value is None:
            if spec.null_empties:
                out.values[spec.attr] = {} if spec.attr == "zone_resolvers" else ()
            continue
        try:
            out.values[spec.attr] = spec.decode(value)
        except _Bad as exc:
            out.problems.append(f"{name}: {exc}")
            out.failed.add(spec.attr)
    return out


# --------------------------------------------------------------------------- validation


def _get(d: _Decoded, attr: str) -> Any:
    if attr in d.values:
        return d.values[attr]
    return _DEFAULTS[attr]


_DEFAULTS: Final[dict[str, Any]] = {
    name: getattr(Config(), name) for name in Config.__dataclass_fields__
}


def _unique(d: _Decoded, attr: str, normalise: Callable[[str], str]) -> None:
    """Every item normalises without error and no two items are the same."""
    seen: set[str] = set()
    for i, item in enumerate(_get(d, attr)):
        try:
            norm = normalise(item)
        except ValueError as exc:
            d.problem(attr, f"item {i}: {item!r}: {exc}")
            continue
        if norm in seen:
            d.problem(attr, f"item {i}: duplicate {item!r}")
        seen.add(norm)


def _normalise_master(text: str) -> str:
    host, port = split_host_port(text)
    if not host:
        raise ValueError("empty host")
    return f"{_canonical_ip(host) or host}|{_port(port)}"


def _normalise_resolver(text: str) -> str:
    return "|".join(str(part) for part in split_resolver(text))


def _check_services(d: _Decoded) -> None:
    if not _get(d, "dns_on") and not _get(d, "http_on"):
        d.problems.append(f"{d.key('dns_on')}/{d.key('http_on')}: "
                          "either the DNS or the HTTP server must be on")


def _check_sources(d: _Decoded) -> None:
    zk = _get(d, "zk")
    given = _get(d, "masters") or zk or _get(d, "state_file")
    if not given and not d.failed & {"masters", "zk", "state_file"}:
        d.problem("masters", "specify Mesos masters, zk or stateFile")
    _unique(d, "masters", _normalise_master)
    if zk:
        try:
            parse_zk_url(zk)
        except ValueError as exc:
            d.problem("zk", f"{mask_url_password(zk)!r}: {exc}")


def _check_resolvers(d: _Decoded, resolv_conf: str) -> None:
    if not _get(d, "external_on"):
        return
    if not _get(d, "resolvers"):
        try:
            d.values["resolvers"] = _local_dns(resolv_conf)
        except OSError as exc:
            d.problem("resolvers", f"empty, and {resolv_conf} cannot be read: "
                      f"{exc.strerror or exc}")
    _unique(d, "resolvers", _normalise_resolver)
    _check_zone_resolvers(d)


def _check_zone_resolvers(d: _Decoded) -> None:
    domain = str(_get(d, "domain")).lower()
    zones: dict[str, tuple[str, ...]] = _get(d, "zone_resolvers")
    for zone, servers in zones.items():
        where = f"zone {zone!r}"
        if not servers:
            d.problem("zone_resolvers", f"{where}: no resolvers")
        if not is_valid_domain(zone):
            d.problem("zone_resolvers", f"{where}: invalid domain name")
        if zone == domain:
            d.problem("zone_resolvers", f"{where}: is the Mesos domain")
        for i, server in enumerate(servers):
            try:
                split_resolver(server)
            except ValueError as exc:
                d.problem("zone_resolvers", f"{where}: item {i}: {server!r}: {exc}")
        for alias in _alias_zones(d, domain):
            if zone == alias or _nested(zone, alias):
                d.problem("zone_resolvers", f"{where}: overlaps the domain alias {alias!r}")
    _check_masking(d, [*zones, domain])


def _alias_zones(d: _Decoded, domain: str) -> list[str]:
    """The alias zones: ``<domain>.<clusterID>.dcos.directory`` and ``domainAliases``."""
    cluster_id = str(_get(d, "cluster_id")).lower()
    by_id = [f"{domain}.{cluster_id}.dcos.directory"] if cluster_id else []
    return [*by_id, *_get(d, "domain_aliases")]


def _check_masking(d: _Decoded, names: list[str]) -> None:
    """No zone may lie under another (nor under or over the Mesos domain)."""
    for a in names:
        for b in names:
            if a != b and ("." + a).endswith("." + b):
                d.problem("zone_resolvers", f"ambiguous zones: {a!r} is masked by {b!r}")


def _check_ip_sources(d: _Decoded) -> None:
    sources = _get(d, "ip_sources")
    if not sources:
        d.problem("ip_sources", "must not be empty")
    if len(set(sources)) != len(sources):
        d.problem("ip_sources", "duplicate IP source")
    for src in sources:
        if src not in IP_SOURCES:
            d.problem("ip_sources", f"invalid IP source {src!r} "
                      f"(one of {', '.join(sorted(IP_SOURCES))})")


def _check_domains(d: _Decoded) -> None:
    domain = str(_get(d, "domain")).lower()
    if not is_valid_domain(domain):
        d.problem("domain", f"invalid domain name {domain!r}")
    aliases = [a.lower() for a in _get(d, "domain_aliases")]
    d.values["domain_aliases"] = tuple(aliases)
    # every alias zone answers the whole domain: none may overlap another
    zones = [domain]
    cluster_id = str(_get(d, "cluster_id")).lower()
    if cluster_id:
        by_id = f"{domain}.{cluster_id}.dcos.directory"
        if "." in cluster_id or not is_valid_domain(cluster_id):
            d.problem("cluster_id", f"{cluster_id!r} is not a valid DNS label")
        elif not is_valid_domain(by_id):
            d.problem("cluster_id", f"{by_id!r} is not a valid domain name")
        else:
            zones.append(by_id)
    for i, alias in enumerate(aliases):
        if not is_valid_domain(alias):
            d.problem("domain_aliases", f"item {i}: invalid domain name {alias!r}")
        elif alias in zones:
            d.problem("domain_aliases", f"item {i}: duplicate domain {alias!r}")
        elif ("." + alias).endswith("." + domain):
            d.problem("domain_aliases", f"item {i}: {alias!r} lies inside the Mesos domain")
        else:
            over = [z for z in zones if _nested(alias, z)]
            if over:
                d.problem("domain_aliases", f"item {i}: {alias!r} overlaps {over[0]!r}")
            zones.append(alias)


def _nested(a: str, b: str) -> bool:
    """Whether one of two different zones lies inside the other."""
    return ("." + a).endswith("." + b) or ("." + b).endswith("." + a)


def _check_listeners(d: _Decoded) -> None:
    for attr in ("listener", "http_listener"):
        text = _get(d, attr)
        if text == "":  # Go listens on every interface for an empty host
            d.values[attr] = "0.0.0.0"
        elif _canonical_ip(text) is None:
            d.problem(attr, f"{text!r} is not an IP address")


_PATH_KEYS: Final = ("ca_cert_file", "cert_file", "key_file", "iam_config_file", "state_file")


def _check_paths(d: _Decoded) -> None:
    """A file name with a NUL byte can be neither opened nor passed on."""
    for attr in _PATH_KEYS:
        if "\x00" in (_get(d, attr) or ""):
            d.problem(attr, "contains a NUL byte")
            d.values[attr] = ""  # so the later checks do not try to open it


def mask_url_password(url: str) -> str:
    """``zk://user:secret@hosts/path`` -> ``zk://user:******@hosts/path``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    auth, _, hosts = rest.partition("@")
    user, colon, _secret = auth.partition(":")
    return f"{scheme}://{user}{':******' if colon else ''}@{hosts}"


def _check_tls(d: _Decoded) -> None:
    ca, cert, key = (_get(d, a) for a in ("ca_cert_file", "cert_file", "key_file"))
    if ca:
        try:
            ssl.create_default_context(cafile=ca)
        except (OSError, ssl.SSLError) as exc:
            d.problem("ca_cert_file", f"{ca!r}: {_os_reason(exc)}")
    if cert and not key:
        d.problem("cert_file", f"set without {d.key('key_file')}")
    elif key and not cert:
        d.problem("key_file", f"set without {d.key('cert_file')}")
    elif cert and key:
        try:
            ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT).load_cert_chain(cert, key)
        except (OSError, ssl.SSLError) as exc:
            d.problem("cert_file", f"{cert!r} / {key!r}: {_os_reason(exc)}")


def _check_auth(d: _Decoded) -> None:
    mech = _get(d, "mesos_authentication")
    creds: MesosCredentials = _get(d, "mesos_credentials")
    iam_file = _get(d, "iam_config_file")
    if iam_file:  # read even when unused, as the original does
        _read_iam(d, iam_file)
    if mech == "basic" and creds == MesosCredentials():
        d.problem("mesos_credentials", "required when mesosAuthentication is 'basic'")
    if mech == "iam" and not iam_file:
        d.problem("iam_config_file", "a valid IAM config file is required when "
                  "mesosAuthentication is 'iam'")
    if mech == "" and creds.principal:
        d.warn(f"{d.key('mesos_credentials')}: set but mesosAuthentication is none; not used")
    if mech == "" and iam_file:
        d.warn(f"{d.key('iam_config_file')}: set but mesosAuthentication is none; not used")


def _read_iam(d: _Decoded, path: str) -> None:
    """The IAM file holds a uid, an RSA private key (PEM) and a login endpoint
    URL; read as the state client will read it at startup."""
    try:
        read_iam_config(path)
    except ValueError as exc:  # the reason never quotes the key
        d.problem("iam_config_file", f"{path!r}: {exc}")


def _check_extensions(d: _Decoded, base_dir: str) -> None:
    nets = []
    for i, text in enumerate(_get(d, "allow_recursion")):
        try:
            nets.append(str(ipaddress.ip_network(text, strict=False)))
        except ValueError:
            d.problem("allow_recursion", f"item {i}: {text!r} is not a CIDR or an IP")
    d.values["allow_recursion"] = tuple(nets)
    state_file = _get(d, "state_file")
    if state_file:
        path = os.path.expanduser(state_file)
        d.values["state_file"] = os.path.normpath(os.path.join(base_dir, path))


# --- operator zones -------------------------------------------------


def cluster_domains(config: Config) -> list[str]:
    """The domains the cluster answers first: the domain and its aliases."""
    return _cluster_domains(config.domain, config.cluster_id, config.domain_aliases)


def _cluster_domains(domain: str, cluster_id: str, aliases: tuple[str, ...]) -> list[str]:
    by_id = [f"{domain}.{cluster_id.lower()}.dcos.directory"] if cluster_id else []
    return [domain.lower(), *by_id, *(a.lower() for a in aliases)]


def _check_zones(d: _Decoded, base_dir: str) -> None:
    """Every zone valid (``zones[i].field: reason``); zone files read and checked."""
    if "zones" in d.failed or not _get(d, "zones"):
        return
    domains = _cluster_domains(
        str(_get(d, "domain")), str(_get(d, "cluster_id")), tuple(_get(d, "domain_aliases"))
    )
    found = load_zones(_get(d, "zones"), base_dir=base_dir, domains=domains, key=d.key("zones"))
    d.problems.extend(found.problems)
    for warning in found.warnings:
        d.warn(warning)


# --- end of operator zones -----------------------------------------------------


def _os_reason(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) and exc.strerror else None) or str(exc)


# --------------------------------------------------------------------------- local DNS


def _local_dns(resolv_conf: str) -> tuple[str, ...]:
    """The nameservers of resolv.conf that are not this host's own addresses."""
    with open(resolv_conf, encoding="utf-8", errors="replace") as fh:
        servers = [parts[1] for parts in (line.split() for line in fh)
                   if len(parts) >= 2 and parts[0] == "nameserver"]
    local = _local_addresses()
    return tuple(s for s in servers if (_canonical_ip(s) or s) not in local)


def _local_addresses() -> set[str]:
    """This host's interface addresses, as far as /proc tells (Linux)."""
    found = {"127.0.0.1", "::1"}
    found.update(_proc_ipv4_local())
    try:
        with open("/proc/net/if_inet6", encoding="ascii") as fh:
            for line in fh:
                hexaddr = line.split()[0]
                found.add(str(ipaddress.IPv6Address(int(hexaddr, 16))))
    except (OSError, ValueError, IndexError):
        pass
    return found


def _proc_ipv4_local() -> Iterator[str]:
    try:
        with open("/proc/net/fib_trie", encoding="ascii") as fh:
            lines = fh.read().splitlines()
    except OSError:
        return
    last = ""
    for line in lines:
        text = line.strip()
        if text.startswith("|--"):
            last = text[3:].strip()
        elif text == "/32 host LOCAL" and last:
            yield last


# --------------------------------------------------------------------------- entry points


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _parse_json(data: bytes | str, source: str) -> dict[str, Any]:
    text = data.decode("utf-8", errors="replace") if isinstance(data, bytes) else data
    try:
        doc = json.loads(text.removeprefix("\ufeff"), parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:
        raise ConfigError([f"{source}: invalid JSON: {exc}"]) from None
    if not isinstance(doc, dict):
        raise ConfigError([f"{source}: expected a JSON object, got {_json_type(doc)}"])
    return doc


def parse_config(
    data: bytes | str,
    source: str = "<config>",
    *,
    file: str | None = None,
    resolv_conf: str = RESOLV_CONF,
) -> tuple[Config, list[str]]:
    """Decode and validate a config document; return it and the warnings.

    ``source`` names the document in messages; ``file`` (default: ``source``
    made absolute unless it looks like ``<...>``) is the config file's path, and
    relative ``stateFile`` paths are resolved against its directory.
    ``resolv_conf`` is read only when ``resolvers`` is empty (as the original).
    Raises ConfigError listing every problem.
    """
    if file is None:
        file = "" if source.startswith("<") else os.path.abspath(source)
    d = _decode_document(_parse_json(data, source))
    base_dir = os.path.dirname(file) if file else os.getcwd()
    for check in (_check_services, _check_sources, _check_ip_sources, _check_domains,
                  _check_listeners, _check_paths, _check_tls, _check_auth):
        check(d)
    _check_resolvers(d, resolv_conf)
    _check_extensions(d, base_dir)
    _check_zones(d, base_dir)  # operator zones
    if d.problems:
        raise ConfigError(d.problems)
    return Config(**d.values, file=file), d.warnings


def load_config(path: str, *, resolv_conf: str = RESOLV_CONF) -> tuple[Config, list[str]]:
    """Read, decode and validate the config file at ``path`` ('~' expanded)."""
    full = os.path.abspath(os.path.expanduser(path))
    try:
        with open(full, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {_os_reason(exc)}"]) from None
    return parse_config(data, path, file=full, resolv_conf=resolv_conf)
