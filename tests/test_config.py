"""Config decoding and validation, checked against the original's rules."""

from __future__ import annotations

import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import pytest

from mesosdns.config import (
    DEFAULT_ALLOW_RECURSION,
    Config,
    MesosCredentials,
    ZkURL,
    is_valid_domain,
    load_config,
    parse_config,
    parse_zk_url,
    split_host_port,
    split_resolver,
)
from mesosdns.errors import ConfigError

MASTER = ["10.0.0.1:5050"]


def parse(doc: dict[str, Any], **kw: Any) -> tuple[Config, list[str]]:
    """Parse ``doc``, adding a master unless the test is about masters/zk."""
    base: dict[str, Any] = {} if {"masters", "zk", "stateFile"} & set(doc) else {"masters": MASTER}
    return parse_config(json.dumps({**base, **doc}), **kw)


def problems(doc: dict[str, Any] | str, **kw: Any) -> list[str]:
    text = (
        doc
        if isinstance(doc, str)
        else json.dumps(doc if {"masters", "zk"} & set(doc) else {"masters": MASTER, **doc})
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, **kw)
    return info.value.problems


# --------------------------------------------------------------------------- defaults

ORIGINAL_DEFAULTS = [
    ("zk", ""),
    ("zk_detection_timeout", 30),
    ("masters", ()),
    ("mesos_credentials", MesosCredentials("", "")),
    ("mesos_authentication", ""),
    ("iam_config_file", ""),
    ("refresh_seconds", 60),
    ("state_timeout_seconds", 300),
    ("ttl", 60),
    ("domain", "mesos"),
    ("port", 53),
    ("resolvers", ("8.8.8.8",)),
    ("zone_resolvers", {}),
    ("timeout", 5),
    ("listener", "0.0.0.0"),
    ("http_listener", "0.0.0.0"),
    ("dns_on", True),
    ("http_on", True),
    ("http_port", 8123),
    ("external_on", True),
    ("recurse_on", True),
    ("soa_mname", "ns1.mesos."),
    ("soa_rname", "root.ns1.mesos."),
    ("soa_refresh", 60),
    ("soa_retry", 600),
    ("soa_expire", 86400),
    ("soa_minttl", 60),
    ("ip_sources", ("netinfo", "mesos", "host")),
    ("enforce_rfc952", False),
    ("srv_record_default_weight", 1),
    ("enumeration_on", True),
    ("set_truncate_bit", True),
    ("mesos_https_on", False),
    ("ca_cert_file", ""),
    ("cert_file", ""),
    ("key_file", ""),
    # extensions
    ("state_file", ""),
    ("cluster_id", ""),
    ("domain_aliases", ()),
    ("allow_recursion", DEFAULT_ALLOW_RECURSION),
    ("zones", ()),
    ("state_source", "poll"),
    ("log_queries", False),
    ("zone_transfer", None),
    ("max_tcp_connections", 1000),
    ("tcp_idle_timeout", 10.0),
    ("max_inflight_forwards", 1000),
    ("max_udp_payload", 1232),
    ("reverse_ptr", False),
    ("omit_unhealthy", False),
    ("workers", 1),
    ("rrl", None),
]


@pytest.mark.parametrize(("attr", "expected"), ORIGINAL_DEFAULTS)
def test_defaults_are_the_originals(attr: str, expected: object) -> None:
    parsed, warnings = parse_config('{"zk": "zk://h/mesos"}')
    assert warnings == []
    assert getattr(Config(), attr) == expected
    if attr != "zk":
        assert getattr(parsed, attr) == expected


def test_every_field_has_a_default_row() -> None:
    covered = {attr for attr, _ in ORIGINAL_DEFAULTS} | {"file"}
    assert covered == {f.name for f in dataclasses.fields(Config)}


def test_config_is_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Config().port = 5353  # type: ignore[misc]


def test_no_masters_nor_zk_is_an_error() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config("{}")
    assert info.value.problems == ["masters: specify Mesos masters, zk or stateFile"]


# --------------------------------------------------------------------------- key matching

