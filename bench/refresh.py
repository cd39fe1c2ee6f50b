"""Benchmark: DNS while the state refreshes, the cost of a reload, a cold start.

The server is a black box: a command line (by default this checkout's
``mesos-dns -config={config}``, or ``--server-cmd`` with a ``{config}``
placeholder, so the same figures can be taken of the original Go Mesos-DNS)
started in a session of its own. Every process of that session, and every
descendant of the command, counts as the server: CPU is summed over that tree
(utime + stime of each process plus the cutime + cstime of reaped children),
memory too (VmHWM, VmRSS, and Pss from ``smaps_rollup``, where shared pages
count once). A fake Mesos master (a process of its own, ``--fake-master``)
serves the synthetic state of bench/synth.py (cached in bench/out) on
loopback HTTP: ``/master/state``, ``/master/state.json``, ``/state.json`` and
``/master/redirect``; it rewrites the document's leader to itself and can
splice one extra task into the served bytes without re-encoding them.

probe
    The master alternates between two states that differ in one task's IP
    (``bench-flip.marathon.mesos``), so every poll sees a new state. Once the
    server answers and has polled once more, the benchmark sends ``--qps``
    (2,000) in-domain queries a second for ``--duration`` (60) seconds over
    UDP: A and SRV questions (70/30) for names of the synthetic state, paced,
    the replies matched by ID. Reports p50 / p99 / p99.9 / max latency (over
    every reply, late ones included), lost queries (no reply within 2 s; of
    them, the ones never answered, and the datagrams the kernel dropped at
    the server's and at the client's socket), replies that were not NOERROR
    with an answer, truncated ones; the polls the master served and the SOA serial
    changes seen (one SOA query every 100 ms); and p99 / max for the queries
    sent while a refresh ran (from a poll's arrival at the master to the
    serial change it caused: the first after its transfer and before the next
    poll's transfer) apart from the others.
reload
    The master serves a state with one new task (``bench-new-N``, a new
    name); the time from the server's next GET arriving at the master to the
    name answering over DNS (a query every 5 ms), ``--reloads`` (3) times per
    server; the server tree's CPU seconds from that GET to the answer, and
    until the tree is idle again (the 5 ms polling included, a few ms); the
    memory of the tree: sum of VmHWM, peak of the summed VmRSS (sampled every
    50 ms) and the sum of Pss at the end.
cold
    Server start -> the master's first GET -> the first in-domain answer,
    and the tree's VmHWM sum at that point; then the time until the server's
    answers are prebuilt (``mesosdns_answers_compiled`` in /metrics: a large
    first state is answered from its records while it compiles) and the
    VmHWM sum then.

Figures are medians over ``--runs`` fresh servers (reload: over every reload
of every run). Nothing is pinned unless ``--taskset CPUS`` (the server only).
The server tree and the fake master are always stopped and reaped, and the
benchmark checks that no process of them remains.

    python bench/refresh.py                          # all parts, 10k and 100k tasks
    python bench/refresh.py probe --tasks 10000 --runs 3
    python bench/refresh.py reload cold --tasks 100000
    python bench/refresh.py --server-cmd '/tmp/mesos-dns-orig -config={config}' --tasks 10000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import gc
import json
import os
import random
import shlex
import signal
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT / "tests"))
from ports import free_port  # noqa: E402  (tests/ports.py)

TICK = os.sysconf("SC_CLK_TCK")
PARTS = ("probe", "reload", "cold")
LEADER = b"master@10.0.0.11:5050"  # bench/synth.py's leader, rewritten to the fake
FLIP = "bench-flip"
FLIP_IPS = ("10.253.0.1", "10.253.0.2")
LOST_AFTER = 2.0  # seconds without a reply: lost
META_VERSION = 1


# -- processes: the server tree, its CPU and memory -------------------------------


def _stat(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (index 0 = state)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def tree(root: int) -> list[int]:
    """The server: ``root``, its descendants, and every process of its session."""
    parent: dict[int, int] = {}
    session: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None:
                parent[int(entry)] = int(fields[1])
                session[int(entry)] = int(fields[4])
    out = []
    for pid in parent:
        p, hops = pid, 0
        while p > 1 and p != root and hops < 64:
            p, hops = parent.get(p, 0), hops + 1
        if p == root or session.get(pid) == root:
            out.append(pid)
    return sorted(out)


def tree_cpu(root: int) -> float:
    """CPU seconds of the tree, children that exited and were reaped included."""
    total = 0
    for pid in tree(root):
        fields = _stat(pid)
        if fields is not None:
            total += sum(int(v) for v in fields[11:15])  # utime stime cutime cstime
    return total / TICK


def _kib(path: str, key: str) -> int:
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def tree_mem(root: int) -> dict[str, Any]:
    """MiB summed over the tree: VmHWM (peak of each), VmRSS, Pss."""
    pids = tree(root)
    return {
        "hwm": sum(_kib(f"/proc/{p}/status", "VmHWM:") for p in pids) / 1024,
        "rss": sum(_kib(f"/proc/{p}/status", "VmRSS:") for p in pids) / 1024,
        "pss": sum(_kib(f"/proc/{p}/smaps_rollup", "Pss:") for p in pids) / 1024,
        "procs": float(len(pids)),
        # each process's VmHWM, in pid order (the first started first)
        "each": [_kib(f"/proc/{p}/status", "VmHWM:") / 1024 for p in pids],
    }


def udp_drops(port: int) -> int:
    """Datagrams the kernel dropped on the sockets bound to ``port`` (full
    receive buffers), summed over every socket (several with SO_REUSEPORT)."""
    total = 0
    for table in ("/proc/net/udp", "/proc/net/udp6"):
        with contextlib.suppress(OSError), open(table) as f:
            next(f)
            for line in f:
                cols = line.split()
                if int(cols[1].rsplit(":", 1)[1], 16) == port:
                    total += int(cols[-1])
    return total


def _set_subreaper() -> None:
    """Orphans of the server are re-parented to this process (so none escapes)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _alive(pid: int) -> bool:
    fields = _stat(pid)
    return fields is not None and fields[0] not in ("Z", "X")


