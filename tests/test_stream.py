"""Stream mode against the fake master's operator API: RecordIO framing, the
subscriber (redirects, heartbeats, broken streams), and the stream poller
with the real DNS server on loopback (events answering over DNS, resubscribe,
leader change, fallback polling, serials, HTTP consistency)."""

from __future__ import annotations

import asyncio
import json
import random
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import dns.asyncquery
import dns.message
import dns.rcode
import dns.rdatatype
import pytest
from fakemaster import FakeMaster, minimal_state, recordio
from hypothesis import given, settings
from hypothesis import strategies as st

from mesosdns.app import App
from mesosdns.builder.poll import Source
from mesosdns.builder.stream import StreamCompilers, StreamPoller
from mesosdns.config import parse_config
from mesosdns.dns.protocol import DNSServer
from mesosdns.dns.settings import DNSSettings
from mesosdns.metrics import RefreshStats
from mesosdns.records.bodies import enumerate_json
from mesosdns.records.generator import GeneratorParams, generate
from mesosdns.records.incremental import IncrementalGenerator
from mesosdns.records.model import RecordSet
from mesosdns.server.api import hosts_body
from mesosdns.state.client import StateClient
from mesosdns.state.model import Task, parse_state
from mesosdns.state.stream import RecordIODecoder, StreamError, Subscriber
from mesosdns.state.v1 import Heartbeat, Subscribed, TaskAdded
from mesosdns.store.replica import Replica
from mesosdns.store.snapshot import SnapshotStore
from mesosdns.store.update import Update, frames

T = TypeVar("T")

AGENT = "20160107-001256-134875658-5050-27524-S1"
FW = "5b0e3a1c-8d2f-4c6e-9a7b-1f2e3d4c5b6a-0000"
CLOSED = "127.0.0.1:1"  # nothing listens there


def run(fn: Callable[[], Awaitable[T]], timeout: float = 20.0) -> T:
    async def main() -> T:
        return await asyncio.wait_for(fn(), timeout)

    return asyncio.run(main())


def cluster() -> dict[str, Any]:
    doc = minimal_state()
    doc["slaves"] = [
        {"id": AGENT, "hostname": "10.0.1.1", "port": 5051, "pid": "slave(1)@10.0.1.1:5051"}
    ]
    doc["frameworks"] = [
        {"id": FW, "name": "marathon", "hostname": "10.0.0.11", "tasks": [task("old", "10.0.2.9")]}
    ]
    return doc


def task(name: str, ip: str | None = None, state: str = "TASK_RUNNING") -> dict[str, Any]:
    statuses = []
    if state == "TASK_RUNNING":
        st_: dict[str, Any] = {"state": state, "timestamp": 1.0}
        if ip:
            st_["container_status"] = {"network_infos": [{"ip_addresses": [{"ip_address": ip}]}]}
        statuses.append(st_)
    return {
        "id": f"{name}.1",
        "name": name,
        "framework_id": FW,
        "slave_id": AGENT,
        "state": state,
        "statuses": statuses,
        "resources": {"cpus": 0.1, "ports": "[31000-31000]"},
    }


async def until(pred: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.005)


def fast_client() -> StateClient:
    return StateClient(timeout_seconds=2.0, backoff=0.01, backoff_max=0.05)


# -- RecordIO ---------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    records=st.lists(st.binary(max_size=40), max_size=6),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
)
def test_recordio_any_chunking(records: list[bytes], cuts: list[int]) -> None:
    data = b"".join(recordio(r) for r in records)
    points = sorted({c % (len(data) + 1) for c in cuts})
    chunks = [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]
    decoder = RecordIODecoder()
    got = [r for c in chunks for r in decoder.feed(c)]
    assert got == records
    assert decoder.pending == 0


@pytest.mark.parametrize("data", [b"12x\n{}", b"-1\n", b"9" * 30, b"99999999999999\n"])
def test_recordio_refuses_bad_framing(data: bytes) -> None:
    with pytest.raises(StreamError):
        RecordIODecoder(max_record=1 << 20).feed(data)


# -- the subscriber ---------------------------------------------------------------


