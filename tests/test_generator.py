"""The record generator, case by case, against the original's rules."""

from __future__ import annotations

from typing import Any

import pytest

from mesosdns.errors import StateError
from mesosdns.records.generator import (
    GeneratorParams,
    canonical_ip,
    generate,
    hosts_to_resolve,
    task_hash,
)
from mesosdns.records.model import RecordSet
from mesosdns.state.model import parse_ports, parse_state

AGENT1 = "20160107-001256-134875658-5050-27524-S1"
AGENT2 = "20160107-001256-134875658-5050-27524-S2"


def agent(aid: str, host: str, port: int = 5051) -> dict[str, Any]:
    return {"id": aid, "pid": f"slave(1)@{host}:{port}", "hostname": f"host-{aid[-2:]}"}


def running(ts: float = 1.0, **extra: Any) -> dict[str, Any]:
    return {"state": "TASK_RUNNING", "timestamp": ts, **extra}


def task(
    tid: str,
    name: str,
    agent_id: str = AGENT1,
    state: str = "TASK_RUNNING",
    statuses: list[dict[str, Any]] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    return {
        "id": tid,
        "name": name,
        "slave_id": agent_id,
        "state": state,
        "statuses": statuses if statuses is not None else [running()],
        **extra,
    }


def doc(
    frameworks: list[dict[str, Any]],
    agents: list[dict[str, Any]] | None = None,
    leader: str = "master@10.0.0.1:5050",
) -> dict[str, Any]:
    return {
        "leader": leader,
        "frameworks": frameworks,
        "slaves": agents
        if agents is not None
        else [agent(AGENT1, "10.0.1.1"), agent(AGENT2, "10.0.1.2")],
    }


def fw(
    name: str,
    tasks: list[dict[str, Any]],
    pid: str | None = "sched@10.0.0.5:8080",
    hostname: str = "",
) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "tasks": tasks, "hostname": hostname}
    if pid is not None:
        out["pid"] = pid
    return out


def gen(d: dict[str, Any], **params: Any) -> RecordSet:
    return generate(parse_state(d), GeneratorParams(**params))


def flat(rs: RecordSet) -> set[tuple[str, str, str]]:
    out = {(n, "A", v) for n, vs in rs.a.items() for v in vs}
    out |= {(n, "AAAA", v) for n, vs in rs.aaaa.items() for v in vs}
    out |= {(n, "SRV", str(v)) for n, vs in rs.srv.items() for v in vs}
    return out


def task_records(rs: RecordSet) -> set[tuple[str, str, str]]:
    return {(r.name, r.rtype, r.host) for f in rs.frameworks for t in f.tasks for r in t.records}


def test_hash_and_tail() -> None:
    # seed 002: kafka-7fdws-s0, chronos-4dj75-s0
    assert task_hash("kafka.443d5d63-f527-11e5-81a5-2a8c0aaf83b5") == "7fdws"
    assert task_hash("chronos.40a4f462-f527-11e5-81a5-2a8c0aaf83b5") == "4dj75"
    assert task_hash("test") == "iffe9"


def test_plain_task_gets_every_record_of_the_rules_table() -> None:
    tid = "web.1"
    h = task_hash(tid)
    rs = gen(doc([fw("marathon", [task(tid, "web", resources={"ports": "[31000-31001]"})])]))
    canon = f"web-{h}-s1.marathon"
    want = {
        ("web.marathon.mesos.", "A", "10.0.1.1"),
        (f"{canon}.mesos.", "A", "10.0.1.1"),
        ("web.marathon.slave.mesos.", "A", "10.0.1.1"),
        (f"{canon}.slave.mesos.", "A", "10.0.1.1"),
    }
    for port in (31000, 31001):
        target = f"{canon}.slave.mesos.:{port}"
        for proto in ("tcp", "udp"):
            want.add((f"_web._{proto}.marathon.slave.mesos.", "SRV", target))
            want.add((f"_web._{proto}.marathon.mesos.", "SRV", target))
    assert task_records(rs) == want
    # the enumeration lists the records in the original's insertion order
    names = [r.name for r in rs.frameworks[0].tasks[0].records]
    assert names[:4] == [
        "web.marathon.mesos.",
        f"{canon}.mesos.",
        "web.marathon.slave.mesos.",
        f"{canon}.slave.mesos.",
    ]
    assert names[4:8] == [
        "_web._tcp.marathon.slave.mesos.",
        "_web._udp.marathon.slave.mesos.",
        "_web._tcp.marathon.mesos.",
        "_web._udp.marathon.mesos.",
    ]


