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
- keepalive pings, and time limits on the opening and closing handshakes;
- a connection lives no longer than its caller's credential: at the
  admission's ``expires_at`` nothing more is run and its subscriptions end;
  once the calls running have answered (or ``EXPIRY_GRACE_S`` later) it is
  closed with 1008 "token expired";
- frames that came behind a refused handshake, or after the connection was
  failed (invalid UTF-8, a keepalive timeout), are not run. Frames that came
  before a peer's close are: a notification sent just before closing must
  take effect, though no answer can go out.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeAlias

import orjson
from websockets.frames import CloseCode, Frame, Opcode
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol

from . import codes, protocol
from .config import Limits
from .handshake import Admission, endpoint_of
from .session import Session, TopicDirectory

__all__ = ["BINARY_FRAME_REPLY", "Connection", "Handler", "Host"]

logger = logging.getLogger("rpc_server")

# Answers one message of a connection: the dispatcher's contract (bytes to send,
# None, or an awaitable of either), whatever protocol the connection speaks.
Handler: TypeAlias = Callable[[str, Session], Any]


class Host(Protocol):
    """What a connection needs from the server that accepted it; the server passes itself."""

    @property
    def limits(self) -> Limits: ...

    @property
    def topics(self) -> TopicDirectory: ...

    @property
    def closing(self) -> bool:
        """The server is closing: a socket accepted now is closed at once."""
        ...

    def websocket(self) -> ServerProtocol:
        """A new Sans-I/O protocol for one connection, with the server's options (size, origins, extensions)."""
        ...

    def admit(self, request: Request, admission: Admission) -> Response | Admission:
        """The handshake's decision: a response that ends the exchange, or the admission, which holds
        what the transport knows of the caller (see :mod:`.handshake`)."""
        ...

    def handler(self, subprotocol: str | None) -> Handler:
        """What answers the messages of a connection that negotiated ``subprotocol`` (None: plain JSON-RPC)."""
        ...

    def opened(self, connection: Connection) -> None:
        """A socket was accepted."""

    def closed(self, connection: Connection) -> None:
        """A connection has closed and cleaned up after itself."""


# A binary frame is refused as an Invalid Request, and the connection stays
# open, since the peer may well send text next.
BINARY_FRAME_REPLY = protocol.encode(
    protocol.error(codes.INVALID_REQUEST, "binary frames are not accepted: send JSON-RPC as text frames")
)
INTERNAL_ERROR_REPLY = protocol.encode(protocol.error(codes.INTERNAL_ERROR))

# At the in-flight cap, frames still come in (so pings, pongs and a close are
# seen) and wait in a backlog; past BACKLOG_HIGH of them the socket is left
# unread until the backlog is down to BACKLOG_LOW. websockets' own default
# queue is 16 messages.
BACKLOG_HIGH = 16
BACKLOG_LOW = 4

# Once a credential has expired, the calls running get this long to answer before the close.
EXPIRY_GRACE_S = 5.0

# Module globals for the per-frame tests: an Enum member looked up on its class costs 0.2 µs.
_TEXT, _BINARY, _CONT, _PONG = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PONG
_DATA = frozenset((_TEXT, _BINARY, _CONT))
_OPEN = State.OPEN


def _is_cancel(data: Any) -> bool:
    """Whether a text message is one rpc.cancel notification (the substring test keeps it cheap)."""
    if b"rpc.cancel" not in data:
        return False
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return type(message) is dict and message.get("method") == "rpc.cancel" and "id" not in message


