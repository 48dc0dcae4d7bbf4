"""Subscriptions: ``async with client.subscribe(topic) as events: async for event in events:``.

Entering the block sends ``rpc.subscribe``; the subscription id it answers is
filed with the correlation table as the answer is read, so the events that
follow it at once are not lost. Its ``rpc.event`` notifications then wait in
a bounded :class:`~rpc_client.push.Inbox` until the block takes them, as
:class:`~rpc_client.push.Event` values. Leaving the block sends
``rpc.unsubscribe``.

The iteration ends when the server ends the subscription itself
(``rpc.unsubscribed``; its reason is kept in :attr:`Subscription.reason`),
and raises the connection error when the connection is lost.
"""

from __future__ import annotations

import contextlib
from types import TracebackType
from typing import Any

from .errors import ProtocolError, RpcConnectionError
from .exchange import Exchange
from .messages import Params, notification_bytes, request_bytes, unwrap
from .pending import is_id
from .push import Event, Inbox, dropped_count
from .streams import short_json
from .transport import Link

__all__ = ["Subscription"]


class Subscription:
    """One subscription to a topic; made by :meth:`Client.subscribe <rpc_client.client.Client.subscribe>`.

    Attributes:
        topic: the topic's name.
        id: the subscription id the server gave, once subscribed.
        reason: why the server ended the subscription, if it did.
    """

    def __init__(self, exchange: Exchange, topic: str, params: Params, *, timeout: float | None, buffer: int) -> None:
        self.topic = topic
        self.id: Any = None
        self.reason: str | None = None
        self._exchange = exchange
        self._params = params
        self._timeout = timeout
        self._inbox = Inbox(limit=buffer)
        self._ended = False
        self._link: Link | None = None  # the connection it was made on

    @property
    def active(self) -> bool:
        """Whether events may still come: subscribed, and not ended by either side."""
        return self.id is not None and not self._ended

    async def __aenter__(self) -> Subscription:
        """Send ``rpc.subscribe``.

        Raises:
            RpcError: the server refused: an unknown topic or bad params (-32602),
                too many subscriptions (-32001 on this project's server).
            ProtocolError: its answer is not a subscription id.
            CallTimeout, RpcConnectionError: as for a call.
        """
        if self.id is not None:
            raise RuntimeError(f"already subscribed to {self.topic!r} as {self.id!r}")
        exchange = self._exchange
        body: dict[str, Any] = {"topic": self.topic}
        if self._params:
            body["params"] = self._params
        id = exchange.pending.next_id()
        data = request_bytes("rpc.subscribe", body, id)
        (outcome,) = await exchange.exchange(
            data, [id], f"rpc.subscribe to {self.topic!r}", self._timeout, listener=self._inbox, subscription=True
        )
        # The connection that answered (a lost one would have failed the call instead).
        self._link = exchange.link
        if isinstance(outcome, BaseException):
            raise outcome
        subscription = unwrap(outcome)
        if not is_id(subscription):
            raise ProtocolError(f"the answer to rpc.subscribe is not a subscription id: {short_json(subscription)}")
        self.id = subscription
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Leaving on cancellation (or Ctrl-C in the sync facade): do not hold the way out for an answer.
        await self.unsubscribe(wait=exc_type is None or issubclass(exc_type, Exception))

    async def unsubscribe(self, *, wait: bool = True) -> None:
        """End the subscription: no event is taken from now on; a second call does nothing.

        Args:
            wait: wait for the server's answer (so no more events are published
                to it once this returns); else send ``rpc.unsubscribe`` as a
                notification in the background.

        Raises:
            RpcError, CallTimeout: the server refused, or did not answer in time.
        """
        exchange = self._exchange
        if self.id is None or self._ended:
            return
        self._ended = True
        link = exchange.link
        if link is None or link is not self._link:
            return  # ended with its connection; the same id on a new one is another subscription
        if not exchange.pending.forget(self.id, self._inbox):
            return  # ended by the server
        body = {"subscription": self.id}
        if not wait:
            exchange.send_in_background(
                link, notification_bytes("rpc.unsubscribe", body), f"rpc.unsubscribe for {self.id!r}"
            )
            return
        id = exchange.pending.next_id()
        what = f"rpc.unsubscribe for {self.id!r}"
        with contextlib.suppress(RpcConnectionError):  # the server drops it with the connection anyway
            (outcome,) = await exchange.exchange(request_bytes("rpc.unsubscribe", body, id), [id], what, self._timeout)
            if isinstance(outcome, BaseException):
                raise outcome
            unwrap(outcome)

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Event:
        """The next event.

        Raises:
            StopAsyncIteration: the subscription ended (by the server, or by leaving the block).
            RpcConnectionError: the connection was lost; the events that came before it were all taken.
        """
        if self.id is None:
            raise RuntimeError("iterate a subscription inside its 'async with' block")
        if self._ended and not self._inbox:
            raise StopAsyncIteration
        pushed = await self._inbox.get()
        if pushed is None:  # only a call's inbox ends this way; kept for safety
            raise StopAsyncIteration
        method, params = pushed
        if method == "rpc.unsubscribed":
            self._ended = True
            reason = params.get("reason")
            self.reason = reason if isinstance(reason, str) else "the server ended the subscription"
            raise StopAsyncIteration
        topic = params.get("topic")
        return Event(
            data=params.get("event"),
            topic=topic if isinstance(topic, str) else self.topic,
            subscription=self.id,
            dropped=dropped_count(params),
        )

    def __repr__(self) -> str:
        state = "active" if self.active else "ended" if self._ended else "not subscribed"
        return f"<Subscription {self.topic!r} id={self.id!r} {state}>"
