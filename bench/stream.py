"""Benchmark: stream mode: freshness, CPU per event, memory.

Two parts, each on the synthetic states of bench/synth.py (cached in bench/out):

latency
    The real server (``python -m mesosdns``, ``stateSource: "stream"``) in a
    process of its own, following the fake master of tests/fakemaster.py on
    loopback (in this process). For each of ``--events`` new tasks of the
    first framework, the fake master sends TASK_ADDED (staging) then
    TASK_UPDATED (TASK_RUNNING, with a container IP); the latency runs from
    the moment the TASK_RUNNING record is written to the stream to the first
    DNS reply that carries the task's address (queried over UDP back to back,
    each reply awaited). Prints p50 / p90 / p99 / max, and the server's CPU
    time per event (read from /proc; includes the probe queries it answered).
    The original: a new task is served after the next poll, up to
    ``refreshSeconds`` (60 s by default) plus the poll's own duration.

cpu
    In fresh processes, without network: ``poll`` parses ``/master/state``,
    generates and compiles (one refresh of poll mode); ``stream`` decodes the
    same state as a SUBSCRIBED event, builds the incremental records and the
    live answer table, then applies ``--events`` events per kind through the
    stream poller's own code (decode, apply, recompile the changed names,
    serial, snapshot): a new task of an existing app (TASK_ADDED), its
    TASK_RUNNING, a health update that changes nothing, and its TASK_KILLED.
    CPU is process time. Memory: peak RSS, and RSS once built.

    python bench/stream.py                          # both, 10k and 100k tasks
    python bench/stream.py latency --tasks 10000 --events 500
    python bench/stream.py cpu --tasks 100000 --events 1000
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import os
import platform
import random
import resource
import shlex
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH), str(ROOT / "tests")]

import generate as gen_bench  # noqa: E402  (bench/generate.py: state files, params)
import orjson  # noqa: E402
from ports import free_port  # noqa: E402  (tests/ports.py)
from refresh import answers_compiled, tree_cpu  # noqa: E402  (the server's processes)

PAGE = os.sysconf("SC_PAGE_SIZE")


def peak_rss_mib() -> float:
    """This process's peak RSS (VmHWM: since exec; ru_maxrss would carry the
    parent's peak across fork)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 2**20


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def subscribed_file(out_dir: Path, tasks: int, agents: int, seed: int) -> Path:
    """The SUBSCRIBED event (v1 JSON) of the synthetic state, written once."""
    src = gen_bench.state_file(out_dir, tasks, agents, seed)
    path = src.with_name(src.stem + "-subscribed.json")
    if not path.exists():
        from fakemaster import v1_get_state

        doc = orjson.loads(src.read_bytes())
        event = {
            "type": "SUBSCRIBED",
            "subscribed": {"get_state": v1_get_state(doc), "heartbeat_interval_seconds": 15.0},
        }
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_bytes(orjson.dumps(event))
        tmp.replace(path)
    return path


# -- cpu: one child process per mode ----------------------------------------


def child_poll(path: Path) -> dict[str, Any]:
    from mesosdns.dns.answers import compile_answers
    from mesosdns.dns.settings import DNSSettings
    from mesosdns.records.generator import GeneratorParams, generate
    from mesosdns.state.model import parse_state

    params = GeneratorParams(**gen_bench.PARAMS)
    data = path.read_bytes()
    c0, t0 = time.process_time(), time.perf_counter()
    state = parse_state(data)
    del data
    records = generate(state, params)
    del state
    table = compile_answers(records, DNSSettings(), 1)
    c1, t1 = time.process_time(), time.perf_counter()
    return {
        "reload_cpu_s": c1 - c0,
        "reload_wall_s": t1 - t0,
        "peak_rss_mib": peak_rss_mib(),
        "rss_mib": rss_mib(),
        "entries": len(table.entries),
    }