def test_discovery_info_raw_and_labelled_names_named_ports_protocols() -> None:
    tid = "Search.7"
    h = task_hash(tid)
    disc = {
        "name": "My_Search.v2",
        "ports": {
            "ports": [
                {"number": 80, "name": "HTTP", "protocol": "TCP"},
                {"number": 53, "name": "dns", "protocol": ""},
                {"number": 9000, "protocol": "udp"},
            ]
        },
    }
    t = task(
        tid,
        "search",
        resources={"ports": "[31005-31005]"},
        discovery=disc,
        statuses=[
            running(
                netinfo := 1.0,
                container_status={
                    "network_infos": [{"ip_addresses": [{"ip_address": "172.17.0.4"}]}]
                },
            )
        ],
    )
    del netinfo
    rs = gen(doc([fw("marathon", [t])]))
    recs = task_records(rs)
    raw, lab = "My_Search.v2", "my-search-v2"
    for name in (raw, lab):
        canon = f"{name}-{h}-s1.marathon"
        assert (f"{name}.marathon.mesos.", "A", "172.17.0.4") in recs
        assert (f"{canon}.mesos.", "A", "172.17.0.4") in recs
        assert (f"{name}.marathon.slave.mesos.", "A", "10.0.1.1") in recs
        # resource ports: only the .slave. SRV records when DiscoveryInfo is given
        assert (f"_{name}._tcp.marathon.slave.mesos.", "SRV", f"{canon}.slave.mesos.:31005") in recs
        assert (f"_{name}._tcp.marathon.mesos.", "SRV", f"{canon}.slave.mesos.:31005") not in recs
        # discovery ports point at the canonical name (not .slave.)
        assert (f"_{name}._tcp.marathon.mesos.", "SRV", f"{canon}.mesos.:80") in recs
        assert (f"_http._{name}._tcp.marathon.mesos.", "SRV", f"{canon}.mesos.:80") in recs
        assert (f"_{name}._udp.marathon.mesos.", "SRV", f"{canon}.mesos.:80") not in recs
        # empty protocol: both tcp and udp; named
        for proto in ("tcp", "udp"):
            assert (f"_{name}._{proto}.marathon.mesos.", "SRV", f"{canon}.mesos.:53") in recs
            assert (f"_dns._{name}._{proto}.marathon.mesos.", "SRV", f"{canon}.mesos.:53") in recs
        assert (f"_{name}._udp.marathon.mesos.", "SRV", f"{canon}.mesos.:9000") in recs
    # the task name itself is not used when DiscoveryInfo has a name
    assert not any(n.startswith("search.") for n, _, _ in recs)
    srv_names = {n for n, k, _ in recs if k == "SRV"}
    assert not any(n.startswith("_9000") or "._." in n for n in srv_names)


def test_empty_discovery_name_means_no_discovery_info() -> None:
    t = task(
        "t1",
        "app",
        resources={"ports": "[31000-31000]"},
        discovery={"name": "", "ports": {"ports": [{"number": 80, "protocol": "tcp"}]}},
    )
    rs = gen(doc([fw("marathon", [t])]))
    assert "_app._tcp.marathon.mesos." in rs.srv
    assert all(t.port == 31000 for t in rs.srv["_app._tcp.marathon.mesos."])


