"""Soak benchmark: sustained mixed DNS load while the state changes every second.

The whole service (``python -m mesosdns``: poller, DNS, HTTP) runs pinned to
core 0 with ``refreshSeconds`` 1 and a ``stateFile`` that this script
rewrites every second (a task added, then removed). On core 1, three dnsperf
instances send, at fixed rates, in-domain questions for existing names (A
and SRV), in-domain questions for missing names (NXDOMAIN) and forwarded
ones (relayed to a local Knot or BIND upstream, pinned to core 1 too), for
``--minutes`` minutes. Meanwhile:

- every response's RCODE is counted per run: the existing names must all get
  NOERROR and the missing ones NXDOMAIN (anything else is a wrong answer);
  no answer within 2 s is counted as lost;
- a checker asks a sample of names with dnspython and compares the answers
  to the records generated from the state (wrong answers);
- after each state change, the changed name is polled until DNS shows it:
  the change-to-served latency;
- the server's RSS is sampled every 5 s (``/proc/PID/status``) and the
  refresh duration read from ``/metrics`` every second.

It prints a table and the commands that reproduce it::

    python bench/soak.py                 # 3 minutes, 2,000 tasks
    python bench/soak.py --minutes 10 --tasks 10000 --domain-qps 30000
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import re
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(BENCH))

from qps import (  # noqa: E402
    CLIENT_CORE,
    FORWARD_ZONE,
    SERVER_CORE,
    free_port,
    started,
    upstream_cmd,
    wait_udp,
)

FLIP = "soak-flip"
NX_NAMES = 2000
NX_SHARE = 20  # percent of the in-domain rate asked for missing names


# -- the state ----------------------------------------------------------------


def flip_task(state: dict[str, Any], serial: int) -> dict[str, Any]:
    """A running task named ``soak-flip`` copied from the first Marathon task."""
    fw = next(f for f in state["frameworks"] if f["name"] == "marathon")
    base = next(t for t in fw["tasks"] if t["state"] == "TASK_RUNNING")
    task = json.loads(json.dumps(base))
    task["id"] = f"{FLIP}.{serial}"
    task["name"] = FLIP
    task.pop("discovery", None)
    ip = f"10.254.{serial // 250 % 250}.{serial % 250 + 1}"
    for status in task.get("statuses", []):
        status["container_status"] = {"network_infos": [{"ip_addresses": [{"ip_address": ip}]}]}
        status["labels"] = []
    return task


class StateWriter:
    """Rewrites the state file (atomically) with the flip task in or out."""

    def __init__(self, path: Path, state: dict[str, Any]) -> None:
        import orjson

        self.path = path
        self.state = state
        self.dumps = orjson.dumps
        self.fw = next(f for f in state["frameworks"] if f["name"] == "marathon")
        self.base_tasks = list(self.fw["tasks"])
        self.serial = 0
        self.present = False

    def write(self, present: bool) -> str | None:
        """Write the state; the flip task's IP when present."""
        self.serial += 1
        ip = None
        tasks = list(self.base_tasks)
        if present:
            task = flip_task(self.state, self.serial)
            tasks.append(task)
            ip = task["statuses"][-1]["container_status"]["network_infos"][0]["ip_addresses"][0][
                "ip_address"
            ]
        self.fw["tasks"] = tasks
        tmp = self.path.with_name(self.path.name + ".tmp")
        tmp.write_bytes(self.dumps(self.state))
        tmp.replace(self.path)
        self.present = present
        return ip


def expected_records(state: dict[str, Any]) -> Any:
    import orjson

    from mesosdns.records.generator import GeneratorParams, generate
    from mesosdns.state.model import parse_state

    params = GeneratorParams(
        domain="mesos", ns_name="ns1.mesos.", listener_ips=("127.0.0.1",), masters=("",)
    )
    return generate(parse_state(orjson.dumps(state)), params)


# -- measurements ---------------------------------------------------------------


@dataclass
class Figures:
    rss_kib: list[tuple[float, int]] = field(default_factory=list)
    refresh_s: list[float] = field(default_factory=list)
    refresh_failures: float = 0.0
    change_s: list[float] = field(default_factory=list)
    change_missed: int = 0
    checked: int = 0
    wrong: list[str] = field(default_factory=list)
    dnsperf: dict[str, str] = field(default_factory=dict)  # each run's summary


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def metrics(http_port: int) -> dict[str, float]:
    url = f"http://127.0.0.1:{http_port}/metrics"
    with urllib.request.urlopen(url, timeout=2) as resp:
        text = resp.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def ask_a(port: int, name: str) -> tuple[int, set[str]]:
    import dns.message
    import dns.query

    q = dns.message.make_query(name, "A")
    r, _ = dns.query.udp_with_fallback(q, "127.0.0.1", port=port, timeout=2)
    return r.rcode(), {rd.address for rrset in r.answer for rd in rrset}


