"""The builder process: the `BuilderService` publishing to the servers.

Started by `mesosdns.supervisor` at a lower CPU priority than the serving
processes. It publishes each version on the run directory's socket
(`mesosdns.store.channel`), sends its counters every `STATS_INTERVAL`, and
applies a reloaded config the supervisor left in the run directory when it
gets SIGHUP. An exit status of `FATAL_BASE` + N asks the supervisor to stop
everything and exit with N (ZooKeeper named no leader in time: 1; the
operator zones do not load: 2); any other end is a crash, and the
supervisor starts a new builder.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import signal

from mesosdns.builder.service import BuilderService
from mesosdns.config import Config
from mesosdns.errors import ConfigError
from mesosdns.procutil import die_with_parent, lower_priority, orphaned, run_loop
from mesosdns.store.channel import Publisher, socket_path

log = logging.getLogger(__name__)

FATAL_BASE = 64
STATS_INTERVAL = 1.0
NICE = 5


def main(config: Config, run_dir: str, parent: int) -> int:
    die_with_parent(parent)
    lower_priority(NICE)
    try:
        return run_loop(_run(config, run_dir))
    finally:
        orphaned(parent, run_dir)


async def _run(config: Config, run_dir: str) -> int:
    stop = asyncio.Event()
    status = 0
    service: BuilderService | None = None

    def current() -> object:
        return None if service is None else service.full_update()

    publisher = Publisher(socket_path(run_dir), current)  # type: ignore[arg-type]

    def fatal(code: int) -> None:
        nonlocal status
        status = FATAL_BASE + code
        stop.set()

    service = BuilderService(config, publisher.publish, fatal, busy=publisher.sending_full,
                             body_dir=f"{run_dir}/bodies")
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: _reload(service, run_dir))
    await publisher.start()
    stats = asyncio.create_task(_stats(service, publisher))
    try:
        try:
            await service.start()
        except ConfigError as exc:
            for problem in exc.problems:
                log.error("cannot start: %s", problem)
            return FATAL_BASE + 2
        await stop.wait()
        return status
    finally:
        stats.cancel()
        with contextlib.suppress(Exception):
            await service.stop()
        await publisher.stop()


async def _stats(service: BuilderService, publisher: Publisher) -> None:
    while True:
        await asyncio.sleep(STATS_INTERVAL)
        publisher.stats(service.counters())


def reload_path(run_dir: str) -> str:
    return f"{run_dir}/reload.pickle"


def _reload(service: BuilderService, run_dir: str) -> None:
    try:
        with open(reload_path(run_dir), "rb") as f:
            merged, hot = pickle.load(f)
        service.apply(merged, hot)
    except ConfigError as exc:
        for problem in exc.problems:
            log.error("config reload rejected: %s", problem)
    except (OSError, pickle.UnpicklingError) as exc:
        log.error("config reload: %s", exc)
