"""NOTIFY -> secondary answering: how long a task change takes to reach
real secondaries (BIND and Knot) of mesosdns.

mesosdns polls a fake master (bench/refresh.py's, in a process of its own)
serving a synthetic state of ``--tasks`` tasks, with ``zoneTransfer`` set:
TSIG key, NOTIFY to a ``named`` and a ``knotd`` secondary, SOA refresh an
hour (so that only NOTIFY makes them look). Each round moves one task to a
new IP; the bench asks mesosdns and both secondaries for the task's name
every millisecond and reports, per secondary, the time from mesosdns's first
new answer to the secondary's (NOTIFY, SOA query, IXFR, load): median and
max over the rounds. It also reports the initial AXFR time and the kinds of
transfers each secondary logged.

    python bench/secondaries.py [--tasks 10000] [--rounds 10]

Needs ``named`` and ``knotd`` (scripts/test.sh installs them).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(BENCH), str(ROOT / "tests")]

import refresh  # noqa: E402  (bench/refresh.py: the fake master, the state)
from secondary_servers import (  # noqa: E402  (tests/secondary_servers.py: the servers)
    BindSecondary,
    Key,
    KnotSecondary,
    Secondary,
    addresses,
    free_port,
    soa_serial,
    stop,
)

TASK = "xfrbench"


def wait(check: Any, timeout: float, what: str, step: float = 0.001) -> float:
    """Poll ``check`` until true; the monotonic time it first was."""
    end = time.monotonic() + timeout
    while True:
        if check():
            return time.monotonic()
        if time.monotonic() > end:
            raise SystemExit(f"not within {timeout}s: {what}")
        time.sleep(step)


def kinds(s: Secondary) -> str:
    """The transfers the secondary logged: Knot names their kind; BIND (at
    its default log level) only their records, so those are shown."""
    if s.kind == "knotd":
        found = re.findall(r"\] (AXFR|IXFR), incoming, remote [^,]+, finished", s.log)
        return ", ".join(f"{k} {found.count(k)}" for k in ("AXFR", "IXFR"))
    records = [int(n) for n in re.findall(r"Transfer completed: \d+ messages, (\d+) records",
                                           s.log)]
    if not records:
        return "none"
    later = records[1:] or [0]
    return (f"{len(records)}: the first {records[0]} records, the later ones "
            f"{min(later)}-{max(later)} records each")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=10000)
    ap.add_argument("--agents", type=int, default=0, help="default: tasks / 10")
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=BENCH / "out")
    args = ap.parse_args(argv)
    agents = args.agents or max(1, args.tasks // 10)
    work = Path(tempfile.mkdtemp(prefix="mesosdns-secondaries-"))
    state, meta = refresh.prepared(args.tasks, agents, args.seed, args.out)
    meta_file = work / "meta.json"
    meta_file.write_text(json.dumps(meta))
    key = Key()
    ports = {"named": free_port(), "knotd": free_port()}
    dns_port = free_port()
    master = refresh.MasterProc(state, meta_file, free_port())
    procs: list[subprocess.Popen[bytes]] = []
    started: list[Secondary] = []
    try:
        master.control(mode="task", name=TASK, ip="10.250.0.1")
        config = {
            "masters": [f"127.0.0.1:{master.port}"],
            "refreshSeconds": 1,
            "listener": "127.0.0.1",
            "port": dns_port,
            "httpOn": False,
            "externalOn": False,
            "SOARefresh": 3600,
            "zoneTransfer": {
                "allow": ["127.0.0.1/32"],
                "notify": [f"127.0.0.1:{p}" for p in ports.values()],
                "tsig": key.config(),
            },
        }
        (work / "config.json").write_text(json.dumps(config))
        log = (work / "mesos-dns.log").open("wb")
        procs.append(subprocess.Popen(
            [sys.executable, "-m", "mesosdns", f"-config={work / 'config.json'}"],
            cwd=ROOT, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
        ))
        name = f"{TASK}.marathon.mesos."
        wait(lambda: addresses(dns_port, name) == {"10.250.0.1"}, 600, "mesosdns serving",
             step=0.05)
        serial = soa_serial(dns_port, "mesos.")
        t0 = time.monotonic()
        for cls in (BindSecondary, KnotSecondary):
            s = cls(work, "mesos", dns_port, key)
            s.start(ports[s.kind])
            started.append(s)
        loaded = {}
        for s in started:
            loaded[s.kind] = wait(lambda s=s: s.serial() == serial, 600,
                                  f"{s.kind} loading the zone", step=0.01) - t0
        delays: dict[str, list[float]] = {s.kind: [] for s in started}
        primary: list[float] = []
        for i in range(args.rounds):
            ip = f"10.250.{1 + i // 200}.{1 + i % 200}"
            asked = time.monotonic()
            master.control(mode="task", name=TASK, ip=ip)
            t_p = wait(lambda ip=ip: addresses(dns_port, name) == {ip}, 60, "mesosdns's change")
            primary.append(t_p - asked)
            for s in started:
                t_s = wait(lambda s=s, ip=ip: addresses(s.port, name, timeout=0.2) == {ip},
                           60, f"{s.kind} answering {ip}")
                delays[s.kind].append(t_s - t_p)
            time.sleep(1.1)  # a new serial per round (the serial is a Unix time)
        print(f"tasks {args.tasks}, rounds {args.rounds}")
        print(f"  state change -> mesosdns answers: median {statistics.median(primary):.3f} s")
        for s in started:
            d = delays[s.kind]
            print(f"  {s.kind}: initial transfer {loaded[s.kind]:.2f} s; "
                  f"mesosdns answers -> {s.kind} answers: median "
                  f"{statistics.median(d) * 1000:.1f} ms, max {max(d) * 1000:.1f} ms; "
                  f"transfers logged {kinds(s)}")
        print(f"command: python bench/secondaries.py --tasks {args.tasks} --rounds {args.rounds}")
        return 0
    finally:
        for s in started:
            s.stop()
        for p in procs:
            stop(p, 15)
        master.stop()


if __name__ == "__main__":
    sys.exit(main())
