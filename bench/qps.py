"""Benchmark: DNS queries per second and p99 latency, with dnsperf.

The server runs in its own process pinned to core 0 (``taskset -c 0``), dnsperf
pinned to core 1, both on 127.0.0.1. The records come from a synthetic 10k-task
state (bench/synth.py -> parse_state -> generate, as one refresh does).

Scenarios: A, SRV, NXDOMAIN (missing names in the domain), forwarded (names
outside the domain, relayed to a local upstream) and a mix. Each is run
``--runs`` times for ``--duration`` seconds at full speed (median QPS), then
once at a fixed 5,000 queries/s with per-query latencies (``dnsperf -v``) for
the p99.

The upstream for forwarding is Knot DNS (else BIND's named) serving a wildcard
zone, pinned to core 1 next to dnsperf: an authoritative answer costs it a few
microseconds, so the forwarding path of the server under test (on core 0) is
what limits. When Knot is installed, it also serves the same A and SRV records
from a zone file on core 0, measured with the same dnsperf commands, for the
ratio.

    python bench/qps.py                        # everything, 10 s x 3 runs
    python bench/qps.py --duration 5 --runs 1 --scenarios A,SRV
    python bench/qps.py --serve --port 5353    # just the server (used internally)

With ``--rrl``, a second server with response rate limiting on
(``responsesPerSecond`` ``--rrl-rate``, by default so high that no client is
over the limit: the cost of the accounting alone) runs the same A, SRV and
NXDOMAIN scenarios, its runs alternating with the first's, and the report
gives the ratio of the medians (target >= 0.9x):

    python bench/qps.py --rrl --no-knot --scenarios A,SRV,NXDOMAIN
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import re
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT / "tests"))
from ports import free_port  # noqa: E402  (tests/ports.py)

# The original Go Mesos-DNS and Knot on this kind of machine (from the brief).
ORIGINAL = {"A": 52_000, "SRV": 32_000, "NXDOMAIN": 65_000, "forwarded": 16_000, "mix": 38_000}
TARGET_FACTOR = 1.5
KNOT_FACTOR = 0.75
FIXED_QPS = 5000
RRL_SCENARIOS = ("A", "SRV", "NXDOMAIN")
RRL_TARGET = 0.9
# every NXDOMAIN of the benchmark shares one account (the zone's): above any
# q/s this machine reaches, so that no query is limited
RRL_RATE = 10_000_000
# mix: share of each kind of query in the mixed data file
MIX = (("A", 50), ("SRV", 25), ("NXDOMAIN", 15), ("forwarded", 10))
FORWARD_ZONE = "example"
SCENARIOS = ("A", "SRV", "NXDOMAIN", "forwarded", "mix")
SERVER_CORE = "0"
CLIENT_CORE = "1"


def build_records(tasks: int, agents: int) -> Any:
    import orjson
    from synth import make_state

    from mesosdns.records.generator import GeneratorParams, generate
    from mesosdns.state.model import parse_state

    state = parse_state(orjson.dumps(make_state(tasks, agents)))
    params = GeneratorParams(
        domain="mesos",
        ns_name="ns1.mesos.",
        listener_ips=("10.0.0.1",),
        masters=("", "10.0.0.11:5050"),
    )
    return generate(state, params)


# -- the server under test -------------------------------------------------


def serve(args: argparse.Namespace) -> None:
    """Run the mesosdns DNS server with the synthetic records until SIGTERM."""
    from mesosdns.dns.answers import compile_answers
    from mesosdns.dns.protocol import DNSServer
    from mesosdns.dns.settings import DNSSettings, RRLSettings

    rs = build_records(args.tasks, args.agents)
    settings = DNSSettings(
        listen_host="127.0.0.1",
        port=args.port,
        resolvers=(args.upstream,) if args.upstream else (),
        timeout=2.0,
        rrl=RRLSettings(responses_per_second=args.rrl_rate) if args.rrl_rate else None,
    )
    started = time.perf_counter()
    table = compile_answers(rs, settings, int(time.time()))
    compile_s = time.perf_counter() - started

    async def main() -> None:
        server = DNSServer(settings)
        await server.start()
        server.set_table(table)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        print(f"READY {server.port} compile={compile_s:.3f}s {table.info}", flush=True)
        await stop.wait()
        await server.stop()
        print(f"STATS {server.stats.as_dict()}", flush=True)

    try:
        import uvloop

        uvloop.run(main())
    except ImportError:
        asyncio.run(main())


# -- helpers to run things -------------------------------------------------


@dataclass
class Proc:
    name: str
    popen: subprocess.Popen[str]

    def stop(self) -> str:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        out = self.popen.stdout.read() if self.popen.stdout else ""
        return out


@contextmanager
def started(
    name: str, cmd: Sequence[str], ready: str | None, timeout: float = 120
) -> Iterator[Proc]:
    popen = subprocess.Popen(list(cmd), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    proc = Proc(name, popen)
    try:
        if ready is not None:
            deadline = time.monotonic() + timeout
            assert popen.stdout is not None
            while time.monotonic() < deadline:
                line = popen.stdout.readline()
                if not line:
                    raise RuntimeError(f"{name} exited: rc={popen.poll()}")
                if line.startswith(ready):
                    print(f"  {name}: {line.strip()}")
                    break
        yield proc
    finally:
        proc.stop()


def wait_udp(port: int, qname: str, timeout: float = 30) -> None:
    """Wait until something answers a DNS query on 127.0.0.1:port."""
    import dns.message
    import dns.query

    deadline = time.monotonic() + timeout
    q = dns.message.make_query(qname, "A")
    while time.monotonic() < deadline:
        try:
            dns.query.udp(q, "127.0.0.1", port=port, timeout=0.5)
            return
        except Exception:
            time.sleep(0.2)
    raise RuntimeError(f"nothing answers on port {port}")


# -- data files ----------------------------------------------------------------


def write_queries(rs: Any, workdir: Path, rng: random.Random) -> dict[str, Path]:
    from mesosdns.dns.wire import in_zone, plain_key_wire, text_to_wire

    domain = text_to_wire("mesos.") or b""

    def usable(name: str) -> bool:
        w = plain_key_wire(name)
        return w is not None and in_zone(w, domain)

    a_names = [n for n, v in rs.a.items() if v and usable(n)]
    srv_names = [n for n, v in rs.srv.items() if v and usable(n)]
    rng.shuffle(a_names)
    rng.shuffle(srv_names)
    lines = {
        "A": [f"{n} A" for n in a_names],
        "SRV": [f"{n} SRV" for n in srv_names],
        "NXDOMAIN": [f"missing-{i}.marathon.mesos. A" for i in range(10_000)],
        "forwarded": [f"host-{i}.{FORWARD_ZONE}. A" for i in range(10_000)],
    }
    mix: list[str] = []
    for kind, share in MIX:
        src = lines[kind]
        mix.extend(src[i % len(src)] for i in range(share * 200))
    rng.shuffle(mix)
    lines["mix"] = mix
    files = {}
    for kind, items in lines.items():
        path = workdir / f"queries-{kind}.txt"
        path.write_text("\n".join(items) + "\n")
        files[kind] = path
    return files


def write_zone(rs: Any, path: Path) -> None:
    """The same A and SRV records as a zone file for Knot."""
    from mesosdns.dns.answers import pack_v4
    from mesosdns.dns.wire import in_zone, plain_key_wire, text_to_wire

    domain = text_to_wire("mesos.") or b""
    out = [
        "$ORIGIN mesos.",
        "$TTL 60",
        "@ SOA ns1.mesos. root.ns1.mesos. 1 60 600 86400 60",
        "@ NS ns1.mesos.",
    ]
    for name, values in rs.a.items():
        w = plain_key_wire(name)
        if w is None or not in_zone(w, domain):
            continue
        out.extend(f"{name} A {v}" for v in values if pack_v4(v) is not None)
    for name, targets in rs.srv.items():
        w = plain_key_wire(name)
        if w is None or not in_zone(w, domain):
            continue
        out.extend(f"{name} SRV 0 1 {t.port} {t.host}" for t in targets)
    path.write_text("\n".join(out) + "\n")


def knot_config(workdir: Path, port: int, zone: str, zonefile: Path) -> Path:
    conf = workdir / f"knot-{port}.conf"
    rundir = workdir / f"knot-run-{port}"
    rundir.mkdir(exist_ok=True)
    conf.write_text(
        f"""server:
    listen: 127.0.0.1@{port}
    rundir: {rundir}
    udp-workers: 1
    tcp-workers: 1
    background-workers: 1
