"""The operator zones' config model: validation, records, templates, and the
hook into config validation (a bad zone is a config error, exit status 2)."""

from __future__ import annotations

import ipaddress
import json
from pathlib import Path
from typing import Any

import pytest

from mesosdns.cli import main as cli_main
from mesosdns.config import parse_config
from mesosdns.errors import ConfigError
from mesosdns.zones.model import DEFAULT_ZONE_TTL, Filter, load_zones, parse_forwarder
from mesosdns.zones.records import Token, absolute, parse_rdata, parse_ttl
from mesosdns.zones.templates import Field, TemplateError, parse_template

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "zones"


def one(zone: dict[str, Any], **kw: Any) -> Any:
    """The single zone of a valid list (fails with the problems otherwise)."""
    found = load_zones([zone], domains=["mesos"], **kw)
    assert found.problems == []
    (z,) = found.zones
    return z


def problems(*zones: Any, **kw: Any) -> list[str]:
    return load_zones(list(zones), domains=["mesos", "dc1.example"], **kw).problems


# --------------------------------------------------------------------------- the zone


def test_a_full_zone() -> None:
    z = one(
        {
            "Name": "corp",
            "Description": "corporate names",
            "Origin": "Corp.Example",
            "Priority": -5,
            "TTL": 300,
            "Continue": True,
            "Filters": [
                {"Type": "pktsrc", "Filter": "10.1.0.0/16"},
                {"type": "PKTSRC", "filter": "2001:db8::5"},
            ],
            "Forwarders": ["10.1.0.2", "10.1.0.3:5353", "[2001:db8::53]:53", "2001:db8::54"],
            "params": {"dns-domain": "apps.corp.example"},
            "Records": [
                {"Type": "A", "Name": "www", "Value": "10.1.2.3", "TTL": 60},
                {"type": "a", "name": "@", "value": ["10.1.2.4", "10.1.2.5"]},
                {"type": 16, "name": "txt", "value": "one string; with a semicolon"},
                {"type": "A", "name": "eval:{task.name}.{param.dns-domain}", "value": "{task.ip}"},
            ],
        }
    )
    assert (z.name, z.description, z.origin, z.priority, z.ttl, z.cont) == (
        "corp",
        "corporate names",
        "corp.example.",
        -5,
        300,
        True,
    )
    assert z.filters == (
        Filter("pktsrc", ipaddress.ip_network("10.1.0.0/16")),
        Filter("pktsrc", ipaddress.ip_network("2001:db8::5/128")),
    )
    assert z.forwarders == (
        ("10.1.0.2", 53),
        ("10.1.0.3", 5353),
        ("2001:db8::53", 53),
        ("2001:db8::54", 53),
    )
    assert [str(rr) for rr in z.records] == [
        "www.corp.example. 60 IN A 10.1.2.3",
        "corp.example. 0 IN A 10.1.2.4",
        "corp.example. 0 IN A 10.1.2.5",
        'txt.corp.example. 0 IN TXT "one string; with a semicolon"',
    ]
    (t,) = z.templates
    assert t.where == "zones[0].records[3]"
    assert t.name.parts == (Field("task", "name"), ".apps.corp.example")
    assert t.objects == {"task"}


def test_defaults() -> None:
    z = one({"name": "corp.example"})
    assert z.origin == "corp.example."  # the origin defaults to the name
    assert (z.priority, z.ttl, z.cont, z.filters, z.forwarders, z.auto_ptr) == (
        0,
        DEFAULT_ZONE_TTL,
        False,
        (),
        (),
        True,
    )
    assert one({"name": "z", "origin": "z", "ttl": 0}).ttl == 3600


def test_root_origin_is_allowed() -> None:
    assert one({"name": "everything", "origin": "."}).origin == "."


