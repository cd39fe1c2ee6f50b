"""The store's frames: a large change travels in parts and is applied whole."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from test_stream import cluster, task

from mesosdns.builder.engine import Compilers, Engine
from mesosdns.dns.settings import DNSSettings
from mesosdns.records.generator import GeneratorParams
from mesosdns.records.model import SRVTarget
from mesosdns.state.model import State, parse_state
from mesosdns.store import update as update_module
from mesosdns.store.channel import Follower, Publisher, _Frames
from mesosdns.store.replica import Replica
from mesosdns.store.update import frames


def _state(n: int, ip_base: str) -> State:
    doc = {**cluster(), "leader": "master@10.0.0.11:5050"}
    doc["frameworks"][0]["tasks"] = [
        {**task(f"app{i}", ip=f"{ip_base}.{i // 250}.{i % 250 + 1}"), "id": f"app{i}.{i}"}
        for i in range(n)
    ]
    return parse_state(orjson.dumps(doc))


def test_a_large_change_is_applied_only_at_its_commit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(update_module, "PART_ITEMS", 16)
    compilers = Compilers(DNSSettings())
    params = GeneratorParams()
    engine = Engine()
    first = _state(40, "10.1")
    replica = Replica()
    built = engine.build(first, params, compilers, engine.next_serial())
    for f in frames(engine.install(built, compilers, "test")):
        replica.feed(f[4:])
    assert replica.table is not None
    assert replica.records is not None
    assert replica.records.a["app3.marathon.mesos."] == ("10.1.0.4",)

    engine.apply_state(_state(40, "10.2"), params)
    change = engine.flush("test", defer=False)
    assert change is not None and not change.full and change.size() > 16
    parts = [f[4:] for f in frames(change)]
    assert len(parts) > 3
    table, version = replica.table, replica.version
    before = dict(table.entries)
    for key, e in before.items():  # every name asked once
        table.hot.fill(key, e)
    for body in parts[:-1]:
        assert replica.feed(body) is False
        # nothing of the new version shows before the commit
        assert replica.records.a["app3.marathon.mesos."] == ("10.1.0.4",)
        assert replica.version == version
    assert replica.feed(parts[-1]) is True
    assert replica.table is table  # applied in place
    assert replica.version == version + 1
    assert replica.records.a["app3.marathon.mesos."] == ("10.2.0.4",)
    assert replica.serial == engine.serial
    live = engine.live
    assert live is not None
    assert set(replica.table.entries) == set(live.table.entries)
    for key, e in live.table.entries.items():
        mine = replica.table.entries[key]
        assert (mine.rrs, mine.tails(), mine.trunc) == (e.rrs, e.tails(), e.trunc)
        # a changed entry's old replies left the hot view; the others stay
        assert (key in replica.table.hot) == (key in before and key not in change.entries)
        hot = replica.table.hot
        assert hot.fill(key, mine) == (hot.flags[bool(e.trunc)], 0, *e.tails())
    assert any(key in before for key in change.entries)  # some asked name changed


@pytest.mark.parametrize("part_items", [16, 100_000])
def test_srv_values_and_glue_arrive_as_the_builder_holds_them(
    monkeypatch: pytest.MonkeyPatch, part_items: int
) -> None:
    """SRV values travel as plain tuples (cheaper to encode) and arrive as
    SRVTargets again, in a full update whole or in parts and in a change;
    the entries' glue gives the same additional sections."""
    monkeypatch.setattr(update_module, "PART_ITEMS", part_items)
    compilers = Compilers(DNSSettings())
    params = GeneratorParams()
    engine = Engine()
    replica = Replica()

    def check() -> None:
        assert engine.gen is not None and engine.live is not None
        held = engine.gen.record_set().srv
        got = replica.records.srv if replica.records is not None else {}
        assert set(got) == set(held) and held
        for name, values in got.items():
            assert values == held[name], name
            assert all(type(t) is SRVTarget for t in values), name
            assert [str(t) for t in values] == [f"{t.host}:{t.port}" for t in held[name]]
        assert replica.table is not None
        for key, e in engine.live.table.entries.items():
            mine = replica.table.entries[key]
            for v in range(len(e.starts) if e.glue is not None else 0):
                assert mine.additional(v) == e.additional(v), key

    built = engine.build(_state(30, "10.1"), params, compilers, engine.next_serial())
    for f in frames(engine.install(built, compilers, "test")):
        replica.feed(f[4:])
    check()
    if part_items > 1000:  # one frame: a target given by several names is one object
        assert replica.records is not None
        targets = [t for values in replica.records.srv.values() for t in values]
        assert len({id(t) for t in targets}) == len(set(targets)) < len(targets)
    engine.apply_state(_state(33, "10.2"), params)
    change = engine.flush("test", defer=False)
    assert change is not None and change.srv
    for f in frames(change):
        replica.feed(f[4:])
    check()


