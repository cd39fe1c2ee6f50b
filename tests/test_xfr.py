"""Zone transfers (``zoneTransfer``): AXFR and IXFR of the cluster domain and
its alias zones, from the real server on loopback, read with dnspython.

The cluster tests run the App (builder and server in one process, through
the replica as the workers do) against a fake master, with a TSIG key; the
record-set tests run the DNS server alone on a hand-made record set that
holds every kind of name and value the compiler leaves out.
"""

from __future__ import annotations

import random
import socket
import struct
from collections.abc import Iterator
from types import MappingProxyType

import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import dns.zone
import orjson
import pytest
from dns_support import SERIAL, ServerThread, compile_table, raw_tcp, record_set, settings
from test_stream import cluster as stream_cluster
from test_stream import task
from xfr_support import (
    KEYNAME,
    KEYRING,
    SECRET,
    Cluster,
    answer_texts,
    clone_task,
    messages,
    soa_serial,
    transfer,
    wait,
    zone_texts,
)

from mesosdns.dns.answers import compile_answers
from mesosdns.dns.settings import TransferSettings
from mesosdns.dns.xfr import MESSAGE_SIZE
from mesosdns.records.model import RecordSet, SRVTarget
from mesosdns.state.model import State, parse_state

pytestmark = pytest.mark.timeout(120)

TTL = 45  # the clusters' ttl
CLUSTER_ID = "c1d2"
ALIAS = f"mesos.{CLUSTER_ID}.dcos.directory."


@pytest.fixture(scope="module")
def cluster() -> Iterator[Cluster]:
    c = Cluster(
        clusterID=CLUSTER_ID,
        zoneTransfer={"allow": ["127.0.0.0/8"],
                      "tsig": {"name": KEYNAME, "algorithm": "hmac-sha256", "secret": SECRET}},
    )
    yield c
    c.close()


def dns_rrs(port: int, name: str, rdtype: str) -> set[str]:
    """What the server answers for (name, type) over TCP, as record texts."""
    r = dns.query.tcp(dns.message.make_query(name, rdtype), "127.0.0.1", port=port, timeout=2)
    assert r.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN), r
    return {
        f"{rrset.name} {rrset.ttl} {dns.rdatatype.to_text(rrset.rdtype)} "
        f"{rr.to_text(origin=None, relativize=False)}"
        for rrset in r.answer
        if rrset.rdtype == dns.rdatatype.from_text(rdtype)
        for rr in rrset
    }


def by_name_type(texts: set[str]) -> dict[tuple[str, str], set[str]]:
    out: dict[tuple[str, str], set[str]] = {}
    for t in texts:
        name, _, rdtype, _ = t.split(" ", 3)
        out.setdefault((name, rdtype), set()).add(t)
    return out


def assert_zone_is_what_dns_answers(port: int, texts: set[str], names: set[str]) -> None:
    """Every (name, type) of the zone is answered with exactly its records, and
    no other name of ``names`` answers A, AAAA or SRV."""
    groups = by_name_type(texts)
    for (name, rdtype), rrs in groups.items():
        assert dns_rrs(port, name, rdtype) == rrs, (name, rdtype)
    for name in names:
        for rdtype in ("A", "AAAA", "SRV"):
            if (name, rdtype) not in groups:
                assert dns_rrs(port, name, rdtype) == set(), (name, rdtype)


# -- the cluster domain and its alias, through the replica -----------------------


@pytest.mark.parametrize("origin", ["mesos.", ALIAS])
def test_axfr_holds_exactly_what_dns_answers(cluster: Cluster, origin: str) -> None:
    z = transfer(cluster.port, origin)
    texts = zone_texts(z)
    assert soa_serial(z) == cluster.serial
    assert {t.split(" ")[1] for t in texts} == {str(TTL)}  # every TTL is the config's
    soa = next(t for t in texts if " SOA " in t)
    assert soa.startswith(f"{origin} {TTL} SOA ns1.{origin} root.ns1.{origin} ")
    assert f"{origin} {TTL} NS ns1.{origin}" in texts
    assert any(t.startswith(f"nginx.marathon.{origin} {TTL} A ") for t in texts)
    assert any(f"_nginx._tcp.marathon.{origin} {TTL} SRV 0 1 " in t for t in texts)
    table = cluster.lt.call(lambda: cluster.app.dns.table)
    zone = table if origin == "mesos." else table.aliases[0]
    compiled = {dns.name.from_wire(w, 0)[0].to_text() for w in zone.names}
    owners = {t.split(" ")[0] for t in texts}
    assert owners - {origin} == compiled - {origin}  # the names the compiler keeps
    assert_zone_is_what_dns_answers(cluster.port, texts, compiled)