def child_stream(path: Path, events: int, seed: int) -> dict[str, Any]:
    import msgspec
    from fakemaster import v1_status, v1_task

    from mesosdns.builder.poll import Source
    from mesosdns.builder.stream import StreamCompilers, StreamPoller
    from mesosdns.dns.settings import DNSSettings
    from mesosdns.metrics import RefreshStats
    from mesosdns.records.generator import GeneratorParams
    from mesosdns.state.v1 import Subscribed, decode_event
    from mesosdns.store.replica import Replica
    from mesosdns.store.update import Update, frames

    params = GeneratorParams(**gen_bench.PARAMS)
    settings = DNSSettings()
    data = path.read_bytes()
    c0, t0 = time.process_time(), time.perf_counter()
    event = decode_event(data)
    del data
    assert isinstance(event, Subscribed)
    state = msgspec.structs.replace(event.state, leader="master@10.0.0.11:5050")
    # the builder's side encodes each update into its frames; a replica (a
    # serving process's side) applies them, timed apart
    replica = Replica()
    sent: list[list[bytes]] = []

    def sink(update: Update) -> None:
        sent.append([f[4:] for f in frames(update)])

    compilers = StreamCompilers(settings)
    poller = StreamPoller(
        Source(),
        params,
        RefreshStats(),
        refresh_seconds=60.0,
        compilers=lambda: compilers,
        sink=sink,
    )
    engine = poller.engine
    built = engine.build(state, params, compilers, 1, event.orphans)
    sink(engine.install(built, compilers, "bench"))
    gen = built[0]
    c1, t1 = time.process_time(), time.perf_counter()
    for frame in sent.pop():
        replica.feed(frame)
    replica_full_s = time.process_time() - c1
    gc.freeze()  # as the builder does after a full build
    rng = random.Random(seed)
    running = [
        (fw, t)
        for fw in state.frameworks
        for t in fw.tasks
        if t.state == "TASK_RUNNING" and t.agent_id in gen.agent_ips
    ]
    del state, event
    built_rss = rss_mib()

    def task_json(fw_id: str, t: Any, tid: str) -> dict[str, Any]:
        return {
            "id": tid,
            "name": t.name,
            "framework_id": fw_id,
            "slave_id": t.agent_id,
            "state": "TASK_STAGING",
            "statuses": [],
            "resources": {"ports": t.resources.ports} if t.resources else {},
            **({"discovery": msgspec.to_builtins(t.discovery)} if t.discovery else {}),
        }

    def updated(fw_id: str, tid: str, aid: str, state: str, ts: float, ip: str | None) -> bytes:
        status: dict[str, Any] = {"state": state, "timestamp": ts}
        if ip:
            status["container_status"] = {"network_infos": [{"ip_addresses": [{"ip_address": ip}]}]}
        return orjson.dumps(
            {
                "type": "TASK_UPDATED",
                "task_updated": {
                    "framework_id": {"value": fw_id},
                    "status": v1_status(status, tid, aid),
                    "state": state,
                },
            }
        )

    kinds = ("TASK_ADDED", "TASK_RUNNING", "health update", "TASK_KILLED")
    script: list[tuple[str, bytes]] = []
    for i in range(events):
        fw, t = rng.choice(running)
        tid = f"bench-{i}"
        ip = f"10.250.{i // 250}.{i % 250 + 1}"
        added = {"type": "TASK_ADDED", "task_added": {"task": v1_task(task_json(fw.id, t, tid))}}
        script.append((kinds[0], orjson.dumps(added)))
        script.append((kinds[1], updated(fw.id, tid, t.agent_id, "TASK_RUNNING", 2e9 + i, ip)))
        script.append((kinds[2], updated(fw.id, tid, t.agent_id, "TASK_RUNNING", 3e9 + i, ip)))
        script.append((kinds[3], updated(fw.id, tid, t.agent_id, "TASK_KILLED", 4e9 + i, None)))
    cpu: dict[str, list[float]] = {k: [] for k in kinds}
    apply_cpu: dict[str, list[float]] = {k: [] for k in kinds}
    names: dict[str, list[int]] = {k: [] for k in kinds}
    for kind, raw in script:
        c = time.process_time()
        ev = decode_event(raw)
        poller._apply_event(gen, ev)
        n = 0
        update = engine.flush()
        if update is not None:
            n += len(update.a)
            sink(update)
        # isolated events: any large SRV name deferred is compiled each time
        update = engine.compile_pending()
        if update is not None:
            sink(update)
        cpu[kind].append(time.process_time() - c)
        names[kind].append(n)
        c = time.process_time()
        for batch in sent:
            for frame in batch:
                replica.feed(frame)
        sent.clear()
        apply_cpu[kind].append(time.process_time() - c)
    return {
        "build_cpu_s": c1 - c0,
        "build_wall_s": t1 - t0,
        "peak_rss_mib": peak_rss_mib(),
        "rss_mib": built_rss,
        "rss_after_mib": rss_mib(),
        "replica_full_s": replica_full_s,
        "apply_us": {
            k: {
                "mean": statistics.mean(v) * 1e6,
                "p99": pct(v, 0.99) * 1e6,
                "max": max(v) * 1e6,
            }
            for k, v in apply_cpu.items()
        },
        "cpu_us": {
            k: {
                "mean": statistics.mean(v) * 1e6,
                "p50": pct(v, 0.5) * 1e6,
                "p90": pct(v, 0.9) * 1e6,
                "p99": pct(v, 0.99) * 1e6,
                "max": max(v) * 1e6,
            }
            for k, v in cpu.items()
        },
        "names": {k: statistics.mean(v) for k, v in names.items()},
        "records": gen.counts(),
    }


