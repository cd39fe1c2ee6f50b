"""Benchmark: zone transfers from the real server (AXFR, and IXFR after a
one-task change), at 100k tasks.

The server is this checkout's ``mesos-dns`` (supervisor, builder, one worker
unless ``--workers``) reading the synthetic state of bench/synth.py (cached
in bench/out) through ``stateFile``, with ``zoneTransfer`` allowing
127.0.0.1 (and a TSIG key with ``--tsig``: every request and message is then
signed). The client is a raw socket reader in this process: it sends the
request and reads length-prefixed messages until the closing SOA, counting
messages, octets and records (the headers' ANCOUNT), without parsing them.

Each run: an AXFR (time from sending the request to the last message
read); the state file then gets one more task, the client waits for the SOA
serial to move, and asks an IXFR from the serial of the AXFR (time, size).
Meanwhile a prober thread sends an SOA query over UDP every 5 ms and keeps
the slowest answer seen during each transfer: how long the worker's loop was
held. The worker's CPU seconds over each transfer are read from /proc.
Figures are medians over ``--runs`` runs against one server.

    python bench/xfr.py                       # 100k tasks, 3 runs
    python bench/xfr.py --tasks 10000 --runs 5 --tsig
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import socket
import statistics
import struct
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path[:0] = [str(ROOT), str(BENCH)]

import generate as gen_bench  # noqa: E402
import orjson  # noqa: E402
from refresh import Server, _stat, free_port, task_bytes, tree  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")
SECRET = base64.b64encode(b"bench/xfr.py transfer key 32 oct").decode()
KEYNAME = "bench-xfr"


def soa_query(qid: int) -> bytes:
    return struct.pack(">HHHHHH", qid, 0x0000, 1, 0, 0, 0) + b"\x05mesos\x00\x00\x06\x00\x01"


def xfr_request(qid: int, rdtype: int, serial: int, tsig: bool) -> bytes:
    """An AXFR (252) or IXFR (251, with our ``serial`` in authority) request."""
    import dns.message
    import dns.rdataclass
    import dns.rdatatype
    import dns.rrset
    import dns.tsigkeyring

    q = dns.message.make_query("mesos.", rdtype)
    q.id = qid
    if rdtype == 251:
        q.authority.append(dns.rrset.from_text(
            "mesos.", 0, dns.rdataclass.IN, dns.rdatatype.SOA,
            f"ns1.mesos. root.ns1.mesos. {serial} 0 0 0 0"))
    if tsig:
        q.use_tsig(dns.tsigkeyring.from_text({KEYNAME: SECRET}), keyname=KEYNAME)
    return q.to_wire()


def read_soa(reply: bytes) -> tuple[bytes, int] | None:
    """The first answer's SOA rdata and serial (None: no SOA answer)."""
    if len(reply) < 12 or reply[3] & 0x0F or not (reply[6] << 8 | reply[7]):
        return None
    i = 12
    for _ in range(reply[4] << 8 | reply[5]):  # the question
        while reply[i] and reply[i] < 0xC0:
            i += reply[i] + 1
        i += (2 if reply[i] >= 0xC0 else 1) + 4
    while reply[i] and reply[i] < 0xC0:
        i += reply[i] + 1
    i += 2 if reply[i] >= 0xC0 else 1
    rtype, _, _, rdlen = struct.unpack_from(">HHIH", reply, i)
    if rtype != 6:
        return None
    rdata = reply[i + 10 : i + 10 + rdlen]
    return rdata, struct.unpack(">I", rdata[-20:-16])[0]


