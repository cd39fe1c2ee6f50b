"""Fetching the Mesos master state (``GET /master/state``) with aiohttp.

The order of attempts is the original Mesos-DNS's (``records/state/client``):

1. ``masters[0]`` is the *leader slot*: the leader ZooKeeper reported, or ``""``
   when none is known. A non-empty slot is tried first; when it fails and no
   other master is listed, the refresh fails.
2. Then every other entry, in order.
3. After a master answers, the document's ``leader`` (``master@host:port``) is
   read. A missing or empty leader makes that master a failure. When the
   leader's host differs from the host just asked, the state is fetched once
   more from the leader's host **on the port of the master just asked** (the
   original drops the leader's port), and that second document is the result
   (it must name a leader too; no further redirect is followed).

Every refresh runs inside one absolute ``deadline`` (on the event loop's
clock). Each single GET gets ``min(stateTimeoutSeconds, time left)`` and is
retried a few times with exponential backoff (tenacity) on transport errors,
timeouts and HTTP 5xx; failing over between masters is plain code.

Differences from the original, on purpose: a non-2xx answer is a failure even
when its body happens to be JSON (the original never looked at the status);
``host:port`` entries are split as ``net.SplitHostPort`` does, so ``[v6]:port``
works (the original split at the first colon); an empty leader in the
redirected document fails over to the next master instead of failing the whole
refresh.

Authentication (``MesosAuthentication``): none, HTTP Basic, or DC/OS IAM
(`mesosdns.state.iam`): the IAM token is reused across requests, and a 401
from a master makes the request log in again and retry once, at once.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import ssl
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import aiohttp
import msgspec
import orjson
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from mesosdns.errors import ConfigError, FetchError, IAMLoginError, StateError
from mesosdns.state.iam import IAMAuth, IAMConfig
from mesosdns.state.model import split_host_port

log = logging.getLogger(__name__)

STATE_PATH = "/master/state"
USER_AGENT = "Mesos-DNS"
AUTH_NONE = ""
AUTH_BASIC = "basic"
AUTH_IAM = "iam"


class FetchResult(NamedTuple):
    """A fetched state: the raw document and the ``host:port`` it came from.

    The body stays raw: the parser decodes it straight into typed structs
    (decoding it generically here first would double the work and memory).
    It is a view of the client's receive buffer, which the next fetch reuses
    once no view of it is left.
    """

    body: bytes | memoryview
    master: str

    def document(self) -> dict[str, Any]:
        """The body decoded generically (for tests and tools)."""
        doc: dict[str, Any] = orjson.loads(self.body)
        return doc


class _LeaderOnly(msgspec.Struct):
    """Reads the ``leader`` field of a state document and skips the rest."""

    leader: Any = None


_LEADER_DECODER = msgspec.json.Decoder(_LeaderOnly)


class _Transient(Exception):
    """One GET failed in a way worth retrying (transport, timeout, 5xx)."""

    def __init__(self, message: str, kind: str = "unreachable") -> None:
        super().__init__(message)
        self.kind = kind


class _Failed(Exception):
    """One master failed for good in this refresh; the message says why."""

    def __init__(self, message: str, kind: str = "error") -> None:
        super().__init__(message)
        self.kind = kind


def join_host_port(host: str, port: str) -> str:
    """``host:port``, with brackets around an IPv6 host (Go's net.JoinHostPort)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def leader_host(leader: str) -> str:
    """The host of a ``master@host:port`` leader; raises ValueError when malformed."""
    parts = leader.split("@")
    if len(parts) != 2:
        raise ValueError(f"invalid leader address {leader!r}")
    hp = split_host_port(parts[1])
    if hp is None:
        raise ValueError(f"invalid leader address {leader!r}")
    return hp[0]


def _tls_context(ca_file: str, cert_file: str, key_file: str) -> ssl.SSLContext:
    problems: list[str] = []
    if cert_file and not key_file:
        problems.append("KeyFile: missing private key for CertFile")
    if key_file and not cert_file:
        problems.append("CertFile: missing certificate for KeyFile")
    if problems:
        raise ConfigError(problems)
    if ca_file:
        try:
            ctx = ssl.create_default_context(cafile=ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError([f"CACertFile: cannot load {ca_file!r}: {exc}"]) from None
    else:
        # As the original: without a CA, HTTPS does not verify the master.
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    if cert_file:
        try:
            ctx.load_cert_chain(cert_file, key_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                [f"CertFile: cannot load {cert_file!r}/{key_file!r}: {exc}"]
            ) from None
    return ctx


class StateClient:
    """Fetches ``/master/state`` from the leading Mesos master.

    ``timeout_seconds`` is ``stateTimeoutSeconds`` (per GET); ``https`` is
    ``mesosHTTPSOn``; ``ca_file``/``cert_file``/``key_file`` are ``CACertFile``,
    ``CertFile``, ``KeyFile``; ``auth`` is ``MesosAuthentication`` (``""`` or
    ``"basic"`` with ``principal``/``secret`` from ``MesosCredentials``, or
    ``"iam"`` with ``iam``, the parsed ``IAMConfigFile``). The IAM login
    uses this client's session and TLS settings: with ``https`` the masters'
    (as the original, whose one HTTP client does both), else the system's
    CAs, or ``ca_file`` when it is given.
    ``attempts`` bounds the GETs per master, spaced by exponential backoff from
    ``backoff`` seconds up to ``backoff_max``. Raises ConfigError for unusable
    settings. The secret is never logged nor shown by ``repr``.
    """

    def __init__(
        self,
        *,
        timeout_seconds: float = 300.0,
        https: bool = False,
        ca_file: str = "",
        cert_file: str = "",
        key_file: str = "",
        auth: str = AUTH_NONE,
        principal: str = "",
        secret: str = "",
        iam: IAMConfig | None = None,
        attempts: int = 3,
        backoff: float = 0.1,
        backoff_max: float = 1.0,
    ) -> None:
        problems: list[str] = []
        if timeout_seconds <= 0:
            problems.append(f"StateTimeoutSeconds: must be positive, got {timeout_seconds}")
        if attempts < 1:
            problems.append(f"attempts: must be at least 1, got {attempts}")
        if auth not in (AUTH_NONE, AUTH_BASIC, AUTH_IAM):
            problems.append(f"MesosAuthentication: unsupported mechanism {auth!r}")
        if auth == AUTH_BASIC and not principal and not secret:
            problems.append("MesosCredentials: basic authentication needs a principal and secret")
        if auth == AUTH_IAM and iam is None:
            problems.append("IAMConfigFile: iam authentication needs an IAM config file")
        if problems:
            raise ConfigError(problems)
        self._timeout = float(timeout_seconds)
        self._scheme = "https" if https else "http"
        self._ssl: ssl.SSLContext | None = None
        login_ssl: ssl.SSLContext | bool = True
        if https or ca_file or cert_file or key_file:
            ctx = _tls_context(ca_file, cert_file, key_file)
            self._ssl = ctx if https else None
            if https or ca_file:
                login_ssl = ctx
        # The header is built once; it is never logged (repr hides it).
        self._headers: dict[str, str] = {}
        if auth == AUTH_BASIC:
            token = base64.b64encode(f"{principal}:{secret}".encode()).decode("ascii")
            self._headers["Authorization"] = f"Basic {token}"
        self._iam: IAMAuth | None = None
        if auth == AUTH_IAM and iam is not None:
            self._iam = IAMAuth(iam, ssl_context=login_ssl)
        self._attempts = attempts
        self._backoff = backoff
        self._backoff_max = backoff_max
        self._session: aiohttp.ClientSession | None = None
        # the state documents are read into this one buffer, kept from one
        # fetch to the next: a fresh one of the state's size each time costs
        # a page fault per 4 KiB (tens of ms at 10k tasks, half a second at
        # 100k), since the allocator hands memory that large back at once
        self._recv = bytearray()

    def __repr__(self) -> str:
        auth = "iam" if self._iam else "basic" if self._headers else "none"
        return f"StateClient(scheme={self._scheme}, timeout={self._timeout}, auth={auth})"

    async def __aenter__(self) -> StateClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def close(self) -> None:
        """Close the HTTP session (idempotent)."""
        session, self._session = self._session, None
        if session is not None:
            await session.close()

    @property
    def timeout(self) -> float:
        """Seconds allowed per request (``stateTimeoutSeconds``)."""
        return self._timeout

    @property
    def scheme(self) -> str:
        """``http`` or ``https`` (``mesosHTTPSOn``)."""
        return self._scheme

    @property
    def iam(self) -> IAMAuth | None:
        """The IAM login and its token, with ``mesosAuthentication: iam``."""
        return self._iam

    async def auth_headers(self, timeout: float | None = None) -> dict[str, str]:
        """The headers that authenticate a request (a copy; never log it).

        With IAM this logs in when no valid token is kept, within ``timeout``
        seconds (the per-request timeout by default); IAMLoginError when the
        login fails.
        """
        if self._iam is None:
            return dict(self._headers)
        return await self._iam.headers(self.session(), timeout or self._timeout)

    def auth_rejected(self, headers: Mapping[str, str]) -> bool:
        """A master answered 401 to a request sent with ``headers``: whether
        asking `auth_headers` again (a new IAM login) is worth one retry."""
        if self._iam is None:
            return False  # fixed credentials: a retry gets the same answer
        self._iam.rejected(headers)
        return True

    def session(self) -> aiohttp.ClientSession:
        """The HTTP session (TLS settings, ``User-Agent``), opened on first use."""
        if self._session is None or self._session.closed:
            # No keep-alive, as the original ("Mesos master doesn't implement
            # defensive HTTP").
            connector = aiohttp.TCPConnector(
                ssl=self._ssl if self._ssl is not None else True, force_close=True
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                headers={"User-Agent": USER_AGENT, "Content-Type": "application/json"},
            )
        return self._session

    async def fetch(self, masters: Sequence[str], deadline: float) -> FetchResult:
        """Fetch the state; ``deadline`` is absolute, on ``loop.time()``.

        ``masters[0]`` is the leader slot (``""`` when unknown). Raises
        FetchError naming every master tried and why, when none works.
        """
        if not masters:
            raise FetchError("no masters to fetch the state from")
        loop = asyncio.get_running_loop()
        failures: list[str] = []
        kinds: set[str] = set()
        # An empty leader slot is skipped; a failing leader falls through to
        # the rest, and with no rest the refresh fails (as the original).
        candidates = [m for i, m in enumerate(masters) if i > 0 or m]
        for index, master in enumerate(candidates):
            if loop.time() >= deadline:
                failures.extend(
                    f"{m}: not tried, refresh deadline passed" for m in candidates[index:]
                )
                kinds.add("timeout")
                break
            hp = split_host_port(master)
            if hp is None or not hp[0] or not hp[1]:
                failures.append(f"{master}: not a host:port")
                kinds.add("bad_master")
                continue
            try:
                return await self._fetch_master(hp[0], hp[1], deadline)
            except _Failed as exc:
                failures.append(f"{master}: {exc}")
                kinds.add(exc.kind)
                log.debug("state fetch from %s failed: %s", master, exc)
        if not failures:
            raise FetchError("no masters to fetch the state from")
        raise FetchError(
            "could not fetch the state from any master: " + "; ".join(failures),
            "+".join(sorted(kinds)),
        )

    async def get(self, master: str, path: str, timeout: float | None = None) -> bytes:
        """GET ``path`` from ``master`` (``host:port``), with the retries of a
        state fetch, within ``timeout`` seconds in all (the per-request
        timeout by default); FetchError (with a ``kind``) when it fails."""
        hp = split_host_port(master)
        if hp is None or not hp[0] or not hp[1]:
            raise FetchError(f"{master}: not a host:port", "bad_master")
        deadline = asyncio.get_running_loop().time() + (timeout or self._timeout)
        try:
            return bytes(await self._get_with_retries(hp[0], hp[1], deadline, path))  # not a view
        except _Failed as exc:
            raise FetchError(f"{master}{path}: {exc}", exc.kind) from None

    async def _fetch_master(self, host: str, port: str, deadline: float) -> FetchResult:
        body, leader = await self._get_document(host, port, deadline)
        try:
            lhost = leader_host(leader)
        except ValueError as exc:
            raise _Failed(str(exc), "no_leader") from None
        if lhost == host:
            return FetchResult(body, join_host_port(host, port))
        # Follow the leader the document names, on the port we asked (as the
        # original does: it keeps the port and swaps the host).
        target = join_host_port(lhost, port)
        log.info("master %s is not the leader; fetching the state from %s", host, target)
        try:
            body, _ = await self._get_document(lhost, port, deadline)
        except _Failed as exc:
            raise _Failed(f"leader {target}: {exc}", exc.kind) from None
        return FetchResult(body, target)

    async def _get_document(self, host: str, port: str, deadline: float
                            ) -> tuple[bytes | memoryview, str]:
        body = await self._get_with_retries(host, port, deadline, reuse=True)
        return body, leader_of(body)

    async def _get_with_retries(
        self, host: str, port: str, deadline: float, path: str = STATE_PATH,
        *, reuse: bool = False,
    ) -> bytes | memoryview:
        loop = asyncio.get_running_loop()
        url = f"{self._scheme}://{join_host_port(host, port)}{path}"
        tries = 0

        def stop(rs: RetryCallState) -> bool:
            if rs.attempt_number >= self._attempts:
                return True
            return loop.time() + (rs.upcoming_sleep or 0.0) >= deadline

        async def attempt() -> bytes | memoryview:
            nonlocal tries
            tries += 1
            return await self._get_once(url, deadline, reuse)

        retrying = AsyncRetrying(
            stop=stop,
            wait=wait_exponential(
                multiplier=self._backoff, min=self._backoff, max=self._backoff_max
            ),
            retry=retry_if_exception_type(_Transient),
            reraise=True,
        )
        try:
            return await retrying(attempt)
        except _Transient as exc:
            suffix = f" (after {tries} attempts)" if tries > 1 else ""
            raise _Failed(f"{exc}{suffix}", exc.kind) from None

    async def _get_once(self, url: str, deadline: float, reuse: bool = False
                        ) -> bytes | memoryview:
        status, body, headers = await self._get_authorized(url, deadline, reuse)
        if status == 401 and self.auth_rejected(headers):
            # the IAM token expired early or was revoked: log in again, once
            status, body, _ = await self._get_authorized(url, deadline, reuse)
        if status >= 500:
            raise _Transient(f"HTTP {status}", "http_5xx")
        if not 200 <= status < 300:
            raise _Failed(f"HTTP {status}", "http_status")
        return body

    def _timeout_before(self, deadline: float) -> float:
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining <= 0:
            raise _Failed("refresh deadline passed", "timeout")
        return min(self._timeout, remaining)

    async def _get_authorized(
        self, url: str, deadline: float, reuse: bool = False
    ) -> tuple[int, bytes | memoryview, dict[str, str]]:
        try:
            headers = await self.auth_headers(self._timeout_before(deadline))
        except IAMLoginError as exc:
            if exc.transient:
                raise _Transient(str(exc), exc.kind) from None
            raise _Failed(str(exc), exc.kind) from None
        timeout = self._timeout_before(deadline)
        session = self.session()
        try:
            async with session.get(
                url, headers=headers, timeout=aiohttp.ClientTimeout(total=timeout)
            ) as resp:
                status = resp.status
                body = await self._read_reusing(resp) if reuse else await resp.read()
        except TimeoutError:
            raise _Transient(f"timed out after {timeout:.3g}s", "timeout") from None
        except (aiohttp.ClientConnectorCertificateError, aiohttp.ClientSSLError) as exc:
            raise _Failed(f"TLS error: {exc}", "tls") from None
        except aiohttp.ClientError as exc:
            raise _Transient(_describe(exc)) from None
        return status, body, headers


    def drop_buffer(self) -> None:
        """Free the receive buffer (the next fetch makes a new one)."""
        self._recv = bytearray()

    async def _read_reusing(self, resp: aiohttp.ClientResponse) -> memoryview:
        """The response's body, read into the receive buffer (a new one while
        a view of the last body still lives: that body stays as it was)."""
        buf, n = self._recv, 0
        try:
            buf.append(0)  # a resize, refused while the buffer has a view
            del buf[-1:]
        except BufferError:
            buf = self._recv = bytearray()
        async for chunk in resp.content.iter_any():
            end = n + len(chunk)
            buf[n:end] = chunk
            n = end
        if len(buf) > 2 * n:  # the state shrank: so does the buffer
            del buf[n:]
        return memoryview(buf)[:n]

def leader_of(body: bytes | memoryview) -> str:
    """The ``leader`` of a state document; fails for invalid JSON or no leader."""
    try:
        leader = _LEADER_DECODER.decode(body).leader
    except msgspec.ValidationError:
        raise _Failed("state is not a JSON object", "invalid_json") from None
    except msgspec.DecodeError as exc:
        raise _Failed(f"invalid JSON: {exc}", "invalid_json") from None
    except (UnicodeError, RecursionError, ValueError) as exc:
        raise _Failed(f"undecodable JSON: {type(exc).__name__}", "invalid_json") from None
    if not isinstance(leader, str) or not leader:
        raise _Failed("state names no leader", "no_leader")
    return leader


def _describe(exc: aiohttp.ClientError) -> str:
    if isinstance(exc, aiohttp.ClientConnectorError):
        return f"cannot connect: {exc.os_error.strerror or exc.os_error}"
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def load_state_file(path: str | Path) -> bytes:
    """Read a state document from a file (the ``stateFile`` extension).

    Raises FetchError when the file cannot be read and StateError when it is
    not a JSON object. Whether it names a leader is checked by the parser.
    """
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise FetchError(f"cannot read state file {str(path)!r}: {exc.strerror or exc}") from None
    try:
        _LEADER_DECODER.decode(data)
    except msgspec.ValidationError:
        raise StateError(f"state file {str(path)!r} is not a JSON object") from None
    except msgspec.DecodeError as exc:
        raise StateError(f"state file {str(path)!r} is not valid JSON: {exc}") from None
    except (UnicodeError, RecursionError, ValueError) as exc:
        raise StateError(
            f"state file {str(path)!r} cannot be decoded: {type(exc).__name__}"
        ) from None
    return data
