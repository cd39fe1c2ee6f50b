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
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import signal
import ssl
import sys
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