def test_axfr_messages_are_signed_and_start_and_end_with_the_soa(cluster: Cluster) -> None:
    msgs = messages(cluster.port, "mesos.")  # dnspython verifies each message's TSIG
    assert all(m.had_tsig for m in msgs)
    rrs = answer_texts(msgs)
    assert " SOA " in rrs[0] and " SOA " in rrs[-1] and rrs[0] == rrs[-1]
    assert " NS " in rrs[1]
    assert sum(" SOA " in t for t in rrs) == 2


def test_unsigned_transfer_is_refused_when_a_key_is_set(cluster: Cluster) -> None:
    for rdtype in ("AXFR", "IXFR"):
        q = dns.message.make_query("mesos.", rdtype)
        r = dns.query.tcp(q, "127.0.0.1", port=cluster.port, timeout=2)
        assert r.rcode() == dns.rcode.REFUSED and r.answer == []


def test_transfer_of_a_name_that_is_not_a_zone_apex_is_notauth(cluster: Cluster) -> None:
    for name in ("marathon.mesos.", "example.com.", "dcos.directory."):
        q = dns.message.make_query(name, "AXFR")
        q.use_tsig(KEYRING, keyname=KEYNAME)
        r = dns.query.tcp(q, "127.0.0.1", port=cluster.port, timeout=2)
        assert r.rcode() == dns.rcode.NOTAUTH and r.had_tsig, name


def test_ixfr_after_a_one_task_change_is_condensed_and_gives_the_new_zone(
    cluster: Cluster,
) -> None:
    old = transfer(cluster.port, "mesos.")
    old_alias = transfer(cluster.port, ALIAS)
    s0 = soa_serial(old)
    cluster.change(lambda state: clone_task(state, "ixfrweb", "10.0.9.9", 31999))
    wait(lambda: cluster.serial != s0, 10.0, "the new serial")
    s1 = cluster.serial
    msgs = messages(cluster.port, "mesos.", "IXFR", serial=s0)
    rrs = answer_texts(msgs)
    # SOA new, SOA old, deletions, SOA new, additions, SOA new: a handful
    assert rrs[0].split()[-5] == str(s1) and rrs[1].split()[-5] == str(s0), rrs[:2]
    assert rrs[-1] == rrs[0]
    assert 4 < len(rrs) < 40, rrs
    added = [t for t in rrs if " SOA " not in t]
    assert any(t.startswith("ixfrweb.marathon.mesos. ") and t.endswith(" A 10.0.9.9")
               for t in added), rrs
    assert any(t.startswith("_ixfrweb._tcp.marathon.mesos. ") for t in added), rrs
    # applied to the old zone, it gives the zone an AXFR now gives
    for origin, zone in (("mesos.", old), (ALIAS, old_alias)):
        before = zone_texts(zone)
        transfer(cluster.port, origin, serial=s0, zone=zone)
        assert soa_serial(zone) == s1
        assert zone_texts(zone) == zone_texts(transfer(cluster.port, origin))
        assert zone_texts(zone) != before
    # and back: the task goes; an IXFR from the first serial still gives the zone
    def remove(state: dict[str, object]) -> None:
        tasks = state["frameworks"][0]["tasks"]  # type: ignore[index]
        tasks[:] = [t for t in tasks if t["name"] != "ixfrweb"]

    cluster.change(remove)
    wait(lambda: cluster.serial != s1, 10.0, "the serial after the removal")
    net = answer_texts(messages(cluster.port, "mesos.", "IXFR", serial=s0))
    assert len(net) == 4, net  # added and removed: no difference, only the SOAs
    z = transfer(cluster.port, "mesos.")
    zone = transfer(cluster.port, "mesos.")  # a fresh copy to bring forward
    assert zone_texts(z) == zone_texts(zone)