CASE_VARIANTS = [
    ("RefreshSeconds", 42, "refresh_seconds", 42),
    ("refreshseconds", 42, "refresh_seconds", 42),
    ("REFRESHSECONDS", 42, "refresh_seconds", 42),
    ("refreshSeconds", 42, "refresh_seconds", 42),
    ("HttpPort", 8080, "http_port", 8080),
    ("httpport", 8080, "http_port", 8080),
    ("HTTPPort", 8080, "http_port", 8080),
    ("DnsOn", False, "dns_on", False),
    ("DNSOn", False, "dns_on", False),
    ("dnson", False, "dns_on", False),
    ("HttpOn", False, "http_on", False),
    ("httpon", False, "http_on", False),
    ("SOAMname", "ns2.mesos", "soa_mname", "ns2.mesos."),
    ("soamname", "ns2.mesos", "soa_mname", "ns2.mesos."),
    ("IPSources", ["host"], "ip_sources", ("host",)),
    ("ipsources", ["host"], "ip_sources", ("host",)),
    ("EnforceRFC952", True, "enforce_rfc952", True),
    ("enforceRFC952", True, "enforce_rfc952", True),
    ("SRVRecordDefaultWeight", 7, "srv_record_default_weight", 7),
    ("srvRecordDefaultWeight", 7, "srv_record_default_weight", 7),
    ("MesosHTTPSOn", True, "mesos_https_on", True),
    ("mesosHTTPSOn", True, "mesos_https_on", True),
    ("TTL", 5, "ttl", 5),
    ("ttl", 5, "ttl", 5),
    ("Ttl", 5, "ttl", 5),
    ("zkDetectionTimeout", 0, "zk_detection_timeout", 0),
    ("SetTruncateBit", False, "set_truncate_bit", False),
    ("settruncatebit", False, "set_truncate_bit", False),
    ("EnumerationOn", False, "enumeration_on", False),
    ("HTTPListener", "127.0.0.1", "http_listener", "127.0.0.1"),
    ("httplistener", "127.0.0.1", "http_listener", "127.0.0.1"),
    (
        "MesosCredentials",
        {"Principal": "p", "SECRET": "s"},
        "mesos_credentials",
        MesosCredentials("p", "s"),
    ),
    ("mesosCredentials", {"principal": "p"}, "mesos_credentials", MesosCredentials("p", "")),
    ("stateSource", "stream", "state_source", "stream"),
    ("statesource", "stream", "state_source", "stream"),
    ("clusterid", "c1", "cluster_id", "c1"),
    ("REVERSEPTR", True, "reverse_ptr", True),
    ("omitunhealthy", True, "omit_unhealthy", True),
    ("Workers", 3, "workers", 3),
    ("\u212aeyFile", "", "key_file", ""),  # Go folds the Kelvin sign to k
]


@pytest.mark.parametrize(("key", "value", "attr", "expected"), CASE_VARIANTS)
def test_keys_match_case_insensitively(
    key: str, value: object, attr: str, expected: object
) -> None:
    config, warnings = parse({key: value})
    assert getattr(config, attr) == expected
    assert not [w for w in warnings if "unknown" in w]


def test_later_spelling_of_the_same_key_wins() -> None:
    config, _ = parse_config('{"masters": ["a:1"], "ttl": 1, "TTL": 2, "Ttl": 3}')
    assert config.ttl == 3


def test_unknown_keys_are_warned_once_by_name() -> None:
    text = (
        '{"masters": ["a:1"], "Bogus": 1, "Bogus": 2, "ResolvSubnetFirst": true,'
        ' "mesosCredentials": {"principal": "", "token": "x"}}'
    )
    config, warnings = parse_config(text)
    assert warnings == [
        "Bogus: unknown key, ignored",
        "ResolvSubnetFirst: unknown key, ignored",
        "mesosCredentials.token: unknown key, ignored",
    ]
    assert config.masters == ("a:1",)


@pytest.mark.parametrize("key", ["File", "SOASerial", "soaserial"])
def test_keys_the_server_sets_are_ignored_with_a_warning(key: str) -> None:
    config, warnings = parse({key: 7})
    assert warnings == [f"{key}: set by the server, ignored"]
    assert config.file == ""


# --------------------------------------------------------------------------- types

