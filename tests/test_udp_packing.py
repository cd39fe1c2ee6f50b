"""UDP replies without EDNS keep at least the records the original keeps.

The original decides what fits in 512 octets with its DNS library's size
estimate of the reply (miekg/dns 1.0.15 ``Msg.Len`` with compression on),
not with the packed bytes. `original_keeps` below is a small model of that
estimate, written from its rules:

- a name costs its wire length, unless a label-aligned suffix of it was
  written before with the same bytes (case counts): then the labels before
  that suffix plus a 2-octet pointer;
- owner names, NS targets and SOA MNAME / RNAME are compressed; an SRV
  target is written in full (RFC 2782), but later names may point into it;
- a SOA record's MNAME and RNAME are credited only when both have a known
  suffix, and then with one octet more than their pointers save;
- truncation: a reply estimated over 512 octets loses its whole additional
  section; if it is still not under 512 (strictly), answers are cut from the
  end until it is. Authority (SOA and NS of an ANY answer) always stays.

The records come from real states (parsed and generated as a refresh does),
the replies from the compiled table (the hot path's ready tails), its
rendering for other question cases, and the slow path (ANY), and go through
the server's UDP code once.
"""

from __future__ import annotations

import random
import struct
from dataclasses import dataclass
from typing import Any

import dns.flags
import dns.message
import dns.rdatatype
import dns.rrset
import pytest
from dns_support import FakeSocket, settings

from mesosdns.dns import wire
from mesosdns.dns.answers import HOT_PREFIX, AnswerTable, compile_answers
from mesosdns.dns.incremental import LiveAnswers
from mesosdns.dns.protocol import DNSServer
from mesosdns.dns.resolver import resolve
from mesosdns.dns.settings import DNSSettings, fqdn, soa_rname_fqdn
from mesosdns.records.generator import GeneratorParams, generate
from mesosdns.records.model import RecordSet
from mesosdns.state.model import parse_state

LIMIT = 512
SERIAL = 1_700_000_000

# -- the original's size estimate ------------------------------------------------


@dataclass(frozen=True)
class Rec:
    """A record as the original's library sizes it."""

    owner: str  # presentation name with the trailing dot
    rtype: str
    fixed: int  # rdata octets that are not names
    names: tuple[str, ...] = ()  # names in the rdata


def _suffixes(name: str) -> list[str]:
    out = []
    while name:
        out.append(name)
        name = name[name.index(".") + 1 :]
    return out


def _saved(known: set[str], name: str) -> int:
    """Octets a pointer saves on ``name``: the longest known suffix of
    ``len(s)`` characters is ``len(s) + 1`` octets, the pointer 2."""
    for s in _suffixes(name):
        if s in known:
            return len(s) - 1
    return 0


def _learn(known: set[str], name: str) -> None:
    known.update(_suffixes(name))


def estimate(qname: str, records: list[Rec]) -> int:
    known: set[str] = set()
    _learn(known, qname)
    size = 12 + len(qname) + 1 + 4
    for r in records:
        size += len(r.owner) + 1 + 10 + r.fixed + sum(len(n) + 1 for n in r.names)
        size -= _saved(known, r.owner)
        _learn(known, r.owner)
        if r.rtype == "NS":
            size -= _saved(known, r.names[0])
        elif r.rtype == "SOA":
            a, b = _saved(known, r.names[0]), _saved(known, r.names[1])
            if a and b:
                size -= a + b + 1
        for n in r.names:
            _learn(known, n)
    return size


def original_keeps(
    qname: str, ans: list[Rec], auth: list[Rec], add: list[Rec]
) -> tuple[int, int, bool]:
    """(answers, additional records, TC) of the original's 512-octet reply."""
    if estimate(qname, ans + auth + add) <= LIMIT:
        return len(ans), len(add), False
    keep = len(ans)
    while keep and estimate(qname, ans[:keep] + auth) >= LIMIT:
        keep -= 1
    return keep, 0, True


def as_recs(section: list[dns.rrset.RRset]) -> list[Rec]:
    """A parsed section as the records the original would have sized."""
    fixed = {"A": 4, "AAAA": 16, "SRV": 6, "NS": 0, "SOA": 20}
    out = []
    for rrset in section:
        rtype = dns.rdatatype.to_text(rrset.rdtype)
        for rd in rrset:
            names: tuple[str, ...] = ()
            if rtype in ("SRV", "NS"):
                names = (rd.target.to_text(),)
            elif rtype == "SOA":
                names = (rd.mname.to_text(), rd.rname.to_text())
            out.append(Rec(rrset.name.to_text(), rtype, fixed[rtype], names))
    return out


