"""Zone transfers of operator zones (``zones``), and the RFC corner cases of
transfer requests: AXFR and IXFR from the real server on loopback (the App
over a fake master, through the replica as the workers do), read with
dnspython and compared with what the same server answers over DNS.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from typing import Any

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
import dns.tsig
import dns.zone
import pytest
from dns_support import raw_tcp
from xfr_support import (
    KEYNAME,
    KEYRING,
    ROOT,
    SECRET,
    Cluster,
    answer_texts,
    messages,
    soa_serial,
    transfer,
    zone_texts,
)

pytestmark = pytest.mark.timeout(120)

ZONE_FILE = ROOT / "fixtures" / "zones" / "example.com.zone"
SKIPPED_TYPES = {"CAA", "HINFO"}  # the importer skips them (docs/zones.md)
ZONES: list[dict[str, Any]] = [
    {"name": "file", "origin": "example.com", "file": str(ZONE_FILE)},
    {"name": "apps", "origin": "apps.example", "ttl": 120, "records": [
        {"type": "A", "name": "eval:{task.name}.apps.example", "value": "{task.ip}"},
        {"type": "A", "name": "static", "value": "192.0.2.99", "ttl": 30},
        {"type": "CNAME", "name": "alias", "value": "static"},
        {"type": "TXT", "name": "*.wild", "value": "any name"},
    ]},
    # one origin, three zones: the client (127.0.0.1) is outside the first's filters
    {"name": "corp-10", "origin": "corp.example", "priority": 10,
     "filters": [{"type": "pktsrc", "filter": "10.1.0.0/16"}],
     "records": [{"type": "A", "name": "proxy", "value": "10.1.0.80"}]},
    {"name": "corp-lo", "origin": "corp.example", "priority": 15,
     "filters": [{"type": "pktsrc", "filter": "127.0.0.0/8"}],
     "records": [{"type": "A", "name": "proxy", "value": "127.0.0.80"}]},
    {"name": "corp", "origin": "corp.example", "priority": 20,
     "records": [{"type": "A", "name": "proxy", "value": "10.0.0.80"}]},
    {"name": "hidden", "origin": "hidden.example",
     "filters": [{"type": "pktsrc", "filter": "10.9.0.0/16"}],
     "records": [{"type": "A", "name": "a", "value": "10.9.0.1"}]},
    {"name": "fwd", "origin": "fwd.example", "forwarders": ["127.0.0.1:9"]},
]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster(
        reversePTR=True,
        zones=ZONES,
        zoneTransfer={"allow": ["127.0.0.0/8"],
                      "tsig": {"name": KEYNAME, "algorithm": "hmac-sha256", "secret": SECRET}},
    )
    yield c
    c.close()


def signed(name: str, rdtype: str) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype)
    q.use_tsig(KEYRING, keyname=KEYNAME)
    return q


def asked(port: int, name: str, rdtype: str) -> set[str]:
    """What the server answers for (name, type) over TCP: the records of
    that type owned by that name, as texts."""
    r = dns.query.tcp(dns.message.make_query(name, rdtype), "127.0.0.1", port=port, timeout=2)
    assert r.rcode() == dns.rcode.NOERROR, (name, rdtype, r)
    want = dns.name.from_text(name)
    return {
        f"{rrset.name} {rrset.ttl} {dns.rdatatype.to_text(rrset.rdtype)} "
        f"{rr.to_text(origin=None, relativize=False)}"
        for rrset in r.answer
        if rrset.rdtype == dns.rdatatype.from_text(rdtype) and rrset.name == want
        for rr in rrset
    }


def assert_is_what_dns_answers(port: int, texts: set[str]) -> None:
    """Every (owner, type) of a transferred zone, asked over DNS, gives
    exactly the transfer's records."""
    groups: dict[tuple[str, str], set[str]] = {}
    for t in texts:
        owner, _, rdtype, _ = t.split(" ", 3)
        groups.setdefault((owner, rdtype), set()).add(t)
    for (owner, rdtype), want in groups.items():
        assert asked(port, owner, rdtype) == want, (owner, rdtype)


def counters(c: Cluster) -> dict[str, int]:
    transfers = c.app.dns.transfers
    assert transfers is not None
    return dict(c.lt.call(transfers.stats.as_dict))


