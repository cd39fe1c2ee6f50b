"""TSIG (RFC 8945) with ``zoneTransfer.tsig``: signed questions get signed
replies, bad keys, MACs and times get NOTAUTH with the TSIG error, broken
TSIG records never crash the server; ``dig -y`` transfers the zone.

The server runs alone on loopback on the hand-made record set; dnspython
(and dig) sign and verify, independently of the server's own code.
"""

from __future__ import annotations

import base64
import random
import socket
import struct
import subprocess
import time
from collections.abc import Callable, Iterator

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TSIG
import dns.rrset
import dns.tsig
import dns.tsigkeyring
import dns.xfr
import dns.zone
import pytest
from dns_support import ServerThread, raw_tcp, raw_udp, settings
from xfr_support import answer_texts, messages, zone_texts

from mesosdns.dns.settings import TransferSettings, TSIGKey

pytestmark = pytest.mark.timeout(60)

SECRET = b"\x01\x02mesosdns-tsig-test-secret\xfe\xff"
B64 = base64.b64encode(SECRET).decode()
NAME = "xfr-key"
ALGORITHMS = ["hmac-sha256", "hmac-sha512", "hmac-sha384", "hmac-sha224", "hmac-sha1",
              "hmac-md5.sig-alg.reg.int"]


def keyring(name: str = NAME, secret: bytes = SECRET, algorithm: str = "hmac-sha256") -> dict[
    dns.name.Name, dns.tsig.Key
]:
    return {dns.name.from_text(name): dns.tsig.Key(name, secret, algorithm)}


def server(algorithm: str = "hmac-sha256") -> ServerThread:
    key = TSIGKey(NAME + ".", dns.name.from_text(algorithm).to_text().lower(), SECRET)
    return ServerThread(settings(transfer=TransferSettings(allow=("127.0.0.0/8",), tsig=key)))


@pytest.fixture(scope="module")
def srv() -> Iterator[ServerThread]:
    s = server()
    yield s
    s.close()


def unverified(data: bytes) -> dns.message.Message:
    """A reply read without checking its TSIG (to see its error field)."""
    return dns.message.from_wire(data, keyring=False)


def sign_at(q: dns.message.Message, when: int, secret: bytes = SECRET) -> bytes:
    """``q`` signed at Unix time ``when`` (dnspython's sign, our own framing)."""
    key = dns.tsig.Key(NAME, secret, "hmac-sha256")
    wire = q.to_wire()
    rdata = dns.rdtypes.ANY.TSIG.TSIG(dns.rdataclass.ANY, dns.rdatatype.TSIG, key.algorithm,
                                      when, 300, b"", q.id, 0, b"")
    tsig, _ = dns.tsig.sign(wire, key, rdata, when)  # type: ignore[no-untyped-call]
    rd = tsig.to_wire()
    rr = key.name.to_wire() + struct.pack(">HHIH", 250, 255, 0, len(rd)) + rd
    arcount = struct.unpack(">H", wire[10:12])[0] + 1
    return wire[:10] + struct.pack(">H", arcount) + wire[12:] + rr


# -- signed questions -----------------------------------------------------------


@pytest.mark.parametrize("algorithm", ALGORITHMS)
def test_signed_udp_soa_query_gets_a_reply_signed_with_the_key(algorithm: str) -> None:
    s = server(algorithm)
    try:
        q = dns.message.make_query("mesos.", "SOA")
        q.use_tsig(keyring(algorithm=algorithm), keyname=NAME, algorithm=algorithm)
        r = dns.query.udp(q, "127.0.0.1", port=s.port, timeout=2)  # verifies the MAC
        assert r.had_tsig and r.rcode() == dns.rcode.NOERROR
        assert r.tsig[0].algorithm == dns.name.from_text(algorithm)
        assert [x.rdtype for x in r.answer] == [dns.rdatatype.SOA]  # in the answer
        zone = dns.zone.Zone("mesos.")
        q, _ = dns.xfr.make_query(zone, keyring=keyring(algorithm=algorithm),
                                  keyname=dns.name.from_text(NAME), keyalgorithm=algorithm)
        dns.query.inbound_xfr("127.0.0.1", zone, q, port=s.port, timeout=5)
        assert any(" A 10.0.1.1" in t for t in zone_texts(zone))
    finally:
        s.close()


@pytest.mark.parametrize("tcp", [False, True])
def test_signed_questions_of_every_kind_get_signed_replies(srv: ServerThread, tcp: bool) -> None:
    send = dns.query.tcp if tcp else dns.query.udp
    for name, rdtype, rcode in [
        ("nginx.marathon.mesos.", "A", dns.rcode.NOERROR),
        ("_nginx._tcp.marathon.mesos.", "SRV", dns.rcode.NOERROR),
        ("missing.mesos.", "A", dns.rcode.NXDOMAIN),
        ("mesos.", "NS", dns.rcode.NOERROR),
        ("Nginx.Marathon.Mesos.", "A", dns.rcode.NOERROR),
        ("example.com.", "A", dns.rcode.REFUSED),  # outside: not forwarded signed
    ]:
        q = dns.message.make_query(name, rdtype, use_edns=0)
        q.use_tsig(keyring(), keyname=NAME)
        r = send(q, "127.0.0.1", port=srv.port, timeout=2)
        assert r.had_tsig and r.rcode() == rcode, (name, rdtype)


