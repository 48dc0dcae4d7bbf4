"""The load generator: picows connections driven from callbacks, cheaper than the servers it measures.

Why picows: the ``websockets`` asyncio client tops out near a ``websockets`` echo
server's rate on this machine, so through it every server looks alike.
picows parses frames in C and hands each to a callback; here that callback checks
the answer and sends the next request itself, so a call costs the client no task,
no future and no await. Its cost is reported beside every throughput figure
(client CPU µs per call), and a bare picows echo server shows its ceiling.

permessage-deflate: picows' core does not negotiate it; its websockets-compatible
layer, ``picows.websockets``, does, so :func:`deflate_calls` uses that, with an
await per message. The same client drives every server in that scenario.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from .dialects import NO_ID, Dialect
from .errors import LoadError

__all__ = ["Connection", "RunResult", "check_batch", "deflate_calls", "percentile"]

_TEXT = WSMsgType.TEXT
_BINARY = WSMsgType.BINARY
_CONTINUATION = WSMsgType.CONTINUATION
_CLOSE = WSMsgType.CLOSE
_loads = orjson.loads
_DecodeError = orjson.JSONDecodeError
_now = time.perf_counter_ns


@dataclass(slots=True)
class RunResult:
    """What one run of calls gave.

    ``errors`` counts wrong, unknown or repeated answers and calls left unanswered
    (the connection closed, or the time bound ran out: then ``timed_out``).
    """

    calls: int
    answered: int = 0
    errors: int = 0
    seconds: float = 0.0
    client_cpu_seconds: float = 0.0
    timed_out: bool = False
    latencies_ns: list[int] = field(default_factory=list)

    @property
    def calls_per_s(self) -> float:
        return self.answered / self.seconds if self.seconds > 0 else 0.0


def percentile(sorted_values: list[int], p: float) -> int:
    """The nearest-rank ``p``-th percentile of values sorted ascending."""
    if not sorted_values:
        return 0
    rank = max(1, -(-len(sorted_values) * p // 100))
    return sorted_values[min(len(sorted_values), int(rank)) - 1]


def check_batch(dialect: Dialect, reply: bytes, ids: range) -> int:
    """How many of the calls ``ids`` a batch answer got wrong or left out."""
    try:
        answers = _loads(reply)
    except _DecodeError:
        return len(ids)
    if type(answers) is not list:
        return len(ids)
    expected = set(ids)
    for answer in answers:
        n = dialect.answer_id(answer)
        if n is not None and n in expected:
            expected.discard(n)
    # Extra members are wrong too, even when every id was answered once.
    return len(expected) + max(0, len(answers) - len(ids))


class _Listener(WSListener):  # type: ignore[misc]
    """The callbacks of one connection; in a run of calls each answer sends the next request."""

    def __init__(self, dialect: Dialect) -> None:
        super().__init__()
        self.transport: WSTransport | None = None
        self.request = dialect.request
        self.answer_id = dialect.answer_id
        self.parts: list[bytes] = []
        self.disconnected = asyncio.get_running_loop().create_future()
        self.on_message: Callable[[bytes], None] = self._unexpected
        self.unexpected = 0
        # The state of the current run of calls (see Connection.calls).
        self.done: asyncio.Future[None] | None = None
        self.result = RunResult(0)
        self.calls = 0
        self.sent = 0
        self.pending: set[int] = set()
        self.sent_at = 0
        self.latencies: list[int] | None = None
        self.one: asyncio.Future[tuple[int, bytes]] | None = None

    # -- picows callbacks --------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind == _TEXT or kind == _BINARY:
            if frame.fin:
                self.on_message(frame.get_payload_as_bytes())
            else:
                self.parts = [frame.get_payload_as_bytes()]
        elif kind == _CONTINUATION:
            self.parts.append(frame.get_payload_as_bytes())
            if frame.fin:
                message, self.parts = b"".join(self.parts), []
                self.on_message(message)
        elif kind == _CLOSE:
            if not transport.is_close_frame_sent:
                transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if not self.disconnected.done():
            self.disconnected.set_result(None)
        for waiter in (self.done, self.one):
            if waiter is not None and not waiter.done():
                waiter.set_result(None)  # type: ignore[arg-type]

    # -- a run of calls ----------------------------------------------------

    def send_next(self) -> None:
        self.sent += 1
        n = self.sent
        self.pending.add(n)
        if self.latencies is not None:
            self.sent_at = _now()
        self.transport.send(_TEXT, self.request(n))  # type: ignore[union-attr]

    def answer(self, payload: bytes) -> None:
        received_at = _now()
        result = self.result
        try:
            n = self.answer_id(_loads(payload))
        except _DecodeError:
            n = None
        if n is None:
            result.errors += 1
        elif n != NO_ID:
            if n in self.pending:
                self.pending.discard(n)
            else:
                result.errors += 1
        result.answered += 1
        if self.latencies is not None:
            self.latencies.append(received_at - self.sent_at)
        if self.sent < self.calls:
            self.send_next()
        elif result.answered >= self.calls and self.done is not None and not self.done.done():
            self.done.set_result(None)

    # -- one message, timed to its whole answer ------------------------------

    def one_answer(self, payload: bytes) -> None:
        if self.one is not None and not self.one.done():
            self.one.set_result((_now(), payload))
        else:
            self.unexpected += 1

    def _unexpected(self, payload: bytes) -> None:
        self.unexpected += 1


class Connection:
    """One picows connection to a server that speaks ``dialect``.

    Open it with :meth:`open`; close it with :meth:`close`.
    """

    def __init__(self, listener: _Listener, transport: WSTransport) -> None:
        self._listener = listener
        self._transport = transport

    @classmethod
    async def open(cls, url: str, dialect: Dialect, *, timeout: float) -> Connection:
        """Connect and finish the opening handshake within ``timeout`` seconds.

        Raises:
            LoadError: the handshake did not finish in time.
            OSError, picows.WSError: the connection was refused or the handshake failed.
        """
        try:
            async with asyncio.timeout(timeout):
                transport, listener = await ws_connect(
                    lambda: _Listener(dialect), url, websocket_handshake_timeout=timeout, max_frame_size=2**24
                )
        except TimeoutError:
            raise LoadError(f"no WebSocket handshake with {url} within {timeout} s") from None
        assert isinstance(listener, _Listener)
        return cls(listener, transport)

    @property
    def connected(self) -> bool:
        return not self._listener.disconnected.done()

    async def calls(self, calls: int, *, window: int, timeout: float, latencies: bool = False) -> RunResult:
        """Make ``calls`` calls, ``window`` at most in flight, within ``timeout`` seconds.

        With ``latencies`` (and ``window`` 1) each call's round trip is kept in
        ``latencies_ns``. A call left unanswered when the time runs out or the
        connection closes counts as an error.
        """
        listener = self._listener
        if latencies and window != 1:
            raise ValueError("latencies are measured one call at a time (window 1)")
        done = asyncio.get_running_loop().create_future()
        result = RunResult(calls)
        listener.done, listener.result, listener.calls, listener.sent = done, result, calls, 0
        listener.pending = set()
        listener.latencies = result.latencies_ns if latencies else None
        listener.on_message = listener.answer
        cpu, started = time.process_time(), _now()
        try:
            if not self.connected:
                return _unanswered(result)
            for _ in range(min(window, calls)):
                listener.send_next()
            try:
                async with asyncio.timeout(timeout):
                    await done
            except TimeoutError:
                result.timed_out = True
        finally:
            result.seconds = (_now() - started) / 1e9
            result.client_cpu_seconds = time.process_time() - cpu
            listener.on_message, listener.done, listener.latencies = listener._unexpected, None, None
        return _unanswered(result)

    async def message(self, payload: bytes, *, timeout: float) -> tuple[float, bytes | None]:
        """Send one message; give the seconds to its whole answer and that answer (None if none came)."""
        listener = self._listener
        loop = asyncio.get_running_loop()
        listener.one = one = loop.create_future()
        listener.on_message = listener.one_answer
        started = _now()
        try:
            if not self.connected:
                return 0.0, None
            self._transport.send(_TEXT, payload)
            try:
                async with asyncio.timeout(timeout):
                    answer = await one
            except TimeoutError:
                return (_now() - started) / 1e9, None
        finally:
            listener.on_message, listener.one = listener._unexpected, None
        if answer is None:
            return (_now() - started) / 1e9, None
        received_at, reply = answer
        return (received_at - started) / 1e9, reply

    def start_close(self) -> None:
        """Send the closing handshake's first frame; :meth:`wait_closed` waits for the rest."""
        if self.connected and not self._transport.is_close_frame_sent:
            self._transport.send_close(WSCloseCode.OK)

    async def wait_closed(self, timeout: float) -> bool:
        """Wait for the server to close; past ``timeout`` drop the socket. True if it closed in time."""
        try:
            async with asyncio.timeout(timeout):
                await self._listener.disconnected
            return True
        except TimeoutError:
            self._transport.disconnect(graceful=False)
            return False

    async def close(self, timeout: float = 5.0) -> bool:
        """Close with the WebSocket handshake, within ``timeout`` seconds."""
        self.start_close()
        return await self.wait_closed(timeout)