def _reap_ours() -> None:
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None and int(fields[1]) == me and fields[0] == "Z":
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(int(entry), os.WNOHANG)


class Server:
    """The server command, in a session of its own; ``stop`` ends the whole tree."""

    def __init__(self, argv: list[str], log: Path) -> None:
        self.argv = argv
        self.log = log
        self.seen: set[int] = set()
        self._log = log.open("wb")
        # the environment untouched: a --server-cmd of another checkout must
        # import its own package, not this one
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its cwd is ours: relative paths in --server-cmd work
        )
        self.pid = self.proc.pid

    def pids(self) -> list[int]:
        pids = tree(self.pid)
        self.seen.update(pids)
        return pids

    def check(self) -> None:
        if self.proc.poll() is not None:
            raise SystemExit(f"the server exited ({self.proc.returncode}):\n{self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        return self.log.read_text(errors="replace")[-chars:]

    def stop(self) -> list[int]:
        """SIGTERM, then SIGKILL what remains; reap; the pids still alive (none)."""
        self.pids()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(20)
        for pid in self.seen | set(tree(self.pid)):
            if pid != os.getpid() and _alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)
        time.sleep(0.1)
        _reap_ours()
        self._log.close()
        return [p for p in self.seen if _alive(p)]


class MemSampler(threading.Thread):
    """The tree's summed VmRSS every ``every`` seconds; keeps the peak."""

    def __init__(self, server: Server, every: float) -> None:
        super().__init__(daemon=True)
        self.server, self.every = server, every
        self.peak_rss = 0.0
        self.stop_event = threading.Event()

    def run(self) -> None:
        while not self.stop_event.is_set():
            pids = self.server.pids()
            rss = sum(_kib(f"/proc/{p}/status", "VmRSS:") for p in pids) / 1024
            self.peak_rss = max(self.peak_rss, rss)
            self.stop_event.wait(self.every)

    def finish(self) -> float:
        self.stop_event.set()
        self.join(5)
        return self.peak_rss


# -- the fake master (a process of its own) ------------------------------------------


def task_bytes(meta: dict[str, Any], name: str, ip: str) -> bytes:
    """A running Marathon task ``name`` with container IP ``ip``, as JSON."""
    task = {
        "id": f"{name}.{abs(hash((name, ip))):016x}",
        "name": name,
        "framework_id": meta["fw_id"],
        "executor_id": "",
        "slave_id": meta["agent_id"],
        "state": "TASK_RUNNING",
        "resources": {"disk": 0.0, "mem": 128.0, "gpus": 0.0, "cpus": 0.1},
        "role": "*",
        "statuses": [
            {
                "state": "TASK_RUNNING",
                "timestamp": 1715508000.5,
                "container_status": {
                    "container_id": {"value": f"c-{name}"},
                    "network_infos": [{"ip_addresses": [{"protocol": "IPv4", "ip_address": ip}]}],
                },
            }
        ],
        "user": "nobody",
        "labels": [],
    }
    return json.dumps(task, separators=(",", ":")).encode()


class FakeMaster:
    """Serves the state bytes: fixed, or alternating between two variants."""

    def __init__(self, state: Path, meta: dict[str, Any], port: int) -> None:
        self.meta = meta
        self.port = port
        me = f"master@127.0.0.1:{port}".encode()
        base = state.read_bytes()
        if LEADER not in base:
            raise SystemExit(f"{state}: no leader {LEADER!r} to rewrite")
        self.base = base.replace(LEADER, me)
        marker = b'"tasks":['
        at = self.base.find(marker)  # the first framework's (Marathon's) tasks
        if at < 0:
            raise SystemExit(f"{state}: no tasks list")
        self.at = at + len(marker)
        self.flips = [self.with_task(FLIP, ip) for ip in FLIP_IPS]
        self.current = self.flips[0]
        self.current_name = "flip0"
        self.alternate = False
        self.flip_next = 1
        self.watch_pid = 0
        self.lock = threading.Lock()
        self.log: list[dict[str, Any]] = []

    def with_task(self, name: str, ip: str) -> bytes:
        sep = b"" if self.base[self.at : self.at + 1] == b"]" else b","
        return self.base[: self.at] + task_bytes(self.meta, name, ip) + sep + self.base[self.at :]

    def control(self, body: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            if "watch_pid" in body:
                self.watch_pid = int(body["watch_pid"])
            mode = body.get("mode")
            if mode == "alternate":
                self.alternate = True
            elif mode == "flip0":
                self.alternate = False
                self.current, self.current_name = self.flips[0], "flip0"
            elif mode == "task":
                data = self.with_task(str(body["name"]), str(body["ip"]))
                self.alternate = False
                self.current, self.current_name = data, str(body["name"])
            return {"t": time.monotonic(), "requests": len(self.log)}

    def document(self) -> tuple[bytes, str]:
        with self.lock:
            if self.alternate:
                i = self.flip_next
                self.flip_next ^= 1
                return self.flips[i], f"flip{i}"
            return self.current, self.current_name


def _handler(master: FakeMaster) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def log_message(self, format: str, *args: Any) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: Iterable[tuple[str, str]] = ()) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for k, v in headers:
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path in ("/master/state", "/master/state.json", "/state.json", "/state"):
                arrived = time.monotonic()
                cpu = tree_cpu(master.watch_pid) if master.watch_pid else 0.0
                body, name = master.document()
                self._send(200, body)
                with master.lock:
                    master.log.append(
                        {
                            "t": arrived,
                            "done": time.monotonic(),
                            "variant": name,
                            "path": path,
                            "cpu": cpu,
                            "bytes": len(body),
                        }
                    )
            elif path == "/master/redirect":
                self._send(307, b"", [("Location", f"//127.0.0.1:{master.port}")])
            elif path == "/_bench/log":
                with master.lock:
                    self._send(200, json.dumps(master.log).encode())
            else:
                self._send(404, b"{}")

        def do_POST(self) -> None:
            if self.path != "/_bench/control":
                self._send(404, b"{}")
                return
            size = int(self.headers.get("Content-Length", "0"))
            body = json.loads(self.rfile.read(size) or b"{}")
            self._send(200, json.dumps(master.control(body)).encode())

    return Handler