def test_a_truncated_signed_udp_reply_leaves_room_for_its_tsig(srv: ServerThread) -> None:
    q = dns.message.make_query("many.marathon.mesos.", "A")  # 40 addresses: over 512
    q.use_tsig(keyring(), keyname=NAME)
    data = raw_udp(srv.port, q.to_wire())
    assert data is not None and len(data) <= 512
    r = dns.message.from_wire(data, keyring=keyring(), request_mac=q.mac)  # verifies
    assert r.flags & dns.flags.TC and r.had_tsig
    assert 0 < len(r.answer[0]) < 40


def test_signed_axfr_through_dig(srv: ServerThread, require_tool: Callable[[str], str]) -> None:
    dig = require_tool("dig")
    out = subprocess.run(
        [dig, "@127.0.0.1", "-p", str(srv.port), "-y", f"hmac-sha256:{NAME}:{B64}", "axfr",
         "mesos.", "+nocomments", "+nostats", "+nocmd"],
        capture_output=True, text=True, timeout=20, check=True,
    ).stdout
    lines = [ln for ln in out.splitlines() if ln and not ln.startswith(";")]
    records = [ln for ln in lines if "\tTSIG\t" not in ln.replace(" ", "\t")]
    assert "failed" not in out.lower() and "tsig verify" not in out.lower(), out
    assert sum(1 for ln in lines if "TSIG" in ln) >= 1, out  # dig shows the signature
    dnspython = answer_texts(messages(srv.port, "mesos.", keyring=keyring(), keyname=NAME))
    assert len(records) == len(dnspython), out


# -- errors ---------------------------------------------------------------------


@pytest.mark.parametrize("tcp", [False, True])
def test_unknown_key_gets_notauth_badkey(srv: ServerThread, tcp: bool) -> None:
    for rdtype in ("SOA", "AXFR"):
        q = dns.message.make_query("mesos.", rdtype)
        q.use_tsig(keyring("other-key"), keyname="other-key")
        data = (raw_tcp(srv.port, [q.to_wire()], 1)[0] if tcp
                else raw_udp(srv.port, q.to_wire()))
        assert data is not None
        r = unverified(data)
        assert r.rcode() == dns.rcode.NOTAUTH and r.tsig_error == dns.rcode.BADKEY
        assert r.tsig[0].mac == b"" and r.answer == []
        with pytest.raises(dns.tsig.PeerBadKey):
            (dns.query.tcp if tcp else dns.query.udp)(q, "127.0.0.1", port=srv.port, timeout=2)


def test_other_algorithm_gets_badkey(srv: ServerThread) -> None:
    q = dns.message.make_query("mesos.", "SOA")
    q.use_tsig(keyring(algorithm="hmac-sha512"), keyname=NAME, algorithm="hmac-sha512")
    r = unverified(raw_udp(srv.port, q.to_wire()) or b"")
    assert r.rcode() == dns.rcode.NOTAUTH and r.tsig_error == dns.rcode.BADKEY


def test_bad_mac_gets_notauth_badsig(srv: ServerThread) -> None:
    for rdtype in ("A", "AXFR"):
        q = dns.message.make_query("nginx.marathon.mesos.", rdtype)
        q.use_tsig(keyring(secret=b"another secret entirely"), keyname=NAME)
        r = unverified(raw_tcp(srv.port, [q.to_wire()], 1)[0])
        assert r.rcode() == dns.rcode.NOTAUTH and r.tsig_error == dns.rcode.BADSIG
        assert r.tsig[0].mac == b"" and r.answer == []
    # a message changed after signing
    q = dns.message.make_query("nginx.marathon.mesos.", "A")
    q.use_tsig(keyring(), keyname=NAME)
    wire = bytearray(q.to_wire())
    wire[2] ^= 0x01  # the RD bit
    r = unverified(raw_udp(srv.port, bytes(wire)) or b"")
    assert r.tsig_error == dns.rcode.BADSIG


def test_time_outside_the_fudge_gets_badtime_signed(srv: ServerThread) -> None:
    now = int(time.time())
    q = dns.message.make_query("mesos.", "SOA")
    data = raw_udp(srv.port, sign_at(q, now - 1000))
    assert data is not None
    r = unverified(data)
    assert r.rcode() == dns.rcode.NOTAUTH and r.tsig_error == dns.rcode.BADTIME
    tsig = r.tsig[0]
    assert tsig.mac != b"" and tsig.time_signed == now - 1000
    server_time = int.from_bytes(tsig.other, "big")
    assert len(tsig.other) == 6 and abs(server_time - now) < 60
    # within the fudge it verifies
    q = dns.message.make_query("mesos.", "SOA")
    r = unverified(raw_udp(srv.port, sign_at(q, now - 100)) or b"")
    assert r.rcode() == dns.rcode.NOERROR and r.tsig_error == 0