def authority(s: DNSSettings, qname: str) -> list[Rec]:
    """SOA and NS of an ANY answer, owned by the question as asked."""
    mname, rname = fqdn(s.soa_mname), soa_rname_fqdn(s.soa_rname)
    return [Rec(qname, "SOA", 20, (mname, rname)), Rec(qname, "NS", 0, (mname,))]


# -- states ----------------------------------------------------------------------------


@dataclass(frozen=True)
class App:
    task: str
    count: int
    framework: str = "marathon"
    v4: bool = True
    v6: bool = False


def mesos_state(apps: list[App]) -> dict[str, Any]:
    """A master state: each app's instances on agents of their own, one
    port each, addresses from the container network infos."""
    agents: list[dict[str, Any]] = []
    frameworks: dict[str, list[dict[str, Any]]] = {}
    for a, app in enumerate(apps):
        for i in range(app.count):
            agent_id = f"20160107-001256-134875658-5050-27524-S{len(agents)}"
            agents.append(
                {
                    "id": agent_id,
                    "hostname": f"10.1.{len(agents) // 250}.{len(agents) % 250 + 1}",
                    "pid": f"slave(1)@10.1.0.1:{5051 + len(agents)}",
                }
            )
            addrs = []
            if app.v4:
                addrs.append(
                    {"protocol": "IPv4", "ip_address": f"10.{a + 2}.{i // 250}.{i % 250 + 1}"}
                )
            if app.v6:
                addrs.append({"protocol": "IPv6", "ip_address": f"fd00:{a + 2}::{i + 1:x}"})
            frameworks.setdefault(app.framework, []).append(
                {
                    "id": f"{app.task}.{a}-{i}",
                    "name": app.task,
                    "slave_id": agent_id,
                    "state": "TASK_RUNNING",
                    "resources": {"ports": f"[{31000 + i}-{31000 + i}]"},
                    "statuses": [
                        {
                            "state": "TASK_RUNNING",
                            "timestamp": 1.0,
                            "container_status": {"network_infos": [{"ip_addresses": addrs}]},
                        }
                    ],
                }
            )
    return {
        "leader": "master@10.0.0.11:5050",
        "slaves": agents,
        "frameworks": [
            {
                "id": f"fw-{k}",
                "name": name,
                "pid": f"scheduler@10.0.0.11:{8080 + k}",
                "tasks": tasks,
            }
            for k, (name, tasks) in enumerate(frameworks.items())
        ],
    }


def record_set(apps: list[App]) -> RecordSet:
    return generate(
        parse_state(mesos_state(apps)),
        GeneratorParams(masters=("", "10.0.0.11:5050"), listener_ips=("10.0.0.1",)),
    )


def table_of(apps: list[App], **kw: Any) -> tuple[AnswerTable, DNSSettings]:
    s = settings(**kw)
    return compile_answers(record_set(apps), s, SERIAL, random.Random(3)), s


# -- replies ------------------------------------------------------------------------


def query(name: str, rdtype: str) -> tuple[bytes, wire.Query]:
    q = dns.message.make_query(name, rdtype, use_edns=False)
    q.id = 0x4242
    data = q.to_wire()
    parsed = wire.parse_query(data)
    assert isinstance(parsed, wire.Query)
    return data, parsed


def replies(table: AnswerTable, name: str, rdtype: str) -> tuple[bytes, bytes]:
    """The 512-octet reply and the same reply without a size limit (the same
    ordering), from whichever path serves the question."""
    data, q = query(name, rdtype)
    key = HOT_PREFIX + q.qname.lower() + struct.pack(">H", q.qtype) + b"\x00\x01"
    e = table.entries.get(key)
    if e is None:
        small, _ = resolve(table, q, LIMIT, b"", random.Random(9))
        full, _ = resolve(table, q, wire.MAX_MESSAGE, b"", random.Random(9))
        return small, full
    full = table.render(e, 0, q.ident, q.b2, q.b3, q.question, wire.MAX_MESSAGE, b"")
    if q.qname == q.qname.lower():
        # the hot path's first ready reply
        v = table.hot.get(key) or table.hot.fill(key, e)  # (flag table, rrl slot, tails)
        assert v is not None
        small = data[:2] + v[0][wire.flag_index(data[2], data[3])] + v[2]
        assert small == table.render(e, 0, q.ident, q.b2, q.b3, q.question, LIMIT, b"")
    else:
        small = table.render(e, 0, q.ident, q.b2, q.b3, q.question, LIMIT, b"")
    return small, full


def parse(data: bytes) -> dns.message.Message:
    """A reply with each record in a set of its own: the wire order kept."""
    return dns.message.from_wire(data, one_rr_per_rrset=True)


def flat(section: list[dns.rrset.RRset]) -> list[tuple[str, str, str]]:
    """A section's records, in wire order (see `parse`)."""
    return [
        (r.name.to_text(), dns.rdatatype.to_text(r.rdtype), rd.to_text())
        for r in section
        for rd in r
    ]


