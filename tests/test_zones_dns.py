"""Operator zones over real DNS: the server on 127.0.0.1, clients bound to
127.0.0.x source addresses (for the source filters), small upstreams for the
zones' forwarders and the default resolvers, queried over UDP and TCP with
dnspython and ``dig``; and the whole application from a config file."""

from __future__ import annotations

import json
import re
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import dns.reversename
import pytest
from conftest import require_tool
from dns_support import (
    SERIAL,
    LoopThread,
    ServerThread,
    Upstream,
    section_texts,
    settings,
    wait_for,
)

from mesosdns.app import App
from mesosdns.config import parse_config
from mesosdns.dns.answers import compile_answers
from mesosdns.dns.opzones import CompiledZones
from mesosdns.dns.settings import DNSSettings
from mesosdns.records.generator import GeneratorParams, generate
from mesosdns.state.model import parse_state
from mesosdns.zones.compile import compile_zones
from mesosdns.zones.model import load_zones

ROOT = Path(__file__).resolve().parent.parent
STATE = parse_state((ROOT / "fixtures" / "demo-state.json").read_bytes())
PARAMS = GeneratorParams(domain="mesos", masters=("", "10.0.0.11:5050"))
TIMEOUT = 0.5  # the forwarders' timeout


def zones_config(u1: int, u2: int) -> list[dict[str, Any]]:
    def a(name: str, ip: str) -> dict[str, str]:
        return {"type": "A", "name": name, "value": ip}

    return [
        {
            "name": "corp",
            "origin": "corp.example",
            "priority": 10,
            "records": [a("www", "10.0.0.10"), {"type": "CNAME", "name": "web", "value": "www"}],
        },
        {
            "name": "site-a",
            "origin": "corp.example",
            "priority": 5,
            "filters": [{"type": "pktsrc", "filter": "127.0.0.2/32"}],
            "records": [a("www", "10.0.0.5")],
        },
        {
            "name": "fwd-stop",
            "origin": "fwd.example",
            "forwarders": [f"127.0.0.1:{u1}"],
            "records": [a("local", "10.7.7.7")],
        },
        {
            "name": "fwd-continue",
            "origin": "fwdc.example",
            "priority": 1,
            "continue": True,
            "forwarders": [f"127.0.0.1:{u1}"],
        },
        {
            "name": "after",
            "origin": "fwdc.example",
            "priority": 2,
            "records": [
                a("nx", "10.6.6.6"),
                a("slow", "10.6.6.7"),
                a("none", "10.6.6.8"),
                a("fail", "10.6.6.9"),
            ],
        },
        {
            "name": "site-b-everything",
            "origin": ".",
            "priority": 100,
            "continue": True,
            "filters": [{"type": "pktsrc", "filter": "127.0.0.3/32"}],
            "forwarders": [f"127.0.0.1:{u2}"],
        },
        {
            "name": "apps",
            "origin": "apps.corp.test",
            "records": [
                {"type": "A", "name": "eval:{task.name}.apps.corp.test", "value": "{task.ip}"}
            ],
        },
    ]


def compiled(
    zones: list[dict[str, Any]], s: DNSSettings, reverse_ptr: bool = True
) -> CompiledZones:
    loaded = load_zones(zones, domains=["mesos"])
    assert loaded.problems == []
    return compile_zones(
        loaded.zones,
        s,
        SERIAL,
        state=STATE,
        params=PARAMS,
        records=generate(STATE, PARAMS),
        reverse_ptr=reverse_ptr,
    )


class Env:
    def __init__(self) -> None:
        self.lt = LoopThread()
        self.u1 = Upstream(self.lt, tag=1)
        self.u2 = Upstream(self.lt, tag=2)
        self.default = Upstream(self.lt, tag=9)
        s = settings(resolvers=(f"127.0.0.1:{self.default.port}",), timeout=TIMEOUT)
        table = compile_answers(generate(STATE, PARAMS), s, SERIAL)
        self.server = ServerThread(s, table)
        self.settings = s
        self.zones = compiled(zones_config(self.u1.port, self.u2.port), s)
        self.server.lt.call(lambda: self.server.server.set_zones(self.zones))

    def close(self) -> None:
        self.server.close()
        for up in (self.u1, self.u2, self.default):
            up.close()
        self.lt.close()


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    e = Env()
    yield e
    e.close()