# -- malformed TSIG records never crash --------------------------------------------


def test_a_tsig_record_that_is_not_last_is_formerr(srv: ServerThread) -> None:
    q = dns.message.make_query("nginx.marathon.mesos.", "A")
    q.use_tsig(keyring(), keyname=NAME)
    wire = q.to_wire()
    opt = b"\x00" + struct.pack(">HHIH", 41, 1232, 0, 0)  # an OPT record after the TSIG
    arcount = struct.unpack(">H", wire[10:12])[0] + 1
    data = raw_udp(srv.port, wire[:10] + struct.pack(">H", arcount) + wire[12:] + opt)
    assert data is not None and data[3] & 0x0F == dns.rcode.FORMERR


def test_broken_tsig_records_get_formerr_or_nothing_and_the_server_goes_on(
    srv: ServerThread,
) -> None:
    rng = random.Random(8945)
    base = dns.message.make_query("mesos.", "AXFR")
    base.use_tsig(keyring(), keyname=NAME)
    wire = base.to_wire()
    start = wire.index(dns.name.from_text(NAME).to_wire(), 12 + 10)
    cases = [wire[:n] for n in range(start, len(wire))]  # cut anywhere in the TSIG
    for _ in range(300):  # bytes of the TSIG record changed at random
        b = bytearray(wire)
        for _ in range(rng.randint(1, 4)):
            b[rng.randrange(start, len(b))] = rng.randrange(256)
        cases.append(bytes(b))
    # the TSIG's rdata length and MAC size lying
    cases.append(wire[:start + len(dns.name.from_text(NAME).to_wire()) + 8] + b"\xff\xff"
                 + wire[start + len(dns.name.from_text(NAME).to_wire()) + 10:])
    for case in cases:
        data = raw_udp(srv.port, case, timeout=0.5)
        if data is not None:
            assert data[:2] == case[:2]
            assert data[3] & 0x0F in (dns.rcode.FORMERR, dns.rcode.NOTAUTH, dns.rcode.NOERROR,
                                      dns.rcode.NOTIMP, dns.rcode.REFUSED)
    last = dns.message.make_query("mesos.", "SOA")
    last.use_tsig(keyring(), keyname=NAME)
    with socket.create_connection(("127.0.0.1", srv.port), timeout=5) as sock:
        for case in [*cases[:80], last.to_wire()]:  # over TCP too, on one connection
            sock.sendall(struct.pack(">H", len(case)) + case)
        buf = b""
        while True:  # until the reply to the last one (replies come in order)
            while len(buf) < 2 or len(buf) < 2 + struct.unpack(">H", buf[:2])[0]:
                chunk = sock.recv(65536)
                assert chunk
                buf += chunk
            size = struct.unpack(">H", buf[:2])[0]
            reply, buf = buf[2 : 2 + size], buf[2 + size :]
            if reply[:2] == last.to_wire()[:2] and reply[3] & 0x0F == 0:
                break
    stats = srv.stats()
    assert stats["Errors"] == 0, stats
    q = dns.message.make_query("mesos.", "SOA")
    q.use_tsig(keyring(), keyname=NAME)
    assert dns.query.udp(q, "127.0.0.1", port=srv.port, timeout=2).had_tsig


def test_truncated_transfer_requests_never_crash(srv: ServerThread) -> None:
    for rdtype in ("AXFR", "IXFR"):
        q = dns.message.make_query("mesos.", rdtype)
        if rdtype == "IXFR":
            q.authority.append(dns.rrset.from_text(
                "mesos.", 0, "IN", "SOA", "ns1.mesos. root.ns1.mesos. 5 1 1 1 1"))
        q.use_tsig(keyring(), keyname=NAME)
        wire = q.to_wire()
        for n in range(12, len(wire)):
            data = raw_udp(srv.port, wire[:n], timeout=0.5)
            assert data is None or data[3] & 0x0F in (
                dns.rcode.FORMERR, dns.rcode.NOTAUTH, dns.rcode.REFUSED, dns.rcode.NOERROR,
                dns.rcode.NXDOMAIN, dns.rcode.NOTIMP, dns.rcode.SERVFAIL), (rdtype, n, data)
    # (SERVFAIL: a header without its question, as the original answers it)
    # an IXFR without the client's SOA
    q = dns.message.make_query("mesos.", "IXFR")
    q.use_tsig(keyring(), keyname=NAME)
    data = raw_tcp(srv.port, [q.to_wire()], 1)[0]
    assert data[3] & 0x0F == dns.rcode.FORMERR
    assert srv.stats()["Errors"] == 0
