"""mesosdns behind a real BIND, set up as ``shared/seeds/000`` (the DC/OS page
"Exposing Mesos Zones Outside") and ``docs/bind.md`` describe.

A ``python -m mesosdns`` process serves the demo state from a ``stateFile``
(refreshed every second) with the seed's ``clusterID``, so it also answers
``mesos.<clusterID>.dcos.directory``. Two ``named -g`` processes (Debian
``bind9``) on 127.0.0.1 forward the zone ``<clusterID>.dcos.directory`` to it
(``forward only``) and hold ``contoso.com``:

- ``apex``: the seed's "Making a zone" file, verbatim: ``@ IN DNAME
  mesos.<clusterID>.dcos.directory.``, so ``x.contoso.com`` is ``x.mesos...``;
  DNSSEC validation off (``dnssec-validation no``);
- ``sub``: the seed's "Using an existing zone" with the subdomain line
  ``foo IN DNAME ...``, so ``x.foo.contoso.com`` is ``x.mesos...`` (it needs
  its own server: under an apex DNAME the ``foo`` DNAME would be occluded);
  DNSSEC validation on, with ``validate-except`` for the forwarded zone.

Every check goes through BIND with ``dig``: the DNAME, the CNAME BIND
synthesizes and the final data; NODATA then data for an A-only name (BIND
caches an NXDOMAIN for every type, so NODATA must never be NXDOMAIN);
NXDOMAIN for a missing task; a state change showing through after the
refresh; and, at the end, that BIND logged no format error about mesosdns's
answers. mesosdns's ``ttl`` is 1 s so that BIND's cache expires quickly.

``named`` and ``dig`` come from Debian's ``bind9`` and ``bind9-dnsutils``
(``scripts/test.sh`` installs them); without them the tests skip, and fail
under ``CI=true``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import dns.exception
import dns.message
import dns.query
import dns.rcode
import pytest
from conftest import find_free_port, require_tool

ROOT = Path(__file__).resolve().parent.parent
DEMO: dict[str, Any] = json.loads((ROOT / "fixtures" / "demo-state.json").read_text())
EXPECTED: dict[str, Any] = json.loads(
    (ROOT / "tests" / "expected" / "demo-default.json").read_text()
)
CLUSTER_ID = "yor6tqhiag39y6cjkdd4w9uzo45qhku6ra8hl7hpr6d9ukjaz3jo"  # the seed's
FORWARD_ZONE = f"{CLUSTER_ID}.dcos.directory"
ALIAS = f"mesos.{FORWARD_ZONE}"

pytestmark = pytest.mark.timeout(60)
T = TypeVar("T")

# The seed's zone file for "Making a zone", as given.
APEX_ZONE = f"""\
$TTL    604800
@       IN      SOA     localhost. root.localhost. (
                              1         ; Serial
                              1         ; Refresh
                              1         ; Retry
                              1         ; Expire
                              1 )       ; Negative Cache TTL