def test_ixfr_from_a_serial_not_in_the_journal_is_the_whole_zone(cluster: Cluster) -> None:
    full = answer_texts(messages(cluster.port, "mesos."))
    rrs = answer_texts(messages(cluster.port, "mesos.", "IXFR", serial=cluster.serial - 100_000))
    assert sorted(rrs) == sorted(full)
    assert " NS " in rrs[1]  # AXFR form: SOA, the zone, SOA


def test_ixfr_from_the_current_serial_is_a_single_soa(cluster: Cluster) -> None:
    serial = cluster.serial
    for later in (0, 5):  # current, or ahead of us
        rrs = answer_texts(messages(cluster.port, "mesos.", "IXFR", serial=serial + later))
        assert len(rrs) == 1 and f" {serial} " in rrs[0], rrs


@pytest.mark.parametrize("behind", [False, True])
def test_ixfr_over_udp_is_the_current_soa(cluster: Cluster, behind: bool) -> None:
    serial = cluster.serial
    q = dns.message.make_query("mesos.", "IXFR")
    q.authority.append(dns.rrset.from_text(
        "mesos.", 0, "IN", "SOA", f"ns1.mesos. root.ns1.mesos. {serial - behind} 1 1 1 1"))
    q.use_tsig(KEYRING, keyname=KEYNAME)
    r = dns.query.udp(q, "127.0.0.1", port=cluster.port, timeout=2)
    assert r.had_tsig and r.rcode() == dns.rcode.NOERROR
    assert [rrset.rdtype for rrset in r.answer] == [dns.rdatatype.SOA]
    assert r.answer[0][0].serial == serial


def test_axfr_over_udp_is_notimp(cluster: Cluster) -> None:
    q = dns.message.make_query("mesos.", "AXFR")
    q.use_tsig(KEYRING, keyname=KEYNAME)
    r = dns.query.udp(q, "127.0.0.1", port=cluster.port, timeout=2)
    assert r.rcode() == dns.rcode.NOTIMP and r.had_tsig


# -- what is in the zone: the compiler's rules ----------------------------------


def odd_record_set() -> RecordSet:
    """`record_set` plus an SRV target no name can hold, a forwarded zone's name
    and duplicate values."""
    base = record_set()
    a = dict(base.a)
    a["host.fwd.mesos."] = ("10.0.7.1",)  # under a zone zoneResolvers forwards
    a["dup.marathon.mesos."] = ("10.0.7.2", "10.0.7.2")
    srv = dict(base.srv)
    srv["_odd._tcp.marathon.mesos."] = (
        SRVTarget("x" * 64 + ".mesos.", 1),  # a label over 63 octets: no record
        SRVTarget("nginx-aaaaa-s1.marathon.mesos.", 2),
        SRVTarget("nginx-aaaaa-s1.marathon.mesos.", 2),
    )
    return RecordSet(domain="mesos", a=MappingProxyType(a), aaaa=base.aaaa,
                     srv=MappingProxyType(srv))


@pytest.fixture(scope="module")
def plain() -> Iterator[ServerThread]:
    s = settings(transfer=TransferSettings(allow=("127.0.0.1/32",)),
                 zone_resolvers={"fwd.mesos": ("127.0.0.1:9",)})
    srv = ServerThread(s, compile_table(s, odd_record_set()))
    yield srv
    srv.close()


