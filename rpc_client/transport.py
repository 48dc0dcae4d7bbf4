"""The transport boundary: what the client needs from a connection, and nothing more.

A :class:`Transport` moves whole text messages; it knows nothing of JSON-RPC.
A :data:`Connector` opens one. :mod:`.websocket` is the real one;
:mod:`.memory` is an in-memory pair for tests, the way httpx's ``MockTransport``
lets a client be tested with no network.

The client drives a connection as a :class:`Link`: messages go out without an
await (those of one event-loop turn leave in one write) and come in by
callback, with no task or future per message. The WebSocket connection of
:mod:`.websocket` is a Link itself; any other Transport is driven through
:class:`TransportLink`, which sends from a task and reads from another.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, TypeAlias

from .errors import ConnectionLost

__all__ = ["Connector", "Link", "Transport", "TransportLink", "as_link"]

logger = logging.getLogger("rpc_client")

# How long close() lets the messages still queued go out before it closes the connection.
_FLUSH_TIMEOUT = 1.0


class Transport(Protocol):
    """One open connection carrying text messages both ways."""

    async def send(self, text: str) -> None:
        """Send one message.

        Raises:
            ConnectionLost: the connection is closed.
        """

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        """The messages received, in order, until the connection closes; then the iteration ends."""
        ...

    @property
    def close_reason(self) -> str:
        """Why the connection closed, as a phrase ("the server closed it: 1001 (going away)")."""
        ...

    async def close(self) -> None:
        """Close the connection, and wait until it is closed; closing twice is harmless."""


# Opens a connection to a URL, or raises ConnectError saying why it could not.
Connector: TypeAlias = Callable[[str], Awaitable[Transport]]

# What the client is handed: each message received, then (once) the news that no more will come.
OnMessage: TypeAlias = Callable[[bytes | str], None]
OnLost: TypeAlias = Callable[[], None]


class Link(Protocol):
    """A connection as the client drives it: writes without waiting, reads by callback."""

    def write(self, data: bytes) -> None:
        """Queue one text message (UTF-8); it goes out with the others written in this loop turn, in order.

        Raises:
            ConnectionLost: the connection is closed.
        """

    @property
    def writing_paused(self) -> bool:
        """Whether the peer reads slower than we write: a writer with no answer to wait for awaits :meth:`drained`."""
        ...

    async def drained(self) -> None:
        """Return once writing is no longer paused (at once when it is not), or the connection is gone."""

    def start(self, on_message: OnMessage, on_lost: OnLost) -> None:
        """Hand every message received to ``on_message``, in order, then call ``on_lost`` once it closes.

        Both are called from the event loop and must not block.
        """

    @property
    def close_reason(self) -> str:
        """As :attr:`Transport.close_reason`."""
        ...

    async def close(self) -> None:
        """As :meth:`Transport.close`."""


def as_link(transport: Transport | Link) -> Link:
    """A connection as a :class:`Link`: itself when it is one, else a :class:`TransportLink` around it."""
    # By its type's methods: isinstance() on a runtime-checkable Protocol would read the
    # instance's properties (close_reason), which a Transport may not answer before it closes.
    kind = type(transport)
    if all(callable(getattr(kind, name, None)) for name in ("write", "start", "drained", "close")):
        return transport  # type: ignore[return-value]
    return TransportLink(transport)  # type: ignore[arg-type]


class TransportLink:
    """Any :class:`Transport` driven as a :class:`Link`: one task sends, in order; one task reads.

    Args:
        transport: the open connection.
        high_water: the messages queued to send past which writing counts as paused.
    """

    def __init__(self, transport: Transport, high_water: int = 64) -> None:
        self.transport = transport
        self._high_water = high_water
        self._outgoing: collections.deque[bytes] = collections.deque()
        self._sender: asyncio.Task[None] | None = None
        self._reader: asyncio.Task[None] | None = None
        self._drained: asyncio.Event = asyncio.Event()
        self._drained.set()
        self._lost = False

    def write(self, data: bytes) -> None:
        if self._lost:
            raise ConnectionLost(f"the connection is closed ({self.transport.close_reason})")
        self._outgoing.append(data)
        if len(self._outgoing) >= self._high_water:
            self._drained.clear()
        if self._sender is None:
            self._sender = asyncio.get_running_loop().create_task(self._send_all(), name="rpc_client sender")

    @property
    def writing_paused(self) -> bool:
        return not self._drained.is_set()

    async def drained(self) -> None:
        await self._drained.wait()

    def start(self, on_message: OnMessage, on_lost: OnLost) -> None:
        self._reader = asyncio.get_running_loop().create_task(self._read(on_message, on_lost), name="rpc_client reader")

    @property
    def close_reason(self) -> str:
        return self.transport.close_reason

    async def close(self) -> None:
        sender = self._sender
        if sender is not None and sender is not asyncio.current_task():
            # What was written before (rpc.cancel for calls just abandoned) goes out before the close.
            await asyncio.wait([sender], timeout=_FLUSH_TIMEOUT)
        await self.transport.close()
        for task in (self._sender, self._reader):
            if task is not None and task is not asyncio.current_task():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _send_all(self) -> None:
        outgoing = self._outgoing
        try:
            while outgoing:
                data = outgoing.popleft()
                if len(outgoing) < self._high_water:
                    self._drained.set()
                try:
                    await self.transport.send(data.decode())
                except ConnectionLost as exc:
                    # Best effort: a closing connection fails the calls by itself, through the reader.
                    logger.debug("could not send %.100s: %s", data.decode(errors="replace"), exc)
        except Exception:
            logger.exception("sending on the connection failed")
        finally:
            self._sender = None
            self._drained.set()

    async def _read(self, on_message: OnMessage, on_lost: OnLost) -> None:
        try:
            async for message in self.transport:
                on_message(message)
        except Exception:
            # A failing transport must still fail the calls waiting on it, never leave them hanging.
            logger.exception("the connection failed")
        self._lost = True
        self._outgoing.clear()
        self._drained.set()
        on_lost()
        await self.transport.close()