def transfer(port: int, request: bytes) -> dict[str, Any]:
    """Send a transfer request over TCP; read until the closing SOA."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=60)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    buf = bytearray()
    msgs = octets = rrs = 0
    soa: bytes | None = None
    t0 = time.perf_counter()
    sock.sendall(struct.pack(">H", len(request)) + request)
    done = False
    while not done:
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise SystemExit("the server closed the connection mid-transfer")
        buf += chunk
        while len(buf) >= 2:
            size = buf[0] << 8 | buf[1]
            if len(buf) < 2 + size:
                break
            msg = bytes(buf[2 : 2 + size])
            del buf[: 2 + size]
            msgs += 1
            octets += size
            count = msg[6] << 8 | msg[7]
            rrs += count
            if soa is None:
                got = read_soa(msg)
                if got is None:
                    raise SystemExit(f"no SOA first: rcode {msg[3] & 15}")
                soa = got[0]
                if count == 1:  # a single SOA (IXFR, up to date)
                    done = True
                    continue
                if msg.count(soa) >= 2 and rrs > 2:
                    done = True
            elif soa in msg[-(len(soa) + 200) :]:
                done = True
    took = time.perf_counter() - t0
    sock.close()
    return {"seconds": took, "messages": msgs, "octets": octets, "rrs": rrs}


class Prober(threading.Thread):
    """An SOA query every 5 ms over UDP; the slowest reply in a window."""

    def __init__(self, port: int) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.stop_event = threading.Event()
        self.window: list[float] = []
        self.lock = threading.Lock()

    def run(self) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.settimeout(2.0)
        qid = 0
        while not self.stop_event.is_set():
            qid = (qid + 1) & 0xFFFF
            t0 = time.perf_counter()
            sock.sendto(soa_query(qid), ("127.0.0.1", self.port))
            try:
                while True:
                    data = sock.recv(4096)
                    if data[:2] == struct.pack(">H", qid):
                        break
                took = time.perf_counter() - t0
            except TimeoutError:
                took = 2.0
            with self.lock:
                self.window.append(took)
            time.sleep(0.005)
        sock.close()

    def take(self) -> float:
        with self.lock:
            worst = max(self.window, default=0.0)
            self.window = []
        return worst


def worker_cpu(server: Server) -> float:
    """CPU seconds of the serving process(es): the supervisor's children other
    than the builder (the one at nice 5)."""
    total = 0
    for pid in tree(server.pid):
        fields = _stat(pid)
        if fields is None or pid == server.pid:
            continue
        if int(fields[16]) != 0:  # the builder runs at a lower priority
            continue
        total += int(fields[11]) + int(fields[12])
    return total / TICK


def udp_serial(port: int) -> int | None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.settimeout(1.0)
    try:
        sock.sendto(soa_query(7), ("127.0.0.1", port))
        got = read_soa(sock.recv(4096))
    except (TimeoutError, OSError):
        return None
    finally:
        sock.close()
    return None if got is None else got[1]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tasks", type=int, default=100_000)
    ap.add_argument("--agents", type=int, default=0, help="agents (default: tasks / 10)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--tsig", action="store_true", help="sign requests and transfers")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out-dir", type=Path, default=BENCH / "out")
    args = ap.parse_args(argv)
    agents = args.agents or max(1, args.tasks // 10)
    command = "python bench/xfr.py " + " ".join(argv if argv is not None else sys.argv[1:])

    base_path = gen_bench.state_file(args.out_dir, args.tasks, agents, args.seed)
    base = base_path.read_bytes()
    doc = orjson.loads(base)
    meta = {"fw_id": doc["frameworks"][0]["id"], "agent_id": doc["slaves"][0]["id"]}
    del doc
    marker = b'"tasks":['
    at = base.find(marker) + len(marker)

    work = Path(tempfile.mkdtemp(prefix="bench-xfr-"))
    state = work / "state.json"

    def write_state(extra: int) -> None:
        tasks = b"".join(task_bytes(meta, f"bench-xfr-{i}", f"10.254.{i // 250}.{i % 250 + 1}")
                         + b"," for i in range(extra))
        tmp = state.with_suffix(".tmp")
        tmp.write_bytes(base[:at] + tasks + base[at:])
        tmp.replace(state)

    write_state(0)
    port = free_port()
    zt: dict[str, Any] = {"allow": ["127.0.0.1"]}
    if args.tsig:
        zt["tsig"] = {"name": KEYNAME, "algorithm": "hmac-sha256", "secret": SECRET}
    config = {
        "stateFile": str(state), "refreshSeconds": 2, "listener": "127.0.0.1", "port": port,
        "httpon": False, "externalon": False, "workers": args.workers, "zoneTransfer": zt,
    }
    cfg = work / "config.json"
    cfg.write_text(json.dumps(config))
    print(f"state: {args.tasks} tasks on {agents} agents ({len(base) / 1e6:.0f} MB); "
          f"starting the server ...", file=sys.stderr, flush=True)
    server = Server([sys.executable, "-m", "mesosdns", f"-config={cfg}"], work / "server.log")
    rows: list[dict[str, Any]] = []
    prober: Prober | None = None
    try:
        t0 = time.monotonic()
        while udp_serial(port) is None:
            server.check()
            if time.monotonic() - t0 > 600:
                raise SystemExit("the server did not answer within 600 s")
            time.sleep(0.5)
        print(f"  answering after {time.monotonic() - t0:.1f} s", file=sys.stderr, flush=True)
        time.sleep(3.0)  # the first refreshes after the cold start settle
        prober = Prober(port)
        prober.start()
        for run in range(args.runs):
            prober.take()
            cpu0 = worker_cpu(server)
            axfr = transfer(port, xfr_request(run * 2 + 1, 252, 0, args.tsig))
            axfr["cpu"] = worker_cpu(server) - cpu0
            axfr["loop"] = prober.take()
            serial = udp_serial(port)
            assert serial is not None
            write_state(run + 1)
            t1 = time.monotonic()
            while udp_serial(port) in (serial, None):
                server.check()
                if time.monotonic() - t1 > 120:
                    raise SystemExit("the serial did not move after the one-task change")
                time.sleep(0.05)
            time.sleep(0.2)
            prober.take()
            cpu0 = worker_cpu(server)
            ixfr = transfer(port, xfr_request(run * 2 + 2, 251, serial, args.tsig))
            ixfr["cpu"] = worker_cpu(server) - cpu0
            ixfr["loop"] = prober.take()
            rows.append({"axfr": axfr, "ixfr": ixfr})
            print(f"  run {run + 1}: AXFR {axfr['seconds']:.2f} s {axfr['octets'] / 1e6:.1f} MB "
                  f"{axfr['messages']} msgs {axfr['rrs']} RRs; IXFR {ixfr['seconds'] * 1e3:.1f} ms "
                  f"{ixfr['octets']} B {ixfr['rrs']} RRs", file=sys.stderr, flush=True)
    finally:
        if prober is not None:
            prober.stop_event.set()
            prober.join(5)
        left = server.stop()
        if left:
            print(f"warning: processes left: {left}", file=sys.stderr)

    def med(kind: str, key: str) -> float:
        return statistics.median(r[kind][key] for r in rows)

    print(f"\nzone transfers, {args.tasks} tasks, {args.workers} worker(s), "
          f"{'TSIG hmac-sha256' if args.tsig else 'unsigned'}; medians of {len(rows)} runs")
    print("| transfer | time | worker CPU | slowest UDP answer meanwhile | octets | messages "
          "| RRs |")
    print("|---|---|---|---|---|---|---|")
    for kind, label in (("axfr", "AXFR"), ("ixfr", "IXFR after a one-task change")):
        print(f"| {label} | {med(kind, 'seconds') * 1e3:,.1f} ms | {med(kind, 'cpu'):.2f} s | "
              f"{med(kind, 'loop') * 1e3:.1f} ms | {med(kind, 'octets'):,.0f} | "
              f"{med(kind, 'messages'):,.0f} | {med(kind, 'rrs'):,.0f} |")
    print(f"\nreproduce: {command}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
