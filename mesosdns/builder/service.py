"""The builder as a service: masters, the refresh loop, the HTTP bodies.

`BuilderService` finds the leading master (ZooKeeper or the ``masters``
list), runs the poller or the stream follower on one `Engine`, prebuilds the
large HTTP bodies (``/v1/enumerate``, ``/v1/axfr``) whenever the records
changed (at most once per `BODY_INTERVAL` while they keep changing), and
hands every version to its sink: the builder process's publisher, or a
replica in the same process.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from mesosdns import heap
from mesosdns.builder.engine import Compilers
from mesosdns.builder.poll import Poller, Source
from mesosdns.builder.stream import StreamPoller
from mesosdns.config import Config, RRLConfig
from mesosdns.dns.aliases import alias_domains
from mesosdns.dns.settings import DNSSettings, RRLSettings, TransferSettings, TSIGKey
from mesosdns.errors import ConfigError
from mesosdns.metrics import RefreshStats
from mesosdns.netif import listener_addresses
from mesosdns.records.bodies import EnumerateWriter, axfr_json, axfr_pieces
from mesosdns.records.generator import GeneratorParams
from mesosdns.records.model import RecordSet
from mesosdns.state.client import StateClient
from mesosdns.state.iam import IAMConfig, read_iam_config
from mesosdns.state.masters import MasterDetector, initial_masters
from mesosdns.store.bodyfiles import BodyFile, BodyFiles, open_body
from mesosdns.store.update import Update
from mesosdns.zones.service import ZoneCompiler

log = logging.getLogger(__name__)

# the HTTP bodies are rebuilt at most this often while the records change,
# and at most BODY_SHARE of the builder's time goes to them
BODY_INTERVAL = 1.0
BODY_SHARE = 0.1
# a first version of more names than this is sent before its bodies are built
INLINE_BODIES = 5_000
FIRST_BODIES_DELAY = 5.0
# while a full version is being sent, the bodies look again this much later
BUSY_RETRY = 0.5

# config fields whose change only affects the records (applied on SIGHUP)
HOT_FIELDS = frozenset({
    "masters", "ip_sources", "enforce_rfc952", "refresh_seconds", "state_timeout_seconds",
    "ttl", "soa_mname", "soa_rname", "soa_refresh", "soa_retry", "soa_expire", "soa_minttl",
    "srv_record_default_weight", "state_file", "file", "zones", "reverse_ptr",
    "omit_unhealthy",
})


def dns_settings(config: Config, port: int | None = None) -> DNSSettings:
    """Map the configuration onto the DNS server's settings."""
    return DNSSettings(
        domain=config.domain,
        aliases=alias_domains(config.domain, config.cluster_id, config.domain_aliases),
        ttl=config.ttl,
        soa_mname=config.soa_mname,
        soa_rname=config.soa_rname,
        soa_refresh=config.soa_refresh,
        soa_retry=config.soa_retry,
        soa_expire=config.soa_expire,
        recurse_on=config.recurse_on,
        set_truncate_bit=config.set_truncate_bit,
        srv_weight=config.srv_record_default_weight,
        external_on=config.external_on,
        resolvers=tuple(config.resolvers),
        zone_resolvers=config.zone_resolvers,
        timeout=float(config.timeout),
        listen_host=config.listener,
        port=config.port if port is None else port,
        max_tcp_connections=config.max_tcp_connections,
        tcp_idle_timeout=config.tcp_idle_timeout,
        max_inflight_forwards=config.max_inflight_forwards,
        max_udp_payload=config.max_udp_payload,
        log_queries=config.log_queries,
        allow_recursion=config.allow_recursion,
        transfer=transfer_settings(config),
        rrl=rrl_settings(config.rrl, config.workers),
    )


def rrl_settings(rrl: RRLConfig | None, workers: int = 1) -> RRLSettings | None:
    """``rrl`` for the DNS server; None (off) also for ``responsesPerSecond: 0``,
    which in BIND limits nothing."""
    if rrl is None or rrl.responses_per_second == 0:
        return None
    return RRLSettings(
        responses_per_second=rrl.responses_per_second,
        slip=rrl.slip,
        window=rrl.window,
        ipv4_prefix_length=rrl.ipv4_prefix_length,
        ipv6_prefix_length=rrl.ipv6_prefix_length,
        workers=workers,
    )