def child_bigapp(instances: int, every: int) -> dict[str, Any]:
    """Scale one app from 0 to ``instances`` tasks (2 ports each) on 100
    agents; the deferred SRV names compiled every ``every`` events."""
    from mesosdns.dns.incremental import LiveAnswers
    from mesosdns.dns.settings import DNSSettings
    from mesosdns.records.generator import GeneratorParams
    from mesosdns.records.incremental import IncrementalGenerator
    from mesosdns.state.model import (
        Agent,
        ContainerStatus,
        Framework,
        IPAddress,
        NetworkInfo,
        Resources,
        State,
        Status,
        Task,
    )

    agents = tuple(
        Agent(id=f"A-S{i}", hostname="h", pid=f"slave(1)@10.1.{i // 250}.{i % 250 + 1}:5051")
        for i in range(100)
    )
    fw = Framework(id="fw", name="marathon", hostname="10.0.0.11")
    state = State(leader="master@10.0.0.11:5050", frameworks=(fw,), agents=agents)
    gen = IncrementalGenerator.from_state(state, GeneratorParams())
    live = LiveAnswers(gen.record_set(), DNSSettings(), 1)
    cpu: list[float] = []
    for i in range(instances):
        ip = f"10.9.{i // 250}.{i % 250 + 1}"
        status = Status(
            state="TASK_RUNNING",
            timestamp=1.0,
            container_status=ContainerStatus((NetworkInfo((IPAddress(ip),)),)),
        )
        task = Task(
            id=f"big.{i}",
            name="big",
            state="TASK_RUNNING",
            agent_id=f"A-S{i % 100}",
            framework_id="fw",
            statuses=(status,),
            resources=Resources("[31000-31001]"),
        )
        c = time.process_time()
        gen.put_task(task)
        live.update(gen.take_changes())
        if (i + 1) % every == 0:
            live.compile_pending()
        cpu.append(time.process_time() - c)
    live.compile_pending()
    return {"total_s": sum(cpu), "max_ms": max(cpu) * 1000, "last_ms": cpu[-1] * 1000}


