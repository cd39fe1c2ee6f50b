"""Alias zones: the cluster domain's records under other names.

A BIND server in front of the cluster forwards ``<clusterID>.dcos.directory``
to mesosdns and maps outside zones onto ``mesos.<clusterID>.dcos.directory``
with DNAME records (see ``docs/bind.md``). BIND rejects an answer whose
owner names or SOA lie outside the zone it forwarded, so mesosdns must answer
the alias names itself, with every name in the reply inside the alias:

- each record name of the cluster domain appears under each alias zone, the
  domain suffix replaced by the alias (``search.marathon.mesos.`` becomes
  ``search.marathon.mesos.<id>.dcos.directory.``), and so do SRV targets
  (hence the additional section);
- the alias zone's SOA and NS records are owned by the alias apex, and their
  MNAME / RNAME / NS target, when inside the cluster domain, are renamed the
  same way (``ns1.mesos.`` -> ``ns1.mesos.<alias>.``), as is the name that
  carries the listener address, so the NS target resolves in the alias too.

All of this is done once per refresh, by the answer compiler: the renamed
record set is compiled into the same table as the cluster domain's, so the
hot path costs the same. Pure functions, no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping
from types import MappingProxyType

from mesosdns.dns.settings import DNSSettings, fqdn, soa_rname_fqdn
from mesosdns.records.model import RecordSet, SRVTarget

# The zone DC/OS names a cluster by: ``<clusterID>.dcos.directory``.
DCOS_DIRECTORY = "dcos.directory"


def alias_domains(domain: str, cluster_id: str, domain_aliases: Iterable[str]) -> tuple[str, ...]:
    """The alias zones of a configuration, lower case, without trailing dot.

    ``<domain>.<clusterID>.dcos.directory`` first when a cluster ID is set,
    then ``domainAliases`` in order; duplicates and the domain itself left out.
    """
    out: list[str] = []
    dom = domain.strip(".").lower()
    candidates = list(domain_aliases)
    if cluster_id.strip():
        candidates.insert(0, f"{dom}.{cluster_id.strip().lower()}.{DCOS_DIRECTORY}")
    for alias in candidates:
        name = alias.strip().strip(".").lower()
        if name and name != dom and name not in out:
            out.append(name)
    return tuple(out)


def overlaps(a: str, b: str) -> bool:
    """Whether zone ``a`` equals, contains or lies inside zone ``b``."""
    a, b = "." + a.strip(".").lower(), "." + b.strip(".").lower()
    return a == b or a.endswith(b) or b.endswith(a)


class Renamer:
    """Maps names of the cluster domain into one alias zone (text, FQDN).

    ``rename`` returns None for a name outside the cluster domain.
    """

    __slots__ = ("alias", "domain", "suffix")

    def __init__(self, domain: str, alias: str) -> None:
        self.domain = fqdn(domain.lower())  # "mesos."
        self.alias = fqdn(alias.lower())  # "mesos.<id>.dcos.directory."
        self.suffix = "." + self.domain  # ".mesos."

    def rename(self, name: str) -> str | None:
        if name.endswith(self.suffix):
            return name[: len(name) - len(self.domain)] + self.alias
        if name == self.domain:
            return self.alias
        return None

    def rename_or_keep(self, name: str) -> str:
        """``name`` renamed when it is in the cluster domain, else as it is."""
        got = self.rename(name)
        return name if got is None else got

    def back(self, name: str) -> str | None:
        """The cluster-domain name of an alias name; None outside the alias."""
        if name.endswith("." + self.alias):
            return name[: len(name) - len(self.alias)] + self.domain
        if name == self.alias:
            return self.domain
        return None


def alias_record_set(rs: RecordSet, domain: str, alias: str) -> RecordSet:
    """``rs`` under ``alias``: in-domain names and SRV targets renamed.

    Names outside the cluster domain are left out (no question in the alias
    zone can reach them); enumeration data is not carried over.
    """
    ren = Renamer(domain, alias)

    def addresses(values: Mapping[str, tuple[str, ...]]) -> Mapping[str, tuple[str, ...]]:
        out: dict[str, tuple[str, ...]] = {}
        for name, ips in values.items():
            new = ren.rename(name)
            if new is not None:
                out[new] = ips
        return MappingProxyType(out)

    targets: dict[SRVTarget, SRVTarget] = {}  # one renamed target per target
    srv: dict[str, tuple[SRVTarget, ...]] = {}
    for name, values in rs.srv.items():
        new = ren.rename(name)
        if new is None:
            continue
        renamed = []
        for t in values:
            got = targets.get(t)
            if got is None:
                got = targets[t] = SRVTarget(ren.rename_or_keep(t.host), t.port)
            renamed.append(got)
        srv[new] = tuple(renamed)
    return RecordSet(
        domain=ren.alias.rstrip("."),
        a=addresses(rs.a),
        aaaa=addresses(rs.aaaa),
        srv=MappingProxyType(srv),
        skipped=rs.skipped,
    )


def alias_settings(settings: DNSSettings, alias: str) -> DNSSettings:
    """``settings`` for an alias zone: its domain, and SOA names renamed.

    ``SOAMname`` and ``SOARname`` move into the alias when they are inside
    the cluster domain (``ns1.mesos.`` -> ``ns1.mesos.<alias>.``), so no name
    of the alias zone's SOA and NS records points outside it.
    """
    ren = Renamer(settings.domain, alias)
    return dataclasses.replace(
        settings,
        domain=ren.alias.rstrip("."),
        soa_mname=_rename_keeping_case(ren, fqdn(settings.soa_mname)),
        soa_rname=_rename_keeping_case(ren, soa_rname_fqdn(settings.soa_rname)),
        aliases=(),
    )


def _rename_keeping_case(ren: Renamer, name: str) -> str:
    """``name`` renamed if in the domain (in any case), its own labels' case kept."""
    if ren.rename(name.lower()) is None:
        return name
    return name[: len(name) - len(ren.domain)] + ren.alias
