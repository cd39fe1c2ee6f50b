"""The large HTTP bodies that depend only on the records: ``/v1/enumerate``
and ``/v1/axfr``, shaped as the original's (built by the builder, once per
change, so that serving them costs the servers nothing)."""

from __future__ import annotations

from typing import Any, Protocol

from mesosdns.records.model import RecordSet


class AXFRConfig(Protocol):
    """The config fields ``/v1/axfr`` shows."""

    @property
    def ttl(self) -> int: ...
    @property
    def refresh_seconds(self) -> int: ...
    @property
    def soa_mname(self) -> str: ...
    @property
    def soa_rname(self) -> str: ...
    @property
    def domain(self) -> str: ...


def enumerate_body(rs: RecordSet) -> dict[str, Any]:
    return {
        "frameworks": [
            {
                "tasks": [
                    {
                        "name": t.name,
                        "id": t.id,
                        "records": [
                            {"name": r.name, "host": r.host, "rtype": r.rtype} for r in t.records
                        ]
                        or None,  # Go marshals an empty slice it never appended to as null
                    }
                    for t in f.tasks
                ],
                "name": f.name,
            }
            for f in rs.frameworks
        ]
        or None  # likewise: no framework at all is null
    }


def axfr_body(rs: RecordSet, serial: int, config: AXFRConfig) -> dict[str, Any]:
    return {
        "TTL": config.ttl,
        "Serial": serial,
        "RefreshSeconds": config.refresh_seconds,
        "Mname": config.soa_mname,
        "Rname": config.soa_rname,
        "Domain": config.domain,
        # Go maps: written with their keys sorted
        "Records": {
            "As": {k: list(rs.a[k]) for k in sorted(rs.a)},
            "AAAAs": {k: list(rs.aaaa[k]) for k in sorted(rs.aaaa)},
            "SRVs": {k: [str(t) for t in rs.srv[k]] for k in sorted(rs.srv)},
        },
    }