def fake_master_main(state: Path, meta_file: Path, port: int) -> int:
    meta = json.loads(meta_file.read_text())
    master = FakeMaster(state, meta, port)
    httpd = ThreadingHTTPServer(("127.0.0.1", port), _handler(master))
    httpd.daemon_threads = True
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=httpd.shutdown).start())
    print("ready", flush=True)
    httpd.serve_forever(poll_interval=0.2)
    return 0


class MasterProc:
    """The fake master process and its control calls."""

    def __init__(self, state: Path, meta_file: Path, port: int) -> None:
        self.port = port
        self.proc = subprocess.Popen(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--fake-master",
                str(state),
                str(meta_file),
                str(port),
            ],
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if line.strip() != b"ready":
            self.stop()
            raise SystemExit("the fake master did not start")

    def control(self, **body: Any) -> dict[str, Any]:
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/_bench/control",
            data=json.dumps(body).encode(),
            method="POST",
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            result: dict[str, Any] = json.loads(resp.read())
        return result

    def log(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/_bench/log", timeout=30) as r:
            result: list[dict[str, Any]] = json.loads(r.read())
        return result

    def stop(self) -> bool:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.poll() is not None


# -- the synthetic state and its names -------------------------------------------------


def prepare_main(tasks: int, agents: int, seed: int, out_dir: Path, meta_file: Path) -> int:
    """In a child process: write the state (cached) and the names to ask."""
    sys.path[:0] = [str(ROOT), str(BENCH)]
    import generate as gen_bench
    import orjson

    from mesosdns.dns.wire import in_zone, plain_key_wire, text_to_wire
    from mesosdns.records.generator import GeneratorParams, generate
    from mesosdns.state.model import parse_state

    path = gen_bench.state_file(out_dir, tasks, agents, seed)
    data = path.read_bytes()
    doc = orjson.loads(data)
    fw = doc["frameworks"][0]
    meta: dict[str, Any] = {
        "state": str(path),
        "bytes": len(data),
        "fw_id": fw["id"],
        "fw_name": fw["name"],
        "agent_id": doc["slaves"][0]["id"],
    }
    del doc
    params = GeneratorParams(
        domain="mesos", ns_name="ns1.mesos.", listener_ips=("127.0.0.1",), masters=("",)
    )
    rs = generate(parse_state(data), params)
    zone = text_to_wire("mesos.") or b""

    def usable(name: str) -> bool:
        w = plain_key_wire(name)
        return w is not None and in_zone(w, zone) and "bench-" not in name

    a_names = sorted(n for n, v in rs.a.items() if v and usable(n) and ".marathon." in n)
    srv_names = sorted(n for n, v in rs.srv.items() if v and usable(n))
    rng = random.Random(seed + 11)
    meta["a_names"] = rng.sample(a_names, min(5000, len(a_names)))
    meta["srv_names"] = rng.sample(srv_names, min(2000, len(srv_names)))
    meta["ready_name"] = meta["a_names"][0]
    meta_file.write_text(json.dumps(meta))
    return 0


def prepared(tasks: int, agents: int, seed: int, out_dir: Path) -> tuple[Path, dict[str, Any]]:
    sys.path.insert(0, str(BENCH))
    import synth

    out_dir.mkdir(parents=True, exist_ok=True)
    meta_file = out_dir / (
        f"refresh-meta-t{tasks}-a{agents}-s{seed}-v{synth.SYNTH_VERSION}.{META_VERSION}.json"
    )
    if not meta_file.exists():
        print(f"  preparing the {tasks}-task state and its names ...", file=sys.stderr, flush=True)
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(ROOT)) if p)
        subprocess.run(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--prepare",
                str(tasks),
                str(agents),
                str(seed),
                str(out_dir),
                str(meta_file),
            ],
            check=True,
            env=env,
        )
    meta = json.loads(meta_file.read_text())
    return Path(meta["state"]), meta


# -- DNS over UDP ----------------------------------------------------------------


def query(qid: int, name: str, qtype: int) -> bytes:
    wire = b"".join(bytes([len(p)]) + p.encode() for p in name.strip(".").split(".")) + b"\0"
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + wire + struct.pack(">HH", qtype, 1)