@pytest.mark.parametrize(
    ("sources", "want_a", "want_aaaa"),
    [
        (("netinfo", "mesos", "host"), ["10.9.0.2"], ["fd01::2"]),
        (("mesos", "host"), ["10.8.0.2"], []),
        (("docker", "host"), ["10.7.0.2"], []),
        (("host",), ["10.0.1.1"], []),
        (("bogus", "docker"), ["10.7.0.2"], []),
        (("netinfo",), ["10.9.0.2"], ["fd01::2"]),
    ],
)
def test_ip_sources_in_order_from_the_latest_running_status(
    sources: tuple[str, ...], want_a: list[str], want_aaaa: list[str]
) -> None:
    labels = [
        {"key": "MesosContainerizer.NetworkSettings.IPAddress", "value": "10.8.0.2"},
        {"key": "Docker.NetworkSettings.IPAddress", "value": "10.7.0.2"},
    ]
    old = running(10.0, container_status={"network_infos": [{"ip_address": "10.9.0.1"}]})
    new = running(
        20.0,
        labels=labels,
        container_status={
            "network_infos": [
                {"ip_addresses": [{"ip_address": "10.9.0.2"}, {"ip_address": "fd01:0::2"}]}
            ]
        },
    )
    stale = {
        "state": "TASK_STAGING",
        "timestamp": 30.0,
        "container_status": {"network_infos": [{"ip_address": "10.9.0.9"}]},
    }
    rs = gen(doc([fw("m", [task("t", "app", statuses=[old, new, stale])])]), ip_sources=sources)
    assert sorted(rs.a.get("app.m.mesos.", ())) == want_a
    assert sorted(rs.aaaa.get("app.m.mesos.", ())) == want_aaaa


def test_old_netinfo_field_and_ipv4_mapped_and_invalid_ips() -> None:
    st1 = running(
        1.0,
        container_status={
            "network_infos": [
                {"ip_address": "::ffff:10.5.0.9"},
                {"ip_address": "not-an-ip"},
                {"ip_address": "fe80::1%eth0"},
                {"ip_addresses": [{"ip_address": "2001:DB8:0:0::1"}]},
            ]
        },
    )
    rs = gen(doc([fw("m", [task("t", "app", statuses=[st1])])]))
    assert rs.a["app.m.mesos."] == ("10.5.0.9",)
    assert rs.aaaa["app.m.mesos."] == ("2001:db8::1",)


def test_only_running_tasks_on_known_agents() -> None:
    tasks = [
        task("a", "good"),
        task("b", "staged", state="TASK_STAGING"),
        task("c", "gone", state="TASK_FINISHED"),
        task("d", "lost", agent_id="nope-S9"),
    ]
    rs = gen(doc([fw("m", tasks)]))
    assert "good.m.mesos." in rs.a
    assert not {"staged.m.mesos.", "gone.m.mesos.", "lost.m.mesos."} & set(rs.a)
    assert [t.name for t in rs.frameworks[0].tasks] == ["good"]


def test_framework_agent_leader_master_and_ns_records() -> None:
    frameworks = [
        fw("Marathon.Prod", []),
        fw("http-api", [], pid=None, hostname="10.0.0.7"),
        fw("resolved", [], pid="s@sched.example:99"),
        fw("unresolved", [], pid=None, hostname="nowhere.example"),
    ]
    agents = [agent(AGENT1, "10.0.1.1"), agent(AGENT2, "[2001:db8::7]")]
    rs = gen(
        doc(frameworks, agents, leader="master@10.0.0.2:5050"),
        masters=("", "10.0.0.1:5050", "10.0.0.2:5050", "10.0.0.3:5050"),
        listener_ips=("10.0.0.9", "fd00::9"),
        ns_name="ns1.mesos.",
        resolved={"sched.example": ("10.0.0.8",)},
    )
    f = flat(rs)
    assert ("marathon.prod.mesos.", "A", "10.0.0.5") in f
    assert ("_framework._tcp.marathon.prod.mesos.", "SRV", "marathon.prod.mesos.:8080") in f
    assert ("http-api.mesos.", "A", "10.0.0.7") in f
    assert "_framework._tcp.http-api.mesos." not in rs.srv
    assert ("resolved.mesos.", "A", "10.0.0.8") in f
    assert "unresolved.mesos." not in rs.a
    assert rs.a["slave.mesos."] == ("10.0.1.1",) and rs.aaaa["slave.mesos."] == ("2001:db8::7",)
    assert [str(t) for t in rs.srv["_slave._tcp.mesos."]] == ["slave.mesos.:5051"]
    assert rs.a["leader.mesos."] == ("10.0.0.2",)
    assert [str(t) for t in rs.srv["_leader._udp.mesos."]] == ["leader.mesos.:5050"]
    assert rs.a["master.mesos."] == ("10.0.0.2", "10.0.0.1", "10.0.0.3")
    assert [rs.a[f"master{i}.mesos."] for i in range(3)] == [
        ("10.0.0.1",),
        ("10.0.0.2",),
        ("10.0.0.3",),
    ]
    assert rs.a["ns1.mesos."] == ("10.0.0.9",) and rs.aaaa["ns1.mesos."] == ("fd00::9",)


