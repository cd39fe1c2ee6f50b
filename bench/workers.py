"""Benchmark: the real server with 1 and with N serving processes.

Runs ``mesos-dns -config=FILE`` (the supervisor, its builder and its
workers) on a synthetic state (bench/synth.py, read through ``stateFile``),
then dnsperf against it: A and SRV names at full speed, several client
sockets (``-c``) so that SO_REUSEPORT spreads them over the workers. For
each setting: queries per second (median of ``--runs``), the memory of the
whole process tree (the sum of RSS, and the sum of PSS, in which pages
shared between the forked processes count once), and what each worker
answered (from ``/metrics`` it cannot be told apart, so from each worker's
CPU time).

On a 2-vCPU machine dnsperf needs a core of its own to load the server, so
two workers cannot show more than what one core gives them together; the
figure shows that the work spreads and what a second copy of the answers
costs in memory, not how far it scales on a bigger machine.

    python bench/workers.py                       # 10k tasks, workers 1 and 2
    python bench/workers.py --tasks 10000 --workers 1,2 --duration 5 --runs 3
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from qps import build_records, free_port, qps_of, run_dnsperf, wait_udp, write_queries  # noqa: E402
from synth import write_state  # noqa: E402


def tree(pid: int) -> list[int]:
    """``pid`` and its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            kids = Path(f"/proc/{p}/task/{p}/children").read_text().split()
        except OSError:
            continue
        todo.extend(int(k) for k in kids)
    return out


def memory_mib(pids: list[int]) -> tuple[float, float]:
    """Sum of RSS and sum of PSS over ``pids``, MiB."""
    rss = pss = 0
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/smaps_rollup").read_text().splitlines():
                key, _, value = line.partition(":")
                if key == "Rss":
                    rss += int(value.split()[0])
                elif key == "Pss":
                    pss += int(value.split()[0])
        except OSError:
            continue
    return rss / 1024, pss / 1024


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_setting(workers: int, state: Path, files: dict[str, Path], args: argparse.Namespace,
                workdir: Path) -> dict[str, Any]:
    port = free_port()
    config = {
        "stateFile": str(state), "masters": ["10.0.0.11:5050"], "refreshSeconds": 3600,
        "port": port, "listener": "127.0.0.1", "httpon": False, "externalon": False,
        "workers": workers,
    }
    path = workdir / f"config-{workers}.json"
    path.write_text(json.dumps(config))
    cmd = [sys.executable, "-m", "mesosdns", f"-config={path}"]
    proc = subprocess.Popen(cmd, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        started = time.monotonic()
        wait_udp(port, "leader.mesos.", timeout=300)
        ready = time.monotonic() - started
        time.sleep(1.0)
        pids = tree(proc.pid)
        out: dict[str, Any] = {"workers": workers, "ready_s": ready, "processes": len(pids)}
        for kind in ("A", "SRV"):
            qs = []
            for _ in range(args.runs):
                before = {p: cpu_seconds(p) for p in pids}
                res = run_dnsperf(["dnsperf", "-s", "127.0.0.1", "-p", str(port), "-d",
                                   str(files[kind]), "-l", str(args.duration), "-q", "500",
                                   "-c", str(args.clients)])
                qs.append(qps_of(res))
                out[f"{kind}_cpu_share"] = {
                    p: round(cpu_seconds(p) - before[p], 2) for p in pids if p != proc.pid
                }
            out[kind] = statistics.median(qs)
        out["rss_mib"], out["pss_mib"] = memory_mib(tree(proc.pid))
        return out
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--duration", type=int, default=5)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--clients", type=int, default=8, help="dnsperf -c (source sockets)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="mesosdns-workers-") as tmp:
        workdir = Path(tmp)
        state = workdir / "state.json"
        write_state(state, args.tasks, args.tasks // 10)
        files = write_queries(build_records(args.tasks, args.tasks // 10), workdir,
                              random.Random(0))
        results = [run_setting(int(w), state, files, args, workdir)
                   for w in args.workers.split(",")]
    print(f"\n{args.tasks} tasks, dnsperf -c {args.clients} -q 500, {args.duration} s x "
          f"{args.runs} (median)")
    print("| workers | processes | A q/s | SRV q/s | RSS sum MiB | PSS sum MiB | ready s |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['workers']} | {r['processes']} | {r['A']:,.0f} | {r['SRV']:,.0f} | "
              f"{r['rss_mib']:.0f} | {r['pss_mib']:.0f} | {r['ready_s']:.1f} |")
    for r in results:
        print(f"workers {r['workers']}: CPU s per process during the last A run: "
              f"{r['A_cpu_share']}")
    print("\nreproduce: python bench/workers.py " + shlex.join(argv or sys.argv[1:]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