def _unanswered(result: RunResult) -> RunResult:
    result.errors += max(0, result.calls - result.answered)
    return result


@dataclass(slots=True)
class DeflateResult:
    """A run through the deflate client, and whether the server agreed to compress."""

    run: RunResult
    negotiated: bool
    extension: str


async def deflate_calls(url: str, dialect: Dialect, *, calls: int, window: int, timeout: float) -> DeflateResult:
    """Make ``calls`` calls with permessage-deflate offered, ``window`` in flight, within ``timeout`` seconds.

    Raises:
        LoadError: the connection could not be opened in time.
    """
    from picows.websockets.asyncio.client import connect

    result = RunResult(calls)
    request, answer_id = dialect.request, dialect.answer_id
    pending: set[int] = set()
    try:
        async with asyncio.timeout(timeout):
            ws = await connect(
                url, compression="deflate", proxy=None, ping_interval=None, max_size=2**24, open_timeout=timeout
            )
    except TimeoutError:
        raise LoadError(f"no WebSocket handshake with {url} within {timeout} s") from None
    extension = str(ws.response.headers.get("Sec-WebSocket-Extensions") or "")
    sent = 0

    async def send_next() -> None:
        nonlocal sent
        sent += 1
        pending.add(sent)
        await ws.send(request(sent).decode(), text=True)

    cpu, started = time.process_time(), _now()
    try:
        async with asyncio.timeout(timeout):
            for _ in range(min(window, calls)):
                await send_next()
            async for message in ws:
                n: Any
                try:
                    n = answer_id(_loads(message))
                except _DecodeError:
                    n = None
                if n is None:
                    result.errors += 1
                elif n != NO_ID:
                    if n in pending:
                        pending.discard(n)
                    else:
                        result.errors += 1
                result.answered += 1
                if sent < calls:
                    await send_next()
                elif result.answered >= calls:
                    break
    except TimeoutError:
        result.timed_out = True
    finally:
        result.seconds = (_now() - started) / 1e9
        result.client_cpu_seconds = time.process_time() - cpu
        try:
            async with asyncio.timeout(5):
                await ws.close()
        except (TimeoutError, OSError):
            pass
    return DeflateResult(_unanswered(result), "permessage-deflate" in extension, extension)
