"""Topics across servers through a real Redis: events cross, a plain program publishes, a lost Redis is told."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import pytest
from websockets.asyncio.client import ClientConnection, connect

from rpc_server import RpcServer, Topics, builtin_tools, builtin_topics, codes
from rpc_server.broker import AsyncPublisher, Publisher, publish
from rpc_server.service import Service
from tests.rpc_server.test_handshake import http_get
from tests.rpc_server.wire import receive, rpc

from .processes import RedisServer, wait_for


def _topics() -> Topics:
    topics = builtin_topics()
    topics.add("news")
    return topics


@pytest.fixture
async def two_services(redis_server: RedisServer) -> AsyncIterator[tuple[Service, Service]]:
    """Two servers in this process, each with its own broker connection to the same Redis."""
    async with AsyncExitStack() as stack:
        services = []
        for _ in range(2):
            server = RpcServer(builtin_tools(), port=0, topics=_topics())
            service = Service(server, broker=redis_server.url, metrics=False)
            assert service.broker is not None
            service.broker._backoff_s = 0.05  # reconnect soon in the test
            services.append(await stack.enter_async_context(service))
        yield services[0], services[1]


async def _subscribe(ws: ClientConnection, topic: str = "news") -> str:
    answer = await rpc(ws, "rpc.subscribe", {"topic": topic})
    assert "result" in answer, answer
    return str(answer["result"])


async def test_an_event_published_on_one_server_reaches_the_subscribers_of_both_once(
    two_services: tuple[Service, Service],
) -> None:
    """Published on B, an event reaches A's subscriber through Redis and B's own once (its echo is skipped)."""
    a, b = two_services
    async with connect(a.server.url) as on_a, connect(b.server.url) as on_b:
        await _subscribe(on_a)
        await _subscribe(on_b)
        b.server.publish("news", {"n": 1})
        b.server.publish("news", {"n": 2})
        for ws in (on_a, on_b):
            events = [await receive(ws), await receive(ws)]
            assert [e["params"]["event"] for e in events] == [{"n": 1}, {"n": 2}]
        # Nothing more: B's subscriber did not get its server's events twice.
        a.server.publish("news", {"n": 3})
        assert (await receive(on_b))["params"]["event"] == {"n": 3}


async def test_a_plain_program_publishes_through_the_broker_without_a_server(
    two_services: tuple[Service, Service], redis_server: RedisServer
) -> None:
    """rpc_server.broker.publish reaches every server's subscribers, and says how many processes heard it."""
    a, b = two_services
    async with connect(a.server.url) as on_a, connect(b.server.url) as on_b:
        await _subscribe(on_a)
        await _subscribe(on_b)
        heard = await asyncio.to_thread(publish, redis_server.url, "news", {"headline": "shipped"})
        assert heard == 2
        for ws in (on_a, on_b):
            assert (await receive(ws))["params"] == {
                "subscription": "1",
                "topic": "news",
                "event": {"headline": "shipped"},
            }
        with Publisher(redis_server.url) as publisher, pytest.raises(TypeError):
            publisher.publish("news", object())  # JSON cannot carry it: the publisher hears so
        async with AsyncPublisher(redis_server.url) as publisher:  # the same from asyncio code
            assert await publisher.publish("news", {"headline": "async"}) == 2
        for ws in (on_a, on_b):
            assert (await receive(ws))["params"]["event"] == {"headline": "async"}


async def test_a_broker_on_another_database_is_not_heard(
    two_services: tuple[Service, Service], redis_server: RedisServer
) -> None:
    """Redis channels ignore the database number; the channel names carry it, so databases stay apart."""
    a, _ = two_services
    async with connect(a.server.url) as on_a:
        await _subscribe(on_a)
        other_db = redis_server.url.rsplit("/", 1)[0] + "/3"
        assert await asyncio.to_thread(publish, other_db, "news", {"wrong": "db"}) == 0
        await asyncio.to_thread(publish, redis_server.url, "news", {"right": "db"})
        assert (await receive(on_a))["params"]["event"] == {"right": "db"}


async def test_losing_redis_ends_subscriptions_and_readiness_calls_go_on_and_it_reconnects(
    two_services: tuple[Service, Service], redis_server: RedisServer
) -> None:
    """Redis gone: rpc.unsubscribed with the reason, /readyz 503, calls answered, -32010; back: subscriptions work."""
    a, b = two_services
    async with connect(a.server.url) as on_a:
        subscription = await _subscribe(on_a)
        status, _, _ = await http_get(a.server.port, "/readyz")
        assert status == 200
        redis_server.stop()
        told = await receive(on_a)
        assert told["method"] == "rpc.unsubscribed"
        assert told["params"]["subscription"] == subscription
        assert "broker" in told["params"]["reason"]
        status, _, body = await http_get(a.server.port, "/readyz")
        assert status == 503 and b"broker" in body
        assert (await rpc(on_a, "multiply", [6, 7], id=2))["result"] == 42
        refused = await rpc(on_a, "rpc.subscribe", {"topic": "news"}, id=3)
        assert refused["error"]["code"] == codes.BROKER_UNAVAILABLE
        # The built-in clock has a source of its own: it does not need the broker.
        assert "result" in await rpc(on_a, "rpc.subscribe", {"topic": "clock", "params": {"interval": 60}}, id=4)

        await redis_server.start()  # the same port again
        assert a.broker is not None and b.broker is not None
        await wait_for(lambda: a.broker.available and b.broker.available, 20.0, "both brokers to reconnect")  # type: ignore[union-attr]
        status, _, _ = await http_get(a.server.port, "/readyz")
        assert status == 200
        await _subscribe(on_a)
        b.server.publish("news", {"after": "reconnect"})
        assert (await receive(on_a))["params"]["event"] == {"after": "reconnect"}


async def test_a_server_started_while_redis_is_down_serves_and_is_not_ready(redis_server: RedisServer) -> None:
    """The first connection fails: the server listens and answers calls, /readyz is 503 until Redis comes."""
    redis_server.stop()
    server = RpcServer(builtin_tools(), port=0, topics=_topics())
    async with Service(server, broker=redis_server.url, metrics=False) as service:
        assert service.broker is not None and not service.broker.available
        status, _, _ = await http_get(server.port, "/readyz")
        assert status == 503
        async with connect(server.url) as ws:
            assert (await rpc(ws, "multiply", [2, 3]))["result"] == 6
