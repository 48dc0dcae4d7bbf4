"""The WebSocket connection: websockets' Sans-I/O client protocol driven by an asyncio Protocol.

The default connector, :func:`connect`. websockets does the WebSocket itself
(the handshake, parsing frames, ping/pong, the close handshake, the size limit,
permessage-deflate) through its I/O-free
:class:`~websockets.client.ClientProtocol`; this module only moves bytes
between that and the socket, as the server's ``rpc_server/connection.py``
does. It exists because websockets' asyncio client, with a lock, a write and
an awaited drain per message and a future per message read, cost more per
call than the rest of the client together (issue 13). What it does instead:

- the messages written in one event-loop turn leave in one socket write
  (a ``gather`` of 20,000 calls is a few writes, not 20,000), except the
  first since the last read, which leaves at once: a call made alone, after
  the answer to the one before, then waits for no loop turn;
- text frames are framed and masked here, with masks drawn from
  ``os.urandom`` in blocks (websockets makes one system call per frame);
  with an extension negotiated (deflate), websockets frames them;
- messages received go to the client by callback, from ``data_received``:
  no task, no future, no await per message;
- a frame that is a whole text or binary message is cut from the stream
  here; every other frame (ping, close, fragments, the malformed) goes whole
  to websockets' parser, which acts on it as ever (a test compares the two
  on streams cut at random);
- keepalive pings (``ping_interval``, ``ping_timeout``) and a time limit on
  the closing handshake (``close_timeout``), as websockets' own client has.

:mod:`.websockets_asyncio` holds websockets' asyncio client as an alternative
connector, for what this one does not do (HTTP proxies, redirects).
"""

from __future__ import annotations

import asyncio
import os
import socket
import ssl as ssl_module
import struct
from collections.abc import AsyncIterator, Sequence
from typing import Any

from websockets.client import ClientProtocol
from websockets.datastructures import HeadersLike
from websockets.exceptions import InvalidHandshake, InvalidMessage, InvalidStatus
from websockets.extensions.permessage_deflate import enable_client_permessage_deflate
from websockets.frames import CloseCode, Frame, Opcode, apply_mask
from websockets.http11 import USER_AGENT, Response
from websockets.protocol import Protocol, State
from websockets.typing import Origin, Subprotocol

from .credentials import AUTH_STATUSES, refusal
from .errors import ConnectError, ConnectionLost
from .transport import OnLost, OnMessage
from .url import check_url

__all__ = ["WebSocketConnection", "connect", "describe_close"]

_TEXT, _BINARY, _CONT, _PONG = Opcode.TEXT, Opcode.BINARY, Opcode.CONT, Opcode.PONG
_OPEN = State.OPEN
_MASKS = 4096  # bytes of os.urandom drawn at a time: masks for 1,024 frames
_pack_medium = struct.Struct("!BBH").pack
_pack_long = struct.Struct("!BBQ").pack


def describe_close(ws: Protocol) -> str:
    """Where a WebSocket connection is in its closing, as a phrase for error messages.

    Once closed, the close frames received and sent; while closing, the same so far
    (review F5: not "it is still open"); else that it is not closed.
    """
    if ws.state is State.CLOSED:
        return str(ws.close_exc)
    if ws.state is State.CLOSING:
        frames = [f"{how} {frame}" for how, frame in (("received", ws.close_rcvd), ("sent", ws.close_sent)) if frame]
        return "closing: " + "; then ".join(frames) if frames else "closing"
    if ws.state is State.CONNECTING:
        return "it is not open yet"
    return "it is still open"


