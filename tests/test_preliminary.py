"""A large first build's records go to the servers before they are compiled:
answered from as they are (the slow path), then replaced by the compiled
version; a server that has a compiled table keeps it meanwhile."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import dns.flags
import dns.message
import dns.rcode
import orjson
import pytest
from dns_support import ServerThread, query
from dns_support import settings as dns_settings
from prometheus_client.parser import text_string_to_metric_families
from test_stream import cluster, task

from mesosdns.builder.engine import Compilers, Engine
from mesosdns.builder.poll import Poller, Source
from mesosdns.dns.settings import DNSSettings
from mesosdns.metrics import Metrics, RefreshStats
from mesosdns.records.generator import GeneratorParams
from mesosdns.state.model import State, parse_state
from mesosdns.store import update as update_module
from mesosdns.store.replica import Replica
from mesosdns.store.snapshot import SnapshotStore
from mesosdns.store.update import Update, frames


def _doc(n: int, ip_base: str = "10.1") -> dict[str, object]:
    doc = {**cluster(), "leader": "master@10.0.0.11:5050"}
    tasks = []
    for i in range(n):
        t = task(f"app{i % 7}", ip=f"{ip_base}.{i // 250}.{i % 250 + 1}")
        t["id"] = f"app{i % 7}.{i}"
        t["resources"] = {"ports": f"[{31000 + i}-{31001 + i}]"}
        tasks.append(t)
    doc["frameworks"][0]["tasks"] = tasks  # type: ignore[index]
    return doc


def _state(n: int, ip_base: str = "10.1") -> State:
    return parse_state(orjson.dumps(_doc(n, ip_base)))


def _feed(replica: Replica, update: Update) -> None:
    for f in frames(update):
        replica.feed(f[4:])


def _first_build(settings: DNSSettings, n: int = 40) -> tuple[Engine, Update, Update]:
    """The engine, its preliminary version and its compiled one."""
    compilers = Compilers(settings)
    params = GeneratorParams()
    engine = Engine(preliminary_names=0)
    state = _state(n)
    serial = engine.next_serial()
    gen = engine.generate(state, params)
    first = engine.preliminary(gen, compilers, serial, "test")
    assert first is not None
    full = engine.install(engine.compile(gen, state, params, compilers, serial), compilers, "t")
    return engine, first, full


def _rrs(section: list[dns.rrset.RRset]) -> frozenset[str]:
    return frozenset(line for rrset in section for line in rrset.to_text().splitlines())


def _meaning(m: dns.message.Message) -> tuple[object, ...]:
    """A reply's meaning: flags, rcode, and each section as a set of records
    (of a truncated reply, how many answers: which ones is up to the random
    order)."""
    if m.flags & dns.flags.TC:
        return (dns.flags.to_text(m.flags), m.rcode(), len(_rrs(m.answer)), _rrs(m.authority))
    return (dns.flags.to_text(m.flags), m.rcode(), _rrs(m.answer), _rrs(m.authority),
            _rrs(m.additional))


def test_the_records_alone_answer_as_the_compiled_version() -> None:
    settings = dns_settings()
    _, first, full = _first_build(settings)
    assert first.preliminary and first.full and not first.entries
    assert first.serial == full.serial and first.version + 1 == full.version
    early, compiled = Replica(), Replica()
    _feed(early, first)
    _feed(compiled, full)
    assert early.table is not None and compiled.table is not None
    assert not early.table.entries and compiled.table.entries
    assert early.preliminary and not compiled.preliminary
    snap = early.snapshot()
    assert snap is not None and not snap.compiled
    assert compiled.snapshot() is not None and compiled.snapshot().compiled  # type: ignore[union-attr]
    questions = [
        ("app3.marathon.mesos.", "A"), ("APP3.marathon.mesos.", "A"),
        ("app3.marathon.mesos.", "AAAA"), ("_app3._tcp.marathon.mesos.", "SRV"),
        ("_app3._udp.marathon.slave.mesos.", "SRV"), ("app1.marathon.slave.mesos.", "A"),
        ("marathon.mesos.", "A"), ("leader.mesos.", "A"), ("master.mesos.", "A"),
        ("nothing.marathon.mesos.", "A"), ("nothing.mesos.", "SRV"), ("mesos.", "SOA"),
        ("mesos.", "NS"), ("ns1.mesos.", "A"), ("app2.marathon.mesos.", "ANY"),
    ]
    servers = [ServerThread(settings, early.table), ServerThread(settings, compiled.table)]
    try:
        for name, rdtype in questions:
            for tcp in (False, True):
                for edns in (False, 1232):
                    replies = [query(s.port, name, rdtype, tcp=tcp, edns=edns) for s in servers]
                    assert _meaning(replies[0]) == _meaning(replies[1]), (name, rdtype, tcp, edns)
                    if replies[0].flags & dns.flags.TC:  # records of the whole answer
                        whole = query(servers[1].port, name, rdtype, tcp=True)
                        assert _rrs(replies[0].answer) <= _rrs(whole.answer)
        nx = query(servers[0].port, "nothing.marathon.mesos.", "A")
        assert nx.rcode() == dns.rcode.NXDOMAIN  # the slow path's own verdict
        srv = query(servers[0].port, "_app3._tcp.marathon.mesos.", "SRV", tcp=True)
        assert len(srv.answer[0]) == 2 * len([i for i in range(40) if i % 7 == 3])
    finally:
        for s in servers:
            s.close()


def test_the_compiled_version_shares_the_records_it_follows() -> None:
    _, first, full = _first_build(DNSSettings())
    replica = Replica()
    _feed(replica, first)
    assert replica.records is not None
    before = replica.records
    _feed(replica, full)
    assert not replica.preliminary and replica.table is not None and replica.table.entries
    assert replica.records is not before
    # the same names and values in the same order: the very maps held
    assert replica.records.a is before.a and replica.records.srv is before.srv


@pytest.mark.parametrize("part_items", [4, 100_000])
@pytest.mark.parametrize(("n", "ip_base"), [(40, "10.2"), (39, "10.1"), (41, "10.1"),
                                             (40, "10.1")])
def test_a_full_version_after_another_holds_exactly_its_own_records(
    monkeypatch: pytest.MonkeyPatch, part_items: int, n: int, ip_base: str
) -> None:
    """Its names and values as the builder sent them, in its order, whether
    they are the held ones, differ in the middle, or end sooner or later; the
    values equal to the held ones are the held objects."""
    monkeypatch.setattr(update_module, "PART_ITEMS", part_items)
    replica = Replica()
    _feed(replica, _first_build(DNSSettings())[2])
    before = replica.records
    assert before is not None
    engine, compilers = Engine(), Compilers(DNSSettings())
    built = engine.build(_state(n, ip_base), GeneratorParams(), compilers, 1)
    full = engine.install(built, compilers, "t")
    _feed(replica, full)
    got = replica.records
    assert got is not None and replica.version == full.version
    for name in ("a", "aaaa", "srv"):
        sent, mine, held = getattr(full, name), getattr(got, name), getattr(before, name)
        assert list(mine.items()) == list(sent.items()), name
        for key, values in mine.items():
            if held.get(key) == values:
                assert values is held[key], key
    same = (n, ip_base) == (40, "10.1")
    assert (got.a is before.a) == same


def test_a_server_with_a_compiled_table_keeps_it_until_the_next_compiled_version() -> None:
    replica = Replica()
    _, _, full = _first_build(DNSSettings())
    _feed(replica, full)
    table, version = replica.table, replica.version
    # the builder restarts; its first build sends the records first
    _, first, again = _first_build(DNSSettings(), n=41)
    _feed(replica, first)
    assert replica.table is table and replica.version == version and not replica.preliminary
    _feed(replica, again)
    assert replica.table is not table and replica.version == again.version
    assert replica.records is not None and "app6.marathon.mesos." in replica.records.a
    assert len(replica.records.srv["_app5._tcp.marathon.mesos."]) == 2 * 6


def test_a_server_on_a_preliminary_version_takes_a_new_builders_one() -> None:
    replica = Replica()
    _, first, _ = _first_build(DNSSettings())
    _feed(replica, first)
    _, other, _ = _first_build(DNSSettings(), n=41)
    _feed(replica, other)  # the first builder died before its compile was done
    assert replica.preliminary and replica.version == other.version
    assert replica.records is not None
    assert len(replica.records.srv["_app5._tcp.marathon.mesos."]) == 12


def test_small_builds_and_later_ones_are_sent_compiled_only() -> None:
    compilers = Compilers(DNSSettings())
    params = GeneratorParams()
    engine = Engine()  # the default threshold: 40 tasks are far below it
    gen = engine.generate(_state(40), params)
    assert engine.preliminary(gen, compilers, engine.next_serial(), "t") is None
    engine = Engine(preliminary_names=0)
    state = _state(40)
    serial = engine.next_serial()
    gen = engine.generate(state, params)
    assert engine.preliminary(gen, compilers, serial, "t") is not None
    engine.install(engine.compile(gen, state, params, compilers, serial), compilers, "t")
    gen = engine.generate(_state(42), params)  # a whole build later (a config change)
    assert engine.preliminary(gen, compilers, engine.next_serial(), "t") is None


@pytest.mark.parametrize("big", [True, False])
def test_the_poller_sends_the_records_first_on_its_first_whole_build(
    tmp_path: Path, big: bool
) -> None:
    path = tmp_path / "state.json"
    path.write_text(json.dumps(_doc(30)))
    sent: list[Update] = []
    waits: list[bool] = []
    settings = [DNSSettings()]

    def sending() -> bool:
        # the compile waits while the records' frames are still out
        waits.append(True)
        return len(waits) < 3

    async def go() -> None:
        poller = Poller(
            Source(state_file=str(path)), GeneratorParams(), RefreshStats(),
            refresh_seconds=60, compilers=lambda: Compilers(settings[0]),
            sink=sent.append, engine=Engine(preliminary_names=0 if big else 10**9),
            sending=sending,
        )
        assert await poller.refresh()
        path.write_text(json.dumps(_doc(31)))
        settings[0] = DNSSettings(ttl=7)  # a whole build again
        assert await poller.refresh()

    asyncio.run(go())
    kinds = [(u.full, u.preliminary) for u in sent]
    if big:
        assert kinds == [(True, True), (True, False), (True, False)]
        assert sent[0].serial == sent[1].serial and sent[0].a == sent[1].a
        assert len(waits) == 3
    else:
        assert kinds == [(True, False), (True, False)]
        assert waits == []


def test_the_metric_says_whether_the_answers_are_compiled() -> None:
    _, first, full = _first_build(DNSSettings())
    replica, store = Replica(), SnapshotStore()

    def compiled() -> float:
        text = Metrics(_NoCounters(), RefreshStats(),  # type: ignore[arg-type]
                       store).render().decode()
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "mesosdns_answers_compiled":
                    return sample.value
        raise AssertionError("no mesosdns_answers_compiled")

    assert compiled() == 0
    for update in (first, full):
        _feed(replica, update)
        snap = replica.snapshot()
        assert snap is not None
        store.publish(snap)
        assert compiled() == (0 if update.preliminary else 1)


class _NoCounters:
    def as_dict(self) -> dict[str, int]:
        return {}
