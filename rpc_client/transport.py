"""The transport boundary: what the client needs from a connection, and nothing more.

A :class:`Transport` moves whole text messages; it knows nothing of JSON-RPC.
A :data:`Connector` opens one. :mod:`.websocket` is the real one;
:mod:`.memory` is an in-memory pair for tests, the way httpx's ``MockTransport``
lets a client be tested with no network.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Protocol, TypeAlias

__all__ = ["Connector", "Transport"]


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