@pytest.mark.parametrize(
    ("masters", "leader", "want"),
    [
        ((), "5@0.0.0.6:7", {"master0": ["0.0.0.6"], "master": ["0.0.0.6"]}),
        (
            ("0.0.0.8:9",),
            "5@0.0.0.6:7",
            {"master0": ["0.0.0.8"], "master1": ["0.0.0.6"], "master": ["0.0.0.6", "0.0.0.8"]},
        ),
        (
            ("0.0.0.8:9", "0.0.0.8:9"),
            "5@0.0.0.6:7",
            {"master0": ["0.0.0.8"], "master1": ["0.0.0.6"], "master": ["0.0.0.6", "0.0.0.8"]},
        ),
        (
            ("0.0.0.8:9", "0.0.0.6:7", "0.0.0.6:7", "0.0.0.7:0"),
            "5@0.0.0.6:7",
            {
                "master0": ["0.0.0.8"],
                "master1": ["0.0.0.6"],
                "master2": ["0.0.0.7"],
                "master": ["0.0.0.6", "0.0.0.8", "0.0.0.7"],
            },
        ),
        (
            ("", "0.0.0.6:7", "[2001:db8::1]:0"),
            "5@0.0.0.6:7",
            {
                "master0": ["0.0.0.6"],
                "master1": ["2001:db8::1"],
                "master": ["0.0.0.6", "2001:db8::1"],
            },
        ),
        # a leader ZooKeeper names comes first and so becomes master0
        (
            ("0.0.0.7:7", "0.0.0.6:7", "0.0.0.7:7"),
            "5@0.0.0.7:7",
            {"master0": ["0.0.0.7"], "master1": ["0.0.0.6"], "master": ["0.0.0.7", "0.0.0.6"]},
        ),
    ],
)
def test_master_records(masters: tuple[str, ...], leader: str, want: dict[str, list[str]]) -> None:
    rs = gen(doc([], [], leader=leader), masters=masters, domain="foo.com", listener_ips=())
    got = {
        n.split(".")[0]: list(rs.a.get(n, ()) + rs.aaaa.get(n, ()))
        for n in set(rs.a) | set(rs.aaaa)
        if n.startswith("master")
    }
    assert got == want
    assert [str(t) for t in rs.srv["_leader._tcp.foo.com."]] == ["leader.foo.com.:7"]


@pytest.mark.parametrize("leader", ["", "@", "1@", "@2", "3@4", "x@host.example:5050"])
def test_malformed_leader_gives_no_master_records(leader: str) -> None:
    d = doc([], [], leader=leader or "x")
    d["leader"] = leader or "nothing"
    rs = gen(d, listener_ips=())
    assert not rs.a and not rs.srv


def test_agent_known_by_host_name() -> None:
    agents = [agent(AGENT1, "agent-7.example.internal"), agent(AGENT2, "Agent-8.Example")]
    d = doc([fw("m", [task("t1", "one"), task("t2", "two", agent_id=AGENT2)])], agents)
    assert hosts_to_resolve(parse_state(d)) == {
        "agent-7.example.internal",
        "Agent-8.Example",
    }
    rs = gen(d, resolved={"agent-7.example.internal": ("10.0.1.7", "fd00::7")})
    assert rs.a["one.m.slave.mesos."] == ("10.0.1.7",)
    assert rs.aaaa["one.m.slave.mesos."] == ("fd00::7",)
    assert rs.a["one.m.mesos."] == ("10.0.1.7",)  # host source
    # unresolved: as the original, the labelled host name stands in for an address
    assert rs.a["two.m.slave.mesos."] == ("agent-8.example",)
    assert "two.m.mesos." not in rs.a
    assert rs.a["slave.mesos."] == ("10.0.1.7",)


