"""Zone-file import: real-world zone files (fixtures/zones/), checked against
dnspython's zone parser record for record, and the errors a bad file gives."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import dns.rdatatype
import dns.zone
import pytest

from mesosdns.zones.records import RTYPES
from mesosdns.zones.zonefile import ZoneFileError, parse_zone_text, tokenize

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "zones"

FILES = {
    "example.com.zone": "example.com.",
    "2.0.192.in-addr.arpa.zone": "2.0.192.in-addr.arpa.",
    "db.8.b.d.0.1.0.0.2.ip6.arpa": "8.b.d.0.1.0.0.2.ip6.arpa.",
    "route53-export.zone": "corp.example.org.",
    "legacy-no-ttl.zone": "legacy.test.",
}

Key = tuple[str, int, str, bytes]


def ours(text: str, origin: str) -> set[Key]:
    return {
        (rr.name.lower(), rr.ttl, rr.rtype, rr.rdata)
        for rr in parse_zone_text(text, origin).records
    }


def dnspython(text: str, origin: str) -> set[Key]:
    zone = dns.zone.from_text(text, origin=origin, relativize=False, check_origin=False)
    out: set[Key] = set()
    for name, rdataset in zone.iterate_rdatasets():
        rtype = dns.rdatatype.to_text(rdataset.rdtype)
        if rtype in RTYPES:
            out.update(
                (name.to_text().lower(), rdataset.ttl, rtype, rd.to_wire()) for rd in rdataset
            )
    return out


@pytest.mark.parametrize(("filename", "origin"), FILES.items())
def test_fixture_matches_dnspython(filename: str, origin: str) -> None:
    text = (FIXTURES / filename).read_text()
    mine = ours(text, origin)
    assert mine == dnspython(text, origin)
    assert len(mine) >= 5


def records(filename: str) -> list[str]:
    text = (FIXTURES / filename).read_text()
    return [str(rr) for rr in parse_zone_text(text, FILES[filename]).records]


def test_example_com() -> None:
    got = records("example.com.zone")
    assert got[0] == (
        "example.com. 3600 IN SOA ns1.example.com. hostmaster.example.com. "
        "2024031501 10800 900 1209600 300"
    )
    for line in [
        "example.com. 3600 IN NS ns1.example.com.",
        "example.com. 3600 IN NS ns2.example.net.",
        "example.com. 3600 IN MX 10 mail.example.com.",
        "example.com. 3600 IN AAAA 2001:db8::1",
        'example.com. 3600 IN TXT "v=spf1 mx ip4:192.0.2.0/24 -all"',
        "mail.example.com. 3600 IN AAAA 2001:db8::3",  # blank owner: the previous one
        "www.example.com. 300 IN CNAME example.com.",
        "ftp.example.com. 3600 IN CNAME www.example.com.",
        "host1.example.com. 3600 IN A 192.0.2.11",
        "host2.example.com. 86400 IN A 192.0.2.12",  # class before TTL, TTL in days
        'sel1._domainkey.example.com. 3600 IN TXT "v=DKIM1; k=rsa; " '
        '"p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQC5/mesosdns/test/key"',
        "_sip._tcp.example.com. 3600 IN SRV 10 40 5060 sip2.example.com.",
        "*.apps.example.com. 3600 IN A 192.0.2.50",
        "build.lab.example.com. 3600 IN A 192.0.2.60",  # after $ORIGIN lab.example.com.
        "ci.lab.example.com. 3600 IN CNAME build.lab.example.com.",
    ]:
        assert line in got
    assert not any(" CAA " in r or " HINFO " in r for r in got)


def test_unsupported_types_are_warnings() -> None:
    parsed = parse_zone_text((FIXTURES / "example.com.zone").read_text(), "example.com.")
    assert parsed.warnings == [
        "line 20: record type CAA is not supported; example.com. CAA skipped",
        "line 27: record type HINFO is not supported; host1.example.com. HINFO skipped",
    ]


def test_legacy_file_without_ttl_directive() -> None:
    assert records("legacy-no-ttl.zone") == [
        "legacy.test. 86400 IN SOA ns.legacy.test. root.legacy.test. "
        "1999010101 28800 7200 604800 86400",
        "legacy.test. 86400 IN NS ns.legacy.test.",  # the SOA's MINIMUM
        "ns.legacy.test. 86400 IN A 203.0.113.1",
        "www.legacy.test. 3600 IN A 203.0.113.2",
        "ftp.legacy.test. 3600 IN A 203.0.113.3",  # the last TTL written
    ]


def test_ipv6_reverse_names() -> None:
    got = records("db.8.b.d.0.1.0.0.2.ip6.arpa")
    name = ipaddress.ip_address("2001:db8::1").reverse_pointer
    assert f"{name}. 7200 IN PTR example.com." in got


def test_escapes_in_quoted_strings() -> None:
    got = records("route53-export.zone")
    assert 'txt.corp.example.org. 300 IN TXT "a \\"quoted\\" word" "semi;colon" "ABC"' in got


def test_out_of_zone_records_are_skipped() -> None:
    parsed = parse_zone_text("a 1 IN A 192.0.2.1\nb.other. 1 IN A 192.0.2.2\n", "z.test.")
    assert [str(r) for r in parsed.records] == ["a.z.test. 1 IN A 192.0.2.1"]
    assert parsed.warnings == ["line 2: b.other. is outside the zone z.test.; skipped"]


BAD_FILES = [
    ("  IN A 192.0.2.1\n", "line 1: no owner name (the first record needs one)"),
    ("a IN\n", "line 1: missing record type"),
    ("a 1 IN A\n", "line 1: missing value"),
    ("a IN CH A 192.0.2.1\n", "line 1: class CH is not supported (only IN)"),
    ("a IN 1.2 192.0.2.1\n", "line 1: invalid record type '1.2'"),
    ("\n\na IN A ( 192.0.2.1\n", "line 3: unbalanced '(' (not closed at the end of the file)"),
    ("a IN A 192.0.2.1 )\n", "line 1: unbalanced ')'"),
    ('a IN TXT "open\n', "line 1: unterminated quoted string"),
    ("$INCLUDE other.zone\n", "line 1: $INCLUDE is not supported"),
    ("$GENERATE 1-10 h$ A 10.0.0.$\n", "line 1: $GENERATE is not supported"),
    ("$FOO x\n", "line 1: unknown directive $FOO"),
    ("$TTL\n", "line 1: $TTL takes one TTL"),
    ("$TTL 1y\n", "line 1: invalid TTL '1y'"),
    ("$ORIGIN a..b.\n", "line 1: invalid domain name 'a..b.'"),
    ("a IN MX 10\n", "line 1: expected 'preference exchange'"),
    ("a IN SOA a b 1 2 3 4 x\n", "line 1: invalid minimum 'x'"),
    ("ok IN A 192.0.2.1\nbad IN AAAA 192.0.2.1\n", "line 2: invalid IPv6 address '192.0.2.1'"),
]


@pytest.mark.parametrize(("text", "message"), BAD_FILES)
def test_bad_files(text: str, message: str) -> None:
    with pytest.raises(ZoneFileError) as info:
        parse_zone_text(text, "z.test.")
    assert str(info.value) == message


def test_tokenize_values() -> None:
    assert [(t.text, t.quoted) for t in tokenize("10 mail")] == [("10", False), ("mail", False)]
    assert [(t.text, t.quoted) for t in tokenize('"a b" c\\ d')] == [
        ("a b", True),
        ("c\\ d", False),
    ]
    with pytest.raises(ValueError, match="line break"):
        tokenize("a\nb")