def transfer_settings(config: Config) -> TransferSettings | None:
    """``zoneTransfer`` as the DNS server's settings (None: transfers off)."""
    zt = config.zone_transfer
    if zt is None:
        return None
    key = None if zt.tsig is None else TSIGKey(zt.tsig.name, zt.tsig.algorithm, zt.tsig.secret)
    return TransferSettings(allow=zt.allow, notify=zt.notify, tsig=key)


def compilers(config: Config) -> Compilers:
    """What the answers of ``config`` are compiled with (raises ConfigError
    for bad operator zones)."""
    settings = dns_settings(config)
    zones = ZoneCompiler(config, settings)
    return Compilers(settings, zones if zones.enabled else None)


def generator_params(config: Config, listener_ips: list[str]) -> GeneratorParams:
    return GeneratorParams(
        domain=config.domain,
        ns_name=config.soa_mname,
        listener_ips=tuple(listener_ips),
        masters=("",),  # replaced at each refresh by the masters list in use
        ip_sources=tuple(config.ip_sources),
        rfc952=config.enforce_rfc952,
        omit_unhealthy=config.omit_unhealthy,
    )


def iam_config(config: Config) -> IAMConfig | None:
    """The IAM login settings (``mesosAuthentication: "iam"``); ConfigError
    when the IAM file (checked with the config) can no longer be read."""
    if config.mesos_authentication != "iam":
        return None
    try:
        return read_iam_config(config.iam_config_file)
    except ValueError as exc:
        raise ConfigError([f"IAMConfigFile: {config.iam_config_file!r}: {exc}"]) from None


def check_reload(config: Config) -> None:
    """What a reloaded config needs besides validation: its operator zones
    load and its IAM file reads (ConfigError otherwise)."""
    compilers(config)
    iam_config(config)


def state_client(config: Config) -> StateClient:
    """The client of the masters (ConfigError: see `iam_config`)."""
    return StateClient(
        timeout_seconds=float(config.state_timeout_seconds),
        https=config.mesos_https_on,
        ca_file=config.ca_cert_file,
        cert_file=config.cert_file,
        key_file=config.key_file,
        auth=config.mesos_authentication,
        principal=config.mesos_credentials.principal,
        secret=config.mesos_credentials.secret,
        iam=iam_config(config),
    )


