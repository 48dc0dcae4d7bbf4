"""The asyncio client: one connection, many concurrent calls, each answer to its own caller.

``jsonrpcclient`` builds the requests and parses the answers; a
:class:`~rpc_client.transport.Transport` (WebSocket by default) carries them;
:class:`~rpc_client.pending.PendingCalls` matches them by id. One reader task
per connection feeds every message it receives to that table.

Connection loss, and reconnecting (``reconnect=True``):

- Calls in flight when the connection drops fail at once with
  :class:`ConnectionLost` and are **not** re-sent: the server may or may not
  have run them, and a call need not be idempotent. Retry them yourself if
  they are safe to repeat.
- With ``reconnect=True`` the client then reconnects in the background with
  exponential backoff and jitter (:class:`~rpc_client.backoff.Backoff`);
  calls made meanwhile wait for the new connection within their own timeout.
- With ``reconnect=False`` (the default) calls after a drop fail at once with
  :class:`ConnectionLost`.
- The first connection (``async with`` / :meth:`Client.connect`) is not
  retried: a wrong URL or a server that is not up fails fast, with
  :class:`ConnectError`.
- Subscriptions end with the connection (their iteration raises the
  connection error); subscribe again once reconnected.

Server push (the server's ``rpc.*`` convention, see ``rpc_server/session.py``):

- :meth:`Client.stream` and ``call(..., progress=...)`` send ``"stream": true``
  and take the ``rpc.part`` / ``rpc.progress`` notifications for their id;
  :meth:`Client.subscribe` takes the ``rpc.event`` notifications of its
  subscription. The reader routes them through
  :class:`~rpc_client.pending.PendingCalls`, as it does answers.
- Cancellation is ordinary task cancellation: when the task awaiting a call
  (or iterating a stream) is cancelled, when the call times out, or when a
  stream is left before its end, the client sends ``rpc.cancel`` with that id
  by itself. It never waits for that send and never fails because of it: it
  goes out in the background, on the connection the call was sent on, if that
  is still open.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
from collections.abc import AsyncGenerator, Callable, Iterable
from types import TracebackType
from typing import Any

from . import streams
from .backoff import Backoff
from .batch import Batch
from .errors import (
    CallTimeout,
    ClientClosedError,
    ConnectError,
    ConnectionLost,
    ProtocolError,
    RpcClientError,
    RpcConnectionError,
)
from .messages import Params, batch_pair, cancel_message, dumps, message, outcome_value, params_from, unwrap
from .pending import PendingCalls, Response
from .push import DEFAULT_EVENT_BUFFER, Inbox, ProgressCallback
from .subscription import Subscription
from .transport import Connector, Transport
from .websocket import connect as websocket_connect

__all__ = ["DEFAULT_CONNECT_TIMEOUT", "DEFAULT_TIMEOUT", "Client"]

logger = logging.getLogger("rpc_client")

DEFAULT_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 10.0
# How long close() lets rpc.cancel messages still being sent go out before it closes the connection.
_FLUSH_TIMEOUT = 1.0


class Client:
    """A JSON-RPC 2.0 client on one connection, for many concurrent calls.

    Use as ``async with Client(url) as client:``; then ``await client.call(...)``
    from as many tasks as you like.

    Args:
        url: the server's endpoint, e.g. ``ws://127.0.0.1:8000/ws``.
        timeout: the default for every call, in seconds, from the call to its
            answer (waiting for a connection included); None waits forever.
        connect_timeout: how long opening a connection may take, in seconds.
        reconnect: reconnect when the connection drops (see the module docstring).
        backoff: the delays between reconnection attempts.
        connector: opens connections; WebSocket by default
            (:func:`rpc_client.websocket.connect`), an in-memory one in tests.
        send_cancel: send ``rpc.cancel`` for a call its caller abandoned
            (see the module docstring). Turn it off for a server that does not
            know ``rpc.cancel`` and answers it with an error.
        on_unmatched_error: called with each error response whose id is null
            (the server could not read a message, so no call can be matched
            to it by the specification's rules); it is logged either way.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float | None = DEFAULT_TIMEOUT,
        connect_timeout: float | None = DEFAULT_CONNECT_TIMEOUT,
        reconnect: bool = False,
        backoff: Backoff | None = None,
        connector: Connector | None = None,
        send_cancel: bool = True,
        on_unmatched_error: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.reconnect = reconnect
        self.backoff = backoff if backoff is not None else Backoff()
        self._connector: Connector = connector if connector is not None else websocket_connect
        self.send_cancel = send_cancel
        self._pending = PendingCalls(on_orphan=self._end_orphan, on_unmatched_error=on_unmatched_error)
        self._background: set[asyncio.Task[None]] = set()  # rpc.cancel and the like, on their way out
        self._transport: Transport | None = None
        self._reader: asyncio.Task[None] | None = None
        self._reconnecting: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()  # set, then replaced, whenever the connection comes or goes
        self._not_connected: tuple[type[RpcConnectionError], str] = (
            RpcConnectionError,
            f"the client is not connected to {url}: use 'async with Client(url)' or 'await client.connect()' first",
        )
        self._closed = False

    # -- state -----------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether a connection is open now."""
        return self._transport is not None

    @property
    def in_flight(self) -> int:
        """Calls sent and not yet answered (a batch counts each of its calls)."""
        return len(self._pending)

    # -- lifecycle -------------------------------------------------------------

    async def connect(self) -> None:
        """Open the connection (``async with`` does it for you); a no-op when open.

        Raises:
            ConnectError: it cannot be opened.
            ClientClosedError: the client is closed.
        """
        if self._closed:
            raise ClientClosedError(f"the client for {self.url} is closed")
        if self._transport is not None:
            return
        transport = await self._open()
        # The client may have been closed, or connected by another task, while this one was opening.
        if self._closed or self._transport is not None:
            await transport.close()
            if self._closed:
                raise ClientClosedError(f"the client for {self.url} was closed while connecting")
            return
        self._attach(transport)

    async def close(self) -> None:
        """Close the connection; calls still waiting fail with :class:`ClientClosedError`."""
        if self._closed:
            return
        self._closed = True
        if self._reconnecting is not None:
            await _cancel_and_wait(self._reconnecting)
        self._pending.fail_all(ClientClosedError(f"the client for {self.url} was closed before the answer came"))
        self._wake()
        if self._background:
            # Let rpc.cancel for the calls just abandoned (Ctrl-C) reach the server before the close does.
            _, still_sending = await asyncio.wait(self._background, timeout=_FLUSH_TIMEOUT)
            for task in still_sending:
                task.cancel()
        transport, self._transport = self._transport, None
        if transport is not None:
            await transport.close()
        if self._reader is not None:
            await _cancel_and_wait(self._reader)

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- calls -----------------------------------------------------------------

    async def call(
        self,
        method: str,
        *args: Any,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call ``method`` and return its result.

        ``call("multiply", 3, 4)`` sends params by position, ``call("subtract",
        minuend=42, subtrahend=23)`` by name. For a param named ``timeout`` or
        ``progress``, use :meth:`request`.

        Cancelling the task that awaits the call, or its timeout, sends
        ``rpc.cancel`` for it (see the module docstring).

        Args:
            method: the method's name.
            args: params by position.
            timeout: seconds to wait for the answer; None for the client's default.
            progress: ``callback(done, total, message)``, plain or async, called
                in this task for each progress report, before the result comes.
                The request then carries ``"stream": true``; if the method
                streams parts, they are gathered and returned as one list, as
                without it (except that a stream of no parts answers 0, not []).
            kwargs: params by name.

        Raises:
            TypeError: params given both by position and by name, or not JSON
                (also ValueError for NaN or infinity); nothing is sent.
            RpcError: the server answered with an error.
            CallTimeout: no answer within the timeout.
            RpcConnectionError: no connection, or it was lost while waiting.
            ProtocolError: the server's answer (or a progress report) is not JSON-RPC 2.0
                as this client reads it; StreamError, when parts were lost.
        """
        return unwrap(await self.request(method, params_from(args, kwargs), timeout=timeout, progress=progress))

    async def discover(self, *, timeout: float | None = None) -> dict[str, Any]:
        """The server's OpenRPC document (``rpc.discover``): the methods this caller may call, and its topics."""
        document: dict[str, Any] = await self.call("rpc.discover", timeout=timeout)
        return document

    async def request(
        self,
        method: str,
        params: Params = None,
        *,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> Response:
        """Call ``method`` with params as they go on the wire; return the answer as a value.

        Returns jsonrpcclient's ``Ok(result, id)`` or ``Error(code, message, data, id)``
        rather than raising for a JSON-RPC error. Raises as :meth:`call` does otherwise.
        """
        if progress is not None:
            return await streams.request_with_progress(self, method, params, timeout, progress)
        id = self._pending.next_id()
        text = dumps(message(method, params, id))
        responses = await self._exchange(text, [id], f"{method!r}", timeout)
        outcome = responses[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def stream(
        self,
        method: str,
        *args: Any,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
        **kwargs: Any,
    ) -> AsyncGenerator[Any, None]:
        """Call a method that streams its result, and yield each part as it arrives.

        ``async for part in client.stream("count", 5): ...``. The request carries
        ``"stream": true``; the iteration ends when the call's answer comes,
        after every part pushed before it. Leaving the loop early (``break``,
        an exception, cancellation) sends ``rpc.cancel`` for the call: at once
        on cancellation or an exception. After a ``break`` it goes out only when
        the iterator is closed, which does not happen while a reference to it is
        held: leave with ``break`` only inside ``async with contextlib.aclosing(
        client.stream(...)) as parts:``, for the ``rpc.cancel`` to go out at once.

        Args:
            method: the method's name.
            args: params by position.
            timeout: seconds for the whole call, from sending it to its answer,
                counted while this iterator waits; None for the client's default.
            progress: as for :meth:`call`.
            kwargs: params by name.

        Raises:
            RpcError: the call failed, after the parts that came before the error were yielded.
            StreamError: the answer is not the number of parts received (a part
                was lost, or the method does not stream).
            CallTimeout, RpcConnectionError, ProtocolError, TypeError: as for :meth:`call`.
        """
        return streams.parts(self, method, params_from(args, kwargs), timeout, progress)

    def subscribe(
        self,
        topic: str,
        params: Params = None,
        /,
        *,
        timeout: float | None = None,
        buffer: int = DEFAULT_EVENT_BUFFER,
        **named: Any,
    ) -> Subscription:
        """Subscribe to a topic, for the duration of an ``async with`` block.

        ``async with client.subscribe("clock", interval=0.5) as events:
        async for event in events: print(event.data)``. Entering sends
        ``rpc.subscribe``; leaving sends ``rpc.unsubscribe``, and waits for its
        answer unless the block ends by cancellation or the connection is gone.

        Args:
            topic: the topic's name.
            params: the topic's params as they go on the wire (a dict or a list),
                for names that clash with this method's own; else give them by name.
            timeout: seconds for the subscribe and unsubscribe calls; None for the client's default.
            buffer: the events kept for a consumer slower than the server;
                past it the oldest are dropped and counted in the next event's ``dropped``.
            named: the topic's params by name.

        Raises:
            TypeError: params given both ways.
            ValueError: ``buffer`` is less than 1.
        """
        if params is not None and named:
            raise TypeError("give the topic's params as one dict or list, or by name, not both")
        return Subscription(self, topic, named or params, timeout=timeout, buffer=buffer)

    async def notify(self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> None:
        """Send a notification: no id, and no answer is awaited or will come.

        Returns once the message is handed to the connection; the timeout bounds
        the wait for a connection and for room to send. Raises as :meth:`call`
        does, except that there is no answer to fail.
        """
        await self.notification(method, params_from(args, kwargs), timeout=timeout)

    async def notification(self, method: str, params: Params = None, *, timeout: float | None = None) -> None:
        """:meth:`notify`, with params as they go on the wire (a list, a dict, or None)."""
        text = dumps(message(method, params, None))
        await self._exchange(text, [], f"notification {method!r}", timeout)

    async def batch_call(self, calls: Iterable[tuple[str, Params]], *, timeout: float | None = None) -> list[Any]:
        """Send ``(method, params)`` pairs as one JSON-RPC batch; return their outcomes in that order.

        Like ``asyncio.gather(..., return_exceptions=True)``: each item is the
        call's result, or the :class:`RpcError` (or :class:`ProtocolError`) it
        failed with, whatever order the server answered in. A batch is answered
        as a whole, so a timeout or a lost connection raises instead.

        Raises:
            TypeError: a call is not ``(method, params)``, or its params are not JSON; nothing is sent.
            CallTimeout: no answer within the timeout.
            RpcConnectionError: no connection, or it was lost while waiting.
        """
        return [outcome_value(outcome) for outcome in await self.batch_request(calls, timeout=timeout)]

    async def batch_request(
        self, calls: Iterable[tuple[str, Params]], *, timeout: float | None = None
    ) -> list[Response | ProtocolError]:
        """:meth:`batch_call`, with each answer as jsonrpcclient's ``Ok`` or ``Error`` (as :meth:`request`)."""
        return await self._send_batch([(*batch_pair(call), True) for call in calls], timeout)

    def batch(self, *, timeout: float | None = None) -> Batch:
        """A batch to fill in an ``async with`` block; it is sent when the block ends.

        ``async with client.batch() as batch: product = batch.call("multiply", 3, 4)``,
        then ``product.result()`` after the block.
        """
        return Batch(self, timeout)

    # -- internals: push ---------------------------------------------------------

    def _cancel_on_server(self, transport: Transport, ids: list[int]) -> None:
        """Tell the server to stop calls nobody waits for any more, without waiting or failing."""
        if ids and self.send_cancel:
            self._send_in_background(transport, dumps(cancel_message(ids)), f"rpc.cancel for {ids}")

    def _end_orphan(self, subscription: Any) -> None:
        """End a subscription whose subscribe call was abandoned before its answer came."""
        if self._transport is not None:
            text = dumps(message("rpc.unsubscribe", {"subscription": subscription}, None))
            self._send_in_background(self._transport, text, f"rpc.unsubscribe for {subscription!r}")

    def _send_in_background(self, transport: Transport, text: str, what: str) -> None:
        # Only on the connection the call was made on: a new one's server never heard of its id.
        if self._closed or transport is not self._transport:
            return
        task = asyncio.get_running_loop().create_task(_send_quietly(transport, text, what))
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    # -- internals -------------------------------------------------------------

    def _seconds(self, timeout: float | None) -> float | None:
        seconds = self.timeout if timeout is None else timeout
        return None if seconds is not None and math.isinf(seconds) else seconds

    async def _send_batch(
        self, entries: list[tuple[str, Params, bool]], timeout: float | None
    ) -> list[Response | ProtocolError]:
        if not entries:
            return []  # an empty array is an invalid request: send nothing
        ids: list[int] = []
        messages = []
        for method, params, expects_answer in entries:
            id = self._pending.next_id() if expects_answer else None
            messages.append(message(method, params, id))
            if id is not None:
                ids.append(id)
        text = dumps(messages)
        outcomes = await self._exchange(text, ids, f"a batch of {len(entries)}", timeout)
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, ProtocolError):
                raise outcome  # the connection, not this member: the whole batch fails
        return outcomes  # type: ignore[return-value]

    async def _exchange(
        self,
        text: str,
        ids: list[int],
        what: str,
        timeout: float | None,
        listener: Inbox | None = None,
        subscription: bool = False,
    ) -> list[Response | BaseException]:
        """Send ``text`` and await the answers to ``ids`` (none for notifications), within the timeout.

        If the wait is cancelled (by the caller, or by the timeout), the calls
        not yet answered are cancelled on the server too.
        """
        seconds = self._seconds(timeout)
        deadline = asyncio.timeout(seconds)
        stage = "no connection to send"
        try:
            async with deadline:
                transport = await self._connection()
                stage = "no answer to"
                if not ids:
                    await transport.send(text)
                    return []
                with self._pending.expecting(ids, listener=listener, subscription=subscription) as futures:
                    try:
                        await transport.send(text)
                        if len(futures) == 1:
                            return [await futures[0]]
                        return await asyncio.gather(*futures, return_exceptions=True)
                    except asyncio.CancelledError:
                        # Awaiting a future and being cancelled cancels the future too: that is no answer.
                        unanswered = [id for id, f in zip(ids, futures, strict=True) if f.cancelled() or not f.done()]
                        self._cancel_on_server(transport, unanswered)
                        raise
        except TimeoutError:
            if not deadline.expired():
                raise
            raise CallTimeout(f"{stage} {what} within {seconds:g} s ({self.url})") from None

    async def _connection(self) -> Transport:
        while True:
            if self._closed:
                raise ClientClosedError(f"the client for {self.url} is closed")
            if self._transport is not None:
                return self._transport
            if self._reconnecting is None:
                cls, message = self._not_connected
                raise cls(message)
            await self._changed.wait()

    async def _open(self) -> Transport:
        try:
            async with asyncio.timeout(self.connect_timeout):
                return await self._connector(self.url)
        except RpcClientError:
            raise
        except TimeoutError:
            within = "" if self.connect_timeout is None else f" within {self.connect_timeout:g} s"
            raise ConnectError(f"cannot connect to {self.url}: no connection{within}") from None
        except OSError as exc:
            raise ConnectError(f"cannot connect to {self.url}: {exc.strerror or exc}") from None

    def _attach(self, transport: Transport) -> None:
        self._transport = transport
        self._reader = asyncio.create_task(self._read(transport), name=f"rpc_client reader for {self.url}")
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def _read(self, transport: Transport) -> None:
        """The connection's one reader: every message it receives goes to the correlation table."""
        try:
            async for message in transport:
                try:
                    decoded = json.loads(message)
                except ValueError:
                    logger.warning("dropping a message that is not JSON: %.200r", message)
                    continue
                try:
                    self._pending.resolve(decoded)
                except Exception:
                    # A user's callback (on_unmatched_error) failing is no fault of the connection.
                    logger.exception("a callback failed on a message from %s; reading on", self.url)
        except Exception:
            # A failing transport must still fail the calls waiting on it, never leave them hanging.
            logger.exception("the connection to %s failed", self.url)
        self._lost(transport)
        await transport.close()

    def _lost(self, transport: Transport) -> None:
        if self._transport is not transport or self._closed:
            return
        self._transport = None
        reason = transport.close_reason
        self._pending.fail_all(
            ConnectionLost(
                f"the connection to {self.url} was lost before the answer came ({reason}); the call was not re-sent"
            )
        )
        if self.reconnect:
            logger.warning("the connection to %s was lost (%s); reconnecting", self.url, reason)
            self._reconnecting = asyncio.create_task(self._reconnect(), name=f"rpc_client reconnect to {self.url}")
        else:
            self._not_connected = (
                ConnectionLost,
                f"the connection to {self.url} was lost ({reason}) and the client does not reconnect (reconnect=False)",
            )
        self._wake()

    async def _reconnect(self) -> None:
        for attempt, delay in enumerate(self.backoff.delays(), 1):
            await asyncio.sleep(delay)
            try:
                transport = await self._open()
            except ConnectError as exc:
                logger.info("reconnection attempt %d failed: %s", attempt, exc)
                continue
            except Exception:
                logger.exception("reconnection attempt %d failed", attempt)
                continue
            logger.info("reconnected to %s after %d attempt(s)", self.url, attempt)
            self._reconnecting = None
            self._attach(transport)
            return


async def _send_quietly(transport: Transport, text: str, what: str) -> None:
    try:
        await transport.send(text)
    except Exception as exc:  # best effort: the connection may be going, which ends the call anyway
        logger.debug("could not send %s: %s", what, exc)


async def _cancel_and_wait(task: asyncio.Task[Any]) -> None:
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # we are being cancelled ourselves: let it through
    except Exception:
        logger.exception("a background task of the client failed")