def test_names_labels_and_rfc952() -> None:
    tasks = [
        task("1", "my_app.v2"),
        task("2", "x" * 70),
        task("3", "$$$"),
        task("4", "nginx-router-mesosphere-tutorial"),
    ]
    frameworks = [fw("Marathon.Prod", tasks), fw("", [task("5", "orphan")])]
    rs = gen(doc(frameworks))
    assert "my-app-v2.marathon.prod.mesos." in rs.a
    assert "x" * 63 + ".marathon.prod.mesos." in rs.a
    assert ".marathon.prod.mesos." in rs.a  # an empty label still gets records
    assert "orphan..mesos." in rs.a
    canon = [n for n in rs.a if n.startswith("x" * 63 + "-")]
    assert canon and len(canon[0].split(".")[0]) > 63  # the canonical name is not cut again
    rs952 = gen(doc(frameworks), rfc952=True)
    assert "nginx-router-mesospheret.marathon.prod.mesos." in rs952.a
    assert "x" * 24 + ".marathon.prod.mesos." in rs952.a


def test_duplicates_collapse() -> None:
    tasks = [task("a1", "web"), task("a2", "web"), task("a1", "web")]
    rs = gen(doc([fw("m", tasks)]))
    assert rs.a["web.m.mesos."] == ("10.0.1.1",)
    enum = rs.frameworks[0].tasks
    assert len(enum) == 3 and enum[2].records == ()  # every record already present


def test_enumeration_shape() -> None:
    rs = gen(doc([fw("m", [task("t", "web")]), fw("empty", [])]))
    assert [f.name for f in rs.frameworks] == ["m", "empty"]
    assert rs.frameworks[1].tasks == ()
    t = rs.frameworks[0].tasks[0]
    assert (t.name, t.id) == ("web", "t")


def test_ports_parsing() -> None:
    assert parse_ports("[31000-31002, 31005-31005]") == (31000, 31001, 31002, 31005)
    assert parse_ports("[]") == () and parse_ports("") == ()
    assert parse_ports("[1-x, 7-8]") == (7, 8)
    assert len(parse_ports("[0-99999999]")) == 65536  # clamped, never millions


def test_canonical_ip() -> None:
    assert canonical_ip("::ffff:1.2.3.4") == ("1.2.3.4", "A")
    assert canonical_ip("2001:0db8:0000:0000:0000:0000:0000:0001") == ("2001:db8::1", "AAAA")
    assert canonical_ip("2001:db8:0:1:1:1:1:1") == ("2001:db8:0:1:1:1:1:1", "AAAA")
    assert canonical_ip("010.1.1.1") is None and canonical_ip("") is None


@pytest.mark.parametrize("data", [b"not json", b"[]", b"{}", b'{"leader": ""}', b'{"leader": 5}'])
def test_malformed_documents_raise(data: bytes) -> None:
    with pytest.raises(StateError):
        parse_state(data)


def test_malformed_items_are_skipped_and_counted() -> None:
    d = doc(
        [
            fw(
                "m",
                [
                    task("ok", "ok"),
                    "garbage",
                    {"id": 5, "name": "bad"},
                    task(
                        "st",
                        "st",
                        statuses=[{"state": "TASK_RUNNING", "timestamp": "x"}, running()],
                    ),
                ],
            ),
            "junk",
            fw("badpid", [task("bp", "bp")], pid="nonsense"),
        ],
        [agent(AGENT1, "10.0.1.1"), {"id": "x", "pid": 7}, {"id": "y"}],
    )
    st = parse_state(d)
    assert st.skipped == 7
    rs = generate(st, GeneratorParams())
    assert "ok.m.mesos." in rs.a and "st.m.mesos." in rs.a
    assert "bp.badpid.mesos." in rs.a and "badpid.mesos." not in rs.a
