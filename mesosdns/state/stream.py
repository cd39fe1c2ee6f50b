"""The Mesos v1 operator API event stream: ``SUBSCRIBE`` on the leading master.

`Subscriber.subscribe(masters)` opens one subscription:

1. Masters are tried in the order the state client uses (the leader slot
   first when known, then the others). Each gets ``POST /api/v1`` with
   ``{"type": "SUBSCRIBE"}`` (``Content-Type`` and ``Accept``:
   ``application/json``). A master that does not lead answers ``307`` with a
   ``Location`` naming the leader (``//host:port/api/v1``): the POST is sent
   there (a few hops at most). 503 (no leader elected yet), other errors and
   timeouts move on to the next master.
2. The master that accepted is asked ``GET_MASTER`` (a second, short
   request) for its pid, ``master@ip:port``: the state's leader, as
   ``/master/state`` names it. Failing that, its URL's ``host:port`` stands in.
   The frameworks' scheduler pids, which no v1 call returns, come from its
   ``/master/state-summary`` (`Subscriber.framework_pids`, asked by the
   stream poller).
3. The response body is RecordIO: ``<length>\\n<JSON event>`` repeated
   (`RecordIODecoder`). `Subscription.batches()` yields the events decoded
   (`mesosdns.state.v1`), a batch per read: the events that arrived together,
   so that a burst is applied (and compiled) once. The first event is
   ``SUBSCRIBED`` with the whole state.

Watchdog: the master sends ``HEARTBEAT`` every ``heartbeat_interval_seconds``
(15 s by default, given in ``SUBSCRIBED``). When nothing arrives for
``heartbeat_factor`` intervals (a heartbeat missed by a whole interval, with the
default 2), the stream counts as broken. Before ``SUBSCRIBED`` each read
may take ``stateTimeoutSeconds``. A broken stream, an EOF (the master lost
its leadership: Mesos masters exit then) or a malformed record raise
`StreamError`; resubscribing (with backoff) is the caller's business
(`mesosdns.builder.stream`).

The HTTP set-up (TLS, authentication, ``User-Agent``) is the
`StateClient`'s: its session and headers are reused. With IAM, a 401 to a
POST logs in again and sends it once more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Sequence

import aiohttp
import orjson
from yarl import URL

from mesosdns.errors import FetchError, IAMLoginError, StateError
from mesosdns.state.client import StateClient, join_host_port
from mesosdns.state.model import split_host_port
from mesosdns.state.v1 import (
    Event,
    Subscribed,
    decode_event,
    framework_pids,
    leader_from_get_master,
)

log = logging.getLogger(__name__)

API_PATH = "/api/v1"
# framework summaries with their scheduler pids (no tasks: a small document)
SUMMARY_PATH = "/master/state-summary"
SUBSCRIBE_BODY = orjson.dumps({"type": "SUBSCRIBE"})
GET_MASTER_BODY = orjson.dumps({"type": "GET_MASTER"})
MAX_REDIRECTS = 3
MAX_RECORD = 2 << 30  # 2 GiB: a length beyond this is a broken stream
DEFAULT_HEARTBEAT_FACTOR = 2.0
# masters without heartbeats (Mesos 1.0): how long a silent stream is trusted
NO_HEARTBEAT_IDLE = 300.0
# records bigger than this are decoded in a worker thread (SUBSCRIBED)
THREAD_DECODE_BYTES = 256 * 1024


class StreamError(FetchError):
    """The event stream could not be opened, or broke."""

    def __init__(self, message: str, kind: str = "stream") -> None:
        super().__init__(message)
        self.kind = kind


class RecordIODecoder:
    """Splits a RecordIO byte stream (``<length>\\n<bytes>`` repeated) into
    records, whatever the chunking."""

    def __init__(self, max_record: int = MAX_RECORD) -> None:
        self._buf = bytearray()
        self._need = -1  # length of the record being read; -1: reading a header
        self._max = max_record

    def feed(self, data: bytes) -> list[bytes]:
        """The records completed by ``data``; raises StreamError on bad framing."""
        buf = self._buf
        buf += data
        out: list[bytes] = []
        start = 0
        while True:
            if self._need < 0:
                nl = buf.find(b"\n", start)
                if nl < 0:
                    if len(buf) - start > 20:
                        raise StreamError("malformed RecordIO: no record length")
                    break
                header = bytes(buf[start:nl]).strip()
                if not header.isdigit() or len(header) > 12:
                    raise StreamError(f"malformed RecordIO length {header[:20]!r}")
                need = int(header)
                if need > self._max:
                    raise StreamError(f"RecordIO record of {need} bytes is too large")
                self._need = need
                start = nl + 1
            if len(buf) - start < self._need:
                break
            end = start + self._need
            with memoryview(buf) as view:  # one copy, not two
                out.append(bytes(view[start:end]))
            start = end
            self._need = -1
        if start:
            del buf[:start]
        return out

    @property
    def pending(self) -> int:
        """Bytes received but not yet part of a whole record."""
        return len(self._buf)


class Subscription:
    """One open SUBSCRIBE stream (see the module docstring)."""

    def __init__(
        self,
        response: aiohttp.ClientResponse,
        *,
        master: str,
        leader: str,
        first_timeout: float,
        heartbeat_factor: float,
    ) -> None:
        self._resp = response
        self.master = master  # host:port that accepted the subscription
        self.leader = leader  # master@ip:port (its pid)
        self.stream_id = response.headers.get("Mesos-Stream-Id", "")
        self.heartbeat_interval: float | None = None
        self._first_timeout = first_timeout
        self._factor = heartbeat_factor
        self.started = time.monotonic()
        self.last_event = self.started
        self.events = 0
        self.bytes = 0

    @property
    def leader_address(self) -> str:
        """The leader's ``ip:port``."""
        return self.leader.split("@", 1)[-1]

    def idle_timeout(self) -> float:
        """How long the stream may stay silent before it counts as broken."""
        if self.events == 0:
            return self._first_timeout
        if self.heartbeat_interval is None or self.heartbeat_interval <= 0:
            return NO_HEARTBEAT_IDLE
        return self.heartbeat_interval * self._factor

    async def batches(self) -> AsyncIterator[list[Event]]:
        """Decoded events, a batch per read; raises StreamError when the
        stream ends or breaks (never returns normally)."""
        decoder = RecordIODecoder()
        content = self._resp.content
        while True:
            timeout = self.idle_timeout()
            try:
                async with asyncio.timeout(timeout):
                    chunk = await content.readany()
            except TimeoutError:
                what = "SUBSCRIBED" if self.events == 0 else "event nor heartbeat"
                raise StreamError(f"no {what} from {self.master} for {timeout:.3g}s") from None
            except (aiohttp.ClientError, OSError) as exc:
                raise StreamError(f"stream from {self.master} broke: {exc!r}") from None
            if not chunk:
                raise StreamError(f"stream closed by {self.master}")
            self.bytes += len(chunk)
            records = decoder.feed(chunk)
            if not records:
                continue
            self.last_event = time.monotonic()
            batch: list[Event] = []
            for record in records:
                try:
                    if len(record) > THREAD_DECODE_BYTES:
                        event = await asyncio.to_thread(decode_event, record)
                    else:
                        event = decode_event(record)
                except StateError as exc:
                    raise StreamError(f"bad event from {self.master}: {exc}") from None
                if isinstance(event, Subscribed):
                    self.heartbeat_interval = event.heartbeat_interval
                batch.append(event)
            self.events += len(batch)
            yield batch

    def close(self) -> None:
        """Drop the connection (idempotent); a pending read ends at once."""
        self._resp.close()