;
@       IN      NS      localhost.
@       IN      DNAME   {ALIAS}.
"""

# "Using an existing zone": a zone with its own records, and the seed's line
# that aliases the subdomain foo.contoso.com.
SUB_ZONE = f"""\
$TTL    604800
@       IN      SOA     localhost. root.localhost. ( 1 1 1 1 1 )
@       IN      NS      localhost.
www     IN      A       192.0.2.80
foo       IN      DNAME   {ALIAS}.
"""


def in_alias(name: str) -> str:
    """``x.mesos.`` -> ``x.mesos.<clusterID>.dcos.directory.``"""
    assert name.endswith(".mesos.")
    return name[: -len("mesos.")] + ALIAS + "."


def eventually(check: Callable[[], T | None], timeout: float, what: str) -> T:
    end = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            got = check()
        except (OSError, dns.exception.DNSException, subprocess.SubprocessError) as exc:
            got, last = None, exc
        if got:
            return got
        last = got if got is not None else last
        if time.monotonic() > end:
            raise AssertionError(f"not within {timeout}s: {what} (last: {last!r})")
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def port_answers(port: int, name: str) -> bool:
    q = dns.message.make_query(name, "SOA")
    r = dns.query.udp(q, "127.0.0.1", port=port, timeout=0.5)
    return r.rcode() == dns.rcode.NOERROR


# --------------------------------------------------------------------------- the servers


class MesosDNS:
    """``python -m mesosdns`` on a free port, serving a state file."""

    def __init__(self, workdir: Path) -> None:
        self.state_file = workdir / "state.json"
        write_atomically(self.state_file, json.dumps(DEMO))
        self.log_file = workdir / "mesos-dns.stderr"
        config_file = workdir / "config.json"
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p
            ),
        }
        for _ in range(5):
            self.port = find_free_port()
            config = {
                "stateFile": str(self.state_file),
                "refreshSeconds": 1,
                "ttl": 1,
                "clusterID": CLUSTER_ID,
                "listener": "127.0.0.1",
                "port": self.port,
                "httpOn": False,
                "externalOn": False,
            }
            config_file.write_text(json.dumps(config))
            with self.log_file.open("wb") as err:
                self.proc = subprocess.Popen(
                    [sys.executable, "-m", "mesosdns", f"-config={config_file}", "-v"],
                    cwd=workdir,
                    env=env,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                )
            if self._ready():
                return
            stop(self.proc)  # most likely the port was taken meanwhile: another
        raise AssertionError(f"mesosdns did not start:\n{self.stderr}")

    def _ready(self) -> bool:
        end = time.monotonic() + 15
        while time.monotonic() < end and self.proc.poll() is None:
            try:
                if port_answers(self.port, ALIAS + "."):
                    return True
            except (OSError, dns.exception.DNSException):
                pass
            time.sleep(0.05)
        return False

    @property
    def stderr(self) -> str:
        return self.log_file.read_text(errors="replace")


class Named:
    """``named -g`` on 127.0.0.1 and a free port, forwarding the cluster zone
    to mesosdns and serving ``contoso.com`` from ``zone_text``."""

    def __init__(
        self, workdir: Path, name: str, zone_text: str, mesos_port: int, validation: str
    ) -> None:
        named = require_tool("named")
        self.dir = workdir / name
        self.dir.mkdir()
        (self.dir / "db.contoso.com").write_text(zone_text)
        self.log_file = self.dir / "named.stderr"
        for _ in range(5):
            self.port = find_free_port()
            conf = self.dir / "named.conf"
            conf.write_text(named_conf(self.dir, self.port, mesos_port, validation))
            checked = subprocess.run(
                [require_tool("named-checkconf"), "-z", str(conf)],
                capture_output=True,
                text=True,
                timeout=20,
            )
            assert checked.returncode == 0, checked.stdout + checked.stderr
            with self.log_file.open("wb") as err:
                # -g: foreground, log to stderr; no -u: stay the user we are
                self.proc = subprocess.Popen(
                    [named, "-g", "-c", str(conf)],
                    cwd=self.dir,
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=err,
                )
            if self._ready():
                return
            stop(self.proc)
        raise AssertionError(f"named did not start:\n{self.stderr}")

    def _ready(self) -> bool:
        end = time.monotonic() + 15
        while time.monotonic() < end and self.proc.poll() is None:
            try:
                if port_answers(self.port, "contoso.com."):
                    return True
            except (OSError, dns.exception.DNSException):
                pass
            time.sleep(0.05)
        return False

    @property
    def stderr(self) -> str:
        return self.log_file.read_text(errors="replace")


# The two ways docs/bind.md gives to keep DNSSEC validation from failing the
# forwarded zone (its answers are unsigned, under a public domain).
VALIDATION_OFF = "dnssec-validation no;"
VALIDATE_EXCEPT = f'dnssec-validation auto;\n        validate-except {{ "{FORWARD_ZONE}"; }};'


def named_conf(directory: Path, port: int, mesos_port: int, validation: str) -> str:
    """The seed's two zones, plus what a throw-away server on a port needs."""
    return f"""\
options {{
        directory "{directory}";
        pid-file "{directory}/named.pid";
        session-keyfile "{directory}/session.key";
        listen-on port {port} {{ 127.0.0.1; }};
        listen-on-v6 {{ none; }};
        recursion yes;
        allow-query {{ 127.0.0.1; }};
        allow-recursion {{ 127.0.0.1; }};
        {validation}
}};
controls {{ }};

zone "{FORWARD_ZONE}" {{
        type forward;
        forward only;
        forwarders {{ 127.0.0.1 port {mesos_port}; }};
}};

zone "contoso.com" {{
        type master;
        file "{directory}/db.contoso.com";
}};
"""


