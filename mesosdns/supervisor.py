"""The supervisor: starts, watches and stops the builder and the servers.

The process the command line starts. It forks:

- ``workers`` serving processes (`mesosdns.server.worker`), the first one
  with the HTTP API, all answering DNS on one port (SO_REUSEPORT);
- one builder process (`mesosdns.builder.process`), at a lower CPU priority,
  which does all the work that depends on the cluster state and publishes
  each version to the servers.

A child that dies is logged and started again (after a pause that grows
while it keeps dying soon after its start); the servers keep answering
with the last version while the builder is away. SIGTERM and SIGINT stop
every child (SIGKILL after `STOP_TIMEOUT`); SIGHUP re-reads the config file
and hands what can change live to the children. Children also die with the
supervisor (PR_SET_PDEATHSIG), so none is ever left behind. Exit status: 0
after a signal; the builder's fatal status (1: ZooKeeper named no leader in
time, 2: operator zones that do not load); 1 when the servers cannot start
(a port in use).
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.connection
import os
import pickle
import shutil
import signal
import socket
import tempfile
import time
from dataclasses import dataclass, field
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from mesosdns import __version__
from mesosdns.app import reloaded
from mesosdns.builder import process as builder_process
from mesosdns.builder.service import check_reload
from mesosdns.config import Config, config_key
from mesosdns.dns.rrl import TABLE_FILE, RRLTable
from mesosdns.errors import ConfigError
from mesosdns.server import worker

log = logging.getLogger(__name__)

STOP_TIMEOUT = 10.0
START_TIMEOUT = 30.0
# a child that lived this long is restarted at once; sooner, after a pause
STABLE_AFTER = 10.0
RESTART_PAUSE = 0.5
RESTART_PAUSE_MAX = 10.0

_fork = multiprocessing.get_context("fork")


@dataclass
class _Child:
    role: str  # "builder" or "worker N"
    index: int = -1  # a worker's index
    proc: BaseProcess | None = None
    started: float = 0.0
    pause: float = RESTART_PAUSE
    restart_at: float | None = None
    starts: int = 0


@dataclass
class Supervisor:
    config: Config
    run_dir: str = ""
    dns_port: int = 0
    children: list[_Child] = field(default_factory=list)
    exit_code: int = 0
    _stopping: bool = False
    _reload: bool = False
    _wake: tuple[socket.socket, socket.socket] | None = None

    def run(self) -> int:
        self.run_dir = tempfile.mkdtemp(prefix="mesosdns-")
        self._signals()
        try:
            return self._run()
        finally:
            self._stop_children()
            shutil.rmtree(self.run_dir, ignore_errors=True)

    def _run(self) -> int:
        # without DNS, one process serves the HTTP API; more would idle
        n = self.config.workers if self.config.dns_on else 1
        if self.config.rrl is not None:
            # rrl: one table of accounts for every serving process, made
            # before any of them (replacements map the same file)
            RRLTable.create(os.path.join(self.run_dir, TABLE_FILE))
        first = _Child("worker 0", 0)
        self.children.append(first)
        got = self._start_worker(first, self.config.port)
        if got is None:
            return 1
        self.dns_port = got
        for i in range(1, n):
            child = _Child(f"worker {i}", i)
            self.children.append(child)
            if self._start_worker(child, self.dns_port) is None:
                return 1
        self.children.append(_Child("builder"))
        self._start_builder(self.children[-1])
        log.info("mesosdns %s started (domain %s): %d serving process%s and a builder",
                 __version__, self.config.domain, n, "" if n == 1 else "es")
        return self._watch()

    # -- children ------------------------------------------------------

    def _start_worker(self, child: _Child, port: int) -> int | None:
        """Start a serving process; its DNS port once it listens, or None."""
        recv, send = _fork.Pipe(duplex=False)
        proc = _fork.Process(
            target=_exit_with, name=f"mesosdns {child.role}",
            args=(worker.main, self.config, self.run_dir, child.index, port, os.getpid(), send,
                  child.starts > 0),
        )
        proc.start()
        child.starts += 1
        send.close()
        child.proc, child.started = proc, time.monotonic()
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and not self._stopping:
            ready = multiprocessing.connection.wait([recv, proc.sentinel], 0.2)
            if recv in ready:
                try:
                    msg = recv.recv()
                except EOFError:
                    break
                if msg[0] == "listening":
                    recv.close()
                    return int(msg[1])
                break
            if proc.sentinel in ready:
                break
        recv.close()
        log.error("%s did not start", child.role)
        return None

    def _start_builder(self, child: _Child) -> None:
        proc = _fork.Process(
            target=_exit_with, name="mesosdns builder",
            args=(builder_process.main, self.config, self.run_dir, os.getpid()),
        )
        proc.start()
        child.proc, child.started = proc, time.monotonic()

    def _watch(self) -> int:
        assert self._wake is not None
        while not self._stopping:
            waits: list[Any] = [self._wake[0]]
            waits += [c.proc.sentinel for c in self.children if c.proc is not None]
            timeout = 1.0
            now = time.monotonic()
            due = [c.restart_at for c in self.children if c.restart_at is not None]
            if due:
                timeout = max(0.0, min(min(due) - now, timeout))
            multiprocessing.connection.wait(waits, timeout)
            self._drain_wake()
            if self._take_reload():
                self._reload_config()
            for child in self.children:
                if self._stopped():
                    break
                self._check(child)
        return self.exit_code

    def _check(self, child: _Child) -> None:
        now = time.monotonic()
        proc = child.proc
        if proc is not None and proc.exitcode is not None:
            code = proc.exitcode
            proc.join()
            child.proc = None
            if child.role == "builder" and code >= builder_process.FATAL_BASE:
                self.exit_code = code - builder_process.FATAL_BASE
                self._stopping = True
                return
            lived = now - child.started
            child.pause = RESTART_PAUSE if lived >= STABLE_AFTER else min(
                child.pause * 2, RESTART_PAUSE_MAX)
            child.restart_at = now + (0.0 if lived >= STABLE_AFTER else child.pause)
            log.error("%s (pid %s) ended with %s after %.1fs; starting it again",
                      child.role, proc.pid, _status(code), lived)
        if child.proc is None and child.restart_at is not None and now >= child.restart_at:
            child.restart_at = None
            if child.role == "builder":
                self._start_builder(child)
            elif self._start_worker(child, self.dns_port) is None:
                child.restart_at = time.monotonic() + child.pause
            else:
                log.info("%s is serving again", child.role)

    def _stop_children(self) -> None:
        procs = [c.proc for c in self.children if c.proc is not None]
        for proc in procs:
            if proc.exitcode is None and proc.pid is not None:
                _signal(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT
        for proc in procs:
            proc.join(max(0.0, deadline - time.monotonic()))
            if proc.exitcode is None and proc.pid is not None:
                log.error("%s did not stop within %.0fs; killing it", proc.name, STOP_TIMEOUT)
                _signal(proc.pid, signal.SIGKILL)
                proc.join()

    # -- signals -------------------------------------------------------

    def _signals(self) -> None:
        self._wake = socket.socketpair()
        for s in self._wake:
            s.setblocking(False)
        signal.set_wakeup_fd(self._wake[1].fileno())
        signal.signal(signal.SIGTERM, self._on_stop)
        signal.signal(signal.SIGINT, self._on_stop)
        signal.signal(signal.SIGHUP, self._on_hup)

    def _on_stop(self, signum: int, frame: FrameType | None) -> None:
        if not self._stopping:
            log.info("shutting down")
        self._stopping = True

    def _on_hup(self, signum: int, frame: FrameType | None) -> None:
        self._reload = True

    def _stopped(self) -> bool:  # set by a signal handler at any moment
        return self._stopping

    def _take_reload(self) -> bool:
        wanted, self._reload = self._reload, False
        return wanted

    def _drain_wake(self) -> None:
        assert self._wake is not None
        try:
            while self._wake[0].recv(512):
                pass
        except (BlockingIOError, InterruptedError):
            pass

    def _reload_config(self) -> None:
        """SIGHUP: the config file again; its hot fields go to the children."""
        merged, hot = reloaded(self.config)
        if merged is None:
            return
        try:
            check_reload(merged)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("config reload rejected: %s", problem)
            return
        self.config = merged
        path = builder_process.reload_path(self.run_dir)
        with open(path + ".tmp", "wb") as f:
            pickle.dump((merged, hot), f)
        os.replace(path + ".tmp", path)
        for child in self.children:
            if child.proc is not None and child.proc.pid is not None:
                _signal(child.proc.pid, signal.SIGHUP)
        log.info("config reload applied: %s", ", ".join(config_key(k) for k in sorted(hot)))


def _exit_with(main: Any, *args: Any) -> None:
    """A child's entry point: default signal handling, then ``main``'s status."""
    signal.set_wakeup_fd(-1)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_DFL)
    signal.signal(signal.SIGHUP, signal.SIG_IGN)  # until the child's own handler is set
    raise SystemExit(main(*args))


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def _status(code: int) -> str:
    return f"signal {-code}" if code < 0 else f"status {code}"


def run(config: Config) -> int:
    """Serve until told to stop; the exit status."""
    try:
        check_reload(config)  # zones or an IAM file that cannot load: stop before any fork
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("cannot start: %s", problem)
        return 2
    return Supervisor(config).run()
