"""The synchronous facade, for scripts and notebooks: ``with connect_sync(url) as client:``.

It runs an ordinary :class:`~rpc_client.client.Client` on an event loop of its
own, in a background thread, and blocks the calling thread on each call's
answer. The correlation, timeouts and errors are the async client's own code;
only the thread hop is added. Because the loop is not the caller's, this also
works where a loop is already running in the calling thread (Jupyter). Calls
from several threads at once share the one connection.

Streams and subscriptions are the async client's iterators, pulled one item
at a time from the calling thread (:meth:`SyncClient.stream`,
:meth:`SyncClient.subscribe`); a batch is filled in a ``with`` block and sent
when it ends (:meth:`SyncClient.batch`). Leaving a loop early, or Ctrl-C while one
waits, cancels the pending step on the client's loop, which sends
``rpc.cancel`` for a stream as the async client does.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Iterator
from concurrent.futures import Future, InvalidStateError
from types import TracebackType
from typing import Any, Generic, TypeVar

from .backoff import Backoff
from .batch import Batch, BatchCall
from .client import Client, session_of
from .messages import Params, Response, params_from, unwrap
from .push import DEFAULT_EVENT_BUFFER, Event, ProgressCallback
from .subscription import Subscription
from .url import check_url

__all__ = ["SyncBatch", "SyncClient", "SyncSubscription", "connect_sync"]

T = TypeVar("T")

_END = object()
# How long a call that failed waits for the loop to let go of it (bounded: the loop may be stuck).
_LEAVE_TIMEOUT = 1.0


class SyncClient:
    """A blocking client; made by :func:`connect_sync`.

    Each method is the :class:`~rpc_client.client.Client` method of the same
    name, with the same arguments and exceptions, and blocks until it is done
    (a test holds the two surfaces together). It is connected when made, so
    it has no ``connect()``; ``with`` replaces ``async with``.
    """

    def __init__(self, client: Client, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
        self._client = client
        self._session = session_of(client)
        self._loop = loop
        self._thread = thread

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

        A ``progress`` callback runs on the client's loop thread: keep it short,
        and do not call this client from it (that raises RuntimeError).
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
        sends ``rpc.cancel``. A ``progress`` callback runs on the client's loop thread.
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
        """Close the connection and stop the background thread; closing twice is harmless."""
        if not self._thread.is_alive():
            return
        self._check_thread()
        try:
            self._run(self._client.close())
        finally:
            _stop(self._loop, self._thread)

    def __enter__(self) -> SyncClient:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _request_now(self, method: str, params: Params, timeout: float | None) -> Response:
        """One call, started on the loop by a callback, its answer handed straight to this thread.

        No task and no coroutine: the loop's callback that reads the answer sets this
        thread's future (three loop turns fewer a call than a coroutine's way).
        """
        if not self._thread.is_alive():
            raise RuntimeError("this client is closed")
        self._check_thread()
        answer: _Answer = _Answer()
        leave: list[Callable[[], Any]] = []  # how to abandon the call, on the loop
        session = self._session

        def start() -> None:
            if answer.done():  # abandoned (Ctrl-C) before it could start
                return
            try:
                abandon = session.begin(method, params, timeout, answer)
            except BaseException as exc:
                answer.set_exception(exc)
                return
            if abandon is None:  # no connection now: the coroutine waits for one
                task = asyncio.ensure_future(session.request(method, params, timeout))
                task.add_done_callback(lambda done: _hand_over(done, answer))
                leave.append(task.cancel)
            else:
                leave.append(abandon)

        loop = self._loop
        loop.call_soon_threadsafe(start)
        try:
            response = answer.result()
        except BaseException as exc:
            # Timed out, or Ctrl-C in this thread: let go of it on the loop (rpc.cancel, if it still runs).
            answer.cancel()
            left = threading.Event()

            def let_go() -> None:
                if leave:
                    leave[0]()
                left.set()

            loop.call_soon_threadsafe(let_go)
            if isinstance(exc, Exception):
                left.wait(_LEAVE_TIMEOUT)  # so that in_flight no longer counts it on return
            raise
        if timeout is not None:
            loop.call_soon_threadsafe(lambda: leave and leave[0]())  # its own timer goes too
        return response

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
            if self._thread.is_alive() and threading.current_thread() is not self._thread:
                asyncio.run_coroutine_threadsafe(puller.close(), self._loop).result()

    def _check_thread(self) -> None:
        # The loop thread waiting on its own loop would wait forever: nothing else can run it.
        if threading.current_thread() is self._thread:
            raise RuntimeError("cannot block on the client from its own loop thread (a callback)")

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if not self._thread.is_alive():
            coro.close()
            raise RuntimeError("this client is closed")
        if threading.current_thread() is self._thread:
            coro.close()
            self._check_thread()
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except BaseException:
            # Ctrl-C in the calling thread: cancel the call on the loop too, so nothing is left behind.
            future.cancel()
            raise


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
            self.send()


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
        if self._owner._thread.is_alive():
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


class _Answer(Future[Response]):
    """A call's answer for the calling thread, set from the loop; what the correlation table needs of a future."""

    def set_result(self, result: Response) -> None:
        try:
            super().set_result(result)
        except InvalidStateError:
            pass  # abandoned by the calling thread (Ctrl-C) meanwhile

    def set_exception(self, exception: BaseException | None) -> None:
        try:
            super().set_exception(exception)
        except InvalidStateError:
            pass


def _hand_over(done: asyncio.Future[Response], answer: Future[Response]) -> None:
    """A call's outcome, from the loop's future to the calling thread's."""
    try:
        if done.cancelled():
            answer.cancel()
        elif (exc := done.exception()) is not None:
            answer.set_exception(exc)
        else:
            answer.set_result(done.result())
    except InvalidStateError:
        pass  # abandoned by the calling thread (Ctrl-C) meanwhile


def connect_sync(
    url: str, *, loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None, **options: Any
) -> SyncClient:
    """Connect a blocking client to ``url``; use it as ``with connect_sync(url) as client:``.

    Args:
        url: the server's endpoint.
        loop_factory: makes the client's event loop; ``uvloop.new_event_loop``
            for uvloop (``pip install 'rpc-tools[speed]'``); asyncio's own by default.
        options: as for :class:`~rpc_client.client.Client` (``timeout``, ``reconnect``,
            ``token``, ``cafile``...); a token function runs on the client's loop thread.

    Raises:
        InvalidURL: the URL cannot name a WebSocket server.
        AuthenticationError: the server refused the credential (HTTP 401) or the connection (403).
        ConnectError: the connection cannot be opened.
    """
    if options.get("connector") is None:
        check_url(url)  # before a thread is started for nothing
    loop = (loop_factory or asyncio.new_event_loop)()
    thread = threading.Thread(target=loop.run_forever, name=f"rpc_client loop for {url}", daemon=True)
    thread.start()
    client_made: Future[Client] = asyncio.run_coroutine_threadsafe(_connected(url, options), loop)
    try:
        client = client_made.result()
    except BaseException:
        client_made.cancel()
        _stop(loop, thread)
        raise
    return SyncClient(client, loop, thread)


async def _connected(url: str, options: dict[str, Any]) -> Client:
    # Made on the loop's own thread, so its events and futures belong to that loop.
    client = Client(url, **options)
    await client.connect()
    return client


def _stop(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    loop.call_soon_threadsafe(loop.stop)
    thread.join()
    # The thread is gone: finish the loop's clean-up here, then close it.
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