WRONG_TYPES: list[tuple[str, object, str]] = [
    ("refreshSeconds", "60", "expected an integer, got string"),
    ("port", "53", "expected an integer, got string"),
    ("port", 53.0, "expected an integer, got 53.0"),
    ("port", 5e1, "expected an integer, got 50.0"),
    ("port", True, "expected an integer, got boolean"),
    ("timeout", [], "expected an integer, got array"),
    ("stateTimeoutSeconds", {}, "expected an integer, got object"),
    ("zkDetectionTimeout", "30", "expected an integer, got string"),
    ("httpport", "8123", "expected an integer, got string"),
    ("ttl", "60", "expected an integer, got string"),
    ("srvRecordDefaultWeight", "1", "expected an integer, got string"),
    ("SOARefresh", "60", "expected an integer, got string"),
    ("SOARetry", False, "expected an integer, got boolean"),
    ("SOAExpire", "1", "expected an integer, got string"),
    ("SOAMinttl", "1", "expected an integer, got string"),
    ("SOAMname", 1, "expected a string, got number"),
    ("SOARname", [], "expected a string, got array"),
    ("masters", "10.0.0.1:5050", "expected an array of strings, got string"),
    ("masters", [1], "item 0: expected a string, got number"),
    ("zoneResolvers", ["x"], "expected an object of arrays of strings, got array"),
    ("zoneResolvers", {"x": "1.1.1.1"}, "'x': expected an array of strings, got string"),
    ("resolvers", "8.8.8.8", "expected an array of strings, got string"),
    ("IPSources", "host", "expected an array of strings, got string"),
    ("zk", ["zk://a/b"], "expected a string, got array"),
    ("domain", 1, "expected a string, got number"),
    ("listener", 0, "expected a string, got number"),
    ("HTTPListener", 0, "expected a string, got number"),
    ("recurseon", "true", "expected true or false, got string"),
    ("dnson", 1, "expected true or false, got number"),
    ("httpon", "false", "expected true or false, got string"),
    ("externalon", 0, "expected true or false, got number"),
    ("enforceRFC952", "no", "expected true or false, got string"),
    ("SetTruncateBit", "no", "expected true or false, got string"),
    ("EnumerationOn", "no", "expected true or false, got string"),
    ("mesosHTTPSOn", "no", "expected true or false, got string"),
    ("caCertFile", 1, "expected a string, got number"),
    ("certFile", 1, "expected a string, got number"),
    ("keyFile", 1, "expected a string, got number"),
    ("IAMConfigFile", 1, "expected a string, got number"),
    ("mesosAuthentication", 1, "expected a string, got number"),
    ("mesosAuthentication", "BASIC", "must be one of '', 'basic', 'iam'; got 'BASIC'"),
    ("mesosCredentials", "p:s", "expected an object, got string"),
    ("stateFile", 1, "expected a string, got number"),
    ("clusterID", 1, "expected a string, got number"),
    ("domainAliases", "a", "expected an array of strings, got string"),
    ("allowRecursion", "10.0.0.0/8", "expected an array of strings, got string"),
    ("zones", {}, "expected an array of objects, got object"),
    ("zones", [1], "item 0: expected an object, got number"),
    ("stateSource", "push", "must be one of 'poll', 'stream'; got 'push'"),
    ("logQueries", "yes", "expected true or false, got string"),
    ("maxTcpConnections", "1", "expected an integer, got string"),
    ("tcpIdleTimeout", "1", "expected a number, got string"),
    ("maxInflightForwards", 1.5, "expected an integer, got 1.5"),
    ("maxUDPPayload", "4096", "expected an integer, got string"),
    ("maxUDPPayload", 1232.0, "expected an integer, got 1232.0"),
    ("reversePTR", 1, "expected true or false, got number"),
    ("omitUnhealthy", "true", "expected true or false, got string"),
    ("workers", 0, "must be from 1 to 256; got 0"),
    ("workers", "all", 'expected a whole number or "auto", got string'),
    ("workers", True, 'expected a whole number or "auto", got boolean'),
    ("REFRESHSECONDS", "x", "expected an integer, got string"),  # key as written
]


@pytest.mark.parametrize(("key", "value", "reason"), WRONG_TYPES)
def test_wrong_type_is_reported_as_key_and_reason(key: str, value: object, reason: str) -> None:
    doc = {"zk": "zk://h/mesos", key: value}
    assert problems(doc) == [f"{key}: {reason}"]


def test_credentials_fields_are_typed() -> None:
    doc = {"mesosCredentials": {"principal": 1, "Secret": None}}
    assert problems(doc) == ["mesosCredentials.principal: expected a string, got number"]


