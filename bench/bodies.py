"""Benchmark: what the builder does for the large HTTP bodies, in process.

On the synthetic state of bench/synth.py (cached in bench/out), with the
records generated once, it measures:

- the copy of the records the bodies are made from (`snapshot`), taken in
  the builder's event loop: the first one, and then after one task changed
  (the copy the builder makes between two changes of a running cluster);
- the enumeration of that copy, and the two writers (`/v1/enumerate` whole
  and after one task changed, `/v1/axfr`), which run in the body thread.

Each figure is the median of ``--runs`` runs (the first copy: once). The
cyclic GC is frozen as the builder does after a build.

    python bench/bodies.py --tasks 10000 100000 --runs 5
"""

from __future__ import annotations

import argparse
import gc
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TypeVar

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

import generate as gen_bench  # noqa: E402

from mesosdns.records.bodies import EnumerateWriter, axfr_json  # noqa: E402
from mesosdns.records.generator import GeneratorParams  # noqa: E402
from mesosdns.records.incremental import IncrementalGenerator  # noqa: E402
from mesosdns.state.model import parse_state  # noqa: E402

T = TypeVar("T")


@dataclass(frozen=True)
class AXFRConfig:
    ttl: int = 60
    refresh_seconds: int = 60
    soa_mname: str = "ns1.mesos"
    soa_rname: str = "root.ns1.mesos"
    domain: str = "mesos"


def timed(f: Callable[[], T]) -> tuple[float, T]:
    """``f()``'s time in ms, and its result."""
    t0 = time.perf_counter()
    result = f()
    return (time.perf_counter() - t0) * 1000, result


def ms(f: Callable[[], object]) -> float:
    return timed(f)[0]


def measure(tasks: int, runs: int) -> dict[str, float]:
    path = gen_bench.state_file(BENCH / "out", tasks, max(tasks // 10, 1), 0)
    state = parse_state(path.read_bytes())
    gen = IncrementalGenerator.from_state(state, GeneratorParams(**gen_bench.PARAMS))
    gen.take_changes()
    gc.freeze()
    out: dict[str, float] = {"first copy": ms(gen.snapshot)}
    fid = max(gen.tasks, key=lambda f: len(gen.tasks[f]))
    writer = EnumerateWriter()
    writer.write(gen.snapshot().frameworks)
    copies, enums, changed, axfrs = [], [], [], []
    for task in list(gen.tasks[fid].values())[:runs]:
        gen.remove_task(fid, task.id)  # the task goes and comes back: its names change
        gen.put_task(task, fid)
        gen.take_changes()
        took, rs = timed(gen.snapshot)
        copies.append(took)
        enums.append(ms(rs.frameworks.__len__))  # the enumeration is worked out on first use
        changed.append(ms(partial(writer.write, rs.frameworks)))
        axfrs.append(ms(partial(axfr_json, rs, 1, AXFRConfig())))
    frameworks = rs.frameworks
    whole = [ms(lambda: EnumerateWriter().write(frameworks)) for _ in range(min(runs, 3))]
    out.update({
        "copy, one task changed": statistics.median(copies),
        "enumeration of the copy": statistics.median(enums),
        "enumerate written whole": statistics.median(whole),
        "enumerate, one task changed": statistics.median(changed),
        "axfr written": statistics.median(axfrs),
        "names": float(len(gen.a) + len(gen.aaaa) + len(gen.srv)),
    })
    gc.unfreeze()
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, nargs="+", default=[10000])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args(argv)
    for tasks in args.tasks:
        figures = measure(tasks, args.runs)
        names = int(figures.pop("names"))
        print(f"{tasks} tasks ({names} names), median of {args.runs}:")
        for what, value in figures.items():
            print(f"  {what:<30} {value:8.1f} ms")
    print("reproduce: python bench/bodies.py " + shlex.join(
        ["--tasks", *map(str, args.tasks), "--runs", str(args.runs)]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