def test_subscribe_gets_the_state_heartbeats_and_the_leader() -> None:
    async def go() -> None:
        async with FakeMaster(cluster()) as m:
            m.heartbeat_interval = 0.05
            client = StateClient(timeout_seconds=2.0, auth="basic", principal="p", secret="s")
            m.basic_auth = ("p", "s")
            async with client:
                sub = await Subscriber(client).subscribe(["", m.address])
                assert sub.master == m.address and sub.leader == m.pid
                assert sub.stream_id == "stream-1"
                batches = sub.batches()
                first = await anext(batches)
                assert isinstance(first[0], Subscribed)
                assert sub.heartbeat_interval == 0.05
                assert isinstance((await anext(batches))[0], Heartbeat)
                sub.close()
            assert m.api_calls == ["SUBSCRIBE", "GET_MASTER"]
            headers = m.headers[0]
            assert headers["Accept"] == "application/json"
            assert headers["Content-Type"] == "application/json"
            assert headers["Authorization"].startswith("Basic ")

    run(go)


def test_subscribe_follows_redirects_and_fails_over() -> None:
    async def go() -> None:
        async with FakeMaster(cluster()) as leader, FakeMaster() as other, fast_client() as c:
            other.api_redirect_to = f"//{leader.address}/api/v1"
            sub = await Subscriber(c).subscribe(["", CLOSED, other.address])
            assert sub.master == leader.address and sub.leader == leader.pid
            sub.close()
            leader.api_status = 503
            with pytest.raises(StreamError, match="HTTP 503"):
                await Subscriber(c).subscribe(["", leader.address])

    run(go)


def test_missed_heartbeats_and_a_closed_stream_break_the_subscription() -> None:
    async def go() -> None:
        async with FakeMaster(cluster()) as m, fast_client() as c:
            m.heartbeat_interval = 0.05
            m.script = ["stall"]
            sub = await Subscriber(c, heartbeat_factor=2.0).subscribe(["", m.address])
            started = time.monotonic()
            with pytest.raises(StreamError, match="nor heartbeat"):
                async for _ in sub.batches():
                    pass
            assert 0.09 <= time.monotonic() - started < 2.0
            sub.close()
            m.script = [{"type": "HEARTBEAT"}, "close"]
            sub = await Subscriber(c).subscribe(["", m.address])
            with pytest.raises(StreamError, match="closed"):
                async for _ in sub.batches():
                    pass

    run(go)


def test_events_arrive_in_order() -> None:
    async def go() -> None:
        async with FakeMaster(cluster()) as m, fast_client() as c:
            sub = await Subscriber(c).subscribe(["", m.address])
            batches = sub.batches()
            await anext(batches)
            await m.add_task(task("web", state="TASK_STAGING"))
            got = await anext(batches)
            assert isinstance(got[0], TaskAdded) and got[0].task.name == "web"
            sub.close()

    run(go)


# -- the stream poller with the DNS server -----------------------------------


class Harness:
    """A StreamPoller publishing to a real DNS server on loopback."""

    def __init__(self, masters: list[str], **kw: Any) -> None:
        self.masters = masters
        self.kw = kw
        self.settings = DNSSettings(domain="mesos", listen_host="127.0.0.1", port=0)
        self.store = SnapshotStore()
        self.dns = DNSServer(self.settings)
        self.client = fast_client()

    async def __aenter__(self) -> Harness:
        await self.dns.start()

        def version(replica: Replica, full: bool) -> None:
            if full and replica.table is not None:
                self.dns.set_table(replica.table)
            snap = replica.snapshot()
            if snap is not None:
                self.store.publish(snap)

        self.replica = Replica(version)

        def sink(update: Update) -> None:
            for frame in frames(update):
                self.replica.feed(frame[4:])

        self.poller = StreamPoller(
            Source(client=self.client, timeout=2.0),
            GeneratorParams(listener_ips=("127.0.0.1",)),
            RefreshStats(),
            refresh_seconds=self.kw.pop("refresh_seconds", 60.0),
            sink=sink,
            masters=lambda: self.masters,
            compilers=lambda: StreamCompilers(self.settings),
            subscriber=Subscriber(self.client, heartbeat_factor=2.0),
            backoff=0.01,
            backoff_max=0.1,
            **self.kw,
        )
        self.poller.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.poller.stop()
        await self.dns.stop()
        await self.client.close()

    async def answer(self, name: str, rdtype: str = "A") -> list[str]:
        q = dns.message.make_query(name, rdtype)
        r = await dns.asyncquery.udp(q, "127.0.0.1", port=self.dns.port, timeout=1.0)
        if r.rcode() != dns.rcode.NOERROR:
            return []
        return sorted(rd.to_text() for rrset in r.answer for rd in rrset)

    async def answers_within(self, name: str, timeout: float = 5.0) -> float:
        """Seconds until ``name`` answers over DNS."""
        started = time.monotonic()
        while not await self.answer(name):
            if time.monotonic() - started > timeout:
                raise AssertionError(f"{name} not answered within {timeout}s")
            await asyncio.sleep(0.001)
        return time.monotonic() - started


