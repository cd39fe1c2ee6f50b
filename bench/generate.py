"""Benchmark: parse a Mesos state and generate its records, as one refresh does.

For each size (tasks/agents) the synthetic state (bench/synth.py) is written
once under bench/out/ and reused. Each run is a fresh Python process that reads
the file, then times ``parse_state`` + ``generate`` with ``time.perf_counter``
and reports its peak RSS (``getrusage``), so runs do not share caches or heap.
The table shows medians next to the original Go Mesos-DNS's figures.

    python bench/generate.py                   # 10k/1k, 50k/5k, 100k/10k tasks/agents
    python bench/generate.py --sizes 10000 --runs 5
    python bench/generate.py --sizes 20000/500  # tasks/agents; agents default to tasks/10
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
DEFAULT_SIZES = ((10_000, 1_000), (50_000, 5_000), (100_000, 10_000))
# The original Go Mesos-DNS on the same shapes of state: seconds, peak RSS MiB.
ORIGINAL = {10_000: (0.5, 152), 50_000: (1.9, 657), 100_000: (3.7, 1465)}

# Exactly the parameters the brief fixes for this benchmark.
PARAMS: dict[str, Any] = {
    "domain": "mesos",
    "ns_name": "ns1.mesos.",
    "listener_ips": ("10.0.0.1",),
    "masters": ("", "10.0.0.11:5050"),
    "ip_sources": ("netinfo", "mesos", "host"),
    "rfc952": False,
}


@dataclass(frozen=True)
class Run:
    seconds: float
    parse_s: float
    generate_s: float
    rss_mib: float
    counts: dict[str, int]


def peak_rss_mib() -> float:
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return rss / (1024 * 1024) if sys.platform == "darwin" else rss / 1024


def child(path: Path) -> int:
    """One measured run, in a fresh process; prints one JSON line."""
    from mesosdns.records.generator import GeneratorParams, generate
    from mesosdns.state.model import parse_state

    params = GeneratorParams(**PARAMS)
    data = path.read_bytes()
    t0 = time.perf_counter()
    state = parse_state(data)
    t1 = time.perf_counter()
    records = generate(state, params)
    t2 = time.perf_counter()
    result = {
        "seconds": t2 - t0,
        "parse_s": t1 - t0,
        "generate_s": t2 - t1,
        "rss_mib": peak_rss_mib(),
        "counts": dict(records.count()),
    }
    print(json.dumps(result))
    return 0


def state_file(out_dir: Path, tasks: int, agents: int, seed: int) -> Path:
    """The cached synthetic state for this size, written on first use."""
    sys.path.insert(0, str(BENCH))
    import synth

    path = out_dir / f"state-t{tasks}-a{agents}-s{seed}-v{synth.SYNTH_VERSION}.json"
    if not path.exists():
        t0 = time.perf_counter()
        size = synth.write_state(path, tasks, agents, seed)
        print(
            f"  wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path} "
            f"({size / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s",
            file=sys.stderr,
        )
    return path


def measure(path: Path) -> Run:
    """Run one fresh child process on ``path``."""
    env = dict(os.environ)
    # PYTHONPATH entries come before the repository, so a stand-in package can
    # be benchmarked by putting it on PYTHONPATH. The child runs as a script,
    # so sys.path[0] is bench/, not the repository root.
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(ROOT)) if p)
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), "--child", str(path)],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"benchmark child failed with exit status {proc.returncode}")
    line = proc.stdout.strip().splitlines()[-1]
    return Run(**json.loads(line))


def parse_sizes(text: str | None) -> list[tuple[int, int]]:
    if not text:
        return list(DEFAULT_SIZES)
    sizes = []
    for item in text.split(","):
        tasks_text, _, agents_text = item.strip().partition("/")
        tasks = int(tasks_text)
        agents = int(agents_text) if agents_text else max(1, tasks // 10)
        sizes.append((tasks, agents))
    return sizes


def fmt_counts(counts: dict[str, int]) -> str:
    return " / ".join(str(counts.get(k, 0)) for k in ("A", "AAAA", "SRV"))


def report(rows: list[tuple[int, int, float, list[Run]]], runs: int, command: str) -> str:
    header = (
        f"{'tasks/agents':>13}  {'state MB':>8}  {'parse+gen s':>11}  {'(min-max)':>13}  "
        f"{'parse s':>7}  {'gen s':>6}  {'peak RSS MiB':>12}  {'A / AAAA / SRV records':>24}  "
        f"{'original s / MiB':>16}"
    )
    lines = [
        f"mesosdns parse_state + generate, median of {runs} fresh process(es)",
        f"python {platform.python_version()} on {platform.machine()}, {os.cpu_count()} CPU(s)",
        "",
        header,
        "-" * len(header),
    ]
    for tasks, agents, mb, results in rows:
        secs = [r.seconds for r in results]
        orig = ORIGINAL.get(tasks)
        orig_text = f"{orig[0]:.1f} / {orig[1]}" if orig else "-"
        lines.append(
            f"{f'{tasks}/{agents}':>13}  {mb:>8.0f}  {statistics.median(secs):>11.2f}  "
            f"{f'({min(secs):.2f}-{max(secs):.2f})':>13}  "
            f"{statistics.median(r.parse_s for r in results):>7.2f}  "
            f"{statistics.median(r.generate_s for r in results):>6.2f}  "
            f"{statistics.median(r.rss_mib for r in results):>12.0f}  "
            f"{fmt_counts(results[0].counts):>24}  {orig_text:>16}"
        )
    lines += [
        "",
        "original: the Go Mesos-DNS (state decode + record generation) on states of the same size",
        f"reproduce: {command}",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--sizes",
        help="comma-separated task counts, each optionally TASKS/AGENTS "
        "(default: 10000,50000,100000 with agents = tasks/10)",
    )
    parser.add_argument("--runs", type=int, default=3, help="fresh processes per size (default 3)")
    parser.add_argument("--seed", type=int, default=0, help="synthetic state seed (default 0)")
    parser.add_argument("--out-dir", type=Path, default=BENCH / "out", help="state file cache")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.child is not None:
        return child(args.child)
    if args.runs < 1:
        parser.error("--runs must be at least 1")

    sizes = parse_sizes(args.sizes)
    rows = []
    for tasks, agents in sizes:
        print(f"{tasks} tasks / {agents} agents:", file=sys.stderr)
        path = state_file(args.out_dir, tasks, agents, args.seed)
        results = []
        for i in range(args.runs):
            run = measure(path)
            print(
                f"  run {i + 1}/{args.runs}: {run.seconds:.2f} s "
                f"(parse {run.parse_s:.2f} + generate {run.generate_s:.2f}), "
                f"peak RSS {run.rss_mib:.0f} MiB",
                file=sys.stderr,
            )
            results.append(run)
        rows.append((tasks, agents, path.stat().st_size / 1e6, results))

    command = "python bench/generate.py"
    if args.sizes:
        command += f" --sizes {shlex.quote(args.sizes)}"
    if args.runs != 3:
        command += f" --runs {args.runs}"
    if args.seed:
        command += f" --seed {args.seed}"
    print(report(rows, args.runs, command))
    return 0


if __name__ == "__main__":
    sys.exit(main())
