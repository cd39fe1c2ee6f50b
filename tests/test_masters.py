"""Leader detection: MasterInfo decoding and a real ZooKeeper on loopback."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import orjson
import pytest
from zkserver import (
    ZooKeeperEnsemble,
    ZooKeeperServer,
    free_port,
    master_info,
    register_master,
    require_zookeeper,
)

from mesosdns.config import parse_zk_url
from mesosdns.state.masters import (
    MasterDetector,
    initial_masters,
    master_address,
    ordered,
    zk_connect_string,
)

kazoo_client = pytest.importorskip("kazoo.client")

T = TypeVar("T")
STATIC = ["10.0.0.1:5050", "10.0.0.2:5050"]


def run(coro_fn: Callable[[], Awaitable[T]], timeout: float = 30.0) -> T:
    async def main() -> T:
        return await asyncio.wait_for(coro_fn(), timeout)

    return asyncio.run(main())


async def eventually(predicate: Callable[[], bool], timeout: float = 3.0) -> None:
    end = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > end:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


class Recorder:
    """Collects on_change calls and checks they run on the loop's thread."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.timeouts = 0
        self.thread = threading.get_ident()
        self.wrong_thread = False

    def on_change(self, masters: list[str]) -> None:
        self.wrong_thread |= threading.get_ident() != self.thread
        self.calls.append(masters)

    def on_timeout(self) -> None:
        self.wrong_thread |= threading.get_ident() != self.thread
        self.timeouts += 1

    @property
    def last(self) -> list[str] | None:
        return self.calls[-1] if self.calls else None


# -- pure parts -------------------------------------------------------------


def test_master_address_from_address_field() -> None:
    assert master_address(master_info("10.0.0.11", 5050)) == "10.0.0.11:5050"
    info = master_info("fd00::11", 5051)
    assert master_address(info) == "[fd00::11]:5051"


def test_master_address_from_legacy_packed_ip() -> None:
    # Mesos < 0.24: only the packed ip, in the master's (here: our) byte order.
    packed = int.from_bytes(socket.inet_aton("10.0.0.11"), sys.byteorder)
    assert master_address({"ip": packed, "port": 5050}) == "10.0.0.11:5050"


@pytest.mark.parametrize(
    "info",
    [
        {},
        {"address": {"ip": "", "port": 5050}},
        {"address": {"ip": "10.0.0.1"}},
        {"address": {"ip": "10.0.0.1", "port": "5050"}},
        {"ip": -1, "port": 5050},
        {"ip": True, "port": 5050},
        {"ip": 1, "port": 70000},
    ],
)
def test_master_address_rejects_bad_info(info: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        master_address(info)


def test_ordered_and_initial() -> None:
    assert ordered("b:1", ["a:1", "b:1", "c:1"]) == ["b:1", "a:1", "c:1"]
    assert ordered("", ["a:1"]) == ["", "a:1"]
    assert initial_masters(STATIC) == ["", *STATIC]


def test_connect_string_from_config_url() -> None:
    url = parse_zk_url("zk://user:pw@h1:2181,h2,[fd00::1]:2182/mesos")
    assert zk_connect_string(url) == "h1:2181,h2:2181,[fd00::1]:2182"
    assert url.path == "/mesos" and url.auth == "user:pw"


# -- against a real ZooKeeper -----------------------------------------------


@pytest.fixture(scope="module")
def zk_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperServer]:
    require_zookeeper()
    server = ZooKeeperServer(tmp_path_factory.mktemp("zk")).start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def zk(zk_server: ZooKeeperServer) -> Iterator[Any]:
    """A kazoo client playing the Mesos masters."""
    client = kazoo_client.KazooClient(hosts=zk_server.hosts, timeout=5)
    client.start(timeout=10)
    try:
        yield client
    finally:
        client.stop()
        client.close()


def unique_path() -> str:
    return f"/mesos-{uuid.uuid4().hex[:8]}"


def detector(url: str, rec: Recorder, **kw: Any) -> MasterDetector:
    kw.setdefault("detection_timeout", 0)
    kw.setdefault("on_timeout", rec.on_timeout)
    kw.setdefault("session_timeout", 4.0)
    return MasterDetector(url, STATIC, rec.on_change, **kw)


def test_detects_leader_and_other_masters(zk_server: ZooKeeperServer, zk: Any) -> None:
    path = unique_path()
    register_master(zk, path, "10.1.0.1")
    register_master(zk, path, "10.1.0.2")
    register_master(zk, path, "10.1.0.3", 5051)
    zk.create(f"{path}/log_replicas", b"")  # not a participant

    async def go() -> None:
        rec = Recorder()
        d = detector(f"zk://{zk_server.hosts}{path}", rec)
        assert d.masters == ["", *STATIC]  # before ZooKeeper answers
        await d.start()
        try:
            await eventually(lambda: rec.last is not None)
            expected = ["10.1.0.1:5050", "10.1.0.2:5050", "10.1.0.3:5051"]
            assert rec.calls == [expected]
            assert d.masters == expected and d.leader == "10.1.0.1:5050"
            assert d.connected
            assert not rec.wrong_thread
        finally:
            await d.stop()

    run(go)


