"""Benchmark: the CPU that response rate limiting adds to one answered query,
in-process, without the sockets.

The records are the synthetic 10k-task state's (bench/synth.py, as
bench/qps.py builds them); the queries are one plain A question for each of
40,000 names, all from one client (``--kind NXDOMAIN``: as many names that
do not exist, answered by the negative fast path, all in one account). A
`DNSServer` with the table is fed the queries through a fake socket (its
``recvfrom`` hands out the next query, its ``sendto`` counts), so that the
figure is the Python work of the UDP loop alone: ``_on_udp`` with ``rrl``
off against ``_on_udp_rrl`` with ``responsesPerSecond`` 1,000 (nobody over
the limit; 10,000,000 for NXDOMAIN, whose names share one account). The
server's clock is advanced one second after every ``--per-second`` passes
over the names, so that each account is refilled as it would be under that
load. Medians of ``--runs`` alternating runs, ns per query.

    taskset -c 0 python bench/rrl_cost.py
    taskset -c 0 python bench/rrl_cost.py --per-second 40 --seconds 2
    taskset -c 0 python bench/rrl_cost.py --kind NXDOMAIN
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import dns.message

sys.path.insert(0, str(Path(__file__).resolve().parent))

from qps import build_records

from mesosdns.dns.answers import compile_answers
from mesosdns.dns.protocol import DNSServer
from mesosdns.dns.settings import DNSSettings, RRLSettings

NAMES = 40_000


class _Socket:
    """A UDP socket's two calls the loop makes: the next query, a count."""

    def __init__(self, packets: list[bytes]) -> None:
        self.packets = packets
        self.i = 0
        self.sent = 0

    def recvfrom(self, size: int) -> tuple[bytes, tuple[str, int]]:
        i = self.i
        if i >= len(self.packets):
            raise BlockingIOError
        self.i = i + 1
        return self.packets[i], ("127.0.0.1", 40000 + (i & 7))

    def sendto(self, data: bytes, addr: Any) -> int:
        self.sent += 1
        return len(data)


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _run(server: DNSServer, packets: list[bytes], clock: _Clock, per_second: int,
         seconds: int, rrl: bool) -> float:
    loop = server._on_udp_rrl if rrl else server._on_udp
    answered = 0
    started = time.perf_counter()
    for _ in range(seconds):
        clock.now += 1
        for _ in range(per_second):
            sock = _Socket(packets)
            server._udp = sock  # type: ignore[assignment]
            while sock.i < len(packets):
                loop()
            answered += sock.sent
    if answered != len(packets) * per_second * seconds:
        raise SystemExit(f"{answered} answered: some queries were limited or lost")
    return (time.perf_counter() - started) / answered


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-second", type=int, default=4, help="queries per name per second")
    ap.add_argument("--seconds", type=int, default=5)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--kind", choices=("A", "NXDOMAIN"), default="A")
    args = ap.parse_args()

    rs = build_records(10_000, 1_000)
    names = [n for n in rs.a if n.endswith(".mesos.")][:NAMES]
    if args.kind == "NXDOMAIN":
        names = [f"no-{i}.{n}" for i, n in enumerate(names)]
    rate = 1000 if args.kind == "A" else 10_000_000
    packets = []
    for i, name in enumerate(names):
        q = dns.message.make_query(name, "A", use_edns=False)
        q.id = i & 0xFFFF
        packets.append(q.to_wire())
    clock = _Clock()
    servers = {}
    for rrl in (False, True):
        settings = DNSSettings(rrl=RRLSettings(responses_per_second=rate) if rrl else None)
        server = DNSServer(settings)
        server.set_table(compile_answers(rs, settings, 1))
        if server._rrl is not None:
            server._rrl.clock = clock
        servers[rrl] = server
        # every name asked once: the hot view makes a name's replies then
        _run(server, packets, clock, 1, 1, rrl)
    got: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(args.runs):
        for rrl in (False, True):
            got[rrl].append(_run(servers[rrl], packets, clock, args.per_second, args.seconds, rrl))
    off, on = statistics.median(got[False]), statistics.median(got[True])
    print(f"{args.kind}: {len(names)} names x {args.per_second} a second x {args.seconds} s, "
          f"one client; medians of {args.runs}")
    print(f"rrl off: {off * 1e9:.0f} ns/query   rrl on: {on * 1e9:.0f} ns/query   "
          f"added: {(on - off) * 1e9:.0f} ns")
    print(f"reproduce: taskset -c 0 python bench/rrl_cost.py --kind {args.kind} "
          f"--per-second {args.per_second} --seconds {args.seconds} --runs {args.runs}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
