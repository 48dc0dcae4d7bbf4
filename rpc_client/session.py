"""One client's connection and the calls on it: connecting, reconnecting, sending, matching answers.

The :class:`~rpc_client.client.Client` is the public face; this is its engine,
and the :class:`~rpc_client.exchange.Exchange` it hands to batches, streams
and subscriptions. The connection is a :class:`~rpc_client.transport.Link`:
a call writes its request without an await and waits on one future, which the
link's reader callback settles through the correlation table
(:class:`~rpc_client.pending.PendingCalls`). A call's timeout is one timer on
the loop, cancelled when the answer comes.

What happens when the connection drops is described in :mod:`rpc_client.client`.
"""

from __future__ import annotations

import asyncio
import collections
import copy
import logging
import math
from collections.abc import Callable
from typing import Any

from .backoff import Backoff
from .credentials import Credentials
from .errors import (
    AuthenticationError,
    CallTimeout,
    ClientClosedError,
    ConnectError,
    ConnectionLost,
    ProtocolError,
    RpcClientError,
    RpcConnectionError,
)
from .messages import (
    Members,
    NestedTooDeep,
    Params,
    Response,
    batch_messages,
    cancel_message,
    decode,
    encode,
    notification_bytes,
    request_bytes,
)
from .pending import Listener, PendingCalls
from .transport import Connector, Link, as_link

__all__ = ["Session"]

logger = logging.getLogger("rpc_client")


