"""One serving process's parts: the replica, the DNS server, the HTTP API.

`ServingService` answers DNS (and, when ``http`` is set, the HTTP API) from a
`Replica`: each version the builder publishes reaches the DNS server's table
and the API's snapshot store as one step on the event loop. Counters for
``/metrics`` are this process's plus those the other serving processes
write to the run directory (`CounterFiles`), and the builder's, which travel
with its updates.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from mesosdns import heap
from mesosdns.builder.service import dns_settings
from mesosdns.config import Config
from mesosdns.dns.opxfr import transfer_serials
from mesosdns.dns.protocol import DNSServer
from mesosdns.dns.rrl import TABLE_FILE, RRLTable
from mesosdns.metrics import Metrics, RefreshStats
from mesosdns.server.api import API
from mesosdns.server.notify import Notifier
from mesosdns.store.replica import Replica
from mesosdns.store.snapshot import SnapshotStore

log = logging.getLogger(__name__)

# seconds an idle HTTP keep-alive connection is kept (aiohttp's default is an hour)
HTTP_KEEPALIVE = 15.0


class _OncePerMinute(logging.Filter):
    """Lets one record through per minute: aiohttp logs every malformed request."""

    def __init__(self) -> None:
        super().__init__()
        self.last = 0.0

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now - self.last < 60.0:
            return False
        self.last = now
        return True


logging.getLogger("aiohttp.server").addFilter(_OncePerMinute())


class CounterFiles:
    """Counters shared between serving processes through small files in the
    run directory: each process writes its own (`write`), the one serving
    /metrics adds up the others' (`others`)."""

    def __init__(self, run_dir: str, index: int) -> None:
        self.run_dir = run_dir
        self.path = os.path.join(run_dir, f"counters-{index}.json")
        # what an earlier process in this place counted: a replacement goes
        # on from there, so that the sum never goes down
        self.base: dict[str, int] = {}
        with (
            contextlib.suppress(OSError, orjson.JSONDecodeError, AttributeError, ValueError),
            open(self.path, "rb") as f,
        ):
            self.base = {k: int(v) for k, v in orjson.loads(f.read()).items()}

    def write(self, counters: Mapping[str, int]) -> None:
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            f.write(orjson.dumps(dict(counters)))
        os.replace(tmp, self.path)

    def others(self) -> dict[str, int]:
        total: dict[str, int] = {}
        with contextlib.suppress(OSError):
            for name in os.listdir(self.run_dir):
                path = os.path.join(self.run_dir, name)
                if not name.startswith("counters-") or not name.endswith(".json"):
                    continue
                if path == self.path:
                    continue
                with contextlib.suppress(OSError, orjson.JSONDecodeError):
                    with open(path, "rb") as f:
                        data = orjson.loads(f.read())
                    for k, v in data.items():
                        total[k] = total.get(k, 0) + int(v)
        return total


class _AllCounters:
    """The DNS and operator-zone counters of every serving process."""

    def __init__(self, dns: DNSServer, files: CounterFiles | None,
                 notifier: Callable[[], Notifier | None] = lambda: None) -> None:
        self.dns = dns
        self.files = files
        self.notifier = notifier

    def own(self) -> dict[str, int]:
        """This process's counts (and its predecessor's in the same place)."""
        mine = {**self.dns.stats.as_dict(), **self.dns.zone_stats.as_dict()}
        if self.dns.transfers is not None:  # zoneTransfer on
            mine.update(self.dns.transfers.stats.as_dict())
        notifier = self.notifier()
        if notifier is not None:
            mine.update(notifier.stats.as_dict())
        if self.files is not None:
            for k, v in self.files.base.items():
                mine[k] = mine.get(k, 0) + v
        return mine

    def as_dict(self) -> dict[str, int]:
        mine = self.own()
        if self.files is None:
            return mine
        for k, v in self.files.others().items():
            mine[k] = mine.get(k, 0) + v
        return mine


