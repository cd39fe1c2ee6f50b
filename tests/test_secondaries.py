"""NOTIFY, IXFR and AXFR with real secondaries: BIND (``named``) and Knot
(``knotd``), both configured as secondaries of the cluster domain with a
TSIG key (`secondaries`).

The first tests drive the NOTIFY sender (`mesosdns.server.notify`) alone
against both servers: signed NOTIFYs are answered, resent until a server
is there to answer, and a newer serial replaces an older one still
unanswered. Then mesosdns (supervisor, builder, worker) is the primary of
both, with an SOA refresh of an hour: they load the zone, answer as
mesosdns does, and get each change of the state within seconds, by NOTIFY
and IXFR. ``named`` and ``knotd`` come from Debian's ``bind9`` and
``knot`` (``scripts/test.sh`` installs them); without them the tests skip,
and fail under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import dns.message
import dns.opcode
import dns.query
import dns.rcode
import pytest
from conftest import require_tool
from secondary_servers import (
    BindSecondary,
    Key,
    KnotSecondary,
    Secondary,
    addresses,
    free_port,
    soa_serial,
)
from test_e2e import DEMO, EXPECTED, renamed
from test_processes import Supervised

from mesosdns.dns.settings import TSIGKey
from mesosdns.server.notify import Notifier

pytestmark = pytest.mark.timeout(90)
T = TypeVar("T")
KEY = Key()
TSIG = TSIGKey(KEY.name + ".", KEY.algorithm + ".", base64.b64decode(KEY.secret))
KINDS: dict[str, type[Secondary]] = {"named": BindSecondary, "knotd": KnotSecondary}
# an operator zone (``zones``) from a zone file, which both secondaries load too
OPZONE = "example.com."
ZONE_FILE = Path(__file__).resolve().parent.parent / "fixtures" / "zones" / "example.com.zone"
# and one of templated records, without an SOA: its serial is the cluster's
APPS = "apps.example."


def eventually(check: Callable[[], T | None], timeout: float, what: str) -> T:
    end = time.monotonic() + timeout
    while True:
        got = check()
        if got:
            return got
        if time.monotonic() > end:
            raise AssertionError(f"not within {timeout}s: {what}")
        time.sleep(0.05)


@pytest.fixture
def secondary(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Secondary]]:
    """Makes (not yet started) secondaries of ``mesos`` whose primary is on a
    port nobody listens on; stops them all at the end and proves they are
    gone."""
    made: list[Secondary] = []

    def make(kind: str, primary_port: int = 9) -> Secondary:
        require_tool(kind)
        s = KINDS[kind](tmp_path / f"{kind}-{len(made)}", "mesos", primary_port, KEY)
        made.append(s)
        return s

    yield make
    for s in made:
        if getattr(s, "proc", None) is not None:
            s.stop()
            assert s.proc.poll() is not None, f"{s.kind} still running"


class LoopThread:
    """An event loop in a thread, for the sender under test."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: object, timeout: float = 10.0) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def call(self, fn: Callable[[], None]) -> None:
        self.loop.call_soon_threadsafe(fn)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)
        self.loop.close()


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    lt = LoopThread()
    yield lt
    lt.close()


def notifier(loop: LoopThread, ports: list[int], key: TSIGKey | None = TSIG) -> Notifier:
    n = Notifier(["mesos."], [("127.0.0.1", p) for p in ports], key, "127.0.0.1",
                 first_retry=0.1, max_retry=0.4)
    loop.run(n.start())
    return n


