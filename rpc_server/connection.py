"""One client connection: websockets' Sans-I/O protocol driven by an asyncio Protocol.

websockets does the WebSocket itself here (handshake, framing, masking,
ping/pong, the close handshake, the size limit, permessage-deflate) through its
I/O-free :class:`~websockets.server.ServerProtocol`. This module only moves
bytes between that and the socket, and messages between that and the
dispatcher. It exists because websockets' own asyncio connection, with a
future and an awaited ``send()`` per message and a write per answer, cost
more per call than the whole JSON-RPC dispatch: 23 µs of server CPU a
``multiply`` for its bare echo server here, 30 µs with our dispatch on top.

What it adds over the plain loop:

- the answers to everything that one read brought in go out in one write,
  and so do the answers of async calls that finish in the same loop turn;
- backpressure: while ``max_in_flight`` messages await async tools, no
  further message is run; frames read meanwhile wait in a bounded backlog,
  past which the socket is not read at all (TCP then slows the sender;
  nothing is dropped). Reading also stops while the socket's write buffer is
  full, so a peer that does not read its answers slows itself down, not the
  server;
- on close, the calls still running are cancelled and the session's
  subscriptions end;
- keepalive pings, and time limits on the opening and closing handshakes.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
from collections.abc import Awaitable, Callable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from websockets.extensions.permessage_deflate import enable_server_permessage_deflate
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request
from websockets.protocol import State
from websockets.server import ServerProtocol

from . import codes, protocol
from .session import Session

if TYPE_CHECKING:
    from .server import RpcServer

__all__ = ["BINARY_FRAME_REPLY", "PATHS", "Connection"]

logger = logging.getLogger("rpc_server")

PATHS = ("/", "/ws")

# A binary frame is refused as an Invalid Request, and the connection stays
# open, since the peer may well send text next.
BINARY_FRAME_REPLY = protocol.encode(
    protocol.error(codes.INVALID_REQUEST, "binary frames are not accepted: send JSON-RPC as text frames")
)

# At the in-flight cap, frames still come in (so pings, pongs and a close are
# seen) and wait in a backlog; past BACKLOG_HIGH of them the socket is left
# unread until the backlog is down to BACKLOG_LOW. websockets' own default
# queue is 16 messages.
BACKLOG_HIGH = 16
BACKLOG_LOW = 4

_TEXT, _BINARY, _CONT, _PONG = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PONG
_OPEN = State.OPEN


class Connection(asyncio.Protocol):
    """The life of one client connection; created by the server for each accepted socket."""

    def __init__(self, server: RpcServer) -> None:
        self.server = server
        self.ws = ServerProtocol(
            max_size=server.max_message_size,
            extensions=enable_server_permessage_deflate(None) if server.compression else None,
        )
        self.dispatch = server.dispatcher.dispatch
        self.limit = server.max_in_flight
        self.session = Session(
            self._push,
            topics=server.topics,
            max_subscriptions=server.max_subscriptions,
            subscription_buffer=server.subscription_buffer,
        )
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.running: set[asyncio.Task[None]] = set()
        self.backlog: collections.deque[Frame] = collections.deque()
        self.fragments: list[bytes] = []
        self.fragmented_text = False
        self.reading_paused = False
        self.writing_paused = False
        self.drained: asyncio.Future[None] | None = None
        self.flush_scheduled = False
        self.timer: asyncio.TimerHandle | None = None  # opening, keepalive or closing deadline
        self.ping: bytes | None = None
        self.closed: asyncio.Future[None] = self.loop.create_future()

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.server.connections.add(self)
        self._set_timer(self.server.open_timeout, self._abort)

    def data_received(self, data: bytes) -> None:
        self.ws.receive_data(data)
        events = self.ws.events_received()
        if events:
            first = events[0]
            if isinstance(first, Request):
                self._handshake(first)
                del events[0]
            self.backlog.extend(events)  # type: ignore[arg-type]
            self._process_backlog()
        self._flush()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self._flush()
        return None  # let asyncio close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.ws.receive_eof()  # idempotent; makes the protocol state CLOSED
        self._set_timer(None, None)
        self.server.connections.discard(self)
        self.backlog.clear()
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        # Cancel what is still running, then end the subscriptions, off this callback.
        self.loop.create_task(self._clean_up(), name="rpc connection clean-up")

    def pause_writing(self) -> None:
        self.writing_paused = True
        self._update_reading()

    def resume_writing(self) -> None:
        self.writing_paused = False
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        self.drained = None
        self._update_reading()

    # -- incoming --------------------------------------------------------------

    def _handshake(self, request: Request) -> None:
        if request.path.partition("?")[0] in PATHS:
            response = self.ws.accept(request)
        else:
            response = self.ws.reject(HTTPStatus.NOT_FOUND, "Not Found: the WebSocket endpoints are / and /ws\n")
        self.ws.send_response(response)
        if self.ws.state is _OPEN:
            self._keepalive()

    def _process_backlog(self) -> None:
        backlog = self.backlog
        while backlog and len(self.running) < self.limit:
            frame = backlog.popleft()
            opcode = frame.opcode
            data: bytes = frame.data  # type: ignore[assignment]  # a client's frames are unmasked into bytes
            if opcode is _TEXT:
                if frame.fin:
                    self._message(data)
                else:
                    self.fragments, self.fragmented_text = [data], True
            elif opcode is _BINARY:
                if frame.fin:
                    self._answer(BINARY_FRAME_REPLY)
                else:
                    self.fragments, self.fragmented_text = [data], False
            elif opcode is _CONT:
                self.fragments.append(data)
                if frame.fin:
                    whole, self.fragments = b"".join(self.fragments), []
                    if self.fragmented_text:
                        self._message(whole)
                    else:
                        self._answer(BINARY_FRAME_REPLY)
            elif opcode is _PONG and self.ping is not None and data == self.ping:
                self.ping = None
                if self.ws.state is _OPEN:
                    self._keepalive()
            # websockets answers pings and close frames by itself.
        self._update_reading()

    def _message(self, data: bytes) -> None:
        try:
            text = data.decode()
        except UnicodeDecodeError:
            # RFC 6455 section 8.1: a text message that is not UTF-8 fails the connection.
            self.ws.fail(CloseCode.INVALID_DATA, "invalid UTF-8 in a text frame")
            self.backlog.clear()
            return
        reply = self.dispatch(text, self.session)
        if reply is None:
            return
        if type(reply) is bytes:
            self._answer(reply)
            return
        task = self.loop.create_task(self._answer_later(reply))  # type: ignore[arg-type]
        self.running.add(task)
        task.add_done_callback(self._finished)

    async def _answer_later(self, reply: Awaitable[bytes | None]) -> None:
        response = await reply
        if response is not None:
            self._answer(response)
            self._schedule_flush()

    def _finished(self, task: asyncio.Task[None]) -> None:
        self.running.discard(task)
        if self.backlog and self.transport is not None:
            self._process_backlog()
            self._flush()
        else:
            self._update_reading()

    def _update_reading(self) -> None:
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        waiting = len(self.backlog)
        if not self.reading_paused and (self.writing_paused or waiting >= BACKLOG_HIGH):
            transport.pause_reading()
            self.reading_paused = True
        elif self.reading_paused and not self.writing_paused and waiting <= BACKLOG_LOW:
            transport.resume_reading()
            self.reading_paused = False

    # -- outgoing --------------------------------------------------------------

    def _answer(self, message: bytes) -> None:
        if self.ws.state is _OPEN:
            self.ws.send_text(message)

    async def _push(self, message: bytes) -> None:
        """The session's way out: streamed parts, progress, events. Waits while the socket is full."""
        if self.ws.state is not _OPEN:
            return  # the peer is gone: what it asked for is dropped with it
        self.ws.send_text(message)
        self._schedule_flush()
        if self.writing_paused:
            if self.drained is None:
                self.drained = self.loop.create_future()
            # Shielded: several pushes may wait on it, and one being cancelled must not cancel it.
            await asyncio.shield(self.drained)

    def _schedule_flush(self) -> None:
        # Answers finishing in the same loop turn go out in one write.
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self.flush_scheduled = False
        transport = self.transport
        chunks = self.ws.data_to_send()
        if not chunks or transport is None or transport.is_closing():
            return
        if chunks[-1] == b"":  # websockets' signal to end the TCP stream
            data = b"".join(chunks[:-1])
            if data:
                transport.write(data)
            if transport.can_write_eof():
                transport.write_eof()
            else:
                transport.close()
        else:
            transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if self.ws.close_expected():
            # The peer now has close_timeout to end its side before we cut it.
            self._set_timer(self.server.close_timeout, self._abort)

    # -- time limits and closing -----------------------------------------------

    def _set_timer(self, delay: float | None, callback: Callable[[], Any] | None) -> None:
        if self.timer is not None:
            self.timer.cancel()
        self.timer = self.loop.call_later(delay, callback) if delay is not None and callback is not None else None

    def _keepalive(self) -> None:
        self._set_timer(self.server.ping_interval, self._send_ping)

    def _send_ping(self) -> None:
        if self.ws.state is not _OPEN:
            return
        self.ping = os.urandom(4)
        self.ws.send_ping(self.ping)
        self._flush()
        self._set_timer(self.server.ping_timeout, self._ping_timed_out)

    def _ping_timed_out(self) -> None:
        logger.info("closing a connection that answered no ping for %s s", self.server.ping_timeout)
        self.ws.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
        self._flush()
        self._abort()

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()

    def close(self, code: int = CloseCode.GOING_AWAY, reason: str = "") -> None:
        """Start the closing handshake; the connection is cut if the peer does not finish it in time."""
        if self.ws.state is _OPEN:
            self.ws.send_close(code, reason)
            self._flush()
        elif self.transport is not None and self.ws.state is State.CONNECTING:
            self.transport.close()

    async def _clean_up(self) -> None:
        for task in self.running:
            task.cancel()
        if self.running:
            await asyncio.gather(*self.running, return_exceptions=True)
        await self.session.close()
        self.closed.set_result(None)
