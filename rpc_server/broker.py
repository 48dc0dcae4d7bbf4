"""Topics across processes: events relayed through Redis pub/sub.

Without a broker a topic lives in one process: an event published there
reaches that process's subscribers only. With ``--broker redis://HOST:PORT/DB``
(:class:`Broker`), every event published in any worker or replica goes through
Redis to every process serving the topic, and each delivers it to its own
subscribers through the same bounded, drop-oldest buffers (:mod:`.topics`).
A process delivers its own events to its own subscribers at once and skips
them when Redis echoes them back (each message names its origin), so a
publisher's local subscribers never wait on Redis.

Any Python program can publish without running a server: :func:`publish`
(one event), :class:`Publisher` (a connection kept for many), or
:class:`AsyncPublisher` in asyncio code.

On the wire, topic ``T`` is the Redis channel ``rpc-tools:DB:topic:T`` (Redis
channels ignore the database number, so it is part of the name: servers on
different databases of one Redis do not hear each other), and a message is
``{"origin": process id or "", "event": value}``.

If Redis goes away, :attr:`Broker.available` turns false (``/readyz`` answers
503), every subscription to a topic without a source ends with
``rpc.unsubscribed`` and the reason, ``rpc.subscribe`` to such a topic answers
-32010 until Redis is back, events published meanwhile are dropped (and
logged), and calls go on as before. The broker reconnects with exponential
backoff, and subscriptions are accepted again once it has.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import os
from types import TracebackType
from typing import Any

import orjson
import redis
import redis.asyncio as aioredis
from redis.connection import parse_url

from . import protocol
from .topics import Topics

__all__ = ["AsyncPublisher", "Broker", "Publisher", "channel_prefix", "publish"]

logger = logging.getLogger("rpc_server.broker")

# What a lost or refused Redis connection raises (redis-py's errors, and the socket's).
_GONE = (redis.RedisError, OSError, asyncio.TimeoutError)
_PING_EVERY_S = 5.0
_TIMEOUT_S = 5.0


def channel_prefix(url: str) -> str:
    """The prefix of the channels for ``url``'s database: ``rpc-tools:DB:topic:``."""
    return f"rpc-tools:{parse_url(url).get('db', 0)}:topic:"


def _where(url: str) -> str:
    """The URL without a password, for logs."""
    options = parse_url(url)
    if "path" in options:
        return f"unix://{options['path']} db {options.get('db', 0)}"
    return f"redis://{options.get('host', 'localhost')}:{options.get('port', 6379)}/{options.get('db', 0)}"


def _message(origin: bytes, data: bytes) -> bytes:
    # Written by hand around the event's JSON, which the caller has already encoded.
    return b'{"origin":"' + origin + b'","event":' + data + b"}"


class Publisher:
    """A connection to the broker for publishing from any program, with no server.

    >>> with Publisher("redis://127.0.0.1:6379/0") as publisher:  # doctest: +SKIP
    ...     publisher.publish("news", {"headline": "..."})

    Args:
        url: the broker, as the servers' ``--broker`` names it.
    """

    def __init__(self, url: str) -> None:
        self._client = redis.Redis.from_url(url, socket_connect_timeout=_TIMEOUT_S, socket_timeout=_TIMEOUT_S)
        self._prefix = channel_prefix(url)

    def publish(self, topic: str, event: Any) -> int:
        """Send ``event`` to every subscriber of ``topic`` on every server on this broker.

        Returns:
            How many server processes received it (0: none is listening).

        Raises:
            TypeError: JSON cannot carry ``event``.
            redis.RedisError: the broker cannot be reached.
        """
        data = protocol.encode(event)
        return int(self._client.publish(self._prefix + topic, _message(b"", data)))

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Publisher:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncPublisher:
    """:class:`Publisher` for asyncio programs (a web app's handlers): ``await publisher.publish(topic, event)``.

    Args:
        url: the broker, as the servers' ``--broker`` names it.
    """

    def __init__(self, url: str) -> None:
        self._client = aioredis.Redis.from_url(url, socket_connect_timeout=_TIMEOUT_S, socket_timeout=_TIMEOUT_S)
        self._prefix = channel_prefix(url)

    async def publish(self, topic: str, event: Any) -> int:
        """See :meth:`Publisher.publish`."""
        data = protocol.encode(event)
        return int(await self._client.publish(self._prefix + topic, _message(b"", data)))

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> AsyncPublisher:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def publish(url: str, topic: str, event: Any) -> int:
    """Publish one event on ``topic`` through the broker at ``url``; see :meth:`Publisher.publish`."""
    with Publisher(url) as publisher:
        return publisher.publish(topic, event)