@dataclass
class BuilderService:
    config: Config
    sink: Callable[[Update], None]
    on_fatal: Callable[[int], None] = lambda code: None
    # whether the servers are still being sent a full version: the bodies
    # (a thread of this process, sharing its GIL) wait until it is out
    busy: Callable[[], bool] = lambda: False
    stats: RefreshStats = field(default_factory=RefreshStats)
    poller: Poller | None = None
    detector: MasterDetector | None = None
    client: StateClient | None = None
    masters: list[str] = field(default_factory=list)
    _compilers: Compilers | None = None
    # where the bodies are written for the servers to map ("": kept in the
    # updates, for a server in this process)
    body_dir: str = ""
    bodies: dict[str, bytes | BodyFile] = field(default_factory=dict)  # the last built
    _bodies_at: float = 0.0
    _bodies_cost: float = 0.0  # seconds the last build took
    _bodies_timer: asyncio.TimerHandle | None = None
    _bodies_task: asyncio.Task[None] | None = None
    _bodies_again: bool = False
    _enumerate: EnumerateWriter = field(default_factory=EnumerateWriter)
    _files: BodyFiles | None = None

    async def start(self) -> None:
        c = self.config
        self._compilers = compilers(c)
        self.masters = initial_masters(c.masters)
        if self.body_dir:
            self._files = BodyFiles(self.body_dir)
        if c.zk:
            self.detector = MasterDetector(
                c.zk_url or c.zk, c.masters, self._masters_changed,
                detection_timeout=float(c.zk_detection_timeout), on_timeout=self._zk_timeout,
            )
            await self.detector.start()
            self.masters = self.detector.masters
        self._start_poller()

    def _start_poller(self) -> None:
        c = self.config
        if not c.state_file and self.client is None:
            self.client = state_client(c)
        kw = dict(
            refresh_seconds=float(c.refresh_seconds),
            compilers=self.current_compilers,
            sink=self._publish,
            masters=lambda: self.masters,
            sending=self.busy,
        )
        if c.state_source == "stream" and c.state_file:
            log.warning("stateSource stream needs Mesos masters; polling stateFile")
        cls = StreamPoller if c.state_source == "stream" and not c.state_file else Poller
        self.poller = cls(self._source(c), generator_params(c, listener_addresses(c.listener)),
                          self.stats, **kw)  # type: ignore[arg-type]
        self.poller.start()

    def _source(self, c: Config) -> Source:
        return Source(state_file=c.state_file, client=None if c.state_file else self.client,
                      timeout=float(c.state_timeout_seconds))

    def current_compilers(self) -> Compilers:
        assert self._compilers is not None
        return self._compilers

    @property
    def stream(self) -> StreamPoller | None:
        return self.poller if isinstance(self.poller, StreamPoller) else None

    def counters(self) -> dict[str, object]:
        """The builder's counters, for the servers' /metrics."""
        s = self.stats
        out: dict[str, object] = {
            "refresh": {
                "attempts": s.attempts, "successes": s.successes, "failures": s.failures,
                "last_success": s.last_success, "last_duration": s.last_duration,
                "skipped_items": s.skipped_items,
                "failures_by_kind": dict(s.failures_by_kind or {}),
            },
        }
        gen = self.poller.engine.gen if self.poller is not None else None
        out["gauges"] = {
            "unhealthy_tasks_omitted": (
                "Unhealthy tasks left out of the names they share (omitUnhealthy)",
                gen.omitted if gen is not None else 0,
            ),
        }
        stream = self.stream
        if stream is not None:
            out["stream"] = stream.stream_stats.counters(stream.streaming)
        return out

    # -- publishing ----------------------------------------------------

    def _publish(self, update: Update) -> None:
        update.stats = self.counters()
        if update.preliminary:  # the bodies come with the compiled version, next
            self.sink(update)
            return
        if update.full:
            if self._names() <= INLINE_BODIES:
                update.bodies = self.bodies = self._bodies()
                self._bodies_at = time.monotonic()
            else:  # a large cluster: answering first, the bodies a little later
                # (built at once, they would slow the version's way to the servers)
                self.bodies = {}
                update.bodies = {}
                self._bodies_at = time.monotonic() + FIRST_BODIES_DELAY - BODY_INTERVAL
                self._bodies_soon()
        elif update.a or update.aaaa or update.srv:
            self._bodies_soon()
        self.sink(update)

    def _bodies_soon(self) -> None:
        if not self._wants_bodies() or self._bodies_timer is not None:
            return
        if self._bodies_task is not None and not self._bodies_task.done():
            self._bodies_again = True  # once the build under way is out
            return
        interval = max(BODY_INTERVAL, self._bodies_cost / BODY_SHARE)
        wait = self._bodies_at + interval - time.monotonic()
        loop = asyncio.get_running_loop()
        self._bodies_timer = loop.call_later(max(wait, 0.0), self._rebuild_bodies)

    def _rebuild_bodies(self) -> None:
        self._bodies_timer = None
        if self.busy():
            loop = asyncio.get_running_loop()
            self._bodies_timer = loop.call_later(BUSY_RETRY, self._rebuild_bodies)
            return
        self._bodies_task = asyncio.create_task(self._rebuild_bodies_async())

    async def _rebuild_bodies_async(self) -> None:
        """The bodies of the current records, serialised in a worker thread
        (the engine goes on with changes meanwhile), then published."""
        poller = self.poller
        if poller is None:
            return
        engine = poller.engine
        async with poller.lock:
            # in a thread too: the records change only under the lock, and
            # the first copy after a whole build takes a while (0.3 s at
            # 100k tasks), time the event loop keeps for its other work
            rs = await asyncio.to_thread(engine.records)
            serial = engine.serial
        if rs is None:
            return
        started = time.monotonic()
        self._bodies_at = started
        bodies = await asyncio.to_thread(self._make_bodies, rs, serial, self._refresh_done)
        self._bodies_cost = time.monotonic() - started
        async with poller.lock:
            self.bodies = bodies
            update = engine.change(bodies=bodies)
            update.stats = self.counters()
            self.sink(update)
        del rs  # the records' copy and the pieces' temporaries: their pages go back
        await asyncio.to_thread(heap.trim)
        if self._bodies_again:
            self._bodies_again = False
            self._bodies_soon()

    def _names(self) -> int:
        live = self.poller.engine.live if self.poller is not None else None
        return 0 if live is None else live.table.info.names

    def _refresh_done(self) -> None:
        """The body thread's checkpoint: a refresh under way goes first (the
        thread would take the GIL from it, and the version would reach the
        servers later)."""
        poller = self.poller
        if poller is not None:
            poller.idle.wait()

    def _wants_bodies(self) -> bool:
        return self.config.http_on and self.config.enumeration_on

    def _bodies(self) -> dict[str, bytes | BodyFile]:
        """The bodies of the current records (for a full update), now."""
        poller = self.poller
        if not self._wants_bodies() or poller is None:
            return {}
        rs = poller.engine.records()
        if rs is None:
            return {}
        started = time.monotonic()
        bodies = self._make_bodies(rs, poller.engine.serial)
        self._bodies_cost = time.monotonic() - started
        return bodies

    def _make_bodies(self, rs: RecordSet, serial: int, wait: Callable[[], object] = lambda: None,
                     ) -> dict[str, bytes | BodyFile]:
        """The bodies of ``rs``; ``wait``: their writers' checkpoint (in the
        body thread: `_refresh_done`; never in the event loop's thread)."""
        files = self._files
        if files is None:
            return {
                "enumerate": self._enumerate.write(rs.frameworks),
                "axfr": axfr_json(rs, serial, self.config),
            }
        try:
            enum = files.write("enumerate", self._enumerate.pieces(rs.frameworks, wait))
            # the next body copies its unchanged pieces from this file, mapped,
            # not from a copy held in memory
            self._enumerate.wrote(open_body(enum))
            axfr = files.write("axfr", axfr_pieces(rs, serial, self.config, wait))
        except OSError as exc:  # a full disk, say: the servers keep the last bodies
            log.error("cannot write the HTTP bodies: %s", exc)
            return self.bodies
        return {"enumerate": enum, "axfr": axfr}

    def full_update(self) -> Update | None:
        """The current version whole (for a server that connects), or None."""
        poller = self.poller
        if poller is None or not poller.engine.ready:
            return None
        update = poller.engine.full(bodies=self.bodies)
        update.stats = self.counters()
        return update

    # -- events --------------------------------------------------------

    def _masters_changed(self, masters: list[str]) -> None:
        log.info("masters changed: %s", masters)
        self.masters = masters
        if self.poller is not None:
            self.poller.trigger()

    def _zk_timeout(self) -> None:
        log.error("no leading master detected in ZooKeeper within %ss; exiting",
                  self.config.zk_detection_timeout)
        self.on_fatal(1)

    def apply(self, merged: Config, hot: set[str]) -> None:
        """A reloaded config whose ``hot`` fields changed (see HOT_FIELDS);
        raises ConfigError (nothing applied) when its zones do not load."""
        new_compilers = compilers(merged)
        client = self.client
        if not merged.state_file and client is None:  # stateFile removed
            client = state_client(merged)  # reads the IAM file (iam)
        self.config = merged
        self.client = client
        self._compilers = new_compilers
        if "masters" in hot and self.detector is None:
            self.masters = initial_masters(merged.masters)
        if self.poller is not None:
            self.poller.params = generator_params(merged, listener_addresses(merged.listener))
            self.poller.refresh_seconds = float(merged.refresh_seconds)
            self.poller.source = self._source(merged)
            self.poller.trigger()

    async def stop(self) -> None:
        if self._bodies_timer is not None:
            self._bodies_timer.cancel()
        if self._bodies_task is not None:
            self._bodies_task.cancel()
            await asyncio.gather(self._bodies_task, return_exceptions=True)
        if self.poller is not None:
            await self.poller.stop()
        if self.detector is not None:
            await self.detector.stop()
        if self.client is not None:
            await self.client.close()
