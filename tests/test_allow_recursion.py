"""``allowRecursion``: who may have names outside the cluster domain forwarded.

Clients outside the listed networks (default: loopback and the private
ranges) get REFUSED for anything that would go to an upstream resolver
(``resolvers``, ``zoneResolvers``, an operator zone's forwarders), over UDP
and TCP, with and without EDNS; nothing is sent upstream for them. In-domain
answers are never refused, and operator zones still answer them from their
own records. Strangers are simulated with client sockets bound to
127.0.0.2 while only 127.0.0.1/32 is allowed.
"""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from typing import Any

import dns.message
import dns.query
import dns.rcode
import pytest
from dns_support import SERIAL, LoopThread, ServerThread, Upstream, settings, wait_for

from mesosdns import config as config_module
from mesosdns.builder.service import dns_settings
from mesosdns.config import parse_config
from mesosdns.dns import settings as settings_module
from mesosdns.dns.protocol import RecursionACL
from mesosdns.records.generator import GeneratorParams
from mesosdns.state.model import parse_state
from mesosdns.zones.compile import compile_zones
from mesosdns.zones.model import load_zones

ALLOWED = "127.0.0.1"
STRANGER = "127.0.0.2"
REFUSED = dns.rcode.REFUSED


def ask(
    port: int,
    name: str,
    rdtype: str = "A",
    *,
    source: str,
    tcp: bool = False,
    edns: bool = False,
    host: str = "127.0.0.1",
) -> dns.message.Message:
    q = dns.message.make_query(name, rdtype, use_edns=0 if edns else False)
    if tcp:
        return dns.query.tcp(q, host, port=port, source=source, timeout=3)
    return dns.query.udp(q, host, port=port, source=source, timeout=3)


class Env:
    def __init__(self) -> None:
        self.lt = LoopThread()
        self.default = Upstream(self.lt, tag=1)
        self.inner = Upstream(self.lt, tag=2)
        self.zone_fwd = Upstream(self.lt, tag=3)
        s = settings(
            resolvers=(f"127.0.0.1:{self.default.port}",),
            zone_resolvers={
                "corp.internal": (f"127.0.0.1:{self.inner.port}",),
                "inner.mesos": (f"127.0.0.1:{self.inner.port}",),
            },
            allow_recursion=("127.0.0.1/32",),
        )
        self.server = ServerThread(s)
        zones = [
            {
                "name": "data",
                "origin": "corp.example",
                "records": [{"type": "A", "name": "www", "value": "10.0.0.10"}],
            },
            {
                "name": "forwarded",
                "origin": "fwd.example",
                "forwarders": [f"127.0.0.1:{self.zone_fwd.port}"],
                "records": [{"type": "A", "name": "local", "value": "10.7.7.7"}],
            },
        ]
        loaded = load_zones(zones, domains=["mesos"])
        assert loaded.problems == []
        state = parse_state(b'{"leader": "master@10.0.0.1:5050", "frameworks": [], "slaves": []}')
        params = GeneratorParams(domain="mesos", masters=("",))
        compiled = compile_zones(
            loaded.zones, s, SERIAL, state=state, params=params, records=None, reverse_ptr=False
        )
        self.server.lt.call(lambda: self.server.server.set_zones(compiled))

    def upstream_queries(self) -> int:
        return sum(len(u.queries) for u in (self.default, self.inner, self.zone_fwd))

    def close(self) -> None:
        self.server.close()
        for up in (self.default, self.inner, self.zone_fwd):
            up.close()
        self.lt.close()


@pytest.fixture(scope="module")
def env() -> Iterator[Env]:
    e = Env()
    yield e
    e.close()


OUTSIDE = [
    ("ok.example.", "A"),  # the default resolvers
    ("ok.corp.internal.", "A"),  # a zoneResolvers zone
    ("ok.inner.mesos.", "A"),  # a zoneResolvers zone inside the domain
    ("ok.fwd.example.", "A"),  # an operator zone's forwarders
    ("nginx.marathon.mesos.", "DS"),  # DS goes to the parent's servers
    ("ok.example.", "ANY"),
]


@pytest.mark.parametrize(("name", "rdtype"), OUTSIDE)
@pytest.mark.parametrize("how", ["udp", "udp+edns", "tcp"])
def test_strangers_are_refused(env: Env, name: str, rdtype: str, how: str) -> None:
    before = env.upstream_queries()
    refused = env.server.stats()["RecursionRefused"]
    r = ask(env.server.port, name, rdtype, source=STRANGER, tcp=how == "tcp", edns="edns" in how)
    assert r.rcode() == REFUSED
    assert r.question[0].name.to_text() == name
    assert env.upstream_queries() == before, "nothing goes upstream for a stranger"
    assert env.server.stats()["RecursionRefused"] == refused + 1


@pytest.mark.parametrize(("name", "rdtype"), OUTSIDE[:4])
@pytest.mark.parametrize("tcp", [False, True])
def test_allowed_clients_are_forwarded(env: Env, name: str, rdtype: str, tcp: bool) -> None:
    r = ask(env.server.port, name, rdtype, source=ALLOWED, tcp=tcp)
    assert r.rcode() == dns.rcode.NOERROR and r.answer


