"""The configuration value: the frozen ``Config``, ``MesosCredentials``, defaults.

Also the constants the decoder and the checks share (the accepted IP sources,
authentication mechanisms and state sources, the default ``allowRecursion``).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Final

from mesosdns.config.addresses import (
    ZkURL,
    _canonical_ip,
    parse_zk_url,
    split_host_port,
    split_resolver,
)
from mesosdns.config.transfer import ZoneTransfer
from mesosdns.config.view import REDACTED, _extension_view, _go_view

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
RESOLV_CONF: Final = "/etc/resolv.conf"


@dataclass(frozen=True)
class MesosCredentials:
    """HTTP Basic credentials for the Mesos masters (``mesosCredentials``)."""

    principal: str = ""
    secret: str = ""

    def __repr__(self) -> str:  # never print the secret by accident
        shown = REDACTED if self.secret else ""
        return f"MesosCredentials(principal={self.principal!r}, secret={shown!r})"


@dataclass(frozen=True)
class RRLConfig:
    """Response rate limiting (``rrl``), BIND's ``rate-limit``: see
    `mesosdns.dns.rrl` for what it does."""

    responses_per_second: int = 20
    slip: int = 2
    window: int = 15
    ipv4_prefix_length: int = 24
    ipv6_prefix_length: int = 56


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
    omit_unhealthy: bool = False  # unhealthy tasks out of their shared names
    workers: int = 1  # DNS serving processes ("auto" in the file: one per core)
    zone_transfer: ZoneTransfer | None = None  # AXFR / IXFR / TSIG; None: off
    rrl: RRLConfig | None = None  # response rate limiting on UDP; None: off

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