def sampler(pid: int, http_port: int, figs: Figures, stop: threading.Event, t0: float) -> None:
    """RSS every 5 s; the refresh duration at every new successful refresh."""
    last_success = -1.0
    next_rss = 0.0
    while not stop.is_set():
        now = time.monotonic() - t0
        if now >= next_rss:
            figs.rss_kib.append((now, rss_kib(pid)))
            next_rss += 5.0
        try:
            m = metrics(http_port)
        except OSError:
            m = {}
        successes = m.get("mesosdns_refresh_successes_total", last_success)
        if successes != last_success and last_success >= 0:
            figs.refresh_s.append(m.get("mesosdns_refresh_duration_seconds", 0.0))
        last_success = successes
        figs.refresh_failures = (
            sum(v for k, v in m.items() if k.startswith("mesosdns_refresh_failures_total"))
            or figs.refresh_failures
        )
        stop.wait(0.5)


def changer(
    port: int, writer: StateWriter, figs: Figures, stop: threading.Event, period: float
) -> None:
    """Flip the task every ``period`` seconds; time until DNS shows the change."""
    present = False
    while not stop.is_set():
        started_at = time.monotonic()
        present = not present
        ip = writer.write(present)
        name = f"{FLIP}.marathon.mesos."
        seen = False
        while time.monotonic() - started_at < 5 and not stop.is_set():
            try:
                rcode, got = ask_a(port, name)
            except Exception:
                rcode, got = -1, set()
            if (present and got == {ip}) or (not present and rcode == 3):
                figs.change_s.append(time.monotonic() - started_at)
                seen = True
                break
            time.sleep(0.01)
        if not seen and not stop.is_set():
            figs.change_missed += 1
        stop.wait(max(0.0, period - (time.monotonic() - started_at)))


def checker(
    port: int, sample: list[tuple[str, set[str]]], figs: Figures, stop: threading.Event
) -> None:
    """Ask stable names (about 50 a second) and compare with the expected records."""
    rng = random.Random(3)
    while not stop.is_set():
        name, want = rng.choice(sample)
        try:
            rcode, got = ask_a(port, name)
        except Exception as exc:  # a lost answer is counted by dnsperf's run
            figs.wrong.append(f"{name}: {exc!r}")
            continue
        figs.checked += 1
        if rcode != 0 or got != want:
            figs.wrong.append(f"{name}: rcode {rcode}, {sorted(got)} != {sorted(want)}")
        stop.wait(0.02)


def rcodes_of(summary: str) -> Counter[str]:
    """``Response codes: NOERROR 10 (90.00%), NXDOMAIN 1 (10.00%)`` as a Counter."""
    out: Counter[str] = Counter()
    for name, count in re.findall(r"([A-Z]+) (\d+) \(", summary_field(summary, "Response codes")):
        out[name] += int(count)
    return out


def lost_of(summary: str) -> int:
    m = re.search(r"Queries lost:\s+(\d+)", summary)
    return int(m.group(1)) if m else -1


# -- main -----------------------------------------------------------------------


