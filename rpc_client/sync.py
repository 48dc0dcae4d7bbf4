"""The synchronous facade, for scripts and notebooks: ``with connect_sync(url) as client:``.

It runs an ordinary :class:`~rpc_client.client.Client` on an event loop of its
own, in a background thread, and blocks the calling thread on each call's
answer. The correlation, timeouts and errors are the async client's own code;
only the thread hop is added. Because the loop is not the caller's, this also
works where a loop is already running in the calling thread (Jupyter). Calls
from several threads at once share the one connection.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Iterable
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

from .client import Client
from .messages import Params
from .pending import Response

__all__ = ["SyncClient", "connect_sync"]

T = TypeVar("T")


class SyncClient:
    """A blocking client; made by :func:`connect_sync`.

    Each method is the :class:`~rpc_client.client.Client` method of the same
    name, with the same arguments and exceptions, and blocks until it is done.
    """

    def __init__(self, client: Client, loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
        self._client = client
        self._loop = loop
        self._thread = thread

    @property
    def url(self) -> str:
        return self._client.url

    @property
    def connected(self) -> bool:
        return self._client.connected

    def call(self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> Any:
        """Call ``method`` and return its result (see :meth:`Client.call`)."""
        return self._run(self._client.call(method, *args, timeout=timeout, **kwargs))

    def request(self, method: str, params: Params = None, *, timeout: float | None = None) -> Response:
        """Call ``method``; return ``Ok`` or ``Error`` (see :meth:`Client.request`)."""
        return self._run(self._client.request(method, params, timeout=timeout))

    def notify(self, method: str, *args: Any, timeout: float | None = None, **kwargs: Any) -> None:
        """Send a notification (see :meth:`Client.notify`)."""
        self._run(self._client.notify(method, *args, timeout=timeout, **kwargs))

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

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        if not self._thread.is_alive():
            coro.close()
            raise RuntimeError("this client is closed")
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)
        try:
            return future.result()
        except BaseException:
            # Ctrl-C in the calling thread: cancel the call on the loop too, so nothing is left behind.
            future.cancel()
            raise


def connect_sync(url: str, **options: Any) -> SyncClient:
    """Connect a blocking client to ``url``; use it as ``with connect_sync(url) as client:``.

    Args:
        url: the server's endpoint.
        options: as for :class:`~rpc_client.client.Client` (``timeout``, ``reconnect``...).

    Raises:
        ConnectError: the connection cannot be opened.
    """
    loop = asyncio.new_event_loop()
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