class WebSocketConnection(asyncio.Protocol):
    """One client connection; a :class:`~rpc_client.transport.Link` (and a Transport). Made by :func:`connect`."""

    def __init__(
        self,
        protocol: ClientProtocol,
        url: str,
        *,
        additional_headers: HeadersLike | None,
        user_agent_header: str | None,
        ping_interval: float | None,
        ping_timeout: float | None,
        close_timeout: float | None,
    ) -> None:
        self.ws = protocol
        self.url = url
        self.loop = asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[None] = self.loop.create_future()
        self.closed: asyncio.Future[None] = self.loop.create_future()
        self._additional_headers = additional_headers
        self._user_agent_header = user_agent_header
        self._ping_interval = ping_interval
        self._ping_timeout = ping_timeout
        self._close_timeout = close_timeout
        self._out: list[bytes] = []
        self._flush_scheduled = False
        self._wrote_at_once = False  # since the last read or flush; what follows is gathered
        self._raw_frames = True  # False once an extension is negotiated: websockets frames then
        self._own_frames = False  # True once frames are cut here rather than by websockets (_read_frames)
        self._rest = b""  # the start of a frame whose end has not come
        self._masks = b""
        self._mask_at = _MASKS
        self._on_message: OnMessage | None = None
        self._on_lost: OnLost | None = None
        self._early: list[bytes | str] = []  # received before start()
        self._fragments: list[bytes] = []
        self._fragmented_text = False
        self._writing_paused = False
        self._drained: asyncio.Future[None] | None = None
        self._ping: bytes | None = None
        self._ping_timer: asyncio.TimerHandle | None = None
        self._close_timer: asyncio.TimerHandle | None = None
        self._lost = False
        self._failed = False  # by us, for a message that is not UTF-8
        self._fed = False  # websockets was given something in this read (it may have frames to send)

    # -- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # No isinstance check: uvloop's transports do not derive from asyncio.Transport.
        self.transport = transport  # type: ignore[assignment]
        request = self.ws.connect()
        if self._additional_headers is not None:
            request.headers.update(self._additional_headers)
        if self._user_agent_header is not None:
            request.headers.setdefault("User-Agent", self._user_agent_header)
        self.ws.send_request(request)
        self._pump()

    def data_received(self, data: bytes) -> None:
        self._wrote_at_once = False
        if self._own_frames:
            self._fed = False
            self._read_frames(data)
            if not self._fed:
                return  # websockets saw none of this read: it has nothing to send, its state is unchanged
        else:
            self._to_protocol(data)
            # Once open, with no extension and no partial frame left in websockets' buffer,
            # frames are cut here (see _read_frames).
            reader = getattr(self.ws, "reader", None)
            self._own_frames = self._raw_frames and self.ws.state is _OPEN and getattr(reader, "buffer", b"?") == b""
        self._pump()

    def eof_received(self) -> bool | None:
        self.ws.receive_eof()
        self._pump()
        return None  # let asyncio close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        self.ws.receive_eof()  # idempotent; makes the protocol's state CLOSED
        for timer in (self._ping_timer, self._close_timer):
            if timer is not None:
                timer.cancel()
        if not self.opened.done():
            self.opened.set_exception(exc if exc is not None else ConnectionResetError("closed during the handshake"))
            self.opened.exception()  # retrieved by connect(), unless it was cancelled first
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        if not self.closed.done():
            self.closed.set_result(None)
        on_lost, self._on_lost = self._on_lost, None
        if on_lost is not None:
            on_lost()

    def pause_writing(self) -> None:
        self._writing_paused = True

    def resume_writing(self) -> None:
        self._writing_paused = False
        if self._drained is not None and not self._drained.done():
            self._drained.set_result(None)
        self._drained = None

    # -- the Link --------------------------------------------------------------

    def write(self, data: bytes) -> None:
        """Queue one text message; the messages of this loop turn leave in one write."""
        if self.ws.state is not _OPEN:
            raise ConnectionLost(f"the connection to {self.url} is no longer open ({self.close_reason})")
        if self._raw_frames:
            frame = self._text_frame(data)
        else:
            self.ws.send_text(data)
            frame = b"".join(self.ws.data_to_send())
        if self._flush_scheduled or self._wrote_at_once:
            # Written after another in the same burst: gathered, to leave in one write.
            self._out.append(frame)
            if not self._flush_scheduled:
                self._flush_scheduled = True
                self.loop.call_soon(self._flush)
        else:
            # The first message since the last read or flush leaves at once: a lone call
            # (one at a time, each after its answer) waits for no flush, nor a loop turn.
            self._wrote_at_once = True
            transport = self.transport
            if transport is not None and not self._lost and not transport.is_closing():
                transport.write(frame)

    @property
    def writing_paused(self) -> bool:
        return self._writing_paused

    async def drained(self) -> None:
        if not self._writing_paused or self._lost:
            return
        if self._drained is None:
            self._drained = self.loop.create_future()
        # Shielded: many writers may wait on it, and one being cancelled must not cancel it.
        await asyncio.shield(self._drained)

    def start(self, on_message: OnMessage, on_lost: OnLost) -> None:
        self._on_message = on_message
        early, self._early = self._early, []
        for message in early:
            on_message(message)
        if self._lost:
            on_lost()
        else:
            self._on_lost = on_lost

    @property
    def close_reason(self) -> str:
        return describe_close(self.ws)

    async def close(self) -> None:
        """Close with the closing handshake; past ``close_timeout`` the socket is cut."""
        if self.transport is None:
            return
        if self.ws.state is _OPEN:
            self.ws.send_close(CloseCode.NORMAL_CLOSURE)
            self._pump()
        elif not self._lost:
            self.transport.close()
        try:
            async with asyncio.timeout(self._close_timeout):
                await asyncio.shield(self.closed)
        except TimeoutError:
            self.transport.abort()
            await asyncio.shield(self.closed)

    # -- the Transport, for code that uses the connection directly ---------------

    async def send(self, text: str) -> None:
        """Send one message (see :class:`~rpc_client.transport.Transport`)."""
        self.write(text.encode())
        await self.drained()

    def __aiter__(self) -> AsyncIterator[bytes | str]:
        """The messages received, in order (see :class:`~rpc_client.transport.Transport`); instead of :meth:`start`."""
        return self._messages()

    async def _messages(self) -> AsyncIterator[bytes | str]:
        queue: asyncio.Queue[bytes | str | None] = asyncio.Queue()
        self.start(queue.put_nowait, lambda: queue.put_nowait(None))
        while (message := await queue.get()) is not None:
            yield message

    # -- internals ---------------------------------------------------------------

    def _to_protocol(self, data: bytes) -> None:
        self._fed = True
        ws = self.ws
        ws.receive_data(data)
        for event in ws.events_received():
            if type(event) is Frame:
                self._frame(event)
            elif isinstance(event, Response):
                self._handshake_done()

    def _read_frames(self, data: bytes) -> None:
        """Cut the stream into frames; deliver whole unfragmented data frames, pass every other frame on.

        websockets' parser costs more per frame than the rest of reading an answer (issue
        13). A server's frame that is a whole text or binary message (FIN, no RSV bit, no
        mask, within max_size) is the common case and is delivered here; any other (ping,
        pong, close, fragments, whatever is malformed) is handed whole to websockets, whose
        parser therefore always starts at a frame's first byte, and acts as it always does.
        """
        buffer = self._rest + data if self._rest else data
        at, end = 0, len(buffer)
        limit = self.ws.max_message_size
        while end - at >= 2:
            first, second = buffer[at], buffer[at + 1]
            length, head = second & 0x7F, 2
            if length == 126:
                if end - at < 4:
                    break
                length, head = int.from_bytes(buffer[at + 2 : at + 4]), 4
            elif length == 127:
                if end - at < 10:
                    break
                length, head = int.from_bytes(buffer[at + 2 : at + 10]), 10
            if second & 0x80:
                head += 4  # masked: not from a server; websockets fails the connection for it
            stop = at + head + length
            simple = (
                (first == 0x81 or first == 0x82)
                and not second & 0x80
                and not self._fragments
                and self.ws.state is _OPEN  # closing or failed: websockets decides what is still read
            )
            if simple and limit is not None and length > limit:
                simple = False  # websockets closes with 1009 (message too big)
            elif stop > end and simple:
                break  # the rest of this frame is still to come
            if simple:
                payload = buffer[at + head : stop]
                if first == 0x82:
                    self._deliver(payload)
                else:
                    # Open and not failed (or it would not be simple): what _deliver_text() and _deliver()
                    # do, without their two calls and checks for each answer.
                    try:
                        text = payload.decode()
                    except UnicodeDecodeError:
                        self._deliver_text(payload)  # fails the connection, as RFC 6455 asks
                    else:
                        on_message = self._on_message
                        if on_message is None:
                            self._early.append(text)
                        else:
                            on_message(text)
            else:
                if stop > end:
                    stop = end  # websockets takes what came, and waits for the rest itself
                    self._own_frames = False
                self._to_protocol(buffer[at:stop])
                if self._fragments_open():
                    self._own_frames = False
            at = stop
            if not self._own_frames:
                if at < end:
                    self._to_protocol(buffer[at:])
                self._rest = b""
                return
        self._rest = buffer[at:]

    def _fragments_open(self) -> bool:
        # A fragmented message: its continuation frames are websockets' to parse.
        return bool(self._fragments)

    def _handshake_done(self) -> None:
        if self.opened.done():
            return
        exc = self.ws.handshake_exc
        if exc is not None:
            self.opened.set_exception(exc)
            self.opened.exception()
            return
        # With websockets' debug logging on (--log-level debug), every frame goes through it, to be logged.
        self._raw_frames = not self.ws.extensions and not self.ws.debug
        self.opened.set_result(None)
        if self._ping_interval is not None:
            self._ping_timer = self.loop.call_later(self._ping_interval, self._send_ping)

    def _frame(self, frame: Frame) -> None:
        opcode = frame.opcode
        data: bytes = frame.data  # type: ignore[assignment]  # a server's frames are unmasked into bytes
        if opcode is _TEXT:
            if frame.fin:
                self._deliver_text(data)
            else:
                self._fragments, self._fragmented_text = [data], True
        elif opcode is _BINARY:
            if frame.fin:
                self._deliver(bytes(data))
            else:
                self._fragments, self._fragmented_text = [data], False
        elif opcode is _CONT:
            self._fragments.append(data)
            if frame.fin:
                whole, self._fragments = b"".join(self._fragments), []
                if self._fragmented_text:
                    self._deliver_text(whole)
                else:
                    self._deliver(whole)
        elif opcode is _PONG:
            self._pong(data)
        # websockets answers pings and close frames by itself.

    def _deliver_text(self, data: bytes | bytearray) -> None:
        try:
            text = data.decode()
        except UnicodeDecodeError:
            # RFC 6455 section 8.1: a text message that is not UTF-8 fails the connection,
            # and section 7.1.7: nothing more is processed, not even frames of the same read.
            self.ws.fail(CloseCode.INVALID_DATA, "invalid UTF-8 in a text frame")
            self._failed = self._fed = True
            return
        self._deliver(text)

    def _deliver(self, message: bytes | str) -> None:
        if self._failed or (self.ws.state is not _OPEN and self.ws.state is not State.CLOSING):
            return  # after the connection was failed, nothing more is processed
        on_message = self._on_message
        if on_message is None:
            self._early.append(message)
        else:
            on_message(message)

    def _text_frame(self, data: bytes) -> bytes:
        at = self._mask_at
        if at >= _MASKS:
            # RFC 6455 section 5.3: masks come from a strong source of entropy; drawn in blocks.
            self._masks, at = os.urandom(_MASKS), 0
        mask = self._masks[at : at + 4]
        self._mask_at = at + 4
        length = len(data)
        if length < 126:
            head = bytes((0x81, 0x80 | length))
        elif length < 65536:
            head = _pack_medium(0x81, 0xFE, length)
        else:
            head = _pack_long(0x81, 0xFF, length)
        return head + mask + apply_mask(data, mask)

    def _pump(self) -> None:
        """Send what websockets wrote (the handshake, pongs, close frames), after what was queued before it."""
        chunks = self.ws.data_to_send()
        if chunks:
            self._out += chunks
            self._flush()
        if self._close_timer is None and self.ws.close_expected() and self._close_timeout is not None:
            # The server now has close_timeout to end the TCP connection before we cut it.
            self._close_timer = self.loop.call_later(self._close_timeout, self._abort)

    def _flush(self) -> None:
        self._flush_scheduled = self._wrote_at_once = False
        out = self._out
        if not out:
            return
        self._out = []
        transport = self.transport
        if transport is None or self._lost or transport.is_closing():
            return
        if b"" in out:  # websockets' signal to end the TCP stream
            data = b"".join(out[: out.index(b"")])
            if data:
                transport.write(data)
            try:
                if transport.can_write_eof():
                    transport.write_eof()
                else:
                    transport.close()
            except OSError:  # the peer reset the connection first
                transport.abort()
            return
        transport.write(out[0] if len(out) == 1 else b"".join(out))

    def _send_ping(self) -> None:
        if self.ws.state is not _OPEN:
            return
        self._ping = os.urandom(4)
        self.ws.send_ping(self._ping)
        self._pump()
        if self._ping_timeout is not None:
            self._ping_timer = self.loop.call_later(self._ping_timeout, self._ping_timed_out)

    def _pong(self, data: bytes | bytearray) -> None:
        if self._ping is not None and data == self._ping:
            self._ping = None
            if self._ping_timer is not None:
                self._ping_timer.cancel()
            if self.ws.state is _OPEN and self._ping_interval is not None:
                self._ping_timer = self.loop.call_later(self._ping_interval, self._send_ping)

    def _ping_timed_out(self) -> None:
        self.ws.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
        self._pump()
        self._abort()

    def _abort(self) -> None:
        if self.transport is not None and not self._lost:
            self.transport.abort()