# -- AXFR ------------------------------------------------------------------------


def test_axfr_of_a_zone_file_zone_is_the_file_and_what_dns_answers(cluster: Cluster) -> None:
    before = counters(cluster)["XfrAXFR"]
    z = transfer(cluster.port, "example.com.")
    texts = zone_texts(z)
    expected = dns.zone.from_file(str(ZONE_FILE), origin="example.com.", relativize=False)
    want = {t for t in zone_texts(expected) if t.split(" ")[2] not in SKIPPED_TYPES}
    assert texts == want
    assert soa_serial(z) == 2024031501  # the file's own
    assert "*.apps.example.com. 3600 A 192.0.2.50" in texts  # a wildcard owner, as it is
    assert "www.example.com. 300 CNAME example.com." in texts
    # automatic PTRs (2.0.192.in-addr.arpa.) are answered, but outside the zone
    assert not any("in-addr.arpa." in t.split(" ")[0] for t in texts)
    assert asked(cluster.port, "2.2.0.192.in-addr.arpa.", "PTR") == {
        "2.2.0.192.in-addr.arpa. 3600 PTR ns1.example.com."}
    assert_is_what_dns_answers(cluster.port, texts)
    assert counters(cluster)["XfrAXFR"] == before + 1


def test_axfr_of_a_templated_zone_holds_the_expanded_records(cluster: Cluster) -> None:
    z = transfer(cluster.port, "apps.example.")
    texts = zone_texts(z)
    assert soa_serial(z) == cluster.serial  # a generated SOA: the cluster's serial
    nginx = {t for t in texts if t.startswith("nginx.apps.example. 120 A ")}
    ips = {rr.split(" ")[-1] for rr in asked(cluster.port, "nginx.marathon.mesos.", "A")}
    assert ips and {t.split(" ")[-1] for t in nginx} == ips  # one per task address
    assert "static.apps.example. 30 A 192.0.2.99" in texts
    assert "alias.apps.example. 120 CNAME static.apps.example." in texts
    assert '*.wild.apps.example. 120 TXT "any name"' in texts
    owners = {t.split(" ")[0] for t in texts}
    assert all(o.endswith("apps.example.") for o in owners)
    assert_is_what_dns_answers(cluster.port, texts)


def test_axfr_messages_are_signed_and_hold_the_soa_first_and_last_only(cluster: Cluster) -> None:
    msgs = messages(cluster.port, "example.com.")  # dnspython verifies each TSIG
    assert all(m.had_tsig for m in msgs)
    rrs = answer_texts(msgs)
    assert " SOA " in rrs[0] and rrs[0] == rrs[-1]
    assert sum(" SOA " in t for t in rrs) == 2
    assert msgs[0].flags & dns.flags.AA


def test_the_first_zone_that_admits_the_client_is_transferred(cluster: Cluster) -> None:
    texts = zone_texts(transfer(cluster.port, "corp.example."))
    assert {t for t in texts if " A " in t} == {"proxy.corp.example. 3600 A 127.0.0.80"}
    assert asked(cluster.port, "proxy.corp.example.", "A") == {
        "proxy.corp.example. 3600 A 127.0.0.80"}


@pytest.mark.parametrize("name", [
    "hidden.example.",  # its only zone's filters leave the client out
    "fwd.example.",  # forwarders only: not authoritative
    "www.example.com.",  # a name in a zone, not its origin
    "in-addr.arpa.",  # the cluster's reverse PTR records are no zone
    "2.2.0.192.in-addr.arpa.",  # automatic PTRs neither
    "example.",  # above the zones
])
def test_a_name_that_is_no_transferable_zone_origin_is_notauth(
    cluster: Cluster, name: str
) -> None:
    before = counters(cluster)["XfrNotAuth"]
    for rdtype in ("AXFR", "IXFR"):
        r = dns.query.tcp(signed(name, rdtype), "127.0.0.1", port=cluster.port, timeout=2)
        assert r.rcode() == dns.rcode.NOTAUTH and r.had_tsig and r.answer == [], (name, rdtype)
    assert counters(cluster)["XfrNotAuth"] == before + 2


