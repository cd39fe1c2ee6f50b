"""The zone look-up order, table-driven, without a network: priority, source
filters, origin, zone data, forwarders, continue; answers (CNAME chasing,
wildcards, NODATA, NXDOMAIN with the zone's SOA); automatic PTR records for
operator zones and for the cluster's own addresses; templates over the
fixture states."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any

import dns.message
import dns.rcode
import dns.rdatatype
import msgspec
import pytest

from mesosdns.dns import wire
from mesosdns.dns.opzones import Answer, CompiledZones, Forward, client_key, lookup, render
from mesosdns.dns.settings import DNSSettings
from mesosdns.records.generator import GeneratorParams, generate, task_hash
from mesosdns.state.model import State, parse_state
from mesosdns.zones.compile import cluster_ptr, compile_zones
from mesosdns.zones.model import load_zones

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "fixtures"
SETTINGS = DNSSettings(listen_host="127.0.0.1", port=0)
SERIAL = 1_700_000_000
MASTERS = ("", "10.0.0.11:5050", "10.0.0.12:5050", "10.0.0.13:5050")


def state_of(name: str) -> State:
    return parse_state((FIXTURES / f"{name}-state.json").read_bytes())


def build(
    zones: list[dict[str, Any]],
    *,
    state: State | None = None,
    reverse_ptr: bool = False,
    resolved: dict[str, tuple[str, ...]] | None = None,
) -> CompiledZones:
    loaded = load_zones(zones, base_dir=str(FIXTURES / "zones"), domains=["mesos"])
    assert loaded.problems == []
    params = GeneratorParams(domain="mesos", masters=MASTERS, resolved=resolved or {})
    records = generate(state, params) if state is not None else None
    return compile_zones(
        loaded.zones,
        SETTINGS,
        SERIAL,
        state=state,
        params=params,
        records=records,
        reverse_ptr=reverse_ptr,
    )


def verdict(
    cz: CompiledZones, name: str, rdtype: str = "A", client: str = "127.0.0.1", start: int = 0
) -> str:
    """The look-up's outcome as one line of text.

    ``zone RCODE record; record; ... [+SOA owner]``, ``forward zone`` or
    ``unclaimed``; records as ``type rdata``, owners left out when they are
    the question's name.
    """
    query = dns.message.make_query(name, rdtype)
    parsed = wire.parse_query(query.to_wire())
    assert isinstance(parsed, wire.Query)
    found = lookup(cz, parsed.qname.lower(), parsed.qtype, client, start)
    if found is None:
        return "unclaimed"
    if isinstance(found, Forward):
        return f"forward {found.zone.name}"
    reply = dns.message.from_wire(
        render(
            found,
            parsed.ident,
            parsed.b2,
            parsed.b3,
            parsed.question,
            65535,
            b"",
            ra=True,
            set_tc=True,
        )
    )
    assert reply.id == query.id and reply.flags & dns.flags.AA
    parts = []
    for rrset in reply.answer:
        owner = "" if rrset.name == query.question[0].name else rrset.name.to_text() + " "
        parts.extend(f"{owner}{dns.rdatatype.to_text(rrset.rdtype)} {rd.to_text()}" for rd in rrset)
    text = f"{found.zone.name} {dns.rcode.to_text(reply.rcode())}"
    if parts:
        text += " " + "; ".join(parts)
    soa = [r for r in reply.authority if r.rdtype == dns.rdatatype.SOA]
    if soa:
        text += f" +SOA {soa[0].name.to_text()} {soa[0].ttl}"
    return text


# --------------------------------------------------------------------------- lookup order


def rec(name: str, value: str, rtype: str = "A") -> dict[str, str]:
    return {"type": rtype, "name": name, "value": value}


def pktsrc(*cidrs: str) -> list[dict[str, str]]:
    return [{"type": "pktsrc", "filter": c} for c in cidrs]


ORDER_ZONES: list[dict[str, Any]] = [
    # listed out of priority order on purpose
    {
        "name": "high",
        "origin": "corp.example",
        "priority": 20,
        "records": [rec("www", "10.0.0.20"), rec("only-high", "10.0.0.21")],
    },
    {
        "name": "low",
        "origin": "corp.example",
        "priority": 10,
        "continue": True,
        "records": [rec("www", "10.0.0.10")],
    },
    {
        "name": "site-a",
        "origin": "corp.example",
        "priority": 5,
        "filters": pktsrc("127.0.0.2/32", "127.0.0.4/31"),
        "records": [rec("www", "10.0.0.5")],
    },
    {
        "name": "v6-site",
        "origin": "corp.example",
        "priority": 6,
        "filters": pktsrc("fd00::/8"),
        "records": [rec("www", "10.0.0.6")],
    },
    {
        "name": "other",
        "origin": "other.example",
        "priority": 0,
        "records": [rec("www", "10.9.9.9")],
    },
    {
        "name": "stopper",
        "origin": "stop.example",
        "priority": 1,
        "records": [rec("www", "10.8.8.8")],
    },
    {
        "name": "after-stopper",
        "origin": "stop.example",
        "priority": 2,
        "records": [rec("late", "10.8.8.9")],
    },
    {
        "name": "fwd-stop",
        "origin": "fwd.example",
        "priority": 1,
        "forwarders": ["127.0.0.1:5300"],
        "records": [rec("local", "10.7.7.7")],
    },
    {
        "name": "fwd-continue",
        "origin": "fwdc.example",
        "priority": 1,
        "continue": True,
        "forwarders": ["127.0.0.1:5301"],
    },
    {
        "name": "after-fwd",
        "origin": "fwdc.example",
        "priority": 2,
        "records": [rec("x", "10.6.6.6")],
    },
]

ORDER_CASES = [
    # name, type, client, verdict
    ("www.corp.example.", "A", "127.0.0.1", "low NOERROR A 10.0.0.10"),  # lowest priority wins
    ("WWW.Corp.Example.", "A", "127.0.0.1", "low NOERROR A 10.0.0.10"),  # names are case-blind
    ("www.corp.example.", "A", "127.0.0.2", "site-a NOERROR A 10.0.0.5"),  # filter matches
    ("www.corp.example.", "A", "127.0.0.3", "low NOERROR A 10.0.0.10"),  # ... matches none
    ("www.corp.example.", "A", "127.0.0.4", "site-a NOERROR A 10.0.0.5"),  # second filter
    ("www.corp.example.", "A", "127.0.0.5", "site-a NOERROR A 10.0.0.5"),
    ("www.corp.example.", "A", "127.0.0.6", "low NOERROR A 10.0.0.10"),
    ("www.corp.example.", "A", "::ffff:127.0.0.2", "site-a NOERROR A 10.0.0.5"),  # mapped v4
    ("www.corp.example.", "A", "fd00::1", "v6-site NOERROR A 10.0.0.6"),
    ("www.corp.example.", "A", "", "low NOERROR A 10.0.0.10"),  # unknown source: no filter
    # no data in "low", which continues: "high" answers
    ("only-high.corp.example.", "A", "127.0.0.1", "high NOERROR A 10.0.0.21"),
    # no data anywhere: the last zone (no continue) gives NXDOMAIN with its SOA
    ("nothing.corp.example.", "A", "127.0.0.1", "high NXDOMAIN +SOA corp.example. 3600"),
    # the name exists in "low" but not the type: NODATA from "low" (it has data for the name)
    ("www.corp.example.", "AAAA", "127.0.0.1", "low NOERROR +SOA corp.example. 3600"),
    # origin mismatch: "other" (priority 0) does not claim corp.example names
    ("www.other.example.", "A", "127.0.0.1", "other NOERROR A 10.9.9.9"),
    # continue false, no forwarders: stop with NXDOMAIN although a later zone has the name
    ("late.stop.example.", "A", "127.0.0.1", "stopper NXDOMAIN +SOA stop.example. 3600"),
    # forwarders: local data first, else ask them
    ("local.fwd.example.", "A", "127.0.0.1", "fwd-stop NOERROR A 10.7.7.7"),
    ("remote.fwd.example.", "A", "127.0.0.1", "forward fwd-stop"),
    ("x.fwdc.example.", "A", "127.0.0.1", "forward fwd-continue"),
    # no zone claims the name: the default resolvers apply
    ("www.example.org.", "A", "127.0.0.1", "unclaimed"),
    ("example.", "A", "127.0.0.1", "unclaimed"),
]


@pytest.fixture(scope="module")
def order() -> CompiledZones:
    return build(ORDER_ZONES)


@pytest.mark.parametrize(("name", "rdtype", "client", "expected"), ORDER_CASES)
def test_lookup_order(
    order: CompiledZones, name: str, rdtype: str, client: str, expected: str
) -> None:
    assert verdict(order, name, rdtype, client) == expected


def test_zones_are_sorted_by_priority_then_config_order(order: CompiledZones) -> None:
    assert [z.name for z in order.zones] == [
        "other",
        "stopper",
        "fwd-stop",
        "fwd-continue",
        "after-stopper",
        "after-fwd",
        "site-a",
        "v6-site",
        "low",
        "high",
    ]


def test_continue_after_forwarders_resumes_at_the_next_zone(order: CompiledZones) -> None:
    found = lookup(order, wire.text_to_wire("x.fwdc.example.") or b"", 1, "127.0.0.1")
    assert isinstance(found, Forward) and found.zone.cont
    assert (
        verdict(order, "x.fwdc.example.", start=found.index + 1) == "after-fwd NOERROR A 10.6.6.6"
    )
    assert verdict(order, "y.fwdc.example.", start=found.index + 1) == (
        "after-fwd NXDOMAIN +SOA fwdc.example. 3600"
    )


def test_filters_use_integer_networks() -> None:
    assert client_key("127.0.0.2") == (4, int(ipaddress.ip_address("127.0.0.2")))
    assert client_key("::ffff:10.0.0.1") == (4, int(ipaddress.ip_address("10.0.0.1")))
    assert client_key("fe80::1%eth0") == (6, int(ipaddress.ip_address("fe80::1")))
    assert client_key("not an ip") is None


# --------------------------------------------------------------------------- answers

DATA_ZONE: dict[str, Any] = {
    "name": "data",
    "origin": "z.test",
    "ttl": 300,
    "records": [
        rec("@", "ns1.z.test.", "NS"),
        rec("@", "10 mail", "MX"),
        rec("@", "192.0.2.1"),
        {"type": "A", "name": "short", "value": "192.0.2.2", "ttl": 30},
        rec("alias", "www", "CNAME"),
        rec("www", "192.0.2.3"),
        rec("www", "2001:db8::3", "AAAA"),
        rec("chain", "alias", "CNAME"),
        rec("dangling", "missing", "CNAME"),
        rec("outside", "www.example.org.", "CNAME"),
        rec("loop1", "loop2", "CNAME"),
        rec("loop2", "loop1", "CNAME"),
        rec("to-ent", "b", "CNAME"),
        rec("a.b", "192.0.2.4"),
        rec("*.wild", "192.0.2.5"),
        rec("*.wild", "wild text", "TXT"),
        rec("exists.wild", "exists", "TXT"),
        rec("*.cn", "www", "CNAME"),
        rec("_sip._tcp", "0 5 5060 www", "SRV"),
        rec("txt", '"a" "b c"', "TXT"),
    ],
}

DATA_CASES = [
    ("www.z.test.", "A", "data NOERROR A 192.0.2.3"),
    ("www.z.test.", "AAAA", "data NOERROR AAAA 2001:db8::3"),
    ("www.z.test.", "TXT", "data NOERROR +SOA z.test. 300"),
    ("short.z.test.", "A", "data NOERROR A 192.0.2.2"),
    ("z.test.", "SOA", "data NOERROR SOA ns1.mesos. root.ns1.mesos. 1700000000 60 600 86400 300"),
    ("z.test.", "NS", "data NOERROR NS ns1.z.test."),
    ("z.test.", "MX", "data NOERROR MX 10 mail.z.test."),
    ("alias.z.test.", "A", "data NOERROR CNAME www.z.test.; www.z.test. A 192.0.2.3"),
    ("alias.z.test.", "CNAME", "data NOERROR CNAME www.z.test."),
    ("alias.z.test.", "TXT", "data NOERROR CNAME www.z.test. +SOA z.test. 300"),
    (
        "chain.z.test.",
        "AAAA",
        "data NOERROR CNAME alias.z.test.; alias.z.test. CNAME www.z.test.; "
        "www.z.test. AAAA 2001:db8::3",
    ),
    ("dangling.z.test.", "A", "data NXDOMAIN CNAME missing.z.test. +SOA z.test. 300"),
    ("outside.z.test.", "A", "data NOERROR CNAME www.example.org."),  # the resolver chases it
    ("loop1.z.test.", "A", "data NOERROR CNAME loop2.z.test.; loop2.z.test. CNAME loop1.z.test."),
    ("to-ent.z.test.", "A", "data NOERROR CNAME b.z.test. +SOA z.test. 300"),
    ("b.z.test.", "A", "data NOERROR +SOA z.test. 300"),  # empty non-terminal: NODATA
    ("x.b.z.test.", "A", "data NXDOMAIN +SOA z.test. 300"),
    ("anything.wild.z.test.", "A", "data NOERROR A 192.0.2.5"),
    ("deep.er.wild.z.test.", "TXT", 'data NOERROR TXT "wild text"'),
    ("exists.wild.z.test.", "A", "data NOERROR +SOA z.test. 300"),  # no wildcard for it
    ("wild.z.test.", "A", "data NOERROR +SOA z.test. 300"),
    ("x.cn.z.test.", "A", "data NOERROR CNAME www.z.test.; www.z.test. A 192.0.2.3"),
    ("_sip._tcp.z.test.", "SRV", "data NOERROR SRV 0 5 5060 www.z.test."),
    ("_tcp.z.test.", "SRV", "data NOERROR +SOA z.test. 300"),
    ("txt.z.test.", "TXT", 'data NOERROR TXT "a" "b c"'),
    ("www.z.test.", "ANY", "data NOERROR A 192.0.2.3; AAAA 2001:db8::3"),
    ("nope.z.test.", "A", "data NXDOMAIN +SOA z.test. 300"),
    ("3.2.0.192.in-addr.arpa.", "PTR", "data NOERROR PTR www.z.test."),  # auto PTR
    ("3.2.0.192.in-addr.arpa.", "A", "data NOERROR +SOA in-addr.arpa. 300"),
    ("9.2.0.192.in-addr.arpa.", "PTR", "unclaimed"),
]


@pytest.fixture(scope="module")
def data() -> CompiledZones:
    return build([DATA_ZONE])


@pytest.mark.parametrize(("name", "rdtype", "expected"), DATA_CASES)
def test_answers(data: CompiledZones, name: str, rdtype: str, expected: str) -> None:
    assert verdict(data, name, rdtype) == expected


def test_record_ttls(data: CompiledZones) -> None:
    query = dns.message.make_query("short.z.test.", "A")
    parsed = wire.parse_query(query.to_wire())
    assert isinstance(parsed, wire.Query)
    found = lookup(data, parsed.qname, parsed.qtype, None)
    assert isinstance(found, Answer)
    reply = dns.message.from_wire(
        render(
            found,
            parsed.ident,
            parsed.b2,
            parsed.b3,
            parsed.question,
            512,
            b"",
            ra=False,
            set_tc=True,
        )
    )
    assert reply.answer[0].ttl == 30 and not reply.flags & dns.flags.RA


def test_answers_are_truncated_to_the_limit() -> None:
    cz = build(
        [
            {
                "name": "big",
                "origin": "big.test",
                "records": [rec("many", f"192.0.2.{i}") for i in range(1, 60)],
            }
        ]
    )
    query = dns.message.make_query("many.big.test.", "A")
    parsed = wire.parse_query(query.to_wire())
    assert isinstance(parsed, wire.Query)
    found = lookup(cz, parsed.qname, parsed.qtype, None)
    assert isinstance(found, Answer)
    out = render(
        found, parsed.ident, parsed.b2, parsed.b3, parsed.question, 512, b"", ra=True, set_tc=True
    )
    reply = dns.message.from_wire(out)
    assert len(out) <= 512 and reply.flags & dns.flags.TC
    assert 0 < len(reply.answer[0]) < 59


# --------------------------------------------------------------------------- zone files

FILE_ZONES: list[dict[str, Any]] = [
    {"name": "example.com", "file": "example.com.zone"},
    # reverse zones first; the IPv4 one continues to the automatic PTRs of example.com
    {
        "name": "reverse",
        "origin": "2.0.192.in-addr.arpa",
        "file": "2.0.192.in-addr.arpa.zone",
        "priority": -1,
        "continue": True,
    },
    {
        "name": "reverse6",
        "origin": "8.b.d.0.1.0.0.2.ip6.arpa",
        "file": "db.8.b.d.0.1.0.0.2.ip6.arpa",
        "priority": -1,
    },
]

FILE_CASES = [
    (
        "example.com.",
        "SOA",
        "example.com NOERROR SOA ns1.example.com. hostmaster.example.com. 2024031501 10800 900 "
        "1209600 300",
    ),
    (
        "ftp.example.com.",
        "A",
        "example.com NOERROR CNAME www.example.com.; www.example.com. CNAME example.com.; "
        "example.com. A 192.0.2.1",
    ),
    ("missing.example.com.", "A", "example.com NXDOMAIN +SOA example.com. 300"),  # min(TTL, MIN)
    (
        "ci.lab.example.com.",
        "A",
        "example.com NOERROR CNAME build.lab.example.com.; build.lab.example.com. A 192.0.2.60",
    ),
    ("x.apps.example.com.", "A", "example.com NOERROR A 192.0.2.50"),
    (
        "sel1._domainkey.example.com.",
        "TXT",
        'example.com NOERROR TXT "v=DKIM1; k=rsa; " '
        '"p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC5/mesosdns/test/key"',
    ),
    # the reverse zone (priority -1) answers what it holds
    ("11.2.0.192.in-addr.arpa.", "PTR", "reverse NOERROR PTR host1.example.com."),
    # it has no 60: it continues, and example.com's automatic PTR answers
    ("60.2.0.192.in-addr.arpa.", "PTR", "example.com NOERROR PTR build.lab.example.com."),
    ("60.2.0.192.in-addr.arpa.", "TXT", "example.com NOERROR +SOA in-addr.arpa. 300"),
    # nobody has 99 (nor 50: wildcard owners get no PTR)
    ("99.2.0.192.in-addr.arpa.", "PTR", "unclaimed"),
    ("50.2.0.192.in-addr.arpa.", "PTR", "unclaimed"),
    # the IPv6 reverse zone does not continue
    (
        ipaddress.ip_address("2001:db8::3").reverse_pointer + ".",
        "PTR",
        "reverse6 NOERROR PTR mail.example.com.",
    ),
    (
        ipaddress.ip_address("2001:db8::9").reverse_pointer + ".",
        "PTR",
        "reverse6 NXDOMAIN +SOA 8.b.d.0.1.0.0.2.ip6.arpa. 3600",
    ),
]


@pytest.mark.parametrize(("name", "rdtype", "expected"), FILE_CASES)
def test_zone_files(name: str, rdtype: str, expected: str) -> None:
    cz = build(FILE_ZONES)
    assert verdict(cz, name, rdtype) == expected


def test_auto_ptr_can_be_switched_off() -> None:
    on = build([{"name": "a", "origin": "a.test", "records": [rec("h", "192.0.2.7")]}])
    off = build(
        [{"name": "a", "origin": "a.test", "autoPTR": False, "records": [rec("h", "192.0.2.7")]}]
    )
    assert verdict(on, "7.2.0.192.in-addr.arpa.", "PTR") == "a NOERROR PTR h.a.test."
    assert verdict(off, "7.2.0.192.in-addr.arpa.", "PTR") == "unclaimed"


def test_auto_ptr_for_an_address_several_names_share() -> None:
    cz = build(
        [
            {
                "name": "a",
                "origin": "a.test",
                "records": [rec("b", "192.0.2.7"), rec("a", "192.0.2.7"), rec("*.w", "192.0.2.7")],
            }
        ]
    )
    assert verdict(cz, "7.2.0.192.in-addr.arpa.", "PTR") == (
        "a NOERROR PTR a.a.test.; PTR b.a.test."
    )


def test_a_ptr_record_of_the_zone_wins_over_the_automatic_ones() -> None:
    cz = build(
        [
            {
                "name": "a",
                "origin": ".",
                "records": [
                    rec("h.a.test.", "192.0.2.7"),
                    rec("7.2.0.192.in-addr.arpa.", "named.a.test.", "PTR"),
                ],
            }
        ]
    )
    assert verdict(cz, "7.2.0.192.in-addr.arpa.", "PTR") == "a NOERROR PTR named.a.test."


def test_auto_ptr_follows_the_zone_filters_and_priority() -> None:
    cz = build(
        [
            {
                "name": "inside",
                "origin": "a.test",
                "filters": pktsrc("10.0.0.0/8"),
                "records": [rec("h", "192.0.2.7")],
            },
            {
                "name": "outside",
                "origin": "a.test",
                "priority": 1,
                "records": [rec("public", "192.0.2.7")],
            },
        ]
    )
    assert verdict(cz, "7.2.0.192.in-addr.arpa.", "PTR", "10.1.1.1") == (
        "inside NOERROR PTR h.a.test."
    )
    assert verdict(cz, "7.2.0.192.in-addr.arpa.", "PTR", "192.168.1.1") == (
        "outside NOERROR PTR public.a.test."
    )


# --------------------------------------------------------------------------- templates


def names_of(cz: CompiledZones, zone: str, rdtype: str) -> dict[str, list[str]]:
    """Every record of one type in a compiled zone: owner -> sorted values."""
    (z,) = [z for z in cz.zones if z.name == zone]
    code = dns.rdatatype.from_text(rdtype)
    out: dict[str, list[str]] = {}
    for lname, node in z.nodes.items():
        for rr in node.rrs.get(code, ()):
            rdata = rr[10:]
            rd = dns.rdata.from_wire(1, code, rdata, 0, len(rdata))
            out.setdefault(wire.wire_to_text(lname), []).append(rd.to_text())
    return {k: sorted(v) for k, v in sorted(out.items())}


def test_task_template_over_the_demo_state() -> None:
    cz = build(
        [
            {
                "name": "apps",
                "origin": "corp.example",
                "params": {"d": "apps.corp.example"},
                "records": [
                    {"type": "A", "name": "eval:{task.name}.{param.d}", "value": "{task.ip}"}
                ],
            }
        ],
        state=state_of("demo"),
    )
    assert names_of(cz, "apps", "A") == {
        "backend-api-prod.apps.corp.example.": ["10.250.1.17"],
        "kafka-0-broker.apps.corp.example.": ["10.0.1.21"],
        "kafka-1-broker.apps.corp.example.": ["10.0.1.23"],
        "kafka-2-broker.apps.corp.example.": ["10.0.1.24"],
        "kafka.apps.corp.example.": ["10.0.1.22"],  # host network: the agent's address
        "nginx.apps.corp.example.": ["10.0.1.21", "10.0.1.22"],  # two tasks, one name
        "nightly-backup.apps.corp.example.": ["10.0.1.23"],
        "redis.apps.corp.example.": ["10.250.2.5"],
        "search.apps.corp.example.": ["10.250.3.9"],
    }
    assert verdict(cz, "21.1.0.10.in-addr.arpa.", "PTR") == (
        "apps NOERROR PTR kafka-0-broker.apps.corp.example.; PTR nginx.apps.corp.example."
    )
    assert cz.problems == ()


def test_agent_templates_keep_names_under_the_origin_only() -> None:
    resolved = {"agent-7.example.internal": ("10.0.5.7",)}
    cz = build(
        [
            {
                "name": "agents",
                "origin": "example.internal",
                "records": [
                    {"type": "A", "name": "eval:{agent.hostname}", "value": "{agent.ip}"},
                    {"type": "AAAA", "name": "eval:{agent.hostname}", "value": "{agent.ip}"},
                    {"type": "TXT", "name": "eval:{agent.hostname}", "value": "id={agent.id}"},
                ],
            }
        ],
        state=state_of("edge"),
        resolved=resolved,
    )
    # agents named by an IP (10.0.5.1, 10.0.5.2) are not under the origin: left out;
    # an address of the other family is skipped without a problem
    assert names_of(cz, "agents", "A") == {"agent-7.example.internal.": ["10.0.5.7"]}
    assert names_of(cz, "agents", "AAAA") == {"agent-8.example.internal.": ["2001:db8::7"]}
    assert names_of(cz, "agents", "TXT") == {
        "agent-7.example.internal.": ['"id=e0d9c8b7-a6f5-4e3d-8c2b-1a0f9e8d7c6b-S7"'],
        "agent-8.example.internal.": ['"id=e0d9c8b7-a6f5-4e3d-8c2b-1a0f9e8d7c6b-S8"'],
    }
    assert cz.problems == ()
    assert verdict(cz, "agent-8.example.internal.", "A") == (
        "agents NOERROR +SOA example.internal. 3600"
    )


def test_framework_and_task_templates_over_the_ipv6_state() -> None:
    cz = build(
        [
            {
                "name": "fw",
                "origin": "svc.example",
                "records": [
                    {
                        "type": "TXT",
                        "name": "eval:{framework.name}.fw.svc.example",
                        "value": "{framework.id}",
                    },
                    {
                        "type": "CNAME",
                        "name": "eval:{task.name}.{framework.name}.svc.example",
                        "value": "{task.name}.{framework.name}.mesos.",
                    },
                    {
                        "type": "AAAA",
                        "name": "eval:{task.name}.v6.svc.example",
                        "value": "{task.ip}",
                    },
                ],
            }
        ],
        state=state_of("ipv6"),
    )
    assert names_of(cz, "fw", "TXT") == {
        "marathon.fw.svc.example.": ['"3c5e7a9b-1d2f-4e6a-8b0c-d2e4f6a8b0c1-0000"'],
    }
    assert names_of(cz, "fw", "CNAME") == {
        "v6app.marathon.svc.example.": ["v6app.marathon.mesos."],
        "web.marathon.svc.example.": ["web.marathon.mesos."],
    }
    assert names_of(cz, "fw", "AAAA") == {
        "v6app.v6.svc.example.": ["fd01:c::4"],
        "web.v6.svc.example.": ["fd01:c::2", "fd01:c::3"],
    }
    assert verdict(cz, ipaddress.ip_address("fd01:c::4").reverse_pointer + ".", "PTR") == (
        "fw NOERROR PTR v6app.v6.svc.example."
    )


def test_template_problems_name_the_zone_and_record() -> None:
    cz = build(
        [
            {
                "name": "bad",
                "origin": "corp.example",
                "records": [
                    {
                        "type": "A",
                        "name": "eval:{framework.id}{framework.id}.corp.example",
                        "value": "10.0.0.1",
                    },
                    {"type": "MX", "name": "eval:{task.name}.corp.example", "value": "{task.id}"},
                ],
            }
        ],
        state=state_of("demo"),
    )
    assert len(cz.problems) == 2
    first, second = cz.problems
    assert first.startswith("zones[0].records[0] (zone bad): 3 expansion(s) skipped, e.g. ")
    assert "invalid domain name" in first and "(framework '5b0e3a1c-" in first
    assert second.startswith("zones[0].records[1] (zone bad): 10 expansion(s) skipped, e.g. ")
    assert "expected 'preference exchange'" in second


def test_templated_cname_conflicts_are_skipped() -> None:
    cz = build(
        [
            {
                "name": "c",
                "origin": "corp.example",
                "records": [
                    rec("nginx", "elsewhere.example.", "CNAME"),
                    {"type": "A", "name": "eval:{task.name}.corp.example", "value": "{task.ip}"},
                ],
            }
        ],
        state=state_of("demo"),
    )
    assert verdict(cz, "nginx.corp.example.", "A") == "c NOERROR CNAME elsewhere.example."
    assert len(cz.problems) == 1 and "has a CNAME and other records" in cz.problems[0]


def test_templates_follow_each_refresh() -> None:
    zones = [
        {
            "name": "apps",
            "origin": "corp.example",
            "records": [
                {"type": "A", "name": "eval:{task.name}.corp.example", "value": "{task.ip}"}
            ],
        }
    ]
    state = state_of("demo")
    before = build(zones, state=state)
    marathon = state.frameworks[0]
    fewer = msgspec.structs.replace(
        marathon, tasks=tuple(t for t in marathon.tasks if t.name != "redis")
    )
    after = build(
        zones, state=msgspec.structs.replace(state, frameworks=(fewer, *state.frameworks[1:]))
    )
    assert verdict(before, "redis.corp.example.") == "apps NOERROR A 10.250.2.5"
    assert verdict(after, "redis.corp.example.") == "apps NXDOMAIN +SOA corp.example. 3600"
    assert verdict(before, "5.2.250.10.in-addr.arpa.", "PTR") == (
        "apps NOERROR PTR redis.corp.example."
    )
    assert verdict(after, "5.2.250.10.in-addr.arpa.", "PTR") == "unclaimed"


# --------------------------------------------------------------------------- cluster PTR


def canonical(task_id: str, name: str, fw: str, agent: str) -> str:
    return f"{name}-{task_hash(task_id)}-{agent.lower()}.{fw}.mesos."


def test_cluster_ptr_rules_on_the_ipv6_state() -> None:
    params = GeneratorParams(domain="mesos", masters=MASTERS)
    state = state_of("ipv6")
    data = cluster_ptr(state, params, generate(state, params))
    web0 = canonical("web.9d8c7b6a-1d4b-11ef-9c3a-0242ac110010", "web", "marathon", "s0")
    web1 = canonical("web.9d8c7b6a-1d4b-11ef-9c3a-0242ac110011", "web", "marathon", "s1")
    v6app = canonical("v6app.9d8c7b6a-1d4b-11ef-9c3a-0242ac110012", "v6app", "marathon", "s1")
    assert dict(data.names) == {
        "10.0.0.11": ("master0.mesos.",),  # the leader
        "10.0.0.12": ("master1.mesos.",),
        "10.0.0.13": ("master2.mesos.",),
        "2001:db8:2::32": ("agent-v6-1.example.internal.",),  # the agent's host name
        "10.251.0.2": (web0,),
        "fd01:c::2": (web0,),
        "10.251.0.3": (web1,),
        "fd01:c::3": (web1,),
        "fd01:c::4": (v6app,),
        # 10.0.2.31: an agent whose host name is an IP: no PTR
    }
    assert data.kind["2001:db8:2::32"] == "agent" and data.kind["fd01:c::4"] == "task"


def test_shared_addresses_master_then_agent_then_tasks() -> None:
    resolved = {"agent-7.example.internal": ("10.0.5.7",)}
    params = GeneratorParams(domain="mesos", masters=("", "10.0.5.1:5050"), resolved=resolved)
    state = state_of("edge")
    data = cluster_ptr(state, params, generate(state, params))
    # agent-7 runs a task on the host network: the agent's host name wins
    assert data.names["10.0.5.7"] == ("agent-7.example.internal.",)
    # 10.0.5.1 is a master and an agent (named by its IP) with host-network tasks
    assert data.names["10.0.5.1"] == ("master0.mesos.",)
    # tasks sharing an agent's address, where the agent has no usable name: all, sorted
    shared = data.names["10.0.5.2"]
    assert len(shared) > 1 and list(shared) == sorted(shared)
    assert all(n.endswith(".mesos.") and "-s10." in n for n in shared)
    # names no question can reach (the raw DiscoveryInfo name) are never PTR targets
    assert all(wire.plain_key_wire(n) for names in data.names.values() for n in names)


CLUSTER_CASES = [
    ("11.0.0.10.in-addr.arpa.", "PTR", "cluster reverse NOERROR PTR master0.mesos."),
    (
        "5.2.250.10.in-addr.arpa.",
        "PTR",
        "cluster reverse NOERROR PTR "
        + canonical("redis.41c2d7f4-1d4b-11ef-9c3a-0242ac110002", "redis", "marathon", "s2"),
    ),
    ("11.0.0.10.in-addr.arpa.", "TXT", "cluster reverse NOERROR +SOA in-addr.arpa. 60"),
    # not a cluster address: on to the operator zones, then unclaimed
    ("7.2.0.192.in-addr.arpa.", "PTR", "ops NOERROR PTR h.ops.test."),
    ("8.2.0.192.in-addr.arpa.", "PTR", "unclaimed"),
]


@pytest.mark.parametrize(("name", "rdtype", "expected"), CLUSTER_CASES)
def test_cluster_ptr_answers_first(name: str, rdtype: str, expected: str) -> None:
    cz = build(
        [{"name": "ops", "origin": "ops.test", "records": [rec("h", "192.0.2.7")]}],
        state=state_of("demo"),
        reverse_ptr=True,
    )
    assert cz.zones[0].name == "cluster reverse"
    assert verdict(cz, name, rdtype) == expected


def test_cluster_ptr_is_off_by_default() -> None:
    cz = build([], state=state_of("demo"))
    assert cz.zones == () and not cz.active
