"""The composition root: wires config, detection, polling, DNS and HTTP.

``run(config, verbosity)`` starts everything the config enables, serves until
SIGTERM or SIGINT, and shuts down cleanly. SIGHUP re-reads the config file:
the settings that only shape the records (masters, IPSources, enforceRFC952,
refreshSeconds, stateTimeoutSeconds, ttl, SOA fields, SRV weight) take effect
at the next refresh, which starts at once; the others are reported as
needing a restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiohttp import web

from mesosdns import __version__
from mesosdns.api import API
from mesosdns.config import Config, config_key, load_config
from mesosdns.dns.aliases import alias_domains
from mesosdns.dns.answers import AnswerTable, compile_answers
from mesosdns.dns.protocol import DNSServer
from mesosdns.dns.settings import DNSSettings
from mesosdns.errors import ConfigError
from mesosdns.metrics import Metrics, RefreshStats
from mesosdns.netif import listener_addresses
from mesosdns.poller import Poller, Source
from mesosdns.records.generator import GeneratorParams
from mesosdns.records.model import RecordSet
from mesosdns.snapshot import Snapshot, SnapshotStore
from mesosdns.state.client import StateClient
from mesosdns.state.iam import read_iam_config
from mesosdns.state.masters import MasterDetector, initial_masters
from mesosdns.state.model import State
from mesosdns.stream_poller import StreamCompilers, StreamPoller  # stream mode (issue 8)
from mesosdns.zones.match import CompiledZones
from mesosdns.zones.service import ZoneCompiler

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

# config fields whose change only affects the records (applied on SIGHUP)
HOT_FIELDS = frozenset({
    "masters", "ip_sources", "enforce_rfc952", "refresh_seconds", "state_timeout_seconds",
    "ttl", "soa_mname", "soa_rname", "soa_refresh", "soa_retry", "soa_expire", "soa_minttl",
    "srv_record_default_weight", "state_file", "file",
    "zones", "reverse_ptr",  # operator zones (issue 6): recompiled at the next refresh
})
# what a refresh compiles: the answer table and the operator zones (issue 6)
Compiled = tuple[AnswerTable, CompiledZones | None]


def compiler(config: Config) -> Callable[[RecordSet, int, State, GeneratorParams], Compiled]:
    """The poller's compile step for ``config`` (raises ConfigError for bad zones)."""
    settings = dns_settings(config)
    zones = ZoneCompiler(config, settings)

    def compile_all(rs: RecordSet, serial: int, state: State, params: GeneratorParams
                    ) -> Compiled:
        return compile_answers(rs, settings, serial), zones(rs, serial, state, params)

    return compile_all


def stream_compilers(config: Config) -> StreamCompilers:
    """What stream mode (issue 8) compiles with: the DNS settings and the
    operator zones' step (None when no zone is configured)."""
    settings = dns_settings(config)
    zones = ZoneCompiler(config, settings)
    return StreamCompilers(settings, zones if zones.enabled else None)


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
        log_queries=config.log_queries,
        allow_recursion=config.allow_recursion,  # allowRecursion (issue 7)
    )


def generator_params(config: Config, listener_ips: list[str]) -> GeneratorParams:
    return GeneratorParams(
        domain=config.domain,
        ns_name=config.soa_mname,
        listener_ips=tuple(listener_ips),
        masters=("",),  # replaced at each refresh by the masters list in use
        ip_sources=tuple(config.ip_sources),
        rfc952=config.enforce_rfc952,
    )


def state_client(config: Config) -> StateClient:
    """The client of the masters; ConfigError when the IAM file (checked with
    the config) can no longer be read."""
    iam = None
    if config.mesos_authentication == "iam":
        try:
            iam = read_iam_config(config.iam_config_file)
        except ValueError as exc:
            raise ConfigError([f"IAMConfigFile: {config.iam_config_file!r}: {exc}"]) from None
    return StateClient(
        timeout_seconds=float(config.state_timeout_seconds),
        https=config.mesos_https_on,
        ca_file=config.ca_cert_file,
        cert_file=config.cert_file,
        key_file=config.key_file,
        auth=config.mesos_authentication,
        principal=config.mesos_credentials.principal,
        secret=config.mesos_credentials.secret,
        iam=iam,
    )


