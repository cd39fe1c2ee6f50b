"""The process tree of ``mesos-dns``: the supervisor, its serving processes
(``workers``) and its builder, as real processes on loopback.

Each test starts ``python -m mesosdns -config=FILE -v`` (the `MesosDNS` helper
of ``test_e2e``) in a session of its own, so that every process it forks is
found in ``/proc`` by its session id, whoever its parent is by then. The
roles of the supervisor's children are told apart by the sockets they hold
(``/proc/<pid>/fd`` against ``/proc/net/{udp,tcp,unix}``): a worker holds a
UDP socket on the DNS port, worker 0 also the HTTP listener, the builder the
listening ``builder.sock`` of the run directory (which is how the run
directory is found). Each worker's own DNS counters are read from the
``counters-<i>.json`` files it writes there every second, which proves which
workers answered.

Every test ends by stopping (or killing) the supervisor and proving that no
process it started remains (neither a child seen while it ran nor any
member of its session) and that its run directory is gone.

Three tests guard against faults found here: a replacement worker must not
answer before it has the records; the /metrics counters must not go down
when a worker is replaced; the run directory must go even when the
supervisor is SIGKILLed.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from conftest import find_free_port
from test_e2e import CHANGED, DEMO, DEMO_FILE, NGINX, ROOT, Masters, MesosDNS, eventually

pytestmark = pytest.mark.timeout(60)

NGINX_NAME = "nginx.marathon.mesos"
BUILDER_NICE = 5  # mesosdns.builder.process.NICE
COUNTERS_INTERVAL = 1.0  # mesosdns.server.worker.COUNTERS_INTERVAL


# --------------------------------------------------------------------------- /proc


@dataclass(frozen=True)
class Stat:
    """The fields of ``/proc/<pid>/stat`` these tests use."""

    pid: int
    state: str
    ppid: int
    session: int
    nice: int
    start: int  # clock ticks after boot: tells a pid's reuse apart

    @property
    def live(self) -> bool:
        return self.state not in ("Z", "X")  # a zombie has exited (and closed its fds)


def stat(pid: int) -> Stat | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError):
        return None
    rest = text.rpartition(")")[2].split()  # the command name may hold spaces
    return Stat(pid, rest[0], int(rest[1]), int(rest[3]), int(rest[16]), int(rest[19]))


def all_stats() -> list[Stat]:
    out = []
    for name in os.listdir("/proc"):
        if name.isdigit():
            s = stat(int(name))
            if s is not None:
                out.append(s)
    return out


def alive(pid: int, start: int) -> bool:
    """Whether the process ``pid`` that started at ``start`` still runs."""
    s = stat(pid)
    return s is not None and s.start == start and s.live


def socket_inodes(pid: int) -> set[int]:
    out = set()
    with contextlib.suppress(FileNotFoundError, ProcessLookupError, PermissionError):
        for fd in os.listdir(f"/proc/{pid}/fd"):
            with contextlib.suppress(OSError):
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
                if link.startswith("socket:["):
                    out.add(int(link[8:-1]))
    return out


def inet_inodes(proto: str, port: int) -> set[int]:
    """Inodes of the IPv4 sockets bound to ``port`` (TCP: listening only)."""
    out = set()
    lines = Path(f"/proc/net/{proto}").read_text().splitlines()[1:]
    for line in lines:
        f = line.split()
        if int(f[1].rsplit(":", 1)[1], 16) != port:
            continue
        if proto == "tcp" and f[3] != "0A":  # LISTEN
            continue
        out.add(int(f[9]))
    return out


def unix_paths() -> dict[int, str]:
    """Inode -> path of the UNIX sockets that have a path."""
    out = {}
    for line in Path("/proc/net/unix").read_text().splitlines()[1:]:
        f = line.split()
        if len(f) >= 8:
            out[int(f[6])] = f[7]
    return out


def is_run_dir(path: str) -> bool:
    return os.path.basename(path).startswith("mesosdns-")


# --------------------------------------------------------------------------- DNS


def a_answer(r: dns.message.Message) -> tuple[int, frozenset[str], frozenset[int]]:
    """(rcode, A addresses, TTLs of the answer)."""
    ips = frozenset(
        rr.to_text() for rrset in r.answer if rrset.rdtype == dns.rdatatype.A for rr in rrset
    )
    return r.rcode(), ips, frozenset(rrset.ttl for rrset in r.answer)


def spread(srv: Supervised, n: int, name: str = NGINX_NAME) -> list[tuple[Any, ...]]:
    """``n`` UDP queries, each from a new socket (a new source port: SO_REUSEPORT
    hands them to the workers by the source address); the answers."""
    out: list[tuple[Any, ...]] = []
    for _ in range(n):
        try:
            out.append(a_answer(srv.query(name)))
        except Exception as exc:  # a lost query is a wrong answer here
            out.append(("error", repr(exc)))
    srv.last_query = time.monotonic()
    return out


def wrong(answers: list[tuple[Any, ...]], ips: set[str], ttl: int = 60) -> list[tuple[Any, ...]]:
    good = (dns.rcode.NOERROR, frozenset(ips), frozenset({ttl}))
    return [a for a in answers if a != good]


class Prober(threading.Thread):
    """Queries ``name`` every ``interval`` seconds (each from a new socket)
    until stopped; every answer that is not ``ips`` (or none) is a failure.
    ``paused`` (a lock) holds it between two queries."""

    def __init__(self, srv: MesosDNS, ips: set[str], name: str = NGINX_NAME,
                 interval: float = 0.02) -> None:
        super().__init__(name="dns-prober", daemon=True)
        self.srv, self.ips, self.qname, self.interval = srv, frozenset(ips), name, interval
        self.ok: list[float] = []  # when each right answer was asked
        self.failures: list[tuple[float, str]] = []
        self.paused = threading.Lock()
        self._stop_it = threading.Event()

    def run(self) -> None:
        while not self._stop_it.is_set():
            with self.paused:
                at = time.monotonic()
                try:
                    rcode, ips, _ = a_answer(self.srv.query(self.qname))
                    if rcode == dns.rcode.NOERROR and ips == self.ips:
                        self.ok.append(at)
                    else:
                        self.failures.append((at, f"{dns.rcode.to_text(rcode)} {sorted(ips)}"))
                except Exception as exc:
                    self.failures.append((at, repr(exc)))
            self._stop_it.wait(self.interval)

    def stop(self) -> None:
        self._stop_it.set()
        self.join(5)

    def answered_between(self, start: float, end: float) -> int:
        return sum(start <= t <= end for t in self.ok)


# --------------------------------------------------------------------------- the process tree


@dataclass
class Roles:
    builder: int | None = None
    workers: list[int] = field(default_factory=list)
    worker0: int | None = None  # the worker with the HTTP API
    unknown: list[int] = field(default_factory=list)  # not (yet) holding its sockets


class Supervised(MesosDNS):
    """`MesosDNS`, started in a session of its own, with its process tree.

    A thread samples ``/proc`` every 10 ms and records every child of the
    supervisor it sees (``seen``: pid -> start time), so that even a child
    that lived briefly is checked to be gone at the end.
    """

    def __init__(self, workdir: Path, config: dict[str, Any], tmpdir: str | None = None) -> None:
        # as MesosDNS.__init__, with start_new_session (and maybe TMPDIR)
        self.workdir = workdir
        self.dns_port = find_free_port()
        self.http_port = find_free_port()
        while self.http_port == self.dns_port:
            self.http_port = find_free_port()
        self.config = {
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
        self.dns_port = int(self.config["port"])
        self.config_file = workdir / "config.json"
        self.log_file = workdir / "mesos-dns.stderr"
        self.write_config()
        self.expect_exit = False
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (str(ROOT), os.environ.get("PYTHONPATH", "")) if p)}
        if tmpdir is not None:
            env["TMPDIR"] = tmpdir
        with self.log_file.open("wb") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "mesosdns", f"-config={self.config_file}", "-v"],
                cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                stderr=err, start_new_session=True,
            )
        self.pid = self.proc.pid
        me = stat(self.pid)
        assert me is not None
        self.nice = me.nice
        self.seen: dict[int, int] = {}
        self._run_dir: str | None = None
        self.finished = False
        self.last_query = 0.0  # when `spread` last asked
        self._sampling = threading.Event()
        self._sampler = threading.Thread(target=self._sample, name="proc-sampler", daemon=True)
        self._sampler.start()

    # -- /proc --------------------------------------------------------------

    def _sample(self) -> None:
        while not self._sampling.wait(0.01):
            self.children()

    def children(self) -> dict[int, Stat]:
        """The supervisor's live children now (each is recorded in ``seen``)."""
        kids = {s.pid: s for s in all_stats() if s.ppid == self.pid and s.live}
        for s in kids.values():
            self.seen.setdefault(s.pid, s.start)
        return kids

    def session(self) -> list[Stat]:
        """Every live process of its session (the supervisor included)."""
        return [s for s in all_stats() if s.session == self.pid and s.live]

    def roles(self) -> Roles:
        roles = Roles()
        udp = inet_inodes("udp", self.dns_port)
        http = inet_inodes("tcp", self.http_port)
        paths = unix_paths()
        for pid in sorted(self.children()):
            inodes = socket_inodes(pid)
            if inodes & udp:
                roles.workers.append(pid)
                if inodes & http:
                    roles.worker0 = pid
            elif any(paths.get(i, "").endswith("/builder.sock") for i in inodes):
                roles.builder = pid
            else:
                roles.unknown.append(pid)
        return roles

    def wait_roles(self, workers: int, timeout: float = 10.0,
                   old: Collection[int] = ()) -> Roles:
        """Until there are exactly ``workers`` workers and one builder, none in ``old``."""

        def settled() -> Roles | None:
            r = self.roles()
            pids = {*r.workers, r.builder}
            if (len(r.workers) == workers and r.builder is not None and r.worker0 is not None
                    and not r.unknown and not pids & set(old)):
                return r
            return None

        return eventually(settled, timeout, f"{workers} workers and a builder ({self.roles()})")

    @property
    def run_dir(self) -> str:
        """The run directory: where the builder's socket is."""
        if self._run_dir is None:
            self._run_dir = eventually(self._find_run_dir, 10.0,
                                       "the builder's socket in a run directory")
        return self._run_dir

    def _find_run_dir(self) -> str | None:
        builder = self.roles().builder
        if builder is None:
            return None
        paths = unix_paths()
        for inode in socket_inodes(builder):
            path = paths.get(inode, "")
            if path.endswith("/builder.sock") and is_run_dir(os.path.dirname(path)):
                return os.path.dirname(path)
        return None

    def worker_requests(self) -> dict[int, int]:
        """Each worker's own MesosRequests, from its counters file."""
        out = {}
        for name in os.listdir(self.run_dir):
            if name.startswith("counters-") and name.endswith(".json"):
                with contextlib.suppress(OSError, ValueError):
                    data = json.loads(Path(self.run_dir, name).read_text())
                    out[int(name[len("counters-"):-len(".json")])] = int(data["MesosRequests"])
        return out

    def started_at(self, pid: int) -> float:
        """When child ``pid`` was forked, on the `time.monotonic` clock (to 10 ms,
        rounded down: /proc gives clock ticks after boot)."""
        ticks = os.sysconf("SC_CLK_TCK")
        boot_minus_mono = time.clock_gettime(time.CLOCK_BOOTTIME) - time.monotonic()
        return self.seen[pid] / ticks - boot_minus_mono

    def files_caught_up(self) -> None:
        """Until every worker wrote its counters file since the last `spread`."""
        time.sleep(max(0.0, self.last_query + COUNTERS_INTERVAL + 0.2 - time.monotonic()))

    # -- the end ------------------------------------------------------------

    def finish(self, sig: int = signal.SIGTERM, *, rc: int = 0, within: float = 5.0,
               gone_within: float = 0.5, run_dir_removed: bool = True) -> float:
        """Send ``sig`` (unless it already exited), expect exit status ``rc``
        within ``within`` s, then that every process it started is gone within
        ``gone_within`` s (and its run directory, when ``run_dir_removed``).
        The time it took to exit."""
        self.children()
        started = time.monotonic()
        if self.proc.poll() is None:
            os.kill(self.pid, sig)
        try:
            got = self.proc.wait(within)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"still running {within}s after {sig!r}:\n"
                                 f"{self.stderr[-3000:]}") from None
        took = time.monotonic() - started
        self.finished = True
        assert got == rc, f"exit status {got}, not {rc}:\n{self.stderr[-3000:]}"
        self.assert_all_gone(gone_within, run_dir_removed=run_dir_removed)
        self._sampling.set()
        self._sampler.join(2)
        return took

    def assert_all_gone(self, within: float, *, run_dir_removed: bool = True) -> None:
        assert self.seen, "no child of the supervisor was ever seen"
        deadline = time.monotonic() + within
        while True:
            left = [pid for pid, start in dict(self.seen).items() if alive(pid, start)]
            others = [s.pid for s in self.session()]
            if not left and not others:
                break
            assert time.monotonic() < deadline, (
                f"still running {within}s later: children {left}, session {others}"
            )
            time.sleep(0.02)
        if run_dir_removed and self._run_dir is not None:
            assert not os.path.exists(self._run_dir), f"run directory {self._run_dir} left"

    def cleanup(self) -> None:
        """Kill what is left of its process group (only ours: its own session)."""
        self._sampling.set()
        if self._run_dir is None:  # where to clean up after a test that failed early
            with contextlib.suppress(AssertionError, OSError):
                self._run_dir = self._find_run_dir()
        if any(s.live for s in self.session()) or self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(5)
        if self._run_dir is not None and is_run_dir(self._run_dir):
            shutil.rmtree(self._run_dir, ignore_errors=True)


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., Supervised]]:
    """Start supervisors; at teardown, kill whatever a failed test left."""
    procs: list[Supervised] = []

    def start(tmpdir: str | None = None, **config: Any) -> Supervised:
        workdir = tmp_path / f"mesos-dns-{len(procs)}"
        workdir.mkdir()
        proc = Supervised(workdir, config, tmpdir)
        procs.append(proc)
        return proc

    yield start
    for p in procs:
        p.cleanup()