@pytest.mark.parametrize("kind", ["named", "knotd"])
def test_a_signed_notify_is_answered(
    kind: str, secondary: Callable[..., Secondary], loop: LoopThread
) -> None:
    s = secondary(kind)
    s.start()
    n = notifier(loop, [s.port])
    try:
        loop.call(lambda: n.changed(1234))
        eventually(lambda: n.stats.answered == 1, 10, "the NOTIFY answered")
        # the server saw a NOTIFY signed with the key, for the zone
        if kind == "named":
            eventually(lambda: "received notify for zone 'mesos': TSIG 'xfr-key'" in s.log,
                       5, "named's log of the notify")
        else:
            eventually(lambda: "[mesos.] notify, incoming, remote 127.0.0.1" in s.log,
                       5, "knotd's log of the notify")
        assert n.stats.sent == 1
    finally:
        loop.run(n.stop())


@pytest.mark.parametrize("kind", ["named", "knotd"])
def test_notify_is_resent_until_answered(
    kind: str, secondary: Callable[..., Secondary], loop: LoopThread
) -> None:
    port = free_port()
    n = notifier(loop, [port])
    try:
        loop.call(lambda: n.changed(77))
        eventually(lambda: n.stats.sent >= 3, 10, "resends while nobody answers")
        assert n.stats.answered == 0
        secondary(kind).start(port)
        eventually(lambda: n.stats.answered == 1, 10, "the NOTIFY answered once up")
        sent = n.stats.sent
        time.sleep(0.5)
        assert n.stats.sent == sent, "resent after the answer"
    finally:
        loop.run(n.stop())


def test_a_newer_serial_replaces_an_unanswered_one(
    secondary: Callable[..., Secondary], loop: LoopThread
) -> None:
    port = free_port()
    n = notifier(loop, [port])
    try:
        loop.call(lambda: n.changed(1))
        eventually(lambda: n.stats.sent >= 2, 10, "resends of serial 1")
        loop.call(lambda: n.changed(2))
        eventually(lambda: n.stats.superseded == 1, 5, "serial 1 given up")
        s = secondary("knotd")
        s.start(port)
        eventually(lambda: n.stats.answered == 1, 10, "serial 2 answered")
        time.sleep(0.5)
        assert n.stats.answered == 1
        assert n.stats.superseded == 1
    finally:
        loop.run(n.stop())