@dataclass
class App:
    config: Config
    store: SnapshotStore = field(default_factory=SnapshotStore)
    refresh_stats: RefreshStats = field(default_factory=RefreshStats)
    dns: DNSServer | None = None
    http: web.AppRunner | None = None
    api: API | None = None
    http_port: int = 0
    poller: Poller[Compiled] | None = None
    detector: MasterDetector | None = None
    client: StateClient | None = None
    masters: list[str] = field(default_factory=list)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    exit_code: int = 0

    # -- startup -------------------------------------------------------

    async def start(self) -> None:
        c = self.config
        self.masters = initial_masters(c.masters)
        settings = dns_settings(c)
        self.dns = DNSServer(settings)
        if c.dns_on:
            await self.dns.start()  # logs where it listens
        metrics = Metrics(
            _AllCounters(self.dns), self.refresh_stats, self.store, self._stream_counters
        )
        if c.http_on:
            await self._start_http(metrics)
        if c.zk:
            self.detector = MasterDetector(
                c.zk_url or c.zk, c.masters, self._masters_changed,
                detection_timeout=float(c.zk_detection_timeout), on_timeout=self._zk_timeout,
            )
            await self.detector.start()
            self.masters = self.detector.masters
        self._start_poller()

    def _stream_counters(self) -> dict[str, tuple[str, float]] | None:
        poller = self.poller
        if isinstance(poller, StreamPoller):
            return poller.stream_stats.counters(poller.streaming)
        return None

    async def _start_http(self, metrics: Metrics) -> None:
        stats = self.dns.stats if self.dns else None

        def count(in_domain: bool, found: bool) -> None:
            if stats is None:
                return
            if in_domain:
                stats.mesos_requests += 1
                if found:
                    stats.mesos_success += 1
                else:
                    stats.mesos_nxdomain += 1
            else:
                stats.forward.requests += 1
                stats.forward.failed += 1

        self.api = API(self.config, self.store, metrics, count)
        self.http = web.AppRunner(self.api.app(), access_log=None, handle_signals=False,
                                    keepalive_timeout=HTTP_KEEPALIVE)
        await self.http.setup()
        site = web.TCPSite(self.http, self.config.http_listener, self.config.http_port)
        await site.start()
        server = site._server
        sockets = getattr(server, "sockets", None) or []
        self.http_port = sockets[0].getsockname()[1] if sockets else self.config.http_port
        log.info("HTTP listening on %s port %d", self.config.http_listener, self.http_port)

    def _start_poller(self) -> None:
        c = self.config
        if not c.state_file and self.client is None:
            self.client = state_client(c)
        source = Source(state_file=c.state_file, client=None if c.state_file else self.client,
                        timeout=float(c.state_timeout_seconds))
        params = generator_params(c, listener_addresses(c.listener))
        # -- stream mode (issue 8): follow the operator API event stream ------
        if c.state_source == "stream":
            if c.state_file:
                log.warning("stateSource stream needs Mesos masters; polling stateFile")
            else:
                self.poller = StreamPoller(
                    source, params, self.store, self.refresh_stats,
                    refresh_seconds=float(c.refresh_seconds),
                    compile=compiler(c),
                    publish=self._publish,
                    masters=lambda: self.masters,
                    compilers=lambda: stream_compilers(self.config),
                )
                self.poller.start()
                return
        # -- end of stream mode (issue 8) ---------------------------------------
        self.poller = Poller(
            source, params, self.store, self.refresh_stats,
            refresh_seconds=float(c.refresh_seconds),
            compile=compiler(c),
            publish=self._publish,
            masters=lambda: self.masters,
        )
        self.poller.start()

    def _publish(self, snapshot: Snapshot, compiled: Compiled) -> None:
        table, zones = compiled
        if self.dns is not None:
            self.dns.set_table(table)
            self.dns.set_zones(zones)  # operator zones (issue 6)
        self.store.publish(snapshot)

    # -- events --------------------------------------------------------

    def _masters_changed(self, masters: list[str]) -> None:
        log.info("masters changed: %s", masters)
        self.masters = masters
        if self.poller is not None:
            self.poller.trigger()

    def _zk_timeout(self) -> None:
        log.error("no leading master detected in ZooKeeper within %ss; exiting",
                  self.config.zk_detection_timeout)
        self.exit_code = 1
        self._stop.set()

    def reload(self) -> None:
        """SIGHUP: re-read the config file and apply what can change live."""
        try:
            new, warnings = load_config(self.config.file)
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("config reload rejected: %s", problem)
            return
        for warning in warnings:
            log.warning("config: %s", warning)
        old = self.config
        changed = {k for k in _fields(old) if getattr(old, k) != getattr(new, k)}
        if new.zones:  # operator zones (issue 6): their zone files may have changed
            changed.add("zones")
        cold = sorted(changed - HOT_FIELDS)
        if cold:
            log.warning("config reload: %s need a restart to take effect; kept as they were",
                        ", ".join(config_key(k) for k in cold))
        hot = changed & HOT_FIELDS
        if not hot:
            log.info("config reload: nothing to apply")
            return
        merged = _merge(old, new, hot)
        try:
            compile_step = compiler(merged)  # operator zones (issue 6): reads zone files
        except ConfigError as exc:  # a zone file changed since load_config checked it
            for problem in exc.problems:
                log.error("config reload rejected: %s", problem)
            return
        if not merged.state_file and self.client is None:  # stateFile removed
            try:
                self.client = state_client(merged)  # reads the IAM file (iam)
            except ConfigError as exc:  # it changed since load_config checked it
                for problem in exc.problems:
                    log.error("config reload rejected: %s", problem)
                return
        self.config = merged
        if self.api is not None:  # /v1/config and /v1/axfr show what is in force
            self.api.config = merged
        if "masters" in hot and self.detector is None:
            self.masters = initial_masters(merged.masters)
        if self.poller is not None:
            self.poller.compile = compile_step
            self.poller.params = generator_params(merged, listener_addresses(merged.listener))
            self.poller.refresh_seconds = float(merged.refresh_seconds)
            self.poller.source = Source(state_file=merged.state_file,
                                        client=None if merged.state_file else self.client,
                                        timeout=float(merged.state_timeout_seconds))
            self.poller.trigger()
        log.info("config reload applied: %s", ", ".join(config_key(k) for k in sorted(hot)))

    # -- lifecycle -----------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()

    async def wait(self) -> None:
        await self._stop.wait()

    async def stop(self) -> None:
        if self.poller is not None:
            await self.poller.stop()
        if self.detector is not None:
            await self.detector.stop()
        if self.http is not None:
            await self.http.cleanup()
        if self.dns is not None:
            await self.dns.stop()
        if self.client is not None:
            await self.client.close()