BAD_ZONES: list[tuple[Any, str]] = [
    (1, "zones[0]: expected an object, got number"),
    ({}, "zones[0].name: required"),
    ({"name": ""}, "zones[0].name: must not be empty"),
    ({"name": 5}, "zones[0].name: expected a string, got number"),
    (
        {"name": "has space"},
        "zones[0].origin: required (the name 'has space' is not a domain name)",
    ),
    ({"name": "z", "origin": "a..b"}, "zones[0].origin: 'a..b' is not a domain name"),
    ({"name": "z", "origin": "x" * 64 + ".com"}, "is not a domain name"),
    ({"name": "z", "origin": 1}, "zones[0].origin: expected a string, got number"),
    (
        {"name": "z", "origin": "mesos"},
        "zones[0].origin: 'mesos.' is inside the cluster domain 'mesos.', "
        "which always answers first",
    ),
    ({"name": "z", "origin": "a.b.Mesos."}, "inside the cluster domain 'mesos.'"),
    ({"name": "z", "origin": "x.dc1.example"}, "inside the cluster domain 'dc1.example.'"),
    ({"name": "z", "priority": "1"}, "zones[0].priority: expected an integer, got string"),
    ({"name": "z", "priority": 1.5}, "zones[0].priority: expected an integer, got 1.5"),
    ({"name": "z", "priority": 2**31}, "zones[0].priority: 2147483648 is out of range"),
    ({"name": "z", "ttl": -1}, "zones[0].ttl: -1 is out of range (0..2147483647)"),
    ({"name": "z", "ttl": True}, "zones[0].ttl: expected an integer, got boolean"),
    ({"name": "z", "continue": "yes"}, "zones[0].continue: expected true or false, got string"),
    ({"name": "z", "filters": {}}, "zones[0].filters: expected an array of objects, got object"),
    ({"name": "z", "filters": ["x"]}, "zones[0].filters[0]: expected an object, got string"),
    (
        {"name": "z", "filters": [{"type": "macaddr", "filter": "x"}]},
        "zones[0].filters[0].type: must be one of pktsrc; got 'macaddr'",
    ),
    (
        {"name": "z", "filters": [{"type": "pktsrc"}]},
        "zones[0].filters[0].filter: expected a CIDR string, got null",
    ),
    (
        {"name": "z", "filters": [{"type": "pktsrc", "filter": "10.0.0.0/33"}]},
        "zones[0].filters[0].filter: '10.0.0.0/33' is not a CIDR or an IP address",
    ),
    ({"name": "z", "forwarders": "1.1.1.1"}, "zones[0].forwarders: expected an array of strings"),
    ({"name": "z", "forwarders": [53]}, "zones[0].forwarders[0]: expected a string, got number"),
    (
        {"name": "z", "forwarders": ["dns.example"]},
        "zones[0].forwarders[0]: 'dns.example': not an IP address",
    ),
    (
        {"name": "z", "forwarders": ["1.1.1.1:0"]},
        "zones[0].forwarders[0]: '1.1.1.1:0': invalid port",
    ),
    (
        {"name": "z", "forwarders": ["1.1.1.1", "1.1.1.1:53"]},
        "zones[0].forwarders[1]: duplicate '1.1.1.1:53'",
    ),
    ({"name": "z", "params": []}, "zones[0].params: expected an object of strings, got array"),
    ({"name": "z", "params": {"n": 1}}, "zones[0].params.n: expected a string, got number"),
    ({"name": "z", "records": {}}, "zones[0].records: expected an array of objects, got object"),
    ({"name": "z", "records": [1]}, "zones[0].records[0]: expected an object, got number"),
    ({"name": "z", "file": 1}, "zones[0].file: expected a string, got number"),
]


@pytest.mark.parametrize(("zone", "expected"), BAD_ZONES)
def test_invalid_zones(zone: Any, expected: str) -> None:
    found = problems(zone)
    assert len(found) == 1, found
    assert expected in found[0]
    assert found[0].startswith("zones[0]")


def test_every_problem_is_reported_with_its_index() -> None:
    found = problems(
        {"name": "ok"},
        {"name": "z", "ttl": "x", "priority": "y"},
        {"name": "ok"},
    )
    assert found == [
        "zones[1].priority: expected an integer, got string",
        "zones[1].ttl: expected an integer, got string",
        "zones[2].name: duplicate zone name 'ok' (also zones[0])",
    ]