def run_child(args: list[str]) -> dict[str, Any]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(ROOT)) if p)
    proc = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr)
        raise SystemExit(f"benchmark child failed with exit status {proc.returncode}")
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def cpu_part(sizes: list[tuple[int, int]], events: int, seed: int, out_dir: Path) -> str:
    lines = [
        f"CPU per event and memory, stream mode vs a poll-mode refresh ({events} events "
        "per kind; process time; fresh process per mode)",
        "",
    ]
    for tasks, agents in sizes:
        v0 = gen_bench.state_file(out_dir, tasks, agents, seed)
        sub = subscribed_file(out_dir, tasks, agents, seed)
        print(f"{tasks} tasks: poll refresh...", file=sys.stderr)
        poll = run_child(["--child-poll", str(v0)])
        print(f"{tasks} tasks: stream build and {4 * events} events...", file=sys.stderr)
        stream = run_child(
            ["--child-stream", str(sub), "--events", str(events), "--seed", str(seed)]
        )
        lines.append(f"{tasks} tasks / {agents} agents:")
        lines.append(
            f"  poll mode, one refresh (parse + generate + compile): "
            f"{poll['reload_cpu_s']:.2f} s CPU ({poll['reload_wall_s']:.2f} s wall), "
            f"peak RSS {poll['peak_rss_mib']:.0f} MiB, RSS after {poll['rss_mib']:.0f} MiB"
        )
        lines.append(
            f"  stream mode, SUBSCRIBED (decode + build + compile): "
            f"{stream['build_cpu_s']:.2f} s CPU ({stream['build_wall_s']:.2f} s wall), "
            f"peak RSS {stream['peak_rss_mib']:.0f} MiB, RSS built {stream['rss_mib']:.0f} MiB"
            f", after the events {stream['rss_after_mib']:.0f} MiB"
        )
        lines.append(
            f"  {'event':<16} {'mean us':>8} {'p50 us':>8} {'p90 us':>8} {'p99 us':>8} "
            f"{'max us':>8} {'names recompiled':>17}"
        )
        for kind, c in stream["cpu_us"].items():
            lines.append(
                f"  {kind:<16} {c['mean']:>8.0f} {c['p50']:>8.0f} {c['p90']:>8.0f} "
                f"{c['p99']:>8.0f} {c['max']:>8.0f} {stream['names'][kind]:>17.1f}"
            )
        lines.append(
            "  (builder: decode, apply, recompile, encode the update's frames; "
            "a serving process applying them:)"
        )
        lines.append(
            f"  replica: the whole version in {stream['replica_full_s']:.2f} s CPU; per event"
        )
        for kind, c in stream["apply_us"].items():
            lines.append(
                f"  {kind:<16} mean {c['mean']:>5.0f} us, p99 {c['p99']:>5.0f} us, "
                f"max {c['max']:>6.0f} us"
            )
        lines.append("")
    lines.append(
        "One app scaled from 0 to 1000 instances (2 ports each: its SRV names grow to 2000 "
        "targets), TASK_RUNNING by TASK_RUNNING:"
    )
    for every, what in (
        (1, "large SRV names recompiled at each event"),
        (5, "deferred, compiled every 5 events (10 events/s, 0.5 s deferral)"),
    ):
        big = run_child(["--child-bigapp", "1000", "--every", str(every)])
        lines.append(
            f"  {what}: {big['total_s']:.2f} s CPU in all, "
            f"{big['total_s']:.2f} ms per event on average (1000 events), "
            f"the longest {big['max_ms']:.1f} ms"
        )
    lines.append("")
    return "\n".join(lines)


# -- latency: the real server, the fake master ---------------------------------


def _query(qid: int, name: str) -> bytes:
    wire = b"".join(bytes([len(p)]) + p.encode() for p in name.strip(".").split(".")) + b"\0"
    return struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0) + wire + b"\x00\x01\x00\x01"