def test_an_unsigned_answer_to_a_signed_notify_does_not_count(loop: LoopThread) -> None:
    """A responder without the key (here: one that answers every NOTIFY
    unsigned) never stops the resends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.1)
    seen: list[dns.message.Message] = []
    done = threading.Event()

    def answer() -> None:
        while not done.is_set():
            try:
                data, addr = sock.recvfrom(4096)
            except TimeoutError:
                continue
            q = dns.message.from_wire(data, keyring=False)  # do not check it
            seen.append(q)
            r = dns.message.make_response(q)
            r.tsig = None  # answer unsigned
            sock.sendto(r.to_wire(), addr)

    responder = threading.Thread(target=answer, daemon=True)
    responder.start()
    n = notifier(loop, [sock.getsockname()[1]])
    try:
        loop.call(lambda: n.changed(5))
        eventually(lambda: len(seen) >= 3, 10, "resends despite the unsigned answers")
        assert n.stats.answered == 0
        assert all(q.opcode() == dns.opcode.NOTIFY and q.had_tsig for q in seen)
    finally:
        loop.run(n.stop())
        done.set()
        responder.join(5)
        sock.close()


def test_an_unsigned_notify_without_a_key(
    secondary: Callable[..., Secondary], loop: LoopThread
) -> None:
    """Without ``tsig`` the NOTIFY goes unsigned; BIND answers it (it checks
    only that it comes from a primary's address)."""
    s = secondary("named")
    s.start()
    n = notifier(loop, [s.port], key=None)
    try:
        loop.call(lambda: n.changed(9))
        eventually(lambda: n.stats.answered == 1, 10, "the NOTIFY answered")
        eventually(lambda: "received notify for zone 'mesos'" in s.log, 5, "named's log")
        assert "TSIG" not in s.log.split("received notify for zone 'mesos'")[1].splitlines()[0]
    finally:
        loop.run(n.stop())


# --------------------------------------------------------------------------- end to end
#
# mesosdns (the supervisor, a builder and a worker) is the primary of BIND
# and Knot: it serves the demo state from a file it re-reads every second,
# with an SOA refresh of an hour, so that only its NOTIFYs can make the
# secondaries look again; each change of the state must reach both within
# seconds, by IXFR.


@dataclass
class Cluster:
    mesos: Supervised
    named: Secondary
    knotd: Secondary
    state_file: Path

    @property
    def secondaries(self) -> tuple[Secondary, Secondary]:
        return self.named, self.knotd

    def serial(self) -> int | None:
        return soa_serial(self.mesos.dns_port, "mesos.")

    def write_state(self, doc: dict[str, Any]) -> None:
        tmp = self.state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(doc))
        os.replace(tmp, self.state_file)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    for kind in KINDS:
        require_tool(kind)
    workdir = tmp_path_factory.mktemp("secondaries")
    state_file = workdir / "state.json"
    state_file.write_text(json.dumps(DEMO))
    ports = {kind: free_port() for kind in KINDS}
    mesos = Supervised(workdir, {
        "stateFile": str(state_file),
        "SOARefresh": 3600,
        "zones": [
            {"name": "file", "origin": OPZONE, "file": str(ZONE_FILE)},
            {"name": "apps", "origin": APPS, "records": [
                # (BIND refuses a zone without NS records)
                {"type": "NS", "name": "@", "value": "ns1.example.com."},
                {"type": "A", "name": "eval:{task.name}.apps.example", "value": "{task.ip}"}]},
        ],
        "zoneTransfer": {
            "allow": ["127.0.0.1/32"],
            "notify": [f"127.0.0.1:{p}" for p in ports.values()],
            "tsig": KEY.config(),
        },
    })
    started: list[Secondary] = []
    try:
        eventually(lambda: soa_serial(mesos.dns_port, "mesos."), 20, "mesosdns serving")
        for kind, cls in KINDS.items():
            s = cls(workdir, "mesos", mesos.dns_port, KEY, (OPZONE, APPS))
            s.start(ports[kind])
            started.append(s)
        named, knotd = started
        yield Cluster(mesos, named, knotd, state_file)
        for s in started:
            assert s.proc.poll() is None, s.log[-3000:]
        mesos.finish()  # and every process it started is gone
        assert "Traceback" not in mesos.stderr, mesos.stderr[-4000:]
    finally:
        for s in started:
            s.stop()
            assert s.proc.poll() is not None
        mesos.cleanup()


def zone_rrsets(port: int, names: list[tuple[str, str]]) -> dict[tuple[str, str], set[str]]:
    out = {}
    for name, rtype in names:
        got = addresses(port, name, rtype)
        assert got is not None, f"no answer for {name} {rtype} from port {port}"
        out[(name, rtype)] = got
    return out


def demo_names() -> list[tuple[str, str]]:
    names = [(n, "A") for n in EXPECTED["A"] if n == n.lower()]
    names += [(n, "SRV") for n in EXPECTED["SRV"] if n == n.lower()]
    return [(n, t) for n, t in names if all(len(label) <= 63 for label in n.split("."))]


def test_both_secondaries_load_the_zone_and_answer_as_mesosdns(cluster: Cluster) -> None:
    serial = cluster.serial()
    assert serial
    for s in cluster.secondaries:
        eventually(lambda s=s: s.serial() == serial, 20, f"{s.kind} has serial {serial}")
    names = demo_names()
    assert len(names) > 20
    want = zone_rrsets(cluster.mesos.dns_port, names)
    for s in cluster.secondaries:
        assert zone_rrsets(s.port, names) == want, s.kind