def check(table: AnswerTable, s: DNSSettings, name: str, rdtype: str) -> tuple[int, int, bool]:
    """Check the 512-octet reply against the original's; its counts."""
    small, full = replies(table, name, rdtype)
    assert len(small) <= LIMIT
    m, f = parse(small), parse(full)
    assert m.question[0].name.to_text() == name
    auth = authority(s, name) if rdtype == "ANY" else []
    assert len(as_recs(m.authority)) == len(auth) == len(as_recs(f.authority))
    want = original_keeps(name, as_recs(f.answer), auth, as_recs(f.additional))
    got_ans, full_ans = flat(m.answer), flat(f.answer)
    got = (len(got_ans), len(flat(m.additional)), bool(m.flags & dns.flags.TC))
    # the original's order, cut from the end
    assert got_ans == full_ans[: len(got_ans)]
    if got[1]:
        assert flat(m.additional) == flat(f.additional)
    # never fewer records than the original; TC exactly when some were dropped
    assert got[0] >= want[0] and got[1] >= want[1]
    assert got[2] == (got[:2] != (len(full_ans), len(flat(f.additional))))
    return got


# -- the table -------------------------------------------------------------------------

WEB = "nginx.marathon.mesos."
SRV_WEB = "_nginx._tcp.marathon.mesos."
LONG_FW = "marathon-user.production"
LONG = "my-long-service-name-for-packing"
SRV_LONG = f"_{LONG}._tcp.{LONG_FW}.mesos."

CASES = [
    # (apps, question, type)
    ([App("nginx", 30)], WEB, "A"),
    ([App("nginx", 30)], WEB, "ANY"),
    ([App("nginx", 24)], WEB, "ANY"),
    ([App("nginx", 25)], WEB, "ANY"),
    ([App("nginx", 26)], WEB, "ANY"),
    ([App("nginx", 40)], WEB, "ANY"),
    ([App("nginx", 30)], WEB.upper(), "A"),
    ([App("nginx", 30)], "NGINX.marathon.mesos.", "A"),
    ([App("nginx", 30)], WEB.upper(), "ANY"),
    ([App("nginx", 30)], "NGINX.marathon.mesos.", "ANY"),
    ([App("nginx", 20, v4=False, v6=True)], WEB, "AAAA"),
    ([App("nginx", 20, v4=False, v6=True)], WEB, "ANY"),
    ([App("nginx", 12, v6=True)], WEB, "ANY"),
    ([App("nginx", 12, v6=True)], WEB, "AAAA"),
    *[([App("nginx", n)], SRV_WEB, t) for n in (5, 6, 7) for t in ("SRV", "ANY")],
    *[([App("nginx", n, v6=True)], SRV_WEB, t) for n in (5, 6, 7) for t in ("SRV", "ANY")],
    *[([App("nginx", n)], SRV_WEB.upper(), "SRV") for n in (5, 6, 7)],
    *[([App(LONG, n, LONG_FW)], SRV_LONG, t) for n in (5, 6, 7) for t in ("SRV", "ANY")],
    ([App(LONG, 30, LONG_FW)], f"{LONG}.{LONG_FW}.mesos.", "A"),
    ([App(LONG, 30, LONG_FW)], f"{LONG}.{LONG_FW}.mesos.", "ANY"),
]


@pytest.mark.parametrize(("apps", "name", "rdtype"), CASES)
def test_keeps_what_the_original_keeps(apps: list[App], name: str, rdtype: str) -> None:
    table, s = table_of(apps)
    _, full = replies(table, name, rdtype)
    f = parse(full)
    auth = authority(s, name) if rdtype == "ANY" else []
    want = original_keeps(name, as_recs(f.answer), auth, as_recs(f.additional))
    assert check(table, s, name, rdtype) == want


def test_any_packs_soa_and_ns_as_the_original() -> None:
    """An ANY answer for an app of many instances: as many A records as the
    original fits beside the SOA and NS, whose names point back into the
    question (``mesos.``, then ``ns1.mesos.`` written once)."""
    table, s = table_of([App("nginx", 40)])
    small, _ = replies(table, WEB, "ANY")
    m = parse(small)
    kept = len(flat(m.answer))
    auth = authority(s, WEB)
    a = Rec(WEB, "A", 4)
    assert estimate(WEB, [a] * kept + auth) < LIMIT <= estimate(WEB, [a] * (kept + 1) + auth)
    # the packed SOA and NS: owner pointers; MNAME 3ns1 + pointer; RNAME
    # 4root + pointer to the MNAME; NS target a pointer to the MNAME
    soa_ns = small[-(2 + 10 + 6 + 7 + 20) - (2 + 10 + 2) :]
    assert soa_ns[:2] == b"\xc0\x0c" and soa_ns[12:16] == b"\x03ns1"
    assert len(small) == 12 + len(WEB) + 5 + kept * 16 + 45 + 14


