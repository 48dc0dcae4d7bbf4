"""Calls sent with ``"stream": true``: their parts and progress reports, as their caller takes them.

:meth:`Client.stream <rpc_client.client.Client.stream>` and
``Client.call(..., progress=...)`` are built on :func:`streaming`, which sends
the request, files an :class:`~rpc_client.push.Inbox` for its id with the
correlation table, and hands the caller a :class:`StreamedCall` to read
from. However the caller leaves before the answer came (``break``, an
exception, cancellation, the timeout), ``rpc.cancel`` goes out for the call.

The call's timeout bounds the whole call, from sending it to its answer, but
it is only counted against the caller while it waits here: a consumer busy
with a part is never interrupted by it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable
from typing import Any, TypeVar

from jsonrpcclient import Ok

from .errors import CallTimeout, ProtocolError, StreamError
from .exchange import Exchange
from .messages import Params, Response, request_bytes, unwrap
from .push import Inbox, Progress, ProgressCallback, report

__all__ = ["Part", "StreamedCall", "parts", "request_with_progress", "streaming"]

T = TypeVar("T")


class Part:
    """One ``rpc.part``: a piece of a streamed result."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


class StreamedCall:
    """A call in flight with ``"stream": true``: what was pushed for it, in order, then its answer."""

    __slots__ = ("_deadline", "_future", "_inbox")

    def __init__(self, inbox: Inbox, future: asyncio.Future[Response], deadline: _Deadline) -> None:
        self._inbox = inbox
        self._future = future
        self._deadline = deadline

    async def next(self) -> Part | Progress | None:
        """The next part or progress report; None once the answer is in and all before it were taken.

        Raises:
            CallTimeout: nothing came within the call's timeout.
            ProtocolError: a notification this client cannot read.
        """
        pushed = await self._deadline.within("no answer to", self._inbox.get())
        if pushed is None:
            return None
        method, params = pushed
        if method == "rpc.progress":
            return Progress.from_params(params)
        if "value" not in params:
            raise ProtocolError(f"an rpc.part notification without a value: {short_json(params)}")
        return Part(params["value"])

    def response(self) -> Response:
        """The answer, once :meth:`next` has returned None.

        Raises:
            RpcConnectionError: the connection was lost, or the client closed, first.
            ProtocolError: the answer is not JSON-RPC 2.0.
        """
        return self._future.result()


class _Deadline:
    """One call's timeout, applied only to the waits inside this module."""

    def __init__(self, seconds: float | None, what: str, url: str) -> None:
        self.seconds = seconds
        self.when = None if seconds is None else asyncio.get_running_loop().time() + seconds
        self.what = what
        self.url = url

    async def within(self, stage: str, step: Awaitable[T]) -> T:
        try:
            async with asyncio.timeout_at(self.when) as scope:
                return await step
        except TimeoutError:
            if not scope.expired():
                raise
            raise CallTimeout(f"{stage} {self.what} within {self.seconds:g} s ({self.url})") from None


@contextlib.asynccontextmanager
async def streaming(
    exchange: Exchange, method: str, params: Params, timeout: float | None
) -> AsyncIterator[StreamedCall]:
    """Send ``method`` with ``"stream": true`` and hold its id open for the block.

    Raises:
        TypeError: the params are not JSON; nothing is sent.
        CallTimeout: no connection to send it on within the timeout.
        RpcConnectionError: no connection.
    """
    deadline = _Deadline(exchange.seconds(timeout), repr(method), exchange.url)
    id = exchange.pending.next_id()
    data = request_bytes(method, params, id, stream=True)
    link = await deadline.within("no connection to send", exchange.connection())
    inbox = Inbox()
    with exchange.pending.expecting([id], listener=inbox) as (future,):
        inbox.ends_with(future)
        try:
            link.write(data)
            yield StreamedCall(inbox, future, deadline)
        finally:
            if future.cancelled() or not future.done():
                exchange.cancel_on_server(link, [id])


async def parts(
    exchange: Exchange, method: str, params: Params, timeout: float | None, progress: ProgressCallback | None
) -> AsyncGenerator[Any, None]:
    """The parts of a streamed call, checked against its answer (see :meth:`Client.stream`)."""
    received = 0
    async with streaming(exchange, method, params, timeout) as call:
        while (pushed := await call.next()) is not None:
            if isinstance(pushed, Part):
                received += 1
                yield pushed.value
            else:
                await report(progress, pushed)
        response = call.response()
    count = unwrap(response)
    if type(count) is not int or count != received:
        if type(count) is int:
            why = "parts were lost, or the method does not stream" if count > received else "the server miscounted"
        else:
            why = "that is not a count of parts: does the method stream?"
        raise StreamError(f"the streamed call {method!r} answered {short_json(count)} after {received} part(s); {why}")


async def request_with_progress(
    exchange: Exchange, method: str, params: Params, timeout: float | None, progress: ProgressCallback
) -> Response:
    """A call that reports its progress to ``progress``; its answer as it would be without streaming."""
    gathered: list[Any] = []
    async with streaming(exchange, method, params, timeout) as call:
        while (pushed := await call.next()) is not None:
            if isinstance(pushed, Part):
                gathered.append(pushed.value)
            else:
                await report(progress, pushed)
        response = call.response()
    if gathered and isinstance(response, Ok):
        # The method streamed: answer what it answers without "stream", the list of its parts.
        if response.result != len(gathered):
            raise StreamError(
                f"the streamed call {method!r} answered {short_json(response.result)} "
                f"after {len(gathered)} part(s); parts were lost"
            )
        return Ok(gathered, response.id)
    return response


def short_json(value: Any, limit: int = 80) -> str:
    """A value as JSON, cut to ``limit`` characters, for messages."""
    try:
        text = json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