def test_unknown_keys_are_warnings() -> None:
    found = load_zones(
        [
            {
                "name": "z",
                "colour": "red",
                "records": [{"type": "A", "name": "a", "value": "10.0.0.1", "class": "IN"}],
            }
        ]
    )
    assert found.problems == []
    assert found.warnings == [
        "zones[0].colour: unknown key, ignored",
        "zones[0].records[0].class: unknown key, ignored",
    ]


def test_same_origin_in_several_zones_is_allowed() -> None:
    found = load_zones(
        [
            {
                "name": "east",
                "origin": "corp.example",
                "filters": [{"type": "pktsrc", "filter": "10.1.0.0/16"}],
            },
            {
                "name": "west",
                "origin": "corp.example",
                "filters": [{"type": "pktsrc", "filter": "10.2.0.0/16"}],
            },
        ]
    )
    assert found.problems == [] and len(found.zones) == 2


# --------------------------------------------------------------------------- records

RECORDS: list[tuple[str, str, str, str]] = [
    # type, name, value, the record as text
    ("A", "www", "192.0.2.1", "www.z.test. 0 IN A 192.0.2.1"),
    ("AAAA", "v6", "2001:DB8:0:0::1", "v6.z.test. 0 IN AAAA 2001:db8::1"),
    ("CNAME", "alias", "www", "alias.z.test. 0 IN CNAME www.z.test."),
    ("CNAME", "out", "target.example.", "out.z.test. 0 IN CNAME target.example."),
    ("NS", "@", "ns1.example.net.", "z.test. 0 IN NS ns1.example.net."),
    ("PTR", "4.3", "host.example.", "4.3.z.test. 0 IN PTR host.example."),
    ("MX", "", "10 mail", "z.test. 0 IN MX 10 mail.z.test."),
    ("SRV", "_sip._udp", "0 5 5060 sip", "_sip._udp.z.test. 0 IN SRV 0 5 5060 sip.z.test."),
    ("SRV", "_none._tcp", "0 0 0 .", "_none._tcp.z.test. 0 IN SRV 0 0 0 ."),
    ("TXT", "t", "plain text, one string", 't.z.test. 0 IN TXT "plain text, one string"'),
    ("TXT", "q", '"two" "strings"', 'q.z.test. 0 IN TXT "two" "strings"'),
    ("TXT", "e", "", 'e.z.test. 0 IN TXT ""'),
    ("TXT", "long", "x" * 300, 'long.z.test. 0 IN TXT "' + "x" * 255 + '" "' + "x" * 45 + '"'),
    (
        "SOA",
        "@",
        "ns1 hostmaster 7 1h 15m 1w 300",
        "z.test. 0 IN SOA ns1.z.test. hostmaster.z.test. 7 3600 900 604800 300",
    ),
    ("A", "Mixed.Case", "192.0.2.9", "Mixed.Case.z.test. 0 IN A 192.0.2.9"),
    ("A", "abs.z.test.", "192.0.2.9", "abs.z.test. 0 IN A 192.0.2.9"),
    ("A", "*.wild", "192.0.2.9", "*.wild.z.test. 0 IN A 192.0.2.9"),
    ("A", "{param.host}", "{param.ip}", "web.z.test. 0 IN A 192.0.2.80"),
]


@pytest.mark.parametrize(("rtype", "name", "value", "text"), RECORDS)
def test_records(rtype: str, name: str, value: str, text: str) -> None:
    z = one(
        {
            "name": "z.test",
            "params": {"host": "web", "ip": "192.0.2.80"},
            "records": [{"type": rtype, "name": name, "value": value}],
        }
    )
    assert [str(rr) for rr in z.records] == [text]