@pytest.fixture
def masters() -> Iterator[Masters]:
    m = Masters()
    try:
        yield m
    finally:
        m.close()


def from_file(**config: Any) -> dict[str, Any]:
    return {"stateFile": str(DEMO_FILE), **config}


def counted_since(srv: Supervised, before: dict[int, int], n: int) -> dict[int, int] | None:
    """What each worker counted since ``before``, once they counted ``n`` in all."""
    now = srv.worker_requests()
    each = {i: now[i] - before.get(i, 0) for i in now}
    return each if sum(each.values()) >= n else None


def no_traceback(srv: Supervised) -> None:
    assert "Traceback" not in srv.stderr, srv.stderr[-4000:]


# --------------------------------------------------------------------------- 1. two workers


def test_two_workers_both_answer_and_metrics_sum_them(
    launch: Callable[..., Supervised],
) -> None:
    srv = launch(**from_file(workers=2))
    srv.wait_ready()
    roles = srv.wait_roles(2)
    kids = srv.children()
    assert len(kids) == 3, kids  # 2 workers + the builder, nothing else
    assert set(kids) == {*roles.workers, roles.builder}
    assert roles.worker0 in roles.workers
    # the builder runs at a lower priority than the serving processes
    assert roles.builder is not None
    assert kids[roles.builder].nice == srv.nice + BUILDER_NICE
    assert {kids[w].nice for w in roles.workers} == {srv.nice}
    # one HTTP listener (worker 0's); each worker its own UDP socket on the DNS port
    assert len(inet_inodes("tcp", srv.http_port)) == 1
    assert len(inet_inodes("udp", srv.dns_port)) == 2

    # both workers have the records (a worker may get the first version a bit later)
    eventually(lambda: not wrong(spread(srv, 20), NGINX), 5.0, "every worker has the records")
    eventually(lambda: len(srv.worker_requests()) == 2, 5.0, "both counters files")
    srv.files_caught_up()
    before = srv.worker_requests()
    total_before = srv.counter("mesosdns_mesos_requests_total")

    n = 200
    answers = spread(srv, n)
    assert not wrong(answers, NGINX), wrong(answers, NGINX)[:5]

    each = eventually(lambda: counted_since(srv, before, n), 5.0,
                      f"the workers' files count the {n} queries")
    assert set(each) == {0, 1}
    # SO_REUSEPORT spread the queries over both workers
    assert min(each.values()) > 0, each
    assert max(each.values()) < n, each
    # /metrics (worker 0) sums both workers' counters
    eventually(
        lambda: srv.counter("mesosdns_mesos_requests_total") >= total_before + n,
        5.0, "mesosdns_mesos_requests_total counts the queries of both workers",
    )
    # once the files are written, exactly the sum of the two workers' own counts
    eventually(
        lambda: srv.counter("mesosdns_mesos_requests_total") == sum(srv.worker_requests().values()),
        5.0, "/metrics equals the sum of the workers' counters",
    )

    srv.finish()
    no_traceback(srv)


