"""Helpers for the reliability tests (issue 7): the whole service in a thread,
a small real-shaped state with a "victim" and a "sentinel" task, misbehaving
upstream resolvers, and latency probes.

`AppThread` runs `mesosdns.app.App` (poller, DNS, HTTP) on its own event loop
in a daemon thread, so tests use blocking clients as users do and switch
faults from the test thread.
"""

from __future__ import annotations

import asyncio
import copy
import json
import random
import socket
import statistics
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import dns.message
import dns.query
import dns.rcode
import dns.rrset
from dns_support import LoopThread

from mesosdns.app import App
from mesosdns.config import parse_config

VICTIM_AGENT = "a1b2c3d4-0000-4000-8000-000000000001-S1"
SENTINEL_AGENT = "a1b2c3d4-0000-4000-8000-000000000001-S2"


def good_state(leader: str = "master@127.0.0.1:5050", extra_tasks: int = 0) -> dict[str, Any]:
    """Two agents, two frameworks, one task each: ``victim.marathon.mesos``
    (the one tests break) and ``sentinel.chronos.mesos`` (never touched)."""

    def task(name: str, fw: str, agent: str, ip: str, port: int) -> dict[str, Any]:
        return {
            "id": f"{name}.0f0e0d0c-{port}",
            "name": name,
            "framework_id": fw,
            "slave_id": agent,
            "state": "TASK_RUNNING",
            "resources": {"cpus": 0.1, "mem": 32.0, "ports": f"[{port}-{port}]"},
            "statuses": [
                {
                    "state": "TASK_RUNNING",
                    "timestamp": 1715508012.5,
                    "labels": [{"key": "note", "value": "x"}],
                    "container_status": {"network_infos": [{"ip_addresses": [{"ip_address": ip}]}]},
                }
            ],
            "labels": [{"key": "team", "value": "a"}],
            "discovery": {
                "name": name,
                "ports": {"ports": [{"number": port, "name": "http", "protocol": "tcp"}]},
            },
        }

    victim_tasks = [task("victim", "fw-1", VICTIM_AGENT, "10.250.0.1", 31001)]
    victim_tasks += [
        task(f"extra{i}", "fw-1", VICTIM_AGENT, f"10.250.1.{i % 250 + 1}", 32000 + i)
        for i in range(extra_tasks)
    ]
    return {
        "version": "1.10.0",
        "leader": leader,
        "hostname": "master",
        "slaves": [
            {"id": VICTIM_AGENT, "hostname": "10.0.0.21", "pid": "slave(1)@10.0.0.21:5051"},
            {"id": SENTINEL_AGENT, "hostname": "10.0.0.22", "pid": "slave(1)@10.0.0.22:5051"},
        ],
        "frameworks": [
            {
                "id": "fw-1",
                "name": "marathon",
                "pid": "scheduler-1@10.0.0.31:8080",
                "hostname": "10.0.0.31",
                "tasks": victim_tasks,
            },
            {
                "id": "fw-2",
                "name": "chronos",
                "pid": "scheduler-2@10.0.0.32:4400",
                "hostname": "10.0.0.32",
                "tasks": [task("sentinel", "fw-2", SENTINEL_AGENT, "10.250.0.2", 31002)],
            },
        ],
    }