BAD_RECORDS: list[tuple[dict[str, Any], str]] = [
    ({"type": "HINFO", "name": "a", "value": "x"}, "records[0].type: must be one of SOA, NS,"),
    ({"type": 99, "name": "a", "value": "x"}, "records[0].type: must be one of"),
    ({"type": "A", "name": 1, "value": "x"}, "records[0].name: expected a string, got number"),
    ({"type": "A", "name": "a"}, "records[0].value: expected a string or a non-empty array"),
    ({"type": "A", "name": "a", "value": []}, "records[0].value: expected a string or"),
    ({"type": "A", "name": "a", "value": "1.2.3"}, "value: '1.2.3': invalid IPv4 address"),
    ({"type": "A", "name": "a", "value": "::1"}, "invalid IPv4 address '::1'"),
    ({"type": "AAAA", "name": "a", "value": "1.2.3.4"}, "invalid IPv6 address '1.2.3.4'"),
    ({"type": "A", "name": "a", "value": "1.2.3.4", "ttl": -1}, "records[0].ttl: expected an"),
    ({"type": "A", "name": "a", "value": ["1.2.3.4", "x"]}, "records[0].value[1]: 'x': invalid"),
    ({"type": "A", "name": "a..b", "value": "1.2.3.4"}, "records[0].name: invalid domain name"),
    ({"type": "A", "name": "x" * 64, "value": "1.2.3.4"}, "records[0].name: invalid domain"),
    (
        {"type": "A", "name": "a.other.", "value": "1.2.3.4"},
        "records[0].name: 'a.other.' is outside the zone's origin 'z.test.'",
    ),
    ({"type": "MX", "name": "@", "value": "mail"}, "expected 'preference exchange'"),
    ({"type": "MX", "name": "@", "value": "70000 mail"}, "invalid preference '70000'"),
    ({"type": "SRV", "name": "s", "value": "1 2 3"}, "expected 'priority weight port target'"),
    ({"type": "SRV", "name": "s", "value": "1 2 x t"}, "invalid port 'x'"),
    ({"type": "CNAME", "name": "c", "value": "a b"}, "expected a domain name"),
    ({"type": "CNAME", "name": "c", "value": '"q"'}, "unexpected quoted string"),
    ({"type": "TXT", "name": "t", "value": '"unterminated'}, "unterminated quoted string"),
    ({"type": "TXT", "name": "t", "value": '"' + "x" * 256 + '"'}, "at most 255"),
    ({"type": "SOA", "name": "@", "value": "ns1 h 1 2 3 4"}, "expected 'mname rname serial"),
    ({"type": "SOA", "name": "sub", "value": "ns1 h 1 2 3 4 5"}, "belongs at the origin 'z.test.'"),
    ({"type": "SOA", "name": "eval:{agent.id}", "value": "x"}, "SOA records cannot be templates"),
    ({"type": "A", "name": "{agent.ip}", "value": "x"}, "template fields need a name starting"),
    ({"type": "A", "name": "a", "value": "{agent.ip}"}, "template fields need a name starting"),
    ({"type": "A", "name": "eval:{agent.ip", "value": "x"}, "unclosed '{' at offset 0"),
    ({"type": "A", "name": "eval:x}", "value": "x"}, "unmatched '}' at offset 1"),
    ({"type": "A", "name": "eval:{agent.pid}", "value": "x"}, "unknown template field 'agent.pid'"),
    ({"type": "A", "name": "eval:{agent}", "value": "x"}, "unknown template field 'agent'"),
    (
        {"type": "A", "name": "eval:{a.__class__}", "value": "x"},
        "unknown template field 'a.__class__'",
    ),
    ({"type": "A", "name": "eval:{param.nope}", "value": "x"}, "unknown parameter 'nope'"),
    ({"type": "A", "name": "eval:{agent.id}", "value": ["a", "b"]}, "takes one value"),
    ({"type": "A", "name": "eval:", "value": "x"}, "records[0].name: empty template"),
]


@pytest.mark.parametrize(("record", "expected"), BAD_RECORDS)
def test_invalid_records(record: dict[str, Any], expected: str) -> None:
    found = problems({"name": "z.test", "records": [record]})
    assert len(found) == 1, found
    assert found[0].startswith("zones[0].records[0]")
    assert expected in found[0]