# --------------------------------------------------------------------------- 2. builder killed


def test_builder_killed_answers_continue_and_a_new_builder_serves_changes(
    masters: Masters, launch: Callable[..., Supervised],
) -> None:
    m1 = masters.start(DEMO)
    srv = launch(masters=[m1.address], workers=2)
    srv.wait_ready()
    roles = srv.wait_roles(2)
    eventually(lambda: not wrong(spread(srv, 20), NGINX), 5.0, "every worker has the records")
    assert srv.addresses("redis.marathon.mesos") == {"10.250.2.5"}

    probe = Prober(srv, NGINX)
    probe.start()
    try:
        time.sleep(0.2)
        old = roles.builder
        assert old is not None
        os.kill(old, signal.SIGKILL)
        killed_at = time.monotonic()
        new = eventually(
            lambda: (b := srv.roles().builder) is not None and b != old and b,
            8.0, "a new builder process",
        )
        builder_back = time.monotonic()
        assert new != old
        assert not alive(old, srv.seen[old])
        # the workers were not restarted
        assert sorted(srv.roles().workers) == sorted(roles.workers)
        # a state change after the restart reaches every worker
        m1.state = copy.deepcopy(CHANGED)
        eventually(
            lambda: not wrong(spread(srv, 20, "valkey.marathon.mesos"), {"10.250.2.5"}),
            8.0, "the new records from the new builder, on every worker",
        )
        assert srv.query("redis.marathon.mesos").rcode() == dns.rcode.NXDOMAIN
        time.sleep(0.1)
    finally:
        probe.stop()
    assert probe.failures == [], probe.failures[:10]
    # it probed all along (every 20 ms), the builder's absence included
    assert probe.answered_between(killed_at, builder_back) >= 10, (
        probe.answered_between(killed_at, builder_back), builder_back - killed_at)
    assert len(probe.ok) >= 50, len(probe.ok)

    srv.finish()
    assert "builder (pid" in srv.stderr and "ended with signal 9" in srv.stderr


