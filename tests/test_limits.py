"""Resource limits: slow, silent or greedy clients cannot hold the server's
resources, and floods of TCP connections or forwarded questions do not stop
in-domain UDP answers.

- TCP: at most ``maxTcpConnections`` connections (more are closed at once);
  a connection is closed ``tcpIdleTimeout`` after its last complete message,
  however it stalls: silent, trickling the bytes of one message (slow loris),
  or never reading its replies;
- forwarding: at most ``maxInflightForwards`` questions upstream; above that,
  SERVFAIL at once;
- per-source state: the allowRecursion verdicts cached per client address
  are bounded.

Latencies are printed (figures for docs/reliability.md), never asserted
beyond "answered within the client's timeout".
"""

from __future__ import annotations

import asyncio
import socket
import struct
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from types import MappingProxyType

import dns.flags
import dns.message
import dns.query
import orjson
import pytest
import uvloop
from conftest import require_tool
from dns_support import (
    ServerThread,
    compile_table,
    ips,
    query,
    raw_udp,
    settings,
    wait_for,
)
from reliability_support import AppThread, BadUpstream, Prober, good_state, report

from mesosdns.records.model import RecordSet, SRVTarget

IN_DOMAIN = "nginx.marathon.mesos."
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def tcp_connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=3)


def closed_by_peer(sock: socket.socket, timeout: float) -> bool:
    sock.settimeout(timeout)
    try:
        return sock.recv(65536) == b""
    except ConnectionResetError:
        return True
    except TimeoutError:
        return False


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_factory(request: pytest.FixtureRequest) -> LoopFactory:
    return asyncio.new_event_loop if request.param == "asyncio" else uvloop.new_event_loop


# -- TCP ---------------------------------------------------------------------


def test_connection_flood_is_capped_and_udp_keeps_answering(
    request: pytest.FixtureRequest,
) -> None:
    server = ServerThread(settings(max_tcp_connections=50, tcp_idle_timeout=1.5))
    held: list[socket.socket] = []
    try:
        with Prober(server.port, IN_DOMAIN) as probe:
            held = [tcp_connect(server.port) for _ in range(50)]
            assert wait_for(lambda: len(server.server._conns) == 50)
            refused = 0
            started = time.monotonic()
            for _ in range(500):  # a flood of connections over the cap
                with tcp_connect(server.port) as extra:
                    refused += closed_by_peer(extra, 2.0)
            flood_s = time.monotonic() - started
            assert refused == 500
            assert len(server.server._conns) == 50
            # the held ones go at their idle timeout; then TCP works again
            assert all(closed_by_peer(s, 3.0) for s in held)
            assert query(server.port, IN_DOMAIN, tcp=True).answer
        assert probe.lost == 0, probe.summary()
        report(
            request,
            f"TCP connection flood (500 over a cap of 50 in {flood_s:.2f}s): "
            f"in-domain UDP {probe.summary()}",
        )
    finally:
        for s in held:
            s.close()
        server.close()


def test_silent_clients_are_closed_at_the_idle_timeout(
    request: pytest.FixtureRequest, loop_factory: LoopFactory
) -> None:
    server = ServerThread(settings(tcp_idle_timeout=0.5), loop_factory=loop_factory)
    try:
        socks = [tcp_connect(server.port) for _ in range(20)]
        started = time.monotonic()
        assert all(closed_by_peer(s, 3.0) for s in socks)
        took = time.monotonic() - started
        assert wait_for(lambda: not server.server._conns)
        for s in socks:
            s.close()
        report(request, f"20 silent TCP clients, idle timeout 0.5 s: all closed after {took:.2f}s")
    finally:
        server.close()


def test_slow_loris_is_closed_however_often_it_sends_a_byte(
    request: pytest.FixtureRequest, loop_factory: LoopFactory
) -> None:
    server = ServerThread(settings(tcp_idle_timeout=0.6), loop_factory=loop_factory)
    try:
        sock = tcp_connect(server.port)
        sock.sendall(b"\xff\xff")  # announces a 65,535-byte message ...
        started = time.monotonic()
        closed = False
        for _ in range(60):  # ... and sends it one byte every 50 ms
            try:
                sock.sendall(b"a")
            except OSError:
                closed = True
                break
            if closed_by_peer(sock, 0.05):
                closed = True
                break
        took = time.monotonic() - started
        sock.close()
        assert closed, "a slow loris held the connection"
        assert wait_for(lambda: not server.server._conns)
        report(
            request,
            f"slow loris (1 byte / 50 ms), idle timeout 0.6 s: closed after {took:.2f}s",
        )
    finally:
        server.close()