@dataclass
class Cluster:
    mesos: MesosDNS
    apex: Named
    sub: Named
    log: list[str] = field(default_factory=list)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    require_tool("named")
    require_tool("dig")
    workdir = tmp_path_factory.mktemp("bind")
    mesos = MesosDNS(workdir)
    started: list[subprocess.Popen[bytes]] = [mesos.proc]
    try:
        apex = Named(workdir, "apex", APEX_ZONE, mesos.port, VALIDATION_OFF)
        started.append(apex.proc)
        sub = Named(workdir, "sub", SUB_ZONE, mesos.port, VALIDATE_EXCEPT)
        started.append(sub.proc)
        yield Cluster(mesos, apex, sub)
        for server in (apex, sub):
            assert server.proc.poll() is None, server.stderr
            errors = [
                line
                for line in server.stderr.splitlines()
                if re.search(r"format error|FORMERR|SERVFAIL|lame|trust chain|insecurity", line)
            ]
            assert errors == [], "\n".join(errors)
    finally:
        for proc in reversed(started):
            stop(proc)


# --------------------------------------------------------------------------- dig


@dataclass
class Dig:
    status: str
    answer: list[tuple[str, str, str]]  # (owner, type, rdata), lower case
    authority: list[tuple[str, str, str]]
    text: str

    def rdata(self, rtype: str) -> set[str]:
        return {rdata for _, t, rdata in self.answer if t == rtype}


