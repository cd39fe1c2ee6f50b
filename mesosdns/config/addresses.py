"""Address syntax: ``host:port`` as Go splits it, resolvers, domain names, ``zk://`` URLs.

Pure functions of text, shared by the model's views, the checks and the
``/v1/config`` view; nothing here knows about the config document.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Final

# The original's domain check, plus the DNS length limits it leaves out.
_DOMAIN_RE: Final = re.compile(r"[a-zA-Z0-9-]+(\.[a-zA-Z0-9-]+)*")
_PORT_RE: Final = re.compile(r"[+-]?[0-9]+")


@dataclass(frozen=True)
class ZkURL:
    """A parsed ``zk://[auth@]host[:port][,host[:port]...]/path`` URL."""

    servers: tuple[tuple[str, int], ...]
    path: str
    auth: str = ""


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


def mask_url_password(url: str) -> str:
    """``zk://user:secret@hosts/path`` -> ``zk://user:******@hosts/path``."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    auth, _, hosts = rest.partition("@")
    user, colon, _secret = auth.partition(":")
    return f"{scheme}://{user}{':******' if colon else ''}@{hosts}"