def test_axfr_leaves_out_what_no_question_can_reach(plain: ServerThread) -> None:
    texts = zone_texts(transfer(plain.port, "mesos.", keyring=None, keyname=None))
    owners = {t.split(" ")[0] for t in texts}
    assert "Upper.marathon.mesos." not in owners and "upper.marathon.mesos." not in owners
    assert not any(o.startswith("outside") or ".fwd." in o or "\\" in o for o in owners)
    assert "bad.mesos." not in owners  # its only value is not an address
    assert {t for t in texts if t.startswith("half.mesos. ")} == {"half.mesos. 60 A 10.0.4.1"}
    assert {t for t in texts if t.startswith("dup.")} == {"dup.marathon.mesos. 60 A 10.0.7.2"}
    assert {t for t in texts if t.startswith("_odd.")} == {
        "_odd._tcp.marathon.mesos. 60 SRV 0 1 2 nginx-aaaaa-s1.marathon.mesos."
    }
    assert sum(t.startswith("many.marathon.mesos. 60 A ") for t in texts) == 40
    table = plain.lt.call(lambda: plain.server.table)
    compiled = {dns.name.from_wire(w, 0)[0].to_text() for w in table.names}
    # the compiler knows a name whose only value is not an address (NODATA)
    assert compiled - (owners - {"mesos."}) == {"bad.mesos."}
    assert_zone_is_what_dns_answers(plain.port, texts, compiled)


def test_transfer_from_a_source_outside_allow_is_refused() -> None:
    s = settings(transfer=TransferSettings(allow=("10.0.0.0/8", "::1/128")))
    srv = ServerThread(s)
    try:
        for rdtype in ("AXFR", "IXFR"):
            q = dns.message.make_query("mesos.", rdtype)
            r = dns.query.tcp(q, "127.0.0.1", port=srv.port, timeout=2)
            assert r.rcode() == dns.rcode.REFUSED and r.answer == [], rdtype
        q = dns.message.make_query("mesos.", "IXFR")
        r = dns.query.udp(q, "127.0.0.1", port=srv.port, timeout=2)
        assert r.rcode() == dns.rcode.REFUSED
        # other questions are answered as before
        r = dns.query.udp(dns.message.make_query("nginx.marathon.mesos.", "A"), "127.0.0.1",
                          port=srv.port, timeout=2)
        assert r.rcode() == dns.rcode.NOERROR and len(r.answer[0]) == 3
    finally:
        srv.close()


# -- a large zone: many messages, one version ------------------------------------


def big_record_set(n: int) -> RecordSet:
    a = {f"task-{i:05d}.app-{i % 97}.marathon.mesos.": (f"10.{i >> 16 & 255}.{i >> 8 & 255}."
                                                         f"{i & 255}",) for i in range(n)}
    srv = {f"_app-{j}._tcp.marathon.mesos.": tuple(
        SRVTarget(f"task-{i:05d}.app-{j}.marathon.mesos.", 31000 + i % 1000)
        for i in range(j, n, 97)) for j in range(97)}
    return RecordSet(domain="mesos", a=a, srv=srv)


def read_transfer(sock: socket.socket) -> Iterator[bytes]:
    """The messages of a transfer, raw, until the second SOA."""
    buf = b""
    soas = 0
    while soas < 2:
        while len(buf) < 2 or len(buf) < 2 + struct.unpack(">H", buf[:2])[0]:
            chunk = sock.recv(65536)
            assert chunk, "connection closed mid-transfer"
            buf += chunk
        size = struct.unpack(">H", buf[:2])[0]
        msg, buf = buf[2 : 2 + size], buf[2 + size :]
        m = dns.message.from_wire(msg, one_rr_per_rrset=True)
        soas += sum(rrset.rdtype == dns.rdatatype.SOA for rrset in m.answer)
        yield msg