def answered(reply: bytes) -> bool:
    """NOERROR with at least one answer record."""
    return len(reply) >= 12 and reply[3] & 0x0F == 0 and reply[6:8] != b"\0\0"


def _skip_name(data: bytes, i: int) -> int:
    while i < len(data):
        n = data[i]
        if n == 0:
            return i + 1
        if n & 0xC0 == 0xC0:
            return i + 2
        i += n + 1
    raise ValueError("truncated name")


def soa_serial(reply: bytes) -> int | None:
    """The serial of the first record after the question (answer or authority
    section: a SOA question for the domain is answered in the authority
    section, by the original too), if it is a SOA."""
    try:
        if len(reply) < 12 or reply[3] & 0x0F or reply[6:10] == b"\0\0\0\0":
            return None
        i = _skip_name(reply, 12) + 4
        i = _skip_name(reply, i)
        rtype = struct.unpack_from(">H", reply, i)[0]
        if rtype != 6:
            return None
        i = _skip_name(reply, i + 10)
        i = _skip_name(reply, i)
        return int(struct.unpack_from(">I", reply, i)[0])
    except (ValueError, struct.error, IndexError):
        return None


class Udp(asyncio.DatagramProtocol):
    """One socket; replies are handed to the callback registered for their ID."""

    def __init__(self) -> None:
        self.waiting: dict[int, Callable[[bytes, float], None]] = {}
        self.transport: asyncio.DatagramTransport | None = None
        self.qid = random.randrange(65536)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: Any) -> None:
        now = time.monotonic()
        if len(data) >= 2:
            cb = self.waiting.pop(struct.unpack_from(">H", data)[0], None)
            if cb is not None:
                cb(data, now)

    def send(self, name: str, qtype: int, cb: Callable[[bytes, float], None]) -> int:
        self.qid = (self.qid + 1) & 0xFFFF
        self.waiting[self.qid] = cb
        assert self.transport is not None
        self.transport.sendto(query(self.qid, name, qtype))
        return self.qid

    async def ask(self, name: str, qtype: int = 1, timeout: float = 0.5) -> bytes | None:
        fut: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()

        def done(data: bytes, _: float) -> None:
            if not fut.done():
                fut.set_result(data)

        qid = self.send(name, qtype, done)
        try:
            async with asyncio.timeout(timeout):
                return await fut
        except TimeoutError:
            self.waiting.pop(qid, None)
            return None


CLIENT_RCVBUF = 8 << 20  # capped by net.core.rmem_max (4 MiB here)


async def udp(port: int) -> Udp:
    """A client socket; a big receive buffer, so that the burst of replies a
    server sends after a stall is not dropped here (the default 208 KiB holds
    about 150 replies)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, CLIENT_RCVBUF)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    _, proto = await asyncio.get_running_loop().create_datagram_endpoint(Udp, sock=sock)
    return proto


def local_port(client: Udp) -> int:
    assert client.transport is not None
    return int(client.transport.get_extra_info("sockname")[1])


async def wait_answer(
    client: Udp, name: str, server: Server, timeout: float, every: float = 0.02
) -> float:
    """Ask ``name`` every ``every`` s until it answers; the reply's arrival time."""
    got: list[float] = []
    event = asyncio.Event()

    def cb(data: bytes, t: float) -> None:
        if answered(data) and not got:
            got.append(t)
            event.set()

    deadline = time.monotonic() + timeout
    while not got:
        server.check()
        if time.monotonic() > deadline:
            raise SystemExit(f"{name} did not answer within {timeout:.0f} s:\n{server.tail()}")
        client.send(name, 1, cb)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(every):
                await event.wait()
    return got[0]


# -- one server run ------------------------------------------------------------------


@dataclass
class Setup:
    tasks: int
    agents: int
    seed: int
    out_dir: Path
    server_cmd: str
    taskset: str
    refresh_seconds: int
    keep: bool
    work: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="mesosdns-refresh-")))


def server_argv(setup: Setup, config: Path) -> list[str]:
    argv = shlex.split(setup.server_cmd.replace("{config}", str(config)))
    if setup.taskset:
        argv = ["taskset", "-c", setup.taskset, *argv]
    return argv


def default_server_cmd() -> str:
    exe = Path(sys.executable).parent / "mesos-dns"
    if exe.exists():
        return f"{shlex.quote(str(exe))} -config={{config}}"
    return f"{shlex.quote(sys.executable)} -m mesosdns -config={{config}}"


class Run:
    """A fake master and a server configured to poll it."""

    def __init__(self, setup: Setup, meta: dict[str, Any], state: Path, tag: str) -> None:
        self.setup = setup
        self.meta = meta
        self.dir = setup.work / tag
        self.dir.mkdir(parents=True, exist_ok=True)
        meta_file = self.dir / "meta.json"
        meta_file.write_text(json.dumps({k: meta[k] for k in ("fw_id", "agent_id")}))
        self.master = MasterProc(state, meta_file, free_port())
        self.port, self.http_port = free_port(), free_port()
        self.config = {
            "masters": [f"127.0.0.1:{self.master.port}"],
            "refreshSeconds": setup.refresh_seconds,
            "stateTimeoutSeconds": 300,
            "port": self.port,
            "httpPort": self.http_port,
            "listener": "127.0.0.1",
            "HTTPListener": "127.0.0.1",
            "externalOn": False,
            "resolvers": ["127.0.0.1"],
        }
        self.config_file = self.dir / "config.json"
        self.config_file.write_text(json.dumps(self.config, indent=2))
        self.argv = server_argv(setup, self.config_file)
        self.server: Server | None = None

    def start(self) -> Server:
        self.server = Server(self.argv, self.dir / "server.log")
        self.master.control(watch_pid=self.server.pid)
        return self.server

    def stop(self) -> str:
        """Stop both; a line saying what was left (nothing, normally)."""
        left: list[int] = []
        if self.server is not None:
            left = self.server.stop()
        master_gone = self.master.stop()
        _reap_ours()
        if left or not master_gone:
            return f"LEFT RUNNING: server pids {left}, fake master stopped: {master_gone}"
        return "stopped: no server or fake master process left"

    def log_lines(self) -> list[str]:
        if self.server is None or not self.server.log.exists():
            return []
        return self.server.log.read_text(errors="replace").splitlines()