class _Probe(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiting: dict[int, asyncio.Future[bytes]] = {}

    def datagram_received(self, data: bytes, addr: Any) -> None:
        fut = self.waiting.pop(struct.unpack(">H", data[:2])[0], None)
        if fut is not None and not fut.done():
            fut.set_result(data)


async def latency_run(
    tasks: int, agents: int, events: int, seed: int, out_dir: Path, gap: float
) -> dict[str, Any]:
    from fakemaster import FakeMaster

    from mesosdns.records.labels import domain_frag, rfc1123

    doc = orjson.loads(gen_bench.state_file(out_dir, tasks, agents, seed).read_bytes())
    fw = doc["frameworks"][0]
    agent = doc["slaves"][0]
    fname = domain_frag(fw["name"], rfc1123)
    master = FakeMaster(doc)
    await master.start()
    port, http_port = free_port(), free_port()
    with tempfile.TemporaryDirectory() as tmp:
        config = Path(tmp) / "config.json"
        config.write_text(
            json.dumps(
                {
                    "stateSource": "stream",
                    "masters": [master.address],
                    "port": port,
                    "listener": "127.0.0.1",
                    "httpPort": http_port,
                    "HTTPListener": "127.0.0.1",
                    "enumerationOn": False,
                    "externalOn": False,
                    "resolvers": ["127.0.0.1:9"],
                    "refreshSeconds": 60,
                    "stateTimeoutSeconds": 300,
                }
            )
        )
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (env.get("PYTHONPATH"), str(ROOT)) if p)
        server_log = Path(tmp) / "server.log"
        proc = subprocess.Popen(
            [sys.executable, "-m", "mesosdns", "-config", str(config)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=server_log.open("wb"),
        )
        loop = asyncio.get_running_loop()
        transport, probe = await loop.create_datagram_endpoint(
            _Probe, remote_addr=("127.0.0.1", port)
        )
        qid = 0

        async def ask(name: str, timeout: float = 0.2) -> bytes | None:
            nonlocal qid
            qid = (qid + 1) & 0xFFFF
            fut: asyncio.Future[bytes] = loop.create_future()
            probe.waiting[qid] = fut
            transport.sendto(_query(qid, name))
            try:
                async with asyncio.timeout(timeout):
                    return await fut
            except TimeoutError:
                probe.waiting.pop(qid, None)
                return None

        def has_answer(reply: bytes | None) -> bool:
            return reply is not None and reply[3] & 0x0F == 0 and reply[6:8] != b"\0\0"

        try:
            started = time.monotonic()
            while not has_answer(await ask("leader.mesos.")):
                if proc.poll() is not None:
                    tail = server_log.read_text(errors="replace")[-3000:]
                    raise SystemExit(f"the server exited:\n{tail}")
                if time.monotonic() - started > 600:
                    raise SystemExit("the server did not become ready")
                await asyncio.sleep(0.05)
            ready_s = time.monotonic() - started
            # a large first state is answered from its records while it
            # compiles: the events are timed once its answers are compiled
            while await asyncio.to_thread(answers_compiled, http_port) is False:
                if time.monotonic() - started > 600:
                    raise SystemExit("the server's answers were not compiled in time")
                await asyncio.sleep(0.5)
            await asyncio.sleep(0.5)
            latencies: list[float] = []
            probes = 0
            cpu0 = tree_cpu(proc.pid)
            for i in range(events):
                name = f"bench{i}"
                tid = f"{name}.{i}"
                await master.add_task(
                    {
                        "id": tid,
                        "name": name,
                        "framework_id": fw["id"],
                        "slave_id": agent["id"],
                        "state": "TASK_STAGING",
                        "statuses": [],
                        "resources": {"ports": "[31000-31001]"},
                    }
                )
                ip = f"10.250.{i // 250}.{i % 250 + 1}"
                sent = await master.update_task(fw["id"], tid, "TASK_RUNNING", ip=ip)
                if sent is None:
                    raise SystemExit("the server is not subscribed")
                qname = f"{name}.{fname}.mesos."
                while True:
                    probes += 1
                    reply = await ask(qname)
                    if has_answer(reply):
                        latencies.append(time.monotonic() - sent)
                        break
                    if time.monotonic() - sent > 10:
                        raise SystemExit(f"{qname} never answered")
                await asyncio.sleep(gap)
            cpu1 = tree_cpu(proc.pid)
        finally:
            transport.close()
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(10)
            if proc.poll() is None:
                proc.kill()
            await master.stop()
    return {
        "ready_s": ready_s,
        "latencies": latencies,
        "probes": probes,
        "server_cpu_per_event_us": (cpu1 - cpu0) / (2 * events) * 1e6,
    }


def latency_part(
    sizes: list[tuple[int, int]], events: int, seed: int, out_dir: Path, gap: float
) -> str:
    lines = [
        f"Freshness: TASK_RUNNING written by the master -> the name answers over DNS "
        f"({events} tasks, {gap * 1000:.0f} ms apart)",
        "",
        f"{'tasks':>8}  {'ready s':>8}  {'p50 ms':>7}  {'p90 ms':>7}  {'p99 ms':>7}  "
        f"{'max ms':>7}  {'server CPU/event us':>19}",
    ]
    for tasks, agents in sizes:
        print(f"{tasks} tasks: latency over {events} events...", file=sys.stderr)
        r = asyncio.run(latency_run(tasks, agents, events, seed, out_dir, gap))
        ms = [x * 1000 for x in r["latencies"]]
        lines.append(
            f"{tasks:>8}  {r['ready_s']:>8.1f}  {pct(ms, 0.5):>7.2f}  {pct(ms, 0.9):>7.2f}  "
            f"{pct(ms, 0.99):>7.2f}  {max(ms):>7.2f}  {r['server_cpu_per_event_us']:>19.0f}"
        )
    lines += [
        "",
        "ready: from the server's start to its first answer (SUBSCRIBED decoded, built, compiled)",
        "server CPU/event: the CPU of the server's processes (supervisor, builder, worker) over"
        " the run / events (TASK_ADDED and "
        "TASK_UPDATED), DNS probes included",
        "the original: up to refreshSeconds (60 s by default) plus one poll",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("part", nargs="?", choices=("latency", "cpu", "all"), default="all")
    parser.add_argument("--tasks", help="comma-separated TASKS[/AGENTS] (default 10000,100000)")
    parser.add_argument(
        "--events", type=int, default=0, help="events (latency: 500; cpu: 1000 per kind)"
    )
    parser.add_argument("--gap", type=float, default=0.02, help="seconds between latency events")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out-dir", type=Path, default=BENCH / "out")
    parser.add_argument("--child-poll", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-stream", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--child-bigapp", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--every", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_poll is not None:
        print(json.dumps(child_poll(args.child_poll)))
        return 0
    if args.child_bigapp is not None:
        print(json.dumps(child_bigapp(args.child_bigapp, args.every)))
        return 0
    if args.child_stream is not None:
        print(json.dumps(child_stream(args.child_stream, args.events or 1000, args.seed)))
        return 0
    sizes = gen_bench.parse_sizes(args.tasks or "10000,100000")
    out = [
        f"mesosdns stream mode, python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} CPU(s)",
        "",
    ]
    if args.part in ("latency", "all"):
        out.append(latency_part(sizes, args.events or 500, args.seed, args.out_dir, args.gap))
        out.append("")
    if args.part in ("cpu", "all"):
        out.append(cpu_part(sizes, args.events or 1000, args.seed, args.out_dir))
    command = "python bench/stream.py" + ("" if args.part == "all" else f" {args.part}")
    if args.tasks:
        command += f" --tasks {shlex.quote(args.tasks)}"
    if args.events:
        command += f" --events {args.events}"
    out.append(f"reproduce: {command}")
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
