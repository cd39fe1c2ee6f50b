"""The ``/v1/config`` body: the original's Go field names, then our extension keys.

Secrets never leave: the credentials' secret and the ``zk`` URL's password are
shown as ``REDACTED``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from mesosdns.config.addresses import mask_url_password

if TYPE_CHECKING:  # the model calls this view; only the type points back
    from mesosdns.config.model import Config

REDACTED: Final = "******"


def _go_view(c: Config, soa_serial: int) -> dict[str, object]:
    """The original struct as Go's json.Marshal writes it (declaration order)."""
    return {
        "RefreshSeconds": c.refresh_seconds,
        "Port": c.port,
        "Timeout": c.timeout,
        "StateTimeoutSeconds": c.state_timeout_seconds,
        "ZkDetectionTimeout": c.zk_detection_timeout,
        "HttpPort": c.http_port,
        "TTL": c.ttl,
        "SRVRecordDefaultWeight": c.srv_record_default_weight,
        "SOASerial": soa_serial,
        "SOARefresh": c.soa_refresh,
        "SOARetry": c.soa_retry,
        "SOAExpire": c.soa_expire,
        "SOAMinttl": c.soa_minttl,
        "SOAMname": c.soa_mname,
        "SOARname": c.soa_rname,
        "Masters": list(c.masters),
        "ZoneResolvers": {z: list(c.zone_resolvers[z]) for z in sorted(c.zone_resolvers)},
        "Resolvers": list(c.resolvers),
        "IPSources": list(c.ip_sources),
        "Zk": mask_url_password(c.zk),
        "Domain": c.domain,
        "File": c.file,
        "Listener": c.listener,
        "HTTPListener": c.http_listener,
        "RecurseOn": c.recurse_on,
        "DnsOn": c.dns_on,
        "HttpOn": c.http_on,
        "ExternalOn": c.external_on,
        "EnforceRFC952": c.enforce_rfc952,
        "SetTruncateBit": c.set_truncate_bit,
        "EnumerationOn": c.enumeration_on,
        "MesosHTTPSOn": c.mesos_https_on,
        "CACertFile": c.ca_cert_file,
        "CertFile": c.cert_file,
        "KeyFile": c.key_file,
        # basic.Credentials has no JSON tags, so Go writes the field names.
        "MesosCredentials": {
            "Principal": c.mesos_credentials.principal,
            "Secret": REDACTED if c.mesos_credentials.secret else "",
        },
        "IAMConfigFile": c.iam_config_file,
        "MesosAuthentication": c.mesos_authentication,
    }


def _extension_view(c: Config) -> dict[str, object]:
    return {
        "stateFile": c.state_file,
        "clusterID": c.cluster_id,
        "domainAliases": list(c.domain_aliases),
        "allowRecursion": list(c.allow_recursion),
        "zones": [dict(z) for z in c.zones],
        "stateSource": c.state_source,
        "logQueries": c.log_queries,
        "maxTcpConnections": c.max_tcp_connections,
        "tcpIdleTimeout": c.tcp_idle_timeout,
        "maxInflightForwards": c.max_inflight_forwards,
        "maxUDPPayload": c.max_udp_payload,
        "reversePTR": c.reverse_ptr,
        "omitUnhealthy": c.omit_unhealthy,
        "workers": c.workers,
        "zoneTransfer": None if c.zone_transfer is None else c.zone_transfer.view(),
        "rrl": None if c.rrl is None else {
            "responsesPerSecond": c.rrl.responses_per_second,
            "slip": c.rrl.slip,
            "window": c.rrl.window,
            "ipv4PrefixLength": c.rrl.ipv4_prefix_length,
            "ipv6PrefixLength": c.rrl.ipv6_prefix_length,
        },
    }