def summary_field(text: str, label: str) -> str:
    m = re.search(rf"{label}:\s+(.+)", text)
    return m.group(1).strip() if m else "?"


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * q))]


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--tasks", type=int, default=2000)
    ap.add_argument("--agents", type=int, default=200)
    ap.add_argument("--domain-qps", type=int, default=20000, help="in-domain queries per second")
    ap.add_argument("--forward-qps", type=int, default=2000, help="forwarded queries per second")
    ap.add_argument("--change-every", type=float, default=1.0, help="seconds between changes")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    args = ap.parse_args(argv)
    for tool in ("dnsperf", "taskset"):
        if not shutil.which(tool):
            print(f"{tool} is not installed", file=sys.stderr)
            return 2
    seconds = int(args.minutes * 60)
    print(f"command: {shlex.join([sys.executable, *sys.argv])}", flush=True)
    # this process (checker, changer, dnsperf parsing) stays off the server's core
    with contextlib.suppress(AttributeError, OSError):
        os.sched_setaffinity(0, {int(CLIENT_CORE)})

    from synth import make_state

    from mesosdns.dns.wire import in_zone, plain_key_wire, text_to_wire

    state = make_state(args.tasks, args.agents)
    rs = expected_records(state)
    domain = text_to_wire("mesos.") or b""

    def usable(name: str) -> bool:
        w = plain_key_wire(name)
        return w is not None and in_zone(w, domain) and FLIP not in name

    a_names = sorted(n for n, v in rs.a.items() if v and usable(n))
    srv_names = sorted(n for n, v in rs.srv.items() if v and usable(n))
    rng = random.Random(7)
    lines = [f"{n} A" for n in a_names] + [f"{n} SRV" for n in srv_names]
    rng.shuffle(lines)
    nx_lines = [f"missing-{i}.marathon.mesos. A" for i in range(NX_NAMES)]
    sample = [
        (n, set(rs.a[n]))
        for n in rng.sample(a_names, min(500, len(a_names)))
        if len(rs.a[n]) <= 8 and all(":" not in ip for ip in rs.a[n])
    ]
    figs = Figures()

    with ExitStack() as stack:
        work = Path(tempfile.mkdtemp(prefix="mesosdns-soak-"))
        if not args.keep:
            stack.callback(shutil.rmtree, work, True)
        domain_file = work / "domain.txt"
        domain_file.write_text("\n".join(lines) + "\n")
        nx_file = work / "nxdomain.txt"
        nx_file.write_text("\n".join(nx_lines) + "\n")
        forward_file = work / "forward.txt"
        forward_file.write_text("".join(f"host-{i}.{FORWARD_ZONE}. A\n" for i in range(10_000)))
        state_file = work / "state.json"
        writer = StateWriter(state_file, state)
        writer.write(False)

        up_port = free_port()
        up_name, up_cmd = upstream_cmd(work, up_port)
        print(f"upstream: {shlex.join(up_cmd)}")
        stack.enter_context(started(up_name, up_cmd, None))
        wait_udp(up_port, f"probe.{FORWARD_ZONE}.")

        port, http_port = free_port(), free_port()
        config = {
            "stateFile": str(state_file),
            "refreshSeconds": 1,
            "port": port,
            "httpPort": http_port,
            "listener": "127.0.0.1",
            "HTTPListener": "127.0.0.1",
            "resolvers": [f"127.0.0.1:{up_port}"],
            "timeout": 2,
        }
        config_file = work / "config.json"
        config_file.write_text(json.dumps(config, indent=2))
        server_cmd = [
            "taskset",
            "-c",
            SERVER_CORE,
            sys.executable,
            "-m",
            "mesosdns",
            f"-config={config_file}",
        ]
        print(f"server: {shlex.join(server_cmd)}  (config: {json.dumps(config)})")
        log = (work / "server.log").open("w")
        stack.callback(log.close)
        server = subprocess.Popen(server_cmd, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)

        def stop_server() -> None:
            if server.poll() is None:
                server.terminate()
                try:
                    server.wait(10)
                except subprocess.TimeoutExpired:
                    server.kill()

        stack.callback(stop_server)
        wait_udp(port, "leader.mesos.", timeout=60)

        def dnsperf(datafile: Path, qps: int) -> list[str]:
            return [
                "taskset",
                "-c",
                CLIENT_CORE,
                "dnsperf",
                "-s",
                "127.0.0.1",
                "-p",
                str(port),
                "-d",
                str(datafile),
                "-l",
                str(seconds),
                "-Q",
                str(qps),
                "-q",
                "2000",
                "-t",
                "2",
                "-b",
                "4096",
            ]

        cmds = {
            "existing": dnsperf(domain_file, args.domain_qps - nx_rate(args)),
            "missing": dnsperf(nx_file, nx_rate(args)),
            "forward": dnsperf(forward_file, args.forward_qps),
        }
        for key, cmd in cmds.items():
            print(f"dnsperf ({key}): {shlex.join(cmd)}")
        print(f"running for {seconds} s ...", flush=True)
        stop = threading.Event()
        t0 = time.monotonic()
        threads = [
            threading.Thread(target=sampler, args=(server.pid, http_port, figs, stop, t0)),
            threading.Thread(target=changer, args=(port, writer, figs, stop, args.change_every)),
            threading.Thread(target=checker, args=(port, sample, figs, stop)),
        ]
        outputs = {key: (work / f"dnsperf-{key}.txt").open("w+") for key in cmds}
        procs = {
            key: subprocess.Popen(cmd, stdout=outputs[key], stderr=subprocess.STDOUT, text=True)
            for key, cmd in cmds.items()
        }
        for t in threads:
            t.start()
        for key, proc in procs.items():
            proc.wait()
            outputs[key].seek(0)
            figs.dnsperf[key] = outputs[key].read()
            outputs[key].close()
        stop.set()
        for t in threads:
            t.join()
        exited = server.poll()
        stop_server()

    report(args, figs, exited)
    existing = rcodes_of(figs.dnsperf.get("existing", ""))
    missing = rcodes_of(figs.dnsperf.get("missing", ""))
    ok = (
        exited is None
        and set(existing) == {"NOERROR"}
        and set(missing) == {"NXDOMAIN"}
        and not figs.wrong
    )
    return 0 if ok else 1


