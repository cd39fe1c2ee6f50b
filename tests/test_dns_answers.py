"""The compiled answers against the slow path (the original's algorithm, run
per query from the RecordSet): same records, same flags, same truncation."""

from __future__ import annotations

import random
import struct
import time
from collections import Counter
from types import MappingProxyType

import dns.message
import dns.rcode
import pytest
from dns_support import compile_table, fill_hot, record_set, settings
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from mesosdns.dns import wire
from mesosdns.dns.answers import HOT_PREFIX, AnswerTable, compile_answers
from mesosdns.dns.resolver import resolve
from mesosdns.records.model import RecordSet, SRVTarget

LIMITS = (512, 1232, 4096, 65535)


def make_query(name: str, rdtype: str, edns: bool) -> tuple[bytes, wire.Query]:
    q = dns.message.make_query(name, rdtype, use_edns=0 if edns else False, payload=4096)
    q.id = 0x4242
    data = q.to_wire()
    parsed = wire.parse_query(data)
    assert isinstance(parsed, wire.Query)
    return data, parsed


def fast_reply(table: AnswerTable, q: wire.Query, limit: int, ctr: int) -> bytes | None:
    e = table.entries.get(HOT_PREFIX + q.qname.lower() + struct.pack(">H", q.qtype) + b"\x00\x01")
    if e is None:
        return None
    opt = wire.opt_rr(q.edns_do, wire.DEFAULT_UDP_PAYLOAD) if q.edns_size >= 0 else b""
    return table.render(e, ctr, q.ident, q.b2, q.b3, q.question, limit, opt)


def records(section: list[dns.rrset.RRset]) -> Counter[str]:
    return Counter(
        f"{rr.name.to_text()} {rr.ttl} {rr.rdtype} {rd.to_text()}" for rr in section for rd in rr
    )


def check_same(table: AnswerTable, name: str, rdtype: str, edns: bool, limit: int) -> None:
    _, q = make_query(name, rdtype, edns)
    fast = fast_reply(table, q, limit, ctr=3)
    if fast is None:
        return
    opt = wire.opt_rr(False, wire.DEFAULT_UDP_PAYLOAD) if edns else b""
    slow, _ = resolve(table, q, limit, opt, random.Random(5))
    assert len(fast) <= limit and len(slow) <= limit
    f, s = dns.message.from_wire(fast), dns.message.from_wire(slow)
    assert f.id == s.id == 0x4242
    assert f.flags == s.flags and f.rcode() == s.rcode()
    assert f.question[0].name.to_text() == name
    assert records(f.authority) == records(s.authority)
    if f.flags & dns.flags.TC:
        assert f.additional == [] and s.additional == []
        assert records(f.answer) <= records(check_full(table, q))
    else:
        assert records(f.answer) == records(s.answer)
        assert records(f.additional) == records(s.additional)
    assert f.edns == s.edns


def check_full(table: AnswerTable, q: wire.Query) -> list[dns.rrset.RRset]:
    slow, _ = resolve(table, q, 65535, b"", random.Random(5))
    return dns.message.from_wire(slow).answer


def all_names(rs: RecordSet) -> list[str]:
    return sorted(set(rs.a) | set(rs.aaaa) | set(rs.srv))


@pytest.mark.parametrize("limit", LIMITS)
@pytest.mark.parametrize("edns", [False, True])
def test_compiled_equals_slow_path(limit: int, edns: bool) -> None:
    rs = record_set()
    table = compile_table(settings(), rs)
    for name in all_names(rs):
        if wire.plain_key_wire(name) is None:
            continue
        for variant in (name, name.upper()):
            for rdtype in ("A", "AAAA", "SRV"):
                check_same(table, variant, rdtype, edns, limit)


def test_hot_tails_are_the_512_byte_replies() -> None:
    rs = record_set()
    table = compile_table(settings(), rs)
    assert not table.hot  # filled by the names' first queries
    hot = fill_hot(table)
    assert hot.keys() == table.entries.keys()
    for key, value in hot.items():
        flags, tails = value[0], value[2:]  # (flag table, rrl slot, tails)
        e = table.entries[key]
        for i, tail in enumerate(tails):
            reply = b"\x42\x42" + flags[wire.flag_index(0x01, 0x00)] + tail
            assert len(reply) <= 512
            m = dns.message.from_wire(reply)
            qname = e.qsec[:-4]
            assert m.question[0].name.to_wire() == qname
            # the same bytes as rendering the entry for a lower-case question
            if len(tails) == e.n or e.kind == 2:
                assert reply == table.render(e, i, b"\x42\x42", 0x01, 0x00, e.qsec, 512, b"")


def test_every_address_leads_once() -> None:
    table = compile_table(settings(), record_set())
    key = HOT_PREFIX + b"\x05nginx\x08marathon\x05mesos\x00\x00\x01\x00\x01"
    tails = fill_hot(table)[key][2:]
    firsts = {dns.message.from_wire(b"\x00\x00\x81\x80" + t).answer[0][0].to_text() for t in tails}
    assert firsts == {"10.0.1.1", "10.0.1.2", "10.0.1.3"}


def test_unmatchable_and_outside_names_are_left_out() -> None:
    table = compile_table(settings(), record_set())
    texts = {wire.wire_to_text(k[8:-4]) for k in table.entries}
    assert "Upper.marathon.mesos." not in texts and "upper.marathon.mesos." not in texts
    assert "outside.example." not in texts
    assert not any(t.startswith(".") for t in texts)
    # names holding a value that is not an address go to the slow path
    assert b"\x03bad\x05mesos\x00" in table.slow_names
    assert b"\x04half\x05mesos\x00" in table.slow_names
    assert b"\x03bad\x05mesos\x00" in table.names


