"""Server push: streamed parts, progress, cancellation and subscriptions, over real sockets."""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from rpc_server import Context, Registry, RpcServer, Topics, builtin_tools, codes
from rpc_server.topics import clock

TIMEOUT = 5


def request(method: str, params: Any = None, id: Any = None, **extra: Any) -> str:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        message["params"] = params
    if id is not None:
        message["id"] = id
    return json.dumps({**message, **extra})


async def receive(ws: ClientConnection) -> Any:
    async with asyncio.timeout(TIMEOUT):
        return json.loads(await ws.recv())


async def receive_until_response(ws: ClientConnection, id: Any) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Everything pushed before the response to ``id``, and that response."""
    pushed = []
    while True:
        message = await receive(ws)
        if message.get("id") == id and "method" not in message:
            return pushed, message
        pushed.append(message)


async def test_streamed_parts_arrive_in_order_before_the_final_response(server: RpcServer) -> None:
    """count(5) with "stream": true pushes rpc.part 1..5 tied to its id, then answers the count."""
    async with connect(server.url) as ws:
        await ws.send(request("count", [5, 0], id=7, stream=True))
        pushed, response = await receive_until_response(ws, 7)
    assert [m["method"] for m in pushed] == ["rpc.part"] * 5
    assert [m["params"] for m in pushed] == [{"id": 7, "value": i} for i in range(1, 6)]
    assert "id" not in pushed[0]  # notifications, never answered
    assert response == {"jsonrpc": "2.0", "result": 5, "id": 7}


async def test_progress_reports_arrive_in_order_before_the_final_response(server: RpcServer) -> None:
    """long_task with "stream": true reports steps 1..10 of 10, then answers."""
    async with connect(server.url) as ws:
        await ws.send(request("long_task", [0.01], id="job", stream=True))
        pushed, response = await receive_until_response(ws, "job")
    assert [m["method"] for m in pushed] == ["rpc.progress"] * 10
    assert [(m["params"]["done"], m["params"]["total"]) for m in pushed] == [(i, 10) for i in range(1, 11)]
    assert {m["params"]["id"] for m in pushed} == {"job"}
    assert response["result"] == {"steps": 10, "seconds": 0.01}


async def test_a_caller_that_did_not_opt_in_gets_only_the_response(server: RpcServer) -> None:
    """Without "stream", a generator tool answers its parts as one list and nothing is pushed."""
    async with connect(server.url) as ws:
        await ws.send(request("count", [3, 0], id=1))
        await ws.send(request("long_task", [0.01], id=2))
        await ws.send(request("multiply", [3, 4], id=3))
        received = [await receive(ws) for _ in range(3)]
    assert all("method" not in m for m in received)
    assert {m["id"]: m["result"] for m in received} == {1: [1, 2, 3], 2: {"steps": 10, "seconds": 0.01}, 3: 12}


def cancellable_tools() -> tuple[Registry, dict[str, Any]]:
    seen: dict[str, Any] = {"started": asyncio.Event(), "cancelled": asyncio.Event()}
    registry = builtin_tools()

    @registry.tool
    async def wait_forever() -> None:
        seen["started"].set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen["cancelled"].set()
            raise

    return registry, seen


async def test_rpc_cancel_stops_the_tool_and_the_call_answers_32800(start_server: Any) -> None:
    """rpc.cancel makes the running tool see CancelledError, and its call answers -32800."""
    registry, seen = cancellable_tools()
    server = await start_server(registry)
    async with connect(server.url) as ws:
        await ws.send(request("wait_forever", id="w"))
        async with asyncio.timeout(TIMEOUT):
            await seen["started"].wait()
        await ws.send(request("rpc.cancel", {"id": "w"}))
        response = await receive(ws)
        assert response == {"jsonrpc": "2.0", "error": {"code": -32800, "message": "Request cancelled"}, "id": "w"}
        assert seen["cancelled"].is_set()
        # The connection carries on, and cancelling an unknown or finished id does nothing.
        await ws.send(request("rpc.cancel", ["w"]))
        await ws.send(request("rpc.cancel", ["never-sent"]))
        await ws.send(request("multiply", [2, 3], id=1))
        assert await receive(ws) == {"jsonrpc": "2.0", "result": 6, "id": 1}


async def test_a_cancelled_blocking_tool_answers_at_once_while_its_thread_finishes(start_server: Any) -> None:
    """A blocking tool cannot be interrupted: the call answers -32800 and the thread runs on."""
    release, started, finished = threading.Event(), threading.Event(), threading.Event()
    registry = Registry()

    @registry.tool(blocking=True)
    def block() -> str:
        started.set()
        release.wait(TIMEOUT)
        finished.set()
        return "done"

    server = await start_server(registry)
    async with connect(server.url) as ws:
        await ws.send(request("block", id=1))
        assert await asyncio.to_thread(started.wait, TIMEOUT)
        await ws.send(request("rpc.cancel", [1]))
        response = await receive(ws)
        assert response["error"]["code"] == codes.REQUEST_CANCELLED
        assert not finished.is_set()  # still held by release: the answer did not wait for it
        release.set()
        assert await asyncio.to_thread(finished.wait, TIMEOUT)


def news_topics() -> Topics:
    topics = Topics()
    topics.add("news")
    topics.add("clock", clock)
    return topics


async def subscribe(ws: ClientConnection, topic: str, params: Any = None, id: int = 100) -> str:
    await ws.send(request("rpc.subscribe", {"topic": topic, "params": params} if params else [topic], id=id))
    response = await receive(ws)
    assert "result" in response, response
    return str(response["result"])


async def test_subscription_events_carry_their_id_until_unsubscribe(start_server: Any) -> None:
    """Published events reach the subscriber as rpc.event; after rpc.unsubscribe none do."""
    server = await start_server(topics=news_topics())
    async with connect(server.url) as ws:
        sid = await subscribe(ws, "news")
        assert server.publish("news", {"headline": "one"}) == 1
        assert await receive(ws) == {
            "jsonrpc": "2.0",
            "method": "rpc.event",
            "params": {"subscription": sid, "topic": "news", "event": {"headline": "one"}},
        }
        await ws.send(request("rpc.unsubscribe", [sid], id=2))
        assert await receive(ws) == {"jsonrpc": "2.0", "result": True, "id": 2}
        assert server.publish("news", {"headline": "two"}) == 0
        await ws.send(request("rpc.unsubscribe", [sid], id=3))
        assert await receive(ws) == {"jsonrpc": "2.0", "result": False, "id": 3}


async def test_clock_ticks_in_order_at_the_requested_interval(start_server: Any) -> None:
    """The built-in clock topic counts its ticks 1, 2, 3 for each subscription."""
    server = await start_server()
    async with connect(server.url) as ws:
        sid = await subscribe(ws, "clock", {"interval": 0.01})
        ticks = [await receive(ws) for _ in range(3)]
    assert [t["params"]["subscription"] for t in ticks] == [sid] * 3
    assert [t["params"]["event"]["tick"] for t in ticks] == [1, 2, 3]


async def test_a_subscriber_that_reads_nothing_loses_the_oldest_events_and_is_told_how_many(
    start_server: Any,
) -> None:
    """Past the buffer the oldest events go; the next one delivered says how many were dropped."""
    server = await start_server(topics=news_topics(), subscription_buffer=10)
    async with connect(server.url) as ws:
        sid = await subscribe(ws, "news")
        for i in range(25):  # publish never waits, so the pump cannot run in between
            server.publish("news", i)
        events = [await receive(ws) for _ in range(10)]
        await ws.send(request("multiply", [1, 1], id=1))
        assert await receive(ws) == {"jsonrpc": "2.0", "result": 1, "id": 1}  # nothing else was queued
    assert [e["params"]["event"] for e in events] == list(range(15, 25))
    assert events[0]["params"]["dropped"] == 15
    assert all("dropped" not in e["params"] for e in events[1:])
    assert {e["params"]["subscription"] for e in events} == {sid}


async def test_one_slow_subscriber_does_not_slow_the_others(start_server: Any) -> None:
    """A subscriber that never reads keeps a bounded buffer while another receives every event."""
    server = await start_server(topics=news_topics(), subscription_buffer=8)
    big = "x" * 65536  # large events fill the idle socket's buffers quickly
    async with connect(server.url, max_size=None) as slow, connect(server.url, max_size=None) as fast:
        await subscribe(slow, "news")
        await subscribe(fast, "news")
        subscribers = server.topics.get("news").subscribers
        for i in range(200):
            assert server.publish("news", {"n": i, "pad": big}) == 2
            event = await receive(fast)
            assert event["params"]["event"]["n"] == i and "dropped" not in event["params"]
            assert all(len(s.pending) <= 8 for s in subscribers)
        # The idle one is stuck behind full socket buffers, losing its oldest events.
        assert any(s.dropped > 0 for s in subscribers)


async def test_subscribe_errors_are_clear(start_server: Any) -> None:
    """Unknown topics and bad topic params are -32602; past the limit is -32001."""
    server = await start_server(topics=news_topics(), max_subscriptions=1)
    async with connect(server.url) as ws:
        await ws.send(request("rpc.subscribe", ["weather"], id=1))
        error = (await receive(ws))["error"]
        assert error["code"] == -32602 and "unknown topic 'weather'" in error["data"]
        await ws.send(request("rpc.subscribe", {"topic": "clock", "params": {"interval": "fast"}}, id=2))
        error = (await receive(ws))["error"]
        assert error["code"] == -32602 and "interval" in error["data"]
        await subscribe(ws, "news")
        await ws.send(request("rpc.subscribe", ["news"], id=3))
        error = (await receive(ws))["error"]
        assert error["code"] == codes.TOO_MANY_SUBSCRIPTIONS and "at most 1" in error["data"]


async def wait_until(condition: Any) -> None:
    """Yield to the loop until ``condition()`` holds, for at most TIMEOUT seconds."""
    async with asyncio.timeout(TIMEOUT):
        while not condition():
            await asyncio.sleep(0)


async def test_a_closed_connection_drops_its_subscriptions_and_running_calls(start_server: Any) -> None:
    """After a close the server's task count is back where it was, and the tool saw the cancellation."""
    registry, seen = cancellable_tools()
    server = await start_server(registry, topics=news_topics())
    baseline = len(asyncio.all_tasks())
    ws = await connect(server.url)
    await subscribe(ws, "clock", {"interval": 0.01}, id=1)
    await subscribe(ws, "news", id=2)
    await ws.send(request("wait_forever", id=3))
    async with asyncio.timeout(TIMEOUT):
        await seen["started"].wait()
    assert len(asyncio.all_tasks()) > baseline
    await ws.close()
    async with asyncio.timeout(TIMEOUT):
        await seen["cancelled"].wait()
    await wait_until(lambda: len(asyncio.all_tasks()) == baseline)
    assert server.publish("news", "anyone?") == 0