def test_a_slow_but_complete_client_stays(loop_factory: LoopFactory) -> None:
    """One whole query every 0.2 s on a connection with a 0.5 s idle timeout."""
    server = ServerThread(settings(tcp_idle_timeout=0.5), loop_factory=loop_factory)
    try:
        q = dns.message.make_query(IN_DOMAIN, "A").to_wire()
        with tcp_connect(server.port) as sock:
            for _ in range(8):
                sock.sendall(struct.pack(">H", len(q)) + q)
                head = sock.recv(2)
                assert len(head) == 2
                body = b""
                while len(body) < struct.unpack(">H", head)[0]:
                    body += sock.recv(65535)
                time.sleep(0.2)
    finally:
        server.close()


def test_a_client_that_never_reads_is_closed(
    request: pytest.FixtureRequest, loop_factory: LoopFactory
) -> None:
    server = ServerThread(settings(tcp_idle_timeout=0.5), loop_factory=loop_factory)
    try:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        sock.setblocking(False)
        q = dns.message.make_query("_big._tcp.marathon.mesos.", "SRV").to_wire()
        burst = (struct.pack(">H", len(q)) + q) * 50
        started = time.monotonic()
        closed = False
        while time.monotonic() - started < 5:
            try:
                sock.send(burst)
            except BlockingIOError:
                time.sleep(0.02)
            except OSError:
                closed = True
                break
        took = time.monotonic() - started
        sock.close()
        assert closed, "a client that never reads held the connection"
        assert wait_for(lambda: not server.server._conns)
        report(request, f"TCP client never reading, idle timeout 0.5 s: closed after {took:.2f}s")
    finally:
        server.close()


# -- forwarding ------------------------------------------------------------------