OUT_OF_RANGE = [
    ("port", 65536, "must be between 0 and 65535, got 65536"),
    ("port", -1, "must be between 0 and 65535, got -1"),
    ("httpport", 70000, "must be between 0 and 65535, got 70000"),
    ("ttl", -1, "must be between 0 and 2147483647, got -1"),
    ("ttl", 2**31, f"must be between 0 and 2147483647, got {2**31}"),
    ("SOARefresh", 2**32, f"must be between 0 and 4294967295, got {2**32}"),
    ("SOAMinttl", -1, "must be between 0 and 4294967295, got -1"),
    ("srvRecordDefaultWeight", 65536, "must be between 0 and 65535, got 65536"),
    ("refreshSeconds", 0, "must be between 1 and 2147483647, got 0"),
    ("timeout", 0, "must be between 1 and 2147483647, got 0"),
    ("stateTimeoutSeconds", 0, "must be between 1 and 2147483647, got 0"),
    ("stateTimeoutSeconds", -5, "must be between 1 and 2147483647, got -5"),
    ("zkDetectionTimeout", -1, "must be between 0 and 2147483647, got -1"),
    ("maxTcpConnections", 0, "must be between 1 and 2147483647, got 0"),
    ("tcpIdleTimeout", 0, "must be a positive number of seconds, got 0"),
    ("maxUDPPayload", 511, "must be between 512 and 65535, got 511"),
    ("maxUDPPayload", 0, "must be between 512 and 65535, got 0"),
    ("maxUDPPayload", 65536, "must be between 512 and 65535, got 65536"),
    ("port", 10**30, f"must be between 0 and 65535, got {10**30}"),
]


@pytest.mark.parametrize(("key", "value", "reason"), OUT_OF_RANGE)
def test_out_of_range_values(key: str, value: int, reason: str) -> None:
    assert problems({key: value}) == [f"{key}: {reason}"]


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("port", 0),
        ("port", 65535),
        ("ttl", 0),
        ("SOAExpire", 2**32 - 1),
        ("tcpIdleTimeout", 0.5),
        ("tcpIdleTimeout", 3),
        ("maxUDPPayload", 512),
        ("maxUDPPayload", 65535),
    ],
)
def test_range_edges_are_accepted(key: str, value: int) -> None:
    parse({key: value})


def test_every_problem_is_collected_together() -> None:
    doc = {"port": "x", "ttl": "y", "domain": "a..b", "IPSources": ["rkt"]}
    assert problems(doc) == [
        "port: expected an integer, got string",
        "ttl: expected an integer, got string",
        "IPSources: invalid IP source 'rkt' (one of docker, host, mesos, netinfo)",
        "domain: invalid domain name 'a..b'",
    ]


def test_null_leaves_scalars_at_their_defaults() -> None:
    config, _ = parse({"port": None, "domain": None, "dnson": None, "mesosCredentials": None})
    assert (config.port, config.domain, config.dns_on) == (53, "mesos", True)