# --------------------------------------------------------------------------- 3. worker killed


def test_worker_killed_is_replaced_and_the_other_keeps_answering(
    launch: Callable[..., Supervised],
) -> None:
    srv = launch(**from_file(workers=2))
    srv.wait_ready()
    roles = srv.wait_roles(2)
    eventually(lambda: not wrong(spread(srv, 20), NGINX), 5.0, "every worker has the records")
    victim = next(w for w in roles.workers if w != roles.worker0)
    eventually(lambda: 1 in srv.worker_requests(), 5.0, "worker 1's counters file")
    counters_1 = Path(srv.run_dir, "counters-1.json")

    probe = Prober(srv, NGINX)
    probe.start()
    try:
        time.sleep(0.2)
        # between two probes (a query queued on the victim's socket would be lost
        # with it): the kill, until its socket is closed (it is a zombie or gone)
        with probe.paused:
            os.kill(victim, signal.SIGKILL)
            eventually(lambda: not alive(victim, srv.seen[victim]), 2.0, "the worker dead")
            killed_at = time.monotonic()
            old_file = counters_1.stat().st_ino
        # the replacement: a new pid, serving the DNS port
        after = srv.wait_roles(2, old={victim})
        replaced_at = time.monotonic()
        assert after.worker0 == roles.worker0  # worker 0 was not touched
        assert after.builder == roles.builder  # nor the builder
        (new,) = set(after.workers) - {roles.worker0}
        assert new != victim
        time.sleep(0.1)
    finally:
        probe.stop()
    # worker 0 answered alone from the death until the replacement was forked:
    # every probe, and there were some. (A SERVFAIL after the fork is the new
    # worker answering before it has the records: the test below.)
    forked = srv.started_at(new)
    assert killed_at < forked < replaced_at
    early = [(t, what) for t, what in probe.failures if t < forked]
    assert early == [], early
    late = [(t, what) for t, what in probe.failures if not what.startswith("SERVFAIL")]
    assert late == [], late
    alone = probe.answered_between(killed_at, forked)
    assert alone >= 10, (alone, forked - killed_at)
    assert probe.answered_between(replaced_at, time.monotonic()) > 0

    # the new worker answers with the records: its own counters file counts
    def new_worker_answered() -> bool:
        if wrong(spread(srv, 50), NGINX):
            return False
        st = counters_1.stat()
        return st.st_ino != old_file and json.loads(counters_1.read_text())["MesosRequests"] > 0

    eventually(new_worker_answered, 8.0, "the new worker 1 answers queries")
    answers = spread(srv, 100)
    assert not wrong(answers, NGINX), wrong(answers, NGINX)[:5]

    srv.finish()
    assert "worker 1 (pid" in srv.stderr and "worker 1 is serving again" in srv.stderr


