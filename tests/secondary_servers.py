"""Real DNS secondaries on loopback: BIND (``named -g``) and Knot (``knotd``).

Each one is configured as a secondary of the cluster domain whose primary is
mesosdns on 127.0.0.1 and a given port, with a TSIG key: its SOA queries,
IXFR / AXFR requests and the NOTIFYs it accepts are all signed with it.
Both log to a file in their own directory (``.log``), which the tests read
to tell an IXFR from an AXFR. `stop` reaps the process (SIGTERM, then
SIGKILL); `Secondary.ready` tells whether it serves the zone yet.

Used by tests/test_secondaries.py and bench/secondaries.py.
"""

from __future__ import annotations

import base64
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import dns.exception
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
from ports import free_port

EXTRA_TOOL_DIRS = ("/usr/sbin", "/sbin")


@dataclass(frozen=True)
class Key:
    """A TSIG key as both servers and mesosdns's config write it."""

    name: str = "xfr-key"
    algorithm: str = "hmac-sha256"
    secret: str = base64.b64encode(b"mesosdns secondaries test key 32").decode()

    def config(self) -> dict[str, str]:
        """mesosdns's ``zoneTransfer.tsig``."""
        return {"name": self.name, "algorithm": self.algorithm, "secret": self.secret}

    def keyring(self) -> dict[object, object]:
        import dns.name
        import dns.tsig

        name = dns.name.from_text(self.name)
        return {name: dns.tsig.Key(name, self.secret, self.algorithm)}


def tool(name: str) -> str | None:
    path = os.pathsep.join([os.environ.get("PATH", os.defpath), *EXTRA_TOOL_DIRS])
    return shutil.which(name, path=path)


def stop(proc: subprocess.Popen[bytes], within: float = 5.0) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(within)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(within)


def soa_serial(port: int, zone: str, timeout: float = 0.5) -> int | None:
    """The serial ``127.0.0.1:port`` answers for ``zone`` (None: none yet)."""
    q = dns.message.make_query(zone, "SOA")
    try:
        r = dns.query.udp(q, "127.0.0.1", port=port, timeout=timeout)
    except (OSError, dns.exception.DNSException):
        return None
    if r.rcode() != dns.rcode.NOERROR:
        return None
    for rrset in r.answer:
        if rrset.rdtype == dns.rdatatype.SOA:
            return int(rrset[0].serial)
    return None


def addresses(port: int, name: str, rdtype: str = "A", timeout: float = 0.5) -> set[str] | None:
    """The ``rdtype`` rdata ``127.0.0.1:port`` answers for ``name`` (None:
    no answer or an error rcode)."""
    q = dns.message.make_query(name, rdtype)
    try:
        r = dns.query.udp(q, "127.0.0.1", port=port, timeout=timeout)
    except (OSError, dns.exception.DNSException):
        return None
    if r.rcode() not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
        return None
    return {rd.to_text() for rrset in r.answer if rrset.rdtype == dns.rdatatype.from_text(rdtype)
            for rd in rrset}