def test_null_empties_lists_and_maps_as_go_does(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text("nameserver 9.9.9.9\n")
    config, _ = parse(
        {"zoneResolvers": None, "resolvers": None, "domainAliases": None}, resolv_conf=str(conf)
    )
    assert config.zone_resolvers == {}
    assert config.resolvers == ("9.9.9.9",)
    assert problems({"IPSources": None}) == ["IPSources: must not be empty"]


# --------------------------------------------------------------------------- JSON and files


@pytest.mark.parametrize(
    ("text", "start"),
    [
        ("{", "<config>: invalid JSON: "),
        ("", "<config>: invalid JSON: "),
        ('{"port": NaN}', "<config>: invalid JSON: "),
        ('{"port": 53,}', "<config>: invalid JSON: "),
        ("[]", "<config>: expected a JSON object, got array"),
        ("null", "<config>: expected a JSON object, got null"),
    ],
)
def test_invalid_documents(text: str, start: str) -> None:
    found = problems(text)
    assert len(found) == 1
    assert found[0].startswith(start)


def test_missing_file(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.json")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.problems == [f"{path}: cannot read: No such file or directory"]


def test_invalid_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text("{oops")
    with pytest.raises(ConfigError) as info:
        load_config(str(path))
    assert info.value.problems[0].startswith(f"{path}: invalid JSON: ")


def test_load_config_records_the_file_and_resolves_state_file(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "config.json"
    path.parent.mkdir()
    path.write_bytes(b'\xef\xbb\xbf{"stateFile": "../state.json"}')
    config, warnings = load_config(str(path))
    assert warnings == []
    assert config.file == str(path)
    assert config.state_file == str(tmp_path / "state.json")
    assert config.redacted()["File"] == str(path)


def test_absolute_state_file_is_kept() -> None:
    config, _ = parse_config('{"stateFile": "/srv/state.json"}')
    assert config.state_file == "/srv/state.json"
    assert config.masters == ()


# --------------------------------------------------------------------------- validation

MASTERS = [  # the original's validation table, plus an empty host
    ([], True),
    ([""], False),
    (["a"], False),
    (["a:1234"], True),
    (["a", "b"], False),
    (["a:1", "b:1"], True),
    (["a:0"], False),
    (["a:65535"], True),
    (["a:65536"], False),
    (["1.2.3.4"], False),
    (["1.2.3.4:5"], True),
    (["1.2.3.4.5"], False),
    (["1.2.3.4.5:6"], True),
    (["1.2.3.4:1", "1.2.3.4:1"], False),
    (["1.2.3.4:1", "5.6.7.8:1"], True),
    (["[2001:0db8:3c4d:0015:0000:0000:1a2f:1a2b]:1"], True),
    (["[2001:db8:3c4d:15::1a2f:1a2b]:1"], True),
    (["[2001:0db8:3c4d:0015:0000:0000:1a2f:1a2b]:1", "[2001:db8:3c4d:15::1a2f:1a2b]:1"], False),
    (["1:2:3"], False),
    ([":5050"], False),
]


@pytest.mark.parametrize(("masters", "valid"), MASTERS)
def test_masters(masters: list[str], valid: bool) -> None:
    doc = {"zk": "zk://h:2181/mesos", "masters": masters}
    if valid:
        assert parse(doc)[0].masters == tuple(masters)
    else:
        assert all(p.startswith("masters: item ") for p in problems(doc))


RESOLVERS = [
    ([""], False),
    (["", ""], False),
    (["a"], False),
    (["1.2.3.4"], True),
    (["1.2.3.4:53"], True),
    (["1.2.3.4.5"], False),
    (["1.2.3.4", "1.2.3.4"], False),
    (["1.2.3.4", "1.2.3.4:53"], False),
    (["1.2.3.4", "5.6.7.8:1234"], True),
    (["5.6.7.8:-1"], False),
    (["5.6.7.8:65535"], True),
    (["5.6.7.8:65536"], False),
    (["5.6.7.8:abc"], False),
    (["2001:db8:3c4d:15::1a2f:1a2b"], True),
    (["2001:db8::1", "[2001:db8::1]:55"], True),
    (["2001:db8::1", "2001:0db8::1"], False),
    (["fe80::1%eth0"], False),
    (["[::1]"], False),
]


@pytest.mark.parametrize(("resolvers", "valid"), RESOLVERS)
def test_resolvers(resolvers: list[str], valid: bool) -> None:
    doc = {"resolvers": resolvers}
    if valid:
        assert parse(doc)[0].resolvers == tuple(resolvers)
    else:
        assert all(p.startswith("resolvers: item ") for p in problems(doc))


def test_resolvers_are_not_checked_when_external_is_off() -> None:
    config, _ = parse({"externalon": False, "resolvers": ["junk"], "zoneResolvers": {"": []}})
    assert config.resolvers == ("junk",)


def test_empty_resolvers_come_from_resolv_conf_without_local_addresses(tmp_path: Path) -> None:
    conf = tmp_path / "resolv.conf"
    conf.write_text(
        "# x\nnameserver 127.0.0.1\nnameserver 10.9.8.7\nsearch a\n"
        "nameserver ::1\nnameserver 2001:db8::53\n"
    )
    config, _ = parse({"resolvers": []}, resolv_conf=str(conf))
    assert config.resolvers == ("10.9.8.7", "2001:db8::53")


def test_unreadable_resolv_conf_is_a_problem(tmp_path: Path) -> None:
    found = problems({"resolvers": []}, resolv_conf=str(tmp_path / "none"))
    assert found == [
        f"resolvers: empty, and {tmp_path / 'none'} cannot be read: No such file or directory"
    ]


ZONES = [  # the original's table with domain "dc.mesos"
    ({}, True),
    ({"": ["8.8.8.8"]}, False),
    ({"weave": ["8.8.8.8"]}, True),
    ({"weave": []}, False),
    ({"mesos": ["8.8.8.8"]}, False),
    ({"dc.mesos": ["8.8.8.8"]}, False),
    ({"acdc.mesos": ["8.8.8.8"]}, True),
    ({"site.dc.mesos": ["8.8.8.8"]}, False),
    ({"abc.com": ["8.8.8.8"], "com": ["8.8.8.8"]}, False),
    ({"abc.com": ["8.8.8.8"], "bc.com": ["8.8.8.8"]}, True),
    ({"weave": ["nope"]}, False),
    ({"weave": None}, False),
]


@pytest.mark.parametrize(("zones", "valid"), ZONES)
def test_zone_resolvers(zones: dict[str, list[str]], valid: bool) -> None:
    doc = {"domain": "dc.mesos", "zoneResolvers": zones}
    if valid:
        assert dict(parse(doc)[0].zone_resolvers) == {k: tuple(v) for k, v in zones.items()}
    else:
        assert all(p.startswith("zoneResolvers: ") for p in problems(doc))


def test_zone_resolver_names_are_lower_cased() -> None:
    config, _ = parse({"zoneResolvers": {"Weave": ["1.1.1.1:5353"]}})
    assert config.zone_resolver_addrs == {"weave": (("1.1.1.1", 5353),)}


@pytest.mark.parametrize(
    ("sources", "reason"),
    [
        ([], "must not be empty"),
        (["host", "host"], "duplicate IP source"),
        (["rkt"], "invalid IP source 'rkt' (one of docker, host, mesos, netinfo)"),
        (["Host"], "invalid IP source 'Host' (one of docker, host, mesos, netinfo)"),
    ],
)
def test_ip_sources(sources: list[str], reason: str) -> None:
    assert problems({"IPSources": sources}) == [f"IPSources: {reason}"]


def test_all_ip_sources_are_accepted() -> None:
    assert parse({"IPSources": ["docker", "host", "mesos", "netinfo"]})[0].ip_sources == (
        "docker",
        "host",
        "mesos",
        "netinfo",
    )


@pytest.mark.parametrize(
    ("domain", "valid"),
    [
        ("", False),
        ("1-awesome.domain.e", True),
        (".invalid.com", False),
        ("invalid.com.", False),
        ("single-name", True),
        ("name", True),
        ("a_b", False),
        ("a" * 64, False),
        ("a" * 63, True),
        (".".join(["a" * 50] * 5), False),
    ],
)
def test_domain_names(domain: str, valid: bool) -> None:
    assert is_valid_domain(domain) is valid
    if not valid:
        assert problems({"domain": domain}) == [f"domain: invalid domain name {domain!r}"]


def test_domain_is_lower_cased() -> None:
    assert parse({"domain": "DC.Mesos"})[0].domain == "dc.mesos"


def test_either_dns_or_http_must_be_on() -> None:
    assert problems({"dnson": False, "HttpOn": False}) == [
        "dnson/HttpOn: either the DNS or the HTTP server must be on"
    ]
    assert parse({"dnson": False})[0].http_on


@pytest.mark.parametrize(
    ("zk", "ok"),
    [
        ("zk://10.0.0.1:2181/mesos", True),
        ("zk://a,b,c/mesos", True),
        ("zk://user:pw@a:2181,b:2182/mesos", True),
        ("zk://[::1]:2181/mesos", True),
        ("http://a/mesos", False),
        ("zk:///mesos", False),
        ("zk://a:99999/mesos", False),
    ],
)
def test_zk_url(zk: str, ok: bool) -> None:
    if ok:
        assert parse({"zk": zk})[0].zk == zk
    else:
        assert [p.split(":")[0] for p in problems({"zk": zk})] == ["zk"]


def test_zk_url_parts() -> None:
    assert parse_zk_url("zk://u:p@a,b:2182,[::1]:5/mesos/") == ZkURL(
        servers=(("a", 2181), ("b", 2182), ("::1", 5)), path="/mesos", auth="u:p"
    )


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"listener": "localhost"}, "listener: 'localhost' is not an IP address"),
        ({"HTTPListener": "x"}, "HTTPListener: 'x' is not an IP address"),
    ],
)
def test_listeners(doc: dict[str, str], reason: str) -> None:
    assert problems(doc) == [reason]


