"""Addresses of this host's network interfaces (for ``listener: 0.0.0.0``).

The original gives its own name (``SOAMname``) every non-loopback interface
address when it listens on all of them. IPv4 addresses come from the
SIOCGIFADDR ioctl per interface, IPv6 ones from /proc/net/if_inet6 (Linux).
"""

from __future__ import annotations

import contextlib
import fcntl
import ipaddress
import socket
import struct
from pathlib import Path

_SIOCGIFADDR = 0x8915


def _ipv4_of(sock: socket.socket, name: str) -> str | None:
    try:
        packed = fcntl.ioctl(sock.fileno(), _SIOCGIFADDR, struct.pack("256s", name.encode()[:15]))
    except OSError:
        return None
    return socket.inet_ntoa(packed[20:24])


def _ipv6_addresses(path: Path = Path("/proc/net/if_inet6")) -> list[str]:
    out = []
    with contextlib.suppress(OSError):
        for line in path.read_text().splitlines():
            fields = line.split()
            if fields and len(fields[0]) == 32:
                out.append(str(ipaddress.IPv6Address(bytes.fromhex(fields[0]))))
    return out


def interface_addresses() -> list[str]:
    """Every non-loopback address of every interface, IPv4 first."""
    found: list[str] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _, name in socket.if_nameindex():
            ip = _ipv4_of(sock, name)
            if ip is not None:
                found.append(ip)
    found += _ipv6_addresses()
    return [ip for ip in dict.fromkeys(found) if not ipaddress.ip_address(ip).is_loopback]


def listener_addresses(listener: str) -> list[str]:
    """The addresses the server's own name gets, as the original decides them."""
    if listener == "0.0.0.0":
        return interface_addresses()
    return [listener]