def ask(
    port: int,
    name: str,
    rdtype: str = "A",
    *,
    source: str = "127.0.0.1",
    tcp: bool = False,
    edns: bool = False,
) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, use_edns=0 if edns else False)
    if tcp:
        return dns.query.tcp(q, "127.0.0.1", port=port, source=source, timeout=3)
    return dns.query.udp(q, "127.0.0.1", port=port, source=source, timeout=3)


def summary(r: dns.message.Message) -> str:
    """``RCODE [aa] answer; answer [+SOA]``, answer owners left out."""
    parts = [dns.rcode.to_text(r.rcode())]
    if r.flags & dns.flags.AA:
        parts.append("aa")
    answers = [f"{dns.rdatatype.to_text(rr.rdtype)} {rd.to_text()}" for rr in r.answer for rd in rr]
    text = " ".join(parts)
    if answers:
        text += " " + "; ".join(answers)
    if any(rr.rdtype == dns.rdatatype.SOA for rr in r.authority):
        text += " +SOA"
    return text


CASES = [
    # name, type, source, summary
    ("www.corp.example.", "A", "127.0.0.1", "NOERROR aa A 10.0.0.10"),
    ("www.corp.example.", "A", "127.0.0.2", "NOERROR aa A 10.0.0.5"),  # filtered zone
    ("www.corp.example.", "A", "127.0.0.4", "NOERROR aa A 10.0.0.10"),
    ("web.corp.example.", "A", "127.0.0.1", "NOERROR aa CNAME www.corp.example.; A 10.0.0.10"),
    ("nothing.corp.example.", "A", "127.0.0.1", "NXDOMAIN aa +SOA"),
    ("www.corp.example.", "MX", "127.0.0.1", "NOERROR aa +SOA"),
    # forwarders: data first; an answer is relayed (the upstream's flags)
    ("local.fwd.example.", "A", "127.0.0.1", "NOERROR aa A 10.7.7.7"),
    ("ok.fwd.example.", "A", "127.0.0.1", "NOERROR aa A 192.0.2.1"),
    # no answer, continue false: the negative reply relayed; silence: SERVFAIL
    ("nx.fwd.example.", "A", "127.0.0.1", "NXDOMAIN aa"),
    ("fail.fwd.example.", "A", "127.0.0.1", "SERVFAIL aa"),
    ("slow.fwd.example.", "A", "127.0.0.1", "SERVFAIL"),
    # no answer, continue true: the next zone
    ("ok.fwdc.example.", "A", "127.0.0.1", "NOERROR aa A 192.0.2.1"),
    ("nx.fwdc.example.", "A", "127.0.0.1", "NOERROR aa A 10.6.6.6"),
    ("slow.fwdc.example.", "A", "127.0.0.1", "NOERROR aa A 10.6.6.7"),
    ("none.fwdc.example.", "A", "127.0.0.1", "NOERROR aa A 10.6.6.8"),  # NODATA is no answer
    ("fail.fwdc.example.", "A", "127.0.0.1", "NOERROR aa A 10.6.6.9"),
    ("zzz.fwdc.example.", "A", "127.0.0.1", "NXDOMAIN aa +SOA"),
    # names no zone claims: the default resolvers
    ("ok.example.org.", "A", "127.0.0.1", "NOERROR aa A 192.0.2.9"),
    # ... unless the catch-all zone of 127.0.0.3 claims them, with its forwarder
    ("ok.example.org.", "A", "127.0.0.3", "NOERROR aa A 192.0.2.2"),
    # which continues when it has no answer: on to the default resolvers
    ("only9.example.org.", "A", "127.0.0.3", "NOERROR aa A 192.0.2.9"),
    # the cluster domain always answers first, whatever the zones
    ("leader.mesos.", "A", "127.0.0.3", "NOERROR aa A 10.0.0.11"),
    # templates over the state
    ("redis.apps.corp.test.", "A", "127.0.0.1", "NOERROR aa A 10.250.2.5"),
    # automatic PTR (operator zones) and cluster PTR
    ("-x 10.0.0.10", "PTR", "127.0.0.1", "NOERROR aa PTR www.corp.example."),
    ("-x 10.0.0.5", "PTR", "127.0.0.2", "NOERROR aa PTR www.corp.example."),
    # another source: site-a is skipped, no zone claims the name, the default upstream
    # answers (its empty NOERROR)
    ("-x 10.0.0.5", "PTR", "127.0.0.1", "NOERROR aa"),
    ("-x 10.0.0.11", "PTR", "127.0.0.1", "NOERROR aa PTR master0.mesos."),
    (
        "-x 10.250.2.5",
        "PTR",
        "127.0.0.1",  # the cluster's PTR comes before the zones'
        "NOERROR aa PTR redis-cjhcs-s2.marathon.mesos.",
    ),
]


