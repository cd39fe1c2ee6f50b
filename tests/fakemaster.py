"""A fake Mesos master serving ``GET /master/state`` for tests.

In-process::

    master = await FakeMaster(state).start()        # 127.0.0.1, free port
    master.status = 503                              # or invalid_json, delay, ...
    await master.stop()                              # now: connection refused

As a process (end-to-end tests)::

    python tests/fakemaster.py --state FILE [--host 127.0.0.1] [--port N] [--keep-leader]

prints ``listening on HOST:PORT`` once it serves, and runs until SIGTERM/SIGINT.
The file's ``leader`` becomes this fake unless ``--keep-leader``.

The document's ``leader`` is rewritten to ``master@HOST:PORT`` of this fake
unless ``leader`` is set (any string, ``""`` included) or ``leader_missing``
drops the key; a state given as bytes is served untouched.

The v1 operator API (issue 8): ``POST /api/v1`` answers ``GET_MASTER`` and
``SUBSCRIBE``. A subscriber gets a real streaming response of RecordIO
events: ``SUBSCRIBED`` with the current state (the same document, converted
to the v1 JSON by `v1_get_state`), then ``script`` (events, pauses, ``"close"``
or ``"stall"``), then whatever is emitted while it is connected, with a
``HEARTBEAT`` every ``heartbeat_interval`` seconds::

    master.script = [event, 0.05, event, "close"]   # played to each subscriber
    await master.add_task(task)                     # state changed, TASK_ADDED sent
    await master.update_task(fid, tid, "TASK_RUNNING", ip="10.0.0.5")
    await master.emit({"type": "HEARTBEAT"})         # any raw event
    master.drop_streams()                           # as a deposed leader does

``api_redirect_to`` makes it answer 307 like a non-leading master, and
``api_status`` a failure status.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import copy
import signal
import ssl
import sys
import time
from pathlib import Path
from typing import Any

import orjson
from aiohttp import web


class FakeMaster:
    """An aiohttp server imitating a Mesos master's ``/master/state``."""

    def __init__(
        self,
        state: dict[str, Any] | bytes | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        basic_auth: tuple[str, str] | None = None,
    ) -> None:
        self.state: dict[str, Any] | bytes = state if state is not None else minimal_state()
        self.host = host
        self.port = port
        self.ssl_context = ssl_context
        self.basic_auth = basic_auth
        # DC/OS IAM: when a set, only "Authorization: token=T" with T in it
        # passes (discard T to revoke it)
        self.tokens: set[str] | None = None
        # failure modes
        self.status = 200  # answer this status (with a text body) when not 200
        self.fail_times = 0  # answer 503 to this many requests, then normally
        self.invalid_json = False
        self.delay = 0.0  # seconds before answering
        self.leader: str | None = None  # None: this fake is the leader
        self.leader_missing = False
        self.redirect_to: str | None = None  # answer 307 with this Location, as a
        # non-leading Mesos master does (e.g. "//10.0.0.2:5050/master/state")
        # observations
        self.requests = 0
        self.headers: list[dict[str, str]] = []
        self.paths: list[str] = []
        self._runner: web.AppRunner | None = None
        self._stopped = asyncio.Event()
        # -- the v1 operator API (issue 8) --
        self.heartbeat_interval: float | None = 15.0  # None: no heartbeats at all
        self.script: list[Any] = []  # played to each new subscriber after SUBSCRIBED
        self.api_redirect_to: str | None = None  # 307 Location for /api/v1
        self.api_status = 200  # answer /api/v1 with this status when not 200
        self.api_calls: list[str] = []  # the "type" of each /api/v1 call
        self.subscribes = 0
        self.summary_status = 200  # answer /master/state-summary with this when not 200
        self.sent: list[tuple[float, dict[str, Any]]] = []  # (monotonic time, event)
        self._streams: set[_Stream] = set()

    @property
    def address(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"

    @property
    def pid(self) -> str:
        return f"master@{self.address}"

    async def start(self) -> FakeMaster:
        """Listen (again, on the same port after a stop) and return self."""
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        runner = web.AppRunner(app, access_log=None, handle_signals=False)
        await runner.setup()
        site = web.TCPSite(
            runner, self.host, self.port, ssl_context=self.ssl_context, reuse_address=True
        )
        await site.start()
        self._stopped.clear()
        if self.port == 0:
            self.port = int(runner.addresses[0][1])
        self._runner = runner
        return self

    async def stop(self) -> None:
        """Stop listening: connections are refused until ``start()`` again."""
        runner, self._runner = self._runner, None
        if runner is not None:
            self._stopped.set()
            self.drop_streams()
            await runner.cleanup()

    async def __aenter__(self) -> FakeMaster:
        return self if self._runner is not None else await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    def document(self) -> bytes:
        if isinstance(self.state, bytes):
            return self.state
        doc = dict(self.state)
        if self.leader_missing:
            doc.pop("leader", None)
        else:
            doc["leader"] = self.pid if self.leader is None else self.leader
        return orjson.dumps(doc)

    def _authorized(self, request: web.Request) -> bool:
        if self.tokens is not None:
            header = request.headers.get("Authorization", "")
            return header.startswith("token=") and header[len("token="):] in self.tokens
        if self.basic_auth is None:
            return True
        token = base64.b64encode(":".join(self.basic_auth).encode()).decode()
        return request.headers.get("Authorization") == f"Basic {token}"

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.requests += 1
        self.headers.append(dict(request.headers))
        self.paths.append(request.path)
        if self.delay:
            # Interrupted by stop(), so that a slow fake does not hold up teardown.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopped.wait(), self.delay)
        if request.path.rstrip("/") == "/api/v1":
            return await self._handle_api(request)
        if request.path == "/master/state-summary":
            if not self._authorized(request):
                return web.Response(status=401, text="Unauthorized")
            if self.summary_status != 200:
                return web.Response(status=self.summary_status, text="failure mode")
            return web.Response(
                body=orjson.dumps(self.state_summary()), content_type="application/json"
            )
        if request.path != "/master/state":
            return web.Response(status=404, text="Not Found")
        if request.method != "GET":
            return web.Response(status=405, text="Method Not Allowed")
        if not self._authorized(request):
            return web.Response(
                status=401, text="Unauthorized", headers={"WWW-Authenticate": 'Basic realm="mesos"'}
            )
        if self.redirect_to is not None:
            return web.Response(status=307, headers={"Location": self.redirect_to})
        if self.fail_times > 0:
            self.fail_times -= 1
            return web.Response(status=503, text="Service Unavailable")
        if self.status != 200:
            return web.Response(status=self.status, text="failure mode")
        if self.invalid_json:
            return web.Response(body=b'{"leader": "master@', content_type="application/json")
        return web.Response(body=self.document(), content_type="application/json")

    # -- the v1 operator API (issue 8) ---------------------------------------

    async def _handle_api(self, request: web.Request) -> web.StreamResponse:
        if request.method != "POST":
            return web.Response(status=405, text="Method Not Allowed")
        if not self._authorized(request):
            return web.Response(
                status=401, text="Unauthorized", headers={"WWW-Authenticate": 'Basic realm="mesos"'}
            )
        try:
            call = orjson.loads(await request.read())
        except orjson.JSONDecodeError:
            return web.Response(status=400, text="Failed to parse body into JSON")
        kind = call.get("type") if isinstance(call, dict) else None
        self.api_calls.append(str(kind))
        if self.api_redirect_to is not None:
            return web.Response(status=307, headers={"Location": self.api_redirect_to})
        if self.api_status != 200:
            return web.Response(status=self.api_status, text="failure mode")
        if kind == "GET_MASTER":
            return web.Response(
                body=orjson.dumps(self.get_master()), content_type="application/json"
            )
        if kind != "SUBSCRIBE":
            return web.Response(status=400, text=f"unsupported call {kind!r}")
        return await self._subscribe(request)

    def state_summary(self) -> dict[str, Any]:
        """``/master/state-summary``: framework and agent summaries, no tasks
        (a framework's ``pid`` only when it has one, as Mesos writes it)."""
        doc = self.state if isinstance(self.state, dict) else orjson.loads(self.state)
        frameworks = []
        for fw in doc.get("frameworks", []) or []:
            summary = {k: fw[k] for k in ("id", "name", "pid", "hostname", "active") if k in fw}
            summary.setdefault("hostname", "")
            frameworks.append(summary)
        slaves = [
            {k: a[k] for k in ("id", "pid", "hostname") if k in a}
            for a in doc.get("slaves", []) or []
        ]
        return {
            "hostname": self.host,
            "cluster": "fake",
            "slaves": slaves,
            "frameworks": frameworks,
        }

    def get_master(self) -> dict[str, Any]:
        pid = self.pid if self.leader is None else self.leader
        info = {
            "id": "fake-master",
            "pid": pid,
            "port": self.port,
            "hostname": self.host,
            "address": {"ip": self.host, "port": self.port, "hostname": self.host},
        }
        return {"type": "GET_MASTER", "get_master": {"master_info": info}}

    def subscribed_event(self) -> dict[str, Any]:
        doc = self.state if isinstance(self.state, dict) else orjson.loads(self.state)
        sub: dict[str, Any] = {"get_state": v1_get_state(doc)}
        if self.heartbeat_interval is not None:
            sub["heartbeat_interval_seconds"] = self.heartbeat_interval
        return {"type": "SUBSCRIBED", "subscribed": sub}

    async def _subscribe(self, request: web.Request) -> web.StreamResponse:
        self.subscribes += 1
        resp = web.StreamResponse(
            status=200, headers={"Mesos-Stream-Id": f"stream-{self.subscribes}"}
        )
        resp.content_type = "application/json"
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        stream = _Stream(self, request, resp)
        self._streams.add(stream)
        try:
            await stream.run(self.subscribed_event(), list(self.script))
        finally:
            self._streams.discard(stream)
        return resp

    async def emit(self, event: dict[str, Any]) -> float | None:
        """Send ``event`` to every subscriber; return (when written to every
        subscriber, or after a second for a stalled one) the monotonic time it
        was last written at, None when nobody got it."""
        loop = asyncio.get_running_loop()
        written: list[asyncio.Future[float]] = []
        for stream in list(self._streams):
            fut: asyncio.Future[float] = loop.create_future()
            stream.queue.put_nowait((event, fut))
            written.append(fut)
        if not written:
            await asyncio.sleep(0)
            return None
        done, _ = await asyncio.wait(written, timeout=1.0)
        times = [f.result() for f in done if not f.cancelled() and f.exception() is None]
        return max(times) if times else None

    def drop_streams(self) -> None:
        """End every subscription abruptly (a deposed or failed leader)."""
        for stream in list(self._streams):
            stream.queue.put_nowait("abort")

    @property
    def subscribers(self) -> int:
        return len(self._streams)

    def _doc(self) -> dict[str, Any]:
        if not isinstance(self.state, dict):
            self.state = orjson.loads(self.state)
        assert isinstance(self.state, dict)
        return self.state

    def _framework(self, framework_id: str) -> dict[str, Any]:
        for fw in self._doc().setdefault("frameworks", []):
            if fw.get("id") == framework_id:
                return dict(fw)
        raise KeyError(framework_id)

    async def add_framework(self, fw: dict[str, Any]) -> float | None:
        """Add (or update) a framework (v0 JSON) and send FRAMEWORK_ADDED/_UPDATED."""
        frameworks = self._doc().setdefault("frameworks", [])
        for i, old in enumerate(frameworks):
            if old.get("id") == fw["id"]:
                frameworks[i] = {**fw, "tasks": old.get("tasks", [])}
                kind = "FRAMEWORK_UPDATED"
                break
        else:
            frameworks.append({"tasks": [], **fw})
            kind = "FRAMEWORK_ADDED"
        return await self.emit({"type": kind, kind.lower(): {"framework": v1_framework(fw)}})

    async def remove_framework(self, framework_id: str) -> float | None:
        doc = self._doc()
        fw = self._framework(framework_id)
        doc["frameworks"] = [f for f in doc["frameworks"] if f.get("id") != framework_id]
        return await self.emit(
            {
                "type": "FRAMEWORK_REMOVED",
                "framework_removed": {"framework_info": v1_framework(fw)["framework_info"]},
            }
        )

    async def add_agent(self, agent: dict[str, Any]) -> float | None:
        agents = self._doc().setdefault("slaves", [])
        agents[:] = [a for a in agents if a.get("id") != agent["id"]] + [agent]
        return await self.emit({"type": "AGENT_ADDED", "agent_added": {"agent": v1_agent(agent)}})

    async def remove_agent(self, agent_id: str) -> float | None:
        doc = self._doc()
        doc["slaves"] = [a for a in doc.get("slaves", []) if a.get("id") != agent_id]
        return await self.emit(
            {"type": "AGENT_REMOVED", "agent_removed": {"agent_id": {"value": agent_id}}}
        )

    async def add_task(self, task: dict[str, Any]) -> float | None:
        """Add a task (v0 JSON, with its ``framework_id``) and send TASK_ADDED."""
        fw_id = task["framework_id"]
        for fw in self._doc().setdefault("frameworks", []):
            if fw.get("id") == fw_id:
                fw["tasks"] = [t for t in fw.get("tasks", []) if t.get("id") != task["id"]]
                fw["tasks"].append(task)
                break
        return await self.emit({"type": "TASK_ADDED", "task_added": {"task": v1_task(task)}})

    async def update_task(
        self,
        framework_id: str,
        task_id: str,
        state: str,
        *,
        ip: str | None = None,
        timestamp: float | None = None,
        healthy: bool | None = None,
    ) -> float | None:
        """A task's new state (and container IP, and health check result, as
        Mesos sends each one: a new status of the same state): the state
        document follows (as the master's does) and TASK_UPDATED is sent."""
        status: dict[str, Any] = {"state": state, "timestamp": timestamp or time.time()}
        if healthy is not None:
            status["healthy"] = healthy
        if ip is not None:
            status["container_status"] = {
                "network_infos": [{"ip_addresses": [{"protocol": "IPv4", "ip_address": ip}]}]
            }
        task: dict[str, Any] | None = None
        for fw in self._doc().get("frameworks", []):
            if fw.get("id") != framework_id:
                continue
            for t in fw.get("tasks", []):
                if t.get("id") == task_id:
                    task = t
        if task is not None:
            statuses = list(task.get("statuses", []))
            if statuses and statuses[-1].get("state") == state:
                statuses.pop()
            task["statuses"] = [*statuses, status]
            task["state"] = state
        agent_id = task.get("slave_id", "") if task is not None else ""
        return await self.emit(
            {
                "type": "TASK_UPDATED",
                "task_updated": {
                    "framework_id": {"value": framework_id},
                    "status": v1_status(status, task_id, agent_id),
                    "state": state,
                },
            }
        )


class _Stream:
    """One SUBSCRIBE response being written."""

    def __init__(self, master: FakeMaster, request: web.Request, resp: web.StreamResponse) -> None:
        self.master = master
        self.request = request
        self.resp = resp
        self.queue: asyncio.Queue[Any] = asyncio.Queue()

    async def send(self, event: dict[str, Any]) -> None:
        await self.resp.write(recordio(event))
        kind = event.get("type")
        self.master.sent.append(
            (time.monotonic(), event if kind != "SUBSCRIBED" else {"type": kind})
        )

    async def _end(self, how: str) -> None:
        if how == "abort":
            transport = self.request.transport
            if transport is not None:
                transport.abort()
        else:
            await self.resp.write_eof()

    async def run(self, subscribed: dict[str, Any], script: list[Any]) -> None:
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            await self.send(subscribed)
            for step in script:
                if isinstance(step, (int, float)):
                    await asyncio.sleep(step)
                elif step in ("close", "abort"):
                    await self._end(step)
                    return
                elif step == "stall":
                    # nothing more is sent, heartbeats included, until dropped
                    while (item := await self.queue.get()) not in ("close", "abort"):
                        pass
                    await self._end(item)
                    return
                else:
                    await self.send(step)
            while True:
                interval = self.master.heartbeat_interval
                try:
                    item = await asyncio.wait_for(self.queue.get(), interval)
                except TimeoutError:
                    await self.send({"type": "HEARTBEAT"})
                    continue
                if item in ("close", "abort"):
                    await self._end(item)
                    return
                event, written = item
                await self.send(event)
                if not written.done():
                    written.set_result(time.monotonic())


def recordio(event: dict[str, Any] | bytes) -> bytes:
    """One RecordIO record: the JSON's length in decimal, a newline, the JSON."""
    data = event if isinstance(event, bytes) else orjson.dumps(event)
    return str(len(data)).encode() + b"\n" + data


# -- /master/state JSON -> v1 operator API JSON ---------------------------------


def _id(value: Any) -> dict[str, Any]:
    return {"value": value}


def _labels(labels: Any) -> dict[str, Any]:
    return {"labels": list(labels) if isinstance(labels, list) else []}


def v1_status(status: dict[str, Any], task_id: str, agent_id: str) -> dict[str, Any]:
    out: dict[str, Any] = {"task_id": _id(task_id), "agent_id": _id(agent_id)}
    for key, value in status.items():
        out[key] = _labels(value) if key == "labels" else value
    return out


def _v1_ranges(text: str) -> list[dict[str, int]]:
    inner = text.strip().lstrip("[").rstrip("]")
    out = []
    for part in inner.split(","):
        bounds = part.strip().split("-")
        if bounds and bounds[0].strip().isdigit():
            lo = int(bounds[0])
            hi = int(bounds[1]) if len(bounds) > 1 and bounds[1].strip().isdigit() else lo
            out.append({"begin": lo, "end": hi})
    return out


def v1_resources(resources: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if not isinstance(resources, dict):
        return out
    for name, value in resources.items():
        if isinstance(value, str):
            out.append(
                {
                    "name": name,
                    "type": "RANGES",
                    "role": "*",
                    "ranges": {"range": _v1_ranges(value)},
                }
            )
        elif isinstance(value, (int, float)):
            out.append({"name": name, "type": "SCALAR", "role": "*", "scalar": {"value": value}})
    return out


def v1_task(task: dict[str, Any]) -> dict[str, Any]:
    """A /master/state task as the v1 API shows it."""
    tid, aid = task.get("id", ""), task.get("slave_id", "")
    out: dict[str, Any] = {
        "name": task.get("name", ""),
        "task_id": _id(tid),
        "framework_id": _id(task.get("framework_id", "")),
        "agent_id": _id(aid),
        "state": task.get("state", ""),
        "statuses": [v1_status(s, tid, aid) for s in task.get("statuses", []) or []],
        "resources": v1_resources(task.get("resources")),
    }
    if "labels" in task:
        out["labels"] = _labels(task["labels"])
    if "discovery" in task:
        out["discovery"] = task["discovery"]
    if "container" in task:
        out["container"] = task["container"]
    return out


def v1_agent(agent: dict[str, Any]) -> dict[str, Any]:
    hostname = agent.get("hostname", "")
    port = agent.get("port", 5051)
    out: dict[str, Any] = {
        "agent_info": {"id": _id(agent.get("id", "")), "hostname": hostname, "port": port},
        "active": agent.get("active", True),
        "version": agent.get("version", "1.11.0"),
    }
    if "pid" in agent:
        out["pid"] = agent["pid"]
    return out


def v1_framework(fw: dict[str, Any]) -> dict[str, Any]:
    info = {
        "id": _id(fw.get("id", "")),
        "name": fw.get("name", ""),
        "hostname": fw.get("hostname", ""),
        "user": fw.get("user", "root"),
    }
    return {
        "framework_info": info,
        "active": fw.get("active", True),
        "connected": fw.get("connected", True),
        "recovered": fw.get("recovered", False),
    }


def v1_get_state(doc: dict[str, Any]) -> dict[str, Any]:
    """A /master/state document as the v1 ``get_state`` of SUBSCRIBED."""
    frameworks = doc.get("frameworks", []) or []
    tasks = []
    for fw in frameworks:
        for task in fw.get("tasks", []) or []:
            tasks.append(v1_task({"framework_id": fw.get("id", ""), **task}))
    return {
        "get_tasks": {"tasks": tasks, "completed_tasks": []},
        "get_executors": {"executors": []},
        "get_frameworks": {"frameworks": [v1_framework(f) for f in frameworks]},
        "get_agents": {"agents": [v1_agent(a) for a in doc.get("slaves", []) or []]},
    }


def without_framework_pids(doc: dict[str, Any]) -> dict[str, Any]:
    """``doc`` with no framework pid: what the v1 API can tell of frameworks."""
    out = copy.deepcopy(doc)
    for fw in out.get("frameworks", []) or []:
        fw.pop("pid", None)
    return out


def minimal_state(leader: str = "") -> dict[str, Any]:
    """A small, real-shaped state document."""
    return {
        "version": "1.11.0",
        "leader": leader,
        "hostname": "master.example",
        "frameworks": [],
        "slaves": [],
    }


async def _serve(state_file: Path, host: str, port: int, keep_leader: bool) -> None:
    raw = state_file.read_bytes()
    state: dict[str, Any] | bytes = raw if keep_leader else orjson.loads(raw)
    master = FakeMaster(state, host=host, port=port)
    await master.start()
    print(f"listening on {master.address}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await master.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="fake Mesos master serving /master/state")
    parser.add_argument("--state", type=Path, required=True, help="JSON file to serve")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument(
        "--keep-leader",
        action="store_true",
        help="serve the file untouched (default: its leader becomes this fake)",
    )
    args = parser.parse_args(argv)
    asyncio.run(_serve(args.state, args.host, args.port, args.keep_leader))
    return 0


if __name__ == "__main__":
    sys.exit(main())
