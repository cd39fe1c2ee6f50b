"""Alias zones (``clusterID``, ``domainAliases``): the cluster domain's records
answered under other zones, every name of a reply inside the zone asked.

The core check is an equivalence: for every kind of name of the shared test
record set, the reply under an alias equals the reply in the cluster domain
once names are mapped back, apart from the SOA owner (the alias apex instead
of the question) and its MNAME / RNAME (renamed into the alias). Then the
deliberate differences of alias zones (SOA / NS questions, the apex), routing,
configuration and the HTTP API.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator
from typing import Any

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import pytest
from aiohttp.test_utils import TestClient, TestServer
from dns_support import (
    SERIAL,
    ServerThread,
    compile_table,
    query,
    record_set,
    section_texts,
    settings,
)

from mesosdns.builder.service import dns_settings
from mesosdns.config import parse_config
from mesosdns.dns import wire
from mesosdns.dns.aliases import (
    Renamer,
    alias_domains,
    alias_record_set,
    alias_settings,
    overlaps,
)
from mesosdns.dns.answers import HOT_PREFIX, compile_answers
from mesosdns.errors import ConfigError
from mesosdns.metrics import Metrics, RefreshStats
from mesosdns.records.model import RecordSet, SRVTarget
from mesosdns.server.api import API, hosts_body, services_body
from mesosdns.store.snapshot import Snapshot, SnapshotStore

CLUSTER_ID = "yor6tqhiag39y6cjkdd4w9uzo45qhku6ra8hl7hpr6d9ukjaz3jo"
ALIAS = f"mesos.{CLUSTER_ID}.dcos.directory"
OTHER = "dc1.example.org"
NOERROR = dns.rcode.NOERROR
NXDOMAIN = dns.rcode.NXDOMAIN
ALIAS_SOA = f"{ALIAS}. 60 IN SOA ns1.{ALIAS}. root.ns1.{ALIAS}. {SERIAL} 60 600 86400 60"


@pytest.fixture(scope="module")
def srv() -> Iterator[ServerThread]:
    server = ServerThread(settings(aliases=(ALIAS, OTHER)))
    yield server
    server.close()


def in_alias(name: str, alias: str = ALIAS) -> str:
    """A cluster-domain name (``x.mesos.``) under ``alias``."""
    assert name.endswith("mesos.")
    return name[: -len("mesos.")] + alias + "."


def normalised(r: dns.message.Message, alias: str | None) -> tuple[Any, ...]:
    """What must be equal between a domain reply and an alias reply."""

    def text(section: Any) -> list[str]:
        out = []
        for rr in section_texts(section):
            if alias is not None:
                rr = rr.replace("." + alias + ".", ".mesos.").replace(" " + alias + ".", " mesos.")
                if rr.startswith(alias + "."):
                    rr = "mesos." + rr[len(alias) + 1 :]
            owner, rest = rr.split(" ", 1)
            if " SOA " in rr or " NS " in rr:  # the question in the domain, the apex here
                owner = "<zone owner>"
            out.append(f"{owner} {rest}")
        return sorted(out)

    return (
        r.rcode(),
        dns.flags.to_text(r.flags),
        text(r.answer),
        text(r.authority),
        text(r.additional),
        r.edns,
    )


NAMES = [
    "nginx.marathon.mesos.",  # A, 3 values
    "nginx-aaaaa-s1.marathon.mesos.",
    "dual.marathon.mesos.",  # A and AAAA
    "v6only.marathon.mesos.",  # AAAA only
    "leader.mesos.",
    "ns1.mesos.",
    "bad.mesos.",  # a value that is not an address: slow path
    "half.mesos.",  # one good, one bad value: slow path
    "many.marathon.mesos.",  # 40 A records: truncated over UDP
    "_nginx._tcp.marathon.mesos.",  # SRV with additional records
    "_dual._tcp.marathon.mesos.",  # additional A and AAAA
    "_nohost._udp.marathon.mesos.",  # target without address
    "_big._tcp.marathon.mesos.",  # 40 targets: truncated
    "_leader._tcp.mesos.",
    "missing.marathon.mesos.",  # NXDOMAIN
    "_tcp.marathon.mesos.",  # empty non-terminal: NXDOMAIN as in the domain
    "leader.*.mesos.",  # '.*' removed before look-up
    "NGINX.Marathon.mesos.",  # mixed case
    "_NGINX._tcp.marathon.mesos.",
]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("rdtype", ["A", "AAAA", "SRV", "TXT", "ANY"])
@pytest.mark.parametrize("mode", ["udp", "edns", "tcp"])
def test_alias_answers_equal_the_domain_answers(
    srv: ServerThread, name: str, rdtype: str, mode: str
) -> None:
    kw: dict[str, Any] = {"tcp": mode == "tcp", "edns": mode == "edns"}
    want = normalised(query(srv.port, name, rdtype, **kw), None)
    full = normalised(query(srv.port, name, rdtype, tcp=True), None)
    for alias in (ALIAS, OTHER):
        reply = query(srv.port, in_alias(name, alias), rdtype, **kw)
        got = normalised(reply, alias)
        if "TC" in got[1].split() and mode != "tcp":
            # the longer alias names leave room for fewer records in 512 bytes
            assert got[0] == want[0] and got[1].replace(" TC", "") == full[1]
            assert got[4] == [] and len(got[2]) <= len(want[2]) and set(got[2]) <= set(full[2])
        else:
            assert got == want, (alias, name, rdtype)
        # every owner name is inside the alias zone, SOA and glue included
        for section in (reply.answer, reply.authority, reply.additional):
            for rrset in section:
                assert rrset.name.is_subdomain(dns.name.from_text(alias)), rrset


def test_a_and_srv_under_the_alias(srv: ServerThread) -> None:
    r = query(srv.port, in_alias("nginx.marathon.mesos."), "A")
    assert r.rcode() == NOERROR and {"AA", "RA"} <= set(dns.flags.to_text(r.flags).split())
    assert sorted(section_texts(r.answer)) == [
        f"nginx.marathon.{ALIAS}. 60 IN A 10.0.1.{i}" for i in (1, 2, 3)
    ]
    r = query(srv.port, in_alias("_dual._tcp.marathon.mesos."), "SRV", edns=True)
    assert section_texts(r.answer) == [
        f"_dual._tcp.marathon.{ALIAS}. 60 IN SRV 0 1 8080 dual.marathon.{ALIAS}."
    ]
    assert sorted(section_texts(r.additional)) == [
        f"dual.marathon.{ALIAS}. 60 IN A 10.0.2.1",
        f"dual.marathon.{ALIAS}. 60 IN AAAA fd00::2:1",
    ]


def test_alias_answers_come_from_the_hot_table() -> None:
    table = compile_table(settings(aliases=(ALIAS,)))
    for name in ("nginx.marathon.mesos.", "_nginx._tcp.marathon.mesos."):
        qtype = b"\x00\x21" if name.startswith("_") else b"\x00\x01"
        for owner in (name, in_alias(name)):
            key = HOT_PREFIX + (wire.text_to_wire(owner) or b"") + qtype + b"\x00\x01"
            assert table.hot.fill(key, table.entries[key]) is not None, owner
    assert [v.domain for v in table.aliases] == [wire.text_to_wire(ALIAS + ".")]
    assert table.info.entries == len(table.entries)


def test_nodata_is_never_nxdomain_under_the_alias(srv: ServerThread) -> None:
    # AAAA then A for a name with only A records: BIND caches an NXDOMAIN
    # for every type, so the first answer must be NODATA
    name = in_alias("nginx-aaaaa-s1.marathon.mesos.")
    r = query(srv.port, name, "AAAA")
    assert r.rcode() == NOERROR and r.answer == []
    assert section_texts(r.authority) == [ALIAS_SOA]
    r = query(srv.port, name, "A")
    assert section_texts(r.answer) == [f"{name} 60 IN A 10.0.1.1"]


@pytest.mark.parametrize("tcp", [False, True])
def test_nxdomain_soa_is_owned_by_the_alias_apex(srv: ServerThread, tcp: bool) -> None:
    r = query(srv.port, f"Missing.Marathon.{ALIAS}.", "A", tcp=tcp)
    assert r.rcode() == NXDOMAIN and r.answer == []
    assert section_texts(r.authority) == [ALIAS_SOA]


def test_the_cluster_domain_keeps_the_original_shapes(srv: ServerThread) -> None:
    soa = f"60 IN SOA ns1.mesos. root.ns1.mesos. {SERIAL} 60 600 86400 60"
    r = query(srv.port, "missing.mesos.", "A")
    assert section_texts(r.authority) == [f"missing.mesos. {soa}"]
    r = query(srv.port, "mesos.", "NS")
    assert r.answer == [] and section_texts(r.authority) == ["mesos. 60 IN NS ns1.mesos."]
    r = query(srv.port, "mesos.", "A")
    assert r.rcode() == NXDOMAIN


# -- SOA and NS in an alias zone: as an authoritative server answers ------


@pytest.mark.parametrize("tcp", [False, True])
@pytest.mark.parametrize("edns", [False, True])
def test_soa_and_ns_at_the_alias_apex_are_answers(srv: ServerThread, tcp: bool, edns: bool) -> None:
    r = query(srv.port, ALIAS + ".", "SOA", tcp=tcp, edns=edns)
    assert r.rcode() == NOERROR and section_texts(r.answer) == [ALIAS_SOA]
    assert r.authority == []
    r = query(srv.port, ALIAS.upper() + ".", "NS", tcp=tcp, edns=edns)
    assert section_texts(r.answer) == [f"{ALIAS}. 60 IN NS ns1.{ALIAS}."]
    assert r.authority == []
    r = query(srv.port, ALIAS + ".", "ANY", tcp=tcp, edns=edns)
    assert sorted(section_texts(r.answer)) == sorted([ALIAS_SOA, f"{ALIAS}. 60 IN NS ns1.{ALIAS}."])


@pytest.mark.parametrize(
    "name", [f"nginx.marathon.{ALIAS}.", f"no.such.{ALIAS}.", f"leader.*.{ALIAS}."]
)
@pytest.mark.parametrize("rdtype", ["SOA", "NS"])
def test_soa_and_ns_below_the_alias_apex_are_nodata(
    srv: ServerThread, name: str, rdtype: str
) -> None:
    r = query(srv.port, name, rdtype)
    assert r.rcode() == NOERROR and r.answer == []
    assert section_texts(r.authority) == [ALIAS_SOA]


@pytest.mark.parametrize("rdtype", ["A", "AAAA", "TXT"])
def test_the_alias_apex_is_nodata_not_nxdomain(srv: ServerThread, rdtype: str) -> None:
    r = query(srv.port, ALIAS + ".", rdtype)
    assert r.rcode() == NOERROR and r.answer == []
    assert section_texts(r.authority) == [ALIAS_SOA]


def test_the_ns_target_resolves_in_the_alias(srv: ServerThread) -> None:
    r = query(srv.port, f"ns1.{ALIAS}.", "A")
    assert section_texts(r.answer) == [f"ns1.{ALIAS}. 60 IN A 10.0.0.1"]


def test_edns_as_bind_sends_it(srv: ServerThread) -> None:
    """BIND asks forwarders with EDNS, DO and a client cookie."""
    q = dns.message.make_query(
        in_alias("_nginx._tcp.marathon.mesos."),
        "SRV",
        use_edns=0,
        want_dnssec=True,
        payload=1232,
        options=[dns.edns.CookieOption(b"\x01" * 8, b"")],
    )
    r = dns.query.udp(q, "127.0.0.1", port=srv.port, timeout=2)
    assert r.rcode() == NOERROR and r.edns == 0
    assert r.ednsflags & dns.flags.DO
    assert len(r.answer[0]) == 3 and len(r.additional) == 3


# -- routing ---------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        f"{CLUSTER_ID}.dcos.directory.",  # the parent of the alias
        f"www.{CLUSTER_ID}.dcos.directory.",
        f"x{ALIAS}.",  # not on a label boundary
        "example.org.",
    ],
)
def test_names_outside_every_zone_are_forwarded(srv: ServerThread, name: str) -> None:
    # no resolvers in these settings: forwarding answers REFUSED
    assert query(srv.port, name, "A").rcode() == dns.rcode.REFUSED


def test_stats_count_alias_questions_as_mesos(srv: ServerThread) -> None:
    before = srv.stats()
    query(srv.port, in_alias("nginx.marathon.mesos."), "A")
    query(srv.port, f"nope.{ALIAS}.", "A")
    after = srv.stats()
    assert after["MesosRequests"] - before["MesosRequests"] == 2
    assert after["MesosNXDomain"] - before["MesosNXDomain"] == 1
    assert after["NonMesosRequests"] == before["NonMesosRequests"]


def test_a_state_change_reaches_the_alias() -> None:
    server = ServerThread(settings(aliases=(ALIAS,)))
    try:
        name = in_alias("redis.marathon.mesos.")
        assert query(server.port, name, "A").rcode() == NXDOMAIN
        rs = record_set()
        changed = RecordSet(
            domain="mesos",
            a={**rs.a, "redis.marathon.mesos.": ("10.0.7.1",)},
            aaaa=rs.aaaa,
            srv=rs.srv,
        )
        server.set_table(compile_table(server.settings, changed, SERIAL + 1))
        r = query(server.port, name, "A")
        assert section_texts(r.answer) == [f"{name} 60 IN A 10.0.7.1"]
        assert str(SERIAL + 1) in section_texts(query(server.port, ALIAS + ".", "SOA").answer)[0]
    finally:
        server.close()


# -- the pure parts --------------------------------------------------------


def test_alias_domains() -> None:
    assert alias_domains("mesos", "", ()) == ()
    assert alias_domains("mesos", CLUSTER_ID.upper(), ["Foo.Example.", "foo.example", "mesos"]) == (
        ALIAS,
        "foo.example",
    )
    assert alias_domains("dc.mesos", "abc", ()) == ("dc.mesos.abc.dcos.directory",)


def test_overlaps() -> None:
    assert overlaps("a.b", "b") and overlaps("b", "a.b") and overlaps("B.", "b")
    assert not overlaps("ab", "b") and not overlaps("a.c", "b.c")


def test_renamer() -> None:
    ren = Renamer("mesos", ALIAS)
    assert ren.rename("a.b.mesos.") == f"a.b.{ALIAS}."
    assert ren.rename("mesos.") == f"{ALIAS}."
    assert ren.rename("xmesos.") is None and ren.rename("mesos.example.") is None
    assert ren.rename_or_keep("host.example.") == "host.example."
    assert ren.back(f"a.b.{ALIAS}.") == "a.b.mesos."
    assert ren.back(f"{ALIAS}.") == "mesos."
    assert ren.back(f"x{ALIAS}.") is None


def test_alias_record_set() -> None:
    rs = record_set()
    got = alias_record_set(rs, "mesos", ALIAS)
    assert got.domain == ALIAS
    assert got.a[f"nginx.marathon.{ALIAS}."] == rs.a["nginx.marathon.mesos."]
    assert f"Upper.marathon.{ALIAS}." in got.a  # raw names too (HTTP lists them)
    assert "outside.example." not in got.a and all(n.endswith(ALIAS + ".") for n in got.a)
    assert got.srv[f"_leader._tcp.{ALIAS}."] == (SRVTarget(f"leader.{ALIAS}.", 5050),)
    assert got.count() == {
        "A": rs.count()["A"] - 1,  # outside.example. left out
        "AAAA": rs.count()["AAAA"],
        "SRV": rs.count()["SRV"],
    }


def test_alias_settings_rename_soa_names_inside_the_domain() -> None:
    s = alias_settings(settings(soa_mname="NS1.Mesos", soa_rname="admin@ns1.mesos."), ALIAS)
    assert (s.domain, s.soa_mname, s.soa_rname) == (ALIAS, f"NS1.{ALIAS}.", f"admin.ns1.{ALIAS}.")
    s = alias_settings(settings(soa_mname="ns.example.", soa_rname="hostmaster.example."), ALIAS)
    assert (s.soa_mname, s.soa_rname) == ("ns.example.", "hostmaster.example.")


def test_overlapping_aliases_are_ignored_by_the_compiler() -> None:
    s = settings(aliases=("a.mesos", "mesos", "x.example", "y.x.example", "x.example"))
    table = compile_answers(record_set(), s, SERIAL, random.Random(1))
    assert [wire.wire_to_text(v.domain) for v in table.aliases] == ["x.example."]


# -- configuration ---------------------------------------------------------


def config_of(**keys: Any) -> Any:
    doc = {"masters": ["10.0.0.11:5050"], "resolvers": ["8.8.8.8"], **keys}
    return parse_config(json.dumps(doc))[0]


def test_cluster_id_and_aliases_reach_the_dns_settings() -> None:
    c = config_of(clusterID=CLUSTER_ID, domainAliases=["Dc1.Example.Org"])
    assert dns_settings(c).aliases == (ALIAS, OTHER)
    assert dns_settings(config_of()).aliases == ()
    c = config_of(domain="Cluster.Local", clusterID="ABC")
    assert dns_settings(c).aliases == ("cluster.local.abc.dcos.directory",)


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ({"domainAliases": ["a.mesos"]}, "'a.mesos' lies inside the Mesos domain"),
        ({"domain": "a.b", "domainAliases": ["b"]}, "'b' overlaps 'a.b'"),
        ({"domainAliases": ["x.org", "y.x.org"]}, "'y.x.org' overlaps 'x.org'"),
        ({"clusterID": "a.b"}, "clusterID: 'a.b' is not a valid DNS label"),
        ({"clusterID": "a_b"}, "clusterID: 'a_b' is not a valid DNS label"),
        ({"clusterID": "x" * 64}, "is not a valid DNS label"),
        ({"clusterID": "c1", "domainAliases": ["mesos.c1.dcos.directory"]}, "duplicate domain"),
        ({"clusterID": "c1", "domainAliases": ["dcos.directory"]}, "overlaps"),
        (
            {"domainAliases": ["x.org"], "zoneResolvers": {"a.x.org": ["10.0.0.1"]}},
            "zoneResolvers: zone 'a.x.org': overlaps the domain alias 'x.org'",
        ),
    ],
)
def test_config_refuses_overlapping_zones(keys: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as info:
        config_of(**keys)
    assert any(problem in p for p in info.value.problems), info.value.problems


# -- HTTP ------------------------------------------------------------------


def test_http_bodies_under_an_alias() -> None:
    rs = record_set()
    aliases = (ALIAS,)
    assert hosts_body(rs, f"NGINX-aaaaa-s1.marathon.{ALIAS}", aliases) == [
        {"host": f"nginx-aaaaa-s1.marathon.{ALIAS}.", "ip": "10.0.1.1"}
    ]
    assert hosts_body(rs, f"dual.marathon.{ALIAS}.", aliases) == [
        {"host": f"dual.marathon.{ALIAS}.", "ip": "10.0.2.1"},
        {"host": f"dual.marathon.{ALIAS}.", "ip": "fd00::2:1"},
    ]
    asked = f"_dual._tcp.marathon.{ALIAS}"
    assert services_body(rs, asked, aliases) == [
        {"service": asked, "host": f"dual.marathon.{ALIAS}.", "ip": ip, "port": "8080"}
        for ip in ("10.0.2.1", "fd00::2:1")
    ]
    assert hosts_body(rs, f"dual.marathon.{ALIAS}.") == [{"host": "", "ip": ""}]  # no aliases


class NoCounters:
    def as_dict(self) -> dict[str, int]:
        return {}


def test_http_api_resolves_alias_names() -> None:
    config = config_of(clusterID=CLUSTER_ID)
    counts: list[tuple[bool, bool]] = []

    async def main() -> None:
        store = SnapshotStore()
        store.publish(Snapshot(record_set(), SERIAL, source="test"))
        metrics = Metrics(NoCounters(), RefreshStats(), store)
        api = API(config, store, metrics, lambda d, f: counts.append((d, f)))
        async with TestClient(TestServer(api.app())) as client:
            resp = await client.get(f"/v1/hosts/leader.{ALIAS}")
            assert await resp.json() == [{"host": f"leader.{ALIAS}.", "ip": "10.0.0.11"}]
            resp = await client.get(f"/v1/services/_leader._tcp.{ALIAS}.")
            assert await resp.json() == [
                {
                    "service": f"_leader._tcp.{ALIAS}.",
                    "host": f"leader.{ALIAS}.",
                    "ip": "10.0.0.11",
                    "port": "5050",
                }
            ]
            await client.get(f"/v1/hosts/nope.{ALIAS}")
            await client.get(f"/v1/hosts/www.{CLUSTER_ID}.dcos.directory")

    asyncio.run(asyncio.wait_for(main(), 20))
    assert counts == [(True, True), (True, True), (True, False), (False, False)]