def reverse(name: str) -> str:
    """``-x ADDRESS`` (as dig writes it) -> the reverse name."""
    if name.startswith("-x "):
        return dns.reversename.from_address(name[3:]).to_text()
    return name


@pytest.mark.parametrize("tcp", [False, True], ids=["udp", "tcp"])
@pytest.mark.parametrize(("name", "rdtype", "source", "expected"), CASES)
def test_zones_over_dns(
    env: Env, name: str, rdtype: str, source: str, expected: str, tcp: bool
) -> None:
    r = ask(env.server.port, reverse(name), rdtype, source=source, tcp=tcp)
    assert summary(r) == expected


def test_zone_answers_echo_edns_and_keep_the_question_case(env: Env) -> None:
    r = ask(env.server.port, "WWW.Corp.Example.", "A", edns=True)
    assert r.edns == 0 and r.payload > 512
    assert section_texts(r.answer) == ["WWW.Corp.Example. 3600 IN A 10.0.0.10"]
    assert r.question[0].name.to_text() == "WWW.Corp.Example."
    assert {"QR", "AA", "RD", "RA"} == set(dns.flags.to_text(r.flags).split())


def test_zone_forwarders_get_the_query_as_sent(env: Env) -> None:
    before = len(env.u1.queries)
    ask(env.server.port, "ok.fwd.example.", "A", edns=True)
    proto, sent = env.u1.queries[before]
    assert proto == "udp"
    assert dns.message.from_wire(sent).question[0].name.to_text() == "ok.fwd.example."


def test_zones_are_swapped_per_refresh(env: Env) -> None:
    port = env.server.port
    server = env.server.server
    other = compiled(
        [
            {
                "name": "corp",
                "origin": "corp.example",
                "records": [{"type": "A", "name": "www", "value": "10.0.0.99"}],
            }
        ],
        env.settings,
        reverse_ptr=False,
    )
    try:
        env.server.lt.call(lambda: server.set_zones(other))
        assert summary(ask(port, "www.corp.example.")) == "NOERROR aa A 10.0.0.99"
        assert summary(ask(port, "ok.fwd.example.")) == "NOERROR aa A 192.0.2.9"  # default
        env.server.lt.call(lambda: server.set_zones(None))  # zones off: default forwarding
        assert summary(ask(port, "ok.corp.example.")) == "NOERROR aa A 192.0.2.9"
    finally:
        env.server.lt.call(lambda: server.set_zones(env.zones))
    assert summary(ask(port, "www.corp.example.")) == "NOERROR aa A 10.0.0.10"
    assert summary(ask(port, "ok.corp.example.")) == "NXDOMAIN aa +SOA"


def test_zone_counters(env: Env) -> None:
    stats = env.server.lt.call(lambda: env.server.server.zone_stats.as_dict())
    assert stats["ZoneAnswered"] > 0 and stats["ZoneForwarded"] > 0
    assert stats["ZoneContinued"] > 0 and stats["ZoneUnclaimed"] > 0