database:
    storage: {rundir}
log:
  - target: stderr
    any: error
zone:
  - domain: {zone}
    storage: {zonefile.parent}
    file: {zonefile.name}
    journal-content: none
    zonefile-load: whole
"""
    )
    return conf


def named_config(workdir: Path, port: int, zonefile: Path) -> Path:
    conf = workdir / f"named-{port}.conf"
    conf.write_text(
        f"""options {{
    directory "{workdir}";
    listen-on port {port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    pid-file none;
    recursion no;
    dnssec-validation no;
}};
zone "{FORWARD_ZONE}" {{ type primary; file "{zonefile}"; }};
"""
    )
    return conf


def upstream_cmd(workdir: Path, port: int) -> tuple[str, list[str]]:
    zonefile = workdir / f"{FORWARD_ZONE}.zone"
    zonefile.write_text(
        f"$ORIGIN {FORWARD_ZONE}.\n$TTL 300\n"
        f"@ SOA ns.{FORWARD_ZONE}. root.{FORWARD_ZONE}. 1 60 600 86400 60\n"
        f"@ NS ns.{FORWARD_ZONE}.\nns A 192.0.2.53\n* A 192.0.2.1\n"
    )
    knotd = shutil.which("knotd")
    if knotd:
        conf = knot_config(workdir, port, FORWARD_ZONE, zonefile)
        return "knotd", ["taskset", "-c", CLIENT_CORE, knotd, "-c", str(conf)]
    named = shutil.which("named")
    if named:
        conf = named_config(workdir, port, zonefile)
        return "named", ["taskset", "-c", CLIENT_CORE, named, "-g", "-n", "1", "-c", str(conf)]
    raise RuntimeError("neither knotd nor named is installed: no upstream for forwarding")


# -- dnsperf ---------------------------------------------------------------


def dnsperf_cmd(
    port: int, datafile: Path, duration: int, outstanding: int, qps: int = 0
) -> list[str]:
    cmd = ["taskset", "-c", CLIENT_CORE, "dnsperf", "-s", "127.0.0.1", "-p", str(port)]
    cmd += ["-d", str(datafile), "-l", str(duration), "-q", str(outstanding)]
    if qps:
        cmd += ["-Q", str(qps), "-v"]
    return cmd


def run_dnsperf(cmd: list[str]) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"dnsperf failed: {res.stderr.strip()}")
    return res.stdout


def qps_of(out: str) -> float:
    m = re.search(r"Queries per second:\s+([\d.]+)", out)
    return float(m.group(1)) if m else 0.0


def completed_of(out: str) -> int:
    m = re.search(r"Queries completed:\s+(\d+)", out)
    return int(m.group(1)) if m else 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` so far (from /proc)."""
    rest = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(rest[11]) + int(rest[12])) / os.sysconf("SC_CLK_TCK")


