"""Subscriptions: topics a client can subscribe to, and how events reach it.

``rpc.subscribe`` ``{"topic": name, "params": ...}`` answers a subscription
id; events then arrive as ``rpc.event`` notifications
``{"subscription": id, "topic": name, "event": value}`` until
``rpc.unsubscribe`` ``{"subscription": id}`` or the connection closes. When the
server ends a subscription itself (its source finished or failed) it says so
with ``rpc.unsubscribed`` ``{"subscription": id, "reason": text}``.

A topic gets events from application code (:meth:`Topics.publish`, to every
subscriber) and/or from a source: an async generator started for each
subscription with that subscription's params (the built-in ``clock``).

A slow subscriber never makes memory grow: each subscription keeps at most
A slow subscriber never makes memory grow: each subscription keeps at most
``buffer`` events. A topic fed by a source stops taking events from it while
the buffer is full, so a subscriber that does not read costs no CPU (issue 9:
640 clocks ticking for peers that never read took 96% of a core). For a
topic fed by :meth:`Topics.publish`, when one more event arrives the oldest
is dropped, and the next event delivered carries ``"dropped": n``, the count
lost since the last one. Publishing never waits for a subscriber, so one slow
subscriber slows no one.

Events cross processes (workers, replicas) when a :class:`Relay` is set
(:mod:`.broker` is one, over Redis): :meth:`Topics.publish` then hands each
event to the relay too, and the relay brings the other processes' events in
through :meth:`Topics.deliver`. While the relay cannot carry events, the
subscriptions to topics without a source are ended (``rpc.unsubscribed`` with
the reason) and new ones are refused with -32010: a subscriber is never left
waiting for events that cannot come.
"""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import codes, protocol
from . import schema as schemas
from .errors import ToolError
from .session import Session

__all__ = ["Relay", "Subscription", "Topic", "Topics", "builtin_topics", "clock"]

logger = logging.getLogger("rpc_server")

Source = Callable[..., AsyncIterator[Any]]

_NO_PARAMS_SCHEMA = {
    "$schema": schemas.DRAFT,
    "if": {"type": "array"},
    "then": {"type": "array", "maxItems": 0},
    "else": {"type": "object", "additionalProperties": False},
}


@dataclass(slots=True, eq=False)
class Topic:
    """A named stream of events; ``source`` (optional) runs once per subscription."""

    name: str
    source: Source | None
    schema: dict[str, Any]
    validate: schemas.Validator = field(repr=False)
    subscribers: set[Subscription] = field(default_factory=set, repr=False)
    # Events dropped for slow subscribers since the start, for the metrics.
    dropped: int = 0


class Relay(Protocol):
    """Carries published events to the other processes serving the same topics (:mod:`.broker`)."""

    @property
    def available(self) -> bool:
        """Whether events published elsewhere can reach this process now."""
        ...

    def send(self, topic: str, data: bytes) -> None:
        """Pass on an event published here, already encoded as JSON; never waits."""


# Queued after a source's last event: the pump then says the subscription is over.
_END = object()


class Subscription:
    """One client's subscription to a topic, with its bounded buffer and its pump task.

    The source (if any) is started before the pump, so a source that cannot
    start leaves nothing behind. The source is iterated only while the
    buffer has room: it waits, rather than produce events to drop.
    """

    def __init__(self, id: str, topic: Topic, session: Session, buffer: int, params: Any) -> None:
        self.id = id
        self.topic = topic
        self.session = session
        self.pending: collections.deque[Any] = collections.deque()
        self.buffer = buffer
        self.dropped = 0
        self._ready = asyncio.Event()
        self._room = asyncio.Event()  # set when the pump takes an event from a full buffer
        self._end_reason = ""
        self._source: asyncio.Task[None] | None = None
        if topic.source is not None:
            agen = topic.source(*params) if type(params) is list else topic.source(**params)
            self._source = asyncio.create_task(self._feed(agen), name=f"subscription {id} source")
        self._pump = asyncio.create_task(self._deliver(), name=f"subscription {id} pump")

    def offer(self, event: Any) -> None:
        """Queue an event without waiting; the oldest goes when the buffer is full."""
        if len(self.pending) >= self.buffer:
            self.pending.popleft()
            self.dropped += 1
            self.topic.dropped += 1
        self.pending.append(event)
        self._ready.set()

    async def _feed(self, agen: AsyncIterator[Any]) -> None:
        reason = "the topic's source ended"
        try:
            async for event in agen:
                self.offer(event)
                while len(self.pending) >= self.buffer:
                    self._room.clear()
                    await self._room.wait()
        except Exception:
            logger.exception("the source of subscription %s (%s) failed", self.id, self.topic.name)
            reason = "the topic's source failed"
        finally:
            await agen.aclose()  # type: ignore[attr-defined]
        self.end(reason)

    async def _deliver(self) -> None:
        session = self.session
        while True:
            await self._ready.wait()
            self._ready.clear()
            while self.pending:
                event = self.pending.popleft()
                self._room.set()
                if event is _END:
                    await session.notify("rpc.unsubscribed", {"subscription": self.id, "reason": self._end_reason})
                    return
                params: dict[str, Any] = {"subscription": self.id, "topic": self.topic.name, "event": event}
                if self.dropped:
                    params["dropped"], self.dropped = self.dropped, 0
                try:
                    await session.notify("rpc.event", params)
                except (TypeError, ValueError, RecursionError):
                    # A source's event JSON cannot carry: skip it, keep the subscription.
                    logger.exception("an event of topic %r cannot be written as JSON; skipped", self.topic.name)

    def cancel(self) -> list[asyncio.Task[None]]:
        """Stop the source and the pump at once; returns their tasks, to await if wanted."""
        self.topic.subscribers.discard(self)
        self.session.subscriptions.pop(self.id, None)
        tasks = [t for t in (self._source, self._pump) if t is not None]
        for task in tasks:
            task.cancel()
        return tasks

    def end(self, reason: str) -> list[asyncio.Task[None]]:
        """End it from the server's side: its source stops, what was queued goes out, then ``rpc.unsubscribed``.

        Returns the pump's task, which ends once the notice (with ``reason``) is sent.
        """
        self.topic.subscribers.discard(self)
        self.session.subscriptions.pop(self.id, None)
        if self._source is not None and self._source is not asyncio.current_task():
            self._source.cancel()
        if not self._pump.done() and _END not in self.pending:
            self._end_reason = reason
            self.pending.append(_END)
            self._ready.set()
        return [self._pump]