def test_unsigned_transfer_of_an_operator_zone_is_refused(cluster: Cluster) -> None:
    before = counters(cluster)["XfrRefused"]
    for rdtype in ("AXFR", "IXFR"):
        q = dns.message.make_query("example.com.", rdtype)
        r = dns.query.tcp(q, "127.0.0.1", port=cluster.port, timeout=2)
        assert r.rcode() == dns.rcode.REFUSED and r.answer == []
    assert counters(cluster)["XfrRefused"] == before + 2


def test_a_signed_soa_question_for_an_operator_zone_is_answered_and_signed(
    cluster: Cluster,
) -> None:
    # a secondary's refresh: the SOA over UDP, signed with the transfer key
    r = dns.query.udp(signed("example.com.", "SOA"), "127.0.0.1", port=cluster.port, timeout=2)
    assert r.rcode() == dns.rcode.NOERROR and r.had_tsig
    assert r.answer[0][0].serial == 2024031501
    # a name the zone would forward is still refused (not ours to sign)
    r = dns.query.udp(signed("x.fwd.example.", "A"), "127.0.0.1", port=cluster.port, timeout=2)
    assert r.rcode() == dns.rcode.REFUSED and r.had_tsig


# -- IXFR ------------------------------------------------------------------------


def test_ixfr_from_the_current_serial_is_the_soa_alone(cluster: Cluster) -> None:
    before = counters(cluster)
    msgs = messages(cluster.port, "example.com.", "IXFR", serial=2024031501)
    assert answer_texts(msgs) == [answer_texts(msgs)[0]] and " SOA " in answer_texts(msgs)[0]
    after = counters(cluster)
    assert after["XfrIXFR"] == before["XfrIXFR"] + 1
    assert after["XfrIXFRFull"] == before["XfrIXFRFull"]


def test_ixfr_from_an_older_serial_is_the_whole_zone(cluster: Cluster) -> None:
    before = counters(cluster)["XfrIXFRFull"]
    full = zone_texts(transfer(cluster.port, "apps.example."))
    msgs = messages(cluster.port, "apps.example.", "IXFR", serial=cluster.serial - 5)
    rrs = answer_texts(msgs)
    assert rrs[0] == rrs[-1] and sum(" SOA " in t for t in rrs) == 2  # AXFR form
    assert {t.lower() for t in rrs} == {t.lower() for t in full}
    assert counters(cluster)["XfrIXFRFull"] == before + 1


@pytest.mark.parametrize("serial", [1, 2024031501])
def test_ixfr_over_udp_is_the_current_soa(cluster: Cluster, serial: int) -> None:
    q = dns.message.make_query("example.com.", "IXFR")
    q.authority.append(dns.rrset.from_text(
        "example.com.", 0, "IN", "SOA", f". . {serial} 0 0 0 0"))
    q.use_tsig(KEYRING, keyname=KEYNAME)
    r = dns.query.udp(q, "127.0.0.1", port=cluster.port, timeout=2)
    assert r.rcode() == dns.rcode.NOERROR and r.had_tsig
    assert [rrset.rdtype for rrset in r.answer] == [dns.rdatatype.SOA]
    assert r.answer[0][0].serial == 2024031501


def test_axfr_of_an_operator_zone_over_udp_is_notimp(cluster: Cluster) -> None:
    r = dns.query.udp(signed("example.com.", "AXFR"), "127.0.0.1", port=cluster.port, timeout=2)
    assert r.rcode() == dns.rcode.NOTIMP


# -- RFC 5936 section 2.2.1: one question ------------------------------------------


@pytest.mark.parametrize("origin", ["mesos.", "example.com."])
def test_a_transfer_request_with_two_questions_is_formerr(cluster: Cluster, origin: str) -> None:
    before = counters(cluster)["XfrFormErr"]
    q = dns.message.make_query(origin, "AXFR")
    q.question.append(dns.rrset.RRset(dns.name.from_text(origin), dns.rdataclass.IN,
                                      dns.rdatatype.SOA))
    q.use_tsig(KEYRING, keyname=KEYNAME)
    wire = q.to_wire()
    assert wire[4:6] == b"\x00\x02"
    (reply,) = raw_tcp(cluster.port, [wire], 1)
    r = dns.message.from_wire(reply, keyring=False)
    assert r.rcode() == dns.rcode.FORMERR and r.id == q.id and r.answer == []
    assert counters(cluster)["XfrFormErr"] == before + 1
    # the same request with its one question is served
    assert " SOA " in answer_texts(messages(cluster.port, origin))[0]