@pytest.mark.parametrize("n", range(1, 45))
@pytest.mark.parametrize("name", [WEB, WEB.upper(), "Nginx.marathon.mesos."])
def test_many_instances_never_fewer(n: int, name: str) -> None:
    table, s = table_of([App("nginx", n)])
    for rdtype in ("A", "ANY"):
        check(table, s, name, rdtype)


@pytest.mark.parametrize("n", range(1, 14))
@pytest.mark.parametrize("v6", [False, True])
def test_srv_names_never_fewer(n: int, v6: bool) -> None:
    table, s = table_of([App("nginx", n, v6=v6), App(LONG, n, LONG_FW, v6=v6)])
    for name in (SRV_WEB, SRV_WEB.upper(), SRV_LONG):
        for rdtype in ("SRV", "ANY"):
            check(table, s, name, rdtype)


def test_truncate_bit_off_keeps_the_same_records() -> None:
    table, _ = table_of([App("nginx", 40)], set_truncate_bit=False)
    on, _ = table_of([App("nginx", 40)])
    for name, rdtype in ((WEB, "A"), (WEB, "ANY")):
        m = parse(replies(table, name, rdtype)[0])
        ref = parse(replies(on, name, rdtype)[0])
        assert not m.flags & dns.flags.TC and ref.flags & dns.flags.TC
        assert flat(m.answer) == flat(ref.answer)


def test_incremental_compile_serves_the_same_bytes() -> None:
    apps = [App("nginx", 30, v6=True), App(LONG, 7, LONG_FW)]
    rs = record_set(apps)
    s = settings()
    full = compile_answers(rs, s, SERIAL, random.Random(3))
    live = LiveAnswers(rs, s, SERIAL, rng=random.Random(3))
    assert live.table.entries.keys() == full.entries.keys()
    for name, rdtype in ((WEB, "ANY"), (SRV_LONG, "ANY"), (WEB.upper(), "A")):
        assert replies(live.table, name, rdtype) == replies(full, name, rdtype)


@pytest.mark.parametrize(
    ("apps", "name", "rdtype"),
    [
        # the original's estimate charges this SOA 3 octets more than it packs
        ([App("web", 30)], "web.marathon.mesos.", "ANY"),
        # once truncating, the original wants its estimate under 512, not at it
        # (here 30 A records make exactly 512 octets)
        ([App("abcdef", 40, framework="m")], "abcdef.m.mesos.", "A"),
    ],
)
def test_one_more_where_the_octets_allow_it(apps: list[App], name: str, rdtype: str) -> None:
    """At the edges of the original's estimate the reply keeps one answer
    more than the original, still within 512 octets."""
    table, s = table_of(apps)
    small, full = replies(table, name, rdtype)
    m, f = parse(small), parse(full)
    auth = authority(s, name) if rdtype == "ANY" else []
    ans = as_recs(f.answer)
    want = original_keeps(name, ans, auth, as_recs(f.additional))
    assert check(table, s, name, rdtype) == (want[0] + 1, 0, True)
    assert estimate(name, ans[: want[0] + 1] + auth) >= LIMIT >= len(small)
    assert len(flat(m.answer)) == want[0] + 1


def test_through_the_udp_server() -> None:
    """The server's own UDP path gives the counts the original gives."""
    table, s = table_of([App("nginx", 40), App(LONG, 6, LONG_FW)])
    server = DNSServer(s, rng=random.Random(1))
    server.set_table(table)
    cases = [
        (WEB, "A"),
        (WEB, "ANY"),
        (SRV_LONG, "SRV"),
        (SRV_LONG, "ANY"),
        ("NGINX.marathon.mesos.", "A"),
    ]
    packets = [query(name, rdtype)[0] for name, rdtype in cases]
    sock = FakeSocket(packets)
    server._udp = sock  # type: ignore[assignment]
    try:
        while sock.packets:
            server._on_udp()
    finally:
        server._udp = None
    assert len(sock.sent) == len(cases)
    for (name, rdtype), reply in zip(cases, sock.sent, strict=True):
        assert len(reply) <= LIMIT
        m = parse(reply)
        _, full = replies(table, name, rdtype)
        f = parse(full)
        auth = authority(s, name) if rdtype == "ANY" else []
        want = original_keeps(name, as_recs(f.answer), auth, as_recs(f.additional))
        got = (len(flat(m.answer)), len(flat(m.additional)), bool(m.flags & dns.flags.TC))
        assert got == want, (name, rdtype)