def test_zone_inside_the_domain_is_left_to_forwarding() -> None:
    s = settings(zone_resolvers={"marathon.mesos": ("127.0.0.1",)})
    table = compile_table(s, record_set())
    texts = {wire.wire_to_text(k[8:-4]) for k in table.entries}
    assert "leader.mesos." in texts
    assert not any(t.endswith("marathon.mesos.") for t in texts)


def test_generated_record_set() -> None:
    # the real generator on a small synthetic state: every name it makes
    # compiles, and the compiled answers equal the slow path's
    import sys
    from pathlib import Path

    import orjson

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
    try:
        from synth import make_state
    finally:
        sys.path.pop(0)
    from mesosdns.records.generator import GeneratorParams, generate
    from mesosdns.state.model import parse_state

    state = parse_state(orjson.dumps(make_state(300, 30)))
    rs = generate(state, GeneratorParams(listener_ips=("10.0.0.1",)))
    table = compile_answers(rs, settings(), 1, random.Random(3))
    assert table.info.entries > 300
    names = all_names(rs)
    for name in names[:: max(1, len(names) // 300)]:
        if wire.plain_key_wire(name) is None:
            continue
        for rdtype in ("A", "SRV"):
            for limit in (512, 4096):
                check_same(table, name, rdtype, limit > 512, limit)


def test_compile_speed_is_reasonable() -> None:
    # 2,000 tasks' worth of names; the benchmark measures 10k tasks properly
    a: dict[str, tuple[str, ...]] = {}
    srv: dict[str, tuple[SRVTarget, ...]] = {}
    for app in range(200):
        targets = []
        for i in range(10):
            host = f"app{app}-{i:05d}-s{i}.marathon.mesos."
            a[host] = (f"10.{app % 250}.{i}.1",)
            targets.append(SRVTarget(host, 31000 + i))
        a[f"app{app}.marathon.mesos."] = tuple(
            v[0] for k, v in a.items() if k.startswith(f"app{app}-")
        )
        srv[f"_app{app}._tcp.marathon.mesos."] = tuple(targets)
    rs = RecordSet(domain="mesos", a=MappingProxyType(a), srv=MappingProxyType(srv))
    started = time.perf_counter()
    table = compile_answers(rs, settings(), 1)
    assert time.perf_counter() - started < 5  # generous: only catches a blow-up
    assert len(table.entries) == len(a) + len(srv)


# -- random record sets ---------------------------------------------------

label = st.sampled_from(["a", "b", "web", "_tcp", "_web", "X", "*", "", "x" * 64, "ü"])
domain_names = st.lists(label, min_size=1, max_size=3).map(
    lambda parts: ".".join(parts) + ".mesos."
)
addresses = st.sampled_from(
    ["10.0.0.1", "10.0.0.2", "10.1.2.3", "fd00::1", "host.example", "::ffff:10.9.9.9"]
)
v6 = st.sampled_from(["fd00::1", "fd00::2", "10.0.0.7", "nope"])


@st.composite
def record_sets(draw: st.DrawFn) -> RecordSet:
    names = draw(st.lists(domain_names, min_size=1, max_size=6, unique=True))
    a = {n: tuple(draw(st.lists(addresses, min_size=1, max_size=4, unique=True))) for n in names}
    aaaa = {
        n: tuple(draw(st.lists(v6, min_size=1, max_size=2, unique=True)))
        for n in draw(st.lists(st.sampled_from(names), max_size=2, unique=True))
    }
    srv = {}
    for n in draw(st.lists(domain_names, max_size=3, unique=True)):
        hosts = draw(
            st.lists(st.sampled_from([*names, "gone.mesos.", "a..mesos."]), min_size=1, max_size=5)
        )
        srv[n] = tuple(SRVTarget(h, draw(st.integers(1, 70000))) for h in dict.fromkeys(hosts))
    return RecordSet(
        domain="mesos",
        a=MappingProxyType(a),
        aaaa=MappingProxyType(aaaa),
        srv=MappingProxyType(srv),
    )


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(record_sets(), st.sampled_from(LIMITS), st.booleans(), st.booleans())
def test_random_record_sets(rs: RecordSet, limit: int, edns: bool, upper: bool) -> None:
    table = compile_answers(rs, settings(ttl=5), 99, random.Random(0))
    for name in all_names(rs):
        if wire.plain_key_wire(name) is None:
            continue  # no question can match it
        for rdtype in ("A", "AAAA", "SRV"):
            check_same(table, name.upper() if upper else name, rdtype, edns, limit)


def test_slow_path_rcodes() -> None:
    table = compile_table(settings(), record_set())
    expect = {
        ("nginx.marathon.mesos.", "A"): dns.rcode.NOERROR,
        ("missing.mesos.", "A"): dns.rcode.NXDOMAIN,
        ("missing.mesos.", "ANY"): dns.rcode.NXDOMAIN,
        ("missing.mesos.", "SRV"): dns.rcode.NOERROR,
        ("bad.mesos.", "A"): dns.rcode.NOERROR,
        ("Upper.marathon.mesos.", "A"): dns.rcode.NXDOMAIN,
    }
    for (name, rdtype), rcode in expect.items():
        _, q = make_query(name, rdtype, False)
        reply, _ = resolve(table, q, 512, b"", random.Random(1))
        assert dns.message.from_wire(reply).rcode() == rcode, (name, rdtype)