class Secondary:
    """One secondary server process (see the subclasses)."""

    kind = ""
    proc: subprocess.Popen[bytes]

    def __init__(
        self, workdir: Path, zone: str, primary_port: int, key: Key, others: tuple[str, ...] = ()
    ) -> None:
        self.dir = workdir / self.kind
        self.dir.mkdir(parents=True, exist_ok=True)
        self.zone = zone.rstrip(".")
        # more zones of the same primary (operator zones), after ``zone``
        self.zones = (self.zone, *(z.rstrip(".") for z in others))
        self.primary_port = primary_port
        self.key = key
        self.log_file = self.dir / f"{self.kind}.log"
        self.port = 0

    def start(self, port: int = 0) -> None:
        """Start on ``port`` (0: a free one)."""
        for _ in range(1 if port else 5):
            self.port = port or free_port()
            self._write_config()
            with self.log_file.open("ab") as err:
                self.proc = subprocess.Popen(
                    self._command(),
                    cwd=self.dir,
                    stdin=subprocess.DEVNULL,
                    stdout=err,
                    stderr=err,
                )
            if self._listening():
                return
            stop(self.proc)  # most likely the port was taken meanwhile
        raise AssertionError(f"{self.kind} did not start:\n{self.log}")

    def _listening(self, within: float = 15.0) -> bool:
        """Up: it answers (anything) over UDP on its port."""
        end = time.monotonic() + within
        q = dns.message.make_query("version.bind.", "TXT", "CH")
        while time.monotonic() < end and self.proc.poll() is None:
            try:
                dns.query.udp(q, "127.0.0.1", port=self.port, timeout=0.2)
                return True
            except (OSError, dns.exception.DNSException):
                time.sleep(0.05)
        return False

    def serial(self) -> int | None:
        return soa_serial(self.port, self.zone + ".")

    @property
    def log(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def stop(self) -> None:
        stop(self.proc)

    def _command(self) -> list[str]:
        raise NotImplementedError

    def _write_config(self) -> None:
        raise NotImplementedError


class BindSecondary(Secondary):
    """``named -g`` as ``type secondary`` of the zone."""

    kind = "named"

    def _command(self) -> list[str]:
        named = tool("named")
        assert named, "named not found"
        # -g: foreground, logging to stderr; no -u: stay the user we are
        return [named, "-g", "-c", str(self.dir / "named.conf")]

    def _write_config(self) -> None:
        d, k = self.dir, self.key
        (d / "named.conf").write_text(f"""\
key "{k.name}" {{ algorithm {k.algorithm}; secret "{k.secret}"; }};
options {{
        directory "{d}";
        pid-file "{d}/named.pid";
        session-keyfile "{d}/session.key";
        listen-on port {self.port} {{ 127.0.0.1; }};
        listen-on-v6 {{ none; }};
        recursion no;
        dnssec-validation no;
        notify no;
        allow-query {{ 127.0.0.1; }};
}};
controls {{ }};
{"".join(self._zone_block(z) for z in self.zones)}""")

    def _zone_block(self, zone: str) -> str:
        return f"""\
zone "{zone}" {{
        type secondary;
        primaries port {self.primary_port} {{ 127.0.0.1 key "{self.key.name}"; }};
        file "{self.dir}/{zone}.db";
        masterfile-format text;
        # BIND 9.18.28 and later refuse a zone with more than 100 records of
        # one type at a name (slave.mesos has one per agent, an app one per
        # instance): no limit
        max-records-per-type 0;
}};
"""


class KnotSecondary(Secondary):
    """``knotd`` with the zone's ``master`` (primary) and a NOTIFY ACL."""

    kind = "knotd"

    def _command(self) -> list[str]:
        knotd = tool("knotd")
        assert knotd, "knotd not found"
        return [knotd, "-c", str(self.dir / "knot.conf")]

    def _write_config(self) -> None:
        d, k = self.dir, self.key
        (d / "db").mkdir(exist_ok=True)
        (d / "knot.conf").write_text(f"""\
server:
    rundir: "{d}"
    pidfile: "{d}/knot.pid"
    listen: 127.0.0.1@{self.port}
log:
  - target: stderr
    any: info
database:
    storage: "{d}/db"
key:
  - id: {k.name}
    algorithm: {k.algorithm}
    secret: {k.secret}
remote:
  - id: primary
    address: 127.0.0.1@{self.primary_port}
    key: {k.name}
acl:
  - id: notify_from_primary
    address: 127.0.0.1
    key: {k.name}
    action: notify
zone:
{"".join(self._zone_entry(z) for z in self.zones)}""")

    def _zone_entry(self, zone: str) -> str:
        return f"""\
  - domain: {zone}
    master: primary
    acl: notify_from_primary
    file: "{self.dir}/{zone}.zone"
    zonefile-sync: -1
    zonefile-load: none
    journal-content: changes
"""