class Connection(asyncio.Protocol):
    """The life of one client connection; created by the server for each accepted socket."""

    def __init__(self, host: Host) -> None:
        self.host = host
        limits = self.limits = host.limits
        self.ws = host.websocket()
        self.dispatch: Handler = host.handler(None)
        self.limit = limits.max_in_flight
        self.session = Session(
            self._push,
            topics=host.topics,
            max_subscriptions=limits.max_subscriptions,
            subscription_buffer=limits.subscription_buffer,
        )
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.accepted = False  # the handshake succeeded and the connection has not been failed since
        self.running: set[asyncio.Task[None]] = set()
        self.backlog: collections.deque[Frame] = collections.deque()
        self.fragments: list[bytes] = []
        self.fragmented_text = False
        self.reading_paused = False
        self.writing_paused = False
        self.drained: asyncio.Future[None] | None = None
        self.flush_scheduled = False
        # One handle per deadline: sharing one let a pong re-arm the closing deadline.
        self.open_timer: asyncio.TimerHandle | None = None
        self.ping_timer: asyncio.TimerHandle | None = None
        self.close_timer: asyncio.TimerHandle | None = None
        self.expiry_timer: asyncio.TimerHandle | None = None
        self.expired = False
        self.ping: bytes | None = None
        self.cleanup: asyncio.Task[None] | None = None
        self.closed: asyncio.Future[None] = self.loop.create_future()

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.host.opened(self)
        if self.host.closing:  # accepted in the instant the server was closed
            transport.close()
            return
        self.open_timer = self.loop.call_later(self.limits.open_timeout_s, self._abort)

    def data_received(self, data: bytes) -> None:
        self.ws.receive_data(data)
        events = self.ws.events_received()
        for event in events:
            if isinstance(event, Request):
                self._handshake(event)
            elif not self.accepted or not isinstance(event, Frame):
                # Frames that came behind a refused handshake are not to be run.
                continue
            elif event.opcode in _DATA:
                if not (self.backlog or len(self.running) >= self.limit):
                    self.backlog.append(event)
                    self._process_backlog()  # at once, so that a later frame of this read sees its effects
                elif event.opcode is _TEXT and event.fin and _is_cancel(event.data):
                    # At the cap, a cancel must not queue behind the very calls it would
                    # free a slot from: it runs now (it needs no task), ahead of its turn.
                    self._message(event.data)  # type: ignore[arg-type]
                else:
                    self.backlog.append(event)
            elif event.opcode is _PONG:
                # Seen at once, even at the in-flight cap: a peer that answers is alive.
                self._pong(event.data)
            # websockets answers pings and close frames by itself.
        self._update_reading()
        self._flush()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self._flush()
        return None  # let asyncio close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.ws.receive_eof()  # idempotent; makes the protocol state CLOSED
        for timer in (self.open_timer, self.ping_timer, self.close_timer, self.expiry_timer):
            if timer is not None:
                timer.cancel()
        self.backlog.clear()
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        # Cancelling and awaiting take a task; the server waits for it in wait_closed().
        self.cleanup = self.loop.create_task(self._clean_up(), name="rpc connection clean-up")

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
        if self.open_timer is not None:
            self.open_timer.cancel()
        decision = self.host.admit(request, self._caller())
        if isinstance(decision, Response):  # plain HTTP, or a refusal: the exchange ends here
            self.ws.send_response(decision)
            return
        response = self.ws.accept(request)  # checks the handshake itself, Origin and subprotocol
        self.ws.send_response(response)
        if self.ws.state is _OPEN:
            self.accepted = True
            self.session.identity = decision.identity
            self.session.allowed = decision.allowed
            self.session.endpoint = endpoint_of(request)
            if decision.expires_at is not None:
                delay = max(0.0, decision.expires_at - time.time())
                self.expiry_timer = self.loop.call_later(delay, self._expire)
            if self.ws.subprotocol is not None:
                self.dispatch = self.host.handler(self.ws.subprotocol)
            self._schedule_ping()

    def _caller(self) -> Admission:
        """What the transport knows of the caller, for the gates: its address, and its TLS certificate."""
        assert self.transport is not None
        address = self.transport.get_extra_info("peername")
        peer = None
        if isinstance(address, tuple) and len(address) >= 2:
            peer = f"[{address[0]}]:{address[1]}" if ":" in str(address[0]) else f"{address[0]}:{address[1]}"
        return Admission(peer=peer, certificate=self.transport.get_extra_info("peercert"))

    def _process_backlog(self) -> None:
        backlog = self.backlog
        # Frames that came before a peer's close still run (a notification sent
        # just before closing must take effect), though no answer can go out.
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
            else:  # a continuation
                self.fragments.append(data)
                if frame.fin:
                    whole, self.fragments = b"".join(self.fragments), []
                    if self.fragmented_text:
                        self._message(whole)
                    else:
                        self._answer(BINARY_FRAME_REPLY)
        self._update_reading()

    def _message(self, data: bytes) -> None:
        try:
            text = data.decode()
        except UnicodeDecodeError:
            # RFC 6455 section 8.1: a text message that is not UTF-8 fails the connection.
            self.ws.fail(CloseCode.INVALID_DATA, "invalid UTF-8 in a text frame")
            self.backlog.clear()  # RFC 6455 section 7.1.7: nothing more is processed
            self.accepted = False
            return
        try:
            reply = self.dispatch(text, self.session)
        except Exception:
            # The dispatcher answers every failure of a tool; this is a bug of ours,
            # and the connection (and the other frames of this read) must outlive it.
            logger.exception("the dispatcher failed on a message")
            self._answer(INTERNAL_ERROR_REPLY)
            return
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
        if not task.cancelled() and task.exception() is not None:
            logger.error("a call failed outside its tool", exc_info=task.exception())
        if self.expired and not self.running:
            self._close_expired()
        if self.backlog and not self.lost:
            self._process_backlog()
            self._flush()
        else:
            self._update_reading()

    def _update_reading(self) -> None:
        transport = self.transport
        if transport is None or self.lost or transport.is_closing():
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
        if not chunks or transport is None or self.lost or transport.is_closing():
            return
        if chunks[-1] == b"":  # websockets' signal to end the TCP stream
            data = b"".join(chunks[:-1])
            if data:
                transport.write(data)
            try:
                if transport.can_write_eof():
                    transport.write_eof()
                else:
                    transport.close()
            except OSError:  # the peer reset the connection first
                transport.abort()
        else:
            transport.write(chunks[0] if len(chunks) == 1 else b"".join(chunks))
        if self.close_timer is None and self.ws.close_expected():
            # The peer now has close_timeout to end its side before we cut it; set once,
            # so that a peer that keeps pinging cannot put it off.
            self.close_timer = self.loop.call_later(self.limits.close_timeout_s, self._abort)

    # -- keepalive and closing -------------------------------------------------

    def _schedule_ping(self) -> None:
        self.ping_timer = self.loop.call_later(self.limits.ping_interval_s, self._send_ping)

    def _send_ping(self) -> None:
        if self.ws.state is not _OPEN:
            return
        self.ping = os.urandom(4)
        self.ws.send_ping(self.ping)
        self._flush()
        self.ping_timer = self.loop.call_later(self.limits.ping_timeout_s, self._ping_timed_out)

    def _pong(self, data: Any) -> None:
        if self.ping is not None and data == self.ping:
            self.ping = None
            if self.ping_timer is not None:
                self.ping_timer.cancel()
            if self.ws.state is _OPEN:
                self._schedule_ping()

    def _ping_timed_out(self) -> None:
        logger.info("closing a connection that answered no ping for %s s", self.limits.ping_timeout_s)
        self.ws.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
        self.accepted = False
        self._flush()
        self._abort()

    def _expire(self) -> None:
        """The caller's credential has expired: run nothing more; close once the calls running have answered."""
        self.expiry_timer = None
        if self.ws.state is not _OPEN:
            return
        logger.info("closing the connection of %s: its token expired", self.session.identity)
        self.expired = True
        self.accepted = False  # what arrives from now on is not run
        self.backlog.clear()
        for subscription in list(self.session.subscriptions.values()):
            subscription.cancel()  # no event goes out past the token's end; the calls running may answer
        if self.running:
            self.expiry_timer = self.loop.call_later(EXPIRY_GRACE_S, self._close_expired)
        else:
            self._close_expired()

    def _close_expired(self) -> None:
        self.close(CloseCode.POLICY_VIOLATION, "token expired")

    def _abort(self) -> None:
        if self.transport is not None and not self.lost:
            self.transport.abort()

    def close(self, code: int = CloseCode.GOING_AWAY, reason: str = "") -> None:
        """Start the closing handshake; the connection is cut if the peer does not finish it in time."""
        if self.lost or self.transport is None:
            return
        if self.ws.state is _OPEN:
            self.ws.send_close(code, reason)
            self._flush()
        elif self.ws.state is State.CONNECTING:
            self.transport.close()

    async def _clean_up(self) -> None:
        try:
            for task in self.running:
                task.cancel()
            if self.running:
                await asyncio.gather(*self.running, return_exceptions=True)
            await self.session.close()
        finally:
            self.host.closed(self)
            if not self.closed.done():
                self.closed.set_result(None)
