"""The refresh loop: fetch, decode, resolve, then diff into the engine.

Every ``refreshSeconds`` (and at once when the masters change) the poller
fetches the leading master's state (or reads ``stateFile``), decodes it,
resolves the agent and framework host names that are not IP literals, and
applies it to the `Engine` (`mesosdns.builder.engine`): the first state is
built whole, later ones as the diff against the state held, so that a poll
recompiles only the names that changed. Each version goes to the sink.

Any failure (no master answers, 5xx, timeout, invalid JSON, no leader) keeps
the last good records; it is counted by kind and logged once per kind until
the next success.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import socket
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

from mesosdns import heap
from mesosdns.builder.engine import Compilers, Engine
from mesosdns.errors import FetchError, StateError
from mesosdns.metrics import RefreshStats
from mesosdns.records.generator import GeneratorParams, hosts_to_resolve
from mesosdns.state.client import StateClient, load_state_file
from mesosdns.state.model import State, Task
from mesosdns.state.reuse import StateDecoder
from mesosdns.store.update import Update

log = logging.getLogger(__name__)

RESOLVE_TIMEOUT = 5.0
# the longest a compile waits for the preliminary version's frames to go out
PRELIMINARY_WAIT = 5.0


@dataclass(frozen=True, slots=True)
class Source:
    """Where the state comes from: a state file, or the masters via a client."""

    state_file: str = ""
    client: StateClient | None = None
    timeout: float = 300.0  # stateTimeoutSeconds: the deadline of one fetch


async def resolve_hosts(hosts: Sequence[str], timeout: float = RESOLVE_TIMEOUT
                        ) -> dict[str, tuple[str, ...]]:
    """Resolve host names to every IPv4 and IPv6 address (as Go's LookupIP)."""
    loop = asyncio.get_running_loop()

    async def one(host: str) -> tuple[str, tuple[str, ...]]:
        try:
            async with asyncio.timeout(timeout):
                infos = await loop.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        except (OSError, TimeoutError, UnicodeError):
            return host, ()
        return host, tuple(dict.fromkeys(str(info[4][0]) for info in infos))

    results = await asyncio.gather(*(one(h) for h in sorted(hosts)))
    return {host: ips for host, ips in results if ips}


async def build_whole(
    engine: Engine,
    state: State,
    params: GeneratorParams,
    compilers: Compilers,
    orphans: Sequence[Task],
    source: str,
    sink: Callable[[Update], None],
    sending: Callable[[], bool] = lambda: False,
) -> None:
    """Build ``state`` whole (in threads) and publish it: a large first
    build's records go first, answered from as they are while they compile
    (`Engine.preliminary`), then the compiled version. ``sending``: whether
    the servers are still being sent a full version; the compile waits for
    the records' frames (made in this process: the two would share its GIL,
    and the first answers come later)."""
    serial = engine.next_serial()
    gen = await asyncio.to_thread(engine.generate, state, params, orphans)
    first = await asyncio.to_thread(engine.preliminary, gen, compilers, serial, source)
    if first is not None:
        sink(first)
        del first  # its frames hold what they still have to send
        deadline = time.monotonic() + PRELIMINARY_WAIT
        while sending() and time.monotonic() < deadline:
            await asyncio.sleep(0.01)
    built = await asyncio.to_thread(engine.compile, gen, state, params, compilers, serial)
    sink(engine.install(built, compilers, source))


class Poller:
    """Owns the refresh loop and the engine it feeds.

    Each refresh fetches and decodes the state, resolves host names, and
    applies the state to the `Engine`: as a diff when the engine holds a
    state built with the same settings, else as a full build (in a worker
    thread). Every version goes to ``sink``. ``compilers()`` returns what
    the answers are compiled with; a different value (a config reload)
    makes the next refresh a full build.
    """

    def __init__(
        self,
        source: Source,
        params: GeneratorParams,
        stats: RefreshStats,
        *,
        refresh_seconds: float,
        compilers: Callable[[], Compilers],
        sink: Callable[[Update], None],
        masters: Callable[[], Sequence[str]] = lambda: ("",),
        engine: Engine | None = None,
        defer_seconds: float = 0.5,
        sending: Callable[[], bool] = lambda: False,
    ) -> None:
        self.source = source
        self.params = params
        self.stats = stats
        self.refresh_seconds = refresh_seconds
        self.compilers = compilers
        self.sink = sink
        self.masters = masters
        # whether the servers are still being sent a full version
        self.sending = sending
        self.engine = engine or Engine()
        # the last state's tasks, reused where the next state has them unchanged
        self.decoder = StateDecoder()
        self.defer_seconds = defer_seconds  # how long a large SRV name may lag
        self._pending_timer: asyncio.TimerHandle | None = None
        # held by whatever changes the engine across an await (a refresh's
        # diff and recompile run in a worker thread)
        self.lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._logged: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()
        # clear while a refresh runs: work in other threads that can wait
        # (the HTTP bodies) waits on it rather than slow the refresh down
        self.idle = threading.Event()
        self.idle.set()

    def trigger(self) -> None:
        """Refresh now (the masters changed, or the config was reloaded)."""
        self._wake.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self.run(), name="mesosdns-poller")

    async def stop(self) -> None:
        # The flag (and the wake-up) end the loop even if the cancellation is
        # lost on the way (Python 3.11's wait_for, used by libraries, can
        # swallow one that races with its result).
        self._closing.set()
        self._wake.set()
        if self._pending_timer is not None:
            self._pending_timer.cancel()
            self._pending_timer = None
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def run(self) -> None:
        while not self._closing.is_set():
            await self.refresh()
            if self._closing.is_set():
                return
            self._wake.clear()
            # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a
            # cancellation that arrives just as the event is set (a trigger()
            # right before shutdown), and stop() then waited forever.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.refresh_seconds):
                    await self._wake.wait()

    async def refresh(self) -> bool:
        """One refresh; True when it succeeded (whether or not records changed)."""
        self.idle.clear()
        try:
            return await self._refresh()
        finally:
            self.idle.set()

    async def _refresh(self) -> bool:
        self.stats.attempts += 1
        started = time.monotonic()
        # what the last refresh freed (and the versions' frames sent since)
        # goes back before this one's document comes on top
        await asyncio.to_thread(heap.trim)
        try:
            masters = tuple(self.masters())
            body, origin = await self._fetch(masters)
            state = await asyncio.to_thread(self.decoder.decode, body)
            del body
            resolved = await resolve_hosts(sorted(hosts_to_resolve(state)))
            # the masters list that found the state also names masterN records
            params = replace(self.params, masters=masters, resolved=resolved)
            client = self.source.client
            if client is not None and not self.engine.can_diff(params, self.compilers()):
                # a whole build: its peak must not hold the document's buffer too
                client.drop_buffer()
            async with self.lock:
                changes = await self.load(state, params, origin)
        except (FetchError, StateError) as exc:
            self._failed(exc.kind, str(exc))
            return False
        except Exception as exc:  # a bug must not stop the loop or lose the records
            log.exception("refresh failed unexpectedly")
            self._failed("internal", repr(exc))
            return False
        duration = time.monotonic() - started
        self.stats.successes += 1
        self.stats.last_success = time.time()
        self.stats.last_duration = duration
        previous_skipped, self.stats.skipped_items = self.stats.skipped_items, state.skipped
        if self._logged:
            log.warning("state refresh recovered")
            self._logged.clear()
        if state.skipped and state.skipped != previous_skipped:
            # logged when the number changes, not at every refresh of the same state
            log.warning("state from %s: %d malformed items skipped", origin, state.skipped)
        log.info("records refreshed from %s in %.3fs (%s)", origin, duration, changes)
        return True

    async def load(self, state: State, params: GeneratorParams, origin: str,
                   orphans: Sequence[Task] = ()) -> str:
        """Apply a whole state to the engine: a diff when it can be, else a
        full build; publish the version. Returns what it did, for the log.
        The caller holds `lock`."""
        engine, compilers = self.engine, self.compilers()
        if engine.can_diff(params, compilers) and not orphans:
            n = await asyncio.to_thread(engine.apply_state, state, params)
            self._publish(await asyncio.to_thread(engine.flush, origin, defer=False))
            what = f"{n} changes"
        else:
            await build_whole(engine, state, params, compilers, orphans, origin, self.sink,
                              self.sending)
            # The build allocated millions of acyclic objects that reference
            # counting frees; the cyclic GC's full collections would rescan
            # them all: move them out of its view.
            gc.freeze()
            what = f"built whole: {engine.gen.counts() if engine.gen else {}}"
            return what
        if compilers.zones is not None:
            # operator zones' templates and PTR records read the whole state
            gen = engine.gen
            assert gen is not None
            rs = gen.snapshot()
            zones = await asyncio.to_thread(compilers.zones, rs, engine.serial, state, params)
            self.sink(engine.set_opzones(zones))
        return what

    def _publish(self, update: Update | None) -> None:
        """Send a change; schedule the large SRV names it deferred."""
        if update is None:
            return
        self.sink(update)
        live = self.engine.live
        if live is not None and live.pending and self._pending_timer is None:
            loop = asyncio.get_running_loop()
            self._pending_timer = loop.call_later(self.defer_seconds, self._compile_pending)

    def _compile_pending(self) -> None:
        self._pending_timer = None
        if self.lock.locked():  # a change is under way in a thread: later
            loop = asyncio.get_running_loop()
            self._pending_timer = loop.call_later(self.defer_seconds, self._compile_pending)
            return
        if not self._closing.is_set():
            update = self.engine.compile_pending()
            if update is not None:
                self.sink(update)

    async def _fetch(self, masters: Sequence[str]) -> tuple[bytes | memoryview, str]:
        if self.source.state_file:
            path = self.source.state_file
            return await asyncio.to_thread(load_state_file, path), path
        if self.source.client is None:
            raise FetchError("no state source configured")
        deadline = asyncio.get_running_loop().time() + self.source.timeout
        result = await self.source.client.fetch(masters, deadline)
        return result.body, result.master

    def _failed(self, kind: str, message: str) -> None:
        self.stats.failed(kind)
        if kind not in self._logged:
            self._logged.add(kind)
            keeping = ("keeping the last good records" if self.engine.ready
                       else "nothing served yet")
            log.error("state refresh failed (%s): %s; %s", kind, message, keeping)
        else:
            log.debug("state refresh failed again (%s): %s", kind, message)