def test_a_large_zone_comes_in_messages_of_about_64k_and_shows_one_version() -> None:
    s = settings(transfer=TransferSettings(allow=("127.0.0.0/8",)))
    rs = big_record_set(20_000)
    table = compile_answers(rs, s, SERIAL, random.Random(1))
    srv = ServerThread(s, table)
    try:
        q = dns.message.make_query("mesos.", "AXFR")
        with socket.create_connection(("127.0.0.1", srv.port), timeout=10) as sock:
            data = q.to_wire()
            sock.sendall(struct.pack(">H", len(data)) + data)
            it = read_transfer(sock)
            first = next(it)
            # the replica changes its maps in place between two callbacks: so
            # does this, while the transfer is under way
            def change() -> None:
                assert isinstance(table.rs.a, dict)
                table.rs.a["late.marathon.mesos."] = ("10.99.0.1",)
                del table.rs.a["task-19999.app-17.marathon.mesos."]

            srv.lt.call(change)
            msgs = [first, *it]
        assert len(msgs) > 5
        assert all(len(m) <= 65535 for m in msgs)
        assert all(len(m) >= MESSAGE_SIZE - 600 for m in msgs[:-1])
        parsed = [dns.message.from_wire(m, one_rr_per_rrset=True) for m in msgs]
        names = {rrset.name.to_text() for m in parsed for rrset in m.answer}
        assert "late.marathon.mesos." not in names  # the version of the start
        assert "task-19999.app-17.marathon.mesos." in names
        count = sum(len(rrset) for m in parsed for rrset in m.answer)
        assert count == 2 + 1 + 20_000 + 20_000  # SOA twice, NS, A, SRV
        # the server answered other queries meanwhile and still does
        r = dns.query.udp(dns.message.make_query("late.marathon.mesos.", "A"), "127.0.0.1",
                          port=srv.port, timeout=2)
        assert r.rcode() in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN)
    finally:
        srv.close()