class Subscriber:
    """Opens SUBSCRIBE streams with a `StateClient`'s HTTP set-up."""

    def __init__(
        self,
        client: StateClient,
        *,
        heartbeat_factor: float = DEFAULT_HEARTBEAT_FACTOR,
        connect_timeout: float | None = None,
    ) -> None:
        self.client = client
        self.heartbeat_factor = heartbeat_factor
        # each POST until the response headers; the state timeout by default
        self.connect_timeout = connect_timeout

    # The stream reuses the StateClient's session and credentials (same TLS
    # context, authentication and User-Agent).
    def _session(self) -> aiohttp.ClientSession:
        return self.client.session()

    async def _auth_headers(self, timeout: float) -> dict[str, str]:
        try:
            return await self.client.auth_headers(timeout)
        except IAMLoginError as exc:
            raise StreamError(str(exc), exc.kind) from None

    def _timeout(self) -> float:
        return self.connect_timeout or self.client.timeout

    def _url(self, master: str) -> URL | None:
        hp = split_host_port(master)
        if hp is None or not hp[0] or not hp[1]:
            return None
        return URL(f"{self.client.scheme}://{join_host_port(hp[0], hp[1])}{API_PATH}")

    async def subscribe(self, masters: Sequence[str]) -> Subscription:
        """Subscribe to the leading master; StreamError naming every master
        tried when none accepts."""
        candidates = [m for i, m in enumerate(masters) if i > 0 or m]
        failures: list[str] = []
        for master in dict.fromkeys(candidates):
            url = self._url(master)
            if url is None:
                failures.append(f"{master}: not a host:port")
                continue
            try:
                return await self._subscribe_at(url)
            except StreamError as exc:
                failures.append(f"{master}: {exc}")
                log.debug("subscribe to %s failed: %s", master, exc)
        if not failures:
            raise StreamError("no masters to subscribe to")
        raise StreamError("could not subscribe to any master: " + "; ".join(failures))

    async def _subscribe_at(self, url: URL) -> Subscription:
        resp, url = await self._post(url, SUBSCRIBE_BODY, stream=True)
        try:
            master = join_host_port(url.host or "", str(url.port))
            leader = await self._leader(url) or f"master@{master}"
        except BaseException:
            resp.close()
            raise
        log.info("subscribed to the operator API event stream of %s (leader %s)", master, leader)
        return Subscription(
            resp,
            master=master,
            leader=leader,
            first_timeout=self.client.timeout,
            heartbeat_factor=self.heartbeat_factor,
        )

    async def framework_pids(self, master: str, timeout: float) -> dict[str, str | None]:
        """The frameworks' scheduler pids (None: HTTP API framework), which the
        v1 API leaves out, from ``master``'s ``/master/state-summary``.
        Raises FetchError (HTTP) or StateError (the document)."""
        body = await self.client.get(master, SUMMARY_PATH, timeout)
        return framework_pids(body)

    async def _leader(self, url: URL) -> str | None:
        """The master's pid from GET_MASTER; None when it cannot tell."""
        try:
            resp, _ = await self._post(url, GET_MASTER_BODY, stream=False, redirects=0)
        except StreamError as exc:
            log.debug("GET_MASTER at %s failed: %s", url, exc)
            return None
        try:
            body = await resp.read()
        except (aiohttp.ClientError, OSError):
            return None
        finally:
            resp.close()
        return leader_from_get_master(body)

    async def _post(
        self, url: URL, body: bytes, *, stream: bool, redirects: int = MAX_REDIRECTS
    ) -> tuple[aiohttp.ClientResponse, URL]:
        """POST ``body``, following a non-leading master's redirects; the
        200 response (its body unread) and the URL that gave it."""
        session = self._session()
        timeout = self._timeout()
        relogin = True  # one new IAM login per POST when a master refuses the token
        hops = 0
        while hops <= redirects:
            auth = await self._auth_headers(timeout)
            try:
                resp = await session.post(
                    url,
                    data=body,
                    headers={
                        **auth,
                        "Accept": "application/json",
                        "Content-Type": "application/json",
                    },
                    allow_redirects=False,
                    # sock_read bounds each read of the headers; the stream's
                    # own reads are bounded by the watchdog
                    timeout=aiohttp.ClientTimeout(
                        total=None if stream else timeout, sock_connect=timeout
                    ),
                )
            except TimeoutError:
                raise StreamError(f"timed out after {timeout:.3g}s") from None
            except (aiohttp.ClientError, OSError) as exc:
                raise StreamError(_describe(exc)) from None
            if resp.status == 401 and relogin and self.client.auth_rejected(auth):
                resp.close()
                relogin = False
                continue
            if resp.status in (301, 302, 303, 307, 308):
                hops += 1
                location = resp.headers.get("Location", "")
                resp.close()
                if not location:
                    raise StreamError(f"HTTP {resp.status} without Location")
                target = url.join(URL(location))
                log.info(
                    "master %s is not the leader; following to %s", url.authority, target.authority
                )
                url = target
                continue
            if resp.status != 200:
                text = await _short_text(resp)
                resp.close()
                raise StreamError(f"HTTP {resp.status}{': ' + text if text else ''}")
            return resp, url
        raise StreamError(f"more than {redirects} redirects")


async def _short_text(resp: aiohttp.ClientResponse) -> str:
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1.0):
            data = await resp.content.read(200)
            return data.decode("utf-8", "replace").strip()
    return ""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect: {exc.os_error.strerror or exc.os_error}"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def event_names(events: Sequence[Event]) -> dict[str, int]:
    """How many events of each kind (for logs)."""
    out: dict[str, int] = {}
    for e in events:
        out[type(e).__name__] = out.get(type(e).__name__, 0) + 1
    return out


__all__ = [
    "RecordIODecoder",
    "StreamError",
    "Subscriber",
    "Subscription",
    "event_names",
]
