"""Settings of the DNS server, as a frozen value.

The application maps the original's ``config.json`` onto this; the DNS package
depends on nothing else. Field names follow the original's config keys:

- ``domain``: the cluster domain (``mesos``), without trailing dot;
- ``aliases``: alias zones (lower case, no trailing dot) that answer every
  record of the cluster domain under their own name (``clusterID`` and
  ``domainAliases``; see `mesosdns.dns.aliases`); none may equal or contain
  the domain, nor lie inside it or each other;
- ``ttl``: TTL of every record, SOA included, and the SOA MINIMUM field;
- ``soa_*``: SOA fields (``SOAMname``, ``SOARname``, ``SOARefresh``, ...);
  an ``@`` in ``soa_rname`` becomes ``.``, as the original does;
- ``recurse_on``: the RA bit of in-domain answers (``recurseon``);
- ``set_truncate_bit``: set TC on truncated UDP answers (``SetTruncateBit``);
- ``srv_weight``: the SRV weight (``SRVRecordDefaultWeight``);
- ``external_on``, ``resolvers``, ``zone_resolvers``, ``timeout``: forwarding;
  resolvers are ``ip``, ``ip:port`` or ``[v6]:port`` (default port 53);
- ``listen_host``, ``port``: where DNS listens (UDP and TCP; port 0 picks one);
- ``max_tcp_connections``, ``tcp_idle_timeout``, ``max_inflight_forwards``:
  resource bounds (not in the original);
- ``max_udp_payload``: the largest UDP reply (``maxUDPPayload``, 512 to
  65535): an EDNS client gets at most min(its buffer size, this), forwarded
  and operator-zone replies included, and our OPT record advertises it;
  without EDNS the limit stays 512. TCP replies are not limited by it;
- ``log_queries``: one debug log line per query (off on the hot path);
- ``allow_recursion``: CIDRs of the clients whose questions outside the
  cluster domain may be forwarded (``allowRecursion``); others get REFUSED.
  The default is the config's: loopback and the private ranges.
- ``transfer``: zone transfers (``zoneTransfer``): AXFR / IXFR for the
  sources in ``allow``, NOTIFY targets, the TSIG key; None turns them off
  (AXFR and IXFR questions are then answered as any other question).
- ``rrl``: response rate limiting on UDP (`RRLSettings`, see
  `mesosdns.dns.rrl`); None (the default) turns it off.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

DEFAULT_DNS_PORT = 53
# allowRecursion's default (the same as mesosdns.config.DEFAULT_ALLOW_RECURSION):
# loopback, RFC 1918, unique-local and link-local addresses
DEFAULT_ALLOW_RECURSION = (
    "127.0.0.0/8",
    "::1/128",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "fc00::/7",
    "fe80::/10",
)


@dataclass(frozen=True, slots=True)
class TSIGKey:
    """The TSIG key (RFC 8945) that signs transfers and signed queries."""

    name: str  # lower case, one trailing dot ("xfr-key.")
    algorithm: str  # dnspython's canonical name text, e.g. "hmac-sha256."
    secret: bytes  # decoded from base64

    def __repr__(self) -> str:  # never print the secret by accident
        return f"TSIGKey(name={self.name!r}, algorithm={self.algorithm!r}, secret='******')"


@dataclass(frozen=True, slots=True)
class TransferSettings:
    """Zone transfers (``zoneTransfer``).

    ``allow``: normalised CIDRs of the sources that may transfer the zones;
    ``notify``: (ip, port) of the secondaries to NOTIFY (port 53 when not
    given); ``tsig``: when set, only requests signed with this key are served
    and the replies are signed.
    """

    allow: tuple[str, ...] = ()
    notify: tuple[tuple[str, int], ...] = ()
    tsig: TSIGKey | None = None


def _empty_zones() -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class RRLSettings:
    """Response rate limiting (``rrl``), as BIND's ``rate-limit``.

    ``responses_per_second``: credit an account earns each second (and the
    most it holds); ``window``: seconds of debt an account can run up (its
    floor is ``-window * responses_per_second``); ``slip``: every ``slip``-th
    limited response is sent as a truncated (TC) reply, 0 never, 1 always;
    ``ipv4_prefix_length`` / ``ipv6_prefix_length``: how many bits of the
    client's address make the client; ``workers``: the serving processes
    that share the accounts (how much credit one reserves at a time).
    """

    responses_per_second: int = 20
    slip: int = 2
    window: int = 15
    ipv4_prefix_length: int = 24
    ipv6_prefix_length: int = 56
    workers: int = 1


@dataclass(frozen=True, slots=True)
class DNSSettings:
    domain: str = "mesos"
    aliases: tuple[str, ...] = ()
    ttl: int = 60
    soa_mname: str = "ns1.mesos."
    soa_rname: str = "root.ns1.mesos."
    soa_refresh: int = 60
    soa_retry: int = 600
    soa_expire: int = 86400
    recurse_on: bool = True
    set_truncate_bit: bool = True
    srv_weight: int = 1
    external_on: bool = True
    resolvers: tuple[str, ...] = ("8.8.8.8",)
    zone_resolvers: Mapping[str, tuple[str, ...]] = field(default_factory=_empty_zones)
    timeout: float = 5.0
    listen_host: str = "0.0.0.0"
    port: int = 53
    max_tcp_connections: int = 1000
    tcp_idle_timeout: float = 10.0
    max_inflight_forwards: int = 1000
    max_udp_payload: int = 1232  # mesosdns.dns.wire.DEFAULT_UDP_PAYLOAD
    log_queries: bool = False
    allow_recursion: tuple[str, ...] = DEFAULT_ALLOW_RECURSION
    transfer: TransferSettings | None = None  # zoneTransfer; None: off
    rrl: RRLSettings | None = None


def fqdn(name: str) -> str:
    """``name`` with exactly one trailing dot (the root stays ``.``)."""
    name = name.rstrip(".")
    return name + "." if name else "."


def soa_rname_fqdn(rname: str) -> str:
    """The SOA RNAME as the original writes it: every ``@`` becomes ``.``."""
    return fqdn(rname.replace("@", "."))


def parse_resolver(addr: str) -> tuple[str, int]:
    """Split ``ip``, ``ip:port``, ``[v6]:port`` or a bare IPv6 into (host, port).

    Like Go's ``net.SplitHostPort`` with a fallback to the whole text and port
    53, which is how the original normalizes its resolver list. Raises
    ``ValueError`` for a bad port.
    """
    text = addr.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep:
            raise ValueError(f"bad resolver address {addr!r}")
        if not rest:
            return host, DEFAULT_DNS_PORT
        if not rest.startswith(":"):
            raise ValueError(f"bad resolver address {addr!r}")
        return host, _port(rest[1:], addr)
    if text.count(":") == 1:
        host, _, port = text.partition(":")
        return host, _port(port, addr)
    return text, DEFAULT_DNS_PORT


def _port(text: str, addr: str) -> int:
    if not text.isdigit() or not 0 < int(text) < 65536:
        raise ValueError(f"bad port in resolver address {addr!r}")
    return int(text)


def is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True