def test_replacement_worker_takes_no_queries_before_it_has_the_records(
    launch: Callable[..., Supervised],
) -> None:
    srv = launch(**from_file(workers=2))
    srv.wait_ready()
    roles = srv.wait_roles(2)
    eventually(lambda: not wrong(spread(srv, 20), NGINX), 5.0, "every worker has the records")
    assert roles.builder is not None
    victim = next(w for w in roles.workers if w != roles.worker0)
    # a builder slow to send the new worker its first version (here: stopped; in
    # life: busy with a large state at nice +5, or itself restarting)
    os.kill(roles.builder, signal.SIGSTOP)
    try:
        os.kill(victim, signal.SIGKILL)
        # the replacement is forked, but holds no DNS socket while it has no records
        eventually(lambda: srv.roles().unknown, 5.0, "the replacement worker forked")
        answers = spread(srv, 100)
        assert len(srv.roles().workers) == 1
    finally:
        os.kill(roles.builder, signal.SIGCONT)
    bad = wrong(answers, NGINX)
    assert not bad, f"{len(bad)} of 100 wrong, e.g. {bad[:3]}"
    # with the builder back, it gets the version and joins the port
    srv.wait_roles(2, old={victim})
    answers = spread(srv, 100)
    assert not wrong(answers, NGINX), wrong(answers, NGINX)[:5]
    srv.finish()