def test_both_secondaries_load_an_operator_zone_and_answer_as_mesosdns(
    cluster: Cluster,
) -> None:
    serial = soa_serial(cluster.mesos.dns_port, OPZONE)
    assert serial == 2024031501  # the zone file's
    for s in cluster.secondaries:
        eventually(lambda s=s: soa_serial(s.port, OPZONE) == serial, 20,
                   f"{s.kind} has {OPZONE} serial {serial}")
    names = [("example.com.", "MX"), ("example.com.", "TXT"), ("example.com.", "NS"),
             ("mail.example.com.", "AAAA"), ("host2.example.com.", "A"),
             ("_sip._tcp.example.com.", "SRV"), ("ftp.example.com.", "CNAME"),
             ("anything.apps.example.com.", "A"), ("build.lab.example.com.", "A")]
    want = zone_rrsets(cluster.mesos.dns_port, names)
    assert all(want.values())
    for s in cluster.secondaries:
        assert zone_rrsets(s.port, names) == want, s.kind
    # and each was told of the zone by a signed NOTIFY
    eventually(lambda: "received notify for zone 'example.com': TSIG 'xfr-key'"
               in cluster.named.log, 10, "named's log of the zone's NOTIFY")
    eventually(lambda: "[example.com.] notify, incoming" in cluster.knotd.log, 10,
               "knotd's log of the zone's NOTIFY")


def axfr_records(port: int) -> int:
    """How many records a (signed) AXFR of the zone from mesosdns carries."""
    return sum(len(rrset) for m in dns.query.xfr("127.0.0.1", "mesos.", port=port,
                                                   keyring=KEY.keyring(), keyname=KEY.name,
                                                   relativize=False)
               for rrset in m.answer)


@pytest.mark.parametrize("step", ["rename", "back"])
def test_a_task_change_reaches_both_secondaries_by_notify_and_ixfr(
    cluster: Cluster, step: str
) -> None:
    doc, gone, new = (
        (renamed(DEMO, "redis", "valkey"), "redis.marathon.mesos.", "valkey.marathon.mesos.")
        if step == "rename"
        else (DEMO, "valkey.marathon.mesos.", "redis.marathon.mesos.")
    )
    before = cluster.serial()
    logs = {s.kind: len(s.log) for s in cluster.secondaries}
    cluster.write_state(doc)
    ips = eventually(lambda: addresses(cluster.mesos.dns_port, new), 10, f"mesosdns answers {new}")
    changed_at = time.monotonic()
    serial = cluster.serial()
    assert serial and before and serial > before
    templated = new.replace(".marathon.mesos.", "." + APPS)
    for s in cluster.secondaries:
        eventually(lambda s=s: addresses(s.port, new) == ips, 10, f"{s.kind} answers {new}")
        assert addresses(s.port, gone) == set(), f"{s.kind} still answers {gone}"
        assert s.serial() == serial
        # the templated operator zone follows, by its own NOTIFY (whole zone)
        eventually(lambda s=s: soa_serial(s.port, APPS) == serial, 10, f"{s.kind} {APPS}")
        assert addresses(s.port, templated) == addresses(cluster.mesos.dns_port, templated)
        assert addresses(s.port, templated), templated
        assert time.monotonic() - changed_at < 10
        # the change came as an incremental transfer, after a NOTIFY (the
        # cluster domain's lines of the log)
        fresh = "\n".join(line for line in s.log[logs[s.kind]:].splitlines()
                          if "[mesos.]" in line or "'mesos" in line or "mesos/IN" in line)
        if s.kind == "knotd":
            assert "notify, incoming" in fresh, fresh
            assert "IXFR, incoming" in fresh and "AXFR, incoming" not in fresh, fresh
        else:
            assert "received notify for zone 'mesos': TSIG 'xfr-key'" in fresh, fresh
            # BIND does not name the kind at its default log level: an
            # incremental transfer is the one far smaller than the zone
            done = re.findall(r"Transfer completed: \d+ messages, (\d+) records", fresh)
            assert len(done) == 1, fresh
            assert int(done[0]) < axfr_records(cluster.mesos.dns_port) / 4, fresh