async def connect(
    url: str,
    *,
    max_size: int | None = 2**20,
    compression: str | None = None,
    additional_headers: HeadersLike | None = None,
    user_agent_header: str | None = USER_AGENT,
    origin: Origin | None = None,
    subprotocols: Sequence[Subprotocol] | None = None,
    ssl: ssl_module.SSLContext | bool | None = None,
    server_hostname: str | None = None,
    ping_interval: float | None = 20.0,
    ping_timeout: float | None = 20.0,
    close_timeout: float | None = 10.0,
) -> WebSocketConnection:
    """Open a WebSocket connection to ``url``: TCP, TLS for ``wss://``, then the opening handshake.

    The options are those of :func:`websockets.asyncio.client.connect` of the
    same names. Pass them to a client with ``connector=functools.partial(
    rpc_client.websocket.connect, max_size=2**24)``. The time it may take is
    the client's ``connect_timeout``.

    Args:
        url: a ``ws://`` or ``wss://`` URL.
        max_size: the largest message accepted, in bytes; None for no limit.
        compression: ``"deflate"`` to offer permessage-deflate; off by default, as on the server.
        additional_headers: more headers for the handshake request (``Authorization``...); a
            client's ``token=`` and ``headers=`` arrive here.
        user_agent_header: the ``User-Agent``; None sends none.
        origin: the ``Origin`` header, for servers that check it.
        subprotocols: the subprotocols offered.
        ssl: an SSLContext for ``wss://`` (the system's default otherwise); a client's ``ssl=`` or ``cafile=``.
        server_hostname: the host name that the TLS certificate must match, if not the URL's.
        ping_interval: seconds between keepalive pings; None sends none.
        ping_timeout: seconds a pong may take before the connection is dropped; None waits.
        close_timeout: seconds the closing handshake may take before the socket is cut.

    Raises:
        InvalidURL: the URL cannot name a WebSocket server.
        AuthenticationError: the server refused the handshake with HTTP 401 or 403; its reason says why.
        ConnectError: the connection could not be opened; the message says why.
    """
    uri = check_url(url)
    if compression not in (None, "deflate"):
        raise ValueError(f"compression is 'deflate' or None, not {compression!r}")
    protocol = ClientProtocol(
        uri,
        origin=origin,
        extensions=enable_client_permessage_deflate(None) if compression == "deflate" else None,
        subprotocols=subprotocols,
        max_size=max_size,
    )
    loop = asyncio.get_running_loop()
    if uri.secure:
        context = ssl if isinstance(ssl, ssl_module.SSLContext) else ssl_module.create_default_context()
        tls: dict[str, Any] = {"ssl": context, "server_hostname": server_hostname or uri.host}
    elif ssl:
        raise ValueError(f"ssl is for wss:// URLs, not {url}")
    else:
        tls = {}

    def made() -> WebSocketConnection:
        return WebSocketConnection(
            protocol,
            url,
            additional_headers=additional_headers,
            user_agent_header=user_agent_header,
            ping_interval=ping_interval,
            ping_timeout=ping_timeout,
            close_timeout=close_timeout,
        )

    try:
        transport, connection = await loop.create_connection(made, uri.host, uri.port, **tls)
    except OSError as exc:
        raise _connect_error(url, exc, tls=bool(tls), stage="connect") from None
    try:
        await connection.opened
    except BaseException as exc:
        transport.abort()
        if isinstance(exc, InvalidHandshake | OSError):
            raise _connect_error(url, exc, tls=bool(tls), stage="handshake") from None
        raise
    return connection


