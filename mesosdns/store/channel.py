"""Carrying the builder's versions to the serving processes over a UNIX socket.

`Publisher` (in the builder process) listens on a socket in the run
directory. A server that connects first gets the current version whole,
then every later update, in order, and the builder's counters now and then
(``stats`` frames). Each connection has its own sender task: the builder's
work never waits for a reader, and the frames of a large update are made
while the first ones are read. A reader that falls too far behind
is disconnected: it reconnects and starts again from a full update.

`Follower` (in each serving process) connects, feeds the frames to its
`Replica`, and reconnects when the builder goes away (it restarts) or the
frames do not continue its version. Meanwhile the replica keeps the last
version it had: the server goes on answering with it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

from mesosdns import heap
from mesosdns.store.replica import Replica, ReplicaError
from mesosdns.store.update import LENGTH, Update, frames, stats_frame

log = logging.getLogger(__name__)

# a reader with more than this many bytes unsent is dropped (it starts over)
MAX_BACKLOG = 1 << 30
# after a frame this large, wait until the reader has taken it
BIG_FRAME = 64 * 1024
SOCKET_NAME = "builder.sock"


def socket_path(run_dir: str) -> str:
    return os.path.join(run_dir, SOCKET_NAME)


class _Frames:
    """An update's frames, made on demand and kept for the readers it is
    queued to: a full update is pickled part by part while the first
    reader's frames go out, so that a server decodes one part while the
    builder makes the next. A frame every reader has written is let go (the
    frames of a full update are the size of the whole table)."""

    def __init__(self, update: Update | None, readers: int = 1) -> None:
        self._source: Iterator[bytes] | None = None if update is None else frames(update)
        self._made: list[bytes] = []
        self._passed: list[int] = []  # per frame: readers that wrote it
        self.readers = readers
        self.full = update is not None and update.full

    @classmethod
    def of(cls, frame: bytes) -> _Frames:
        done = cls(None)
        done._made.append(frame)
        done._passed.append(0)
        return done

    def get(self, i: int) -> bytes | None:
        while i >= len(self._made):
            if self._source is None:
                return None
            frame = next(self._source, None)
            if frame is None:
                self._source = None
                return None
            self._made.append(frame)
            self._passed.append(0)
        return self._made[i]

    def sent(self) -> bool:
        """Whether every reader it was queued to has written all of it."""
        return self._source is None and all(n >= self.readers for n in self._passed)

    def passed(self, i: int) -> None:
        """A reader has written frame ``i`` (each writes each frame once)."""
        n = self._passed[i] = self._passed[i] + 1
        if n >= self.readers:
            self._made[i] = b""


class _Reader:
    """One server's connection: the updates it has still to be sent, in order."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.queue: collections.deque[_Frames] = collections.deque()
        self.wake = asyncio.Event()


class Publisher:
    def __init__(self, path: str, current: Callable[[], Update | None]) -> None:
        self.path = path
        self.current = current  # the version a new reader starts from (None: none yet)
        self._readers: set[_Reader] = set()
        self._server: asyncio.AbstractServer | None = None

    @property
    def readers(self) -> int:
        return len(self._readers)

    async def start(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        self._server = await asyncio.start_unix_server(self._connected, path=self.path)

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
                         ) -> None:
        # nothing awaits between taking the whole version and joining the
        # readers: the reader misses no update and gets none twice
        me = _Reader(writer)
        update = self.current()
        if update is not None:
            me.queue.append(_Frames(update))
        self._readers.add(me)
        sender = asyncio.create_task(self._send(me))
        try:
            await reader.read()  # readers send nothing; EOF when they go
        except (ConnectionError, OSError):
            pass
        finally:
            self._readers.discard(me)
            sender.cancel()
            await asyncio.gather(sender, return_exceptions=True)
            writer.close()

    def sending_full(self) -> bool:
        """Whether a reader has a full version still to be sent (a server
        starting: the builder's time is best spent on its frames)."""
        return any(item.full for r in self._readers for item in r.queue)

    def publish(self, update: Update) -> None:
        if self._readers:
            self._queue(_Frames(update))

    def stats(self, stats: dict[str, Any]) -> None:
        if self._readers:
            self._queue(_Frames.of(stats_frame(stats)))

    def _queue(self, item: _Frames) -> None:
        item.readers = 0
        for r in list(self._readers):
            transport = r.writer.transport
            if transport.get_write_buffer_size() > MAX_BACKLOG:
                log.warning("a server fell behind the builder's updates; it starts over")
                self._readers.discard(r)
                transport.abort()
                continue
            r.queue.append(item)
            item.readers += 1
            r.wake.set()

    async def _send(self, r: _Reader) -> None:
        """Write a reader's updates in order; between two frames of a large
        one, let the loop run (the builder's other work, the other readers)."""
        writer = r.writer
        while True:
            if not r.queue:
                r.wake.clear()
                await r.wake.wait()
                continue
            item = r.queue[0]
            i = 0
            while (frame := item.get(i)) is not None:
                writer.write(frame)
                item.passed(i)
                i += 1
                if len(frame) > BIG_FRAME:
                    await writer.drain()
            r.queue.popleft()
            if item.full and item.sent():
                # the frames of a whole version, freed: their pages go back
                await asyncio.to_thread(heap.trim)

    async def stop(self) -> None:
        for r in list(self._readers):
            r.writer.close()
        self._readers.clear()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2.0)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)


class Follower:
    def __init__(self, path: str, replica: Replica, *, retry: float = 0.05,
                 retry_max: float = 1.0) -> None:
        self.path = path
        self.replica = replica
        self.retry, self.retry_max = retry, retry_max
        self.connections = 0
        self._task: asyncio.Task[None] | None = None
        self._closing = False

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="mesosdns-follower")

    async def stop(self) -> None:
        self._closing = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        delay = self.retry
        logged = False
        while not self._closing:
            try:
                reader, writer = await asyncio.open_unix_connection(self.path)
            except OSError:
                await asyncio.sleep(delay)
                delay = min(delay * 2, self.retry_max)
                continue
            self.connections += 1
            delay = self.retry
            try:
                await self._read(reader)
            except (asyncio.IncompleteReadError, ConnectionError, OSError):
                # info, not a warning: at shutdown the builder goes first, and
                # a builder that died is reported by the supervisor
                if not logged and not self._closing:
                    log.info("builder connection lost; serving version %d until it is back",
                             self.replica.version)
                    logged = True
            except (ReplicaError, ValueError) as exc:
                log.error("builder frames out of step (%s); starting over", exc)
            except Exception:  # a bug must not leave this server on a stale version
                log.exception("applying the builder's frames failed; starting over")
            finally:
                writer.close()

    async def _read(self, reader: asyncio.StreamReader) -> None:
        feed = self.replica.feed
        unpack = LENGTH.unpack
        while True:
            head = await reader.readexactly(LENGTH.size)
            body = await reader.readexactly(unpack(head)[0])
            feed(body)