async def warm_wait(master: MasterProc, after: int, timeout: float) -> dict[str, Any]:
    """Wait for the master's GET number ``after`` (0-based) and return its record."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = await asyncio.to_thread(master.log)
        if len(log) > after:
            return log[after]
        await asyncio.sleep(0.05)
    raise SystemExit(f"the server did not poll the master within {timeout:.0f} s")


def ready_timeout(setup: Setup) -> float:
    return 120.0 + setup.tasks / 1000 * 3


async def probe_run(run: Run, qps: int, duration: float) -> dict[str, Any]:
    setup, meta = run.setup, run.meta
    server = run.start()
    sampler = MemSampler(server, 0.5)
    sampler.start()
    client = await udp(run.port)
    await wait_answer(client, meta["ready_name"], server, ready_timeout(setup))
    run.master.control(mode="alternate")
    # one more poll (of the alternating states), and its refresh done
    n = len(run.master.log())
    await warm_wait(run.master, n, setup.refresh_seconds * 3 + 60)
    await asyncio.sleep(min(2.0, setup.refresh_seconds / 2))
    # 70% A / 30% SRV by count of questions
    a = [(n, 1) for n in meta["a_names"]]
    s = [(n, 33) for n in meta["srv_names"]]
    rng = random.Random(5)
    names = [rng.choice(a) if rng.random() < 0.7 else rng.choice(s) for _ in range(20000)]
    total = int(qps * duration)
    sent_at = [0.0] * total
    latency = [float("nan")] * total
    rcode_bad = 0
    truncated = 0

    def make_cb(i: int) -> Callable[[bytes, float], None]:
        def cb(data: bytes, t: float) -> None:
            nonlocal rcode_bad, truncated
            latency[i] = t - sent_at[i]
            if not answered(data):
                rcode_bad += 1
            if len(data) > 2 and data[2] & 0x02:
                truncated += 1

        return cb

    soa_client = await udp(run.port)
    serials: list[tuple[float, int]] = []
    stop_soa = asyncio.Event()

    async def soa_loop() -> None:
        while not stop_soa.is_set():
            reply = await soa_client.ask("mesos.", 6, timeout=1.0)
            s = soa_serial(reply) if reply else None
            if s is not None and (not serials or serials[-1][1] != s):
                serials.append((time.monotonic(), s))
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(0.1):
                    await stop_soa.wait()

    soa_task = asyncio.create_task(soa_loop())
    cpu0 = tree_cpu(server.pid)
    drops0 = udp_drops(run.port)
    client_drops0 = udp_drops(local_port(client))
    gc.collect()
    gc.disable()
    try:
        t0 = time.monotonic()
        i = 0
        while i < total:
            due = min(total, int((time.monotonic() - t0) * qps) + 1)
            while i < due:
                name, qtype = names[i % len(names)]
                sent_at[i] = time.monotonic()
                # a reused ID drops the older waiter: counted as lost (it is 32 s old)
                client.send(name, qtype, make_cb(i))
                i += 1
            await asyncio.sleep(0.001)
        t_end = time.monotonic()
        await asyncio.sleep(LOST_AFTER + 0.1)
    finally:
        gc.enable()
    stop_soa.set()
    await soa_task
    cpu1 = tree_cpu(server.pid)
    drops = udp_drops(run.port) - drops0
    client_drops = udp_drops(local_port(client)) - client_drops0
    server.check()
    mem = tree_mem(server.pid)
    peak = sampler.finish()
    gets = [g for g in run.master.log() if t0 <= g["t"] <= t_end]
    all_gets = run.master.log()
    # refresh windows: each serial change belongs to the last poll whose
    # transfer ended before it (when a refresh outlasts refreshSeconds the next
    # GET may start before the change); the window runs from that poll's
    # arrival to the change. serials[0] is the serial when the SOA probe
    # started, not a change.
    changed = serials[1:]
    windows: list[tuple[float, float]] = []
    for t_change, _ in changed:
        before = [g for g in all_gets if g["done"] < t_change]
        if before:
            windows.append((before[-1]["t"], t_change))
    ok = [x for x in latency if x == x and x <= LOST_AFTER]
    lost = total - len(ok)
    replied = [x for x in latency if x == x]
    never = total - len(replied)

    def in_window(t: float) -> bool:
        return any(a <= t <= b for a, b in windows)

    during = [
        latency[j] for j in range(total) if latency[j] == latency[j] and in_window(sent_at[j])
    ]
    outside = [
        latency[j] for j in range(total) if latency[j] == latency[j] and not in_window(sent_at[j])
    ]
    changes = sum(1 for t, _ in changed if t0 <= t <= t_end)
    return {
        "sent": total,
        "seconds": t_end - t0,
        # over every reply, the late ones (> 2 s, counted as lost) included
        "p50": pct(replied, 0.50),
        "p99": pct(replied, 0.99),
        "p999": pct(replied, 0.999),
        "max": max(x for x in latency if x == x) if ok else float("nan"),
        "lost": lost,
        "never": never,
        "kernel_drops": drops,
        "client_drops": client_drops,
        "not_answered": rcode_bad,
        "truncated": truncated,
        "polls": len(gets),
        "serial_changes": changes,
        "during_n": len(during),
        "during_p99": pct(during, 0.99),
        "during_max": max(during) if during else float("nan"),
        "outside_p99": pct(outside, 0.99),
        "outside_max": max(outside) if outside else float("nan"),
        "timeline": "polls at "
        + " ".join(f"{g['t'] - t0:+.2f}/{g['done'] - t0:+.2f}" for g in all_gets)
        + " s; serial changes at "
        + " ".join(f"{t - t0:+.2f}" for t, _ in changed)
        + " s (from the start of the probe)",
        "refresh_s": statistics.median([b - a for a, b in windows]) if windows else float("nan"),
        "cpu_per_s": (cpu1 - cpu0) / (t_end - t0 + LOST_AFTER + 0.1),
        "hwm": mem["hwm"],
        "pss": mem["pss"],
        "peak_rss": peak,
        "procs": mem["procs"],
    }


async def reload_run(run: Run, reloads: int, tag: int) -> dict[str, Any]:
    setup, meta = run.setup, run.meta
    server = run.start()
    sampler = MemSampler(server, 0.05)
    sampler.start()
    client = await udp(run.port)
    await wait_answer(client, meta["ready_name"], server, ready_timeout(setup))
    # let the first load settle: the next poll of the same state and its refresh
    n = len(run.master.log())
    await warm_wait(run.master, n, setup.refresh_seconds * 3 + 60)
    await asyncio.sleep(1.0)
    await _idle(server)
    results: list[dict[str, float]] = []
    for k in range(reloads):
        name = f"bench-new-{tag}-{k}"
        ip = f"10.252.{tag % 250}.{k % 250 + 1}"
        before = len(run.master.log())
        switched = run.master.control(mode="task", name=name, ip=ip)["t"]
        answer = await wait_answer(
            client,
            f"{name}.{meta['fw_name']}.mesos.",
            server,
            timeout=setup.refresh_seconds * 3 + ready_timeout(setup),
            every=0.005,
        )
        cpu_answer = tree_cpu(server.pid)
        log = run.master.log()
        get = next((g for g in log[before:] if g["variant"] == name), None)
        if get is None:
            raise SystemExit("the name answered before the master served it")
        cpu_idle = await _idle(server)
        results.append(
            {
                "switch_to_answer": answer - switched,
                "get_to_answer": answer - get["t"],
                "transfer": get["done"] - get["t"],
                "cpu_to_answer": cpu_answer - get["cpu"],
                "cpu_until_idle": cpu_idle - get["cpu"],
            }
        )
    mem = tree_mem(server.pid)
    peak = sampler.finish()
    server.check()
    return {
        "reloads": results,
        "hwm": mem["hwm"],
        "pss": mem["pss"],
        "peak_rss": peak,
        "procs": mem["procs"],
        "each": mem["each"],
    }


async def _idle(server: Server, quiet: float = 0.01, every: float = 0.2) -> float:
    """Wait until the tree uses under ``quiet`` CPU s per ``every`` s; its CPU then."""
    last = tree_cpu(server.pid)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        await asyncio.sleep(every)
        now = tree_cpu(server.pid)
        if now - last < quiet:
            return now
        last = now
    return last


def answers_compiled(http_port: int) -> bool | None:
    """Whether the server says its DNS answers are prebuilt
    (``mesosdns_answers_compiled`` in /metrics); None when it does not say
    (the original has no such metric: it answers from its records always)."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{http_port}/metrics", timeout=2) as r:
            text = r.read().decode()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("mesosdns_answers_compiled "):
            return float(line.split()[1]) == 1
    return None


