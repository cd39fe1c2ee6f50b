"""Which Mesos masters to ask: the leader from ZooKeeper, then the others.

The masters list has the shape the original Mesos-DNS hands its state loader
(``detect/masters.go``): ``masters[0]`` is the leader slot, ``""`` while no
leader is known, and the rest are the other masters, without the leader.

* Without ``zk`` the list is ``["", *masters]`` (the static ``masters``).
* With ``zk`` it starts as ``["", *masters]`` too, until ZooKeeper answers.
  Mesos masters register ephemeral sequential znodes ``json.info_<seq>`` under
  the path, holding their MasterInfo as JSON; the lowest sequence leads. Once
  ZooKeeper answers the list becomes ``[leader, *other registered masters]``
  (the static list is no longer used, as in the original), ordered by
  sequence. When the ZooKeeper session is lost, the leader is dropped:
  ``["", *others]`` (as mesos-go's detector reports "no leader"). A mere
  disconnection keeps the last list.
* ``zkDetectionTimeout``: a timer runs from ``start()`` and again whenever the
  list has no leader; it stops when a leader is known. When it fires, the
  detector logs an error and calls ``on_timeout`` (the original exits the
  process there). 0 disables it.

Deliberate differences: when ZooKeeper answers but lists no master at all (or
the path does not exist), the static ``masters`` are used again
(``["", *masters]``) instead of an empty list that makes every refresh fail;
``on_change`` is called only when the list actually changes; the registered
masters are ordered by sequence (the original: random map order); legacy
protobuf ``info_`` znodes (Mesos < 0.24) are not read; the ``auth`` of
``zk://auth@hosts/path`` is sent to ZooKeeper as digest credentials (mesos-go
ignored it). The URL is parsed by ``mesosdns.config.parse_zk_url``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from ipaddress import IPv4Address
from typing import Any

import orjson
from kazoo.client import KazooClient
from kazoo.exceptions import KazooException, NoNodeError
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.protocol.states import KazooState
from kazoo.retry import KazooRetry

from mesosdns.config import ZkURL, parse_zk_url

log = logging.getLogger(__name__)

JSON_PREFIX = "json.info_"
LEGACY_PREFIX = "info_"

OnChange = Callable[[list[str]], None]


def zk_connect_string(url: ZkURL) -> str:
    """The servers of a parsed ``zk://`` URL as kazoo wants them: ``h1:p1,h2:p2``."""
    return ",".join(_join(host, port) for host, port in url.servers)


def initial_masters(static: Sequence[str]) -> list[str]:
    """The masters list before any leader is known: ``["", *static]``."""
    return ["", *static]


def ordered(leader: str, masters: Sequence[str]) -> list[str]:
    """``[leader, *masters without the leader]`` (the original's ``ordered``)."""
    return [leader, *(m for m in masters if m != leader)]


