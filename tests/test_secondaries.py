"""NOTIFY, IXFR and AXFR with real secondaries: BIND (``named``) and Knot
(``knotd``), both configured as secondaries of the cluster domain with a
TSIG key (`secondaries`).

The first tests drive the NOTIFY sender (`mesosdns.server.notify`) alone
against both servers: signed NOTIFYs are answered, resent until a server
is there to answer, and a newer serial replaces an older one still
unanswered. ``named`` and ``knotd`` come from Debian's ``bind9`` and
``knot`` (``scripts/test.sh`` installs them); without them the tests skip,
and fail under ``CI=true``.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import dns.message
import dns.opcode
import dns.rcode
import pytest
from conftest import require_tool
from secondaries import BindSecondary, Key, KnotSecondary, Secondary, free_port

from mesosdns.dns.settings import TSIGKey
from mesosdns.server.notify import Notifier

pytestmark = pytest.mark.timeout(90)
T = TypeVar("T")
KEY = Key()
TSIG = TSIGKey(KEY.name + ".", KEY.algorithm + ".", base64.b64decode(KEY.secret))
KINDS: dict[str, type[Secondary]] = {"named": BindSecondary, "knotd": KnotSecondary}


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