async def wait_compiled(run: Run, server: Server, timeout: float, every: float = 0.5
                        ) -> float | None:
    """When the server's answers were prebuilt (polled; not often: /metrics
    counts every record), None if it does not say."""
    deadline = time.monotonic() + timeout
    while True:
        server.check()
        got = await asyncio.to_thread(answers_compiled, run.http_port)
        if got is None:
            return None
        if got:
            return time.monotonic()
        if time.monotonic() > deadline:
            raise SystemExit(f"answers not compiled within {timeout:.0f} s:\n{server.tail()}")
        await asyncio.sleep(every)


async def cold_run(run: Run) -> dict[str, Any]:
    setup, meta = run.setup, run.meta
    server = run.start()
    client = await udp(run.port)
    answer = await wait_answer(client, meta["ready_name"], server, ready_timeout(setup))
    log = run.master.log()
    mem, cpu = tree_mem(server.pid), tree_cpu(server.pid)
    compiled = await wait_compiled(run, server, ready_timeout(setup))
    mem_compiled = tree_mem(server.pid) if compiled is not None else mem
    first = log[0] if log else {"t": float("nan"), "done": float("nan")}
    return {
        "start_to_answer": answer - server.started,
        "start_to_compiled": (answer if compiled is None else compiled) - server.started,
        "start_to_get": first["t"] - server.started,
        "get_to_answer": answer - first["t"],
        "transfer": first["done"] - first["t"],
        "cpu": cpu,
        "hwm": mem["hwm"],
        "hwm_compiled": mem_compiled["hwm"],
        "procs": mem["procs"],
    }


# -- reporting ----------------------------------------------------------------------


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * q))]