@pytest.mark.parametrize("stream", [True, False])
async def test_a_generator_tool_that_fails_midway_answers_internal_error(start_server: Any, stream: bool) -> None:
    """Parts already pushed stay pushed; the call ends with -32603 and no exception text."""
    registry = Registry()

    @registry.tool
    async def flaky(ctx: Context):  # type: ignore[no-untyped-def]
        yield 1
        raise RuntimeError("secret detail")

    server = await start_server(registry)
    async with connect(server.url) as ws:
        await ws.send(request("flaky", id=1, stream=stream))
        pushed, response = await receive_until_response(ws, 1)
    assert [m["params"]["value"] for m in pushed] == ([1] if stream else [])
    assert response["error"] == {"code": -32603, "message": "Internal error"}
    assert "secret" not in json.dumps(response)


async def test_rpc_cancel_reaches_a_call_while_the_connection_is_at_its_cap(start_server: Any) -> None:
    """At the in-flight cap, rpc.cancel does not wait behind the calls it would cancel: the call answers -32800."""
    registry, seen = cancellable_tools()
    server = await start_server(registry, max_in_flight=1)
    async with connect(server.url) as ws:
        await ws.send(request("wait_forever", id="w"))
        async with asyncio.timeout(TIMEOUT):
            await seen["started"].wait()
        await ws.send(request("multiply", [2, 3], id=1))  # waits: the cap is reached
        await ws.send(request("rpc.cancel", {"id": "w"}))
        first, second = await receive(ws), await receive(ws)
    assert first == {"jsonrpc": "2.0", "error": {"code": -32800, "message": "Request cancelled"}, "id": "w"}
    assert seen["cancelled"].is_set()
    assert second == {"jsonrpc": "2.0", "result": 6, "id": 1}  # the slot it freed served the next call
