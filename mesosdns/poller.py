"""The refresh loop: fetch, parse, resolve, generate, compile, swap.

Every ``refreshSeconds`` (and at once when the masters change) the poller
fetches the leading master's state (or reads ``stateFile``), parses it,
resolves the agent and framework host names that are not IP literals,
generates the record set, compiles it for DNS, and publishes the result with
one assignment. The CPU-heavy steps run in a worker thread so the event loop
keeps answering queries during a large refresh.

Any failure (no master answers, 5xx, timeout, invalid JSON, no leader) keeps
the last good records; it is counted by kind and logged once per kind until
the next success.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from mesosdns.errors import FetchError, StateError
from mesosdns.metrics import RefreshStats
from mesosdns.records.generator import GeneratorParams, generate, hosts_to_resolve
from mesosdns.records.model import RecordSet
from mesosdns.snapshot import Snapshot, SnapshotStore
from mesosdns.state.client import StateClient, load_state_file
from mesosdns.state.model import State, parse_state

log = logging.getLogger(__name__)

T = TypeVar("T")
RESOLVE_TIMEOUT = 5.0


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


class Poller(Generic[T]):
    """Owns the refresh loop. ``compile`` runs in a thread; ``publish`` on the loop.

    ``compile(records, serial, state, params)``: the state and the generator
    parameters of the refresh are passed too (the operator zones' templates
    and the cluster PTR records need them).
    """

    def __init__(
        self,
        source: Source,
        params: GeneratorParams,
        store: SnapshotStore,
        stats: RefreshStats,
        *,
        refresh_seconds: float,
        compile: Callable[[RecordSet, int, State, GeneratorParams], T],
        publish: Callable[[Snapshot, T], None],
        masters: Callable[[], Sequence[str]] = lambda: ("",),
    ) -> None:
        self.source = source
        self.params = params
        self.store = store
        self.stats = stats
        self.refresh_seconds = refresh_seconds
        self.compile = compile
        self.publish = publish
        self.masters = masters
        self._wake = asyncio.Event()
        self._logged: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._closing = asyncio.Event()

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
        """One refresh; True when new records were published."""
        self.stats.attempts += 1
        started = time.monotonic()
        try:
            masters = tuple(self.masters())
            body, origin = await self._fetch(masters)
            state = await asyncio.to_thread(parse_state, body)
            del body
            resolved = await resolve_hosts(sorted(hosts_to_resolve(state)))
            # the masters list that found the state also names masterN records
            params = replace(self.params, masters=masters, resolved=resolved)
            serial = self.store.next_serial()
            records, compiled = await asyncio.to_thread(self._build, state, params, serial)
        except (FetchError, StateError) as exc:
            self._failed(exc.kind, str(exc))
            return False
        except Exception as exc:  # a bug must not stop the loop or lose the records
            log.exception("refresh failed unexpectedly")
            self._failed("internal", repr(exc))
            return False
        self.publish(Snapshot(records, serial, source=origin), compiled)
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
        log.info("records refreshed from %s in %.3fs: %s", origin, duration, records.count())
        return True

    def _build(self, state: State, params: GeneratorParams, serial: int) -> tuple[RecordSet, T]:
        records = generate(state, params)
        return records, self.compile(records, serial, state, params)

    async def _fetch(self, masters: Sequence[str]) -> tuple[bytes, str]:
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
            keeping = "keeping the last good records" if self.store.ready else "nothing served yet"
            log.error("state refresh failed (%s): %s; %s", kind, message, keeping)
        else:
            log.debug("state refresh failed again (%s): %s", kind, message)