def test_task_running_answers_over_dns_within_100ms() -> None:
    """TASK_ADDED then TASK_UPDATED(RUNNING) at the master: the name answers
    over DNS. The figure that counts is bench/stream.py's (many events, a
    process of its own); here the median of a few must be under 100 ms."""

    async def go() -> None:
        async with FakeMaster(cluster()) as m, Harness(["", m.address]) as h:
            await until(lambda: h.poller.streaming)
            assert await h.answer("old.marathon.mesos.") == ["10.0.2.9"]
            latencies = []
            for i in range(5):
                name = f"web{i}"
                await m.add_task(task(name, state="TASK_STAGING"))
                await m.update_task(FW, f"{name}.1", "TASK_RUNNING", ip=f"10.0.3.{i + 1}")
                latencies.append(await h.answers_within(f"{name}.marathon.mesos."))
                assert await h.answer(f"{name}.marathon.mesos.") == [f"10.0.3.{i + 1}"]
            assert statistics.median(latencies) < 0.1, latencies
            # and a kill removes it
            await m.update_task(FW, "web0.1", "TASK_KILLED")
            await until(
                lambda: (
                    h.store.current is not None
                    and h.store.current.records.a.get("web0.marathon.mesos.") is None
                )
            )
            q = dns.message.make_query("web0.marathon.mesos.", "A")
            r = await dns.asyncquery.udp(q, "127.0.0.1", port=h.dns.port, timeout=1.0)
            assert r.rcode() == dns.rcode.NXDOMAIN

    run(go)


def test_serial_moves_only_when_records_change_and_http_follows() -> None:
    async def go() -> None:
        async with FakeMaster(cluster()) as m, Harness(["", m.address]) as h:
            m.heartbeat_interval = 0.02
            await until(lambda: h.poller.streaming)
            snap = h.store.current
            assert snap is not None
            serial = snap.serial
            events = h.poller.stream_stats.events
            await until(lambda: h.poller.stream_stats.events >= events + 3)  # heartbeats
            await m.update_task(FW, "old.1", "TASK_RUNNING", ip="10.0.2.9")  # same address
            await until(lambda: h.poller.stream_stats.events >= events + 4)
            assert h.store.current is snap and snap.serial == serial
            await m.add_task(task("api", ip="10.0.4.1"))
            await until(lambda: h.store.current is not snap)
            new = h.store.current
            assert new is not None and new.serial > serial
            assert h.dns.table is not None and h.dns.table.serial == new.serial
            assert hosts_body(new.records, "api.marathon.mesos") == [
                {"host": "api.marathon.mesos.", "ip": "10.0.4.1"}
            ]
            records = h.poller.engine.records()
            assert records is not None
            body = json.loads(enumerate_json(records))
            tasks = [t["name"] for f in body["frameworks"] for t in f["tasks"]]
            assert tasks == ["old", "api"]

    run(go)


def test_large_srv_names_follow_within_the_deferral() -> None:
    async def go() -> None:
        async with (
            FakeMaster(cluster()) as m,
            Harness(["", m.address], defer_targets=1, defer_seconds=0.05) as h,
        ):
            await until(lambda: h.poller.streaming)
            await m.add_task({**task("old", ip="10.0.2.8"), "id": "old.2"})
            await h.answers_within("old.marathon.mesos.")
            started = time.monotonic()
            while len(await h.answer("_old._tcp.marathon.mesos.", "SRV")) < 2:
                assert time.monotonic() - started < 2.0
                await asyncio.sleep(0.005)
            assert await h.answer("old.marathon.mesos.") == ["10.0.2.8", "10.0.2.9"]

    run(go)