def test_empty_listener_means_every_interface() -> None:
    config, _ = parse({"listener": "", "HTTPListener": "::"})
    assert (config.listener, config.http_listener) == ("0.0.0.0", "::")


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"certFile": "c.pem"}, "certFile: set without keyFile"),
        ({"keyFile": "k.pem"}, "keyFile: set without certFile"),
        (
            {"mesosAuthentication": "basic"},
            "mesosCredentials: required when mesosAuthentication is 'basic'",
        ),
        (
            {"mesosAuthentication": "iam"},
            "IAMConfigFile: a valid IAM config file is required when mesosAuthentication is 'iam'",
        ),
    ],
)
def test_tls_and_auth_rules(doc: dict[str, str], reason: str) -> None:
    assert problems(doc) == [reason]


def test_unreadable_ca_file(tmp_path: Path) -> None:
    missing = str(tmp_path / "ca.pem")
    assert problems({"caCertFile": missing}) == [
        f"caCertFile: {missing!r}: No such file or directory"
    ]


def test_iam_file_is_read(tmp_path: Path) -> None:
    """More cases in test_iam.py."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    pem = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    iam = tmp_path / "iam.json"
    iam.write_text(json.dumps(
        {"uid": "u", "private_key": pem.decode(), "login_endpoint": "https://x"}
    ))
    config, warnings = parse({"mesosAuthentication": "iam", "IAMConfigFile": str(iam)})
    assert config.iam_config_file == str(iam)
    assert warnings == []
    iam.write_text("{}")
    assert problems({"mesosAuthentication": "iam", "IAMConfigFile": str(iam)}) == [
        f"IAMConfigFile: {str(iam)!r}: needs uid, private_key and login_endpoint (strings); "
        "missing or empty: uid, private_key, login_endpoint"
    ]


def test_basic_auth_and_unused_credentials_warning() -> None:
    creds = {"principal": "dns", "secret": "s3"}
    config, warnings = parse({"mesosAuthentication": "basic", "mesosCredentials": creds})
    assert config.mesos_credentials == MesosCredentials("dns", "s3")
    assert warnings == []
    _, warnings = parse({"mesosCredentials": creds})
    assert warnings == ["mesosCredentials: set but mesosAuthentication is none; not used"]


# --------------------------------------------------------------------------- SOA names


@pytest.mark.parametrize(
    ("key", "given", "attr", "expected"),
    [
        ("SOARname", "root.ns1.mesos", "soa_rname", "root.ns1.mesos."),
        ("SOARname", "root@ns1.mesos", "soa_rname", "root.ns1.mesos."),
        ("SOARname", "root@ns1.mesos...", "soa_rname", "root.ns1.mesos."),
        ("SOARname", "a@b@c.", "soa_rname", "a.b.c."),
        ("SOAMname", "ns1.mesos", "soa_mname", "ns1.mesos."),
        ("SOAMname", "ns1.mesos..", "soa_mname", "ns1.mesos."),
        ("SOAMname", "Ns1.Example.COM", "soa_mname", "Ns1.Example.COM."),
    ],
)
def test_soa_names_are_normalised_as_the_original(
    key: str, given: str, attr: str, expected: str
) -> None:
    assert getattr(parse({key: given})[0], attr) == expected


# --------------------------------------------------------------------------- extensions


def test_extensions_parse_and_normalise() -> None:
    zones = [{"name": "corp.example", "records": []}]
    config, warnings = parse(
        {
            "clusterID": "c1",
            "domainAliases": ["DC1.Example", "mesos.internal"],
            "allowRecursion": ["10.1.2.3/8", "2001:db8::1", "192.0.2.7"],
            "zones": zones,
            "stateSource": "stream",
            "logQueries": True,
            "maxTcpConnections": 5,
            "tcpIdleTimeout": 2.5,
            "maxInflightForwards": 7,
            "maxUDPPayload": 4096,
            "reversePTR": True,
        }
    )
    assert warnings == []
    assert config.cluster_id == "c1"
    assert config.domain_aliases == ("dc1.example", "mesos.internal")
    assert config.allow_recursion == ("10.0.0.0/8", "2001:db8::1/128", "192.0.2.7/32")
    assert [str(n) for n in config.allow_recursion_networks] == list(config.allow_recursion)
    assert config.zones == tuple(zones)
    assert (config.state_source, config.log_queries, config.reverse_ptr) == ("stream", True, True)
    assert (config.max_tcp_connections, config.tcp_idle_timeout, config.max_inflight_forwards) == (
        5,
        2.5,
        7,
    )
    assert config.max_udp_payload == 4096


@pytest.mark.parametrize(
    ("doc", "reason"),
    [
        ({"domainAliases": ["a..b"]}, "domainAliases: item 0: invalid domain name 'a..b'"),
        ({"domainAliases": ["MESOS"]}, "domainAliases: item 0: duplicate domain 'mesos'"),
        ({"domainAliases": ["x", "X"]}, "domainAliases: item 1: duplicate domain 'x'"),
        (
            {"allowRecursion": ["10.0.0.0/33"]},
            "allowRecursion: item 0: '10.0.0.0/33' is not a CIDR or an IP",
        ),
    ],
)
def test_extension_validation(doc: dict[str, Any], reason: str) -> None:
    assert problems(doc) == [reason]


# --------------------------------------------------------------------------- /v1/config

GO_NAMES = [
    "RefreshSeconds",
    "Port",
    "Timeout",
    "StateTimeoutSeconds",
    "ZkDetectionTimeout",
    "HttpPort",
    "TTL",
    "SRVRecordDefaultWeight",
    "SOASerial",
    "SOARefresh",
    "SOARetry",
    "SOAExpire",
    "SOAMinttl",
    "SOAMname",
    "SOARname",
    "Masters",
    "ZoneResolvers",
    "Resolvers",
    "IPSources",
    "Zk",
    "Domain",
    "File",
    "Listener",
    "HTTPListener",
    "RecurseOn",
    "DnsOn",
    "HttpOn",
    "ExternalOn",
    "EnforceRFC952",
    "SetTruncateBit",
    "EnumerationOn",
    "MesosHTTPSOn",
    "CACertFile",
    "CertFile",
    "KeyFile",
    "MesosCredentials",
    "IAMConfigFile",
    "MesosAuthentication",
]
EXTENSION_NAMES = [
    "stateFile",
    "clusterID",
    "domainAliases",
    "allowRecursion",
    "zones",
    "stateSource",
    "logQueries",
    "maxTcpConnections",
    "tcpIdleTimeout",
    "maxInflightForwards",
    "maxUDPPayload",
    "reversePTR",
    "omitUnhealthy",
    "workers",
    "zoneTransfer",
    "rrl",
]


def test_workers_auto_is_one_per_usable_core() -> None:
    config, _ = parse({"workers": "auto"})
    assert config.workers == len(os.sched_getaffinity(0))


def test_redacted_lists_every_field_under_the_go_names_in_order() -> None:
    body = Config().redacted(1234)
    assert list(body) == GO_NAMES + EXTENSION_NAMES
    assert body["SOASerial"] == 1234
    json.dumps(body)  # serialisable as it is


def test_redacted_values() -> None:
    config, _ = parse(
        {
            "ttl": 30,
            "zoneResolvers": {"b": ["1.1.1.1"], "a": ["2.2.2.2"]},
            "SOARname": "root@ns1.mesos",
            "Domain": "X.Y",
        }
    )
    body = config.redacted(7)
    assert body["TTL"] == 30
    assert body["Masters"] == MASTER
    assert list(body["ZoneResolvers"]) == ["a", "b"]  # type: ignore[arg-type]
    assert body["SOARname"] == "root.ns1.mesos."
    assert body["Domain"] == "x.y"
    assert body["MesosCredentials"] == {"Principal": "", "Secret": ""}


@pytest.mark.parametrize(("secret", "shown"), [("hunter2", "******"), ("", "")])
def test_redacted_hides_the_secret(secret: str, shown: str) -> None:
    creds = {"principal": "dns", "secret": secret}
    config, _ = parse({"mesosAuthentication": "basic", "mesosCredentials": creds})
    body = config.redacted(0)
    assert body["MesosCredentials"] == {"Principal": "dns", "Secret": shown}
    if secret:
        assert secret not in json.dumps(body)
        assert secret not in repr(config)


# --------------------------------------------------------------------------- helpers


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a:1", ("a", "1")),
        ("[::1]:53", ("::1", "53")),
        (":80", ("", "80")),
    ],
)
def test_split_host_port(text: str, expected: tuple[str, str]) -> None:
    assert split_host_port(text) == expected


@pytest.mark.parametrize("text", ["a", "::1", "[::1]", "[::1]x:1", "a]:1", "[a:1"])
def test_split_host_port_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        split_host_port(text)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("8.8.8.8", ("8.8.8.8", 53)),
        ("8.8.8.8:5353", ("8.8.8.8", 5353)),
        ("2001:DB8::1", ("2001:db8::1", 53)),
        ("[2001:db8::1]:54", ("2001:db8::1", 54)),
        ("::ffff:1.2.3.4", ("1.2.3.4", 53)),
    ],
)
def test_split_resolver(text: str, expected: tuple[str, int]) -> None:
    assert split_resolver(text) == expected


def test_master_addrs() -> None:
    config, _ = parse({"masters": ["leader.mesos:5050", "[2001:DB8::1]:5050"]})
    assert config.master_addrs == (("leader.mesos", 5050), ("2001:db8::1", 5050))


def test_direct_construction_normalises() -> None:
    config = Config(domain="A.B", soa_rname="me@x", masters=["a:1"])  # type: ignore[arg-type]
    assert (config.domain, config.soa_rname, config.masters) == ("a.b", "me.x.", ("a:1",))
    assert dataclasses.replace(config, log_queries=True).soa_rname == "me.x."


def test_parse_config_file_argument(tmp_path: Path) -> None:
    config, _ = parse_config('{"stateFile": "s.json"}', str(tmp_path / "c.json"))
    assert config.file == str(tmp_path / "c.json")
    assert config.state_file == str(tmp_path / "s.json")
    config, _ = parse_config('{"stateFile": "s.json"}')
    assert config.state_file == os.path.join(os.getcwd(), "s.json")
