"""The DNS server under uvloop, the loop the application uses when installed.

uvloop's transports differ from asyncio's (its TCP transport is not an
``asyncio.Transport`` subclass), so the UDP and TCP paths are exercised here
on a uvloop loop too.
"""

from __future__ import annotations

from collections.abc import Iterator

import dns.message
import dns.rcode
import pytest
from dns_support import ServerThread, query, raw_tcp, settings

uvloop = pytest.importorskip("uvloop")


@pytest.fixture(scope="module")
def server() -> Iterator[ServerThread]:
    srv = ServerThread(settings(), loop_factory=uvloop.new_event_loop)
    try:
        yield srv
    finally:
        srv.close()


@pytest.mark.parametrize("tcp", [False, True])
def test_answers_under_uvloop(server: ServerThread, tcp: bool) -> None:
    reply = query(server.port, "leader.mesos.", "A", tcp=tcp)
    assert reply.rcode() == dns.rcode.NOERROR
    assert reply.answer, "leader.mesos. has an A record in the test record set"
    miss = query(server.port, "no-such-task.marathon.mesos.", "A", tcp=tcp)
    assert miss.rcode() == dns.rcode.NXDOMAIN


def test_tcp_pipelining_under_uvloop(server: ServerThread) -> None:
    queries = [dns.message.make_query(n, "A") for n in ("leader.mesos.", "nope.mesos.")]
    replies = raw_tcp(server.port, [q.to_wire() for q in queries], expect=2)
    assert len(replies) == 2
    got = sorted(dns.message.from_wire(r).rcode() for r in replies)
    assert got == sorted([dns.rcode.NOERROR, dns.rcode.NXDOMAIN])
