"""The WebSocket transport: accepts connections and moves frames to and from the dispatcher.

Each connection has one read loop. A message answered by plain tools is
answered inline, in order; one that awaits an ``async`` tool gets a task of
its own, so a slow call never holds up the calls behind it. When a
connection has ``max_in_flight`` such tasks, its read loop waits for one to
finish before it reads again: backpressure, with nothing dropped. When the
connection closes, its unfinished tasks are cancelled and awaited.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from http import HTTPStatus
from types import TracebackType
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve
from websockets.exceptions import ConnectionClosed
from websockets.http11 import Request, Response

from . import codes, protocol
from .dispatch import DEFAULT_MAX_BATCH, Dispatcher
from .registry import Registry
from .session import DEFAULT_MAX_SUBSCRIPTIONS, DEFAULT_SUBSCRIPTION_BUFFER, Send, Session
from .tools import builtin_tools
from .topics import Topics, builtin_topics

__all__ = ["BINARY_FRAME_REPLY", "DEFAULT_MAX_IN_FLIGHT", "DEFAULT_MAX_MESSAGE_SIZE", "PATHS", "RpcServer"]

logger = logging.getLogger("rpc_server")

PATHS = ("/", "/ws")
DEFAULT_MAX_IN_FLIGHT = 128
DEFAULT_MAX_MESSAGE_SIZE = 2**20

# JSON-RPC is text: a binary frame is refused as an Invalid Request, and the
# connection stays open, since the peer may well send text next.
BINARY_FRAME_REPLY = protocol.encode(
    protocol.error(codes.INVALID_REQUEST, "binary frames are not accepted: send JSON-RPC as text frames")
)


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
    ) -> None:
        if max_in_flight < 1:
            raise ValueError("max_in_flight must be at least 1")
        self.dispatcher = Dispatcher(registry if registry is not None else builtin_tools(), max_batch=max_batch)
        self.host = host
        self.max_in_flight = max_in_flight
        self._port = port
        self._max_message_size = max_message_size
        self._compression = compression
        self.topics = topics if topics is not None else builtin_topics()
        self.max_subscriptions = max_subscriptions
        self.subscription_buffer = subscription_buffer
        self._server: Server | None = None

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Bind and start accepting connections."""
        self._server = await serve(
            self._serve_connection,
            self.host,
            self._port,
            compression="deflate" if self._compression else None,
            max_size=self._max_message_size,
            process_request=_only_known_paths,
        )
        self._port = int(self._server.sockets[0].getsockname()[1])

    @property
    def port(self) -> int:
        """The port bound (the real one when 0 was asked for)."""
        if self._server is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"ws://{host}:{self.port}/ws"

    def close(self) -> None:
        """Stop accepting, and close every connection (code 1001, going away)."""
        if self._server is not None:
            self._server.close()

    async def wait_closed(self) -> None:
        if self._server is not None:
            await self._server.wait_closed()

    async def serve_forever(self) -> None:
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

    # -- one connection --------------------------------------------------------

    async def _serve_connection(self, ws: ServerConnection) -> None:
        async def send(message: bytes) -> None:
            try:
                await ws.send(message, text=True)
            except ConnectionClosed:
                pass  # the read loop sees the close too, and cleans up

        session = Session(
            send,
            topics=self.topics,
            max_subscriptions=self.max_subscriptions,
            subscription_buffer=self.subscription_buffer,
        )
        dispatch = self.dispatcher.dispatch
        limit = self.max_in_flight
        running: set[asyncio.Task[None]] = set()
        room = asyncio.Event()
        closed: asyncio.Future[None] | None = None  # watched only once the cap is reached

        def finished(task: asyncio.Future[Any]) -> None:
            running.discard(task)  # type: ignore[arg-type]
            room.set()

        try:
            async for message in ws:
                reply = dispatch(message, session) if type(message) is str else BINARY_FRAME_REPLY
                if reply is None:
                    continue
                if type(reply) is bytes:
                    await ws.send(reply, text=True)
                    continue
                task = asyncio.create_task(_send_when_ready(send, reply))  # type: ignore[arg-type]
                running.add(task)
                task.add_done_callback(finished)
                if len(running) >= limit:
                    # Stop reading, but not so deaf that a close goes unseen:
                    # the close is what cancels the calls we are waiting on.
                    if closed is None:
                        closed = asyncio.ensure_future(ws.wait_closed())
                        closed.add_done_callback(finished)
                    while len(running) >= limit and not closed.done():
                        room.clear()
                        await room.wait()
                    if closed.done():
                        break
        except ConnectionClosed:
            pass
        finally:
            if closed is not None:
                closed.cancel()
            for task in running:
                task.cancel()
            if running:
                await asyncio.gather(*running, return_exceptions=True)
            await session.close()


async def _send_when_ready(send: Send, reply: Awaitable[bytes | None]) -> None:
    response = await reply
    if response is not None:
        await send(response)


def _only_known_paths(connection: ServerConnection, request: Request) -> Response | None:
    if request.path.partition("?")[0] in PATHS:
        return None
    return connection.respond(HTTPStatus.NOT_FOUND, "Not Found: the WebSocket endpoints are / and /ws\n")