def test_leader_change_when_leader_znode_goes(zk_server: ZooKeeperServer, zk: Any) -> None:
    path = unique_path()
    first = register_master(zk, path, "10.2.0.1")
    register_master(zk, path, "10.2.0.2")

    async def go() -> None:
        rec = Recorder()
        d = detector(f"zk://{zk_server.hosts}{path}", rec)
        await d.start()
        try:
            await eventually(lambda: rec.last == ["10.2.0.1:5050", "10.2.0.2:5050"])
            started = time.monotonic()
            zk.delete(first)
            await eventually(lambda: rec.last == ["10.2.0.2:5050"], timeout=2.0)
            assert time.monotonic() - started < 2.0
            # a new master joins: the leader stays, the list grows
            register_master(zk, path, "10.2.0.3")
            await eventually(lambda: rec.last == ["10.2.0.2:5050", "10.2.0.3:5050"])
            # the same master re-registering (same id) is listed once
            register_master(zk, path, "10.2.0.3")
            await asyncio.sleep(0.3)
            assert d.masters == ["10.2.0.2:5050", "10.2.0.3:5050"]
            assert not rec.wrong_thread
        finally:
            await d.stop()

    run(go)


def test_path_created_after_start(zk_server: ZooKeeperServer, zk: Any) -> None:
    path = unique_path()

    async def go() -> None:
        rec = Recorder()
        d = detector(f"zk://{zk_server.hosts}{path}", rec)
        await d.start()
        try:
            await eventually(lambda: d.connected)
            await asyncio.sleep(0.2)
            assert d.masters == ["", *STATIC] and rec.calls == []
            register_master(zk, path, "10.3.0.1")
            await eventually(lambda: rec.last == ["10.3.0.1:5050"])
        finally:
            await d.stop()

    run(go)


def test_all_masters_gone_falls_back_to_static(zk_server: ZooKeeperServer, zk: Any) -> None:
    path = unique_path()
    node = register_master(zk, path, "10.4.0.1")

    async def go() -> None:
        rec = Recorder()
        d = detector(f"zk://{zk_server.hosts}{path}", rec)
        await d.start()
        try:
            await eventually(lambda: rec.last == ["10.4.0.1:5050"])
            zk.delete(node)
            await eventually(lambda: rec.last == ["", *STATIC])
        finally:
            await d.stop()

    run(go)


def test_unusable_leader_info_means_no_leader(zk_server: ZooKeeperServer, zk: Any) -> None:
    path = unique_path()
    zk.ensure_path(path)
    zk.create(f"{path}/json.info_", b"not json", ephemeral=True, sequence=True)
    register_master(zk, path, "10.5.0.2")

    async def go() -> None:
        rec = Recorder()
        d = detector(f"zk://{zk_server.hosts}{path}", rec)
        await d.start()
        try:
            await eventually(lambda: rec.last == ["", "10.5.0.2:5050"])
        finally:
            await d.stop()

    run(go)


def test_session_loss_drops_the_leader_then_recovers(zk_server: ZooKeeperServer, zk: Any) -> None:
    path = unique_path()
    register_master(zk, path, "10.6.0.1")
    register_master(zk, path, "10.6.0.2")

    async def go() -> None:
        rec = Recorder()
        d = detector(f"zk://{zk_server.hosts}{path}", rec)
        await d.start()
        try:
            await eventually(lambda: rec.last == ["10.6.0.1:5050", "10.6.0.2:5050"])
            # Expire the detector's session the classic way: open and close a
            # second connection with the same session id and password.
            session_id, password = d._client.client_id
            thief = kazoo_client.KazooClient(
                hosts=zk_server.hosts, client_id=(session_id, password), timeout=4
            )
            await asyncio.to_thread(thief.start, 10)
            await asyncio.to_thread(thief.stop)
            thief.close()
            await eventually(lambda: ["", "10.6.0.2:5050"] in rec.calls, timeout=5)
            await eventually(lambda: rec.last == ["10.6.0.1:5050", "10.6.0.2:5050"], timeout=5)
        finally:
            await d.stop()

    run(go)


def test_detection_timeout_stops_once_a_leader_is_known(
    zk_server: ZooKeeperServer, zk: Any
) -> None:
    path = unique_path()
    register_master(zk, path, "10.7.0.1")

    async def go() -> None:
        rec = Recorder()
        d = detector(f"zk://{zk_server.hosts}{path}", rec, detection_timeout=1.0)
        await d.start()
        try:
            await eventually(lambda: rec.last == ["10.7.0.1:5050"])
            await asyncio.sleep(1.2)
            assert rec.timeouts == 0
        finally:
            await d.stop()

    run(go)


def test_zookeeper_never_answers_keeps_static_masters_and_times_out() -> None:
    port = free_port()  # nothing listens there

    async def go() -> None:
        rec = Recorder()
        d = detector(f"zk://127.0.0.1:{port}/mesos", rec, detection_timeout=0.5)
        started = time.monotonic()
        await d.start()
        assert time.monotonic() - started < 0.5  # start() does not wait for ZooKeeper
        try:
            await eventually(lambda: rec.timeouts == 1, timeout=2.0)
            assert d.masters == ["", *STATIC] and rec.calls == []
            assert not d.connected and not rec.wrong_thread
        finally:
            started = time.monotonic()
            await d.stop()
            assert time.monotonic() - started < 5

    run(go)