def test_metrics_counters_do_not_decrease_when_a_worker_is_replaced(
    launch: Callable[..., Supervised],
) -> None:
    srv = launch(**from_file(workers=2))
    srv.wait_ready()
    roles = srv.wait_roles(2)
    eventually(lambda: not wrong(spread(srv, 20), NGINX), 5.0, "every worker has the records")
    before = srv.worker_requests()
    assert not wrong(spread(srv, 200), NGINX)
    each = eventually(lambda: counted_since(srv, before, 200), 5.0, "the queries counted")
    assert min(each.values()) > 0, each
    total = srv.counter("mesosdns_mesos_requests_total")
    assert total >= 200
    victim = next(w for w in roles.workers if w != roles.worker0)
    os.kill(victim, signal.SIGKILL)
    srv.wait_roles(2, old={victim})
    time.sleep(1.5)  # the new worker 1 has written its counters file
    after = srv.counter("mesosdns_mesos_requests_total")
    srv.finish()
    assert after >= total, f"mesosdns_mesos_requests_total went from {total} to {after}"


# --------------------------------------------------------------------------- 4. SIGTERM, SIGINT


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_stop_signal_exits_0_with_no_child_left(
    launch: Callable[..., Supervised], sig: signal.Signals,
) -> None:
    srv = launch(**from_file(workers=2))
    srv.wait_ready()
    srv.wait_roles(2)
    assert os.path.isdir(srv.run_dir)
    took = srv.finish(sig, rc=0, within=5.0, gone_within=0.0)
    assert took < 3.0, took
    assert len(srv.seen) == 3, srv.seen
    no_traceback(srv)


