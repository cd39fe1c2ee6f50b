"""Deterministic synthetic Mesos ``/master/state`` documents for benchmarks.

The shape follows what a Mesos 1.x master serves: agents with their resource
books, frameworks (Marathon with apps of 1-20 instances, Metronome jobs, DC/OS
SDK services over the HTTP API, a Spark-like framework), tasks with 2-3
statuses, container network IPs on about half of them, DiscoveryInfo with
ports on about a third, port ranges, labels, health checks and the many
fields Mesos-DNS does not read. A task weighs about 1.5 KB of JSON, like a
real master's state.

    python bench/synth.py --tasks 10000 --agents 1000 --out state.json

or, from Python, ``make_state(tasks, agents, seed)``. The same arguments give
byte-identical output.
"""

from __future__ import annotations

import argparse
import random
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson

JSON = dict[str, Any]

# Bump when the output for given arguments changes (bench/generate.py caches by it).
SYNTH_VERSION = 1

VERSION = "1.10.0"
T0 = 1715508000.0
MESOS_IP_LABEL = "MesosContainerizer.NetworkSettings.IPAddress"
DOCKER_IP_LABEL = "Docker.NetworkSettings.IPAddress"

_WORDS = (
    "api",
    "web",
    "auth",
    "billing",
    "cart",
    "catalog",
    "checkout",
    "search",
    "index",
    "ingest",
    "ledger",
    "mailer",
    "media",
    "notify",
    "orders",
    "payments",
    "profile",
    "proxy",
    "queue",
    "render",
    "report",
    "session",
    "stats",
    "stock",
    "users",
    "worker",
    "gateway",
    "cache",
    "router",
    "feed",
    "geo",
    "pricing",
    "reco",
    "audit",
    "events",
)
_GROUPS = ("", "", "", "prod", "staging", "prod/eu", "team-a", "infra", "data/batch")
_IMAGES = (
    "nginx:1.25-alpine",
    "redis:7.2",
    "example/app:3.4.1",
    "openjdk:17-jre",
    "python:3.11-slim",
    "golang:1.22",
    "envoyproxy/envoy:v1.29.1",
    "postgres:16",
)
_AGENT_CAPS = [
    "MULTI_ROLE",
    "HIERARCHICAL_ROLE",
    "RESERVATION_REFINEMENT",
    "RESOURCE_PROVIDER",
    "RESIZE_VOLUME",
    "AGENT_OPERATION_FEEDBACK",
    "AGENT_DRAINING",
    "TASK_RESOURCE_LIMITS",
]
_AGENT_PORTS = "[1025-2180, 2182-3887, 3889-5049, 5052-8079, 8082-8180, 8182-32000]"


def _res(cpus: float, mem: float, disk: float, ports: str | None = None) -> JSON:
    r: JSON = {"disk": float(disk), "mem": float(mem), "gpus": 0.0, "cpus": float(cpus)}
    if ports is not None:
        r["ports"] = ports
    return r


def _ports_text(ports: list[int]) -> str:
    """Mesos' stringify(Value::Ranges): "[31000-31001, 31005-31005]"."""
    if not ports:
        return "[]"
    ranges: list[list[int]] = []
    for p in sorted(ports):
        if ranges and p == ranges[-1][1] + 1:
            ranges[-1][1] = p
        else:
            ranges.append([p, p])
    return "[" + ", ".join(f"{lo}-{hi}" for lo, hi in ranges) + "]"