@dataclass
class ServingService:
    config: Config
    http: bool = True
    run_dir: str = ""  # where serving processes share their counters ("" alone)
    index: int = 0
    reuse_port: bool = False
    replica: Replica = field(default_factory=Replica)
    store: SnapshotStore = field(default_factory=SnapshotStore)
    refresh_stats: RefreshStats = field(default_factory=RefreshStats)
    dns: DNSServer | None = None
    api: API | None = None
    runner: web.AppRunner | None = None
    http_port: int = 0
    counters: _AllCounters | None = None
    files: CounterFiles | None = None
    # the builder's counters when it runs in this process (else they come
    # with its frames)
    builder_counters: Callable[[], Mapping[str, Any]] | None = None
    # NOTIFY to the secondaries (the first serving process only)
    notifier: Notifier | None = None
    _notifier_task: asyncio.Task[None] | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        self.replica.on_version = self._version
        self.replica.on_stats = self.stats_changed

    async def start(self, dns_port: int | None = None) -> None:
        c = self.config
        settings = dns_settings(c, dns_port)
        # rrl: the serving processes account into one table in the run dir
        table = (
            RRLTable(path=os.path.join(self.run_dir, TABLE_FILE))
            if settings.rrl is not None and self.run_dir
            else None
        )
        self.dns = DNSServer(settings, reuse_port=self.reuse_port, rrl_table=table)
        if self.dns.transfers is not None:  # IXFR reads the replica's journal
            self.dns.transfers.journal = self.replica.journal
        if self.replica.ready:  # a version came before the server was made
            self._version(self.replica, True)
        if c.dns_on:
            await self.dns.start()  # logs where it listens
        self.files = CounterFiles(self.run_dir, self.index) if self.run_dir else None
        self.counters = _AllCounters(self.dns, self.files, lambda: self.notifier)
        await self._start_notifier(c)
        if self.http and c.http_on:
            await self._start_http()

    def _version(self, replica: Replica, full: bool) -> None:
        dns = self.dns
        if full:
            # millions of acyclic objects, freed by reference counting: out of
            # the cyclic GC's sight, whose full collections would pause DNS
            gc.freeze()
        if dns is not None:
            if full and replica.table is not None:
                dns.set_table(replica.table)
            if full or dns.zones is not replica.opzones:
                dns.set_zones(replica.opzones)
        self.stats_changed(replica.stats)
        snap = replica.snapshot()
        if snap is not None:
            self.store.publish(snap)
        if self.notifier is not None and replica.ready:
            self.notifier.changed(replica.serial)
            self.notifier.zones_changed(transfer_serials(replica.opzones))
        if full:
            # the frames and the version before, freed: their pages go back
            # (in a thread: the call lets go of the GIL; DNS goes on meanwhile)
            try:
                asyncio.get_running_loop().run_in_executor(None, heap.trim)
            except RuntimeError:
                heap.trim()

    async def _start_notifier(self, config: Config) -> None:
        """NOTIFY the ``zoneTransfer.notify`` targets of each new serial:
        from the first serving process, once it serves the version."""
        transfer = dns_settings(config).transfer
        if self.index != 0 or not config.dns_on or transfer is None or not transfer.notify:
            return
        notifier = Notifier([config.domain + "."], transfer.notify, transfer.tsig,
                            config.listener)
        await notifier.start()
        self.notifier = notifier
        if self.replica.ready:
            notifier.changed(self.replica.serial)
            notifier.zones_changed(transfer_serials(self.replica.opzones))

    async def _restart_notifier(self, config: Config) -> None:
        old, self.notifier = self.notifier, None
        if old is not None:
            await old.stop()
        await self._start_notifier(config)

    def stats_changed(self, stats: Mapping[str, Any]) -> None:
        """The builder's counters (with each version, and now and then)."""
        if self.builder_counters is not None:
            return
        refresh = stats.get("refresh")
        if refresh:
            r = self.refresh_stats
            r.attempts, r.successes, r.failures = (
                refresh["attempts"], refresh["successes"], refresh["failures"])
            r.last_success, r.last_duration = refresh["last_success"], refresh["last_duration"]
            r.skipped_items = refresh["skipped_items"]
            r.failures_by_kind = dict(refresh["failures_by_kind"]) or None

    def _stream_counters(self) -> dict[str, tuple[str, float]] | None:
        stats = self.replica.stats if self.builder_counters is None else self.builder_counters()
        stream = stats.get("stream")
        return {k: (v[0], v[1]) for k, v in stream.items()} if stream else None

    def _builder_gauges(self) -> dict[str, tuple[str, float]] | None:
        stats = self.replica.stats if self.builder_counters is None else self.builder_counters()
        gauges = stats.get("gauges")
        return {k: (v[0], v[1]) for k, v in gauges.items()} if gauges else None

    async def _start_http(self) -> None:
        assert self.dns is not None and self.counters is not None
        stats = self.dns.stats

        def count(in_domain: bool, found: bool) -> None:
            if in_domain:
                stats.mesos_requests += 1
                if found:
                    stats.mesos_success += 1
                else:
                    stats.mesos_nxdomain += 1
            else:
                stats.forward.requests += 1
                stats.forward.failed += 1

        metrics = Metrics(self.counters, self.refresh_stats, self.store, self._stream_counters,
                          self._builder_gauges)
        self.api = API(self.config, self.store, metrics, count)
        self.runner = web.AppRunner(self.api.app(), access_log=None, handle_signals=False,
                                    keepalive_timeout=HTTP_KEEPALIVE)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.config.http_listener, self.config.http_port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.http_port = sockets[0].getsockname()[1] if sockets else self.config.http_port
        log.info("HTTP listening on %s port %d", self.config.http_listener, self.http_port)

    def write_counters(self) -> None:
        """This process's counters, for the process that serves /metrics."""
        if self.files is not None and self.counters is not None:
            with contextlib.suppress(OSError):
                self.files.write(self.counters.own())

    def apply(self, merged: Config) -> None:
        """A reloaded config: /v1/config and /v1/axfr show what is in force;
        NOTIFY goes to the new targets."""
        old, self.config = self.config, merged
        if self.api is not None:
            self.api.config = merged
        if self.dns is not None and dns_settings(old).transfer != dns_settings(merged).transfer:
            self._notifier_task = asyncio.get_running_loop().create_task(
                self._restart_notifier(merged))

    async def stop(self) -> None:
        if self.notifier is not None:
            await self.notifier.stop()
            self.notifier = None
        if self.runner is not None:
            await self.runner.cleanup()
        if self.dns is not None:
            await self.dns.stop()
