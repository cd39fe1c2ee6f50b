"""The composition in one process: the builder and a server side by side.

`App` wires a `BuilderService` to a `ServingService` through a replica in the
same process (the tests use it). The command line runs the same parts as
separate processes (`mesosdns.supervisor`). SIGHUP
re-reads the config file (`reloaded`): the settings that only shape the
records (masters, IPSources, enforceRFC952, refreshSeconds,
stateTimeoutSeconds, ttl, SOA fields, SRV weight, zones) take effect at a
refresh that starts at once; the others are reported as needing a restart.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from mesosdns.builder.service import HOT_FIELDS, BuilderService
from mesosdns.config import Config, config_key, load_config
from mesosdns.errors import ConfigError
from mesosdns.server.service import ServingService
from mesosdns.store.update import Update, frames

log = logging.getLogger(__name__)

__all__ = ["App", "reloaded", "run"]


def local_sink(service: ServingService) -> Callable[[Update], None]:
    """Hands each version to a replica in this process, through the same
    frames the builder process sends (so both paths are one)."""

    def sink(update: Update) -> None:
        for frame in frames(update):
            service.replica.feed(frame[4:])

    return sink


@dataclass
class App:
    """Builder and server in one process (tests; `mesosdns.supervisor` runs
    them as separate processes)."""

    config: Config
    serving: ServingService = field(init=False)
    builder: BuilderService = field(init=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    exit_code: int = 0

    def __post_init__(self) -> None:
        self.serving = ServingService(self.config)
        self.builder = BuilderService(self.config, local_sink(self.serving), self._fatal)
        self.serving.refresh_stats = self.builder.stats
        self.serving.builder_counters = self.builder.counters

    # views the tests and the CLI use
    @property
    def dns(self) -> Any:
        return self.serving.dns

    @property
    def api(self) -> Any:
        return self.serving.api

    @property
    def http_port(self) -> int:
        return self.serving.http_port

    @property
    def store(self) -> Any:
        return self.serving.store

    @property
    def poller(self) -> Any:
        return self.builder.poller

    @property
    def masters(self) -> list[str]:
        return self.builder.masters

    @property
    def refresh_stats(self) -> Any:
        return self.builder.stats

    @property
    def detector(self) -> Any:
        return self.builder.detector

    async def start(self) -> None:
        await self.serving.start()
        await self.builder.start()

    def _fatal(self, code: int) -> None:
        self.exit_code = code
        self._stop.set()

    def reload(self) -> None:
        """SIGHUP: re-read the config file and apply what can change live."""
        merged, hot = reloaded(self.config)
        if merged is None:
            return
        try:
            self.builder.apply(merged, hot)
        except ConfigError as exc:  # a zone file changed since load_config checked it
            for problem in exc.problems:
                log.error("config reload rejected: %s", problem)
            return
        self.config = merged
        self.serving.apply(merged)
        log.info("config reload applied: %s", ", ".join(config_key(k) for k in sorted(hot)))

    # -- lifecycle -----------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()

    async def wait(self) -> None:
        await self._stop.wait()

    async def stop(self) -> None:
        await self.builder.stop()
        await self.serving.stop()


def reloaded(old: Config) -> tuple[Config | None, set[str]]:
    """The config file read again: the config to run with (the old one with
    its hot fields replaced) and which hot fields changed; (None, ...) when
    there is nothing to apply. Logs what it rejects or ignores."""
    try:
        new, warnings = load_config(old.file)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("config reload rejected: %s", problem)
        return None, set()
    for warning in warnings:
        log.warning("config: %s", warning)
    changed = {k for k in _fields(old) if getattr(old, k) != getattr(new, k)}
    if new.zones:  # operator zones: their zone files may have changed
        changed.add("zones")
    cold = sorted(changed - HOT_FIELDS)
    if cold:
        log.warning("config reload: %s need a restart to take effect; kept as they were",
                    ", ".join(config_key(k) for k in cold))
    hot = changed & HOT_FIELDS
    if not hot:
        log.info("config reload: nothing to apply")
        return None, set()
    return _merge(old, new, hot), hot


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


def run(config: Config, verbosity: int = 0) -> int:
    """Serve until told to stop, as a supervisor of builder and server
    processes (`mesosdns.supervisor`); the process exit status."""
    del verbosity  # logging is set up by the CLI
    from mesosdns.supervisor import run as supervise

    log_config_summary(config)
    return supervise(config)