def deep(doc: Any) -> Any:
    return copy.deepcopy(doc)


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AppThread:
    """The whole service (``App``) on 127.0.0.1, free ports, in a loop thread.

    ``config`` is merged over a base: DNS and HTTP on 127.0.0.1 port 0, no
    resolvers, a refresh period of an hour (tests refresh with `refresh`).
    """

    def __init__(self, config: dict[str, Any], base_dir: Path | None = None) -> None:
        doc: dict[str, Any] = {
            "port": 0,
            "httpPort": 0,
            "listener": "127.0.0.1",
            "HTTPListener": "127.0.0.1",
            "externalon": False,
            "refreshSeconds": 3600,
            "stateTimeoutSeconds": 2,
            **config,
        }
        name = str(base_dir / "config.json") if base_dir is not None else "<test>"
        if base_dir is not None:
            Path(name).write_text(json.dumps(doc))
        self.config, _ = parse_config(json.dumps(doc), name)
        self.lt = LoopThread()
        self.app = App(self.config)
        self.lt.run(self.app.start(), timeout=20)
        assert self.app.dns is not None
        self.dns_port = self.app.dns.port
        self.http_port = self.app.http_port

    # -- control --------------------------------------------------------

    def refresh(self, timeout: float = 20.0) -> bool:
        """One refresh, now (the poller's own loop sleeps meanwhile)."""
        assert self.app.poller is not None
        return self.lt.run(self.app.poller.refresh(), timeout)

    def wait_ready(self, timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        while not self.app.store.ready:
            if time.monotonic() > end:
                raise AssertionError("no state loaded in time")
            time.sleep(0.01)

    def serial(self) -> int:
        snap = self.app.store.current
        return snap.serial if snap is not None else 0

    def call(self, fn: Callable[[], Any]) -> Any:
        return self.lt.call(fn)

    def stop(self) -> None:
        try:
            self.lt.run(self.app.stop(), timeout=20)
        finally:
            self.lt.close()

    # -- clients --------------------------------------------------------

    def query(
        self, name: str, rdtype: str = "A", *, tcp: bool = False, timeout: float = 2.0
    ) -> dns.message.Message:
        q = dns.message.make_query(name, rdtype, use_edns=False)
        if tcp:
            return dns.query.tcp(q, "127.0.0.1", port=self.dns_port, timeout=timeout)
        return dns.query.udp(q, "127.0.0.1", port=self.dns_port, timeout=timeout)

    def addresses(self, name: str) -> set[str]:
        r = self.query(name)
        return {rr.address for rrset in r.answer for rr in rrset}

    def http(self, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
        url = f"http://127.0.0.1:{self.http_port}{path}"
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp:
                return int(resp.status), resp.read()
        except urllib.error.HTTPError as exc:
            return int(exc.code), exc.read()

    def metrics(self) -> dict[str, float]:
        _, body = self.http("/metrics")
        out: dict[str, float] = {}
        for line in body.decode().splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out


@contextmanager
def running_app(config: dict[str, Any], base_dir: Path | None = None) -> Iterator[AppThread]:
    app = AppThread(config, base_dir)
    try:
        yield app
    finally:
        app.stop()


# -- latency probes ----------------------------------------------------------


class Prober:
    """Sends in-domain UDP queries at a steady pace from a thread and records
    each one's latency (None: no answer within ``timeout``) and RCODE."""

    def __init__(self, port: int, name: str, interval: float = 0.005, timeout: float = 1.0) -> None:
        self.port = port
        self.name = name
        self.interval = interval
        self.timeout = timeout
        self.latencies: list[float | None] = []
        self.rcodes: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        q = dns.message.make_query(self.name, "A", use_edns=False)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.settimeout(self.timeout)
            sock.connect(("127.0.0.1", self.port))
            ident = random.randrange(1 << 16)
            while not self._stop.is_set():
                ident = (ident + 1) & 0xFFFF
                q.id = ident
                started = time.perf_counter()
                sock.send(q.to_wire())
                got: float | None = None
                try:
                    while True:
                        data = sock.recv(65535)
                        if data[:2] == struct.pack(">H", ident):
                            got = time.perf_counter() - started
                            self.rcodes.append(data[3] & 0x0F)
                            break
                except TimeoutError:
                    pass
                self.latencies.append(got)
                self._stop.wait(self.interval)

    @property
    def lost(self) -> int:
        return sum(1 for x in self.latencies if x is None)

    def summary(self) -> str:
        ok = sorted(x for x in self.latencies if x is not None)
        if not ok:
            return f"{len(self.latencies)} queries, all lost"
        p99 = ok[min(len(ok) - 1, int(len(ok) * 0.99))]
        return (
            f"{len(self.latencies)} queries, {self.lost} lost, median "
            f"{statistics.median(ok) * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms, "
            f"max {ok[-1] * 1000:.2f} ms"
        )


def report(request: Any, line: str) -> None:
    """Print a figure on the terminal, past pytest's output capture."""
    plugins = request.config.pluginmanager
    reporter = plugins.get_plugin("terminalreporter")
    capture = plugins.get_plugin("capturemanager")
    if reporter is None or capture is None:  # pragma: no cover
        print(line)
        return
    with capture.global_and_fixture_disabled():
        reporter.write_line(line)


def rcode_name(code: int) -> str:
    return dns.rcode.to_text(dns.rcode.Rcode(code))


def wait_until(pred: Callable[[], bool], timeout: float, what: str, step: float = 0.02) -> float:
    """Wait for ``pred``; the seconds it took. Fails after ``timeout``."""
    started = time.monotonic()
    while True:
        if pred():
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"not in {timeout}s: {what}")
        time.sleep(step)


# -- misbehaving upstream resolvers -------------------------------------------


class BadUpstream:
    """A UDP resolver on 127.0.0.1 whose behaviour the test switches:

    ``ok`` (an A record), ``silent`` (never answers), ``slow`` (answers after
    ``delay`` seconds), ``garbage`` (random bytes, then nothing),
    ``wrong-id`` (a correct answer under another ID), ``wrong-question``
    (the right ID, another question), ``truncated`` (the header only).
    """

    def __init__(self, mode: str = "ok", delay: float = 0.5) -> None:
        self.mode = mode
        self.delay = delay
        self.received = 0
        self.lt = LoopThread()
        self.transport: asyncio.DatagramTransport | None = None
        self.port = self.lt.run(self._start())

    async def _start(self) -> int:
        loop = asyncio.get_running_loop()
        outer = self

        class Proto(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                outer.received += 1
                outer._answer(data, addr)

        transport, _ = await loop.create_datagram_endpoint(Proto, local_addr=("127.0.0.1", 0))
        self.transport = transport
        return int(transport.get_extra_info("sockname")[1])

    def _answer(self, data: bytes, addr: tuple[str, int]) -> None:
        mode = self.mode
        transport = self.transport
        if transport is None or mode == "silent":
            return
        if mode == "garbage":
            transport.sendto(random.randbytes(random.randrange(1, 600)), addr)
            return
        try:
            q = dns.message.from_wire(data)
        except Exception:
            return
        r = dns.message.make_response(q)
        r.answer.append(dns.rrset.from_text(q.question[0].name, 60, "IN", "A", "192.0.2.99"))
        if mode == "wrong-id":
            r.id = (q.id + 1) & 0xFFFF
        elif mode == "wrong-question":
            other = dns.message.make_query("elsewhere.example.", "A")
            other.id = q.id
            r = dns.message.make_response(other)
        wire = r.to_wire()
        if mode == "truncated":
            wire = wire[:7]
        if mode == "slow":
            asyncio.get_running_loop().call_later(self.delay, transport.sendto, wire, addr)
        else:
            transport.sendto(wire, addr)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def close(self) -> None:
        if self.transport is not None:
            self.lt.call(self.transport.close)
        self.lt.close()