def lost_of(out: str) -> str:
    m = re.search(r"Queries lost:\s+(\d+ \([\d.]+%\))", out)
    return m.group(1) if m else "?"


def p99_of(out: str) -> tuple[float, int]:
    latencies = []
    for line in out.splitlines():
        if line.startswith("> "):
            parts = line.split()
            try:
                latencies.append(float(parts[-1]))
            except ValueError:
                continue
    if not latencies:
        return float("nan"), 0
    latencies.sort()
    return latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], len(latencies)


@dataclass
class Result:
    target: str
    scenario: str
    runs: list[float]
    p99_ms: float
    lost: str
    cpu_us: list[float] | None = None  # server CPU time per answered query, per run

    @property
    def median(self) -> float:
        return statistics.median(self.runs)

    @property
    def median_cpu_us(self) -> float:
        return statistics.median(self.cpu_us) if self.cpu_us else float("nan")


def measure(
    servers: dict[str, int], scenario: str, datafile: Path, args: argparse.Namespace,
    pids: dict[str, int] | None = None,
) -> list[Result]:
    """Runs alternate between the servers, so that load from elsewhere on the
    machine hits them alike. For the servers in ``pids``, also their CPU time
    per answered query (user + system, from /proc): what a query costs the
    server, whatever else the machine runs."""
    runs: dict[str, list[float]] = {name: [] for name in servers}
    cpu: dict[str, list[float]] = {name: [] for name in servers}
    lost: dict[str, str] = {}
    for _ in range(args.runs):
        for name, port in servers.items():
            pid = (pids or {}).get(name)
            before = cpu_seconds(pid) if pid else 0.0
            out = run_dnsperf(dnsperf_cmd(port, datafile, args.duration, args.outstanding))
            if pid and completed_of(out):
                cpu[name].append((cpu_seconds(pid) - before) / completed_of(out) * 1e6)
            runs[name].append(qps_of(out))
            lost[name] = lost_of(out)
    results = []
    for name, port in servers.items():
        fixed = dnsperf_cmd(port, datafile, args.duration, args.outstanding, FIXED_QPS)
        p99, _ = p99_of(run_dnsperf(fixed))
        res = Result(name, scenario, runs[name], p99 * 1000, lost[name], cpu[name] or None)
        per_query = (f"; CPU {res.median_cpu_us:.2f} us/query (runs "
                     f"{', '.join(f'{c:.2f}' for c in res.cpu_us)})" if res.cpu_us else "")
        print(
            f"  {name:9s} {scenario:10s} median {res.median:9.0f} q/s "
            f"(runs {', '.join(f'{r:.0f}' for r in res.runs)}; lost {res.lost}); "
            f"p99 at {FIXED_QPS} q/s {res.p99_ms:.3f} ms{per_query}",
            flush=True,
        )
        results.append(res)
    return results


