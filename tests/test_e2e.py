"""End to end: the real ``mesos-dns`` process against fake Mesos masters and a
real ZooKeeper, checked over DNS (dnspython, ``dig``) and HTTP.

Each test starts ``python -m mesosdns -config=FILE -v`` on free loopback ports.
The fake masters (``tests/fakemaster.py``) run on an event loop in a thread of
the test process, so a test switches their failure modes by setting
attributes. Two masters that must look like two hosts listen on 127.0.0.1 and
127.0.0.2 with the same port: the original (and mesosdns) follows a leader
named in the state on the *port of the master it asked*. The ZooKeeper is a
3-member ensemble from ``tests/zkserver.py``; the tests register the masters'
znodes as Mesos masters do (ephemeral sequential ``json.info_``).

Every wait is bounded; the refresh period is 1 s, so "within one refresh"
means a few seconds at most. At teardown every server still running is sent
SIGTERM and must exit 0, promptly, without a traceback.
"""

from __future__ import annotations

import asyncio
import copy
import datetime
import ipaddress
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
from conftest import find_free_port, require_tool
from fakemaster import FakeMaster
from prometheus_client.parser import text_string_to_metric_families
from zkserver import ZooKeeperEnsemble, ZooKeeperServer, four_letter, register_master

ROOT = Path(__file__).resolve().parent.parent
DEMO_FILE = ROOT / "fixtures" / "demo-state.json"
DEMO: dict[str, Any] = json.loads(DEMO_FILE.read_text())
EXPECTED: dict[str, Any] = json.loads(
    (ROOT / "tests" / "expected" / "demo-default.json").read_text()
)
NGINX = {"10.0.1.21", "10.0.1.22"}
SECRET = "e2e-secret-value"

T = TypeVar("T")
pytestmark = pytest.mark.timeout(90)


def renamed(doc: dict[str, Any], old: str, new: str) -> dict[str, Any]:
    """A copy of the state with task ``old`` renamed (its records move)."""
    out = copy.deepcopy(doc)
    for fw in out["frameworks"]:
        for task in fw["tasks"]:
            if task["name"] == old:
                task["name"] = new
    return out


CHANGED = renamed(DEMO, "redis", "valkey")  # redis.marathon.mesos -> valkey.marathon.mesos


def eventually(check: Callable[[], T], timeout: float, what: str) -> T:
    """Poll ``check`` until it returns something truthy; fail after ``timeout`` s."""
    end = time.monotonic() + timeout
    last: object = None
    while True:
        try:
            result = check()
        except (OSError, dns.exception.DNSException, ValueError) as exc:
            last = exc
        else:
            if result:
                return result
            last = result
        if time.monotonic() > end:
            raise AssertionError(f"not within {timeout}s: {what} (last: {last!r})")
        time.sleep(0.05)


# --------------------------------------------------------------------------- fake masters


