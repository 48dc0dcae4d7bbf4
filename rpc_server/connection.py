"""One client connection: websockets' Sans-I/O protocol driven by an asyncio Protocol.

websockets does the WebSocket itself here (handshake, ping/pong, the close
handshake, the size limit, fragments, permessage-deflate, every frame it would
refuse) through its I/O-free :class:`~websockets.server.ServerProtocol`. This
module moves bytes between that and the socket, and messages between that and
the dispatcher; once the handshake is done, with no extension and not at debug
level, whole masked text frames and the answers are framed by :mod:`.frames`
instead, which costs a quarter of websockets' path per call.

This module exists because websockets' own asyncio connection, with a
future and an awaited ``send()`` per message and a write per answer, cost
more per call than the whole JSON-RPC dispatch: 23 µs of server CPU a
``multiply`` for its bare echo server here, 30 µs with our dispatch on top.

What it adds over the plain loop:

- the answers to everything that one read brought in go out in one write,
  and so do the answers of async calls that finish in the same loop turn;
- budgets per connection (issue 9; see docs/limits.md): calls in flight are
  counted per call, each member of a batch included (``max_in_flight``),
  and so are the bytes of the messages they came in (``max_in_flight_bytes``).
  At either limit no further message is run; a message whose calls would go
  past it waits until the connection is otherwise idle, so one batch as
  large as ``max_batch`` still runs. Messages read meanwhile wait in a
  backlog bounded in count and bytes, past which the socket is not read at
  all (TCP then slows the sender; nothing is dropped). Reading also stops
  while more than ``max_send_buffer_bytes`` of answers wait for a peer that
  does not read them, so it slows itself down, not the server;
- a fragmented message pays for each frame's header as well as its payload
  against ``max_message_bytes``: empty fragments cannot be sent for free
  (the backlog and the fragments: :mod:`.inbox`);
- a large read is taken 64 KiB a loop turn, so that one connection's flood
  of tiny frames does not keep the others waiting;
- ``rpc.cancel`` reaches a call still waiting in the backlog: a request
  alone in its message is answered -32800 at once, a batch member when its
  batch is read;
- on close, the calls still running are cancelled and the session's
  subscriptions end; on a drain (:meth:`Connection.drain`), the calls
  already read are answered first, for up to a deadline;
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
import itertools
import logging
import os
import time
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeAlias, cast

from websockets.frames import CloseCode, Frame, Opcode, apply_mask
from websockets.http11 import Request, Response
from websockets.protocol import State
from websockets.server import ServerProtocol
from websockets.streams import StreamReader

from . import codes, protocol
from .config import Limits
from .frames import FrameReader, text_frame
from .handshake import Admission, Refusal, endpoint_of, is_upgrade, path_of, peer_name
from .handshake import response as http_response
from .inbox import BINARY, NONE, Backlog, Fragments, MessageTooBig, cancel_target
from .logs import CONTEXT
from .session import Bucket, Session, TopicDirectory
from .traffic import Traffic

__all__ = ["BINARY_FRAME_REPLY", "DRAIN_CLOSE_WAIT_S", "SHUTTING_DOWN", "Connection", "Handler", "Host"]

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

    @property
    def traffic(self) -> Traffic | None:
        """Where to count messages, bytes and handshakes (None: not counted)."""
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

    def bucket(self, identity: str | None) -> Bucket | None:
        """The rate limit the calls of a caller with this identity draw on (None: no limit)."""
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
# The reason given for calls cancelled, subscriptions ended and connections closed by a drain.
SHUTTING_DOWN = "the server is shutting down"
# On a drain, a peer that does not answer the server's close within this is cut.
DRAIN_CLOSE_WAIT_S = 1.0
# On a drain's deadline, how long cancelled calls have to answer before their tasks are cut.
_CANCEL_GRACE_S = 1.0

# At the in-flight limits, frames still come in (so pings, pongs and a close
# are seen) and messages wait in a backlog; past BACKLOG_HIGH of them, or past
# max_message_bytes of them, the socket is left unread until the backlog is
# down to BACKLOG_LOW (and a quarter of those bytes). websockets' own default
# queue is 16 messages.
BACKLOG_HIGH = 16
BACKLOG_LOW = 4
# The most of one read taken in a loop turn (asyncio reads up to 256 KiB at once).
SLICE_BYTES = 64 * 1024

# Once a credential has expired, the calls running get this long to answer before the close.
EXPIRY_GRACE_S = 5.0

# Module globals for the per-frame tests: an Enum member looked up on its class costs 0.2 µs.
_TEXT, _BINARY, _CONT, _PONG = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PONG
_DATA = frozenset((_TEXT, _BINARY, _CONT))
_OPEN = State.OPEN
# What websockets' parser awaits between two frames (see Connection._between_frames).
_AT_EOF = StreamReader.at_eof.__code__
# Connection numbers, for logs.
_numbers = itertools.count(1)


class Connection(asyncio.Protocol):
    """The life of one client connection; created by the server for each accepted socket."""

    def __init__(self, host: Host) -> None:
        self.host = host
        limits = self.limits = host.limits
        self.ws = host.websocket()
        self.dispatch: Handler = host.handler(None)
        self.limit = limits.max_in_flight
        self.limit_bytes = limits.max_in_flight_bytes
        self.max_message = limits.max_message_bytes
        self.session = Session(
            self._push,
            topics=host.topics,
            max_subscriptions=limits.max_subscriptions,
            subscription_buffer=limits.subscription_buffer,
            max_subscriptions_total=limits.max_subscriptions_total,
        )
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.lost = False
        self.accepted = False  # the handshake succeeded and the connection has not been failed since
        self.own_frames = False  # answers framed by .frames rather than by websockets (see _answer)
        self.reader: FrameReader | None = None  # frames read by .frames rather than by websockets (see _take)
        # Message tasks, each with the calls and the message bytes it holds.
        self.running: dict[asyncio.Task[None], tuple[int, int]] = {}
        self.in_flight = 0
        self.in_flight_bytes = 0
        # A message whose calls would go past the budgets: started once the others are done.
        self.deferred: tuple[Awaitable[bytes | None], int, int] | None = None
        self.full = False  # no message may start now (the budgets, or a deferred message)
        self.backlog = Backlog()
        self.rest: bytes | None = None  # what a large read brought beyond the slice taken this turn
        self.fragments = Fragments(limits.max_message_bytes)
        self.reading_paused = False
        self.writing_paused = False
        self.drained: asyncio.Future[None] | None = None
        self.flush_scheduled = False
        # Set by drain(): nothing more is read or run, and `idle` is set when what was read is done.
        self.draining = False
        self.idle: asyncio.Future[None] | None = None
        # One handle per deadline: sharing one let a pong re-arm the closing deadline.
        self.open_timer: asyncio.TimerHandle | None = None
        self.ping_timer: asyncio.TimerHandle | None = None
        self.close_timer: asyncio.TimerHandle | None = None
        self.close_wait_s = limits.close_timeout_s
        self.expiry_timer: asyncio.TimerHandle | None = None
        self.expired = False
        self.ping: bytes | None = None
        self.cleanup: asyncio.Task[None] | None = None
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self.traffic = host.traffic
        self.counted = False  # counted among the open connections
        # What every log line written while this connection's messages run says of it (rpc_server.logs).
        self.log_context: dict[str, Any] = {"connection": next(_numbers)}

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Not asserted to be an asyncio.Transport: uvloop's transports do all a Transport does
        # without deriving from it (a server run with --loop uvloop failed on the assert).
        self.transport = transport = cast(asyncio.Transport, transport)
        peer = peer_name(transport.get_extra_info("peername"))
        if peer is not None:
            self.log_context["peer"] = peer
        self.host.opened(self)  # which may cut it at once: the server is full
        if transport.is_closing():
            return
        if self.host.closing:  # accepted in the instant the server was closed
            transport.close()
            return
        transport.set_write_buffer_limits(high=self.limits.max_send_buffer_bytes)
        self.open_timer = self.loop.call_later(self.limits.open_timeout_s, self.abort)

    def data_received(self, data: bytes) -> None:
        if len(data) > SLICE_BYTES:
            # One read can hold 40,000 tiny frames: a third of a second of parsing.
            # Taken a slice a loop turn, it lets the other connections in between.
            self.rest = data[SLICE_BYTES:]
            data = data[:SLICE_BYTES]
            self.loop.call_soon(self._next_slice)
        token = CONTEXT.set(self.log_context)
        try:
            self._take(data)
        finally:
            CONTEXT.reset(token)

    def _next_slice(self) -> None:
        rest = self.rest
        if rest is None or self.lost:
            self.rest = None
            return
        if len(rest) > SLICE_BYTES:
            self.rest = rest[SLICE_BYTES:]
            rest = rest[:SLICE_BYTES]
            self.loop.call_soon(self._next_slice)
        else:
            self.rest = None
        token = CONTEXT.set(self.log_context)
        try:
            self._take(rest)
        finally:
            CONTEXT.reset(token)

    def _take(self, data: bytes) -> None:
        reader = self.reader
        if reader is None:
            self._parse(data)
            # As for the answers (see own_frames): not where an extension rewrites payloads, nor at
            # debug level, where websockets logs each frame it parses.
            if self.accepted and self.own_frames and self._between_frames():
                self.reader = FrameReader(self.ws.max_message_size)
        else:
            ws = self.ws
            for frame, start in reader.feed(data):
                if (
                    start < 0
                    or ws.state is not _OPEN
                    or ws.current_size is not None
                    or not self.accepted
                    or self.draining
                ):
                    self._parse(frame)  # websockets' own path, which then stands between frames again
                    continue
                # A whole text message in one frame: the hot path.
                message = apply_mask(frame[start:], frame[start - 4 : start])
                if self.backlog or self.full:
                    self._arrived(message)
                else:
                    self._message(message)
            if reader.off:
                self.reader = None
        self._update_reading()
        self._flush()

    def _between_frames(self) -> bool:
        """Whether websockets' parser waits for the first byte of a frame, with nothing of one buffered."""
        ws = self.ws
        if ws.reader.buffer:
            return False
        # The innermost generator of the parser's chain (ServerProtocol.parse, Protocol.parse, ...).
        waiting = ws.parser
        while (inner := getattr(waiting, "gi_yieldfrom", None)) is not None:
            waiting = inner
        return getattr(waiting, "gi_code", None) is _AT_EOF

    def _parse(self, data: bytes) -> None:
        """Let websockets parse ``data`` and act on what it found."""
        self.ws.receive_data(data)
        for event in self.ws.events_received():
            if type(event) is not Frame:
                self._handshake(event)  # type: ignore[arg-type]
            elif not self.accepted or self.draining:
                # Frames that came behind a refused handshake, or after a drain began, are not to be run.
                continue
            elif event.opcode is _TEXT and event.fin:  # a whole message in one frame: the hot path
                # A client's frames are unmasked into bytes.
                if self.backlog or self.full:
                    self._arrived(event.data)  # type: ignore[arg-type]
                else:
                    self._message(event.data)  # type: ignore[arg-type]
            elif event.opcode in _DATA:
                self._fragment(event)
            elif event.opcode is _PONG:
                # Seen at once, even at the in-flight cap: a peer that answers is alive.
                self._pong(event.data)
            # websockets answers pings and close frames by itself.

    def eof_received(self) -> bool | None:
        if self.reader is not None and self.reader.pending:
            self.ws.receive_data(bytes(self.reader.pending))  # a frame cut short: websockets says so
        self.reader = None
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
        self.fragments.clear()
        self.rest = None
        if self.deferred is not None:
            # Started only to be wound up: each of its calls ends as it starts, its tool not run.
            self.session.cancel_reason = "the connection closed"
            deferred, self.deferred = self.deferred, None
            self._start(*deferred)
        if self.drained is not None and not self.drained.done():
            self.drained.set_result(None)
        self._check_idle()
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
        try:
            decision = self.host.admit(request, self._caller())
        except Exception:
            # A gate or a route handler that fails (a user's, or a bug of ours): the caller
            # gets an answer, not a cut connection, and the server keeps serving.
            logger.exception("the handshake failed on a request for %s", path_of(request))
            decision = http_response(500, "Internal Server Error\n")
        traffic = self.traffic
        if isinstance(decision, Response):  # plain HTTP, or a refusal
            if traffic is not None and isinstance(decision, Refusal) and is_upgrade(request):  # not a guarded route's
                traffic.refused[decision.reason] += 1
            self.ws.send_response(decision)
            return
        response = self.ws.accept(request)  # checks the handshake itself, Origin and subprotocol
        self.ws.send_response(response)
        if self.ws.state is _OPEN:
            self.accepted = True
            if traffic is not None:
                traffic.connections_accepted += 1
                traffic.connections_open += 1
                self.counted = True
            if decision.identity is not None:
                self.log_context["identity"] = decision.identity
            self.session.identity = decision.identity
            self.session.allowed = decision.allowed
            self.session.endpoint = endpoint_of(request)
            # Per identity once authentication gave one: more connections buy no more calls.
            self.session.bucket = self.host.bucket(decision.identity)
            if decision.expires_at is not None:
                delay = max(0.0, decision.expires_at - time.time())
                self.expiry_timer = self.loop.call_later(delay, self._expire)
            if self.ws.subprotocol is not None:
                self.dispatch = self.host.handler(self.ws.subprotocol)
            # Answers are framed here unless an extension (deflate) rewrites them, or websockets logs frames.
            self.own_frames = not self.ws.extensions and not self.ws.debug
            self._schedule_ping()
        elif traffic is not None and response.status_code != 426:  # 426: plain HTTP on the endpoint, not an upgrade
            traffic.refused["invalid"] += 1  # not a valid WebSocket handshake

    def _caller(self) -> Admission:
        """What the transport knows of the caller, for the gates: its address, and its TLS certificate."""
        assert self.transport is not None
        peer = self.log_context.get("peer")
        return Admission(peer=peer, certificate=self.transport.get_extra_info("peercert"))

    def _arrived(self, data: bytes) -> None:
        """A whole text message: run now, or queue behind the budgets."""
        if not (self.backlog or self.full):
            self._message(data)
            return
        target = cancel_target(data)
        if target is NONE:
            self.backlog.put(data)
        elif target in self.session.running or not self._cancel_queued(target):
            # At the cap, a cancel must not queue behind the very calls it would
            # free a slot from: it runs now (it needs no task), ahead of its turn.
            self._message(data)

    def _cancel_queued(self, id: Any) -> bool:
        """rpc.cancel of a request still in the backlog: True if it named one (now answered or marked)."""
        where = self.backlog.find(id)
        if where == "alone":
            self._answer(protocol.encode(protocol.error(codes.REQUEST_CANCELLED, id=id)))
        elif where == "batch":
            # Its batch answers it -32800 when read, and runs the rest (see Dispatcher._batch).
            self.session.queued_cancels.add(id)
        return where is not None

    def _fragment(self, frame: Frame) -> None:
        """One frame of a fragmented message, or a whole binary one."""
        if frame.opcode is _BINARY and frame.fin:
            self._answer(BINARY_FRAME_REPLY)
            return
        try:
            whole = self.fragments.add(frame)
        except MessageTooBig as exc:
            # Headers count: without them, empty fragments would cost the server and nothing of the limit.
            self._fail(CloseCode.MESSAGE_TOO_BIG, str(exc))
            return
        if whole is BINARY:
            self._answer(BINARY_FRAME_REPLY)
        elif whole is not None:
            self._arrived(whole)

    def _process_backlog(self) -> None:
        backlog = self.backlog
        # Messages that came before a peer's close still run (a notification sent
        # just before closing must take effect), though no answer can go out.
        while backlog and not self.full:
            self._message(backlog.take())
        self._update_reading()

    def _message(self, data: bytes) -> None:
        traffic = self.traffic
        if traffic is not None:
            traffic.messages_in += 1
            traffic.bytes_in += len(data)
        try:
            text = data.decode()
        except UnicodeDecodeError:
            # RFC 6455 section 8.1: a text message that is not UTF-8 fails the connection.
            self._fail(CloseCode.INVALID_DATA, "invalid UTF-8 in a text frame")
            return
        session = self.session
        started = session.started
        try:
            reply = self.dispatch(text, session)
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
        # Each async call counts, each batch member included; a handler that does not
        # count its calls (another subprotocol's) counts one per message.
        calls = session.started - started or 1
        size = len(data)
        if self.in_flight and (self.in_flight + calls > self.limit or self.in_flight_bytes + size > self.limit_bytes):
            # Past the budgets while others run: it starts once they are done (its
            # calls are known by id already, so rpc.cancel reaches them meanwhile).
            self.deferred = (reply, calls, size)
            self.full = True
            return
        self._start(reply, calls, size)

    def _start(self, reply: Awaitable[bytes | None], calls: int, size: int) -> None:
        task = self.loop.create_task(self._answer_later(reply))
        self.running[task] = (calls, size)
        self.in_flight += calls
        self.in_flight_bytes += size
        self.full = self.in_flight >= self.limit or self.in_flight_bytes >= self.limit_bytes
        task.add_done_callback(self._finished)

    async def _answer_later(self, reply: Awaitable[bytes | None]) -> None:
        response = await reply
        if response is not None:
            self._answer(response)
            self._schedule_flush()

    def _finished(self, task: asyncio.Task[None]) -> None:
        calls, size = self.running.pop(task)
        self.in_flight -= calls
        self.in_flight_bytes -= size
        if not task.cancelled() and task.exception() is not None:
            logger.error("a call failed outside its tool", exc_info=task.exception())
        if self.expired and not self.running:
            self._close_expired()
        if self.lost:
            self._check_idle()
            return
        if self.deferred is not None:
            if self.running:
                self._check_idle()
                return
            deferred, self.deferred = self.deferred, None
            self._start(*deferred)
        else:
            self.full = self.in_flight >= self.limit or self.in_flight_bytes >= self.limit_bytes
        if self.backlog:
            self._process_backlog()
            self._flush()
        else:
            self._update_reading()
        self._check_idle()

    def _update_reading(self) -> None:
        transport = self.transport
        if transport is None or self.lost or transport.is_closing():
            return
        waiting = len(self.backlog)
        # A drain stops reading until its close is sent; then the peer's close must be read.
        held = self.writing_paused or (self.draining and self.ws.state is _OPEN) or self.rest is not None
        weight = self.backlog.bytes
        if not self.reading_paused and (held or waiting >= BACKLOG_HIGH or weight >= self.max_message):
            transport.pause_reading()
            self.reading_paused = True
        elif self.reading_paused and not held and waiting <= BACKLOG_LOW and weight <= self.max_message // 4:
            transport.resume_reading()
            self.reading_paused = False

    def _fail(self, code: CloseCode, reason: str) -> None:
        """Fail the WebSocket connection: nothing more it sent is run (RFC 6455 section 7.1.7)."""
        self.ws.fail(code, reason)
        self.backlog.clear()
        self.fragments.clear()
        self.accepted = False

    # -- outgoing --------------------------------------------------------------

    def _answer(self, message: bytes) -> None:
        ws = self.ws
        if ws.state is _OPEN:
            if self.own_frames:
                # websockets' send_text less its checks, which hold here (the server never
                # fragments what it sends), and less its Frame object (issue 13).
                ws.writes.append(text_frame(message))
            else:
                ws.send_text(message)
            traffic = self.traffic
            if traffic is not None:
                traffic.messages_out += 1
                traffic.bytes_out += len(message)

    async def _push(self, message: bytes) -> None:
        """The session's way out: streamed parts, progress, events. Waits while the socket is full."""
        if self.ws.state is not _OPEN:
            return  # the peer is gone: what it asked for is dropped with it
        self._answer(message)
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
            self.close_timer = self.loop.call_later(self.close_wait_s, self.abort)

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
            if self.ws.state is _OPEN and not self.draining:
                self._schedule_ping()

    def _ping_timed_out(self) -> None:
        logger.info("closing a connection that answered no ping for %s s", self.limits.ping_timeout_s)
        self._fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
        self._flush()
        self.abort()

    def _expire(self) -> None:
        """The caller's credential has expired: run nothing more; close once the calls running have answered."""
        self.expiry_timer = None
        if self.ws.state is not _OPEN:
            return
        logger.info("closing the connection of %s: its token expired", self.session.identity)
        self.expired = True
        self.accepted = False  # what arrives from now on is not run
        self.backlog.clear()
        self.fragments.clear()
        if self.deferred is not None:
            # Read but not started: each of its calls answers -32800 as it starts, its tool not run.
            self.session.cancel_reason = "the caller's credential expired"
            deferred, self.deferred = self.deferred, None
            self._start(*deferred)
        for subscription in list(self.session.subscriptions.values()):
            subscription.cancel()  # no event goes out past the token's end; the calls running may answer
        if self.running:
            self.expiry_timer = self.loop.call_later(EXPIRY_GRACE_S, self._close_expired)
        else:
            self._close_expired()

    def _close_expired(self) -> None:
        self.close(CloseCode.POLICY_VIOLATION, "token expired")

    def abort(self) -> None:
        """Cut the connection at once, with no closing handshake."""
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

    async def drain(self, deadline: float) -> None:
        """Close gracefully: answer what was read, then close with 1001.

        Nothing more is read (but the closing handshake). The calls already
        read, queued ones included, run on until ``deadline`` (in loop time);
        then those still running, or not yet started, are cancelled and
        answered -32800 with the reason. Subscriptions end at once, each with
        its final ``rpc.unsubscribed``. A peer that does not answer the close
        within :data:`DRAIN_CLOSE_WAIT_S` is cut.
        """
        if self.lost or self.transport is None:
            return
        if self.ws.state is not _OPEN:
            self.close()  # a handshake not finished, or a closing already under way
            return
        self.draining = True
        self.fragments.clear()  # a message not yet whole was not read: no answer is owed for it
        self._update_reading()
        if self.ping_timer is not None:
            self.ping_timer.cancel()
        ending = [task for held in list(self.session.subscriptions.values()) for task in held.end(SHUTTING_DOWN)]
        self.idle = self.loop.create_future()
        self._check_idle()
        try:
            await asyncio.wait_for(asyncio.shield(self.idle), max(0.0, deadline - self.loop.time()))
        except TimeoutError:
            await self._cancel_the_rest()
        if ending:
            _, stuck = await asyncio.wait(ending, timeout=max(0.0, deadline - self.loop.time()))
            for task in stuck:  # a peer that does not read: its final notices cannot go out
                task.cancel()
        if not self.lost:
            self._flush()
            self.close_wait_s = min(self.close_wait_s, DRAIN_CLOSE_WAIT_S)
            self.close(CloseCode.GOING_AWAY, SHUTTING_DOWN)
            # The peer's close must be read now; any request behind it is not run (draining).
            self._update_reading()

    async def _cancel_the_rest(self) -> None:
        """The drain's deadline: every call is cancelled, those queued included, and answers -32800."""
        self.session.cancel_all(SHUTTING_DOWN)
        if self.deferred is not None:
            deferred, self.deferred = self.deferred, None
            self._start(*deferred)
        while self.backlog:
            self._message(self.backlog.take())
            if self.deferred is not None:  # no room to wait for: its calls answer -32800 as they start
                deferred, self.deferred = self.deferred, None
                self._start(*deferred)
        self._flush()
        if self.running:
            _, stubborn = await asyncio.wait(list(self.running), timeout=_CANCEL_GRACE_S)
            for task in stubborn:  # a tool that ignores cancellation: its answer cannot wait longer
                task.cancel()

    def _check_idle(self) -> None:
        idle = self.idle
        if idle is not None and not idle.done() and (self.lost or not (self.running or self.deferred or self.backlog)):
            idle.set_result(None)

    async def _clean_up(self) -> None:
        try:
            for task in self.running:
                task.cancel()
            if self.running:
                await asyncio.gather(*self.running, return_exceptions=True)
            await self.session.close()
        finally:
            if self.counted and self.traffic is not None:
                self.traffic.connections_open -= 1
            self.host.closed(self)
            if not self.closed.done():
                self.closed.set_result(None)