def _connect_error(url: str, exc: BaseException, *, tls: bool, stage: str) -> ConnectError:
    """What went wrong, as a sentence for someone who typed the URL."""
    at = f"cannot connect to {url}"
    if isinstance(exc, ConnectionRefusedError):
        return ConnectError(f"{at}: connection refused", refused=True)
    if isinstance(exc, socket.gaierror):
        return ConnectError(f"{at}: cannot resolve the host name ({exc.strerror})")
    if isinstance(exc, ssl_module.SSLCertVerificationError):
        return ConnectError(
            f"{at}: the server's TLS certificate was not accepted ({exc.verify_message}); "
            "if a CA of your own signed it, trust it with cafile= (--cafile)"
        )
    if tls and stage == "connect" and isinstance(exc, ssl_module.SSLError | ConnectionResetError | EOFError):
        plain = "ws://" + url.split("://", 1)[1]
        return ConnectError(
            f"{at}: the TLS handshake failed; the server does not speak TLS (wss://) there. "
            f"For a server without TLS, use {plain}"
        )
    if isinstance(exc, InvalidStatus):
        status = exc.response.status_code
        if status in AUTH_STATUSES:
            return refusal(url, exc.response)
        phrase = exc.response.reason_phrase
        if status == 404:
            return ConnectError(f"{at}: the server answered HTTP 404 ({phrase}): is the path right?")
        return ConnectError(f"{at}: the server answered HTTP {status} ({phrase}), not a WebSocket handshake")
    if isinstance(exc, InvalidMessage):
        hint = "" if tls else " (a TLS server? then use wss://)"
        return ConnectError(f"{at}: the server's answer to the handshake is not HTTP{hint}")
    if isinstance(exc, InvalidHandshake):
        return ConnectError(f"{at}: the WebSocket handshake failed ({exc})")
    if isinstance(exc, ConnectionResetError | EOFError) or stage == "handshake":
        # With TLS 1.3, a server that wants a client certificate refuses it after the TLS handshake.
        hint = "; if it asks for a client certificate (mutual TLS), give one in ssl=" if tls else ""
        return ConnectError(f"{at}: the server closed the connection during the handshake{hint}")
    assert isinstance(exc, OSError)
    return ConnectError(f"{at}: {exc.strerror or exc or type(exc).__name__}")