# -- main ------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--agents", type=int, default=1_000)
    ap.add_argument("--duration", type=int, default=10, help="seconds per dnsperf run")
    ap.add_argument("--runs", type=int, default=3, help="full-speed runs per scenario")
    ap.add_argument("--outstanding", type=int, default=500, help="dnsperf -q")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS))
    ap.add_argument("--no-knot", action="store_true", help="skip the Knot comparison")
    ap.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--upstream", default="", help=argparse.SUPPRESS)
    ap.add_argument("--rrl", action="store_true",
                    help="also run A, SRV and NXDOMAIN with rrl on, side by side")
    ap.add_argument("--rrl-rate", type=int, default=0,
                    help=f"responsesPerSecond of the rrl server (with --rrl: {RRL_RATE})")
    args = ap.parse_args(argv)
    if args.serve:
        serve(args)
        return 0
    for tool in ("dnsperf", "taskset"):
        if not shutil.which(tool):
            print(f"{tool} is not installed", file=sys.stderr)
            return 2
    if (os.cpu_count() or 1) < 2:
        print("warning: fewer than 2 cores; pinning is meaningless", file=sys.stderr)
    scenarios = [s for s in args.scenarios.split(",") if s]
    print(f"command: {shlex.join([sys.executable, *sys.argv])}")
    print(f"building the record set for {args.tasks} tasks / {args.agents} agents ...", flush=True)
    rs = build_records(args.tasks, args.agents)
    print(f"  records: {rs.count()}")
    results: list[Result] = []
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mesosdns-qps-")))
        files = write_queries(rs, workdir, random.Random(7))
        up_port = free_port()
        up_name, up_cmd = upstream_cmd(workdir, up_port)
        print(
            f"upstream for forwarding: {up_name} on 127.0.0.1:{up_port}, core {CLIENT_CORE}: "
            f"{shlex.join(up_cmd)}"
        )
        stack.enter_context(started(up_name, up_cmd, None))
        wait_udp(up_port, f"probe.{FORWARD_ZONE}.")
        knot: dict[str, int] = {}
        if not args.no_knot and shutil.which("knotd"):
            zonefile = workdir / "mesos.zone"
            write_zone(rs, zonefile)
            kport = free_port()
            conf = knot_config(workdir, kport, "mesos", zonefile)
            kcmd = ["taskset", "-c", SERVER_CORE, shutil.which("knotd") or "knotd", "-c", str(conf)]
            print(f"knot (same A/SRV records, zone file): {shlex.join(kcmd)}")
            stack.enter_context(started("knotd", kcmd, None))
            wait_udp(kport, "leader.mesos.", timeout=120)
            knot["knot"] = kport
        elif not args.no_knot:
            print("knotd is not installed (apt-get install knot): no Knot comparison")
        port = free_port()
        server_cmd = [
            "taskset",
            "-c",
            SERVER_CORE,
            sys.executable,
            str(Path(__file__).resolve()),
            "--serve",
            "--port",
            str(port),
            "--tasks",
            str(args.tasks),
            "--agents",
            str(args.agents),
            "--upstream",
            f"127.0.0.1:{up_port}",
        ]
        print(f"server: {shlex.join(server_cmd)}")
        a_file = files["A"]
        print(f"dnsperf: {shlex.join(dnsperf_cmd(port, a_file, args.duration, args.outstanding))}")
        fixed = dnsperf_cmd(port, a_file, args.duration, args.outstanding, FIXED_QPS)
        print(f"p99:     {shlex.join(fixed)}")
        proc = stack.enter_context(started("mesosdns", server_cmd, "READY"))
        wait_udp(port, "leader.mesos.")
        rrl: dict[str, int] = {}
        rrl_proc = None
        if args.rrl:
            rport = free_port()
            rrl_cmd = [*server_cmd, "--rrl-rate", str(args.rrl_rate or RRL_RATE)]
            rrl_cmd[rrl_cmd.index("--port") + 1] = str(rport)
            print(f"server with rrl: {shlex.join(rrl_cmd)}")
            rrl_proc = stack.enter_context(started("mesosdns+rrl", rrl_cmd, "READY"))
            wait_udp(rport, "leader.mesos.")
            rrl["rrl"] = rport
        for scenario in scenarios:
            servers = {"mesosdns": port}
            if scenario in ("A", "SRV", "NXDOMAIN"):
                servers.update(knot)
            if scenario in RRL_SCENARIOS:
                servers.update(rrl)
            pids = {"mesosdns": proc.popen.pid}
            if rrl_proc is not None:
                pids["rrl"] = rrl_proc.popen.pid
            results.extend(measure(servers, scenario, files[scenario], args, pids))
        for name, p in (("mesosdns", proc), ("rrl", rrl_proc)):
            if p is None:
                continue
            for line in p.stop().splitlines():
                if line.startswith("STATS"):
                    print(f"  {name}: {line}")
    report(results)
    if args.rrl:
        report_rrl(results, args.rrl_rate or RRL_RATE)
    return 0