# --------------------------------------------------------------------------- 5. supervisor killed


def test_supervisor_killed_its_children_die(launch: Callable[..., Supervised]) -> None:
    srv = launch(**from_file(workers=2))
    srv.wait_ready()
    srv.wait_roles(2)
    run_dir = srv.run_dir
    try:
        # PR_SET_PDEATHSIG: each child gets SIGTERM when the supervisor dies
        srv.finish(signal.SIGKILL, rc=-signal.SIGKILL, gone_within=3.0, run_dir_removed=False)
        assert len(srv.seen) == 3, srv.seen
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)  # nobody else removes it (see below)


def test_supervisor_killed_leaves_no_run_directory(launch: Callable[..., Supervised]) -> None:
    srv = launch(**from_file())
    srv.wait_ready()
    srv.wait_roles(1)
    run_dir = srv.run_dir
    try:
        srv.finish(signal.SIGKILL, rc=-signal.SIGKILL, gone_within=3.0, run_dir_removed=False)
        time.sleep(0.5)
        assert not os.path.exists(run_dir), f"{run_dir} left: {os.listdir(run_dir)}"
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)


# --------------------------------------------------------------------------- 6. bad master


def test_master_failing_every_worker_keeps_the_last_good_records(
    masters: Masters, launch: Callable[..., Supervised],
) -> None:
    m1 = masters.start(DEMO)
    srv = launch(masters=[m1.address], workers=2)
    srv.wait_ready()
    roles = srv.wait_roles(2)
    eventually(lambda: not wrong(spread(srv, 20), NGINX), 5.0, "every worker has the records")

    def set_attr(name: str, value: Any) -> Callable[[], None]:
        return lambda: setattr(m1, name, value)

    modes: list[tuple[str, str, Callable[[], None], Callable[[], None]]] = [
        ("HTTP 500", "http_5xx", set_attr("status", 500), set_attr("status", 200)),
        ("invalid JSON", "invalid_json", set_attr("invalid_json", True),
         set_attr("invalid_json", False)),
        ("master down", "unreachable", lambda: masters.down(m1), lambda: masters.up(m1)),
    ]
    for what, kind, fail, heal in modes:
        key = f'mesosdns_refresh_failures_total{{kind="{kind}"}}'
        failed = srv.metrics().get(key, 0.0)
        fail()
        eventually(lambda k=key, f=failed: srv.metrics().get(k, 0.0) >= f + 1,
                   8.0, f"a refresh failure of kind {kind} ({what})")
        srv.files_caught_up()
        before = srv.worker_requests()
        answers = spread(srv, 100)
        assert not wrong(answers, NGINX), (what, wrong(answers, NGINX)[:5])
        # the last good records, from both workers
        each = eventually(lambda b=before: counted_since(srv, b, 100),
                          5.0, f"the queries counted ({what})")
        assert set(each) == {0, 1} and min(each.values()) > 0, (what, each)
        assert srv.http("/ready")[0] == 200, what
        successes = srv.counter("mesosdns_refresh_successes_total")
        heal()
        srv.wait_counter("mesosdns_refresh_successes_total", successes + 1, 8.0, what)
    # no process was restarted for any of this
    assert srv.roles().workers == roles.workers and srv.roles().builder == roles.builder

    srv.finish()
    no_traceback(srv)


