"""The zones as the application uses them: loaded from the config, compiled per refresh.

``ZoneCompiler(config, settings)`` loads and checks the config's zones (and
the zone files they import) once; calling it with a refresh's record set,
serial, state and generator parameters compiles them (in the poller's worker
thread). It returns None when there is nothing to serve (no zones and
``reversePTR`` off), which leaves the DNS server's zone path switched off.
"""

from __future__ import annotations

import os

from mesosdns.config import Config, cluster_domains
from mesosdns.dns.opzones import CompiledZones
from mesosdns.dns.settings import DNSSettings
from mesosdns.errors import ConfigError
from mesosdns.records.generator import GeneratorParams
from mesosdns.records.model import RecordSet
from mesosdns.state.model import State
from mesosdns.zones.compile import compile_zones
from mesosdns.zones.model import Zone, load_zones

__all__ = ["ZoneCompiler"]


class ZoneCompiler:
    """The per-refresh compile step of the operator zones and cluster PTRs."""

    def __init__(self, config: Config, settings: DNSSettings) -> None:
        base_dir = os.path.dirname(config.file) if config.file else os.getcwd()
        loaded = load_zones(config.zones, base_dir=base_dir, domains=cluster_domains(config))
        if loaded.problems:
            raise ConfigError(loaded.problems)
        self.zones: tuple[Zone, ...] = loaded.zones
        self.reverse_ptr = config.reverse_ptr
        self.settings = settings

    @property
    def enabled(self) -> bool:
        return bool(self.zones) or self.reverse_ptr

    def __call__(
        self, records: RecordSet, serial: int, state: State, params: GeneratorParams
    ) -> CompiledZones | None:
        if not self.enabled:
            return None
        return compile_zones(
            self.zones,
            self.settings,
            serial,
            state=state,
            params=params,
            records=records,
            reverse_ptr=self.reverse_ptr,
        )
