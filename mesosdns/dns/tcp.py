"""DNS over TCP: one client connection, its length-prefixed messages
(pipelined), flow control and idle timeout. The messages go to the
`DNSServer` that made the connection (`DNSServer._tcp_message`)."""

from __future__ import annotations

import asyncio
import struct
from typing import TYPE_CHECKING, Any, cast

from mesosdns.dns import wire

if TYPE_CHECKING:
    from mesosdns.dns.protocol import DNSServer


class TCPConnection(asyncio.Protocol):
    """One TCP client: length-prefixed messages, pipelined, with an idle timeout."""

    def __init__(self, server: DNSServer) -> None:
        self.server = server
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.idle: asyncio.TimerHandle | None = None
        self.last = 0.0
        self.paused = False
        self.pending = 0  # forwarded queries not answered yet
        self.peer: Any = None  # the client's address (allowRecursion)
        self.waiter: asyncio.Future[None] | None = None  # a zone transfer waiting to write

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's TCP transports are not asyncio.Transport subclasses
        transport = cast(asyncio.Transport, transport)
        server = self.server
        if len(server._conns) >= server.settings.max_tcp_connections:
            transport.abort()
            server.stats.dropped += 1
            return
        self.transport = transport
        self.peer = transport.get_extra_info("peername")
        server._conns.add(self)
        server.stats.tcp_connections += 1
        self._touch()

    def _touch(self) -> None:
        loop = asyncio.get_running_loop()
        self.last = loop.time()
        if self.idle is None:
            self.idle = loop.call_at(
                self.last + self.server.settings.tcp_idle_timeout, self._check_idle
            )

    def _check_idle(self) -> None:
        self.idle = None
        if self.transport is None:
            return
        loop = asyncio.get_running_loop()
        deadline = self.last + self.server.settings.tcp_idle_timeout
        if loop.time() >= deadline and self.pending <= 0:
            if self.transport.get_write_buffer_size():
                # a client that does not read its replies cannot hold the
                # connection open with them: they are dropped
                self.transport.abort()
            else:
                self.close()
        else:
            later = max(deadline, loop.time() + 1.0)
            self.idle = loop.call_at(later, self._check_idle)

    def data_received(self, data: bytes) -> None:
        if self.transport is None:
            return
        buf = self.buf
        buf += data
        while len(buf) >= 2:
            size = (buf[0] << 8) | buf[1]
            if len(buf) < 2 + size:
                break
            message = bytes(buf[2 : 2 + size])
            del buf[: 2 + size]
            # Only a whole message counts as activity: a client
            # trickling the bytes of one message (slow loris) is closed when
            # the idle timeout runs out, however often it sends a byte.
            self._touch()
            self.server._tcp_message(message, self)
            if self._gone():
                return

    def _gone(self) -> bool:
        return self.transport is None

    def send(self, reply: bytes) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if len(reply) > wire.MAX_MESSAGE:
            return
        self.last = asyncio.get_running_loop().time()
        transport.write(struct.pack(">H", len(reply)) + reply)

    def send_forwarded(self, reply: bytes) -> None:
        self.pending -= 1
        self.send(reply)

    def pause_writing(self) -> None:
        if self.transport is not None and not self.paused:
            self.paused = True
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and self.paused:
            self.paused = False
            self.transport.resume_reading()
        self._wake()

    def _wake(self) -> None:
        waiter, self.waiter = self.waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def closed(self) -> bool:
        """Gone, or closing (a zone transfer stops writing)."""
        return self.transport is None or self.transport.is_closing()

    async def writable(self) -> None:
        """Return once the transport takes more (at once unless it asked to
        pause writing, TCP flow control), or the connection is gone."""
        while self.paused and not self.closed():
            if self.waiter is None:
                self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server._conns.discard(self)
        if self.idle is not None:
            self.idle.cancel()
            self.idle = None
        self.transport = None
        self._wake()