class _Synth:
    def __init__(self, tasks: int, agents: int, seed: int) -> None:
        if tasks < 0 or agents < 1:
            raise ValueError("need tasks >= 0 and agents >= 1")
        self.n_tasks = tasks
        self.n_agents = agents
        self.rng = random.Random(seed)
        self.seed = seed
        self.master_id = self.uuid()
        self.agent_ids = [f"{self.master_id}-S{i}" for i in range(agents)]
        self.agent_ips = [
            f"10.{1 + i // 62500}.{(i // 250) % 250}.{i % 250 + 1}" for i in range(agents)
        ]
        self.next_port = [31000 + (i * 7) % 200 for i in range(agents)]
        self.fw_counter = 0

    # --- small helpers -------------------------------------------------
    def uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def uuid1ish(self) -> str:
        """Marathon task ids use time-based UUIDs: <8 hex>-<4>-11ef-<4>-<12>."""
        r = self.rng.getrandbits(64)
        return f"{r >> 32:08x}-{(r >> 16) & 0xFFFF:04x}-11ef-9c3a-0242ac11{r & 0xFFFF:04x}"

    def ts(self, base: float = T0) -> float:
        return round(base + self.rng.uniform(0, 86400), 5)

    def take_ports(self, agent: int, count: int) -> list[int]:
        start = self.next_port[agent]
        self.next_port[agent] = start + count + self.rng.randint(0, 3)
        if self.next_port[agent] > 32000 - 30:
            self.next_port[agent] = 31000
        return list(range(start, start + count))

    def overlay_ip(self) -> str:
        r = self.rng
        return f"10.{200 + r.randint(0, 50)}.{r.randint(0, 255)}.{r.randint(1, 254)}"

    def framework_id(self) -> str:
        fid = f"{self.master_id}-{self.fw_counter:04d}"
        self.fw_counter += 1
        return fid

    # --- tasks ---------------------------------------------------------
    def statuses(self, agent: int, ip: str | None, mesos_label: bool) -> list[JSON]:
        """TASK_STARTING, TASK_RUNNING and, for half, a later healthy TASK_RUNNING."""
        rng = self.rng
        cid = self.uuid()
        start = self.ts()
        container_status: JSON = {"container_id": {"value": cid}}
        if ip is not None:
            nets: list[JSON] = [{"ip_addresses": [{"protocol": "IPv4", "ip_address": ip}]}]
            if ip != self.agent_ips[agent]:
                nets[0]["name"] = "dcos"
                nets[0]["labels"] = {"labels": [{"key": "DCOS_SPACE", "value": "/"}]}
            container_status["network_infos"] = nets
        container_status["cgroup_info"] = {"net_cls": {"classid": rng.randint(1 << 20, 1 << 30)}}
        out: list[JSON] = [
            {
                "state": "TASK_STARTING",
                "timestamp": start,
                "container_status": container_status,
            }
        ]
        running: JSON = {
            "state": "TASK_RUNNING",
            "timestamp": round(start + rng.uniform(0.5, 30), 5),
            "container_status": container_status,
        }
        if mesos_label:
            running["labels"] = [{"key": MESOS_IP_LABEL, "value": self.overlay_ip()}]
        out.append(running)
        if rng.random() < 0.5:  # a health-check update
            out.append(
                {
                    "state": "TASK_RUNNING",
                    "timestamp": round(running["timestamp"] + rng.uniform(10, 600), 5),
                    "container_status": container_status,
                    "healthy": True,
                }
            )
        return out

    def container(self, docker: bool, image: str, overlay: bool) -> JSON:
        if docker:
            return {
                "type": "DOCKER",
                "docker": {
                    "image": image,
                    "network": "USER" if overlay else "HOST",
                    "privileged": False,
                    "force_pull_image": False,
                    "parameters": [{"key": "log-driver", "value": "journald"}],
                },
                "volumes": [],
            }
        c: JSON = {
            "type": "MESOS",
            "mesos": {"image": {"type": "DOCKER", "docker": {"name": image}, "cached": True}},
        }
        if overlay:
            c["network_infos"] = [
                {"name": "dcos", "labels": {"labels": [{"key": "DCOS_SPACE", "value": "/"}]}}
            ]
        return c

    def task(
        self,
        fw_id: str,
        task_id: str,
        name: str,
        agent: int,
        nports: int,
        *,
        discovery_name: str | None,
        labels: list[JSON],
        image: str,
        executor_id: str = "",
        role: str = "*",
    ) -> JSON:
        rng = self.rng
        ports = self.take_ports(agent, nports)
        ip: str | None = None  # a container_status network IP on about half of the tasks
        if rng.random() < 0.5:
            ip = self.overlay_ip() if rng.random() < 0.6 else self.agent_ips[agent]
        overlay = ip is not None and ip != self.agent_ips[agent]
        state = (
            "TASK_RUNNING"
            if rng.random() < 0.97
            else rng.choice(("TASK_STAGING", "TASK_STARTING", "TASK_KILLING"))
        )
        statuses = self.statuses(agent, ip, mesos_label=ip is None and rng.random() < 0.2)
        if state == "TASK_STAGING":
            statuses = []
        elif state == "TASK_STARTING":
            statuses = statuses[:1]
        t: JSON = {
            "id": task_id,
            "name": name,
            "framework_id": fw_id,
            "executor_id": executor_id,
            "slave_id": self.agent_ids[agent],
            "state": state,
            "resources": _res(
                rng.choice((0.1, 0.25, 0.5, 1.0, 2.0)),
                rng.choice((128, 256, 512, 1024, 2048)),
                rng.choice((0, 0, 100, 1024)),
                _ports_text(ports) if ports else None,
            ),
            "role": role,
            "statuses": statuses,
            "user": "nobody",
            "labels": labels,
            "container": self.container(rng.random() < 0.4, image, overlay),
        }
        if discovery_name is not None and ports:
            t["discovery"] = {
                "visibility": rng.choice(("FRAMEWORK", "CLUSTER", "EXTERNAL")),
                "name": discovery_name,
                "ports": {
                    "ports": [
                        {
                            "number": p,
                            "name": ("http", "admin", "metrics", "grpc")[i % 4],
                            "protocol": "tcp" if i % 5 else "udp",
                            "labels": {"labels": [{"key": "network-scope", "value": "host"}]},
                        }
                        for i, p in enumerate(ports)
                    ]
                },
            }
        if rng.random() < 0.6:
            t["health_check"] = {
                "type": "HTTP",
                "http": {"scheme": "http", "port": ports[0] if ports else 8080, "path": "/health"},
                "interval_seconds": 10.0,
                "timeout_seconds": 5.0,
                "grace_period_seconds": 300.0,
                "consecutive_failures": 3,
                "delay_seconds": 15.0,
            }
        return t

    # --- frameworks ----------------------------------------------------
    def framework(
        self, name: str, fw_id: str, tasks: list[JSON], *, http_api: bool, host: str
    ) -> JSON:
        rng = self.rng
        used_cpus = round(sum(t["resources"]["cpus"] for t in tasks), 2)
        used_mem = sum(t["resources"]["mem"] for t in tasks)
        f: JSON = {
            "id": fw_id,
            "name": name,
            "used_resources": _res(used_cpus, used_mem, 0),
            "offered_resources": _res(0, 0, 0),
            "capabilities": ["TASK_KILLING_STATE", "PARTITION_AWARE", "REGION_AWARE"],
            "hostname": host,
            "webui_url": f"http://{host}:8080" if name == "marathon" else "",
            "active": True,
            "connected": True,
            "recovered": False,
            "user": "root",
            "failover_timeout": 604800.0,
            "checkpoint": True,
            "registered_time": self.ts(T0 - 86400),
            "unregistered_time": 0.0,
            "reregistered_time": self.ts(T0 - 86400),
            "principal": f"dcos_{name}",
            "role": "*",
            "resources": _res(used_cpus, used_mem, 0),
            "tasks": tasks,
            "unreachable_tasks": [],
            "completed_tasks": [],
            "offers": [],
            "executors": [],
        }
        if not http_api:
            f["pid"] = f"scheduler-{self.uuid()}@{host}:{rng.randint(15000, 40000)}"
        return f

    def completed(self, fw: JSON, count: int) -> None:
        """Finished tasks the master keeps around (Mesos-DNS ignores them)."""
        rng = self.rng
        for _ in range(count):
            agent = rng.randrange(self.n_agents)
            done = self.ts()
            fw["completed_tasks"].append(
                {
                    "id": f"done-{rng.choice(_WORDS)}.{self.uuid1ish()}",
                    "name": rng.choice(_WORDS),
                    "framework_id": fw["id"],
                    "executor_id": "",
                    "slave_id": self.agent_ids[agent],
                    "state": rng.choice(("TASK_FINISHED", "TASK_KILLED", "TASK_FAILED")),
                    "resources": _res(0.5, 256, 0),
                    "role": "*",
                    "statuses": [
                        {"state": "TASK_RUNNING", "timestamp": round(done - 600.5, 5)},
                        {"state": "TASK_KILLED", "timestamp": done},
                    ],
                    "user": "nobody",
                }
            )

    def marathon_tasks(self, fw_id: str, budget: int) -> Iterator[JSON]:
        rng = self.rng
        made = 0
        app_no = 0
        while made < budget:
            app_no += 1
            group = rng.choice(_GROUPS)
            base = f"{rng.choice(_WORDS)}-{app_no}"
            app_id = f"/{group}/{base}" if group else f"/{base}"
            # Marathon: task name = app id reversed by path segments, dot-joined
            name = ".".join(reversed(app_id.strip("/").split("/")))
            id_prefix = app_id.strip("/").replace("/", "_")
            instances = min(rng.randint(1, 20), budget - made)
            nports = rng.choice((0, 1, 1, 1, 2, 2, 3))
            disco = rng.random() < 1 / 3
            labels = [
                {"key": "HAPROXY_GROUP", "value": rng.choice(("external", "internal"))},
                {"key": "DCOS_SERVICE_NAME", "value": base},
                {"key": "owner", "value": f"team-{rng.randint(1, 40)}"},
            ]
            image = rng.choice(_IMAGES)
            for _ in range(instances):
                yield self.task(
                    fw_id,
                    f"{id_prefix}.{self.uuid1ish()}",
                    name,
                    rng.randrange(self.n_agents),
                    nports,
                    discovery_name=name if disco else None,
                    labels=labels,
                    image=image,
                )
            made += instances

    def sdk_tasks(self, fw_id: str, service: str, budget: int) -> Iterator[JSON]:
        rng = self.rng
        kinds = ("broker", "node", "server")
        for i in range(budget):
            name = f"{service}-{i}-{kinds[i % 3]}"
            uid = self.uuid()
            agent = rng.randrange(self.n_agents)
            labels = [
                {"key": "goal_state", "value": "RUNNING"},
                {"key": "index", "value": str(i)},
                {"key": "offer_hostname", "value": self.agent_ips[agent]},
                {"key": "target_configuration", "value": self.uuid()},
                {"key": "task_type", "value": kinds[i % 3]},
            ]
            yield self.task(
                fw_id,
                f"{name}__{uid}",
                name,
                agent,
                rng.choice((1, 2)),
                discovery_name=name,
                labels=labels,
                image="mesosphere/sdk:0.57.0",
                executor_id=f"{service}__{self.uuid()}",
                role=f"{service}-role",
            )

    def job_tasks(self, fw_id: str, budget: int) -> Iterator[JSON]:
        rng = self.rng
        for _ in range(budget):
            job = f"{rng.choice(_WORDS)}-job-{rng.randint(1, 200)}"
            run = f"2024051{rng.randint(0, 9)}{rng.randint(0, 235959):06d}{self.uuid()[:5]}"
            yield self.task(
                fw_id,
                f"{job}_{run}.{self.uuid1ish()}",
                job,
                rng.randrange(self.n_agents),
                0,
                discovery_name=None,
                labels=[{"key": "metronome.job.id", "value": job}],
                image=rng.choice(_IMAGES),
            )

    def spark_tasks(self, fw_id: str, budget: int) -> Iterator[JSON]:
        rng = self.rng
        for i in range(budget):
            yield self.task(
                fw_id,
                str(i),
                f"task {i // 8}.{i % 8} (TID {i})",
                rng.randrange(self.n_agents),
                0,
                discovery_name=None,
                labels=[],
                image="apache/spark:3.5.1",
                executor_id=str(i // 8),
            )

    # --- agents and the whole document ---------------------------------
    def agent(self, i: int) -> JSON:
        rng = self.rng
        public = i % 10 == 9
        full = [
            {"name": "cpus", "type": "SCALAR", "scalar": {"value": 16.0}, "role": "*"},
            {"name": "mem", "type": "SCALAR", "scalar": {"value": 63488.0}, "role": "*"},
            {"name": "disk", "type": "SCALAR", "scalar": {"value": 409600.0}, "role": "*"},
            {
                "name": "ports",
                "type": "RANGES",
                "ranges": {"range": [{"begin": 1025, "end": 32000}]},
                "role": "*",
            },
        ]
        return {
            "id": self.agent_ids[i],
            "hostname": self.agent_ips[i],
            "port": 5051,
            "attributes": {"public_ip": "true"}
            if public
            else {
                "rack": f"r{rng.randint(1, 40)}",
                "zone": f"az-{rng.randint(1, 3)}",
            },
            "pid": f"slave(1)@{self.agent_ips[i]}:5051",
            "registered_time": self.ts(T0 - 86400 * 3),
            "reregistered_time": self.ts(T0 - 86400),
            "resources": _res(16, 63488, 409600, _AGENT_PORTS),
            "used_resources": _res(rng.randint(0, 16), rng.randint(0, 63488), 0),
            "offered_resources": _res(0, 0, 0),
            "reserved_resources": {},
            "unreserved_resources": _res(16, 63488, 409600, _AGENT_PORTS),
            "active": True,
            "deactivated": False,
            "version": VERSION,
            "capabilities": _AGENT_CAPS,
            "reserved_resources_full": {},
            "unreserved_resources_full": full,
            "used_resources_full": [],
            "offered_resources_full": [],
        }

    def state(self) -> JSON:
        n = self.n_tasks
        split: list[tuple[str, float]] = [
            ("marathon", 0.6),
            ("metronome", 0.08),
            ("kafka", 0.06),
            ("cassandra", 0.05),
            ("elastic", 0.04),
            ("spark", 0.07),
            ("jenkins", 0.1),
        ]
        budgets = [int(n * share) for _, share in split]
        budgets[0] += n - sum(budgets)
        masters = ("10.0.0.11", "10.0.0.12", "10.0.0.13")
        frameworks: list[JSON] = []
        makers: dict[str, Callable[[str, int], Iterator[JSON]]] = {
            "marathon": self.marathon_tasks,
            "metronome": self.job_tasks,
            "spark": self.spark_tasks,
            "jenkins": self.marathon_tasks,
        }
        agents = [self.agent(i) for i in range(self.n_agents)]
        for (name, _), budget in zip(split, budgets, strict=True):
            fw_id = self.framework_id()
            maker = makers.get(name)
            if maker is not None:
                tasks = list(maker(fw_id, budget))
            else:
                tasks = list(self.sdk_tasks(fw_id, name, budget))
            http_api = maker is None
            host = self.rng.choice(masters) if not http_api else self.rng.choice(self.agent_ips)
            fw = self.framework(name, fw_id, tasks, http_api=http_api, host=host)
            self.completed(fw, budget // 20)
            frameworks.append(fw)
        leader = masters[0]
        return {
            "version": VERSION,
            "git_sha": "e2ec3f2ab1d4c5d6e7f8091a2b3c4d5e6f708192",
            "git_tag": VERSION,
            "build_date": "2020-05-12 21:22:54",
            "build_time": 1589318574.0,
            "build_user": "centos",
            "start_time": T0 - 90000.36321,
            "elected_time": T0 - 89990.1209,
            "id": self.master_id,
            "pid": f"master@{leader}:5050",
            "hostname": leader,
            "capabilities": ["AGENT_UPDATE", "AGENT_DRAINING", "QUOTA_V2"],
            "activated_slaves": float(self.n_agents),
            "deactivated_slaves": 0.0,
            "unreachable_slaves": 0.0,
            "cluster": f"synth-{n}-{self.n_agents}-{self.seed}",
            "leader": f"master@{leader}:5050",
            "leader_info": {
                "id": self.master_id,
                "pid": f"master@{leader}:5050",
                "port": 5050,
                "hostname": leader,
                "address": {"hostname": leader, "ip": leader, "port": 5050},
                "version": VERSION,
                "capabilities": [{"type": "AGENT_UPDATE"}, {"type": "AGENT_DRAINING"}],
            },
            "log_dir": "/var/log/mesos",
            "flags": {
                "allocation_interval": "1secs",
                "hostname_lookup": "false",
                "max_completed_frameworks": "50",
                "max_completed_tasks_per_framework": "1000",
                "port": "5050",
                "quorum": "2",
                "registry": "replicated_log",
                "work_dir": "/var/lib/mesos/master",
                "zk": "zk://10.0.0.11:2181,10.0.0.12:2181,10.0.0.13:2181/mesos",
            },
            "slaves": agents,
            "recovered_slaves": [],
            "frameworks": frameworks,
            "completed_frameworks": [],
            "orphan_tasks": [],
            "unregistered_frameworks": [],
        }


def make_state(tasks: int, agents: int, seed: int = 0) -> dict[str, Any]:
    """A synthetic master state with ``tasks`` active tasks on ``agents`` agents."""
    return _Synth(tasks, agents, seed).state()


def write_state(path: Path, tasks: int, agents: int, seed: int = 0) -> int:
    """Write the state as compact JSON (as a master serves it); return its size in bytes."""
    data = orjson.dumps(make_state(tasks, agents, seed))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)
    return len(data)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=10000)
    parser.add_argument("--agents", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    size = write_state(args.out, args.tasks, args.agents, args.seed)
    print(
        f"wrote {args.out}: {args.tasks} tasks on {args.agents} agents, "
        f"{size / 1e6:.1f} MB ({size / max(args.tasks, 1):.0f} B/task)",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