def test_record_conflicts() -> None:
    found = problems(
        {
            "name": "z.test",
            "records": [
                {"type": "CNAME", "name": "c", "value": "x"},
                {"type": "A", "name": "C", "value": "192.0.2.1"},
                {"type": "SOA", "name": "@", "value": "a b 1 2 3 4 5"},
                {"type": "SOA", "name": "@", "value": "a b 1 2 3 4 6"},
            ],
        }
    )
    assert found == [
        "zones[0].records: more than one SOA record (2, config and file)",
        "zones[0].records: 'c.z.test.' has a CNAME and other records (A)",
    ]


# --------------------------------------------------------------------------- zone files


def test_zone_file_is_imported_relative_to_the_config(tmp_path: Path) -> None:
    z = one(
        {"name": "example.com", "file": "example.com.zone"},
        base_dir=str(FIXTURES),
    )
    assert z.file == str(FIXTURES / "example.com.zone")
    assert len(z.records) == 24
    found = load_zones(
        [{"name": "example.com", "file": "example.com.zone"}], base_dir=str(FIXTURES)
    )
    assert found.warnings == [
        f"zones[0].file: {z.file!r}: line 20: record type CAA is not supported; "
        "example.com. CAA skipped",
        f"zones[0].file: {z.file!r}: line 27: record type HINFO is not supported; "
        "host1.example.com. HINFO skipped",
    ]


def test_zone_file_problems(tmp_path: Path) -> None:
    (tmp_path / "bad.zone").write_text("$TTL 1h\nwww IN A 1.2.3\n")
    (tmp_path / "two-soa.zone").write_text("@ 1 IN SOA a b 1 2 3 4 5\n")
    found = problems(
        {"name": "a.test", "file": "missing.zone"},
        {"name": "b.test", "file": "bad.zone"},
        {
            "name": "c.test",
            "file": "two-soa.zone",
            "records": [{"type": "SOA", "name": "@", "value": "a b 1 2 3 4 5"}],
        },
        base_dir=str(tmp_path),
    )
    assert found == [
        f"zones[0].file: {str(tmp_path / 'missing.zone')!r}: cannot read: "
        "No such file or directory",
        f"zones[1].file: {str(tmp_path / 'bad.zone')!r}: line 2: invalid IPv4 address '1.2.3'",
        "zones[2].records: more than one SOA record (2, config and file)",
    ]


# --------------------------------------------------------------------------- pieces


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0), ("300", 300), ("1h", 3600), ("1H30m", 5400), ("2d", 172800), ("1w1s", 604801)],
)
def test_ttl_units(text: str, seconds: int) -> None:
    assert parse_ttl(text) == seconds


@pytest.mark.parametrize("text", ["", "h", "1x", "-1", "1.5", "9999999999"])
def test_bad_ttls(text: str) -> None:
    with pytest.raises(ValueError):
        parse_ttl(text)


@pytest.mark.parametrize(
    ("name", "origin", "expected"),
    [
        ("@", "z.test.", "z.test."),
        ("www", "z.test.", "www.z.test."),
        ("www.", "z.test.", "www."),
        ("a\\.b", "z.test.", "a\\.b.z.test."),
        ("a\\\\.", "z.test.", "a\\\\."),
        ("www", ".", "www."),
    ],
)
def test_absolute_names(name: str, origin: str, expected: str) -> None:
    assert absolute(name, origin) == expected


def test_rdata_is_packed_uncompressed() -> None:
    rdata, text, target = parse_rdata("CNAME", [Token("Www")], "z.test.")
    assert rdata == b"\x03Www\x01z\x04test\x00"
    assert (text, target) == ("Www.z.test.", "Www.z.test.")
    rdata, text, _ = parse_rdata("TXT", [Token('a\\"b\\065', True)], ".")
    assert rdata == b'\x04a"bA' and text == '"a\\"bA"'


