"""Test helpers for code that serves tools: a real server on a free port, or no socket at all.

No pytest needed (the pytest fixtures of :mod:`rpc_server.pytest_plugin` are
built on these)::

    async with serve(registry) as client:          # a server on 127.0.0.1, port 0, and a Client
        assert await client.call("greet", "Ada") == "Hello, Ada"

    async with serve_memory(registry) as client:   # the same protocol, no socket
        ...

    with serve_sync(registry) as client:           # blocking code: the server runs in a thread
        assert client.call("greet", "Ada") == "Hello, Ada"

Each takes the server's own options as keyword arguments: those of
:class:`~rpc_server.RpcServer` (``topics=...``) and, by name, the fields of
its :class:`~rpc_server.Limits` (``max_batch=2``); and ``client_options``
for the :class:`~rpc_client.Client` (``timeout``, credentials...). Leaving
the block closes the client, then the server, and waits until both are gone:
no task, thread or socket outlives it.

For a handle on the server itself (to publish events, or to connect several
clients): :func:`running` (a started :class:`~rpc_server.RpcServer`),
:class:`ServerThread` (one on a loop of its own, for blocking code or for a
server that must outlive one event loop) and :class:`MemoryServer`.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent.futures import Future
from types import TracebackType
from typing import Any, TypeVar

from rpc_client import Client, ConnectionLost, MemoryConnector, MemoryTransport, SyncClient, connect_sync

from .config import Limits
from .registry import Registry
from .server import RpcServer
from .session import Session

__all__ = ["MemoryServer", "ServerThread", "running", "serve", "serve_memory", "serve_sync", "server_arguments"]

T = TypeVar("T")

# Tests talk to 127.0.0.1 only, on a port the system picks.
_LOCAL = {"host": "127.0.0.1", "port": 0}
# A bound on waits that take milliseconds when all is well (starting, stopping).
_WAIT = 30.0


@contextlib.asynccontextmanager
async def running(registry: Registry | None = None, **server_options: Any) -> AsyncIterator[RpcServer]:
    """A started :class:`~rpc_server.RpcServer` on 127.0.0.1 and a free port; ``server.url`` names it.

    Args:
        registry: the tools to serve; the built-in tools when not given.
        server_options: passed to :class:`~rpc_server.RpcServer` (``host`` and
            ``port`` too, to override 127.0.0.1 and 0).
    """
    async with RpcServer(registry, **server_arguments({**_LOCAL, **server_options})) as server:
        yield server


@contextlib.asynccontextmanager
async def serve(
    registry: Registry | None = None, *, client_options: dict[str, Any] | None = None, **server_options: Any
) -> AsyncIterator[Client]:
    """A :class:`~rpc_client.Client` connected to a server of its own (see :func:`running`).

    Args:
        registry: the tools to serve; the built-in tools when not given.
        client_options: passed to :class:`~rpc_client.Client` (``timeout``...).
        server_options: passed to :class:`~rpc_server.RpcServer`.
    """
    async with running(registry, **server_options) as server:
        async with Client(server.url, **(client_options or {})) as client:
            yield client


@contextlib.asynccontextmanager
async def serve_memory(
    registry: Registry | None = None, *, client_options: dict[str, Any] | None = None, **server_options: Any
) -> AsyncIterator[Client]:
    """A :class:`~rpc_client.Client` wired to a :class:`MemoryServer`: the whole protocol, no socket."""
    async with MemoryServer(registry, **server_options) as server:
        async with server.client(**(client_options or {})) as client:
            yield client


@contextlib.contextmanager
def serve_sync(
    registry: Registry | None = None, *, client_options: dict[str, Any] | None = None, **server_options: Any
) -> Iterator[SyncClient]:
    """A blocking :class:`~rpc_client.SyncClient` connected to a :class:`ServerThread` of its own."""
    with ServerThread(registry, **server_options) as server:
        with connect_sync(server.url, **(client_options or {})) as client:
            yield client


class ServerThread:
    """A server on an event loop of its own, in a background thread.

    For blocking code, which cannot run the server's loop itself, and for a
    server shared by tests that each run on a loop of their own. Use as
    ``with ServerThread(registry) as server:``; ``server.url`` then names it.

    Args:
        registry: the tools to serve; the built-in tools when not given.
        server_options: passed to :class:`~rpc_server.RpcServer`, on 127.0.0.1
            and a free port unless ``host`` or ``port`` say otherwise.
    """

    def __init__(self, registry: Registry | None = None, **server_options: Any) -> None:
        self.registry = registry
        self.server_options = server_options
        self._server: RpcServer | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None

    @property
    def server(self) -> RpcServer:
        """The :class:`~rpc_server.RpcServer`; touch it only on its loop (see :meth:`call`)."""
        if self._server is None:
            raise RuntimeError("the server thread is not started")
        return self._server

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def port(self) -> int:
        return self.server.port

    def start(self) -> ServerThread:
        """Start the thread and the server in it; returns once it listens.

        Raises:
            RuntimeError: already started.
            Exception: whatever the server raised while starting (bad options, a port in use).
        """
        if self._thread is not None:
            raise RuntimeError("the server thread is already started")
        started: Future[None] = Future()
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(started),), name="rpc_server test server")
        self._thread.start()
        try:
            started.result(timeout=_WAIT)
        except BaseException:
            self._thread.join(timeout=_WAIT)
            self._thread = None
            raise
        return self

    async def _main(self, started: Future[None]) -> None:
        try:
            self._loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self._server = RpcServer(self.registry, **server_arguments({**_LOCAL, **self.server_options}))
            await self._server.start()
        except BaseException as exc:
            started.set_exception(exc)
            return
        started.set_result(None)
        await self._stop.wait()
        self._server.close()
        await self._server.wait_closed()
        # asyncio.run then cancels what is left and shuts the thread pool of blocking tools down.

    def call(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn(*args)`` on the server's loop and return its result: ``call(server.publish, topic, event)``."""
        if self._loop is None or self._thread is None:
            raise RuntimeError("the server thread is not started")

        async def run() -> T:
            return fn(*args)

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout=_WAIT)

    def publish(self, topic: str, event: Any) -> int:
        """:meth:`RpcServer.publish <rpc_server.RpcServer.publish>`, from any thread."""
        return self.call(self.server.publish, topic, event)

    def stop(self) -> None:
        """Close every connection and the server, and end the thread; stopping twice is harmless."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        if self._loop is not None and self._stop is not None and thread.is_alive():
            self._loop.call_soon_threadsafe(self._stop.set)
        thread.join(timeout=_WAIT)
        if thread.is_alive():
            raise RuntimeError(f"the test server did not stop within {_WAIT:g} s")

    def __enter__(self) -> ServerThread:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


class MemoryServer:
    """The server's protocol with no socket: each connection a session fed by an in-memory pair.

    Messages go through the same :class:`~rpc_server.Dispatcher` and
    :class:`~rpc_server.Session` as on a WebSocket, so calls, batches, errors,
    streams, progress, subscriptions and ``rpc.cancel`` behave alike. What
    belongs to the WebSocket is not modelled: message size, the in-flight
    cap, origins, pings. Use as ``async with MemoryServer(registry) as server:``,
    then ``server.client()``, or pass ``server.connect`` as a client's ``connector``.

    Args:
        registry: the tools to serve; the built-in tools when not given.
        server_options: passed to :class:`~rpc_server.RpcServer`, which is
            made (never started) to hold the dispatcher, topics and limits.
    """

    url = "memory://"

    def __init__(self, registry: Registry | None = None, **server_options: Any) -> None:
        self.server = RpcServer(registry, **server_arguments(server_options))
        self._connector = MemoryConnector()
        self._connections: set[asyncio.Task[None]] = set()

    def publish(self, topic: str, event: Any) -> int:
        """:meth:`RpcServer.publish <rpc_server.RpcServer.publish>`."""
        return self.server.publish(topic, event)

    def client(self, **client_options: Any) -> Client:
        """A :class:`~rpc_client.Client` for this server (not yet connected: use ``async with``)."""
        return Client(self.url, connector=self.connect, **client_options)

    async def connect(self, url: str, **options: Any) -> MemoryTransport:
        """A :data:`~rpc_client.Connector`: opens one in-memory connection, served until it closes.

        The handshake's options (a client's token, headers, TLS) have no handshake to
        travel in: the memory server, like the rest of what belongs to the WebSocket,
        does not check credentials.
        """
        ours = await self._connector(url, **options)
        peer = await self._connector.accept()
        task = asyncio.get_running_loop().create_task(self._serve(peer), name="rpc_server memory connection")
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)
        return ours

    async def _serve(self, peer: MemoryTransport) -> None:
        async def send(message: bytes) -> None:
            with contextlib.suppress(ConnectionLost):  # the client is gone: what it asked for goes with it
                await peer.send(message.decode())

        session = _session(self.server, send)
        dispatch = self.server.dispatcher.dispatch
        calls: set[asyncio.Task[None]] = set()

        async def answer_later(reply: Any) -> None:
            response = await reply
            if response is not None:
                await send(response)

        try:
            async for message in peer:
                # Dispatched in arrival order, as the WebSocket does, so rpc.cancel finds what came before it.
                reply = dispatch(message, session)
                if reply is None:
                    continue
                if isinstance(reply, bytes):
                    await send(reply)
                    continue
                call = asyncio.get_running_loop().create_task(answer_later(reply))
                calls.add(call)
                call.add_done_callback(calls.discard)
        finally:
            for call in calls:
                call.cancel()
            await asyncio.gather(*calls, return_exceptions=True)
            await session.close()
            await peer.close()

    async def close(self) -> None:
        """End every connection (their clients see the connection lost) and wait for their clean-up."""
        for task in self._connections:
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)

    async def __aenter__(self) -> MemoryServer:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()


def server_arguments(options: dict[str, Any]) -> dict[str, Any]:
    """:class:`RpcServer`'s keyword arguments from flat options: names of :class:`Limits` fields go into ``limits``.

    Raises:
        ValueError: a limit out of range.
    """
    named = {name: options[name] for name in Limits.names() & options.keys()}
    arguments = {key: value for key, value in options.items() if key not in named}
    if named:
        arguments["limits"] = (arguments.get("limits") or Limits()).replace(**named)
    return arguments


def _session(server: RpcServer, send: Callable[[bytes], Any]) -> Session:
    # The connection's session, made as rpc_server.connection.Connection makes it.
    return Session(
        send,
        topics=server.topics,
        max_subscriptions=server.limits.max_subscriptions,
        subscription_buffer=server.limits.subscription_buffer,
    )