# --------------------------------------------------------------------------- 7. port in use


def test_dns_port_in_use_exits_1_with_no_child_left(
    launch: Callable[..., Supervised],
) -> None:
    port = find_free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", port))  # no SO_REUSEPORT: nobody can share it
        # a TMPDIR of its own: no builder starts, so its run directory is found there
        tmpdir = tempfile.mkdtemp(prefix="mdt-")
        try:
            started = time.monotonic()
            srv = launch(tmpdir=tmpdir, **from_file(workers=2, port=port))
            try:
                got = srv.proc.wait(8.0)
                took = time.monotonic() - started
            except subprocess.TimeoutExpired:
                raise AssertionError(f"still running with its port taken:\n{srv.stderr}"
                                     ) from None
            assert got == 1, srv.stderr
            srv.finished = True
            left = [s.pid for s in srv.session()]
            assert left == [], left
            assert not [pid for pid, start in dict(srv.seen).items() if alive(pid, start)]
            assert os.listdir(tmpdir) == [], "run directory left"
        finally:
            shutil.rmtree(tmpdir, ignore_errors=True)
    assert took < 5.0, took
    log = srv.stderr
    assert "Address already in use" in log and "worker 0 did not start" in log, log
    assert "started (domain" not in log, log  # it never got as far as the builder


# --------------------------------------------------------------------------- 8. SIGHUP


def test_sighup_new_ttl_on_every_worker_and_in_v1_config(
    launch: Callable[..., Supervised],
) -> None:
    srv = launch(**from_file(workers=2, ttl=60))
    srv.wait_ready()
    roles = srv.wait_roles(2)
    eventually(lambda: not wrong(spread(srv, 20), NGINX), 5.0, "every worker has the records")
    assert srv.json("/v1/config")["TTL"] == 60

    srv.write_config(ttl=7)
    srv.send(signal.SIGHUP)
    eventually(lambda: not wrong(spread(srv, 40), NGINX, ttl=7), 8.0,
               "the new TTL from every worker")
    srv.files_caught_up()
    before = srv.worker_requests()
    answers = spread(srv, 200)
    assert not wrong(answers, NGINX, ttl=7), wrong(answers, NGINX, ttl=7)[:5]
    each = eventually(lambda: counted_since(srv, before, 200), 5.0, "the queries counted")
    assert set(each) == {0, 1} and min(each.values()) > 0, each  # both workers answered
    assert srv.json("/v1/config")["TTL"] == 7
    # a reload restarts no process
    assert srv.roles().workers == roles.workers and srv.roles().builder == roles.builder

    srv.finish()
    no_traceback(srv)


# --------------------------------------------------------------------------- 9. workers auto


def test_workers_auto_is_one_per_usable_core(launch: Callable[..., Supervised]) -> None:
    cores = len(os.sched_getaffinity(0))
    srv = launch(**from_file(workers="auto"))
    srv.wait_ready()
    roles = srv.wait_roles(cores, timeout=15.0)
    assert len(srv.children()) == cores + 1
    assert len(inet_inodes("udp", srv.dns_port)) == cores
    # a worker may get the first version a bit after worker 0 is ready
    eventually(lambda: not wrong(spread(srv, 20), NGINX), 5.0, "every worker has the records")
    assert srv.json("/v1/config")  # served by worker 0
    assert roles.worker0 is not None

    srv.finish()
    assert len(srv.seen) == cores + 1
