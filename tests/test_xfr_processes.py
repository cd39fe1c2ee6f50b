"""Zone transfers through the real process layout: the ``mesos-dns``
supervisor with a builder and two serving processes, each serving AXFR and
IXFR from its own replica; ``dig -y`` and dnspython transfer the zone over
several connections (SO_REUSEPORT spreads them over the workers). The test
ends by stopping the supervisor and proving that no process it started is
left (see ``test_processes``)."""

from __future__ import annotations

import base64
import signal
import subprocess
from collections.abc import Callable

import dns.message
import dns.query
import dns.rcode
import dns.tsigkeyring
import pytest
from test_processes import Supervised, eventually, from_file, launch, no_traceback
from xfr_support import answer_texts, messages

__all__ = ["launch"]  # the fixture, from test_processes

pytestmark = pytest.mark.timeout(90)

SECRET = base64.b64encode(b"the supervisor's transfer key...").decode()
KEYRING = dns.tsigkeyring.from_text({"xfr-key": SECRET})


def test_workers_serve_signed_transfers_and_all_processes_go_at_the_end(
    launch: Callable[..., Supervised], require_tool: Callable[[str], str],
) -> None:
    dig = require_tool("dig")
    srv = launch(**from_file(workers=2, zoneTransfer={
        "allow": ["127.0.0.0/8"],
        "tsig": {"name": "xfr-key", "algorithm": "hmac-sha256", "secret": SECRET},
    }))
    srv.wait_ready()
    srv.wait_roles(2)
    port = srv.dns_port
    first = answer_texts(messages(port, "mesos.", keyring=KEYRING, keyname="xfr-key"))
    assert " SOA " in first[0] and first[0] == first[-1]
    assert any(t.startswith("nginx.marathon.mesos. 60 A ") for t in first)
    serial = int(first[0].split()[-5])
    for _ in range(6):  # new connections: both workers get some
        out = subprocess.run(
            [dig, "@127.0.0.1", "-p", str(port), "-y", f"hmac-sha256:xfr-key:{SECRET}", "axfr",
             "mesos.", "+nocomments", "+nostats", "+nocmd"],
            capture_output=True, text=True, timeout=20, check=True,
        ).stdout
        records = [ln for ln in out.splitlines() if ln and not ln.startswith(";")
                   and "TSIG" not in ln.split()[3:4]]
        assert len(records) == len(first), out
        assert "failed" not in out.lower(), out
        ixfr = answer_texts(messages(port, "mesos.", "IXFR", serial=serial, keyring=KEYRING,
                                     keyname="xfr-key"))
        assert len(ixfr) == 1 and f" {serial} " in ixfr[0]
    unsigned = dns.query.tcp(dns.message.make_query("mesos.", "AXFR"), "127.0.0.1", port=port,
                             timeout=2)
    assert unsigned.rcode() == dns.rcode.REFUSED
    # /metrics counts the transfers of both workers
    eventually(
        lambda: (srv.counter("mesosdns_xfr_axfr_total"), srv.counter("mesosdns_xfr_ixfr_total"),
                 srv.counter("mesosdns_xfr_refused_total")) == (7, 6, 1),
        5.0, "the transfer counters of both workers in /metrics",
    )
    srv.finish(signal.SIGTERM, rc=0, within=5.0)
    no_traceback(srv)