def _join(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def master_address(info: Mapping[str, Any]) -> str:
    """``ip:port`` of a MasterInfo (JSON); raises ValueError when unusable.

    Mesos >= 0.24 fills ``address``; older ones only the packed ``ip``, in the
    byte order of the master's machine (assumed to be ours, as the original).
    """
    address = info.get("address")
    if isinstance(address, Mapping):
        ip, port = address.get("ip"), address.get("port")
        if not isinstance(ip, str) or not ip:
            raise ValueError("MasterInfo address has no ip")
    else:
        packed, port = info.get("ip"), info.get("port")
        if not isinstance(packed, int) or isinstance(packed, bool) or not 0 <= packed < 2**32:
            raise ValueError("MasterInfo has no address and no ip")
        ip = str(IPv4Address(packed.to_bytes(4, sys.byteorder)))
    if not isinstance(port, int) or isinstance(port, bool) or not 0 <= port < 65536:
        raise ValueError("MasterInfo has no valid port")
    return _join(ip, port)


def _sequence(name: str) -> int | None:
    if not name.startswith(JSON_PREFIX):
        return None
    digits = name[len(JSON_PREFIX) :]
    return int(digits) if digits.isdigit() else None


class MasterDetector:
    """Follows the leading Mesos master in ZooKeeper; see the module doc.

    ``on_change(masters)`` and ``on_timeout()`` are called on the event loop
    that ran ``start()``, never from kazoo's threads.
    """

    def __init__(
        self,
        zk: str | ZkURL,
        masters: Sequence[str],
        on_change: OnChange,
        *,
        detection_timeout: float = 30.0,
        on_timeout: Callable[[], None] | None = None,
        session_timeout: float = 30.0,
        op_timeout: float = 10.0,
        reconnect_max_delay: float = 1.0,
    ) -> None:
        self._url = zk if isinstance(zk, ZkURL) else parse_zk_url(zk)
        self._static = list(masters)
        self._on_change = on_change
        self._on_timeout = on_timeout
        self._detection_timeout = detection_timeout
        self._session_timeout = session_timeout
        self._op_timeout = op_timeout
        self._reconnect_max_delay = reconnect_max_delay
        self._masters = initial_masters(self._static)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._client: Any = None
        self._thread: threading.Thread | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._stopping = threading.Event()
        self._wake = threading.Event()
        self._connected = threading.Event()
        # Bumped (under the GIL) when a session is lost, so that a read made
        # with the old session cannot overwrite the "no leader" state.
        self._generation = 0
        self._warned_legacy = False

    @property
    def masters(self) -> list[str]:
        """The current list: leader slot first (``""`` when unknown)."""
        return list(self._masters)

    @property
    def leader(self) -> str:
        return self._masters[0]

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def start(self) -> None:
        """Connect in the background; returns at once, ZooKeeper or not."""
        if self._loop is not None:
            raise RuntimeError("MasterDetector already started")
        self._loop = asyncio.get_running_loop()
        auth = [("digest", self._url.auth)] if self._url.auth else None
        self._client = KazooClient(
            hosts=zk_connect_string(self._url),
            timeout=self._session_timeout,
            auth_data=auth,
            connection_retry=KazooRetry(
                max_tries=-1, delay=0.1, backoff=2, max_delay=self._reconnect_max_delay
            ),
        )
        self._client.add_listener(self._on_state)
        self._arm_timer()
        log.info("watching %s%s for Mesos masters", zk_connect_string(self._url), self._url.path)
        self._client.start_async()
        self._thread = threading.Thread(target=self._run, name="mesosdns-zk", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Stop watching and close the ZooKeeper session (idempotent)."""
        self._stopping.set()
        self._wake.set()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        # kazoo's stop can wait for a session close the server never answers:
        # run it in a daemon thread and wait a bounded time, so neither the
        # shutdown nor the interpreter's exit can hang on it
        loop = asyncio.get_running_loop()
        done = asyncio.Event()

        def shutdown() -> None:
            try:
                self._shutdown()
            finally:
                with contextlib.suppress(RuntimeError):  # the loop may be gone
                    loop.call_soon_threadsafe(done.set)

        threading.Thread(target=shutdown, name="zk-shutdown", daemon=True).start()
        try:
            async with asyncio.timeout(self._op_timeout):
                await done.wait()
        except TimeoutError:
            log.warning("ZooKeeper client did not close within %ss", self._op_timeout)

    def _shutdown(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            try:
                client.stop()
                client.close()
            except Exception:  # kazoo raises various things on an odd shutdown
                log.debug("error closing the ZooKeeper client", exc_info=True)
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=self._op_timeout)

    # -- kazoo threads -------------------------------------------------------

    def _on_state(self, state: str) -> None:
        # Called on kazoo's connection thread: must not block.
        if state == KazooState.CONNECTED:
            log.info("connected to ZooKeeper")
            self._connected.set()
        elif state == KazooState.SUSPENDED:
            log.warning("disconnected from ZooKeeper; keeping the last masters")
            self._connected.clear()
        else:  # LOST: the session expired; the leader is no longer known
            log.warning("ZooKeeper session lost")
            self._connected.clear()
            self._generation += 1
            self._post(self._leader_lost)
        self._wake.set()

    def _on_watch(self, _event: object) -> None:
        self._wake.set()

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.clear()
            if not self._connected.is_set():
                self._wake.wait(1.0)
                continue
            generation = self._generation
            try:
                leader, others = self._read()
            except (KazooException, KazooTimeoutError) as exc:
                log.warning("reading the masters from ZooKeeper failed: %r", exc)
                self._stopping.wait(1.0)  # the original rests 1 s between cycles
                continue
            except Exception:
                log.exception("unexpected error reading the masters from ZooKeeper")
                self._stopping.wait(1.0)
                continue
            self._post(self._apply, generation, leader, others)
            self._wake.wait()

    def _read(self) -> tuple[str, list[str]]:
        """The leader's address and every registered master's, in sequence order."""
        client, path = self._client, self._url.path
        if client is None:
            return "", []
        try:
            children = client.get_children_async(path, watch=self._on_watch).get(
                timeout=self._op_timeout
            )
        except NoNodeError:
            # Wait for the path to appear (the masters may not be up yet).
            if client.exists_async(path, watch=self._on_watch).get(timeout=self._op_timeout):
                self._wake.set()
            return "", []
        nodes = sorted((seq, name) for name in children if (seq := _sequence(name)) is not None)
        if not nodes:
            if any(n.startswith(LEGACY_PREFIX) for n in children) and not self._warned_legacy:
                self._warned_legacy = True
                log.warning(
                    "only protobuf info_ znodes under %s (Mesos < 0.24): not supported", path
                )
            return "", []
        base = path.rstrip("/")
        pending = [(name, client.get_async(f"{base}/{name}")) for _, name in nodes]
        found = [self._address(name, result) for name, result in pending]
        seen: set[str] = set()
        others: list[str] = []
        for item in found:
            if item is not None and item[1] not in seen:
                seen.add(item[1])
                others.append(item[0])
        # The lowest sequence leads; if its MasterInfo is unusable the leader
        # is unknown (as mesos-go reports a nil MasterInfo).
        leader = found[0][0] if found[0] is not None else ""
        return leader, others

    def _address(self, name: str, result: Any) -> tuple[str, str] | None:
        """``(address, identity)`` for one znode, or None when unreadable."""
        try:
            data, _stat = result.get(timeout=self._op_timeout)
        except NoNodeError:
            return None  # deleted since the listing
        try:
            info = orjson.loads(data)
            if not isinstance(info, dict):
                raise ValueError("not a JSON object")
            address = master_address(info)
        except (orjson.JSONDecodeError, ValueError) as exc:
            log.warning("unusable MasterInfo in %s/%s: %s", self._url.path, name, exc)
            return None
        ident = info.get("id")
        return address, (ident if isinstance(ident, str) and ident else address)

    def _post(self, fn: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None or self._stopping.is_set():
            return
        with contextlib.suppress(RuntimeError):  # the loop is closed: shutting down
            loop.call_soon_threadsafe(fn, *args)

    # -- event loop thread ---------------------------------------------------

    def _apply(self, generation: int, leader: str, others: list[str]) -> None:
        if generation != self._generation:
            return
        if not leader and not others:
            self._publish(initial_masters(self._static))
        else:
            self._publish(ordered(leader, others))

    def _leader_lost(self) -> None:
        self._publish(ordered("", self._masters[1:]))

    def _publish(self, masters: list[str]) -> None:
        if self._stopping.is_set():
            return
        if masters[0]:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
        elif masters != self._masters:
            self._arm_timer()
        if masters == self._masters:
            return
        self._masters = masters
        log.info("Mesos masters: leader %s, others %s", masters[0] or "(unknown)", masters[1:])
        try:
            self._on_change(list(masters))
        except Exception:
            log.exception("masters on_change callback failed")

    def _arm_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._detection_timeout > 0 and self._loop is not None:
            self._timer = self._loop.call_later(self._detection_timeout, self._timed_out)

    def _timed_out(self) -> None:
        self._timer = None
        if self._stopping.is_set():
            return
        log.error("master detection timed out after %gs", self._detection_timeout)
        if self._on_timeout is not None:
            self._on_timeout()
