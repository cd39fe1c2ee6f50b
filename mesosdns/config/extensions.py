"""Checks of our extension keys: ``allowRecursion``, ``zoneTransfer``, ``stateFile`` and
operator ``zones``.

Also the cluster's own domains (the domain, ``<domain>.<clusterID>.dcos.directory``
and ``domainAliases``), which the operator zones must not shadow.
"""

from __future__ import annotations

import ipaddress
import os

from mesosdns.config.checks import _get
from mesosdns.config.decode import _Decoded
from mesosdns.config.model import Config
from mesosdns.config.transfer import decode_zone_transfer
from mesosdns.zones.model import load_zones  # operator zones


def _check_extensions(d: _Decoded, base_dir: str) -> None:
    nets = []
    for i, text in enumerate(_get(d, "allow_recursion")):
        try:
            nets.append(str(ipaddress.ip_network(text, strict=False)))
        except ValueError:
            d.problem("allow_recursion", f"item {i}: {text!r} is not a CIDR or an IP")
    d.values["allow_recursion"] = tuple(nets)
    if "zone_transfer" in d.values:
        value, problems, warnings = decode_zone_transfer(
            d.values["zone_transfer"], d.key("zone_transfer")
        )
        d.values["zone_transfer"] = value
        d.problems.extend(problems)
        for warning in warnings:
            d.warn(warning)
    state_file = _get(d, "state_file")
    if state_file:
        path = os.path.expanduser(state_file)
        d.values["state_file"] = os.path.normpath(os.path.join(base_dir, path))


# --- operator zones -------------------------------------------------


def cluster_domains(config: Config) -> list[str]:
    """The domains the cluster answers first: the domain and its aliases."""
    return _cluster_domains(config.domain, config.cluster_id, config.domain_aliases)


def _cluster_domains(domain: str, cluster_id: str, aliases: tuple[str, ...]) -> list[str]:
    by_id = [f"{domain}.{cluster_id.lower()}.dcos.directory"] if cluster_id else []
    return [domain.lower(), *by_id, *(a.lower() for a in aliases)]


def _check_zones(d: _Decoded, base_dir: str) -> None:
    """Every zone valid (``zones[i].field: reason``); zone files read and checked."""
    if "zones" in d.failed or not _get(d, "zones"):
        return
    domains = _cluster_domains(
        str(_get(d, "domain")), str(_get(d, "cluster_id")), tuple(_get(d, "domain_aliases"))
    )
    found = load_zones(_get(d, "zones"), base_dir=base_dir, domains=domains, key=d.key("zones"))
    d.problems.extend(found.problems)
    for warning in found.warnings:
        d.warn(warning)
