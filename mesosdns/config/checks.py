"""Cross-field validation of the decoded document.

Services, master sources, IP sources, domains and aliases, listeners, paths,
TLS files, authentication (basic, IAM), resolvers and zone resolvers, and the
local nameservers taken from resolv.conf when ``resolvers`` is empty.  Each
check adds ``key: reason`` problems (or warnings) to the ``_Decoded``.
"""

from __future__ import annotations

import ipaddress
import ssl
from collections.abc import Callable, Iterator
from typing import Any, Final

from mesosdns.config.addresses import (
    _canonical_ip,
    _port,
    is_valid_domain,
    mask_url_password,
    parse_zk_url,
    split_host_port,
    split_resolver,
)
from mesosdns.config.decode import _Decoded
from mesosdns.config.model import IP_SOURCES, Config, MesosCredentials
from mesosdns.state.iam import read_iam_config


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
