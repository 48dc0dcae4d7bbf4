"""Per-connection protocol state: calls running by id, subscriptions, and push.

A :class:`Session` is what one connection has beyond single messages: the
calls still running (so ``rpc.cancel`` can find them), its subscriptions, and
the way to push notifications to its peer. It does no I/O of its own; the
transport hands it a ``send`` coroutine function. A :class:`Context` is the
view of it that a tool gets when it asks for one.

The wire convention for push (methods under ``rpc.``, which the specification
reserves for extensions), in the spirit of LSP's ``$/progress`` and partial
results and MCP's ``notifications/progress``:

- a request opts in with the extra member ``"stream": true``;
- ``rpc.part`` ``{"id": request id, "value": part}``: one part of a streamed result;
- ``rpc.progress`` ``{"id": request id, "done": n, "total": m|null, "message": text|null}``;
- the call then ends with its normal response (for a streamed call, the
  number of parts sent, so the caller can tell that none was lost);
- ``rpc.cancel`` ``{"id": request id}`` (a notification, like LSP's
  ``$/cancelRequest``) cancels a running call, which answers -32800;
- ``rpc.subscribe``/``rpc.unsubscribe`` and ``rpc.event``/``rpc.unsubscribed``:
  see :mod:`.topics`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

from . import protocol
from .config import Limits

__all__ = [
    "DEFAULT_MAX_SUBSCRIPTIONS",
    "DEFAULT_MAX_SUBSCRIPTIONS_TOTAL",
    "DEFAULT_SUBSCRIPTION_BUFFER",
    "TOPIC_PREFIX",
    "Bucket",
    "Held",
    "Send",
    "Session",
    "TopicDirectory",
]

Send = Callable[[bytes], Awaitable[None]]

# A topic as the caller's permissions name it: subscribing to "clock" needs "topic:clock".
TOPIC_PREFIX = "topic:"


class Held(Protocol):
    """A subscription as its session holds it (made by :mod:`.topics`)."""

    id: str

    def cancel(self) -> list[asyncio.Task[None]]:
        """Stop it at once; returns its tasks, to await if wanted."""
        ...

    def end(self, reason: str) -> list[asyncio.Task[None]]:
        """Stop its source; what it queued still goes out, then ``rpc.unsubscribed`` with ``reason``."""
        ...


class Bucket(Protocol):
    """A rate limit's allowance, shared by the connections of one identity (see :mod:`.ratelimit`)."""

    def take(self) -> bool:
        """Spend one call; False when there is none left."""
        ...

    def retry_after(self) -> float:
        """Seconds until the next call would be allowed."""
        ...


class TopicDirectory(Protocol):
    """What the ``rpc.subscribe`` method needs of the server's topics (:class:`~.topics.Topics`)."""

    def get(self, name: str) -> Any: ...

    def names(self) -> list[str]: ...

    def subscribe(self, topic: Any, params: Any, session: Session) -> Held: ...

    def publish(self, name: str, event: Any) -> int: ...

    def count(self) -> int:
        """The subscriptions held now, by all connections together."""
        ...


DEFAULT_MAX_SUBSCRIPTIONS = Limits().max_subscriptions
DEFAULT_MAX_SUBSCRIPTIONS_TOTAL = Limits().max_subscriptions_total
DEFAULT_SUBSCRIPTION_BUFFER = Limits().subscription_buffer


async def _discard(_: bytes) -> None:
    pass


class Session:
    """The state of one connection; see the module docstring.

    Args:
        send: sends one encoded message to the peer; must not raise when the
            peer is gone (the transport drops what it cannot send).
        topics: what can be subscribed to; none when not given.
        max_subscriptions: subscriptions this connection may hold at once.
        subscription_buffer: events kept per subscription for a slow reader.
        max_subscriptions_total: subscriptions all connections together may hold.
    """

    def __init__(
        self,
        send: Send = _discard,
        *,
        topics: TopicDirectory | None = None,
        max_subscriptions: int = DEFAULT_MAX_SUBSCRIPTIONS,
        subscription_buffer: int = DEFAULT_SUBSCRIPTION_BUFFER,
        max_subscriptions_total: int = DEFAULT_MAX_SUBSCRIPTIONS_TOTAL,
    ) -> None:
        self.send = send
        self.topics = topics
        self.max_subscriptions = max_subscriptions
        self.max_subscriptions_total = max_subscriptions_total
        self.subscription_buffer = subscription_buffer
        # Calls by request id (a notification's by its task); None until the call's task has started.
        self.running: dict[Any, asyncio.Task[Any] | None] = {}
        self.cancelling: set[Any] = set()
        # Async calls dispatched so far: the transport counts a message's calls by the difference.
        self.started = 0
        # Ids of batch members cancelled while their batch waited to be read; answered -32800 unrun.
        self.queued_cancels: set[Any] = set()
        # Set by cancel_all(): every call, running or yet to start, is cancelled, with this as the reason.
        self.cancel_reason: str | None = None
        # The rate limit this connection's calls draw on (None: no limit). Set by the transport.
        self.bucket: Bucket | None = None
        self.subscriptions: dict[str, Held] = {}
        # Who the caller is, once the handshake authenticated it (for logs), and
        # which methods it may call (None: all of them). Set by the transport.
        self.identity: str | None = None
        self.allowed: Callable[[str], bool] | None = None
        # The URL the client connected to (for rpc.discover's servers), set by the transport.
        self.endpoint: str | None = None

    def permits(self, method: str) -> bool:
        """Whether this connection's caller may call ``method`` (a topic: ``topic:NAME``)."""
        allowed = self.allowed
        return allowed is None or allowed(method)

    async def notify(self, method: str, params: dict[str, Any]) -> None:
        """Push a notification to the peer."""
        await self.send(protocol.encode({"jsonrpc": "2.0", "method": method, "params": params}))

    def cancel(self, id: Any) -> bool:
        """Cancel the running call with this id; False when there is none."""
        if id not in self.running:
            return False
        task = self.running[id]
        if task is not None and task.done():
            return False
        self.cancelling.add(id)
        if task is not None:
            task.cancel()
        # else it has not started: it answers -32800 as it starts (see Dispatcher._run).
        return True

    def cancel_all(self, reason: str) -> None:
        """Cancel every call, those not yet started included; each with an id answers -32800 with ``reason``."""
        self.cancel_reason = reason
        for key in list(self.running):
            self.cancel(key)

    async def close(self) -> None:
        """End every subscription, and wait for their tasks; the transport cancels the running calls."""
        tasks = [task for subscription in list(self.subscriptions.values()) for task in subscription.cancel()]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        # A closed session pushes nothing. Dropping the transport's send also breaks
        # the cycle connection -> session -> send -> connection, which would otherwise
        # keep each closed connection's buffers until a full garbage collection.
        self.send = _discard
