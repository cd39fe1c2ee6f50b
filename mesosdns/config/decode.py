"""Decoding: the JSON document, and its keys matched as Go's ``encoding/json`` does.

The ``_Key`` table names every accepted key (Go field name or tag, documented
spelling, ``Config`` attribute, decoder).  Keys match case-insensitively with
Go's folding; types and ranges are checked per key; unknown keys are warnings.
The result, ``_Decoded``, carries the values, the keys as written, and the
problems and warnings that the checks go on adding to.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from mesosdns.config.model import AUTH_MECHANISMS, STATE_SOURCES, MesosCredentials
from mesosdns.errors import ConfigError
from mesosdns.jsonfold import fold as _fold
from mesosdns.jsonfold import json_type as _json_type

_INT32_MAX: Final = 2**31 - 1
_UINT32_MAX: Final = 2**32 - 1


class _Bad(Exception):
    """A value is of the wrong type or out of range (the message is the reason)."""




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


def _object(value: Any) -> dict[str, Any]:
    _expect(value, dict, "an object")
    return dict(value)


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
    _Key("omitUnhealthy", "omitUnhealthy", "omit_unhealthy", _bool),
    _Key("workers", "workers", "workers", _workers),
    _Key("zoneTransfer", "zoneTransfer", "zone_transfer", _object),
    _Key("rrl", "rrl", "rrl", _object),  # its sub-keys: mesosdns.config.rrl
)
_CREDENTIALS_KEY: Final = "MesosCredentials"
# Keys the original decodes but then overwrites itself.
_OVERWRITTEN: Final = {"file": "File", "soaserial": "SOASerial"}




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