def dig(server: Named, name: str, rdtype: str = "A") -> Dig:
    """``dig @server name rdtype``, as a user would, parsed."""
    out = subprocess.run(
        [
            require_tool("dig"),
            "@127.0.0.1",
            "-p",
            str(server.port),
            name,
            rdtype,
            "+noall",
            "+comments",
            "+answer",
            "+authority",
            "+tries=1",
            "+time=3",
        ],
        capture_output=True,
        text=True,
        timeout=15,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    status = re.search(r"status: (\w+)", out.stdout)
    assert status, out.stdout
    sections: dict[str, list[tuple[str, str, str]]] = {"ANSWER": [], "AUTHORITY": []}
    current: list[tuple[str, str, str]] | None = None
    for line in out.stdout.splitlines():
        head = re.match(r";; (\w+) SECTION:", line)
        if head:
            current = sections.get(head.group(1))
        elif line.startswith(";") or not line.strip():
            continue
        elif current is not None:
            owner, _ttl, _cls, rtype, rdata = line.split(None, 4)
            current.append((owner.lower(), rtype, " ".join(rdata.split()).lower()))
    return Dig(status.group(1), sections["ANSWER"], sections["AUTHORITY"], out.stdout)


def expected_a(name: str) -> set[str]:
    return set(EXPECTED["A"][name])


# --------------------------------------------------------------------------- the checks


def test_a_record_through_the_apex_dname(cluster: Cluster) -> None:
    r = dig(cluster.apex, "search.marathon.contoso.com", "A")
    target = in_alias("search.marathon.mesos.")
    assert r.status == "NOERROR", r.text
    assert r.answer[:2] == [
        ("contoso.com.", "DNAME", f"{ALIAS}."),
        ("search.marathon.contoso.com.", "CNAME", target),
    ], r.text
    assert {(o, t) for o, t, _ in r.answer[2:]} == {(target, "A")}, r.text
    assert r.rdata("A") == expected_a("search.marathon.mesos.")


def test_a_record_through_the_subdomain_dname(cluster: Cluster) -> None:
    r = dig(cluster.sub, "search.marathon.foo.contoso.com", "A")
    target = in_alias("search.marathon.mesos.")
    assert r.status == "NOERROR", r.text
    assert r.answer[:2] == [
        ("foo.contoso.com.", "DNAME", f"{ALIAS}."),
        ("search.marathon.foo.contoso.com.", "CNAME", target),
    ], r.text
    assert r.rdata("A") == expected_a("search.marathon.mesos.")
    # the rest of the existing zone is untouched
    assert dig(cluster.sub, "www.contoso.com", "A").rdata("A") == {"192.0.2.80"}


@pytest.mark.parametrize("via", ["apex", "sub"])
def test_srv_records_through_the_dname(cluster: Cluster, via: str) -> None:
    server, zone = (
        (cluster.apex, "contoso.com") if via == "apex" else (cluster.sub, "foo.contoso.com")
    )
    # the empty non-terminal is NXDOMAIN as in the cluster domain; BIND does
    # not conclude from it that the names below are missing (docs/bind.md)
    assert dig(server, f"_tcp.marathon.{zone}", "A").status == "NXDOMAIN"
    r = dig(server, f"_search._tcp.marathon.{zone}", "SRV")
    owner = in_alias("_search._tcp.marathon.mesos.")
    assert r.status == "NOERROR", r.text
    assert r.answer[1] == (f"_search._tcp.marathon.{zone}.", "CNAME", owner), r.text
    want = set()
    for text in EXPECTED["SRV"]["_search._tcp.marathon.mesos."]:
        host, port = text.rsplit(":", 1)
        want.add(f"0 1 {port} {in_alias(host)}")
    assert r.rdata("SRV") == want, r.text
    assert {o for o, t, _ in r.answer if t == "SRV"} == {owner}
    # and each target resolves, through BIND, in the alias
    for rdata in want:
        target = rdata.split()[-1]
        got = dig(server, target, "A").rdata("A")
        assert got == expected_a(target[: -len(ALIAS) - 1] + "mesos.")


def test_aaaa_then_a_for_an_a_only_name(cluster: Cluster) -> None:
    """NODATA for AAAA (an NXDOMAIN would be cached for every type)."""
    name = "nginx.marathon.contoso.com"
    target = in_alias("nginx.marathon.mesos.")
    r = dig(cluster.apex, name, "AAAA")
    assert r.status == "NOERROR", r.text
    assert [t for _, t, _ in r.answer] == ["DNAME", "CNAME"], r.text
    assert [(o, t) for o, t, _ in r.authority] == [(f"{ALIAS}.", "SOA")], r.text
    r = dig(cluster.apex, name, "A")
    assert r.status == "NOERROR", r.text
    assert r.answer[1] == (f"{name}.", "CNAME", target)
    assert r.rdata("A") == expected_a("nginx.marathon.mesos.")


def test_nxdomain_for_a_missing_task(cluster: Cluster) -> None:
    r = dig(cluster.apex, "no-such-task.marathon.contoso.com", "A")
    assert r.status == "NXDOMAIN", r.text
    assert [t for _, t, _ in r.answer] == ["DNAME", "CNAME"], r.text
    soa = [(o, t, d) for o, t, d in r.authority if t == "SOA"]
    assert len(soa) == 1 and soa[0][0] == f"{ALIAS}.", r.text
    assert soa[0][2].startswith(f"ns1.{ALIAS}. root.ns1.{ALIAS}. ")


def test_the_alias_apex_through_bind(cluster: Cluster) -> None:
    """SOA and NS of the alias zone come through BIND (no FORMERR, no SERVFAIL)."""
    r = dig(cluster.apex, ALIAS, "SOA")
    assert r.status == "NOERROR" and [t for _, t, _ in r.answer] == ["SOA"], r.text
    r = dig(cluster.apex, ALIAS, "NS")
    assert r.status == "NOERROR" and r.answer == [(f"{ALIAS}.", "NS", f"ns1.{ALIAS}.")], r.text
    r = dig(cluster.apex, f"leader.{ALIAS}", "NS")
    assert r.status == "NOERROR" and r.answer == [], r.text
    assert dig(cluster.apex, f"ns1.{ALIAS}", "A").rdata("A") == {"127.0.0.1"}


def test_a_state_change_shows_through_bind(cluster: Cluster) -> None:
    # redis.marathon is renamed valkey.marathon in the state
    old, new = "redis.marathon.contoso.com", "valkey.marathon.contoso.com"
    ips = expected_a("redis.marathon.mesos.")
    assert dig(cluster.apex, old).rdata("A") == ips
    assert dig(cluster.apex, new).status == "NXDOMAIN"
    state = json.loads(json.dumps(DEMO))
    for fw in state["frameworks"]:
        for task in fw["tasks"]:
            if task["name"] == "redis":
                task["name"] = "valkey"
    write_atomically(cluster.mesos.state_file, json.dumps(state))
    # one refresh (1 s) plus BIND's cached answers (TTL 1 s, the SOA minimum)
    eventually(lambda: dig(cluster.apex, new).rdata("A") == ips, 10, f"{new} answers")
    eventually(lambda: dig(cluster.apex, old).status == "NXDOMAIN", 10, f"{old} is gone")
    eventually(
        lambda: dig(cluster.sub, "valkey.marathon.foo.contoso.com").rdata("A") == ips,
        10,
        "the subdomain alias follows",
    )