def nx_rate(args: argparse.Namespace) -> int:
    return max(1, int(args.domain_qps) * NX_SHARE // 100)


def report(args: argparse.Namespace, figs: Figures, exited: int | None) -> None:
    runs = {k: (rcodes_of(v), lost_of(v), v) for k, v in figs.dnsperf.items()}

    def run_row(key: str, want: str) -> str:
        codes, lost, text = runs.get(key, (Counter(), -1, ""))
        wrong = sum(n for code, n in codes.items() if code != want)
        sent = summary_field(text, "Queries sent")
        answered = ", ".join(f"{c} {n}" for c, n in codes.most_common())
        return f"{sent} sent; {answered}; wrong RCODE {wrong}; lost {lost}"

    rss = figs.rss_kib
    warm = [r for t, r in rss if t >= 30] or [r for _, r in rss]
    first, last, peak = (warm[0] / 1024, warm[-1] / 1024, max(warm) / 1024) if warm else (0, 0, 0)
    slope = 0.0
    pts = [(t, r / 1024) for t, r in rss if t >= 30]
    if len(pts) >= 3:
        mt = statistics.mean(t for t, _ in pts)
        mr = statistics.mean(r for _, r in pts)
        den = sum((t - mt) ** 2 for t, _ in pts)
        slope = sum((t - mt) * (r - mr) for t, r in pts) / den * 60 if den else 0.0
    rows = [
        (
            "duration",
            f"{args.minutes:g} min, state of {args.tasks} tasks / {args.agents} agents "
            f"rewritten every {args.change_every:g} s",
        ),
        (
            f"existing names (A, SRV), {args.domain_qps - nx_rate(args)} q/s",
            run_row("existing", "NOERROR"),
        ),
        (f"missing names, {nx_rate(args)} q/s", run_row("missing", "NXDOMAIN")),
        (f"forwarded, {args.forward_qps} q/s", run_row("forward", "NOERROR")),
        ("answers checked / wrong", f"{figs.checked} / {len(figs.wrong)}"),
        (
            "RSS after 30 s / end / peak",
            f"{first:.1f} / {last:.1f} / {peak:.1f} MiB "
            f"({len(rss)} samples, slope {slope:+.2f} MiB/min)",
        ),
        (
            "refresh duration",
            f"median {pct(figs.refresh_s, 0.5) * 1000:.0f} ms, p99 "
            f"{pct(figs.refresh_s, 0.99) * 1000:.0f} ms, max "
            f"{max(figs.refresh_s, default=0) * 1000:.0f} ms "
            f"({len(figs.refresh_s)} refreshes, {figs.refresh_failures:.0f} failed)",
        ),
        (
            "change -> served over DNS",
            f"median {pct(figs.change_s, 0.5) * 1000:.0f} ms, p99 "
            f"{pct(figs.change_s, 0.99) * 1000:.0f} ms, max "
            f"{max(figs.change_s, default=0) * 1000:.0f} ms "
            f"({len(figs.change_s)} changes, {figs.change_missed} "
            f"not seen in 5 s)",
        ),
        (
            "in-domain latency (s)",
            summary_field(figs.dnsperf.get("existing", ""), "Average Latency \\(s\\)"),
        ),
        ("server", "running at the end" if exited is None else f"EXITED with {exited}"),
    ]
    print()
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        print(f"{key:<{width}}  {value}")
    for item in figs.wrong[:10]:
        print(f"  wrong answer: {item}")


if __name__ == "__main__":
    sys.exit(main())
