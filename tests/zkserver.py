"""A real ZooKeeper (Debian's ``zookeeper`` package) for tests, on loopback.

``ZooKeeperServer`` runs a standalone server on a free 127.0.0.1 port with a
temporary data dir; ``ZooKeeperEnsemble`` runs a 3-node quorum the same way.
``register_master`` creates the znode a Mesos master creates when it joins
the election: an ephemeral sequential ``json.info_`` holding MasterInfo JSON.

When ZooKeeper or Java is missing, ``require_zookeeper()`` skips the test, or
fails it when the environment says ``CI=true`` (or ``CI=1``).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

ZK_JAR = Path("/usr/share/java/zookeeper.jar")
LOG_JAR = Path("/usr/share/java/slf4j-simple.jar")
STANDALONE_MAIN = "org.apache.zookeeper.server.ZooKeeperServerMain"
QUORUM_MAIN = "org.apache.zookeeper.server.quorum.QuorumPeerMain"


def zookeeper_available() -> str | None:
    """None when a server can be started, else the reason it cannot."""
    if shutil.which("java") is None:
        return "java is not installed"
    if not ZK_JAR.exists():
        return f"{ZK_JAR} is missing (Debian package zookeeper)"
    return None


def require_zookeeper() -> None:
    reason = zookeeper_available()
    if reason is None:
        return
    if os.environ.get("CI", "").lower() in ("true", "1"):
        pytest.fail(f"ZooKeeper is required in CI: {reason}")
    pytest.skip(f"ZooKeeper unavailable: {reason}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def four_letter(port: int, word: bytes = b"ruok", timeout: float = 0.5) -> bytes:
    """Send a four-letter word; b"" when the server does not answer."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(word)
            chunks = []
            while chunk := s.recv(4096):
                chunks.append(chunk)
            return b"".join(chunks)
    except OSError:
        return b""


class ZooKeeperServer:
    """One ZooKeeper JVM; standalone unless ``quorum`` settings are given."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        *,
        myid: int | None = None,
        quorum: list[tuple[int, int, int]] | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.port = port or free_port()
        self.myid = myid
        self.quorum = quorum  # [(myid, peer port, election port)]
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self._log_start = 0

    @property
    def hosts(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _write_config(self) -> Path:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        lines = [
            "tickTime=200",
            "initLimit=20",
            "syncLimit=10",
            f"dataDir={self.data_dir}",
            f"clientPort={self.port}",
            "clientPortAddress=127.0.0.1",
            "admin.enableServer=false",
            "4lw.commands.whitelist=ruok,srvr,stat,mntr",
            "minSessionTimeout=400",
            "maxSessionTimeout=60000",
        ]
        if self.quorum is not None:
            assert self.myid is not None
            (self.data_dir / "myid").write_text(f"{self.myid}\n")
            lines += [
                f"server.{sid}=127.0.0.1:{peer}:{election}" for sid, peer, election in self.quorum
            ]
        cfg = self.data_dir / "zoo.cfg"
        cfg.write_text("\n".join(lines) + "\n")
        return cfg

    def start(self, timeout: float = 30.0, wait: bool = True) -> ZooKeeperServer:
        require_zookeeper()
        cfg = self._write_config()
        classpath = str(ZK_JAR) + (f":{LOG_JAR}" if LOG_JAR.exists() else "")
        main = QUORUM_MAIN if self.quorum is not None else STANDALONE_MAIN
        log_path = self.data_dir / "server.log"
        self._log_start = log_path.stat().st_size if log_path.exists() else 0
        self._log = open(log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                "java",
                "-Xms32m",
                "-Xmx128m",
                "-XX:+UseSerialGC",
                "-XX:TieredStopAtLevel=1",
                "-Xshare:auto",
                "-Dzookeeper.jmx.log4j.disable=true",
                "-Dorg.slf4j.simpleLogger.defaultLogLevel=warn",
                "-cp",
                classpath,
                main,
                str(cfg),
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        if wait:
            self.wait_ready(timeout)
        return self

    def _bind_failed(self) -> bool:
        """The server exited because a port was taken: the ports are picked
        free, but any outgoing connection on this machine may take one as its
        local port before (or, for a restart, while) the server binds it."""
        log = self.data_dir / "server.log"
        return self.proc is not None and self.proc.poll() is not None and (
            b"Address already in use" in log.read_bytes()[self._log_start :]
        )

    def serving(self) -> bool:
        """True when the server answers and is part of a working quorum."""
        return b"Mode:" in four_letter(self.port, b"srvr")

    def wait_ready(self, timeout: float = 30.0) -> None:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self._bind_failed() and time.monotonic() < end - 5:
                self.stop()  # a port was taken meanwhile: wait, then try again
                time.sleep(1.0)
                self.start(wait=False)
                continue
            if self.proc is not None and self.proc.poll() is not None:
                raise RuntimeError(f"ZooKeeper exited early; see {self.data_dir / 'server.log'}")
            if four_letter(self.port) == b"imok" and self.serving():
                return
            time.sleep(0.05)
        raise TimeoutError(f"ZooKeeper on {self.hosts} not ready after {timeout}s")

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)
        if self._log is not None:
            self._log.close()
            self._log = None


class ZooKeeperEnsemble:
    """A 3-node quorum on loopback."""

    def __init__(self, base_dir: Path, size: int = 3) -> None:
        quorum = [(i + 1, free_port(), free_port()) for i in range(size)]
        self.servers = [
            ZooKeeperServer(base_dir / f"zk{sid}", myid=sid, quorum=quorum) for sid, _, _ in quorum
        ]

    @property
    def hosts(self) -> str:
        return ",".join(s.hosts for s in self.servers)

    def start(self, timeout: float = 40.0) -> ZooKeeperEnsemble:
        for server in self.servers:
            server.start(wait=False)
        for server in self.servers:
            server.wait_ready(timeout)
        return self

    def stop(self) -> None:
        for server in self.servers:
            server.stop()


@contextlib.contextmanager
def running_zookeeper(data_dir: Path) -> Iterator[ZooKeeperServer]:
    server = ZooKeeperServer(data_dir).start()
    try:
        yield server
    finally:
        server.stop()


def master_info(
    ip: str, port: int = 5050, *, hostname: str | None = None, ident: str | None = None
) -> dict[str, Any]:
    """MasterInfo as Mesos (>= 0.24) writes it to ZooKeeper, JSON-encoded."""
    packed = 0
    if ":" not in ip:
        packed = int.from_bytes(socket.inet_aton(ip), "little")
    return {
        "address": {"hostname": hostname or ip, "ip": ip, "port": port},
        "hostname": hostname or ip,
        "id": ident or f"master-{ip}-{port}",
        "ip": packed,
        "pid": f"master@{ip}:{port}",
        "port": port,
        "version": "1.11.0",
    }


def register_master(client: Any, path: str, ip: str, port: int = 5050, **kw: Any) -> str:
    """Join the election as a Mesos master does; returns the znode path."""
    client.ensure_path(path)
    data = orjson.dumps(master_info(ip, port, **kw))
    return str(client.create(f"{path}/json.info_", data, ephemeral=True, sequence=True))