class _AllCounters:
    """The DNS server's counters and its operator zones' counters, for /metrics."""

    def __init__(self, dns: DNSServer) -> None:
        self.dns = dns

    def as_dict(self) -> dict[str, int]:
        return {**self.dns.stats.as_dict(), **self.dns.zone_stats.as_dict()}


def _fields(config: Config) -> list[str]:
    return list(config.__dataclass_fields__)


def _merge(old: Config, new: Config, keys: set[str]) -> Config:
    values: dict[str, Any] = {k: getattr(old, k) for k in _fields(old)}
    values.update({k: getattr(new, k) for k in keys})
    return type(old)(**values)


def log_config_summary(config: Config) -> None:
    """The effective configuration at startup (``-v``), the Mesos secret masked.

    The same view as ``/v1/config``: the original's Go field names, then ours.
    """
    if not log.isEnabledFor(logging.INFO):
        return
    log.info("Mesos-DNS configuration (%s):", config.file or "<no file>")
    for key, value in config.redacted().items():
        if key == "SOASerial":
            continue
        log.info("   - %s: %s", key, orjson.dumps(value).decode())


async def serve(config: Config) -> int:
    log_config_summary(config)
    app = App(config)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, app.request_stop)
    loop.add_signal_handler(signal.SIGHUP, app.reload)
    try:
        await app.start()
        log.info("mesosdns %s started (domain %s)", __version__, config.domain)
        await app.wait()
        log.info("shutting down")
    finally:
        with contextlib.suppress(Exception):
            await app.stop()
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            loop.remove_signal_handler(sig)
    return app.exit_code


def _event_loop_policy() -> None:
    try:
        import uvloop
    except ImportError:
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def run(config: Config, verbosity: int = 0) -> int:
    """Serve until told to stop; the process exit status."""
    del verbosity  # logging is set up by the CLI
    _event_loop_policy()
    try:
        return asyncio.run(serve(config))
    except ConfigError as exc:  # a setting the config accepts but a part cannot use
        for problem in exc.problems:
            log.error("cannot start: %s", problem)
        return 2
    except OSError as exc:
        log.error("cannot start: %s", exc)
        return 1