def report_rrl(results: list[Result], rate: int) -> None:
    """rrl on against off: the ratio of the median q/s of runs that alternated."""
    off = {r.scenario: r for r in results if r.target == "mesosdns"}
    on = {r.scenario: r for r in results if r.target == "rrl"}
    print()
    print(f"rrl on (responsesPerSecond {rate}, no client over the limit) against off:")
    print("(q/s: medians of alternating runs; CPU: the server's user + system time per "
          "answered query, median; capacity = CPU off / CPU on, what the verdict uses)")
    head = ("scenario", "off q/s", "on q/s", "on/off", "CPU off", "CPU on", "capacity")
    print("{:10s} {:>9s} {:>9s} {:>7s} {:>8s} {:>8s} {:>9s}  verdict".format(*head))
    for scenario, r in on.items():
        base = off.get(scenario)
        if base is None:
            continue
        ratio = r.median / base.median if base.median else float("nan")
        capacity = base.median_cpu_us / r.median_cpu_us
        verdict = "ok" if capacity >= RRL_TARGET else f"below {RRL_TARGET}x"
        row = (scenario, base.median, r.median, ratio, base.median_cpu_us, r.median_cpu_us,
               capacity, verdict)
        print("{:10s} {:9.0f} {:9.0f} {:7.3f} {:8.2f} {:8.2f} {:9.3f}  {}".format(*row))


def report(results: list[Result]) -> None:
    ours = {r.scenario: r for r in results if r.target == "mesosdns"}
    knot = {r.scenario: r for r in results if r.target == "knot"}
    print()
    head = ("scenario", "q/s", "original", "x orig", "knot", "x knot", "p99 ms")
    print("{:10s} {:>9s} {:>9s} {:>7s} {:>9s} {:>7s} {:>8s}  verdict".format(*head))
    for scenario, r in ours.items():
        orig = ORIGINAL.get(scenario, 0)
        k = knot.get(scenario)
        ratio = r.median / orig if orig else float("nan")
        verdicts = ["ok" if ratio >= TARGET_FACTOR else f"below {TARGET_FACTOR}x original"]
        kq = k.median if k else float("nan")
        kratio = r.median / kq if k and kq else float("nan")
        if k and scenario in ("A", "SRV"):
            verdicts.append("ok" if kratio >= KNOT_FACTOR else f"below {KNOT_FACTOR}x knot")
        row = (scenario, r.median, orig, ratio, kq, kratio, r.p99_ms, ", ".join(verdicts))
        print("{:10s} {:9.0f} {:9d} {:7.2f} {:9.0f} {:7.2f} {:8.3f}  {}".format(*row))


if __name__ == "__main__":
    sys.exit(main())
