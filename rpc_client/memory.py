"""An in-memory transport, for testing the client (and code built on it) with no socket.

:class:`MemoryConnector` is a :data:`~rpc_client.transport.Connector`: each
connection it opens is a :class:`MemoryTransport` pair, the client's end
returned to the client and the peer's end handed to the test, which reads the
requests and writes whatever answers it likes, in any order::

    connector = MemoryConnector()
    async with Client("memory://", connector=connector) as client:
        peer = await connector.accept()
        call = asyncio.ensure_future(client.call("multiply", 3, 4))
        request = json.loads(await peer.receive())
        await peer.send(json.dumps({"jsonrpc": "2.0", "result": 12, "id": request["id"]}))
        assert await call == 12
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from .errors import ConnectError, ConnectionLost

__all__ = ["MemoryConnector", "MemoryTransport"]

_CLOSED = object()


class MemoryTransport:
    """One end of an in-memory connection; :meth:`pair` makes both ends."""

    def __init__(self, name: str = "memory") -> None:
        self.name = name
        self._inbox: asyncio.Queue[object] = asyncio.Queue()
        self._peer: MemoryTransport | None = None
        self._reason: str | None = None

    @classmethod
    def pair(cls) -> tuple[MemoryTransport, MemoryTransport]:
        """Two connected ends: what one sends, the other receives."""
        a, b = cls("client end"), cls("peer end")
        a._peer, b._peer = b, a
        return a, b

    @property
    def closed(self) -> bool:
        return self._reason is not None

    async def send(self, text: str) -> None:
        if self._reason is not None or self._peer is None:
            raise ConnectionLost(f"the in-memory connection is closed ({self._reason or 'never opened'})")
        self._peer._inbox.put_nowait(text)

    async def receive(self) -> str | bytes:
        """The next message (for tests, on the peer's end).

        Raises:
            ConnectionLost: the connection closed first.
        """
        item = await self._inbox.get()
        if item is _CLOSED:
            self._inbox.put_nowait(_CLOSED)  # later receivers see the close too
            raise ConnectionLost(f"the in-memory connection is closed ({self._reason})")
        return item  # type: ignore[return-value]

    def __aiter__(self) -> AsyncIterator[str | bytes]:
        return self._messages()

    async def _messages(self) -> AsyncIterator[str | bytes]:
        while True:
            try:
                message = await self.receive()
            except ConnectionLost:
                return
            yield message

    @property
    def close_reason(self) -> str:
        return self._reason or "it is still open"

    async def close(self, reason: str | None = None) -> None:
        """Close both ends; each one's receive stream ends after the messages already sent to it."""
        if self._reason is not None:
            return
        self._reason = reason or f"closed by the {self.name}"
        self._inbox.put_nowait(_CLOSED)
        peer = self._peer
        if peer is not None and peer._reason is None:
            peer._reason = self._reason
            peer._inbox.put_nowait(_CLOSED)


class MemoryConnector:
    """Opens in-memory connections and hands their peer ends to the test.

    Set ``refuse`` to a reason to make the next connection attempts fail with
    :class:`ConnectError`, as a server that is down would.

    An in-memory connection has no opening handshake: the options a client
    would send with one (``additional_headers`` with its token, ``ssl``) are
    kept in ``options``, one dict per connection attempt, for a test to read.
    """

    def __init__(self) -> None:
        self.refuse: str | None = None
        self.options: list[dict[str, Any]] = []
        self.opened = 0
        self.refused = 0
        self._peers: asyncio.Queue[MemoryTransport] = asyncio.Queue()
        self._refusals: asyncio.Queue[str] = asyncio.Queue()

    async def __call__(self, url: str, **options: Any) -> MemoryTransport:
        self.options.append(options)
        if self.refuse is not None:
            self.refused += 1
            self._refusals.put_nowait(url)
            raise ConnectError(f"cannot connect to {url}: {self.refuse}")
        ours, theirs = MemoryTransport.pair()
        self.opened += 1
        self._peers.put_nowait(theirs)
        return ours

    async def accept(self) -> MemoryTransport:
        """The peer end of the next connection opened (waits for one)."""
        return await self._peers.get()

    async def next_refusal(self) -> None:
        """Wait until another connection attempt has been refused."""
        await self._refusals.get()
