"""The /v1/enumerate and /v1/axfr writers against the same values laid out by
`marshal_indent` (Go's json.MarshalIndent, see test_gojson), and the
enumerate writer's reuse of its last body against a fresh write."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from mesosdns.gojson import marshal_indent
from mesosdns.records.bodies import EnumerateWriter, axfr_json, enumerate_json, quote
from mesosdns.records.model import EnumFramework, EnumRecord, EnumTask, RecordSet, SRVTarget


class _Config:
    ttl = 60
    refresh_seconds = 30
    soa_mname = "ns1.mesos"
    soa_rname = "root.ns1.mesos"
    domain = "mesos"


def enumerate_tree(rs: RecordSet) -> dict[str, Any]:
    """/v1/enumerate as the value Go marshals."""
    return {
        "frameworks": [
            {
                "tasks": [
                    {"name": t.name, "id": t.id,
                     "records": [{"name": r.name, "host": r.host, "rtype": r.rtype}
                                 for r in t.records] or None}
                    for t in f.tasks
                ],
                "name": f.name,
            }
            for f in rs.frameworks
        ] or None
    }


def axfr_tree(rs: RecordSet, serial: int) -> dict[str, Any]:
    c = _Config
    return {
        "TTL": c.ttl, "Serial": serial, "RefreshSeconds": c.refresh_seconds,
        "Mname": c.soa_mname, "Rname": c.soa_rname, "Domain": c.domain,
        "Records": {
            "As": {k: list(rs.a[k]) for k in sorted(rs.a)},
            "AAAAs": {k: list(rs.aaaa[k]) for k in sorted(rs.aaaa)},
            "SRVs": {k: [str(t) for t in rs.srv[k]] for k in sorted(rs.srv)},
        },
    }


# mostly plain DNS-ish text, sometimes anything (quotes, controls, <>&, U+2028)
text = st.one_of(
    st.text("abcdefgh0123456789.-_", max_size=12),
    st.text(max_size=8),
    st.sampled_from(['a"b', "a\\b", "<x>&", "\u2028", "\b\f\n\t", "é ✓", ""]),
)
records = st.lists(st.builds(EnumRecord, text, text, st.sampled_from(["A", "AAAA", "SRV"])),
                   max_size=4)
tasks = st.lists(st.builds(EnumTask, text, text, records.map(tuple)), max_size=4)
frameworks = st.lists(st.builds(EnumFramework, text, tasks.map(tuple)), max_size=3)
values = st.dictionaries(text, st.lists(text, max_size=3).map(tuple), max_size=5)
srv_values = st.dictionaries(
    text, st.lists(st.builds(SRVTarget, text, st.integers(0, 65535)), max_size=3).map(tuple),
    max_size=5)


def _rs(fws: list[EnumFramework] = (), a: Any = None, aaaa: Any = None,  # type: ignore[assignment]
        srv: Any = None) -> RecordSet:
    return RecordSet(domain="mesos", a=MappingProxyType(a or {}),
                     aaaa=MappingProxyType(aaaa or {}), srv=MappingProxyType(srv or {}),
                     frameworks=tuple(fws))


def test_quote_is_go_escaping() -> None:
    for s in ["plain.name", 'q"uote', "back\\slash", "<&>", "\u2028\u2029", "\x01\b\f", "é"]:
        assert quote(s).encode() == marshal_indent(s)


def test_empty_shapes() -> None:
    assert enumerate_json(_rs()) == marshal_indent({"frameworks": None})
    empty_fw = EnumFramework("marathon", ())
    no_records = EnumFramework("m", (EnumTask("t", "t.1", ()),))
    rs = _rs([empty_fw, no_records])
    assert enumerate_json(rs) == marshal_indent(enumerate_tree(rs))
    assert axfr_json(_rs(), 5, _Config) == marshal_indent(axfr_tree(_rs(), 5))
    rs = _rs(a={"x.mesos.": ()})
    assert axfr_json(rs, 5, _Config) == marshal_indent(axfr_tree(rs, 5))


@settings(max_examples=300)
@given(frameworks)
def test_enumerate_is_go_layout(fws: list[EnumFramework]) -> None:
    rs = _rs(fws)
    assert enumerate_json(rs) == marshal_indent(enumerate_tree(rs))


@settings(max_examples=300)
@given(values, values, srv_values, st.integers(0, 2**32 - 1))
def test_axfr_is_go_layout(a: Any, aaaa: Any, srv: Any, serial: int) -> None:
    rs = _rs(a=a, aaaa=aaaa, srv=srv)
    assert axfr_json(rs, serial, _Config) == marshal_indent(axfr_tree(rs, serial))


@settings(max_examples=200)
@given(st.lists(frameworks, min_size=2, max_size=4), st.randoms())
def test_reused_pieces_equal_a_fresh_write(versions: list[list[EnumFramework]],
                                           rnd: Any) -> None:
    """Successive bodies from one writer (later versions sharing, moving and
    dropping tasks of earlier ones) equal bodies written from nothing."""
    writer = EnumerateWriter()
    pool = [t for fws in versions for f in fws for t in f.tasks]
    for fws in versions:
        if pool:  # tasks of other versions, in other places
            fws = [*fws, EnumFramework("mixed", tuple(rnd.sample(pool, min(3, len(pool)))))]
        body = writer.write(fws)
        assert body == enumerate_json(_rs(fws))
        assert body == marshal_indent(enumerate_tree(_rs(fws)))


def test_a_writer_re_encodes_only_changed_tasks(monkeypatch: Any) -> None:
    from mesosdns.records import bodies

    fws = [EnumFramework("marathon", tuple(
        EnumTask(f"t{i}", f"t{i}.id", (EnumRecord(f"t{i}.marathon.mesos.", "10.0.0.1", "A"),))
        for i in range(50)))]
    writer = EnumerateWriter()
    writer.write(fws)
    encoded: list[str] = []
    real = bodies._task

    def counting(t: EnumTask) -> bytes:
        encoded.append(t.name)
        return real(t)

    monkeypatch.setattr(bodies, "_task", counting)
    changed = list(fws[0].tasks)
    changed[7] = EnumTask("t7", "t7.id", (EnumRecord("t7.marathon.mesos.", "10.0.0.2", "A"),))
    body = writer.write([EnumFramework("marathon", tuple(changed))])
    assert encoded == ["t7"]
    assert body == marshal_indent(enumerate_tree(_rs([EnumFramework("marathon",
                                                                     tuple(changed))])))
