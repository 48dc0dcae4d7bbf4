"""The synchronous facade, for scripts and notebooks: ``with connect_sync(url) as client:``.

It runs an ordinary :class:`~rpc_client.client.Client` on an event loop of its
own and blocks the calling thread until each call is done. The correlation,
timeouts and errors are the async client's own code. The loop is a
:class:`~rpc_client.sharedloop.SharedLoop`: the thread that waits on a call runs
it, so a call costs no thread hop, and a background thread runs it between
calls. Because the loop is not the caller's, this also works where a loop is
already running in the calling thread (Jupyter): that thread hands its calls to
the background thread. Calls from several threads at once share the one
connection.

Streams and subscriptions are the async client's iterators, pulled one item
at a time from the calling thread (:meth:`SyncClient.stream`,
:meth:`SyncClient.subscribe`); a batch is filled in a ``with`` block and sent
when it ends (:meth:`SyncClient.batch`). Leaving a loop early, or Ctrl-C while one
waits, cancels the pending step on the client's loop, which sends
``rpc.cancel`` for a stream as the async client does.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from types import TracebackType
from typing import Any, Generic, TypeVar

from .backoff import Backoff
from .batch import Batch, BatchCall
from .client import Client, session_of
from .errors import ClientClosedError
from .messages import Params, Response, params_from, unwrap
from .push import DEFAULT_EVENT_BUFFER, Event, ProgressCallback
from .sharedloop import SharedLoop
from .subscription import Subscription
from .url import check_url

__all__ = ["SyncBatch", "SyncClient", "SyncSubscription", "connect_sync"]

T = TypeVar("T")

_END = object()


class SyncClient:
    """A blocking client; made by :func:`connect_sync`.

    Each method is the :class:`~rpc_client.client.Client` method of the same
    name, with the same arguments and exceptions, and blocks until it is done
    (a test holds the two surfaces together). It is connected when made, so
    it has no ``connect()``; ``with`` replaces ``async with``.
    """

    def __init__(self, client: Client, shared: SharedLoop) -> None:
        self._client = client
        self._session = session_of(client)
        self._shared = shared

    @property
    def url(self) -> str:
        return self._client.url

    @property
    def connected(self) -> bool:
        return self._client.connected

    @property
    def in_flight(self) -> int:
        """Calls sent and not yet answered (see :attr:`Client.in_flight`)."""
        return self._client.in_flight

    @property
    def timeout(self) -> float | None:
        return self._client.timeout

    @timeout.setter
    def timeout(self, value: float | None) -> None:
        self._client.timeout = value

    @property
    def connect_timeout(self) -> float | None:
        return self._client.connect_timeout

    @connect_timeout.setter
    def connect_timeout(self, value: float | None) -> None:
        self._client.connect_timeout = value

    @property
    def reconnect(self) -> bool:
        return self._client.reconnect

    @property
    def backoff(self) -> Backoff:
        return self._client.backoff

    @property
    def send_cancel(self) -> bool:
        return self._client.send_cancel

    @send_cancel.setter
    def send_cancel(self, value: bool) -> None:
        self._client.send_cancel = value

    def call(
        self,
        method: str,
        *args: Any,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
        **kwargs: Any,
    ) -> Any:
        """Call ``method`` and return its result (see :meth:`Client.call`).

        A ``progress`` callback runs on the client's loop: keep it short, and do
        not call this client from it (that raises RuntimeError).
        """
        if progress is not None:
            return self._run(self._client.call(method, *args, timeout=timeout, progress=progress, **kwargs))
        return unwrap(self._request_now(method, params_from(args, kwargs), timeout))

    def discover(self, *, timeout: float | None = None) -> dict[str, Any]:
        """The server's OpenRPC document (see :meth:`Client.discover`)."""
        return self._run(self._client.discover(timeout=timeout))

    def request(
        self,
        method: str,
        params: Params = None,
        *,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
    ) -> Response:
        """Call ``method``; return ``Ok`` or ``Error`` (see :meth:`Client.request`)."""
        if progress is not None:
            return self._run(self._client.request(method, params, timeout=timeout, progress=progress))
        return self._request_now(method, params, timeout)

    def stream(
        self,
        method: str,
        *args: Any,
        timeout: float | None = None,
        progress: ProgressCallback | None = None,
        **kwargs: Any,
    ) -> Iterator[Any]:
        """Call a method that streams its result; iterate its parts as they arrive (see :meth:`Client.stream`).

        ``for part in client.stream("count", 5): ...``; leaving the loop early
        sends ``rpc.cancel``. A ``progress`` callback runs on the client's loop.
        """
        return self._iterate(self._client.stream(method, *args, timeout=timeout, progress=progress, **kwargs))

    def subscribe(
        self,
        topic: str,
        params: Params = None,
        /,
        *,
        timeout: float | None = None,
        buffer: int = DEFAULT_EVENT_BUFFER,
        **named: Any,
    ) -> SyncSubscription:
        """Subscribe for a ``with`` block: ``with client.subscribe("clock") as events: for event in events:``.

        Takes the arguments of :meth:`Client.subscribe`, and raises as it does.
        """
        return SyncSubscription(self, self._client.subscribe(topic, params, timeout=timeout, buffer=buffer, **named))

    def notify(self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> None:
        """Send a notification (see :meth:`Client.notify`)."""
        self._run(self._client.notify(method, *args, timeout=timeout, **kwargs))

    def notification(self, method: str, params: Params = None, *, timeout: float | None = None) -> None:
        """Send a notification with params as they go on the wire (see :meth:`Client.notification`)."""
        self._run(self._client.notification(method, params, timeout=timeout))

    def batch(self, *, timeout: float | None = None) -> SyncBatch:
        """A batch to fill in a ``with`` block; it is sent, and waited for, when the block ends.

        ``with client.batch() as batch: product = batch.call("multiply", 3, 4)``,
        then ``product.result()`` after the block (see :meth:`Client.batch`).
        """
        return SyncBatch(self, self._client.batch(timeout=timeout))

    def batch_call(self, calls: Iterable[tuple[str, Params]], *, timeout: float | None = None) -> list[Any]:
        """Send one batch; results in order, errors as values (see :meth:`Client.batch_call`)."""
        return self._run(self._client.batch_call(list(calls), timeout=timeout))

    def batch_request(self, calls: Iterable[tuple[str, Params]], *, timeout: float | None = None) -> list[Any]:
        """One batch; answers in order as ``Ok`` or ``Error`` (see :meth:`Client.batch_request`)."""
        return self._run(self._client.batch_request(list(calls), timeout=timeout))

    def close(self) -> None:
        """Close the connection and stop the background thread; closing twice is harmless.

        Raises:
            RuntimeError: called from a callback on the client's loop.
        """
        shared = self._shared
        if not shared.alive:
            return
        shared.refuse_in_loop()
        try:
            self._run(self._client.close())
        finally:
            shared.stop()

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _iterate(self, source: AsyncIterator[T]) -> Iterator[T]:
        """An async iterator of the client's, pulled one item at a time from this thread."""
        puller = _Puller(source)
        try:
            while True:
                item = self._run(puller.next())
                if item is _END:
                    return
                yield item  # type: ignore[misc]
        finally:
            if self._shared.alive and not self._shared.in_loop():
                self._run(puller.close())

    def _request_now(self, method: str, params: Params, timeout: float | None) -> Response:
        """One call, sent from this thread, which then runs the loop until its answer (see :meth:`SharedLoop.call`).

        No task and no coroutine: the loop's callback that reads the answer stops the loop.
        """
        session = self._session
        response: Response = self._shared.call(
            lambda answer: session.begin(method, params, timeout, answer),
            lambda: session.request(method, params, timeout),
        )
        return response

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run a coroutine of the client's to its end (see :meth:`SharedLoop.run <.sharedloop.SharedLoop.run>`).

        Raises:
            ClientClosedError: the client is closed.
            RuntimeError: this is a callback on its loop.
        """
        return self._shared.run(coro)


class SyncBatch:
    """A batch for blocking code; made by :meth:`SyncClient.batch`.

    Filling it does no I/O; :meth:`send` (or the end of its ``with`` block
    without an exception) sends it and blocks until it is answered.
    """

    def __init__(self, owner: SyncClient, batch: Batch) -> None:
        self._owner = owner
        self._batch = batch

    def call(self, method: str, *args: Any, **kwargs: Any) -> BatchCall:
        """Add a call; its :meth:`BatchCall.result` is there once the batch is answered (see :meth:`Batch.call`)."""
        return self._batch.call(method, *args, **kwargs)

    def notify(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Add a notification."""
        self._batch.notify(method, *args, **kwargs)

    def send(self) -> list[Any]:
        """Send the batch and wait for its answers (see :meth:`Batch.send`)."""
        return self._owner._run(self._batch.send())

    def __enter__(self) -> SyncBatch:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            # As the async batch does: the outcomes are read when each call's result() is asked for.
            self._owner._run(self._batch.__aexit__(None, None, None))


class SyncSubscription:
    """A subscription for blocking code; made by :meth:`SyncClient.subscribe`.

    Iterating it blocks for each :class:`~rpc_client.push.Event`, and ends as
    the async :class:`~rpc_client.subscription.Subscription` does.
    """

    def __init__(self, owner: SyncClient, subscription: Subscription) -> None:
        self._owner = owner
        self._subscription = subscription

    @property
    def id(self) -> Any:
        return self._subscription.id

    @property
    def topic(self) -> str:
        return self._subscription.topic

    @property
    def reason(self) -> str | None:
        return self._subscription.reason

    @property
    def active(self) -> bool:
        return self._subscription.active

    def unsubscribe(self, *, wait: bool = True) -> None:
        """End the subscription (see :meth:`Subscription.unsubscribe`)."""
        self._owner._run(self._subscription.unsubscribe(wait=wait))

    def __enter__(self) -> SyncSubscription:
        self._owner._run(self._subscription.__aenter__())
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._owner._shared.alive:
            self._owner._run(self._subscription.__aexit__(exc_type, exc, tb))

    def __iter__(self) -> Iterator[Event]:
        return self._owner._iterate(self._subscription)


class _Puller(Generic[T]):
    """Steps an async iterator on the client's loop, one item per call, and closes it there."""

    def __init__(self, source: AsyncIterator[T]) -> None:
        self._source = source
        self._step: asyncio.Task[Any] | None = None

    async def next(self) -> T | object:
        self._step = asyncio.current_task()
        try:
            return await anext(self._source)
        except StopAsyncIteration:
            return _END
        finally:
            self._step = None

    async def close(self) -> None:
        # A step cancelled from the calling thread (Ctrl-C) may still be unwinding: let it finish first.
        step = self._step
        if step is not None:
            step.cancel()
            await asyncio.wait([step])
        aclose = getattr(self._source, "aclose", None)
        if aclose is not None:
            await aclose()


def connect_sync(
    url: str, *, loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None, **options: Any
) -> SyncClient:
    """Connect a blocking client to ``url``; use it as ``with connect_sync(url) as client:``.

    Args:
        url: the server's endpoint.
        loop_factory: makes the client's event loop; ``uvloop.new_event_loop``
            for uvloop (``pip install 'rpc-tools[speed]'``); asyncio's own by default.
        options: as for :class:`~rpc_client.client.Client` (``timeout``, ``reconnect``,
            ``token``, ``cafile``...); a token function runs on the client's loop.

    Raises:
        InvalidURL: the URL cannot name a WebSocket server.
        AuthenticationError: the server refused the credential (HTTP 401) or the connection (403).
        ConnectError: the connection cannot be opened.
    """
    if options.get("connector") is None:
        check_url(url)  # before a thread is started for nothing
    # After close(), a call fails as the async client's does.
    shared = SharedLoop(
        loop_factory,
        name=f"rpc_client loop for {url}",
        closed=lambda: ClientClosedError(f"the client for {url} is closed"),
    )
    try:
        client = shared.run(_connected(url, options))
    except BaseException:
        shared.stop()
        raise
    return SyncClient(client, shared)


async def _connected(url: str, options: dict[str, Any]) -> Client:
    # Made on the loop's own thread, so its events and futures belong to that loop.
    client = Client(url, **options)
    await client.connect()
    return client