def test_forward_flood_is_bounded_and_in_domain_udp_keeps_answering(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    dnsperf = require_tool("dnsperf")
    upstream = BadUpstream("silent")
    server = ServerThread(
        settings(resolvers=(upstream.address,), max_inflight_forwards=100, timeout=1.0)
    )
    try:
        data = tmp_path / "forwarded.txt"
        data.write_text("".join(f"name-{i}.example. A\n" for i in range(5000)))
        peak = 0

        def sample() -> None:
            nonlocal peak
            peak = max(peak, server.server._forwarder.inflight)

        with Prober(server.port, IN_DOMAIN) as probe:
            proc = subprocess.Popen(
                [
                    dnsperf,
                    "-s",
                    "127.0.0.1",
                    "-p",
                    str(server.port),
                    "-d",
                    str(data),
                    "-l",
                    "3",
                    "-Q",
                    "5000",
                    "-q",
                    "10000",
                    "-t",
                    "2",
                ],
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            while proc.poll() is None:
                server.lt.call(sample)
                time.sleep(0.05)
            out = proc.communicate()[0]
        stats = server.stats()
        assert peak <= 100
        assert stats["NonMesosFailed"] > 0  # SERVFAIL: over the bound, or timed out
        assert stats["Errors"] == 0
        assert probe.lost == 0, probe.summary()
        assert "SERVFAIL" in out, out
        sent = next((line.strip() for line in out.splitlines() if "Queries sent" in line), "")
        report(
            request,
            f"forward flood to a silent upstream ({sent}, 5,000 q/s for 3 s, "
            f"maxInflightForwards 100, peak in flight {peak}): "
            f"in-domain UDP {probe.summary()}",
        )
    finally:
        server.close()
        upstream.close()


def test_tcp_forward_flood_is_bounded() -> None:
    upstream = BadUpstream("silent")
    server = ServerThread(
        settings(resolvers=(upstream.address,), max_inflight_forwards=20, timeout=1.0)
    )
    try:
        queries = [dns.message.make_query(f"name-{i}.example.", "A").to_wire() for i in range(50)]
        wire = b"".join(struct.pack(">H", len(w)) + w for w in queries)
        socks = [tcp_connect(server.port) for _ in range(4)]
        for s in socks:
            s.sendall(wire)
        assert wait_for(lambda: server.stats()["NonMesosRequests"] == 200, 3)
        assert server.server._forwarder.inflight <= 20
        assert query(server.port, IN_DOMAIN).answer
        for s in socks:
            s.close()
    finally:
        server.close()
        upstream.close()


# -- per-source state --------------------------------------------------------------


def test_recursion_verdicts_per_source_are_bounded() -> None:
    server = ServerThread(settings(allow_recursion=("127.0.0.1/32",)))
    try:
        server.lt.call(lambda: setattr(server.server.recursion, "max_cached", 64))
        q = dns.message.make_query("www.example.", "A").to_wire()
        refused = 0
        for i in range(300):
            source = f"127.0.{1 + i // 250}.{i % 250 + 1}"
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
                s.bind((source, 0))
                s.settimeout(2)
                s.sendto(q, ("127.0.0.1", server.port))
                reply = s.recv(512)
                refused += (reply[3] & 0x0F) == 5
        assert refused == 300
        size = server.lt.call(lambda: len(server.server.recursion.cache))
        assert 0 < size <= 64
        assert server.stats()["RecursionRefused"] == 300
    finally:
        server.close()


# -- HTTP ------------------------------------------------------------------------


def test_idle_http_connections_do_not_stop_dns_or_http(
    request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    state = tmp_path / "state.json"
    state.write_bytes(orjson.dumps(good_state()))
    app = AppThread({"stateFile": str(state)})
    socks: list[socket.socket] = []
    try:
        app.wait_ready()
        with Prober(app.dns_port, "sentinel.chronos.mesos.") as probe:
            socks = [tcp_connect(app.http_port) for _ in range(500)]
            for s in socks[:250]:
                s.sendall(b"GET /v1/version HTTP/1.1\r\nHost: x\r\n")  # never finished
            time.sleep(0.5)
            assert app.http("/health")[0] == 200
            assert app.http("/v1/hosts/sentinel.chronos.mesos")[0] == 200
        assert probe.lost == 0, probe.summary()
        report(request, f"500 idle HTTP connections: in-domain UDP {probe.summary()}")
    finally:
        for s in socks:
            s.close()
        app.stop()


# -- response size and amplification -------------------------------------------------


def amplification_records() -> RecordSet:
    """Short names holding many records: the worst case for reply / query size."""
    targets = tuple(SRVTarget(f"t{i}.a.mesos.", 31000 + i) for i in range(300))
    a: dict[str, tuple[str, ...]] = {"a.mesos.": ips("10.1", 300)}
    a.update({t.host: (f"10.2.{i // 250}.{i % 250 + 1}",) for i, t in enumerate(targets)})
    return RecordSet(
        domain="mesos",
        a=MappingProxyType(a),
        aaaa=MappingProxyType({"a.mesos.": tuple(f"fd00::{i:x}" for i in range(1, 200))}),
        srv=MappingProxyType({"_a._tcp.mesos.": targets, "a.mesos.": targets}),
    )


@pytest.mark.parametrize("cap", [1232, 4096], ids=["maxUDPPayload-1232", "maxUDPPayload-4096"])
def test_any_and_large_answers_are_bounded(request: pytest.FixtureRequest, cap: int) -> None:
    s = settings(max_udp_payload=cap)
    server = ServerThread(s, compile_table(s, amplification_records()))
    worst: dict[str, tuple[float, int, int, str]] = {}
    try:
        for name in ("a.mesos.", "_a._tcp.mesos.", "A.Mesos."):
            for rdtype in ("ANY", "A", "AAAA", "SRV"):
                for edns in (None, 1232, 4096, 65535):
                    q = dns.message.make_query(
                        name, rdtype, use_edns=False if edns is None else 0, payload=edns or 512
                    )
                    wire = q.to_wire()
                    reply = raw_udp(server.port, wire)
                    assert reply is not None
                    # min(the client's EDNS size, maxUDPPayload); 512 without EDNS
                    limit = 512 if edns is None else min(edns, cap)
                    assert len(reply) <= limit, (name, rdtype, edns, len(reply))
                    r = dns.message.from_wire(reply)
                    if len(reply) > limit - 100:  # full: the rest was cut, TC set
                        assert r.flags & dns.flags.TC, (name, rdtype, edns)
                    factor = len(reply) / len(wire)
                    for kind in ("any type", rdtype):
                        key = f"{kind} {'without EDNS' if edns is None else 'with EDNS'}"
                        if factor > worst.get(key, (0.0, 0, 0, ""))[0]:
                            worst[key] = (factor, len(wire), len(reply), f"{rdtype} {name}")
                    tcp = dns.query.tcp(q, "127.0.0.1", port=server.port, timeout=3)
                    assert not tcp.flags & dns.flags.TC  # TCP carries everything
    finally:
        server.close()
    assert worst["ANY without EDNS"][2] <= 512
    # the worst reply with EDNS is as big as the cap allows (TC set), so the
    # amplification is about cap / the shortest query: 1232 / 36 = 34x by
    # default, 4096 / 36 = 114x with maxUDPPayload 4096
    factor, qlen, rlen, _ = worst["any type with EDNS"]
    assert cap - 100 < rlen <= cap and factor <= cap / qlen
    for key, (factor, qlen, rlen, what) in sorted(worst.items()):
        if not key.startswith(("ANY", "any")):
            continue
        report(
            request,
            f"UDP amplification {key}, maxUDPPayload {cap}: worst {factor:.1f}x "
            f"({what}: {qlen}-byte query, {rlen}-byte reply)",
        )