def test_broken_stream_resubscribes_with_the_new_state() -> None:
    async def go() -> None:
        async with FakeMaster(cluster()) as m, Harness(["", m.address], stable_after=0.0) as h:
            await until(lambda: h.poller.streaming)
            await m.stop()  # the stream breaks; nobody answers for a while
            m._doc()["frameworks"][0]["tasks"].append(task("late", ip="10.0.5.1"))
            await asyncio.sleep(0.1)
            await m.start()
            await h.answers_within("late.marathon.mesos.")
            assert m.subscribes == 2 and h.poller.stream_stats.subscriptions == 2
            assert await h.answer("old.marathon.mesos.") == ["10.0.2.9"]

    run(go)


def test_a_failure_applying_events_resubscribes(monkeypatch: pytest.MonkeyPatch) -> None:
    put_task = IncrementalGenerator.put_task
    failures = [RuntimeError("a bug")]

    def broken(self: IncrementalGenerator, task: Task) -> None:
        if failures:
            raise failures.pop()
        put_task(self, task)

    monkeypatch.setattr(IncrementalGenerator, "put_task", broken)

    async def go() -> None:
        async with FakeMaster(cluster()) as m, Harness(["", m.address], stable_after=0.0) as h:
            await until(lambda: h.poller.streaming)
            await m.add_task(task("web", ip="10.0.3.1"))
            await h.answers_within("web.marathon.mesos.")  # from the new SUBSCRIBED
            assert m.subscribes == 2 and not failures

    run(go)


def test_missed_heartbeat_counts_as_a_broken_stream() -> None:
    async def go() -> None:
        async with FakeMaster(cluster()) as m:
            m.heartbeat_interval = 0.05
            m.script = ["stall"]
            async with Harness(["", m.address], stable_after=0.0) as h:
                await until(lambda: h.poller.streaming)
                m.script = []
                await until(lambda: m.subscribes >= 2, timeout=3.0)
                await until(lambda: h.poller.stream_stats.subscriptions >= 2)
                assert h.poller.stream_stats.broken >= 1

    run(go)


def test_leader_change_follows_the_new_leader() -> None:
    """The leader steps down (its streams end, it redirects to the new one):
    the poller resubscribes there and the records follow its state."""

    async def go() -> None:
        async with FakeMaster(cluster()) as a, FakeMaster(cluster()) as b:
            b._doc()["frameworks"][0]["tasks"].append(task("onb", ip="10.0.6.1"))
            async with Harness(["", a.address, b.address], stable_after=0.0) as h:
                await until(lambda: h.poller.streaming)
                assert h.poller._sub is not None and h.poller._sub.master == a.address
                srv = await h.answer("_leader._tcp.mesos.", "SRV")
                assert srv == [f"0 1 {a.port} leader.mesos."]
                a.api_redirect_to = f"//{b.address}/api/v1"
                a.drop_streams()
                await h.answers_within("onb.marathon.mesos.")
                assert h.poller._sub is not None and h.poller._sub.master == b.address
                srv = await h.answer("_leader._tcp.mesos.", "SRV")
                assert srv == [f"0 1 {b.port} leader.mesos."]

    run(go)


def test_zookeeper_naming_another_leader_resubscribes() -> None:
    async def go() -> None:
        async with FakeMaster(cluster()) as a, FakeMaster(cluster()) as b:
            b._doc()["frameworks"][0]["tasks"].append(task("onb", ip="10.0.6.1"))
            async with Harness([a.address, b.address]) as h:
                await until(lambda: h.poller.streaming)
                h.masters = [b.address, a.address]
                h.poller.trigger()
                await h.answers_within("onb.marathon.mesos.")
                assert b.subscribes == 1

    run(go)


def test_without_the_operator_api_the_state_is_polled() -> None:
    async def go() -> None:
        async with FakeMaster(cluster()) as m:
            m.api_status = 404  # an old master: no /api/v1
            async with Harness(["", m.address], refresh_seconds=0.2) as h:
                await h.answers_within("old.marathon.mesos.")
                assert not h.poller.streaming
                m._doc()["frameworks"][0]["tasks"].append(task("polled", ip="10.0.7.1"))
                await h.answers_within("polled.marathon.mesos.")
                assert h.poller.stream_stats.fallback_polls >= 2
                m.api_status = 200  # the API comes back: streaming again
                await until(lambda: h.poller.streaming)
                await m.add_task(task("streamed", ip="10.0.7.2"))
                await h.answers_within("streamed.marathon.mesos.")

    run(go)


# -- the application in stream mode --------------------------------------------


