"""A serving process: DNS (and, in the first one, the HTTP API) from a replica.

Started by `mesosdns.supervisor`. It binds the DNS port with SO_REUSEPORT
beside the other serving processes, tells the supervisor where it listens,
follows the builder's versions (`mesosdns.store.channel.Follower`), and
writes its counters to the run directory every `COUNTERS_INTERVAL` for the
process that serves ``/metrics``. A worker started in place of one that died
listens only once it has the records (or after `FIRST_VERSION_WAIT`), so
that it takes no queries it cannot answer. It keeps answering from the last version
it has while the builder is away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import signal
from multiprocessing.connection import Connection

from mesosdns.builder.process import reload_path
from mesosdns.config import Config
from mesosdns.procutil import die_with_parent, orphaned, run_loop
from mesosdns.server.service import ServingService
from mesosdns.store.channel import Follower, socket_path

log = logging.getLogger(__name__)

COUNTERS_INTERVAL = 1.0
# a replacement waits this long at most for the records before it listens
FIRST_VERSION_WAIT = 10.0


def main(config: Config, run_dir: str, index: int, dns_port: int, parent: int,
         report: Connection, replacing: bool = False) -> int:
    die_with_parent(parent)
    try:
        return run_loop(_run(config, run_dir, index, dns_port, report, replacing))
    finally:
        orphaned(parent, run_dir)


async def _run(config: Config, run_dir: str, index: int, dns_port: int,
               report: Connection, replacing: bool) -> int:
    service = ServingService(config, http=index == 0, run_dir=run_dir, index=index,
                             reuse_port=True)
    follower = Follower(socket_path(run_dir), service.replica)
    follower.start()
    if replacing:
        # joining the port's SO_REUSEPORT group gives this process its share
        # of the queries at once: first get the records the others answer with
        await _first_version(service, FIRST_VERSION_WAIT)
    try:
        await service.start(dns_port)
    except OSError as exc:
        log.error("cannot start: %s", exc)
        report.send(("failed", 1))
        await follower.stop()
        return 1
    dns = service.dns
    report.send(("listening", dns.port if dns else 0, service.http_port))
    report.close()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: _reload(service, run_dir))
    counters = asyncio.create_task(_counters(service))
    try:
        await stop.wait()
        return 0
    finally:
        counters.cancel()
        await follower.stop()
        with contextlib.suppress(Exception):
            await service.stop()


async def _first_version(service: ServingService, timeout: float) -> None:
    """Until the replica holds a version (at most ``timeout`` seconds)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not service.replica.ready and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)


async def _counters(service: ServingService) -> None:
    while True:
        await asyncio.sleep(COUNTERS_INTERVAL)
        service.write_counters()


def _reload(service: ServingService, run_dir: str) -> None:
    try:
        with open(reload_path(run_dir), "rb") as f:
            merged, _ = pickle.load(f)
    except (OSError, pickle.UnpicklingError) as exc:
        log.error("config reload: %s", exc)
        return
    service.apply(merged)
