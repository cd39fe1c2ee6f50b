"""Metrics, declared in one place and exposed in Prometheus text form.

The request counters are the original's (``logging.CurLog``): Mesos requests,
successes, NXDOMAINs and failures; non-Mesos requests, forwards, successes,
failures and NXDOMAINs. The hot paths bump plain integer attributes (cheaper
than a prometheus Counter per query); a custom collector reads them at scrape
time through ``as_dict()``, together with the refresh gauges.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Protocol

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from mesosdns.store.snapshot import SnapshotStore

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class CounterSource(Protocol):
    """Anything with the original's counters as a name -> value mapping."""

    def as_dict(self) -> dict[str, int]: ...


def _snake(name: str) -> str:
    """``MesosNXDomain`` -> ``mesos_nxdomain``."""
    out = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()
    return out.replace("nx_domain", "nxdomain")


@dataclass(slots=True)
class RefreshStats:
    """What the poller reports about refreshes."""

    attempts: int = 0
    successes: int = 0
    failures: int = 0
    last_success: float = 0.0
    last_duration: float = 0.0
    skipped_items: int = 0
    failures_by_kind: dict[str, int] | None = None

    def failed(self, kind: str) -> None:
        self.failures += 1
        if self.failures_by_kind is None:
            self.failures_by_kind = {}
        self.failures_by_kind[kind] = self.failures_by_kind.get(kind, 0) + 1


# stream mode's counters (`StreamStats.counters`): name -> (help, value)
StreamCounters = Callable[[], Mapping[str, tuple[str, float]] | None]
# the builder's gauges (``mesosdns_<name>``, e.g. unhealthy_tasks_omitted):
# name -> (help, value)
BuilderGauges = Callable[[], Mapping[str, tuple[str, float]] | None]


class _Collector(Collector):
    def __init__(self, counters: CounterSource, refresh: RefreshStats,
                 store: SnapshotStore, stream: StreamCounters | None = None,
                 gauges: BuilderGauges | None = None) -> None:
        self.counters, self.refresh, self.store = counters, refresh, store
        self.stream, self.gauges = stream, gauges

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        for name, value in self.counters.as_dict().items():
            yield CounterMetricFamily(
                f"mesosdns_{_snake(name)}", f"Mesos-DNS counter {name}", value=value
            )
        r = self.refresh
        yield CounterMetricFamily("mesosdns_refresh_attempts", "State refreshes tried",
                                  value=r.attempts)
        yield CounterMetricFamily("mesosdns_refresh_successes", "State refreshes that succeeded",
                                  value=r.successes)
        failures = CounterMetricFamily("mesosdns_refresh_failures",
                                       "State refreshes that failed, by kind", labels=["kind"])
        for kind, n in sorted((r.failures_by_kind or {}).items()):
            failures.add_metric([kind], n)
        yield failures
        yield GaugeMetricFamily("mesosdns_refresh_last_success_timestamp_seconds",
                                "Unix time of the last successful refresh", value=r.last_success)
        yield GaugeMetricFamily("mesosdns_refresh_duration_seconds",
                                "Duration of the last successful refresh", value=r.last_duration)
        yield GaugeMetricFamily("mesosdns_state_skipped_items",
                                "Malformed state items skipped in the last refresh",
                                value=r.skipped_items)
        snap = self.store.current
        records = GaugeMetricFamily("mesosdns_records", "Records served, by type", labels=["type"])
        if snap is not None:
            for rtype, n in snap.count().items():
                records.add_metric([rtype], n)
        yield records
        yield GaugeMetricFamily("mesosdns_ready", "1 once the first state was loaded",
                                value=1 if snap is not None else 0)
        yield GaugeMetricFamily("mesosdns_answers_compiled",
                                "1 once the DNS answers are prebuilt (0: answered from the "
                                "records while the first state's answers compile)",
                                value=1 if snap is not None and snap.compiled else 0)
        yield GaugeMetricFamily("mesosdns_snapshot_age_seconds",
                                "Seconds since the records served were loaded",
                                value=time.time() - snap.loaded_at if snap else 0.0)
        stream = self.stream() if self.stream is not None else None
        for key, (text, amount) in (stream or {}).items():
            if key in ("streaming", "last_build_seconds"):
                yield GaugeMetricFamily(f"mesosdns_stream_{key}", text, value=amount)
            else:
                yield CounterMetricFamily(f"mesosdns_stream_{key}", text, value=amount)
        gauges = self.gauges() if self.gauges is not None else None
        for key, (text, amount) in (gauges or {}).items():
            yield GaugeMetricFamily(f"mesosdns_{key}", text, value=amount)


class Metrics:
    """The registry of one server process."""

    def __init__(self, counters: CounterSource, refresh: RefreshStats,
                 store: SnapshotStore, stream: StreamCounters | None = None,
                 gauges: BuilderGauges | None = None) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(counters, refresh, store, stream, gauges))

    def render(self) -> bytes:
        return generate_latest(self.registry)