@pytest.mark.parametrize(
    ("text", "port"),
    [
        ("10.0.0.1", ("10.0.0.1", 53)),
        ("10.0.0.1:5353", ("10.0.0.1", 5353)),
        ("[fd00::1]:54", ("fd00::1", 54)),
        ("fd00::1", ("fd00::1", 53)),
        ("::ffff:10.0.0.1", ("10.0.0.1", 53)),
    ],
)
def test_forwarder_addresses(text: str, port: tuple[str, int]) -> None:
    assert parse_forwarder(text) == port


TEMPLATES: list[tuple[str, tuple[Any, ...]]] = [
    ("plain", ("plain",)),
    ("{agent.hostname}", (Field("agent", "hostname"),)),
    ("{ task.name }.x", (Field("task", "name"), ".x")),
    ("{{literal}}", ("{literal}",)),
    ("{param.d}-{framework.name}", ("apps-", Field("framework", "name"))),
]


@pytest.mark.parametrize(("text", "parts"), TEMPLATES)
def test_templates(text: str, parts: tuple[Any, ...]) -> None:
    assert parse_template(text, {"d": "apps"}).parts == parts


@pytest.mark.parametrize(
    "text",
    [
        "{",
        "}",
        "{agent.ip",
        "{{agent.ip}",
        "{agent.ip}}",
        "{x}",
        "{task.ip.x}",
        "{param.}",
        "{__import__('os')}",
        "{agent.__dict__}",
        "{param.a b}",
        "{agent.{task.id}}",
    ],
)
def test_bad_templates(text: str) -> None:
    with pytest.raises(TemplateError):
        parse_template(text, {"a b": "x"})


def test_templates_never_evaluate_their_text() -> None:
    t = parse_template("eval-{task.name}", {})
    assert t.expand({"task.name": "{agent.id}.__class__"}) == "eval-{agent.id}.__class__"


# --------------------------------------------------------------------------- config hook


def config_doc(zones: Any) -> dict[str, Any]:
    return {"masters": ["10.0.0.1:5050"], "resolvers": ["8.8.8.8"], "Zones": zones}


def test_config_accepts_valid_zones(tmp_path: Path) -> None:
    (tmp_path / "corp.zone").write_text("www IN A 192.0.2.1\n")
    doc = config_doc([{"name": "corp.example", "file": "corp.zone"}])
    path = tmp_path / "config.json"
    path.write_text(json.dumps(doc))
    config, warnings = parse_config(path.read_text(), str(path))
    assert config.zones == ({"name": "corp.example", "file": "corp.zone"},)
    assert warnings == []


def test_config_reports_zone_problems_with_the_key_as_written() -> None:
    with pytest.raises(ConfigError) as info:
        parse_config(
            json.dumps(config_doc([{"name": "x", "ttl": "1"}, {"name": "y", "origin": "a.mesos"}]))
        )
    assert info.value.problems == [
        "Zones[0].ttl: expected an integer, got string",
        "Zones[1].origin: 'a.mesos.' is inside the cluster domain 'mesos.', "
        "which always answers first",
    ]


def test_config_zone_origin_may_not_hide_under_a_domain_alias() -> None:
    doc = config_doc([{"name": "x", "origin": "svc.mesos.internal"}])
    doc["domainAliases"] = ["mesos.internal"]
    with pytest.raises(ConfigError) as info:
        parse_config(json.dumps(doc))
    assert info.value.problems == [
        "Zones[0].origin: 'svc.mesos.internal.' is inside the cluster domain "
        "'mesos.internal.', which always answers first"
    ]


def test_zone_warnings_are_config_warnings() -> None:
    _, warnings = parse_config(json.dumps(config_doc([{"name": "x", "bogus": 1}])))
    assert warnings == ["Zones[0].bogus: unknown key, ignored"]


def test_a_bad_zone_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "config.json"
    path.write_text(
        json.dumps(
            config_doc(
                [
                    {
                        "name": "x",
                        "records": [{"type": "A", "name": "eval:{task.nme}", "value": "{task.ip}"}],
                    }
                ]
            )
        )
    )
    assert cli_main([f"-config={path}"]) == 2
    err = capsys.readouterr().err
    assert "Zones[0].records[0].name: '{task.nme}': unknown template field 'task.nme'" in err
