"""The server: listens, and runs one :class:`~.connection.Connection` per client.

Each connection answers a message served by plain tools at once, in the read
that brought it; a message that awaits an ``async`` tool gets a task of its
own, so a slow call never holds up the calls behind it (see
:mod:`.connection` for backpressure and closing).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from types import TracebackType
from typing import Any

from .connection import BINARY_FRAME_REPLY, PATHS, Connection
from .dispatch import DEFAULT_MAX_BATCH, Dispatcher
from .registry import Registry
from .session import DEFAULT_MAX_SUBSCRIPTIONS, DEFAULT_SUBSCRIPTION_BUFFER
from .tools import builtin_tools
from .topics import Topics, builtin_topics

__all__ = ["BINARY_FRAME_REPLY", "DEFAULT_MAX_IN_FLIGHT", "DEFAULT_MAX_MESSAGE_SIZE", "PATHS", "RpcServer"]

DEFAULT_MAX_IN_FLIGHT = 128
DEFAULT_MAX_MESSAGE_SIZE = 2**20


class RpcServer:
    """A JSON-RPC 2.0 server on a WebSocket, serving the tools of a registry.

    Use as ``async with RpcServer(registry, port=0) as server:``; ``server.url``
    then names the endpoint, with the port actually bound.

    Args:
        registry: the tools to serve; the built-in tools when not given.
        host: the address to listen on.
        port: the port; 0 picks a free one.
        max_in_flight: per connection, the messages awaiting async tools
            before the server stops reading from it (a batch counts as one).
        max_batch: the longest batch accepted.
        max_message_size: the largest incoming message, in bytes; a larger one
            closes the connection with code 1009, as WebSocket prescribes.
        compression: negotiate permessage-deflate. Off by default: it cost
            27-37% of throughput on small messages here.
        topics: what clients can subscribe to; the built-in ``clock`` when not given.
        max_subscriptions: subscriptions one connection may hold at once.
        subscription_buffer: events kept per subscription for a slow reader;
            past it the oldest are dropped (see :mod:`.topics`).
        ping_interval: seconds between keepalive pings; a peer that has not
            answered one within ``ping_timeout`` seconds is cut off.
        open_timeout: seconds a client has to complete the opening handshake.
        close_timeout: seconds a peer has to complete the closing handshake.
        origins: the ``Origin`` headers accepted (``None`` in the list for
            clients that send none, as non-browser clients do); any when not
            given. Set it when browsers may reach the server: otherwise any web
            page the user opens can call its tools.
    """

    def __init__(
        self,
        registry: Registry | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        max_in_flight: int = DEFAULT_MAX_IN_FLIGHT,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        compression: bool = False,
        topics: Topics | None = None,
        max_subscriptions: int = DEFAULT_MAX_SUBSCRIPTIONS,
        subscription_buffer: int = DEFAULT_SUBSCRIPTION_BUFFER,
        ping_interval: float = 20.0,
        ping_timeout: float = 20.0,
        open_timeout: float = 10.0,
        close_timeout: float = 10.0,
        origins: Sequence[str | None] | None = None,
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.dispatcher = Dispatcher(registry if registry is not None else builtin_tools(), max_batch=max_batch)
        self.host = host
        self.max_in_flight = max_in_flight
        self.max_message_size = max_message_size
        self.compression = compression
        self.topics = topics if topics is not None else builtin_topics()
        self.max_subscriptions = max_subscriptions
        self.subscription_buffer = subscription_buffer
        self.ping_interval = ping_interval
        self.ping_timeout = ping_timeout
        self.open_timeout = open_timeout
        self.close_timeout = close_timeout
        self.origins = origins
        self.connections: set[Connection] = set()
        self.closing = False
        self._port = port
        self._server: asyncio.Server | None = None

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Bind and start accepting connections."""
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(lambda: Connection(self), self.host, self._port)
        self._port = int(self._server.sockets[0].getsockname()[1])

    @property
    def port(self) -> int:
        """The port bound (the real one when 0 was asked for)."""
        if self._server is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def url(self) -> str:
        """The endpoint, ``ws://HOST:PORT/ws``, with the port actually bound."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}/ws"

    def close(self) -> None:
        """Stop accepting, and close every connection (code 1001, going away)."""
        self.closing = True
        if self._server is not None:
            self._server.close()
        for connection in list(self.connections):
            connection.close()

    async def wait_closed(self) -> None:
        """Wait until every connection has closed and cleaned up after itself.

        Cancelling this wait (a timeout around it, say) leaves the connections
        closing as they were, and the wait can be made again.
        """
        if self._server is not None:
            await self._server.wait_closed()
        while self.connections:
            # asyncio.wait, not gather: a cancelled wait must not cancel what it waits for.
            await asyncio.wait([c.closed for c in self.connections])

    async def serve_forever(self) -> None:
        """Serve until cancelled, starting first if need be."""
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def __aenter__(self) -> RpcServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
        await self.wait_closed()

    def publish(self, topic: str, event: Any) -> int:
        """Send ``event`` to every subscriber of ``topic``; returns how many there are.

        Raises:
            KeyError: the server has no such topic.
        """
        return self.topics.publish(topic, event)