class Broker:
    """Relays the events of a server's topics through Redis (a :class:`~.topics.Relay`).

    Use as ``async with Broker(url, server.topics):`` around the server; the
    first connection is tried before the block is entered, and retried in the
    background if it failed.

    Args:
        url: ``redis://[:password@]HOST:PORT/DB`` (or ``rediss://``, ``unix://``).
        topics: the server's topics; events published on them go out through
            Redis, and events from Redis come in to their subscribers.
        max_outgoing: events waiting to be sent to Redis; past it the oldest are dropped.
        backoff_s: the first delay before reconnecting; it doubles up to ``max_backoff_s``.
    """

    def __init__(
        self,
        url: str,
        topics: Topics,
        *,
        max_outgoing: int = 10_000,
        backoff_s: float = 0.5,
        max_backoff_s: float = 30.0,
    ) -> None:
        self.url = url
        self.where = _where(url)
        self.topics = topics
        self._prefix = channel_prefix(url)
        self._pattern = self._prefix + "*"
        self._origin = os.urandom(8).hex().encode()
        self._outgoing: collections.deque[tuple[str, bytes]] = collections.deque(maxlen=max_outgoing)
        self._wake = asyncio.Event()
        self._backoff_s = backoff_s
        self._max_backoff_s = max_backoff_s
        self._available = False
        self._lost_while_down = 0
        self._tried = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    # -- the Relay protocol ------------------------------------------------------

    @property
    def available(self) -> bool:
        """Whether the broker is connected and subscribed: events from elsewhere can arrive."""
        return self._available

    def send(self, topic: str, data: bytes) -> None:
        if not self._available:
            self._lost_while_down += 1
            return
        self._outgoing.append((self._prefix + topic, _message(self._origin, data)))
        self._wake.set()

    # -- lifecycle ---------------------------------------------------------------

    async def start(self) -> None:
        """Relay the topics' events, once the first attempt to connect has succeeded or failed."""
        self.topics.relay = self
        self._task = asyncio.create_task(self._run(), name="rpc broker")
        await self._tried.wait()

    async def close(self) -> None:
        """Stop relaying; the topics are local again."""
        if self.topics.relay is self:
            self.topics.relay = None
        self._available = False
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def __aenter__(self) -> Broker:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()

    # -- the connection ----------------------------------------------------------

    async def _run(self) -> None:
        delay = self._backoff_s
        while True:
            client = aioredis.Redis.from_url(
                self.url, socket_connect_timeout=_TIMEOUT_S, socket_keepalive=True, health_check_interval=_PING_EVERY_S
            )
            pubsub = client.pubsub(ignore_subscribe_messages=True)
            try:
                await asyncio.wait_for(pubsub.psubscribe(self._pattern), _TIMEOUT_S)
                self._up()
                delay = self._backoff_s
                await self._serve(client, pubsub)
            except _GONE as exc:
                self._down(exc, delay)
            except Exception as exc:  # a bug of ours: still no reason to stop relaying for good
                logger.exception("the event broker's relay failed")
                self._down(exc, delay)
            finally:
                with contextlib.suppress(*_GONE):
                    await pubsub.aclose()
                with contextlib.suppress(*_GONE):
                    await client.aclose()
            await asyncio.sleep(delay)
            delay = min(delay * 2, self._max_backoff_s)

    async def _serve(self, client: aioredis.Redis, pubsub: Any) -> None:
        """Receive, send and watch the connection until one of them fails."""
        tasks = [
            asyncio.create_task(self._receive(pubsub), name="rpc broker receive"),
            asyncio.create_task(self._send(client), name="rpc broker send"),
            asyncio.create_task(self._watch(client), name="rpc broker ping"),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        for task in done:
            task.result()  # the failure that ended it
        raise redis.ConnectionError("the connection to the broker ended")

    def _up(self) -> None:
        self._available = True
        self._tried.set()
        if self._lost_while_down:
            logger.warning(
                "event broker %s connected; %d events published while it was away were dropped",
                self.where,
                self._lost_while_down,
            )
        else:
            logger.info("event broker %s connected", self.where)
        self._lost_while_down = 0

    def _down(self, exc: BaseException, delay: float) -> None:
        was_available, self._available = self._available, False
        self._tried.set()
        self._outgoing.clear()
        reason = str(exc) or type(exc).__name__
        if was_available:
            ended = self.topics.end_relayed("the event broker is unreachable; subscribe again later")
            logger.error(
                "event broker %s lost (%s): %d subscriptions ended; reconnecting in %.1f s",
                self.where,
                reason,
                ended,
                delay,
            )
        else:
            logger.warning("event broker %s unreachable (%s); retrying in %.1f s", self.where, reason, delay)

    async def _receive(self, pubsub: Any) -> None:
        prefix_length = len(self._prefix)
        origin = self._origin
        deliver = self.topics.deliver
        while True:
            message = await pubsub.get_message(timeout=_PING_EVERY_S)
            if message is None or message.get("type") != "pmessage":
                continue
            try:
                envelope = orjson.loads(message["data"])
                if envelope["origin"].encode() == origin:
                    continue  # delivered here when it was published
                deliver(message["channel"][prefix_length:].decode(), envelope["event"])
            except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError, UnicodeDecodeError):
                logger.warning("a message on %r is not an event; ignored", message.get("channel"))

    async def _send(self, client: aioredis.Redis) -> None:
        outgoing = self._outgoing
        while True:
            await self._wake.wait()
            self._wake.clear()
            while outgoing:
                # One round trip for everything published since the last one.
                pipe = client.pipeline(transaction=False)
                for _ in range(min(len(outgoing), 1000)):
                    channel, message = outgoing.popleft()
                    pipe.publish(channel, message)
                await asyncio.wait_for(pipe.execute(), _TIMEOUT_S)

    async def _watch(self, client: aioredis.Redis) -> None:
        # A Redis that stops answering (not only one that closes the socket) counts as gone.
        while True:
            await asyncio.sleep(_PING_EVERY_S)
            await asyncio.wait_for(client.ping(), _TIMEOUT_S)