def med(rows: Sequence[dict[str, Any]], key: str) -> float:
    vals = [float(r[key]) for r in rows if r[key] == r[key]]
    return statistics.median(vals) if vals else float("nan")


def ms(x: float) -> str:
    if x != x:
        return "-"
    return f"{x * 1000:.2f} ms" if x < 1 else f"{x:.2f} s"


def summarize_log(lines: list[str]) -> str:
    """The server's log, in short: line count and a few distinct lines."""
    if not lines:
        return "server log: empty"
    keep: list[str] = []
    seen: set[str] = set()
    for line in lines:
        key = " ".join(w for w in line.split() if not any(c.isdigit() for c in w))[:80]
        if key not in seen:
            seen.add(key)
            keep.append(line[:200])
    shown = "\n    ".join(keep[:4] + (["..."] if len(keep) > 8 else []) + keep[4:][-4:])
    return (
        f"server log: {len(lines)} lines, {len(keep)} distinct; first and last ones:\n    {shown}"
    )


def command(args: argparse.Namespace, part: str, tasks: int) -> str:
    argv = [
        sys.executable,
        "bench/refresh.py",
        part,
        "--tasks",
        str(tasks),
        "--runs",
        str(args.runs),
    ]
    if args.agents:
        argv += ["--agents", str(args.agents)]
    if args.server_cmd:
        argv += ["--server-cmd", args.server_cmd]
    if args.taskset:
        argv += ["--taskset", args.taskset]
    if args.refresh_seconds != 10:
        argv += ["--refresh-seconds", str(args.refresh_seconds)]
    if part == "probe":
        if args.qps != 2000:
            argv += ["--qps", str(args.qps)]
        if args.duration != 60:
            argv += ["--duration", str(args.duration)]
    if part == "reload" and args.reloads != 3:
        argv += ["--reloads", str(args.reloads)]
    return shlex.join(argv)