# --------------------------------------------------------------------------- dig


def run_dig(port: int, *args: str) -> str:
    cmd = [require_tool("dig"), "@127.0.0.1", "-p", str(port), "+time=3", "+tries=1", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


@pytest.mark.parametrize("transport", ["+notcp", "+tcp"])
def test_dig(env: Env, transport: str) -> None:
    port = env.server.port
    assert run_dig(port, transport, "+short", "www.corp.example").split() == ["10.0.0.10"]
    assert run_dig(port, transport, "-b", "127.0.0.2", "+short", "www.corp.example").split() == [
        "10.0.0.5"
    ]
    assert run_dig(port, transport, "+short", "-x", "10.0.0.10").split() == ["www.corp.example."]
    out = run_dig(port, transport, "nothing.corp.example")
    assert re.search(r"status: NXDOMAIN", out) and "flags: qr aa rd ra;" in out
    assert re.search(r"corp\.example\.\s+3600\s+IN\s+SOA\s+ns1\.mesos\.", out)


# --------------------------------------------------------------------------- the application


ZONE_FILE = """$TTL 300
@   IN SOA ns1.corp.example. hostmaster.corp.example. ( 1 7200 3600 1209600 300 )
    IN NS ns1
ns1 IN A 192.0.2.1
www IN A 192.0.2.10
"""


def app_config(tmp_path: Path, www: str) -> Path:
    (tmp_path / "corp.zone").write_text(ZONE_FILE.replace("192.0.2.10", www))
    doc = {
        "stateFile": str(ROOT / "fixtures" / "demo-state.json"),
        "masters": ["10.0.0.11:5050"],
        "port": 0,
        "listener": "127.0.0.1",
        "httpon": False,
        "resolvers": ["127.0.0.1:9"],
        "timeout": 1,
        "refreshSeconds": 3600,
        "reversePTR": True,
        "zones": [
            {
                "name": "corp",
                "origin": "corp.example",
                "file": "corp.zone",
                "records": [
                    {
                        "type": "A",
                        "name": "eval:{task.name}.apps.corp.example",
                        "value": "{task.ip}",
                    }
                ],
            }
        ],
    }
    path = tmp_path / "config.json"
    path.write_text(json.dumps(doc))
    return path


def test_the_application_serves_zones_and_reloads_them(tmp_path: Path) -> None:
    path = app_config(tmp_path, "192.0.2.10")
    config, _ = parse_config(path.read_bytes(), str(path))
    lt = LoopThread()
    app = App(config)
    try:
        lt.run(app.start())
        assert app.dns is not None
        port = app.dns.port
        assert wait_for(lambda: app.dns is not None and app.dns.ready, 5)
        assert wait_for(lambda: app.dns is not None and app.dns.zones is not None, 5)
        assert summary(ask(port, "www.corp.example.")) == "NOERROR aa A 192.0.2.10"
        r = ask(port, "nginx.apps.corp.example.", tcp=True)
        assert sorted(section_texts(r.answer)) == [
            "nginx.apps.corp.example. 3600 IN A 10.0.1.21",
            "nginx.apps.corp.example. 3600 IN A 10.0.1.22",
        ]
        assert (
            summary(ask(port, dns.reversename.from_address("192.0.2.10").to_text(), "PTR"))
            == "NOERROR aa PTR www.corp.example."
        )
        assert (
            summary(ask(port, dns.reversename.from_address("10.0.0.11").to_text(), "PTR"))
            == "NOERROR aa PTR master0.mesos."
        )
        # SIGHUP: the zone file changed; the zones are recompiled at once
        app_config(tmp_path, "192.0.2.77")
        lt.call(app.reload)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if summary(ask(port, "www.corp.example.")) == "NOERROR aa A 192.0.2.77":
                break
            time.sleep(0.05)
        assert summary(ask(port, "www.corp.example.")) == "NOERROR aa A 192.0.2.77"
    finally:
        lt.run(app.stop())
        lt.close()