def test_the_application_in_stream_mode(tmp_path: Path) -> None:
    """``stateSource: "stream"``: DNS, HTTP and the operator zones follow the
    events; a config reload rebuilds without resubscribing."""
    (tmp_path / "corp.zone").write_text(
        "$TTL 300\n@ IN SOA ns1.corp.example. h.corp.example. ( 1 7200 3600 1209600 300 )\n"
        "  IN NS ns1\nns1 IN A 192.0.2.1\n"
    )

    def write_config(master: str, ttl: int) -> Path:
        doc = {
            "stateSource": "stream",
            "masters": [master],
            "port": 0,
            "listener": "127.0.0.1",
            "httpon": True,
            "httpListener": "127.0.0.1",
            "httpPort": 0,
            "resolvers": ["127.0.0.1:9"],
            "refreshSeconds": 1,
            "stateTimeoutSeconds": 2,
            "ttl": ttl,
            "zones": [
                {
                    "name": "corp",
                    "origin": "corp.example",
                    "file": "corp.zone",
                    "records": [
                        {
                            "type": "A",
                            "name": "eval:{task.name}.apps.corp.example",
                            "value": "{task.ip}",
                        }
                    ],
                }
            ],
        }
        path = tmp_path / "config.json"
        path.write_text(json.dumps(doc))
        return path

    async def go() -> None:
        async with FakeMaster(cluster()) as m:
            path = write_config(m.address, 60)
            config, _ = parse_config(path.read_bytes(), str(path))
            app = App(config)
            await app.start()
            try:
                assert isinstance(app.poller, StreamPoller)
                assert app.dns is not None
                port = app.dns.port

                async def ask(name: str) -> dns.message.Message:
                    q = dns.message.make_query(name, "A")
                    return await dns.asyncquery.udp(q, "127.0.0.1", port=port, timeout=1.0)

                async def answers(name: str) -> list[str]:
                    r = await ask(name)
                    return sorted(rd.to_text() for rrset in r.answer for rd in rrset)

                await until(lambda: app.poller is not None and app.poller.streaming)
                await m.add_task(task("web", ip="10.0.8.1"))
                await until_async(lambda: answers("web.marathon.mesos."), ["10.0.8.1"])
                # the operator zone's template follows within refreshSeconds
                await until_async(lambda: answers("web.apps.corp.example."), ["10.0.8.1"], 5.0)
                async with aiohttp.ClientSession() as session:
                    url = f"http://127.0.0.1:{app.http_port}/v1/enumerate"

                    async def enumerated() -> list[str]:
                        async with session.get(url) as resp:
                            body = await resp.json()
                        return [t["name"] for f in body["frameworks"] for t in f["tasks"]]

                    # the builder rebuilds the bodies at most once a second
                    await until_async(enumerated, ["old", "web"], 3.0)
                    url = f"http://127.0.0.1:{app.http_port}/metrics"
                    async with session.get(url) as resp:
                        metrics = await resp.text()
                values = {
                    line.split()[0]: float(line.split()[1])
                    for line in metrics.splitlines()
                    if line.startswith("mesosdns_stream_")
                }
                assert values["mesosdns_stream_streaming"] == 1.0
                assert values["mesosdns_stream_subscriptions_total"] == 1.0
                assert values["mesosdns_stream_events_total"] >= 2.0
                assert values["mesosdns_stream_pid_reads_total"] == 1.0
                assert values["mesosdns_stream_pid_failures_total"] == 0.0
                # SIGHUP with a new TTL: rebuilt from the current state
                write_config(m.address, 7)
                app.reload()
                await until_async(lambda: ttl_of(ask("web.marathon.mesos.")), 7, 5.0)
                assert m.subscribes == 1
            finally:
                await app.stop()

    run(go)


async def ttl_of(reply: Awaitable[dns.message.Message]) -> int:
    r = await reply
    return r.answer[0].ttl if r.answer else -1


async def until_async(
    probe: Callable[[], Awaitable[Any]], expected: Any, timeout: float = 2.0
) -> None:
    deadline = time.monotonic() + timeout
    got = None
    while time.monotonic() < deadline:
        got = await probe()
        if got == expected:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"got {got!r}, expected {expected!r}")


# -- framework pids: stream records equal a poll's ------------------------------

FW_HTTP = "5b0e3a1c-8d2f-4c6e-9a7b-1f2e3d4c5b6a-0001"


