"""Faults around the server, with in-domain UDP queries flowing all along:

- the Mesos master down, slow, answering 5xx, invalid JSON or no leader: DNS
  keeps answering from the last good records, and the first refresh after
  the fault clears publishes fresh records (recovery measured, in seconds);
- the leader changing in the middle of a fetch;
- ZooKeeper: the session expiring, the member in use going away;
- upstream resolvers down, silent, slow, answering garbage, another ID,
  another question or a bare header: forwarded questions get SERVFAIL within
  the forwarding timeout (at once when the upstream is down), fall through
  to the next resolver when there is one, and in-domain answers are not
  delayed.

Latencies and recovery times are printed (figures for docs/reliability.md);
the assertions only bound them loosely (answered within the client timeout,
recovered within a few refresh periods).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.exception
import dns.message
import dns.query
import dns.rcode
import orjson
import pytest
from dns_support import LoopThread, ServerThread, settings
from fakemaster import FakeMaster
from reliability_support import (
    AppThread,
    BadUpstream,
    Prober,
    deep,
    free_udp_port,
    good_state,
    report,
    wait_until,
)
from zkserver import ZooKeeperEnsemble, register_master, require_zookeeper

SENTINEL = "sentinel.chronos.mesos."
kazoo_client = pytest.importorskip("kazoo.client")


def with_task(state: dict[str, Any], name: str, ip: str) -> dict[str, Any]:
    """``state`` plus a running task ``name`` (so fresh records can be seen)."""
    out = deep(state)
    task = deep(out["frameworks"][0]["tasks"][0])
    task["id"] = f"{name}.id"
    task["name"] = name
    task["discovery"]["name"] = name
    task["statuses"][0]["container_status"]["network_infos"][0]["ip_addresses"][0]["ip_address"] = (
        ip
    )
    out["frameworks"][0]["tasks"].append(task)
    return out


class Masters:
    """Fake masters on 127.0.0.1 and 127.0.0.2 (same port), in a loop thread."""

    def __init__(self) -> None:
        self.lt = LoopThread()
        self.m1 = self.lt.run(FakeMaster(good_state(), host="127.0.0.1").start())
        other = with_task(good_state(), "other", "10.250.9.9")
        self.m2 = self.lt.run(FakeMaster(other, host="127.0.0.2", port=self.m1.port).start())

    def down(self, m: FakeMaster) -> None:
        self.lt.run(m.stop())

    def up(self, m: FakeMaster) -> None:
        self.lt.run(m.start())

    def close(self) -> None:
        for m in (self.m1, self.m2):
            self.lt.run(m.stop())
        self.lt.close()


@pytest.fixture
def masters() -> Iterator[Masters]:
    ms = Masters()
    try:
        yield ms
    finally:
        ms.close()


# -- the Mesos master ------------------------------------------------------------


def test_master_faults_keep_records_and_recover(
    request: pytest.FixtureRequest, masters: Masters
) -> None:
    m1 = masters.m1
    app = AppThread({"masters": [m1.address], "refreshSeconds": 1, "stateTimeoutSeconds": 1})

    def set_attr(name: str, value: Any) -> Any:
        return lambda: setattr(m1, name, value)

    faults = [
        ("master down", lambda: masters.down(m1), lambda: masters.up(m1)),
        ("slower than stateTimeoutSeconds", set_attr("delay", 3.0), set_attr("delay", 0.0)),
        ("HTTP 503", set_attr("status", 503), set_attr("status", 200)),
        ("HTTP 500", set_attr("status", 500), set_attr("status", 200)),
        ("invalid JSON", set_attr("invalid_json", True), set_attr("invalid_json", False)),
        ("no leader", set_attr("leader", ""), set_attr("leader", None)),
    ]
    recovery: dict[str, float] = {}
    stats = app.app.refresh_stats
    try:
        app.wait_ready()
        with Prober(app.dns_port, SENTINEL) as probe:
            for i, (what, fail, heal) in enumerate(faults):
                failed = stats.failures
                fail()
                wait_until(lambda f=failed: stats.failures > f, 8.0, f"{what}: a failed refresh")
                assert app.addresses(SENTINEL) == {"10.250.0.2"}, what
                assert app.addresses("victim.marathon.mesos.") == {"10.250.0.1"}, what
                fresh = f"fresh{i}"
                m1.state = with_task(good_state(), fresh, f"10.250.8.{i + 1}")
                heal()
                recovery[what] = wait_until(
                    lambda n=fresh: bool(app.addresses(f"{n}.marathon.mesos.")),
                    8.0,
                    f"{what}: fresh records after the fault cleared",
                )
        kinds = stats.failures_by_kind or {}
        assert "internal" not in kinds, kinds
        assert probe.lost == 0, probe.summary()
        assert all(r.rcode() == 0 for r in [app.query(SENTINEL)])
    finally:
        app.stop()
    figures = ", ".join(f"{k} {v:.2f}s" for k, v in recovery.items())
    report(
        request,
        f"master faults, refreshSeconds 1, recovery (fault cleared -> fresh "
        f"records over DNS): {figures}",
    )
    report(request, f"  in-domain UDP during master faults: {probe.summary()}")


def test_leader_change_in_the_middle_of_a_fetch(masters: Masters) -> None:
    m1, m2 = masters.m1, masters.m2
    app = AppThread({"masters": [m1.address], "stateTimeoutSeconds": 1})
    try:
        app.wait_ready()
        # m1 says m2 leads: the state is fetched from m2 (on the port asked)
        m1.leader = m2.pid
        assert app.refresh()
        assert app.addresses("other.marathon.mesos.") == {"10.250.9.9"}
        assert app.app.store.current is not None
        assert app.app.store.current.source == m2.address
        # ... and m2 says, meanwhile, that m1 leads again: m2's document is
        # used, no redirect loop
        m2.leader = m1.pid
        assert app.refresh()
        assert app.app.store.current.source == m2.address
        # the leader named is gone, or has no leader yet: the last records stay
        serial = app.serial()
        masters.down(m2)
        assert not app.refresh()
        masters.up(m2)
        m2.leader = ""
        assert not app.refresh()
        assert app.serial() == serial
        assert app.addresses("other.marathon.mesos.") == {"10.250.9.9"}
        m1.leader = m2.leader = None
        assert app.refresh()
        assert app.app.store.current.source == m1.address
    finally:
        app.stop()


# -- ZooKeeper -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ensemble(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ZooKeeperEnsemble]:
    require_zookeeper()
    zk = ZooKeeperEnsemble(tmp_path_factory.mktemp("zk")).start()
    try:
        yield zk
    finally:
        zk.stop()


@pytest.fixture
def zk(ensemble: ZooKeeperEnsemble) -> Iterator[Any]:
    client = kazoo_client.KazooClient(hosts=ensemble.servers[2].hosts, timeout=10)
    client.start(timeout=10)
    try:
        yield client
    finally:
        client.stop()
        client.close()


def zk_app(ensemble: ZooKeeperEnsemble, path: str, members: int = 3) -> AppThread:
    hosts = ",".join(s.hosts for s in ensemble.servers[:members])
    return AppThread({"zk": f"zk://{hosts}{path}", "zkDetectionTimeout": 0, "refreshSeconds": 1})


def test_zookeeper_session_expiry(
    request: pytest.FixtureRequest, ensemble: ZooKeeperEnsemble, zk: Any, masters: Masters
) -> None:
    path = "/mesos-expiry"
    register_master(zk, path, "127.0.0.1", masters.m1.port)
    app = zk_app(ensemble, path)
    try:
        app.wait_ready()
        detector = app.app.detector
        assert detector is not None
        with Prober(app.dns_port, SENTINEL) as probe:
            session_id, password = detector._client.client_id
            thief = kazoo_client.KazooClient(
                hosts=ensemble.hosts, client_id=(session_id, password), timeout=4
            )
            started = time.monotonic()
            thief.start(10)
            thief.stop()
            thief.close()
            # a new session finds the leader again; the records stay meanwhile
            assert app.addresses(SENTINEL) == {"10.250.0.2"}
            leader = f"127.0.0.1:{masters.m1.port}"
            wait_until(
                lambda: (
                    (detector._client.client_id or (session_id,))[0] != session_id
                    and detector.leader == leader
                ),
                20.0,
                "a new session that knows the leader",
            )
            resumed = time.monotonic() - started
            masters.m1.state = with_task(good_state(), "afterexpiry", "10.250.7.1")
            fresh = wait_until(
                lambda: bool(app.addresses("afterexpiry.marathon.mesos.")), 10.0, "fresh records"
            )
        assert probe.lost == 0, probe.summary()
    finally:
        app.stop()
    report(
        request,
        f"ZooKeeper session expired: new session with the leader {resumed:.2f}s later, "
        f"a state change served {fresh:.2f}s after that; "
        f"in-domain UDP {probe.summary()}",
    )


def test_zookeeper_member_loss(
    request: pytest.FixtureRequest, ensemble: ZooKeeperEnsemble, zk: Any, masters: Masters
) -> None:
    path = "/mesos-member-loss"
    z1 = register_master(zk, path, "127.0.0.1", masters.m1.port)
    register_master(zk, path, "127.0.0.2", masters.m2.port)
    app = zk_app(ensemble, path, members=2)  # the third member hosts the masters' session
    victim = None
    try:
        app.wait_ready()
        detector = app.app.detector
        assert detector is not None
        wait_until(lambda: detector.connected, 5.0, "connected")
        port = int(detector._client._connection._socket.getpeername()[1])
        victim = next(s for s in ensemble.servers if s.port == port)
        with Prober(app.dns_port, SENTINEL) as probe:
            started = time.monotonic()
            victim.stop()
            assert app.addresses(SENTINEL) == {"10.250.0.2"}
            zk.delete(z1)  # and the leader changes meanwhile
            wait_until(
                lambda: app.addresses("other.marathon.mesos.") == {"10.250.9.9"},
                20.0,
                "the new leader's records, through the remaining member",
            )
            took = time.monotonic() - started
        assert probe.lost == 0, probe.summary()
    finally:
        app.stop()
        if victim is not None:
            victim.start()
    report(
        request,
        f"ZooKeeper member in use lost + leader change: new leader's records "
        f"{took:.2f}s later; in-domain UDP {probe.summary()}",
    )


# -- upstream resolvers ------------------------------------------------------------


def forward_batch(port: int, names: list[str], timeout: float) -> list[tuple[int, float]]:
    """Send every question at once (UDP); (rcode, seconds) per question, rcode
    -1 when nothing came back within ``timeout``."""
    out: dict[int, tuple[int, float]] = {}
    sent: dict[int, float] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect(("127.0.0.1", port))
        for i, name in enumerate(names):
            q = dns.message.make_query(name, "A", id=i)
            sent[i] = time.monotonic()
            sock.send(q.to_wire())
        end = time.monotonic() + timeout
        while len(out) < len(names) and time.monotonic() < end:
            sock.settimeout(max(0.01, end - time.monotonic()))
            try:
                data = sock.recv(65535)
            except TimeoutError:
                break
            ident = struct.unpack(">H", data[:2])[0]
            out.setdefault(ident, (data[3] & 0x0F, time.monotonic() - sent[ident]))
    return [out.get(i, (-1, timeout)) for i in range(len(names))]


def tcp_rcode(q: dns.message.Message, port: int, timeout: float) -> int:
    try:
        return int(dns.query.tcp(q, "127.0.0.1", port=port, timeout=timeout).rcode())
    except (OSError, dns.exception.DNSException):
        return -1


UPSTREAM_FAULTS = ["down", "silent", "slow", "garbage", "wrong-id", "wrong-question", "truncated"]


@pytest.mark.parametrize("mode", UPSTREAM_FAULTS)
def test_upstream_faults_fail_within_the_timeout(request: pytest.FixtureRequest, mode: str) -> None:
    timeout = 1.0
    good = BadUpstream("ok")
    bad = BadUpstream("silent" if mode == "down" else mode, delay=2.5)
    bad_address = f"127.0.0.1:{free_udp_port()}" if mode == "down" else bad.address
    server = ServerThread(
        settings(
            resolvers=(bad_address,),
            zone_resolvers={"fallthrough.example": (bad_address, good.address)},
            timeout=timeout,
        )
    )
    try:
        names = [f"q{i}.example." for i in range(40)]
        names += [f"q{i}.fallthrough.example." for i in range(40)]
        results: list[tuple[int, float]] = []
        with Prober(server.port, "nginx.marathon.mesos.") as probe:
            worker = threading.Thread(
                target=lambda: results.extend(forward_batch(server.port, names, 4 * timeout))
            )
            worker.start()
            worker.join()
            tcp = dns.message.make_query("tcp.example.", "A")
            started = time.monotonic()
            r_tcp = tcp_rcode(tcp, server.port, 4 * timeout)
            tcp_s = time.monotonic() - started
        plain, through = results[:40], results[40:]
        assert {rc for rc, _ in plain} == {dns.rcode.SERVFAIL}, plain
        assert {rc for rc, _ in through} == {dns.rcode.NOERROR}, through
        assert r_tcp == dns.rcode.SERVFAIL
        worst = max(s for _, s in plain)
        limit = 0.5 if mode == "down" else timeout + 0.5
        assert worst < limit, worst
        assert max(s for _, s in through) < limit
        assert probe.lost == 0, probe.summary()
        assert server.stats()["Errors"] == 0
    finally:
        server.close()
        good.close()
        bad.close()
    report(
        request,
        f"upstream {mode}: SERVFAIL after at most {worst:.3f}s (timeout {timeout}s), "
        f"fall-through answered after at most {max(s for _, s in through):.3f}s, "
        f"TCP SERVFAIL after {tcp_s:.3f}s; in-domain UDP {probe.summary()}",
    )


def test_state_file_faults_recover(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """stateFile: gone, then half written, then fixed."""
    state = tmp_path / "state.json"
    state.write_bytes(orjson.dumps(good_state()))
    app = AppThread({"stateFile": str(state), "refreshSeconds": 1})
    try:
        app.wait_ready()
        failed = app.app.refresh_stats.failures
        state.unlink()
        wait_until(lambda: app.app.refresh_stats.failures > failed, 5.0, "a failed refresh")
        state.write_bytes(orjson.dumps(good_state())[:100])
        assert app.addresses(SENTINEL) == {"10.250.0.2"}
        state.write_bytes(orjson.dumps(with_task(good_state(), "back", "10.250.6.1")))
        took = wait_until(lambda: bool(app.addresses("back.marathon.mesos.")), 5.0, "recovered")
    finally:
        app.stop()
    report(request, f"stateFile missing/truncated then fixed: fresh records {took:.2f}s later")
