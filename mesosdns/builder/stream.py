"""Stream mode (``stateSource: "stream"``): records that follow the cluster.

`StreamPoller` subscribes to the leading master's v1 operator API event stream
(`mesosdns.state.stream`) instead of fetching ``/master/state`` every
``refreshSeconds``:

- ``SUBSCRIBED`` (the whole state): the record set (`IncrementalGenerator`)
  and the DNS answers (`LiveAnswers`) are built from it in a worker thread,
  as a poll's refresh is, and published (`publish`, the poller's hook).
- Every later event changes the generator; the names it changed are
  recompiled in place in the answer table, the SOA serial moves on (only
  when records changed) and a new snapshot goes to the store, so that HTTP
  (``/v1/hosts``, ``/v1/enumerate``, ``/v1/axfr``) agrees with DNS. Events
  that arrive together (one read of the stream) are applied as one batch.
- A broken stream (EOF, error, a missed heartbeat) is resubscribed at once
  when it had been up for a while, else after a backoff (tenacity,
  exponential, capped). While the stream is down, the state is polled as in
  poll mode, at most every ``refreshSeconds``: the records stay as fresh as
  the original's. A new ``SUBSCRIBED`` rebuilds everything.
- Leader changes: a deposed master ends its streams (Mesos masters exit);
  a new leader reported by ZooKeeper (`trigger`) ends the stream at once.
- Config reload (`trigger` after the app changed ``params`` / ``compile``):
  rebuilt from the current state, without resubscribing.
- Framework pids: the v1 API has none, and a pid framework's records (its A
  record and ``_framework._tcp`` SRV) come from its scheduler pid. Before
  building from ``SUBSCRIBED``, the pids are read from the master's
  ``/master/state-summary`` (a small document: no tasks) and filled in, so
  the records equal a poll's. A ``FRAMEWORK_ADDED`` or ``_UPDATED`` (a
  scheduler failover moves the pid) keeps the pid known for that framework
  and asks for the pids again in the background; they are applied as a
  change of their own. When the pids cannot be read, frameworks are
  built from their hostname (as an HTTP API framework is) and the read is
  retried with backoff.
- Host names of new agents and frameworks that are not IP literals are
  resolved in the background, then applied as a change of their own; all of
  them are resolved again every ``refreshSeconds`` (a poll resolves them at
  each refresh), and what changed is applied.
- Operator zones, when configured, are compiled at each full build
  and recompiled from a copy of the records at most every
  ``refreshSeconds`` while events change them (their templates and PTR
  records need the whole state).

Everything that changes the records runs on the event loop under one lock;
the DNS server reads the table on the same thread, so each batch is atomic to
it (see `mesosdns.dns.incremental`).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import random
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import msgspec
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from mesosdns.builder.engine import Compilers, Engine
from mesosdns.builder.poll import Poller, Source, build_whole, resolve_hosts
from mesosdns.dns.incremental import DEFER_TARGETS, LiveAnswers
from mesosdns.errors import FetchError, StateError
from mesosdns.metrics import RefreshStats
from mesosdns.records.generator import GeneratorParams, canonical_ip, hosts_to_resolve
from mesosdns.records.incremental import IncrementalGenerator
from mesosdns.state.model import Framework, State, Task
from mesosdns.state.stream import StreamError, Subscriber, Subscription
from mesosdns.state.v1 import (
    AgentAdded,
    AgentRemoved,
    Event,
    FrameworkAdded,
    FrameworkRemoved,
    Heartbeat,
    Malformed,
    Subscribed,
    TaskAdded,
    TaskUpdated,
    Unknown,
)
from mesosdns.store.update import Update

log = logging.getLogger(__name__)

# at most this long (and the state timeout) for the framework pids at subscribe
PID_TIMEOUT = 10.0
StreamCompilers = Compilers  # the name stream mode's callers know it by


@dataclass
class StreamStats:
    """Counters of stream mode (for logs and metrics)."""

    subscriptions: int = 0  # SUBSCRIBED received (full builds)
    broken: int = 0  # streams that ended or failed
    events: int = 0
    batches: int = 0
    flushes: int = 0  # batches that changed records
    names_compiled: int = 0
    unknown_tasks: int = 0  # TASK_UPDATED for a task not known
    malformed: int = 0
    fallback_polls: int = 0
    pid_reads: int = 0  # framework pids read from /master/state-summary
    pid_failures: int = 0
    apply_seconds: float = 0.0  # CPU (process time) spent applying events
    last_build_seconds: float = 0.0
    event_types: dict[str, int] = field(default_factory=dict)

    def counters(self, streaming: bool) -> dict[str, tuple[str, float]]:
        """For /metrics (``mesosdns_stream_<name>``): name -> (help, value)."""
        return {
            "streaming": ("1 while the records follow a live event stream", float(streaming)),
            "subscriptions": ("SUBSCRIBED states received (full builds)", self.subscriptions),
            "broken": ("Event streams that ended or failed", self.broken),
            "events": ("Events received", self.events),
            "flushes": ("Event batches that changed records", self.flushes),
            "names_compiled": ("Names recompiled in the DNS answers", self.names_compiled),
            "unknown_tasks": ("TASK_UPDATED events for unknown tasks", self.unknown_tasks),
            "malformed": ("Malformed events ignored", self.malformed),
            "fallback_polls": ("State polls while the stream was down", self.fallback_polls),
            "pid_reads": ("Framework pids read from /master/state-summary", self.pid_reads),
            "pid_failures": ("Framework pid reads that failed", self.pid_failures),
            "apply_cpu_seconds": ("CPU time spent applying events", self.apply_seconds),
            "last_build_seconds": ("Duration of the last full build", self.last_build_seconds),
        }


class StreamPoller(Poller):
    """Follows the operator API event stream; polls while it is down.

    Takes the `Poller`'s arguments (used as they are for the fallback polls,
    which feed the same engine). ``subscriber`` defaults to one over
    ``source.client``.
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
        subscriber: Subscriber | None = None,
        backoff: float = 0.5,
        backoff_max: float = 30.0,
        stable_after: float = 10.0,
        defer_seconds: float = 0.5,
        defer_targets: int = DEFER_TARGETS,
        rng: random.Random | None = None,
        sending: Callable[[], bool] = lambda: False,
    ) -> None:
        super().__init__(
            source,
            params,
            stats,
            refresh_seconds=refresh_seconds,
            compilers=compilers,
            sink=sink,
            masters=masters,
            engine=Engine(rng=rng or random.Random(), defer_targets=defer_targets),
            defer_seconds=defer_seconds,
            sending=sending,
        )
        self.subscriber = subscriber
        self.backoff = backoff
        self.backoff_max = backoff_max
        self.stable_after = stable_after
        self.stream_stats = StreamStats()
        self._sub: Subscription | None = None
        self._source = ""
        self._kicked = False
        self._last_poll: float | None = None
        self._zones_dirty = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._resolving: set[str] = set()
        self._down_logged: set[str] = set()
        self._subscriber: Subscriber | None = None
        # framework id -> scheduler pid (None: HTTP API), from the last read
        self._pids: dict[str, str | None] = {}
        self._pids_wanted = False
        self._pid_task: asyncio.Task[None] | None = None
        self._pid_logged = False
        self._pid_refused = False

    # -- lifecycle -----------------------------------------------------

    @property
    def gen(self) -> IncrementalGenerator | None:
        return self.engine.gen

    @property
    def live(self) -> LiveAnswers | None:
        return self.engine.live

    @property
    def streaming(self) -> bool:
        """Whether records currently follow a live stream."""
        return self._sub is not None and self.gen is not None

    def trigger(self) -> None:
        """The masters or the configuration changed."""
        super().trigger()
        if self.gen is not None:
            self._spawn(self._reconfigure())

    async def stop(self) -> None:
        self._closing.set()
        if self._sub is not None:
            self._sub.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await super().stop()

    async def run(self) -> None:
        self._spawn(self._zones_loop())
        self._spawn(self._re_resolve_loop())
        while not self._closing.is_set():
            # the backoff never waits longer than a fallback poll may
            most = min(self.backoff_max, max(self.refresh_seconds, self.backoff))
            retrying = AsyncRetrying(
                retry=retry_if_exception_type(StreamError),
                wait=wait_exponential(multiplier=self.backoff, min=self.backoff, max=most),
                stop=self._stop_retrying,
                sleep=self._sleep,
                reraise=True,
            )
            try:
                async for attempt in retrying:
                    with attempt:
                        await self._session()
            except StreamError:
                return  # only when closing

    def _stop_retrying(self, _: RetryCallState) -> bool:
        return self._closing.is_set()

    async def _sleep(self, seconds: float) -> None:
        """The backoff's sleep: ends early on stop() or trigger()."""
        self._wake.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):
                await self._wake.wait()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- one subscription ----------------------------------------------

    async def _session(self) -> None:
        """Subscribe and follow until the stream ends. Returns when a stream
        that had been up ``stable_after`` seconds (or was ended on purpose)
        broke; raises StreamError otherwise, after a fallback poll."""
        if self._closing.is_set():
            return
        if self.subscriber is None and self.source.client is None:
            raise StreamError("no Mesos master client configured")
        subscriber = self.subscriber or Subscriber(self.source.client)  # type: ignore[arg-type]
        self._subscriber = subscriber
        try:
            sub = await subscriber.subscribe(tuple(self.masters()))
        except Exception as exc:
            err = exc if isinstance(exc, StreamError) else StreamError(f"subscribe: {exc!r}")
            self._down(err)
            await self._fallback_poll()
            raise err from None
        self._sub, self._kicked = sub, False
        try:
            try:
                async for batch in sub.batches():
                    await self._apply(batch, sub)
                    if self._closing.is_set():
                        return
            except StreamError:
                raise
            except Exception as exc:  # a bug must not end the stream mode
                log.exception("applying events failed; resubscribing to rebuild the records")
                raise StreamError(f"internal error: {exc!r}", "internal") from exc
        except StreamError as exc:
            self._down(exc)
            if self._closing.is_set():
                return
            if self._kicked or (
                self.gen is not None and time.monotonic() - sub.started >= self.stable_after
            ):
                return
            await self._fallback_poll()
            raise
        finally:
            sub.close()
            self._sub = None

    def _down(self, exc: Exception) -> None:
        self.stream_stats.broken += 1
        kind = type(exc).__name__ + (":up" if self._sub is not None else ":subscribe")
        if self._closing.is_set():
            return
        if kind not in self._down_logged:
            self._down_logged.add(kind)
            log.warning(
                "operator API event stream: %s; %s",
                exc,
                "resubscribing"
                if self._sub is not None
                else "retrying with backoff, polling the state meanwhile",
            )
        else:
            log.debug("operator API event stream: %s", exc)

    async def _fallback_poll(self) -> None:
        """Poll the state (as poll mode does) if the last poll is old enough."""
        now = time.monotonic()
        if self._last_poll is not None and now - self._last_poll < self.refresh_seconds:
            return
        self._last_poll = now
        self.stream_stats.fallback_polls += 1
        await self.refresh()  # into the same engine, under its lock; SUBSCRIBED rebuilds

    # -- events --------------------------------------------------------

    async def _apply(self, batch: list[Event], sub: Subscription) -> None:
        async with self.lock:
            started = time.process_time()
            types = self.stream_stats.event_types
            for event in batch:
                name = type(event).__name__
                types[name] = types.get(name, 0) + 1
                if isinstance(event, Subscribed):
                    state = msgspec.structs.replace(event.state, leader=sub.leader)
                    pids = await self._read_pids(sub)
                    self._pids = pids or {}
                    if pids is not None:
                        state = with_pids(state, pids)
                    await self._full_build(state, event.orphans, sub.master)
                    if pids is None:
                        self._want_pids()
                    started = time.process_time()
                    self._down_logged.clear()
                elif self.gen is not None:
                    self._apply_event(self.gen, event)
            self.stream_stats.events += len(batch)
            self.stream_stats.batches += 1
            self._flush()
            self.stream_stats.apply_seconds += time.process_time() - started
            if self.gen is not None:
                self.stats.last_success = time.time()

    def _apply_event(self, gen: IncrementalGenerator, event: Event) -> None:
        if isinstance(event, TaskAdded):
            gen.put_task(event.task)
        elif isinstance(event, TaskUpdated):
            if not gen.update_task(event.framework_id, event.task_id, event.status, event.state):
                self.stream_stats.unknown_tasks += 1
        elif isinstance(event, AgentAdded):
            if gen.put_agent(event.agent):
                self._resolve_later(gen, event.agent.upid().host)
        elif isinstance(event, AgentRemoved):
            gen.remove_agent(event.agent_id)
        elif isinstance(event, FrameworkAdded):
            fw = event.framework
            known = fw.id in self._pids
            if fw.pid is None and known:
                fw = msgspec.structs.replace(fw, pid=self._pids[fw.id])
            gen.put_framework(fw)
            self._resolve_later(gen, fw.host_port()[0])
            if event.updated or not known:
                self._want_pids()
        elif isinstance(event, FrameworkRemoved):
            gen.remove_framework(event.framework_id)
        elif isinstance(event, Malformed):
            self.stream_stats.malformed += 1
            log.warning("ignoring a malformed %s event: %s", event.type, event.reason)
        elif isinstance(event, Unknown):
            log.debug("ignoring a %s event", event.type)
        else:
            assert isinstance(event, Heartbeat)

    def _flush(self) -> None:
        """Recompile what the applied changes touched and publish it."""
        update = self.engine.flush(self._source)
        if update is not None:
            self.stream_stats.names_compiled += len(update.a)
            self.stream_stats.flushes += 1
            self._zones_dirty = True
            self._publish(update)

    # -- full builds ---------------------------------------------------

    async def _full_build(self, state: State, orphans: Sequence[Task], source: str) -> None:
        """Build the records and answers of ``state`` (in a thread) and publish."""
        self.stats.attempts += 1
        started = time.monotonic()
        masters = tuple(self.masters())
        resolved = await resolve_hosts(sorted(hosts_to_resolve(state)))
        params = replace(self.params, masters=masters, resolved=resolved)
        engine, compilers = self.engine, self.compilers()
        await build_whole(engine, state, params, compilers, tuple(orphans), source, self.sink,
                          self.sending)
        self._source = source
        self._zones_dirty = False
        # Events allocate objects the cyclic GC tracks; its full collections
        # would rescan the millions built here (pauses of a large fraction of
        # a second). They are acyclic and freed by reference counting: move
        # them out of the collector's view.
        gc.freeze()
        duration = time.monotonic() - started
        self.stream_stats.subscriptions += 1
        self.stream_stats.last_build_seconds = duration
        self.stats.successes += 1
        self.stats.last_success = time.time()
        self.stats.last_duration = duration
        self.stats.skipped_items = state.skipped
        if state.skipped:
            log.warning("state from %s: %d malformed items skipped", source, state.skipped)
        gen = engine.gen
        log.info(
            "records built from the event stream of %s in %.3fs: %s", source, duration,
            gen.counts() if gen else {},
        )

    async def _reconfigure(self) -> None:
        """After trigger(): apply a new masters list, or rebuild for a new
        configuration; end the stream when ZooKeeper names another leader."""
        async with self.lock:
            gen = self.gen
            if gen is None:
                return
            masters = tuple(self.masters())
            wanted = replace(self.params, masters=gen.params.masters, resolved=gen.params.resolved)
            if self.compilers() != self.engine.compilers or wanted != gen.params:
                log.info("configuration changed: rebuilding the records")
                await self._full_build(gen.state(), gen.orphans(), self._source)
            else:
                gen.set_masters(masters)
                self._flush()
            sub = self._sub
            if sub is not None and masters and masters[0] and masters[0] != sub.leader_address:
                log.info("ZooKeeper names %s as leader: resubscribing", masters[0])
                self._kicked = True
                sub.close()

    # -- framework pids --------------------------------------------------

    async def _read_pids(self, sub: Subscription) -> dict[str, str | None] | None:
        """The frameworks' pids from the subscribed master; None on failure."""
        subscriber = self._subscriber
        if subscriber is None:
            return None
        timeout = min(PID_TIMEOUT, self.source.timeout or PID_TIMEOUT)
        try:
            pids = await subscriber.framework_pids(sub.master, timeout)
        except (FetchError, StateError) as exc:
            self.stream_stats.pid_failures += 1
            # an HTTP error status (the endpoint missing, credentials refused)
            # is not retried until the next subscription or framework event
            self._pid_refused = isinstance(exc, FetchError) and exc.kind == "http_status"
            level = logging.DEBUG if self._pid_logged else logging.WARNING
            self._pid_logged = True
            log.log(
                level,
                "framework pids: %s; frameworks answer by hostname until they can be read",
                exc,
            )
            return None
        self.stream_stats.pid_reads += 1
        self._pid_logged = False
        return pids

    def _want_pids(self) -> None:
        """Read the pids again soon (one reader at a time; a request made
        while it reads makes it read once more)."""
        self._pids_wanted = True
        gen, sub = self.gen, self._sub
        if gen is None or sub is None or self._closing.is_set():
            return
        if self._pid_task is None or self._pid_task.done():
            self._pid_task = asyncio.create_task(self._pid_loop(gen, sub))
            self._tasks.add(self._pid_task)
            self._pid_task.add_done_callback(self._tasks.discard)

    async def _pid_loop(self, gen: IncrementalGenerator, sub: Subscription) -> None:
        delay = self.backoff
        while self._pids_wanted and self.gen is gen and self._sub is sub:
            self._pids_wanted = False
            pids = await self._read_pids(sub)
            if pids is None:
                if self._pid_refused:
                    return
                self._pids_wanted = True
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.backoff_max)
                continue
            async with self.lock:
                if self.gen is not gen:
                    return
                self._pids = pids
                changed = False
                for fw in list(gen.frameworks.values()):
                    if fw.id in pids and fw.pid != pids[fw.id]:
                        gen.put_framework(msgspec.structs.replace(fw, pid=pids[fw.id]))
                        self._resolve_later(gen, gen.frameworks[fw.id].host_port()[0])
                        changed = True
                if changed:
                    self._flush()

    def _resolve_later(self, gen: IncrementalGenerator, host: str) -> None:
        if (
            not host
            or canonical_ip(host) is not None
            or host in gen.params.resolved
            or host in self._resolving
        ):
            return
        self._resolving.add(host)
        self._spawn(self._resolve(gen, host))

    async def _resolve(self, gen: IncrementalGenerator, host: str) -> None:
        try:
            found = await resolve_hosts([host])
        finally:
            self._resolving.discard(host)
        ips = found.get(host, ())
        if not ips:
            return
        async with self.lock:
            if self.gen is gen:
                gen.set_resolved(host, ips)
                self._flush()

    async def _re_resolve_loop(self) -> None:
        """Every refreshSeconds, resolve the agents' and frameworks' host
        names again, as each poll does, and apply the changes."""
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(self.refresh_seconds, 1.0)):
                    await self._closing.wait()
            gen = self.gen
            if self._closing.is_set() or gen is None:
                continue
            hosts = sorted(
                hosts_to_resolve(State(frameworks=tuple(gen.frameworks.values()),
                                       agents=tuple(gen.agents.values())))
            )
            if not hosts:
                continue
            found = await resolve_hosts(hosts)
            async with self.lock:
                if self.gen is not gen:
                    continue
                changed = False
                for host in hosts:
                    ips = found.get(host, ())
                    if gen.params.resolved.get(host, ()) != ips:
                        gen.set_resolved(host, ips)
                        changed = True
                if changed:
                    log.info("host names resolve to new addresses: records updated")
                    self._flush()

    # -- operator zones ------------------------------------------------

    async def _zones_loop(self) -> None:
        """Recompile the operator zones from a copy of the records, at most
        every refreshSeconds, while events change the records."""
        while not self._closing.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(max(self.refresh_seconds, 1.0)):
                    await self._closing.wait()
            if self._closing.is_set():
                return
            compilers = self.engine.compilers
            if not self._zones_dirty or compilers is None or compilers.zones is None:
                continue
            async with self.lock:
                gen = self.gen
                if gen is None:
                    continue
                rs = gen.snapshot()
                state, params, serial = gen.state(), gen.params, self.engine.serial
                self._zones_dirty = False
            try:
                zones = await asyncio.to_thread(compilers.zones, rs, serial, state, params)
            except Exception:
                log.exception("operator zones: recompiling failed; keeping the last ones")
                continue
            async with self.lock:
                if self.gen is gen:
                    self.sink(self.engine.set_opzones(zones))


def with_pids(state: State, pids: dict[str, str | None]) -> State:
    """``state`` with the frameworks' pids filled in from ``pids``."""
    frameworks: list[Framework] = []
    for fw in state.frameworks:
        if fw.pid is None and pids.get(fw.id):
            fw = msgspec.structs.replace(fw, pid=pids[fw.id])
        frameworks.append(fw)
    return msgspec.structs.replace(state, frameworks=tuple(frameworks))


__all__ = ["StreamCompilers", "StreamPoller", "StreamStats", "with_pids"]