class Topics:
    """The topics a server offers, by name.

    >>> topics = Topics()
    >>> topics.add("news")                      # fed by topics.publish("news", event)
    >>> @topics.source("ticks")                 # fed by a generator per subscription
    ... async def ticks(every: float = 1.0): ...
    """

    def __init__(self) -> None:
        self._topics: dict[str, Topic] = {}
        self._ids: Iterator[int] = itertools.count(1)
        # Carries events to and from other processes; None: this process only.
        self.relay: Relay | None = None

    def add(self, name: str, source: Source | None = None, *, schema: dict[str, Any] | None = None) -> Topic:
        """Offer a topic; with ``source``, its params schema comes from the signature unless given."""
        if name in self._topics:
            raise ValueError(f"a topic named {name!r} already exists")
        if schema is None:
            schema = schemas.from_signature(source) if source is not None else _NO_PARAMS_SCHEMA
        topic = Topic(name, source, schema, schemas.compile_params(schema, name))
        self._topics[name] = topic
        return topic

    def source(self, name: str, **options: Any) -> Callable[[Source], Source]:
        """Decorator form of :meth:`add` for an async generator source."""

        def decorate(fn: Source) -> Source:
            self.add(name, fn, **options)
            return fn

        return decorate

    def publish(self, name: str, event: Any) -> int:
        """Send ``event`` to every subscriber of ``name``; returns how many there are.

        Raises:
            KeyError: there is no such topic.
            TypeError: JSON cannot carry ``event`` (checked here, so the publisher
                hears of it rather than each subscriber's pump).
        """
        topic = self._topics[name]
        if self.relay is not None:
            self.relay.send(name, protocol.encode(event))
        elif topic.subscribers:
            protocol.encode(event)
        return self._offer(topic, event)

    def deliver(self, name: str, event: Any) -> int:
        """Give an event published in another process to this one's subscribers (for a :class:`Relay`).

        Returns:
            How many subscribers it reached; 0 for a topic this process does not offer.
        """
        topic = self._topics.get(name)
        return 0 if topic is None else self._offer(topic, event)

    @staticmethod
    def _offer(topic: Topic, event: Any) -> int:
        for subscription in topic.subscribers:
            subscription.offer(event)
        return len(topic.subscribers)

    def end_relayed(self, reason: str) -> int:
        """End every subscription to a topic without a source (fed only through publish); returns how many."""
        ended = 0
        for topic in self._topics.values():
            if topic.source is None:
                for subscription in list(topic.subscribers):
                    subscription.end(reason)
                    ended += 1
        return ended

    def get(self, name: str) -> Topic | None:
        return self._topics.get(name)

    def names(self) -> list[str]:
        return sorted(self._topics)

    def count(self) -> int:
        """The subscriptions held now, by all connections together."""
        return sum(len(topic.subscribers) for topic in self._topics.values())

    def subscribe(self, topic: Topic, params: Any, session: Session) -> Subscription:
        """Start a subscription of ``session`` to ``topic`` with params already validated.

        Raises:
            ToolError: -32010, the relay cannot bring this topic's events now.
        """
        if topic.source is None and self.relay is not None and not self.relay.available:
            raise ToolError(codes.BROKER_UNAVAILABLE, data="the event broker is unreachable; subscribe again later")
        subscription = Subscription(str(next(self._ids)), topic, session, session.subscription_buffer, params)
        topic.subscribers.add(subscription)
        session.subscriptions[subscription.id] = subscription
        return subscription


async def clock(interval: float = 1.0) -> AsyncIterator[dict[str, Any]]:
    """Tick every ``interval`` seconds: ``{"tick": n, "time": unix seconds}``.

    ``n`` counts intervals since the subscription began: after a pause (a
    subscriber that stopped reading), the ticks missed are skipped, not sent
    in a burst, and the next ``n`` shows the gap.
    """
    loop = asyncio.get_running_loop()
    start = loop.time()
    tick = 0
    while True:
        tick = max(tick + 1, int((loop.time() - start) / interval))
        # Sleep to the next multiple of interval, so ticks do not drift.
        await asyncio.sleep(max(0.0, start + tick * interval - loop.time()))
        yield {"tick": tick, "time": time.time()}


def builtin_topics() -> Topics:
    """A new set of topics holding the built-in ``clock``."""
    topics = Topics()
    topics.add("clock", clock, schema=schemas.load("topics/clock.json"))
    return topics