def run_part(
    args: argparse.Namespace, part: str, setup: Setup, meta: dict[str, Any], state: Path
) -> list[str]:
    rows: list[dict[str, Any]] = []
    logs: list[str] = []
    for r in range(args.runs):
        run = Run(setup, meta, state, f"{part}-{setup.tasks}-{r}")
        try:
            if part == "probe":
                rows.append(asyncio.run(probe_run(run, args.qps, args.duration)))
            elif part == "reload":
                rows.append(asyncio.run(reload_run(run, args.reloads, r)))
            else:
                rows.append(asyncio.run(cold_run(run)))
            rows[-1]["load"] = os.getloadavg()[0]
        finally:
            status = run.stop()
            logs = run.log_lines()
            print(f"  {part} run {r + 1}/{args.runs}: {status}", file=sys.stderr, flush=True)
        print(
            f"  {part} run {r + 1}: {json.dumps(rows[-1], default=str)[:1500]}",
            file=sys.stderr,
            flush=True,
        )
    out = [
        f"### {part}, {setup.tasks} tasks / {setup.agents} agents "
        f"({meta['bytes'] / 1e6:.0f} MB state), median of {args.runs} run(s)",
        "",
    ]
    if part == "probe":
        out += [
            "| p50 | p99 | p99.9 | max | no reply within 2 s (never answered; dropped at "
            "the server's / the client's socket) "
            "| not NOERROR+answer | TC | polls | serial "
            "changes | refresh (GET -> new serial) | p99 / max while refreshing | p99 / max "
            "otherwise | server CPU | VmHWM sum | peak RSS sum | Pss sum |",
            "|" + "---|" * 16,
            f"| {ms(med(rows, 'p50'))} | {ms(med(rows, 'p99'))} | {ms(med(rows, 'p999'))} "
            f"| {ms(med(rows, 'max'))} | {med(rows, 'lost'):.0f} of {med(rows, 'sent'):.0f} "
            f"({med(rows, 'never'):.0f}; {med(rows, 'kernel_drops'):.0f} / "
            f"{med(rows, 'client_drops'):.0f}) "
            f"| {med(rows, 'not_answered'):.0f} | {med(rows, 'truncated'):.0f} "
            f"| {med(rows, 'polls'):.0f} | {med(rows, 'serial_changes'):.0f} "
            f"| {ms(med(rows, 'refresh_s'))} "
            f"| {ms(med(rows, 'during_p99'))} / {ms(med(rows, 'during_max'))} "
            f"| {ms(med(rows, 'outside_p99'))} / {ms(med(rows, 'outside_max'))} "
            f"| {med(rows, 'cpu_per_s') * 100:.0f}% of a core "
            f"| {med(rows, 'hwm'):.0f} MiB | {med(rows, 'peak_rss'):.0f} MiB "
            f"| {med(rows, 'pss'):.0f} MiB |",
            "",
            f"Per run: p99 {', '.join(ms(r['p99']) for r in rows)}; max "
            f"{', '.join(ms(r['max']) for r in rows)}; "
            f"lost {', '.join(str(r['lost']) for r in rows)}"
            f"; server processes {', '.join(str(int(r['procs'])) for r in rows)}.",
        ]
        out += [f"Run {i + 1}: {r['timeline']}." for i, r in enumerate(rows)]
    elif part == "reload":
        flat = [x for r in rows for x in r["reloads"]]
        out += [
            "| GET -> answer | master switch -> answer | state transfer | CPU GET -> answer "
            "| CPU GET -> idle | VmHWM sum | peak RSS sum | Pss sum |",
            "|" + "---|" * 8,
            f"| {ms(med(flat, 'get_to_answer'))} | {ms(med(flat, 'switch_to_answer'))} "
            f"| {ms(med(flat, 'transfer'))} | {med(flat, 'cpu_to_answer'):.2f} s "
            f"| {med(flat, 'cpu_until_idle'):.2f} s | {med(rows, 'hwm'):.0f} MiB "
            f"| {med(rows, 'peak_rss'):.0f} MiB | {med(rows, 'pss'):.0f} MiB |",
            "",
            f"Each reload (GET -> answer): {', '.join(ms(x['get_to_answer']) for x in flat)}; "
            f"server processes {', '.join(str(int(r['procs'])) for r in rows)}; "
            "VmHWM of each, in pid order: "
            + "; ".join(" / ".join(f"{x:.0f}" for x in r["each"]) for r in rows)
            + " MiB.",
        ]
    else:
        out += [
            "| start -> first answer | start -> first GET | GET -> answer | transfer "
            "| CPU until then | VmHWM sum | start -> answers compiled | VmHWM sum then |",
            "|" + "---|" * 8,
            f"| {ms(med(rows, 'start_to_answer'))} | {ms(med(rows, 'start_to_get'))} "
            f"| {ms(med(rows, 'get_to_answer'))} | {ms(med(rows, 'transfer'))} "
            f"| {med(rows, 'cpu'):.2f} s | {med(rows, 'hwm'):.0f} MiB "
            f"| {ms(med(rows, 'start_to_compiled'))} | {med(rows, 'hwm_compiled'):.0f} MiB |",
            "",
            f"Per run: {', '.join(ms(r['start_to_answer']) for r in rows)}; answers "
            f"compiled: {', '.join(ms(r['start_to_compiled']) for r in rows)}.",
            "",
            "A server that says nothing of its answers being compiled (no "
            "``mesosdns_answers_compiled`` in /metrics: the original, which answers from its "
            "records always) counts as compiled at its first answer.",
        ]
    loads = ", ".join(f"{r['load']:.2f}" for r in rows)
    out += [
        "",
        f"Load average (1 min) at the end of each run, this benchmark included: {loads}.",
        "",
        f"command: `{command(args, part, setup.tasks)}`",
        "",
        summarize_log(logs),
        "",
    ]
    return out


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--fake-master"]:
        return fake_master_main(Path(argv[1]), Path(argv[2]), int(argv[3]))
    if argv[:1] == ["--prepare"]:
        return prepare_main(int(argv[1]), int(argv[2]), int(argv[3]), Path(argv[4]), Path(argv[5]))
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("parts", nargs="*", metavar="part", help="probe, reload, cold (default: all)")
    ap.add_argument(
        "--tasks", type=int, action="append", help="tasks (repeatable; default 10000 and 100000)"
    )
    ap.add_argument("--agents", type=int, default=0, help="agents (default: tasks / 10)")
    ap.add_argument("--runs", type=int, default=1, help="fresh servers per part (medians)")
    ap.add_argument("--reloads", type=int, default=3, help="reloads per reload run")
    ap.add_argument("--qps", type=int, default=2000)
    ap.add_argument("--duration", type=float, default=60.0, help="probe seconds")
    ap.add_argument("--refresh-seconds", type=int, default=10)
    ap.add_argument(
        "--server-cmd",
        default="",
        help="server command line, {config} is the config file "
        "(default: this checkout's mesos-dns -config={config})",
    )
    ap.add_argument("--taskset", default="", help="pin the server to these CPUs (taskset -c)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", type=Path, default=BENCH / "out")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, configs)")
    args = ap.parse_args(argv)
    unknown = [p for p in args.parts if p not in PARTS]
    if unknown:
        ap.error(f"unknown part(s) {unknown}: choose from {', '.join(PARTS)}")
    parts = [p for p in PARTS if p in args.parts] or list(PARTS)
    sizes = args.tasks or [10_000, 100_000]
    _set_subreaper()
    # SIGTERM (and SIGINT, even when started in the background, where it is
    # ignored) stop the benchmark through its cleanups: no server is left behind.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    print(f"command: {shlex.join([sys.executable, 'bench/refresh.py', *argv])}", flush=True)
    print(
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
        f"{time.strftime('%Y-%m-%d %H:%M %Z')}",
        flush=True,
    )
    report: list[str] = []
    work_dirs: list[Path] = []
    try:
        for tasks in sizes:
            agents = args.agents or max(1, tasks // 10)
            state, meta = prepared(tasks, agents, args.seed, args.out_dir)
            setup = Setup(
                tasks,
                agents,
                args.seed,
                args.out_dir,
                args.server_cmd or default_server_cmd(),
                args.taskset,
                args.refresh_seconds,
                args.keep,
            )
            work_dirs.append(setup.work)
            print(
                f"server: {shlex.join(server_argv(setup, Path('{config}')))}; "
                f"work dir {setup.work}",
                flush=True,
            )
            for part in parts:
                lines = run_part(args, part, setup, meta, state)
                print("\n".join(lines), flush=True)
                report += lines
    finally:
        if not args.keep:
            import shutil

            for d in work_dirs:
                shutil.rmtree(d, ignore_errors=True)
        _reap_ours()
        left = our_children()
        print(f"child processes left: {left}" if left else "no child process left", flush=True)
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def our_children() -> list[int]:
    me = os.getpid()
    out = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            fields = _stat(int(entry))
            if fields is not None and int(fields[1]) == me and fields[0] not in ("Z", "X"):
                out.append(int(entry))
    return out


if __name__ == "__main__":
    sys.exit(main())