class Masters:
    """Fake masters served by an event loop in a background thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(
            target=self.loop.run_forever, name="fake-masters", daemon=True
        )
        self.thread.start()
        self.started: list[FakeMaster] = []

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(10)

    def start(
        self, state: dict[str, Any], host: str = "127.0.0.1", port: int = 0, **kw: Any
    ) -> FakeMaster:
        async def make() -> FakeMaster:
            return await FakeMaster(copy.deepcopy(state), host=host, port=port, **kw).start()

        master = self._call(make())
        self.started.append(master)
        return master

    def pair(self, first: dict[str, Any], second: dict[str, Any]) -> tuple[FakeMaster, FakeMaster]:
        """Two masters on two loopback hosts (127.0.0.1, 127.0.0.2), one port."""
        for _ in range(20):
            m1 = self.start(first)
            try:
                return m1, self.start(second, "127.0.0.2", m1.port)
            except OSError:
                self.down(m1)
        raise RuntimeError("no port free on both 127.0.0.1 and 127.0.0.2")

    def down(self, master: FakeMaster) -> None:
        """Stop listening: connections are refused."""
        self._call(master.stop())

    def up(self, master: FakeMaster) -> None:
        """Listen again on the same address."""
        self._call(master.start())

    def close(self) -> None:
        for master in self.started:
            self._call(master.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


@pytest.fixture
def masters() -> Iterator[Masters]:
    m = Masters()
    try:
        yield m
    finally:
        m.close()


# --------------------------------------------------------------------------- the server process


class MesosDNS:
    """One ``mesos-dns`` process with its own config file and stderr log."""

    def __init__(self, workdir: Path, config: dict[str, Any]) -> None:
        self.workdir = workdir
        self.dns_port = find_free_port()
        self.http_port = find_free_port()
        while self.http_port == self.dns_port:
            self.http_port = find_free_port()
        self.config: dict[str, Any] = {
            "refreshSeconds": 1,
            "stateTimeoutSeconds": 1,
            "ttl": 60,
            "domain": "mesos",
            "listener": "127.0.0.1",
            "port": self.dns_port,
            "httplistener": "127.0.0.1",
            "httpport": self.http_port,
            "externalon": False,
            "SOAMname": "ns1.mesos",
            **config,
        }
        self.config_file = workdir / "config.json"
        self.log_file = workdir / "mesos-dns.stderr"
        self.write_config()
        self.expect_exit = False
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(
                os.pathsep
            ),
        }
        with self.log_file.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mesosdns", f"-config={self.config_file}", "-v"],
                cwd=ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=err,
            )

    def write_config(self, **changes: Any) -> None:
        self.config.update(changes)
        self.config_file.write_text(json.dumps(self.config))

    @property
    def stderr(self) -> str:
        return self.log_file.read_text(errors="replace")

    # -- DNS ----------------------------------------------------------------

    def query(
        self, name: str, rdtype: str = "A", *, tcp: bool = False, port: int | None = None
    ) -> dns.message.Message:
        q = dns.message.make_query(name, rdtype)
        send = dns.query.tcp if tcp else dns.query.udp
        return send(q, "127.0.0.1", port=port or self.dns_port, timeout=1.0)

    def addresses(self, name: str, *, tcp: bool = False) -> set[str]:
        """The A answers for ``name`` (empty for NXDOMAIN / NODATA)."""
        r = self.query(name, tcp=tcp)
        assert r.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN), r
        return {
            rr.to_text() for rrset in r.answer if rrset.rdtype == dns.rdatatype.A for rr in rrset
        }

    # -- HTTP ---------------------------------------------------------------

    def http(self, path: str) -> tuple[int, str]:
        url = f"http://127.0.0.1:{self.http_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=2.0) as resp:
                return resp.status, resp.read().decode()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.read().decode()

    def json(self, path: str) -> Any:
        status, text = self.http(path)
        assert status == 200, (path, status, text)
        return json.loads(text)

    def metrics(self) -> dict[str, float]:
        status, text = self.http("/metrics")
        assert status == 200
        out: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                labels = ",".join(f'{k}="{v}"' for k, v in sorted(s.labels.items()))
                out[f"{s.name}{{{labels}}}" if labels else s.name] = s.value
        return out

    def wait_counter(self, name: str, at_least: float, timeout: float, what: str) -> None:
        eventually(
            lambda: self.counter(name) >= at_least, timeout, f"{name} reaches {at_least} ({what})"
        )

    def counter(self, name: str) -> float:
        """A counter summed over its labels (``refresh_failures`` has a kind)."""
        return sum(v for k, v in self.metrics().items() if k == name or k.startswith(name + "{"))

    # -- lifecycle ----------------------------------------------------------

    def running(self) -> bool:
        return self.proc.poll() is None

    def wait_up(self, timeout: float = 15.0) -> None:
        """Until HTTP answers (DNS is bound before HTTP)."""

        def up() -> bool:
            if not self.running():
                raise AssertionError(f"mesos-dns exited {self.proc.returncode}:\n{self.stderr}")
            return self.http("/health")[0] == 200

        eventually(up, timeout, "mesos-dns HTTP up")

    def wait_ready(self, timeout: float = 15.0) -> None:
        self.wait_up(timeout)
        eventually(lambda: self.http("/ready")[0] == 200, timeout, "first state loaded")

    def send(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 10.0) -> int:
        if self.running():
            self.proc.send_signal(sig)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(f"mesos-dns did not stop within {timeout}s") from None


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., MesosDNS]]:
    """Start mesos-dns processes; at teardown each must stop cleanly on SIGTERM."""
    procs: list[MesosDNS] = []

    def start(**config: Any) -> MesosDNS:
        workdir = tmp_path / f"mesos-dns-{len(procs)}"
        workdir.mkdir()
        proc = MesosDNS(workdir, config)
        procs.append(proc)
        return proc

    yield start
    problems = []
    for p in procs:
        if p.expect_exit:
            if p.running():
                p.proc.kill()
                p.proc.wait(5)
            continue
        was_running = p.running()
        started = time.monotonic()
        rc = p.stop()
        took = time.monotonic() - started
        if not was_running or rc != 0 or took > 5.0 or "Traceback" in p.stderr:
            problems.append(
                f"exit {rc} after {took:.1f}s (running: {was_running}):\n{p.stderr[-4000:]}"
            )
    assert not problems, "\n\n".join(problems)


# --------------------------------------------------------------------------- ZooKeeper


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperEnsemble]:
    zk = ZooKeeperEnsemble(tmp_path_factory.mktemp("zk")).start()
    try:
        yield zk
    finally:
        zk.stop()


@pytest.fixture
def zk(ensemble: ZooKeeperEnsemble) -> Iterator[Any]:
    """A ZooKeeper session, on the third member, standing in for the Mesos masters."""
    from kazoo.client import KazooClient

    client = KazooClient(hosts=ensemble.servers[2].hosts, timeout=10)
    client.start(timeout=15)
    try:
        yield client
    finally:
        client.stop()
        client.close()


def connections(server: ZooKeeperServer) -> int:
    """Client connections of a member, besides the one asking."""
    for line in four_letter(server.port, b"stat").decode(errors="replace").splitlines():
        if line.startswith("Connections:"):
            return int(line.split(":")[1]) - 1
    return 0


# --------------------------------------------------------------------------- (1) records appear


def test_records_appear_over_dns_and_http(
    masters: Masters, launch: Callable[..., MesosDNS]
) -> None:
    dig = require_tool("dig")
    m1 = masters.start(DEMO)
    srv = launch(masters=[m1.address])
    srv.wait_ready()

    # every task, framework and agent name of the hand-derived expectations
    # (the master names depend on the masters list, checked below)
    for name, ips in EXPECTED["A"].items():
        if name.split(".")[0] in ("leader", "ns1") or name.startswith("master"):
            continue
        assert srv.addresses(name) == set(ips), name
    r = srv.query("nginx.marathon.mesos")
    assert r.rcode() == dns.rcode.NOERROR and r.flags & dns.flags.AA
    assert {rr.ttl for rr in r.answer} == {60}
    assert srv.addresses("nginx.marathon.mesos", tcp=True) == NGINX
    assert srv.addresses("leader.mesos") == {"127.0.0.1"}
    assert srv.addresses("master.mesos") == {"127.0.0.1"}
    assert srv.addresses("ns1.mesos") == {"127.0.0.1"}

    r = srv.query("_nginx._tcp.marathon.mesos", "SRV")
    got = {(rr.target.to_text(), rr.port) for rrset in r.answer for rr in rrset}
    assert got == {
        ("nginx-txdxu-s0.marathon.slave.mesos.", 31482),
        ("nginx-uifzp-s1.marathon.slave.mesos.", 31790),
    }
    assert {rr.to_text() for rrset in r.additional for rr in rrset} == NGINX
    r = srv.query("_leader._tcp.mesos", "SRV")
    assert [(rr.target.to_text(), rr.port) for rrset in r.answer for rr in rrset] == [
        ("leader.mesos.", m1.port)
    ]
    assert srv.query("nope.marathon.mesos").rcode() == dns.rcode.NXDOMAIN

    out = subprocess.run(
        [
            dig,
            "@127.0.0.1",
            "-p",
            str(srv.dns_port),
            "+short",
            "+time=2",
            "+tries=1",
            "nginx.marathon.mesos",
        ],
        capture_output=True,
        text=True,
        timeout=10,
        check=True,
    ).stdout
    assert set(out.split()) == NGINX

    hosts = srv.json("/v1/hosts/nginx.marathon.mesos")
    assert sorted(hosts, key=lambda h: h["ip"]) == [
        {"host": "nginx.marathon.mesos.", "ip": ip} for ip in sorted(NGINX)
    ]
    services = srv.json("/v1/services/_nginx._tcp.marathon.mesos")
    assert {(s["host"], s["ip"], s["port"]) for s in services} == {
        ("nginx-txdxu-s0.marathon.slave.mesos.", "10.0.1.21", "31482"),
        ("nginx-uifzp-s1.marathon.slave.mesos.", "10.0.1.22", "31790"),
    }
    axfr = srv.json("/v1/axfr")
    for name, ips in EXPECTED["A"].items():
        if not (name.split(".")[0] in ("leader", "ns1") or name.startswith("master")):
            assert axfr["Records"]["As"][name] == ips, name
    assert srv.json("/v1/version")["Service"] == "Mesos-DNS"
    assert m1.requests >= 1 and m1.paths[0] == "/master/state"
    assert m1.headers[0].get("User-Agent") == "Mesos-DNS"

    # the startup summary is there (-v); no per-query logs unless asked
    log = srv.stderr
    assert "Mesos-DNS configuration" in log and f'"{m1.address}"' in log
    assert "nginx.marathon.mesos" not in log


# --------------------------------------------------------------------------- (2) a state change


def test_a_state_change_shows_within_one_refresh(
    masters: Masters, launch: Callable[..., MesosDNS]
) -> None:
    m1 = masters.start(DEMO)
    srv = launch(masters=[m1.address])
    srv.wait_ready()
    assert srv.addresses("redis.marathon.mesos") == {"10.250.2.5"}

    m1.state = copy.deepcopy(CHANGED)
    changed_at = time.monotonic()
    eventually(
        lambda: srv.addresses("valkey.marathon.mesos") == {"10.250.2.5"},
        3.5,
        "the renamed task answers (refreshSeconds: 1)",
    )
    assert time.monotonic() - changed_at < 3.5
    assert srv.query("redis.marathon.mesos").rcode() == dns.rcode.NXDOMAIN
    assert srv.json("/v1/hosts/valkey.marathon.mesos") == [
        {"host": "valkey.marathon.mesos.", "ip": "10.250.2.5"}
    ]
    assert srv.json("/v1/hosts/redis.marathon.mesos") == [{"host": "", "ip": ""}]


# --------------------------------------------------------------------------- (3) master failures


def test_master_failures_keep_the_last_records_and_are_counted(
    masters: Masters, launch: Callable[..., MesosDNS]
) -> None:
    m1 = masters.start(DEMO)
    srv = launch(masters=[m1.address])
    srv.wait_ready()

    def set_status(code: int) -> Callable[[], None]:
        return lambda: setattr(m1, "status", code)

    modes: list[tuple[str, Callable[[], None], Callable[[], None]]] = [
        ("HTTP 503", set_status(503), set_status(200)),
        (
            "invalid JSON",
            lambda: setattr(m1, "invalid_json", True),
            lambda: setattr(m1, "invalid_json", False),
        ),
        ("no leader", lambda: setattr(m1, "leader", ""), lambda: setattr(m1, "leader", None)),
        (
            "slower than stateTimeoutSeconds",
            lambda: setattr(m1, "delay", 3.0),
            lambda: setattr(m1, "delay", 0.0),
        ),
        ("master down", lambda: masters.down(m1), lambda: masters.up(m1)),
    ]
    for i, (what, fail, heal) in enumerate(modes):
        failures = srv.counter("mesosdns_refresh_failures_total")
        fail()
        # the first episode spans several refreshes (it is still logged once)
        more = 2 if i == 0 else 1
        srv.wait_counter("mesosdns_refresh_failures_total", failures + more, 8.0, what)
        # the last good records are still served, over DNS and HTTP
        assert srv.addresses("nginx.marathon.mesos") == NGINX, what
        assert srv.http("/ready")[0] == 200, what
        assert len(srv.json("/v1/hosts/nginx.marathon.mesos")) == 2, what
        successes = srv.counter("mesosdns_refresh_successes_total")
        heal()
        srv.wait_counter("mesosdns_refresh_successes_total", successes + 1, 8.0, what)

    m = srv.metrics()
    kinds = {
        key.split('kind="')[1].rstrip('"}'): value
        for key, value in m.items()
        if key.startswith("mesosdns_refresh_failures_total{")
    }
    # each failure mode is counted under its own kind
    assert {"http_5xx", "invalid_json", "no_leader", "timeout", "unreachable"} <= set(kinds), kinds
    assert sum(kinds.values()) >= len(modes) + 1
    assert m["mesosdns_ready"] == 1
    # each failure episode is logged once, however many refreshes it spans
    log = srv.stderr
    assert log.count("state refresh failed (") == len(modes), log
    assert log.count("state refresh recovered") == len(modes), log
    for reason in ("HTTP 503", "invalid JSON", "names no leader", "timed out", "cannot connect"):
        assert reason in log, reason


# --------------------------------------------------------------------------- (4) leader changes


def test_follows_the_leader_named_in_the_state_and_falls_back(
    masters: Masters, launch: Callable[..., MesosDNS]
) -> None:
    m1, m2 = masters.pair(DEMO, CHANGED)
    srv = launch(masters=[m1.address, m2.address])
    srv.wait_ready()
    assert srv.addresses("leader.mesos") == {"127.0.0.1"}
    assert srv.addresses("redis.marathon.mesos") == {"10.250.2.5"}

    # the first master says the other one leads: its state is fetched instead
    m1.leader = m2.pid
    eventually(
        lambda: srv.addresses("leader.mesos") == {"127.0.0.2"},
        4.0,
        "leader.mesos follows the leader named in the state",
    )
    assert srv.addresses("valkey.marathon.mesos") == {"10.250.2.5"}
    r = srv.query("_leader._tcp.mesos", "SRV")
    assert [rr.port for rrset in r.answer for rr in rrset] == [m2.port]
    assert "is not the leader" in srv.stderr

    m1.leader = None  # leads again
    eventually(
        lambda: srv.addresses("leader.mesos") == {"127.0.0.1"}, 4.0, "back to the first master"
    )
    masters.down(m1)  # gone: the next master in the list is used
    eventually(
        lambda: srv.addresses("leader.mesos") == {"127.0.0.2"},
        4.0,
        "fall back to the second master",
    )
    assert srv.query("redis.marathon.mesos").rcode() == dns.rcode.NXDOMAIN


def test_follows_the_zookeeper_leader(
    masters: Masters, launch: Callable[..., MesosDNS], ensemble: ZooKeeperEnsemble, zk: Any
) -> None:
    m1, m2 = masters.pair(DEMO, CHANGED)  # each claims to lead: only ZooKeeper decides
    path = f"/mesos-{uuid.uuid4().hex[:8]}"
    z1 = register_master(zk, path, "127.0.0.1", m1.port)
    z2 = register_master(zk, path, "127.0.0.2", m2.port)
    members = ",".join(s.hosts for s in ensemble.servers)
    srv = launch(zk=f"zk://{members}{path}", zkDetectionTimeout=30)
    srv.wait_ready()
    eventually(
        lambda: srv.addresses("leader.mesos") == {"127.0.0.1"}, 4.0, "the lowest znode leads"
    )

    zk.delete(z1)  # the leader goes away: the next registered master leads
    eventually(
        lambda: srv.addresses("leader.mesos") == {"127.0.0.2"},
        5.0,
        "leader.mesos follows ZooKeeper",
    )
    assert srv.addresses("valkey.marathon.mesos") == {"10.250.2.5"}

    z1 = register_master(zk, path, "127.0.0.1", m1.port)  # rejoins, behind the leader
    successes = srv.counter("mesosdns_refresh_successes_total")
    eventually(
        lambda: srv.counter("mesosdns_refresh_successes_total") >= successes + 2,
        5.0,
        "two more refreshes",
    )
    assert srv.addresses("leader.mesos") == {"127.0.0.2"}

    zk.delete(z2)
    eventually(
        lambda: srv.addresses("leader.mesos") == {"127.0.0.1"}, 5.0, "the rejoined master leads"
    )
    assert srv.addresses("redis.marathon.mesos") == {"10.250.2.5"}
    assert "Mesos masters: leader 127.0.0.2:" in srv.stderr


def test_survives_a_zookeeper_member_going_away(
    masters: Masters, launch: Callable[..., MesosDNS], ensemble: ZooKeeperEnsemble, zk: Any
) -> None:
    m1, m2 = masters.pair(DEMO, CHANGED)
    path = f"/mesos-{uuid.uuid4().hex[:8]}"
    z1 = register_master(zk, path, "127.0.0.1", m1.port)
    register_master(zk, path, "127.0.0.2", m2.port)
    # mesos-dns gets the first two members; the "masters" session is on the third
    first_two = ensemble.servers[:2]
    srv = launch(zk=f"zk://{','.join(s.hosts for s in first_two)}{path}", zkDetectionTimeout=30)
    srv.wait_ready()
    eventually(lambda: srv.addresses("leader.mesos") == {"127.0.0.1"}, 4.0, "first leader")
    used = eventually(
        lambda: [s for s in first_two if connections(s) > 0],
        5.0,
        "mesos-dns's ZooKeeper connection",
    )
    victim = used[0]
    victim.stop()  # the member mesos-dns talks to goes away
    try:
        assert srv.addresses("nginx.marathon.mesos") == NGINX
        zk.delete(z1)
        eventually(
            lambda: srv.addresses("leader.mesos") == {"127.0.0.2"},
            15.0,
            "leader change seen through the remaining member",
        )
        assert srv.addresses("valkey.marathon.mesos") == {"10.250.2.5"}
        assert "disconnected from ZooKeeper" in srv.stderr
    finally:
        victim.start()


def test_unreachable_zookeeper_falls_back_to_masters_then_times_out(
    masters: Masters, launch: Callable[..., MesosDNS]
) -> None:
    m1 = masters.start(DEMO)
    nobody = find_free_port()  # nothing listens there
    srv = launch(masters=[m1.address], zk=f"zk://127.0.0.1:{nobody}/mesos", zkDetectionTimeout=3)
    srv.expect_exit = True
    srv.wait_ready()  # from the static masters while ZooKeeper does not answer
    assert srv.addresses("nginx.marathon.mesos") == NGINX
    # as the original: no leader detected within zkDetectionTimeout is fatal
    assert srv.proc.wait(15) == 1
    assert "no leading master detected in ZooKeeper within 3s" in srv.stderr


# ----------------------------------------------------------------- (5) before the first load


def test_nothing_is_served_before_the_first_load(
    masters: Masters, launch: Callable[..., MesosDNS]
) -> None:
    m1 = masters.start(DEMO)
    m1.status = 503
    srv = launch(masters=[m1.address])
    srv.wait_up()
    eventually(lambda: srv.counter("mesosdns_refresh_failures_total") >= 1, 5.0, "a failed refresh")
    assert srv.http("/ready")[0] == 503
    for path in (
        "/v1/version",
        "/v1/config",
        "/v1/hosts/nginx.marathon.mesos",
        "/v1/services/_nginx._tcp.marathon.mesos",
        "/v1/axfr",
    ):
        assert srv.http(path)[0] == 503, path
    assert srv.http("/health")[0] == 200
    assert srv.metrics()["mesosdns_ready"] == 0
    # DNS: SERVFAIL (clients move on to their next server at once)
    for tcp in (False, True):
        r = srv.query("nginx.marathon.mesos", tcp=tcp)
        assert r.rcode() == dns.rcode.SERVFAIL and not r.answer
    assert srv.query("www.example.com").rcode() == dns.rcode.SERVFAIL

    m1.status = 200
    eventually(lambda: srv.http("/ready")[0] == 200, 5.0, "ready after the master recovers")
    assert srv.addresses("nginx.marathon.mesos") == NGINX
    assert srv.http("/v1/version")[0] == 200


# --------------------------------------------------------------------------- (6) signals


def test_poller_stops_when_a_refresh_was_just_triggered() -> None:
    """In-process companion of the signal tests, deterministic: a refresh
    requested (the ZooKeeper leader changed) just before shutdown must not
    hold the shutdown up. On Python 3.11, ``asyncio.wait_for`` swallowed the
    cancellation racing with the wake-up, and the poller ran on for ever: a
    mesos-dns using ZooKeeper sometimes ignored SIGTERM."""
    from mesosdns.builder.engine import Compilers
    from mesosdns.builder.poll import Poller, Source
    from mesosdns.dns.settings import DNSSettings
    from mesosdns.metrics import RefreshStats
    from mesosdns.records.generator import GeneratorParams
    from mesosdns.store.update import Update

    async def once() -> None:
        published: list[Update] = []
        compilers = Compilers(DNSSettings())
        poller = Poller(
            Source(state_file=str(DEMO_FILE)),
            GeneratorParams(),
            RefreshStats(),
            refresh_seconds=60.0,
            compilers=lambda: compilers,
            sink=published.append,
        )
        poller.start()
        for _ in range(200):  # until the first refresh is done and it waits
            if published:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.02)
        poller.trigger()
        await asyncio.wait_for(poller.stop(), 5.0)

    async def main() -> None:
        for _ in range(3):
            await once()

    asyncio.run(main())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_exits_0_promptly(
    masters: Masters, launch: Callable[..., MesosDNS], sig: int
) -> None:
    m1 = masters.start(DEMO)
    srv = launch(masters=[m1.address])
    srv.expect_exit = True
    srv.wait_ready()
    # an idle TCP client and a slow refresh in flight must not hold the shutdown up
    idle = socket.create_connection(("127.0.0.1", srv.dns_port), timeout=2)
    m1.delay = 30.0
    time.sleep(1.2)
    try:
        started = time.monotonic()
        assert srv.stop(sig) == 0
        assert time.monotonic() - started < 5.0
    finally:
        idle.close()
    assert "shutting down" in srv.stderr
    assert "Traceback" not in srv.stderr
    # the ports are free again (TCP: as a restarted server binds, with SO_REUSEADDR,
    # since the closed connections linger in TIME_WAIT)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", srv.dns_port))
    for port in (srv.dns_port, srv.http_port):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            s.listen()


def test_sighup_reloads_the_config(masters: Masters, launch: Callable[..., MesosDNS]) -> None:
    m1 = masters.start(DEMO)
    srv = launch(masters=[m1.address], refreshSeconds=60, ttl=60)
    srv.wait_ready()
    assert {rr.ttl for rr in srv.query("nginx.marathon.mesos").answer} == {60}
    old_port = srv.dns_port
    new_port = find_free_port()

    srv.write_config(refreshSeconds=1, ttl=7, port=new_port)
    srv.send(signal.SIGHUP)
    # ttl applies at once (the reload refreshes now), in answers and negative answers
    eventually(
        lambda: {rr.ttl for rr in srv.query("nginx.marathon.mesos").answer} == {7},
        4.0,
        "the new ttl in answers",
    )
    r = srv.query("nope.marathon.mesos")
    assert r.rcode() == dns.rcode.NXDOMAIN and {rr.ttl for rr in r.authority} == {7}
    # the port cannot change without a restart: reported, and DNS stays where it was
    eventually(lambda: "port need a restart" in srv.stderr, 3.0, "port change reported")
    assert srv.addresses("nginx.marathon.mesos") == NGINX
    with pytest.raises((dns.exception.Timeout, ConnectionRefusedError)):
        srv.query("nginx.marathon.mesos", port=new_port)
    doc = srv.json("/v1/config")
    assert (doc["RefreshSeconds"], doc["TTL"], doc["Port"]) == (1, 7, old_port)
    # refreshSeconds: 1 is in force (with 60, this would not show for a minute)
    m1.state = copy.deepcopy(CHANGED)
    eventually(
        lambda: srv.addresses("valkey.marathon.mesos") == {"10.250.2.5"},
        4.0,
        "state change within the new refresh period",
    )

    # a broken config file is rejected and the server goes on as it was
    srv.config_file.write_text("{not json")
    srv.send(signal.SIGHUP)
    eventually(lambda: "config reload rejected" in srv.stderr, 3.0, "bad reload reported")
    assert srv.running()
    assert srv.addresses("valkey.marathon.mesos") == {"10.250.2.5"}


# --------------------------------------------------------------------------- (7) a bad config


def test_bad_config_exits_2_naming_each_key(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps(
            {
                "masters": ["10.0.0.1:5050"],
                "refreshSeconds": "often",
                "IPSources": ["bogus"],
                "httpPort": 70000,
            }
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "mesosdns", f"-config={config}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=20,
    )
    assert proc.returncode == 2
    lines = proc.stderr.splitlines()
    for key in ("refreshSeconds", "IPSources", "httpPort"):
        assert any(line.startswith(f"mesos-dns: config: {key}: ") for line in lines), (
            key,
            proc.stderr,
        )
    assert "Traceback" not in proc.stderr


# --------------------------------------------------------------------------- HTTPS and auth


def _self_signed(directory: Path) -> tuple[Path, Path]:
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "fake mesos master")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "master.pem", directory / "master.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_file, key_file


def test_https_master_with_basic_auth(
    tmp_path: Path, masters: Masters, launch: Callable[..., MesosDNS]
) -> None:
    cert, key = _self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    m1 = masters.start(DEMO, ssl_context=tls, basic_auth=("dns", SECRET))
    srv = launch(
        masters=[m1.address],
        mesosHTTPSOn=True,
        CACertFile=str(cert),
        mesosAuthentication="basic",
        mesosCredentials={"principal": "dns", "secret": SECRET},
    )
    srv.wait_ready()
    assert srv.addresses("nginx.marathon.mesos") == NGINX
    assert m1.headers[0]["Authorization"].startswith("Basic ")
    status, text = srv.http("/v1/config")
    assert status == 200 and SECRET not in text
    assert json.loads(text)["MesosCredentials"] == {"Principal": "dns", "Secret": "******"}
    assert SECRET not in srv.stderr
    assert '"Secret":"******"' in srv.stderr  # the startup summary, masked