class Session:
    """The connection of one client and its calls; an :class:`~rpc_client.exchange.Exchange`.

    Args: as :class:`~rpc_client.client.Client`'s, with ``connect_timeout`` already settled.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout: float | None,
        connect_timeout: float | None,
        reconnect: bool,
        backoff: Backoff,
        connector: Connector,
        credentials: Credentials | None,
        send_cancel: bool,
        on_unmatched_error: Callable[[dict[str, Any]], None] | None,
    ) -> None:
        self.url = url
        self.timeout = timeout
        self.connect_timeout = connect_timeout
        self.reconnect = reconnect
        self.backoff = backoff
        self.connector = connector
        self.credentials = credentials
        self._token_sent: str | None = None  # the token of the latest connection attempt
        self.send_cancel = send_cancel
        self.pending = PendingCalls(on_orphan=self._end_orphan, on_unmatched_error=on_unmatched_error)
        self._deadlines = _Deadlines(url)
        self.link: Link | None = None
        self.loop: asyncio.AbstractEventLoop | None = None  # the loop the connection lives on, once connected
        self._reconnecting: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()  # set, then replaced, whenever the connection comes or goes
        # What a call gets when there is no connection and none is coming (a copy: raised in many tasks).
        self._not_connected: RpcConnectionError = RpcConnectionError(
            f"the client is not connected to {url}: use 'async with Client(url)' or 'await client.connect()' first"
        )
        self.closed = False

    # -- lifecycle -------------------------------------------------------------

    async def connect(self) -> None:
        """Open the connection; a no-op when open (see :meth:`Client.connect <rpc_client.client.Client.connect>`)."""
        if self.closed:
            raise ClientClosedError(f"the client for {self.url} is closed")
        if self.link is not None:
            return
        link = await self._open()
        # The client may have been closed, or connected by another task, while this one was opening.
        if self.closed or self.link is not None:
            await link.close()
            if self.closed:
                raise ClientClosedError(f"the client for {self.url} was closed while connecting")
            return
        self._attach(link)

    async def close(self) -> None:
        """Close the connection; calls still waiting fail with :class:`ClientClosedError`."""
        if self.closed:
            return
        self.closed = True
        self._deadlines.stop()
        if self._reconnecting is not None:
            await _cancel_and_wait(self._reconnecting)
        self.pending.fail_all(ClientClosedError(f"the client for {self.url} was closed before the answer came"))
        self._wake()
        link, self.link = self.link, None
        if link is not None:
            # What was written before (rpc.cancel for calls abandoned by Ctrl-C) goes out before the close.
            await link.close()

    # -- calls -----------------------------------------------------------------

    def seconds(self, timeout: float | None) -> float | None:
        seconds = self.timeout if timeout is None else timeout
        return None if seconds is not None and math.isinf(seconds) else seconds

    async def request(self, method: str, params: Params, timeout: float | None) -> Response:
        """One call: its answer as ``Ok`` or ``Error``.

        Raises:
            TypeError, ValueError: the request cannot be encoded; nothing is sent.
            CallTimeout, RpcConnectionError: as :meth:`exchange`.
        """
        link = self.link
        if link is None:  # connecting, or reconnecting: the general way waits for it
            id = self.pending.next_id()
            data = request_bytes(method, params, id)
            (outcome,) = await self.exchange(data, [id], repr(method), timeout)
            if isinstance(outcome, BaseException):
                raise outcome
            return outcome
        # The fast way: no task, no context manager, one future and (with the default timeout) no timer.
        id, future, timer = self.send_call(link, method, params, timeout)
        try:
            return await future
        except BaseException:
            # Cancelled, or timed out: if the call still waited, the server may stop it.
            if self.pending.discard(id, future):
                self.cancel_on_server(link, [id])
            raise
        finally:
            if timer is not None:
                timer.cancel()

    def begin(self, method: str, params: Params, timeout: float | None, answer: Any) -> Callable[[], None] | None:
        """Send one call now, with no coroutine, from the loop's thread (the loop need not be running).

        For the blocking facade, whose thread runs the loop only until the answer comes:
        ``answer`` is set by the very callback that reads the answer (see
        :meth:`PendingCalls.expect`). Returns what the caller must call once it has the
        answer or leaves without it (timed out, interrupted): it cancels the call's timer,
        and the call on the server if it still runs. None when there is no connection
        (take :meth:`request`).

        Raises:
            TypeError, ValueError: the request cannot be encoded; nothing is sent.
        """
        link = self.link
        if link is None:
            return None
        id, future, timer = self.send_call(link, method, params, timeout, answer)
        return lambda: self.let_go(link, id, timer, future)

    def send_call(
        self, link: Link, method: str, params: Params, timeout: float | None, answer: Any = None
    ) -> tuple[int, asyncio.Future[Response], asyncio.TimerHandle | None]:
        """Send one call on ``link`` now; its id, the future of its answer, and its own timer if it has one.

        The caller awaits the future and, if it leaves without the answer, calls :meth:`let_go`.

        Args:
            answer: where the answer goes, if not a new future (see :meth:`PendingCalls.expect`).

        Raises:
            TypeError, ValueError: the request cannot be encoded; nothing is sent.
        """
        id = self.pending.next_id()
        data = request_bytes(method, params, id)
        pending = self.pending
        future = pending.expect(id, answer)
        try:
            link.write(data)
        except BaseException:
            pending.discard(id, future)
            raise
        timer = None
        loop: asyncio.AbstractEventLoop = self.loop  # type: ignore[assignment]  # connected, so set
        if timeout is None:
            if self.timeout is not None:
                self._deadlines.add(future, method, self.timeout, loop)
        elif timeout != math.inf:
            timer = loop.call_at(loop.time() + timeout, _expire, future, method, timeout, self.url)
        return id, future, timer

    def let_go(self, link: Link, id: int, timer: asyncio.TimerHandle | None, future: asyncio.Future[Response]) -> None:
        """A call of :meth:`send_call` is over: its timer goes, and if it was left unanswered, rpc.cancel."""
        if timer is not None:
            timer.cancel()
        if self.pending.discard(id, future):  # cancelled or timed out, not answered
            self.cancel_on_server(link, [id])

    async def notify(self, method: str, params: Params, timeout: float | None) -> None:
        """Send a notification; wait only for a connection, and for room to send."""
        data = notification_bytes(method, params)
        link = self.link
        if link is None or link.writing_paused:
            await self.exchange(data, [], f"notification {method!r}", timeout)
            return
        link.write(data)

    async def send_batch(
        self, members: Members, timeout: float | None, *, raw: bool = False
    ) -> list[Response | ProtocolError]:
        if not members:
            return []  # an empty array is an invalid request: send nothing
        ids = self.pending.next_ids(members.calls)
        data = encode(batch_messages(members, ids))
        what = f"a batch of {len(members)}"
        link = self.link
        if link is None or not ids:  # waiting for a connection, or nothing to wait for: the general way
            outcomes = await self.exchange(data, list(ids), what, timeout)
            for outcome in outcomes:
                if isinstance(outcome, BaseException) and not isinstance(outcome, ProtocolError):
                    raise outcome  # the connection, not this member: the whole batch fails
            return outcomes  # type: ignore[return-value]
        # The fast way: one future for the whole batch.
        pending = self.pending
        future = pending.expect_batch(ids, raw=raw)
        try:
            link.write(data)
        except BaseException:
            pending.discard_batch(future)
            raise
        seconds = self.seconds(timeout)
        deadline = asyncio.timeout(seconds)
        try:
            async with deadline:
                return await future
        except BaseException as exc:
            self.cancel_on_server(link, pending.discard_batch(future))
            if isinstance(exc, TimeoutError) and deadline.expired():
                raise CallTimeout(f"no answer to {what} within {seconds:g} s ({self.url})") from None
            raise

    async def exchange(
        self,
        data: bytes,
        ids: list[int],
        what: str,
        timeout: float | None,
        *,
        listener: Listener | None = None,
        subscription: bool = False,
    ) -> list[Response | BaseException]:
        """Send ``data`` and await the answers to ``ids`` (none for notifications), within the timeout.

        If the wait is cancelled (by the caller, or by the timeout), the calls
        not yet answered are cancelled on the server too.
        """
        seconds = self.seconds(timeout)
        deadline = asyncio.timeout(seconds)
        stage = "no connection to send"
        try:
            async with deadline:
                link = await self.connection()
                if not ids:
                    await link.drained()
                    link.write(data)
                    return []
                stage = "no answer to"
                with self.pending.expecting(ids, listener=listener, subscription=subscription) as futures:
                    try:
                        link.write(data)
                        if len(futures) == 1:
                            return [await futures[0]]
                        return await asyncio.gather(*futures, return_exceptions=True)
                    except asyncio.CancelledError:
                        # Awaiting a future and being cancelled cancels the future too: that is no answer.
                        unanswered = [id for id, f in zip(ids, futures, strict=True) if f.cancelled() or not f.done()]
                        self.cancel_on_server(link, unanswered)
                        raise
        except TimeoutError:
            if not deadline.expired():
                raise
            raise CallTimeout(f"{stage} {what} within {seconds:g} s ({self.url})") from None

    async def connection(self) -> Link:
        while True:
            if self.closed:
                raise ClientClosedError(f"the client for {self.url} is closed")
            if self.link is not None:
                return self.link
            if self._reconnecting is None:
                raise copy.copy(self._not_connected)
            await self._changed.wait()

    # -- what goes out on its own ------------------------------------------------

    def cancel_on_server(self, link: Link, ids: list[int]) -> None:
        if ids and self.send_cancel:
            self.send_in_background(link, cancel_message(ids), f"rpc.cancel for {ids}")

    def send_in_background(self, link: Link, data: bytes, what: str) -> None:
        # Only on the connection the call was made on: a new one's server never heard of its id.
        if self.closed or link is not self.link:
            return
        try:
            link.write(data)
        except RpcConnectionError as exc:  # best effort: the connection is going, which ends the call anyway
            logger.debug("could not send %s: %s", what, exc)

    def _end_orphan(self, subscription: Any) -> None:
        """End a subscription whose subscribe call was abandoned before its answer came."""
        if self.link is not None:
            data = notification_bytes("rpc.unsubscribe", {"subscription": subscription})
            self.send_in_background(self.link, data, f"rpc.unsubscribe for {subscription!r}")

    # -- the connection ------------------------------------------------------------

    async def _open(self, refused: tuple[str | None, AuthenticationError] | None = None) -> Link:
        """Open a connection, with the credential of this moment.

        Args:
            refused: the token refused last, and its refusal: raised again, without a
                connection attempt, if the token provider gives that token again.
        """
        try:
            async with asyncio.timeout(self.connect_timeout):
                options: dict[str, Any] = {}
                if self.credentials is not None:
                    token = await self._token()
                    if refused is not None and token == refused[0]:
                        raise _Unchanged(refused[1])
                    self._token_sent = token
                    options = self.credentials.options(token)
                return as_link(await self.connector(self.url, **options))
        except (RpcClientError, _Unchanged):
            raise
        except TimeoutError:
            raise ConnectError(
                f"cannot connect to {self.url}: no WebSocket connection within {self.connect_timeout:g} s"
            ) from None
        except OSError as exc:
            raise ConnectError(f"cannot connect to {self.url}: {exc.strerror or exc}") from None

    async def _token(self) -> str | None:
        assert self.credentials is not None
        try:
            return await self.credentials.token()
        except Exception as exc:
            raise ConnectError(
                f"cannot connect to {self.url}: the token provider failed ({type(exc).__name__}: {exc})"
            ) from exc

    def _attach(self, link: Link) -> None:
        self.loop = asyncio.get_running_loop()
        self.link = link
        link.start(self._on_message, lambda: self._lost(link))
        self._wake()

    def _wake(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def _on_message(self, message: bytes | str) -> None:
        """Every message received goes to the correlation table."""
        try:
            decoded = decode(message)
        except NestedTooDeep as exc:
            self._too_deep(exc)
            return
        except ValueError:
            logger.warning("dropping a message that is not JSON: %.200r", message)
            return
        self._resolve(decoded)

    def _resolve(self, decoded: Any) -> None:
        try:
            self.pending.resolve(decoded)
        except Exception:
            # A user's callback (on_unmatched_error) failing is no fault of the connection.
            logger.exception("a callback failed on a message from %s; reading on", self.url)

    def _too_deep(self, exc: NestedTooDeep) -> None:
        """A message too deep to read fails the calls it answers, and no other (review F1)."""
        logger.warning("%s from %s; the calls it answers fail: %r", exc, self.url, exc.ids)
        for id in exc.ids:
            self.pending.fail_answered(id, ProtocolError(f"the answer to request id {id!r} cannot be read: {exc}"))
        if exc.readable:
            self._resolve(exc.readable)

    def _lost(self, link: Link) -> None:
        if self.link is not link or self.closed:
            return
        self.link = None
        reason = link.close_reason
        self.pending.fail_all(
            ConnectionLost(
                f"the connection to {self.url} was lost before the answer came ({reason}); the call was not re-sent"
            )
        )
        if self.reconnect:
            logger.warning("the connection to %s was lost (%s); reconnecting", self.url, reason)
            self._reconnecting = asyncio.get_running_loop().create_task(
                self._reconnect(), name=f"rpc_client reconnect to {self.url}"
            )
        else:
            self._not_connected = ConnectionLost(
                f"the connection to {self.url} was lost ({reason}) and the client does not reconnect (reconnect=False)"
            )
        self._wake()

    async def _reconnect(self) -> None:
        # A refused credential would be refused again: it is retried only if the provider gives another.
        refused: tuple[str | None, AuthenticationError] | None = None
        for attempt, delay in enumerate(self.backoff.delays(), 1):
            await asyncio.sleep(delay)
            try:
                link = await self._open(refused)
            except _Unchanged as unchanged:
                self._stop_reconnecting(unchanged.refusal, "the token provider gave the refused token again")
                return
            except AuthenticationError as exc:
                if self.credentials is None or not self.credentials.refreshes:
                    self._stop_reconnecting(exc, "the same credential would be refused again")
                    return
                refused = (self._token_sent, exc)
                logger.warning("reconnection attempt %d refused (%s); asking the token provider again", attempt, exc)
                continue
            except ConnectError as exc:
                logger.info("reconnection attempt %d failed: %s", attempt, exc)
                continue
            except Exception:
                logger.exception("reconnection attempt %d failed", attempt)
                continue
            logger.info("reconnected to %s after %d attempt(s)", self.url, attempt)
            self._reconnecting = None
            self._attach(link)
            return

    def _stop_reconnecting(self, refusal: AuthenticationError, why: str) -> None:
        """The server will not let the client back in: calls waiting for a connection, and later ones, fail with it."""
        logger.warning("%s; the client stops reconnecting (%s)", refusal, why)
        self._reconnecting = None
        self._not_connected = refusal
        self._wake()


class _Unchanged(Exception):
    """The token provider gave the token that was just refused: it is not sent again."""

    def __init__(self, refusal: AuthenticationError) -> None:
        super().__init__(str(refusal))
        self.refusal = refusal


class _Deadlines:
    """The timeouts of calls made with the client's default: one loop timer for all of them.

    Calls made one after another with the same timeout expire in the order
    they were made, so a queue in that order, and one timer for its head,
    time them all (a timer per call was a fifth of a call's cost, issue 13).
    Answered calls leave the queue as they reach its head. The queue is three
    deques side by side, not one of tuples: a tuple per call is one more object
    for the garbage collector to walk while the call waits.
    """

    def __init__(self, url: str) -> None:
        self._url = url
        self._whens: collections.deque[float] = collections.deque()
        self._futures: collections.deque[asyncio.Future[Response]] = collections.deque()
        self._methods: collections.deque[str] = collections.deque()
        self._seconds: float | None = None  # the timeout of the calls queued
        self._timer: asyncio.TimerHandle | None = None

    def add(
        self, future: asyncio.Future[Response], method: str, seconds: float, loop: asyncio.AbstractEventLoop
    ) -> None:
        """Fail ``future`` with CallTimeout unless it is done within ``seconds`` (on ``loop``, running or not)."""
        futures = self._futures
        while futures and futures[0].done():  # answered: they leave as they reach the head
            self._whens.popleft()
            futures.popleft()
            self._methods.popleft()
        if seconds != self._seconds:
            if futures or seconds == math.inf:
                # Another timeout than the queued calls': they would not expire in order.
                loop.call_at(loop.time() + seconds, _expire, future, method, seconds, self._url)
                return
            self._seconds = seconds
        when = loop.time() + seconds
        self._whens.append(when)
        futures.append(future)
        self._methods.append(method)
        if self._timer is None:
            self._timer = loop.call_at(when, self._expire_due, loop, when)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._whens.clear()
        self._futures.clear()
        self._methods.clear()

    def _pop(self) -> tuple[float, asyncio.Future[Response], str]:
        return self._whens.popleft(), self._futures.popleft(), self._methods.popleft()

    def _expire_due(self, loop: asyncio.AbstractEventLoop, armed_for: float) -> None:
        self._timer = None
        now = max(loop.time(), armed_for)
        futures = self._futures
        while futures:
            if futures[0].done():
                self._pop()
            elif self._whens[0] <= now:
                _, future, method = self._pop()
                _expire(future, method, self._seconds, self._url)  # type: ignore[arg-type]
            else:
                when = self._whens[0]
                self._timer = loop.call_at(when, self._expire_due, loop, when)
                return


def _expire(future: asyncio.Future[Response], method: str, seconds: float, url: str) -> None:
    if not future.done():
        future.set_exception(CallTimeout(f"no answer to {method!r} within {seconds:g} s ({url})"))


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