# -- RFC 8945 section 5.2.2.1: truncated MACs ----------------------------------------


def truncated(name: str, rdtype: str, size: int) -> tuple[dns.message.Message, bytes]:
    """A request signed with the key by dnspython, its MAC then cut to
    ``size`` octets (what a signer that truncates sends: the MAC covers
    neither itself nor its size)."""
    q = signed(name, rdtype)
    wire = q.to_wire()
    full = len(q.mac)
    owner = dns.name.from_text(KEYNAME).to_wire()
    start = wire.rindex(owner) + len(owner)  # type, class, TTL, RDLENGTH, rdata
    rdata_at = start + 10
    mac_at = rdata_at + len(dns.tsig.HMAC_SHA256.to_wire()) + 10  # time, fudge, size
    assert wire[mac_at : mac_at + full] == q.mac
    rdata = (wire[rdata_at : mac_at - 2] + struct.pack(">H", size) + q.mac[:size]
             + wire[mac_at + full :])
    return q, wire[: start + 8] + struct.pack(">H", len(rdata)) + rdata


def reply_mac_verifies(reply: bytes, request_mac: bytes) -> bool:
    """Does the reply's MAC match dnspython's digest of the reply without its
    TSIG record, chained to the (truncated) request MAC?"""
    m = dns.message.from_wire(reply, keyring=False)
    rd = m.tsig[0]
    key = dns.tsig.Key(KEYNAME, SECRET, "hmac-sha256")
    start = reply.rindex(dns.name.from_text(KEYNAME).to_wire())
    unsigned = reply[:10] + struct.pack(">H", (reply[10] << 8 | reply[11]) - 1) + reply[12:start]
    expected, _ = dns.tsig.sign(unsigned, key, rd, rd.time_signed, request_mac)
    return bool(expected.mac == rd.mac) and len(rd.mac) == 32


def test_a_mac_truncated_within_the_limits_gets_a_signed_badtrunc(cluster: Cluster) -> None:
    before = counters(cluster)["XfrTSIGErrors"]
    q, wire = truncated("example.com.", "AXFR", 16)  # hmac-sha256: 32, at least 16
    (reply,) = raw_tcp(cluster.port, [wire], 1)
    m = dns.message.from_wire(reply, keyring=False)
    assert m.rcode() == dns.rcode.NOTAUTH and m.id == q.id and m.answer == []
    assert m.tsig[0].error == dns.rcode.BADTRUNC
    assert reply_mac_verifies(reply, q.tsig[0].mac[:16])
    assert counters(cluster)["XfrTSIGErrors"] == before + 1


def test_a_truncated_mac_that_does_not_match_is_badsig(cluster: Cluster) -> None:
    _, wire = truncated("example.com.", "AXFR", 20)
    i = len(wire) - 6 - 1  # the MAC's last octet (before original id, error, other len)
    bad = wire[:i] + bytes([wire[i] ^ 1]) + wire[i + 1 :]
    (reply,) = raw_tcp(cluster.port, [bad], 1)
    m = dns.message.from_wire(reply, keyring=False)
    assert m.rcode() == dns.rcode.NOTAUTH and m.tsig[0].error == dns.rcode.BADSIG
    assert m.tsig[0].mac == b""  # unsigned


@pytest.mark.parametrize("size", [0, 9, 15])
def test_a_mac_shorter_than_the_limits_is_formerr(cluster: Cluster, size: int) -> None:
    _, wire = truncated("example.com.", "AXFR", size)
    (reply,) = raw_tcp(cluster.port, [wire], 1)
    assert dns.message.from_wire(reply, question_only=True).rcode() == dns.rcode.FORMERR


def test_the_truncation_rules_apply_to_every_signed_question(cluster: Cluster) -> None:
    _, wire = truncated("leader.mesos.", "A", 16)
    (reply,) = raw_tcp(cluster.port, [wire], 1)
    m = dns.message.from_wire(reply, keyring=False)
    assert m.rcode() == dns.rcode.NOTAUTH and m.tsig[0].error == dns.rcode.BADTRUNC