def test_publisher_frames_go_once_every_reader_has_them(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Two servers follow the builder over its UNIX socket: both get the same
    version, and the publisher keeps a large update's frames only until both
    have been sent them."""
    monkeypatch.setattr(update_module, "PART_ITEMS", 16)
    compilers = Compilers(DNSSettings())
    params = GeneratorParams()
    engine = Engine()
    built = engine.build(_state(40, "10.1"), params, compilers, engine.next_serial())
    engine.install(built, compilers, "test")
    queued: list[_Frames] = []

    async def run() -> None:
        publisher = Publisher(str(tmp_path / "b.sock"), lambda: engine.full({}))
        keep = publisher._queue

        def queue(item: _Frames) -> None:
            queued.append(item)
            keep(item)

        monkeypatch.setattr(publisher, "_queue", queue)
        await publisher.start()
        replicas = [Replica(), Replica()]
        followers = [Follower(publisher.path, r) for r in replicas]
        for f in followers:
            f.start()
        try:
            await _until(lambda: all(r.ready for r in replicas) and publisher.readers == 2)
            engine.apply_state(_state(40, "10.2"), params)
            change = engine.flush("test", defer=False)
            assert change is not None and change.size() > 16
            publisher.publish(change)
            await _until(lambda: all(r.version == engine.version for r in replicas))
            await _until(lambda: all(f == b"" for f in queued[0]._made))
            item = queued[0]
            assert item.readers == 2 and len(item._made) > 3
            assert all(n == 2 for n in item._passed)
        finally:
            for f in followers:
                await f.stop()
            await publisher.stop()
        for r in replicas:
            assert r.records is not None
            assert r.records.a["app3.marathon.mesos."] == ("10.2.0.4",)
            assert r.serial == engine.serial

    asyncio.run(run())


async def _until(check: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.mark.parametrize("part_items", [16, 100_000])
def test_the_record_counts_follow_every_version(
    monkeypatch: pytest.MonkeyPatch, part_items: int
) -> None:
    """The per-type counts a replica keeps (for /metrics) are the records'
    own, after a full version, small and large changes, and another full
    version that shares some of the held maps."""
    monkeypatch.setattr(update_module, "PART_ITEMS", part_items)
    compilers = Compilers(DNSSettings())
    params = GeneratorParams()
    engine = Engine()
    replica = Replica()

    def feed(u: object) -> None:
        for f in frames(u):  # type: ignore[arg-type]
            replica.feed(f[4:])
        rs = replica.records
        assert rs is not None
        snap = replica.snapshot()
        assert snap is not None
        assert snap.count() == rs.count() == replica.counts
        assert engine.gen is not None and rs.count() == engine.gen.counts()

    built = engine.build(_state(40, "10.1"), params, compilers, engine.next_serial())
    feed(engine.install(built, compilers, "test"))
    assert replica.counts["A"] > 40
    for n, ip_base in ((40, "10.2"), (41, "10.2"), (30, "10.2"), (30, "10.3"), (0, "10.3")):
        engine.apply_state(_state(n, ip_base), params)
        change = engine.flush("test", defer=False)
        assert change is not None and not change.full
        feed(change)
    built = engine.build(_state(35, "10.3"), params, compilers, engine.next_serial())
    feed(engine.install(built, compilers, "test"))
