"""The server as ``dig`` (bind9-dnsutils) sees it, over UDP and TCP."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator

import pytest
from conftest import require_tool
from dns_support import LoopThread, ServerThread, Upstream, settings


@pytest.fixture(scope="module")
def dig() -> str:
    return require_tool("dig")


@pytest.fixture(scope="module")
def srv() -> Iterator[tuple[ServerThread, Upstream]]:
    lt = LoopThread()
    upstream = Upstream(lt, tag=7)
    server = ServerThread(settings(resolvers=(f"127.0.0.1:{upstream.port}",), timeout=0.5))
    yield server, upstream
    server.close()
    upstream.close()
    lt.close()


def run_dig(dig: str, port: int, *args: str) -> str:
    cmd = [dig, "@127.0.0.1", "-p", str(port), "+time=2", "+tries=1", *args]
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=20, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    return res.stdout


def header(out: str) -> tuple[str, set[str]]:
    status = re.search(r"status: (\w+)", out)
    flags = re.search(r"flags: ([a-z ]+);", out)
    assert status and flags, out
    return status.group(1), set(flags.group(1).split())


def section(out: str, name: str) -> list[str]:
    m = re.search(rf";; {name} SECTION:\n(.*?)(?:\n\n|\Z)", out, re.S)
    if not m:
        return []
    return [" ".join(line.split()) for line in m.group(1).splitlines() if line.strip()]


@pytest.mark.parametrize("transport", ["+notcp", "+tcp"])
def test_dig_a(dig: str, srv: tuple[ServerThread, Upstream], transport: str) -> None:
    server, _ = srv
    out = run_dig(dig, server.port, transport, "nginx.marathon.mesos", "A")
    status, flags = header(out)
    assert status == "NOERROR" and flags == {"qr", "aa", "rd", "ra"}
    assert sorted(section(out, "ANSWER")) == [
        f"nginx.marathon.mesos. 60 IN A 10.0.1.{i}" for i in (1, 2, 3)
    ]
    short = run_dig(dig, server.port, transport, "+short", "leader.mesos")
    assert short.split() == ["10.0.0.11"]


def test_dig_srv_and_mixed_case(dig: str, srv: tuple[ServerThread, Upstream]) -> None:
    server, _ = srv
    out = run_dig(dig, server.port, "_NGINX._tcp.marathon.mesos", "SRV")
    assert len(section(out, "ANSWER")) == 3
    assert all(
        line.startswith("_NGINX._tcp.marathon.mesos. 60 IN SRV 0 1 310")
        for line in section(out, "ANSWER")
    )
    assert (
        sorted(section(out, "ADDITIONAL"))[0] == "nginx-aaaaa-s1.marathon.mesos. 60 IN A 10.0.1.1"
    )
    out = run_dig(dig, server.port, "LEADER.Mesos", "A")
    assert section(out, "ANSWER") == ["leader.mesos. 60 IN A 10.0.0.11"]


def test_dig_negative_answers(dig: str, srv: tuple[ServerThread, Upstream]) -> None:
    server, _ = srv
    out = run_dig(dig, server.port, "missing.mesos", "A")
    status, flags = header(out)
    assert status == "NXDOMAIN" and {"aa", "ra"} <= flags
    assert section(out, "AUTHORITY") == [
        "missing.mesos. 60 IN SOA ns1.mesos. root.ns1.mesos. 1700000000 60 600 86400 60"
    ]
    out = run_dig(dig, server.port, "nginx.marathon.mesos", "AAAA")
    assert header(out)[0] == "NOERROR" and section(out, "ANSWER") == []
    assert len(section(out, "AUTHORITY")) == 1
    out = run_dig(dig, server.port, "mesos", "SOA")
    assert header(out)[0] == "NOERROR" and section(out, "ANSWER") == []
    out = run_dig(dig, server.port, "_x._tcp.mesos", "SRV")
    assert header(out)[0] == "NOERROR" and section(out, "AUTHORITY") == []


def test_dig_edns_and_truncation(dig: str, srv: tuple[ServerThread, Upstream]) -> None:
    server, _ = srv
    # dig's default EDNS buffer (1232) is too small for 40 SRV records and
    # their addresses: TC, and dig retries over TCP, getting everything
    out = run_dig(dig, server.port, "_big._tcp.marathon.mesos", "SRV")
    assert "Truncated, retrying in TCP mode" in out
    assert len(section(out, "ANSWER")) == 40 and len(section(out, "ADDITIONAL")) >= 40
    # a bigger buffer does not help: replies stay within maxUDPPayload
    # (1232 by default), the size our OPT offers (shown with +ignore)
    out = run_dig(dig, server.port, "+bufsize=4096", "+ignore", "_big._tcp.marathon.mesos", "SRV")
    _, flags = header(out)
    assert "tc" in flags and "udp: 1232" in out
    assert 0 < len(section(out, "ANSWER")) < 40 and section(out, "ADDITIONAL") == []
    # without EDNS: 512 bytes, truncated (shown with +ignore)
    out = run_dig(dig, server.port, "+noedns", "+ignore", "_big._tcp.marathon.mesos", "SRV")
    _, flags = header(out)
    assert "tc" in flags and "OPT PSEUDOSECTION" not in out
    assert 0 < len(section(out, "ANSWER")) < 40


def test_dig_max_udp_payload_4096(dig: str) -> None:
    # maxUDPPayload 4096: a big enough buffer gets the whole answer over UDP
    server = ServerThread(settings(max_udp_payload=4096))
    try:
        out = run_dig(dig, server.port, "+bufsize=4096", "_big._tcp.marathon.mesos", "SRV")
        assert "Truncated" not in out and "udp: 4096" in out
        assert len(section(out, "ANSWER")) == 40
    finally:
        server.close()


def test_dig_norecurse_and_forwarding(dig: str, srv: tuple[ServerThread, Upstream]) -> None:
    server, _ = srv
    out = run_dig(dig, server.port, "+norecurse", "leader.mesos", "A")
    assert header(out)[1] == {"qr", "aa", "ra"}
    out = run_dig(dig, server.port, "ok.example.org", "A")
    assert section(out, "ANSWER") == ["ok.example.org. 300 IN A 192.0.2.7"]
    out = run_dig(dig, server.port, "+tcp", "nx.example.org", "A")
    assert header(out)[0] == "NXDOMAIN"