def test_detection_timeout_zero_never_fires() -> None:
    port = free_port()

    async def go() -> None:
        rec = Recorder()
        d = detector(f"zk://127.0.0.1:{port}/mesos", rec, detection_timeout=0)
        await d.start()
        try:
            await asyncio.sleep(0.6)
            assert rec.timeouts == 0 and d.masters == ["", *STATIC]
        finally:
            await d.stop()

    run(go)


def test_zookeeper_restart_keeps_masters_and_recovers(tmp_path: Path) -> None:
    require_zookeeper()
    server = ZooKeeperServer(tmp_path / "zk").start()
    masters = kazoo_client.KazooClient(hosts=server.hosts, timeout=20)
    try:
        masters.start(timeout=10)
        path = "/mesos"
        first = register_master(masters, path, "10.8.0.1")
        register_master(masters, path, "10.8.0.2")

        async def go() -> None:
            rec = Recorder()
            d = detector(f"zk://{server.hosts}{path}", rec, session_timeout=20.0)
            await d.start()
            try:
                await eventually(lambda: rec.last == ["10.8.0.1:5050", "10.8.0.2:5050"])
                calls = len(rec.calls)
                await asyncio.to_thread(server.stop)
                await eventually(lambda: not d.connected)
                await asyncio.sleep(0.5)
                assert d.masters == ["10.8.0.1:5050", "10.8.0.2:5050"]  # kept
                assert len(rec.calls) == calls
                await asyncio.to_thread(server.start)
                await eventually(lambda: d.connected, timeout=10)
                # the watch works again: a leader change is seen
                await asyncio.to_thread(masters.delete, first)
                await eventually(lambda: rec.last == ["10.8.0.2:5050"], timeout=5)
            finally:
                await d.stop()

        run(go, timeout=60)
    finally:
        masters.stop()
        masters.close()
        server.stop()


@pytest.mark.skipif(sys.platform != "linux", reason="loopback ensemble tested on Linux")
def test_ensemble_member_going_away(tmp_path: Path) -> None:
    require_zookeeper()
    ensemble = ZooKeeperEnsemble(tmp_path).start()
    masters = kazoo_client.KazooClient(hosts=ensemble.servers[2].hosts, timeout=10)
    try:
        masters.start(timeout=10)
        path = "/mesos"
        first = register_master(masters, path, "10.9.0.1")
        register_master(masters, path, "10.9.0.2")

        async def go() -> None:
            rec = Recorder()
            # The detector knows only the first two servers and is bound to
            # lose one of them.
            hosts = f"{ensemble.servers[0].hosts},{ensemble.servers[1].hosts}"
            d = detector(f"zk://{hosts}{path}", rec, session_timeout=10.0)
            await d.start()
            try:
                await eventually(lambda: rec.last == ["10.9.0.1:5050", "10.9.0.2:5050"], 10)
                # Stop whichever server the detector is connected to (kazoo
                # internals: the connection's socket).
                connected_port = int(d._client._connection._socket.getpeername()[1])
                gone = next(s for s in ensemble.servers if s.port == connected_port)
                await asyncio.to_thread(gone.stop)
                await asyncio.to_thread(masters.delete, first)
                await eventually(lambda: rec.last == ["10.9.0.2:5050"], timeout=10)
                assert d.connected
            finally:
                await d.stop()

        run(go, timeout=60)
    finally:
        masters.stop()
        masters.close()
        ensemble.stop()


def test_on_change_errors_do_not_stop_detection(zk_server: ZooKeeperServer, zk: Any) -> None:
    path = unique_path()
    first = register_master(zk, path, "10.10.0.1")
    register_master(zk, path, "10.10.0.2")
    seen: list[list[str]] = []

    def flaky(masters: list[str]) -> None:
        seen.append(masters)
        raise RuntimeError("callback failed")

    async def go() -> None:
        d = MasterDetector(f"zk://{zk_server.hosts}{path}", STATIC, flaky, detection_timeout=0)
        await d.start()
        try:
            await eventually(lambda: len(seen) == 1)
            zk.delete(first)
            await eventually(lambda: len(seen) == 2 and seen[-1] == ["10.10.0.2:5050"])
        finally:
            await d.stop()

    run(go)


def test_master_info_written_like_mesos(zk_server: ZooKeeperServer, zk: Any) -> None:
    path = unique_path()
    node = register_master(zk, path, "10.11.0.1", 5050, hostname="m1.example")
    name = node.rsplit("/", 1)[1]
    assert name.startswith("json.info_") and len(name) == len("json.info_") + 10
    data, stat = zk.get(node)
    assert stat.ephemeralOwner == zk.client_id[0]
    info = orjson.loads(data)
    assert info["address"] == {"hostname": "m1.example", "ip": "10.11.0.1", "port": 5050}
    assert info["pid"] == "master@10.11.0.1:5050"
