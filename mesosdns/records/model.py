"""The record set: the immutable output of the generator.

Names are fully qualified with a trailing dot, exactly as the original Mesos-DNS
generates them. Most are lower case, but the legacy "raw DiscoveryInfo name"
records keep the name as given (case, dots, unicode); those can be listed over
HTTP but never match a DNS question, which is lower-cased before lookup.

Values keep insertion order (the order the original inserts them in), and are
unique per (name, value) as the original's set semantics demand.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Literal, NamedTuple

RType = Literal["A", "AAAA", "SRV"]



class SRVTarget(NamedTuple):
    """An SRV value: target host (FQDN with trailing dot) and port."""

    host: str
    port: int

    def __str__(self) -> str:  # the original's "host:port" text form
        return f"{self.host}:{self.port}"


def _empty() -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType({})


def _empty_srv() -> Mapping[str, tuple[SRVTarget, ...]]:
    return MappingProxyType({})


class EnumRecord(NamedTuple):
    name: str
    host: str
    rtype: RType


class EnumTask(NamedTuple):
    name: str
    id: str
    records: tuple[EnumRecord, ...]


class EnumFramework(NamedTuple):
    name: str
    tasks: tuple[EnumTask, ...]


@dataclass(frozen=True, slots=True)
class RecordSet:
    """All records of the cluster domain, as the original generates them.

    ``a`` and ``aaaa`` map a name to its addresses (text form, canonical);
    ``srv`` maps a name to its targets. ``a`` may, like the original, hold a
    non-IP "address" for an agent whose host name could not be resolved; the
    DNS compiler skips those, HTTP lists them.
    """

    domain: str
    a: Mapping[str, tuple[str, ...]] = field(default_factory=_empty)
    aaaa: Mapping[str, tuple[str, ...]] = field(default_factory=_empty)
    srv: Mapping[str, tuple[SRVTarget, ...]] = field(default_factory=_empty_srv)
    # a tuple, or in stream mode a lazily built sequence (records/incremental.py)
    frameworks: Sequence[EnumFramework] = ()
    # how many items of the state were skipped as malformed (from the parser)
    skipped: int = 0

    def count(self) -> dict[str, int]:
        """Number of records (name, value pairs) per type."""
        return {
            "A": sum(len(v) for v in self.a.values()),
            "AAAA": sum(len(v) for v in self.aaaa.values()),
            "SRV": sum(len(v) for v in self.srv.values()),
        }