def pid_cluster() -> dict[str, Any]:
    """Marathon with a scheduler pid (libprocess) and an HTTP API framework."""
    doc = cluster()
    doc["frameworks"][0]["pid"] = "scheduler-1@10.0.0.21:8080"
    doc["frameworks"].append({"id": FW_HTTP, "name": "spark", "hostname": "10.0.0.12", "tasks": []})
    return doc


def record_sets(rs: RecordSet) -> dict[str, dict[str, set[str]]]:
    return {
        kind: {name: {str(v) for v in values} for name, values in getattr(rs, kind).items()}
        for kind in ("a", "aaaa", "srv")
    }


def poll_records(m: FakeMaster, h: Harness) -> dict[str, dict[str, set[str]]]:
    """What a poll of the master's /master/state makes (the stream's params)."""
    assert h.poller.gen is not None
    return record_sets(generate(parse_state(m.document()), h.poller.gen.params))


def served_records(h: Harness) -> dict[str, dict[str, set[str]]]:
    assert h.store.current is not None
    return record_sets(h.store.current.records)


async def until_equal(m: FakeMaster, h: Harness, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while served_records(h) != poll_records(m, h):
        if time.monotonic() > deadline:
            got, want = served_records(h), poll_records(m, h)
            diff = {
                kind: {
                    n: (got[kind].get(n), want[kind].get(n))
                    for n in set(got[kind]) | set(want[kind])
                    if got[kind].get(n) != want[kind].get(n)
                }
                for kind in want
            }
            raise AssertionError(f"stream records differ from a poll's: {diff}")
        await asyncio.sleep(0.005)


def test_framework_pids_come_from_the_state_summary() -> None:
    """The v1 API has no scheduler pids: they are read from
    /master/state-summary before the SUBSCRIBED state is built, so a pid
    framework answers from its pid (A and _framework._tcp SRV) as in a poll;
    a scheduler failover (FRAMEWORK_UPDATED) moves them."""

    async def go() -> None:
        async with FakeMaster(pid_cluster()) as m, Harness(["", m.address]) as h:
            await until(lambda: h.poller.streaming)
            assert "/master/state-summary" in m.paths
            assert h.poller.stream_stats.pid_reads == 1
            assert served_records(h) == poll_records(m, h)
            assert await h.answer("marathon.mesos.") == ["10.0.0.21"]
            assert await h.answer("_framework._tcp.marathon.mesos.", "SRV") == [
                "0 1 8080 marathon.mesos."
            ]
            assert await h.answer("spark.mesos.") == ["10.0.0.12"]
            assert await h.answer("_framework._tcp.spark.mesos.", "SRV") == []
            # failover: the scheduler re-registers from another host
            fw = {k: v for k, v in m._framework(FW).items() if k != "tasks"}
            await m.add_framework({**fw, "pid": "scheduler-2@10.0.0.22:8081"})
            await until_equal(m, h)
            assert await h.answer("marathon.mesos.") == ["10.0.0.22"]
            # a new pid framework
            await m.add_framework(
                {"id": "fw-c", "name": "chronos", "hostname": "c", "pid": "s@10.0.0.23:4400"}
            )
            await until_equal(m, h)
            assert await h.answer("_framework._tcp.chronos.mesos.", "SRV") == [
                "0 1 4400 chronos.mesos."
            ]

    run(go)


def test_without_the_state_summary_frameworks_answer_by_hostname() -> None:
    """An unreadable /master/state-summary: frameworks are built from their
    hostname (counted, logged once); the pids are read once it answers."""

    async def go() -> None:
        async with FakeMaster(pid_cluster()) as m, Harness(["", m.address]) as h:
            m.summary_status = 503
            await until(lambda: h.poller.streaming)
            assert h.poller.stream_stats.pid_failures >= 1
            assert await h.answer("marathon.mesos.") == ["10.0.0.11"]  # its hostname
            m.summary_status = 200  # retried with backoff
            await until_equal(m, h)
            assert await h.answer("marathon.mesos.") == ["10.0.0.21"]
            assert h.poller.stream_stats.pid_reads >= 1

    run(go)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_event_sequences_match_a_poll(seed: int) -> None:
    """Random cluster changes at the fake master (tasks starting, running,
    dying; frameworks with and without pids added, failing over, removed;
    agents joining and leaving): after each few events, the records served
    equal what a full poll of the master's state makes."""
    rng = random.Random(seed)

    async def go() -> None:
        async with FakeMaster(pid_cluster()) as m, Harness(["", m.address]) as h:
            await until(lambda: h.poller.streaming)
            await until_equal(m, h)
            agents = [AGENT]
            frameworks = [FW, FW_HTTP]
            tasks: list[tuple[str, str]] = [(FW, "old.1")]
            for step in range(60):
                op = rng.choice(
                    [
                        "add",
                        "add",
                        "run",
                        "run",
                        "kill",
                        "fw",
                        "failover",
                        "unfw",
                        "agent",
                        "unagent",
                    ]
                )
                if op == "add" and frameworks and agents:
                    fid = rng.choice(frameworks)
                    t = task(f"t{step}", state="TASK_STAGING")
                    t.update(framework_id=fid, slave_id=rng.choice(agents))
                    await m.add_task(t)
                    tasks.append((fid, t["id"]))
                elif op == "run" and tasks:
                    fid, tid = rng.choice(tasks)
                    ip = f"10.1.{step}.{rng.randint(1, 3)}" if rng.random() < 0.7 else None
                    await m.update_task(fid, tid, "TASK_RUNNING", ip=ip)
                elif op == "kill" and tasks:
                    fid, tid = tasks.pop(rng.randrange(len(tasks)))
                    await m.update_task(fid, tid, "TASK_KILLED")
                elif op == "fw":
                    fid = f"fw-{step}"
                    fw: dict[str, Any] = {"id": fid, "name": rng.choice(["svc", "job", "x.y"])}
                    fw["hostname"] = f"10.2.0.{step}"
                    if rng.random() < 0.6:
                        fw["pid"] = f"scheduler-{step}@10.3.0.{step}:{9000 + step}"
                    await m.add_framework(fw)
                    frameworks.append(fid)
                elif op == "failover" and frameworks:
                    fid = rng.choice(frameworks)
                    fw = {k: v for k, v in m._framework(fid).items() if k != "tasks"}
                    fw["pid"] = f"scheduler-{step}@10.4.0.{step}:{7000 + step}"
                    await m.add_framework(fw)
                elif op == "unfw" and len(frameworks) > 1:
                    fid = frameworks.pop(rng.randrange(len(frameworks)))
                    tasks = [t for t in tasks if t[0] != fid]
                    await m.remove_framework(fid)
                elif op == "agent":
                    aid = f"agent-{step}"
                    ip = f"10.5.0.{step}"
                    await m.add_agent(
                        {"id": aid, "hostname": ip, "port": 5051, "pid": f"slave(1)@{ip}:5051"}
                    )
                    agents.append(aid)
                elif op == "unagent" and len(agents) > 1:
                    aid = agents.pop(rng.randrange(len(agents)))
                    await m.remove_agent(aid)
                if step % 5 == 4:
                    await until_equal(m, h)
            await until_equal(m, h)
            assert h.poller.stream_stats.subscriptions == 1  # all incremental

    run(go, timeout=60.0)


def test_host_names_are_resolved_again_every_refresh(monkeypatch: pytest.MonkeyPatch) -> None:
    """A poll resolves the frameworks' and agents' host names at each refresh;
    stream mode resolves them again every refreshSeconds. (Name resolution is
    the system's: replaced here by a table the test changes.)"""
    table: dict[str, tuple[str, ...]] = {"sched.example": ("10.9.0.1",)}
    asked: list[list[str]] = []

    async def fake_resolve(hosts: Any, timeout: float = 0.0) -> dict[str, tuple[str, ...]]:
        asked.append(list(hosts))
        return {h: table[h] for h in hosts if h in table}

    monkeypatch.setattr("mesosdns.builder.stream.resolve_hosts", fake_resolve)

    async def go() -> None:
        doc = cluster()
        doc["frameworks"][0]["hostname"] = "sched.example"
        async with FakeMaster(doc) as m, Harness(["", m.address], refresh_seconds=0.05) as h:
            await until(lambda: h.poller.streaming)
            assert await h.answer("marathon.mesos.") == ["10.9.0.1"]
            table["sched.example"] = ("10.9.0.2",)
            await until_async(lambda: h.answer("marathon.mesos."), ["10.9.0.2"])
            await until_equal(m, h)
            del table["sched.example"]  # no longer resolves: as a poll, no A record
            await until_async(lambda: h.answer("marathon.mesos."), [])
            assert ["sched.example"] in asked
            assert h.poller.stream_stats.subscriptions == 1

    run(go)