def test_a_client_that_stops_reading_holds_no_loop() -> None:
    """A transfer to a client that does not read waits for it (TCP flow
    control) while the server goes on answering; closing the connection ends
    it."""
    s = settings(transfer=TransferSettings(allow=("127.0.0.0/8",)), tcp_idle_timeout=30.0)
    # a zone larger than the kernel's socket buffers can take (tcp_wmem's
    # largest is 4 MiB by default)
    srv = ServerThread(s, compile_answers(big_record_set(80_000), s, SERIAL, random.Random(1)))
    try:
        q = dns.message.make_query("mesos.", "AXFR")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", srv.port))
        # small kernel buffers on both ends: the zone cannot all fit in them
        wait(lambda: srv.lt.call(lambda: len(srv.server._conns)) == 1, 5.0, "the connection")
        srv.lt.call(lambda: next(iter(srv.server._conns)).transport.get_extra_info(
            "socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096))
        data = q.to_wire()
        sock.sendall(struct.pack(">H", len(data)) + data)
        wait(lambda: srv.lt.call(lambda: len(srv.server.transfers.tasks)) == 1, 5.0,
             "the transfer")
        for _ in range(20):
            r = dns.query.udp(dns.message.make_query("mesos.", "SOA"), "127.0.0.1",
                              port=srv.port, timeout=2)
            assert r.rcode() == dns.rcode.NOERROR
        assert srv.lt.call(lambda: len(srv.server.transfers.tasks)) == 1  # still waiting
        sock.close()
        wait(lambda: srv.lt.call(lambda: len(srv.server.transfers.tasks)) == 0, 10.0,
             "the transfer to end with its connection")
    finally:
        srv.close()


# -- defaults: no zoneTransfer -------------------------------------------------------


@pytest.mark.parametrize("rdtype", ["AXFR", "IXFR"])
def test_without_zone_transfer_axfr_and_ixfr_are_answered_as_before(rdtype: str) -> None:
    """Before zoneTransfer, a transfer question was a question like any other:
    the apex has no record of that type, so NXDOMAIN with the SOA, over TCP
    and UDP; a query's TSIG record is ignored, and the apex SOA stays in
    authority."""
    srv = ServerThread(settings())
    try:
        for send in (dns.query.tcp, dns.query.udp):
            r = send(dns.message.make_query("mesos.", rdtype), "127.0.0.1", port=srv.port,
                     timeout=2)
            assert r.rcode() == dns.rcode.NXDOMAIN
            assert r.answer == [] and [x.rdtype for x in r.authority] == [dns.rdatatype.SOA]
        q = dns.message.make_query("nginx.marathon.mesos.", "A")
        q.use_tsig(KEYRING, keyname=KEYNAME)
        reply = raw_tcp(srv.port, [q.to_wire()], 1)[0]
        r = dns.message.from_wire(reply)
        assert not r.had_tsig and len(r.answer[0]) == 3
        r = dns.query.udp(dns.message.make_query("mesos.", "SOA"), "127.0.0.1", port=srv.port,
                          timeout=2)
        assert r.answer == [] and r.authority[0].rdtype == dns.rdatatype.SOA
    finally:
        srv.close()


# -- one version while the replica changes: the journal's news ------------------------


def tasks_state(lo: int, hi: int, ip_base: str) -> State:
    """A state with tasks app<lo> .. app<hi - 1> (see test_store)."""
    doc = {**stream_cluster(), "leader": "master@10.0.0.11:5050"}
    doc["frameworks"][0]["tasks"] = [
        {**task(f"app{i}", ip=f"{ip_base}.{i // 250}.{i % 250 + 1}"), "id": f"app{i}.{i}"}
        for i in range(lo, hi)
    ]
    return parse_state(orjson.dumps(doc))


def test_a_stalled_transfer_shows_its_version_while_the_replica_changes_in_place() -> None:
    """The builder's versions reach a real replica on the server's loop; a
    transfer to a client that stopped reading is paused (TCP flow control)
    while a version replaces, removes and adds hundreds of names in place:
    what it sends after the change is still the version it started at."""
    from mesosdns.builder.engine import Compilers, Engine
    from mesosdns.records.generator import GeneratorParams
    from mesosdns.store.replica import Replica
    from mesosdns.store.update import frames

    s = settings(transfer=TransferSettings(allow=("127.0.0.0/8",)))
    compilers, params, engine, replica = Compilers(s), GeneratorParams(), Engine(), Replica()
    built = engine.build(tasks_state(0, 3000, "10.1"), params, compilers,
                         engine.next_serial(1e9))
    for f in frames(engine.install(built, compilers, "test")):
        replica.feed(f[4:])
    srv = ServerThread(s, replica.table)
    try:
        srv.lt.call(lambda: setattr(srv.server.transfers, "journal", replica.journal))
        before = zone_texts(transfer(srv.port, "mesos.", keyring=None, keyname=None))
        s1 = srv.lt.call(lambda: replica.serial)
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", srv.port))
        wait(lambda: srv.lt.call(lambda: len(srv.server._conns)) == 1, 5.0, "the connection")
        srv.lt.call(lambda: next(iter(srv.server._conns)).transport.get_extra_info(
            "socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096))
        data = dns.message.make_query("mesos.", "AXFR").to_wire()
        sock.sendall(struct.pack(">H", len(data)) + data)
        it = read_transfer(sock)
        first = next(it)

        def change() -> None:
            # every address moves, 500 tasks go, 500 come
            engine.apply_state(tasks_state(500, 3500, "10.2"), params)
            update = engine.flush("test", defer=False)
            assert update is not None and not update.full
            for f in frames(update):
                replica.feed(f[4:])

        srv.lt.call(lambda: len(srv.server.transfers.tasks) == 1 or pytest.fail("no transfer"))
        srv.lt.call(change)
        assert srv.lt.call(lambda: replica.serial) != s1
        rest = list(it)
        sock.close()
        assert len(rest) > 10  # most of it was written after the change
        got = set()
        for m in [first, *rest]:
            msg = dns.message.from_wire(m, one_rr_per_rrset=True)
            for rrset in msg.answer:
                for rr in rrset:
                    got.add(f"{rrset.name} {rrset.ttl} {dns.rdatatype.to_text(rrset.rdtype)} "
                            f"{rr.to_text(origin=None, relativize=False)}")
        assert got == before or _diff(got, before)
        after = zone_texts(transfer(srv.port, "mesos.", keyring=None, keyname=None))
        assert after != before and any(" A 10.2." in t for t in after)
        assert not any(" A 10.1." in t for t in after if ".marathon." in t)
        assert srv.lt.call(lambda: len(replica.journal.listeners)) == 0
    finally:
        srv.close()


def _diff(got: set[str], want: set[str]) -> bool:
    raise AssertionError(f"extra {sorted(got - want)[:5]}, missing {sorted(want - got)[:5]}")