IN_DOMAIN = [
    ("nginx.marathon.mesos.", "A", dns.rcode.NOERROR),
    ("_nginx._tcp.marathon.mesos.", "SRV", dns.rcode.NOERROR),
    ("missing.mesos.", "A", dns.rcode.NXDOMAIN),
    ("nginx.marathon.mesos.", "ANY", dns.rcode.NOERROR),
    ("mesos.", "SOA", dns.rcode.NOERROR),
    ("NGINX.Marathon.Mesos.", "A", dns.rcode.NOERROR),
    ("www.corp.example.", "A", dns.rcode.NOERROR),  # operator zone data
    ("nothing.corp.example.", "A", dns.rcode.NXDOMAIN),
    ("local.fwd.example.", "A", dns.rcode.NOERROR),  # data in a forwarding zone
]


@pytest.mark.parametrize(("name", "rdtype", "rcode"), IN_DOMAIN)
@pytest.mark.parametrize("how", ["udp", "udp+edns", "tcp"])
def test_strangers_get_in_domain_and_zone_answers(
    env: Env, name: str, rdtype: str, rcode: int, how: str
) -> None:
    r = ask(env.server.port, name, rdtype, source=STRANGER, tcp=how == "tcp", edns="edns" in how)
    assert r.rcode() == rcode


def test_not_ready_is_servfail_not_refused() -> None:
    server = ServerThread(settings(allow_recursion=()), ready=False)
    try:
        assert ask(server.port, "ok.example.", source=ALLOWED).rcode() == dns.rcode.SERVFAIL
    finally:
        server.close()


def test_empty_list_refuses_everyone_and_zero_prefixes_allow_everyone() -> None:
    lt = LoopThread()
    up = Upstream(lt)
    nobody = ServerThread(settings(resolvers=(f"127.0.0.1:{up.port}",), allow_recursion=()))
    everyone = ServerThread(
        settings(resolvers=(f"127.0.0.1:{up.port}",), allow_recursion=("0.0.0.0/0", "::/0"))
    )
    try:
        assert ask(nobody.port, "ok.example.", source=ALLOWED).rcode() == REFUSED
        assert ask(everyone.port, "ok.example.", source=STRANGER).answer
        assert everyone.server.recursion.everyone and not nobody.server.recursion.everyone
    finally:
        nobody.close()
        everyone.close()
        up.close()
        lt.close()


def test_dual_stack_listener_checks_ipv4_clients_as_ipv4() -> None:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
    except OSError:
        pytest.skip("no IPv6 loopback")
    lt = LoopThread()
    up = Upstream(lt)
    servers = []
    try:
        for allow in (("127.0.0.1/32",), ("::1/128",)):
            server = ServerThread(
                settings(
                    listen_host="::", resolvers=(f"127.0.0.1:{up.port}",), allow_recursion=allow
                )
            )
            servers.append(server)
            r = ask(server.port, "ok.example.", source=ALLOWED)  # seen as ::ffff:127.0.0.1
            assert (r.rcode() == REFUSED) == (allow == ("::1/128",))
            r6 = ask(server.port, "ok.example.", source="::1", host="::1")
            assert (r6.rcode() == REFUSED) == (allow == ("127.0.0.1/32",))
    finally:
        for server in servers:
            server.close()
        up.close()
        lt.close()


# -- the list itself -----------------------------------------------------------


def test_default_is_loopback_and_private_ranges() -> None:
    assert settings_module.DEFAULT_ALLOW_RECURSION == config_module.DEFAULT_ALLOW_RECURSION
    acl = RecursionACL(settings_module.DEFAULT_ALLOW_RECURSION)
    for host in (
        "127.0.0.1",
        "127.9.9.9",
        "10.1.2.3",
        "172.16.0.1",
        "172.31.255.255",
        "192.168.1.1",
        "::1",
        "fd00::1",
        "fe80::1%eth0",
        "::ffff:10.0.0.1",
    ):
        assert acl.check(host), host
    for host in (
        "8.8.8.8",
        "172.32.0.1",
        "192.169.0.1",
        "11.0.0.1",
        "2001:db8::1",
        "::ffff:8.8.8.8",
        "",
        "not an ip",
        "10.0.0.1\x00",
        None,
        42,
    ):
        assert not acl.check(host), host


def test_config_maps_onto_the_server(tmp_path: Any) -> None:
    doc = {"masters": ["10.0.0.1:5050"], "allowRecursion": ["192.0.2.0/24", "2001:db8::1"]}
    config, _ = parse_config(json.dumps(doc))
    assert dns_settings(config).allow_recursion == ("192.0.2.0/24", "2001:db8::1/128")
    default, _ = parse_config(json.dumps({"masters": ["10.0.0.1:5050"]}))
    assert dns_settings(default).allow_recursion == config_module.DEFAULT_ALLOW_RECURSION


def test_verdicts_are_cached_per_source_and_bounded() -> None:
    acl = RecursionACL(("10.0.0.0/8",), max_cached=3)
    for i in range(10):
        assert acl.allows((f"10.0.0.{i}", 53))
        assert len(acl.cache) <= 3
    assert not acl.allows(None) and not acl.allows(("8.8.8.8", 53, 0, 0))


def test_counted_as_non_mesos_requests(env: Env) -> None:
    stats = env.server.stats()
    ask(env.server.port, "ok.example.", source=STRANGER)
    assert wait_for(lambda: env.server.stats()["NonMesosRequests"] == stats["NonMesosRequests"] + 1)
