"""Streams, progress, subscriptions and cancellation against this project's real server, over 127.0.0.1."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest

from rpc_client import CallTimeout, Client, ConnectionLost, Event, RpcError, connect_sync
from rpc_server import Context, Registry, Topics, builtin_tools
from rpc_server.topics import clock

TIMEOUT = 5


async def wait(event: asyncio.Event) -> None:
    async with asyncio.timeout(TIMEOUT):
        await event.wait()


class Seen:
    """What the server-side tools of these tests went through, as events to wait on."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.cancelled = asyncio.Event()


def push_tools(seen: Seen) -> Registry:
    """The built-in tools, plus ones that stream and report together, fail midway, or wait to be cancelled."""
    registry = builtin_tools()

    @registry.tool
    async def mixed(ctx: Context) -> AsyncIterator[str]:
        await ctx.report(0, 2, "starting")
        yield "a"
        await ctx.report(1, 2, "one done")
        yield "b"
        await ctx.report(2, 2, "both done")

    @registry.tool
    async def flaky() -> AsyncIterator[int]:
        yield 1
        raise RuntimeError("secret detail")

    @registry.tool
    async def wait_forever() -> None:
        seen.started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            seen.cancelled.set()
            raise

    @registry.tool
    async def endless() -> AsyncIterator[int]:
        seen.started.set()
        n = 0
        try:
            while True:
                n += 1
                yield n
                await asyncio.sleep(0.001)
        except asyncio.CancelledError:
            seen.cancelled.set()
            raise

    return registry


@pytest.fixture
def seen() -> Seen:
    return Seen()


@pytest.fixture
async def push_server(start_server: Any, seen: Seen) -> Any:
    return await start_server(push_tools(seen))


def news_topics() -> Topics:
    topics = Topics()
    topics.add("news")
    topics.add("clock", clock)

    async def three() -> AsyncIterator[int]:
        for n in (1, 2, 3):
            yield n

    topics.add("three", three)
    return topics


# -- streams and progress ------------------------------------------------------


async def test_count_streams_its_parts_in_order_and_checks_their_number(server: Any) -> None:
    """stream("count", 5) yields 1 to 5 in order; the server's final count matched, so no error."""
    async with Client(server.url) as client:
        assert [part async for part in client.stream("count", 5, 0)] == [1, 2, 3, 4, 5]
        assert [part async for part in client.stream("count", n=0)] == []
        assert client.in_flight == 0


async def test_parts_and_progress_arrive_in_the_order_the_tool_made_them(push_server: Any) -> None:
    """A tool that reports, yields, reports, yields, reports is seen by the client in exactly that order."""
    seen: list[tuple[str, Any]] = []
    async with Client(push_server.url) as client:
        async for part in client.stream("mixed", progress=lambda done, total, message: seen.append(("progress", done))):
            seen.append(("part", part))
    assert seen == [("progress", 0), ("part", "a"), ("progress", 1), ("part", "b"), ("progress", 2)]


async def test_long_task_reports_ten_steps_in_order_then_answers(server: Any) -> None:
    """call("long_task", progress=...) gets steps 1..10 of 10 with their messages, then the result."""
    reports: list[tuple[Any, ...]] = []

    async def on_progress(done: float, total: float | None, message: str | None) -> None:
        reports.append((done, total, message))

    async with Client(server.url) as client:
        result = await client.call("long_task", 0.01, progress=on_progress)
    assert result == {"steps": 10, "seconds": 0.01}
    assert reports == [(n, 10, f"step {n} of 10") for n in range(1, 11)]


async def test_a_client_that_did_not_opt_in_gets_no_notification(server: Any, caplog: Any) -> None:
    """Plain calls to streaming and progress-reporting tools get only their one response: nothing is dropped."""
    async with Client(server.url) as client:
        with caplog.at_level(logging.DEBUG, logger="rpc_client"):
            assert await client.call("count", 3, 0) == [1, 2, 3]
            assert await client.call("long_task", 0.01) == {"steps": 10, "seconds": 0.01}
            assert await client.call("multiply", 3, 4) == 12  # anything pushed would have come before this
    assert "dropping" not in caplog.text


async def test_call_with_progress_on_a_generator_tool_returns_the_list(server: Any) -> None:
    """A progress-only call to count gathers the streamed parts into the list a plain call answers."""
    async with Client(server.url) as client:
        assert await client.call("count", 3, 0, progress=lambda *report: None) == [1, 2, 3]


async def test_a_stream_that_fails_midway_yields_its_first_parts_then_raises(push_server: Any) -> None:
    """flaky yields 1 then fails: the client gets 1, then RpcError -32603 without the server's detail."""
    received = []
    async with Client(push_server.url) as client:
        with pytest.raises(RpcError) as caught:
            async for part in client.stream("flaky"):
                received.append(part)
        assert await client.call("add", 1, 1) == 2
    assert received == [1]
    assert caught.value.code == -32603
    assert "secret" not in str(caught.value)


# -- cancellation --------------------------------------------------------------


async def test_cancelling_the_awaiting_task_cancels_the_tool_on_the_server(push_server: Any, seen: Seen) -> None:
    """The tool sees CancelledError while the connection stays open, so rpc.cancel did it; the client carries on."""
    async with Client(push_server.url) as client:
        call = asyncio.ensure_future(client.call("wait_forever"))
        await wait(seen.started)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await wait(seen.cancelled)
        assert client.connected and client.in_flight == 0
        assert await client.call("multiply", 2, 3) == 6


async def test_a_client_timeout_cancels_the_tool_on_the_server(push_server: Any, seen: Seen) -> None:
    """A call that times out on the client raises CallTimeout, and the server-side tool is cancelled."""
    async with Client(push_server.url) as client:
        with pytest.raises(CallTimeout):
            await client.call("wait_forever", timeout=0.05)
        await wait(seen.cancelled)
        assert client.connected and client.in_flight == 0


async def test_leaving_a_stream_early_stops_the_generator_on_the_server(push_server: Any, seen: Seen) -> None:
    """Breaking out of an endless stream (closed by aclosing) cancels the server's generator."""
    async with Client(push_server.url) as client:
        async with contextlib.aclosing(client.stream("endless")) as parts:
            async for part in parts:
                if part == 3:
                    break
        await wait(seen.cancelled)
        assert client.in_flight == 0
        assert await client.call("add", 2, 2) == 4


# -- subscriptions -------------------------------------------------------------


async def test_subscription_events_arrive_and_unsubscribing_stops_them(start_server: Any) -> None:
    """Published events reach the block as Event values; after it, the server has no subscriber left."""
    server = await start_server(topics=news_topics())
    async with Client(server.url) as client:
        async with client.subscribe("news") as events:
            assert server.publish("news", {"headline": "one"}) == 1
            event = await asyncio.wait_for(anext(events), TIMEOUT)
            assert event == Event(data={"headline": "one"}, topic="news", subscription=events.id, dropped=0)
        assert server.publish("news", {"headline": "two"}) == 0
        assert not events.active
        assert client._session.pending.subscriptions == 0


async def test_a_subscription_left_by_cancellation_is_ended_on_the_server_without_waiting(start_server: Any) -> None:
    """Cancelling the task inside the block sends rpc.unsubscribe as a notification; the server drops the subscriber."""
    server = await start_server(topics=news_topics())
    subscribers = server.topics.get("news").subscribers
    async with Client(server.url) as client:
        inside = asyncio.Event()

        async def listen() -> None:
            async with client.subscribe("news") as events:
                inside.set()
                async for _ in events:
                    pass

        task = asyncio.ensure_future(listen())
        await wait(inside)
        assert len(subscribers) == 1
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        async with asyncio.timeout(TIMEOUT):
            while subscribers:  # the notification gets no answer to wait on: watch the server instead
                await asyncio.sleep(0)
        assert client._session.pending.subscriptions == 0
        assert await client.call("add", 1, 1) == 2


async def test_clock_ticks_reach_the_client_in_order(server: Any) -> None:
    """subscribe("clock", interval=0.01) gives ticks 1, 2, 3 in order."""
    async with Client(server.url) as client, client.subscribe("clock", interval=0.01) as events:
        ticks = []
        async with asyncio.timeout(TIMEOUT):
            async for event in events:
                ticks.append(event.data["tick"])
                if len(ticks) == 3:
                    break
    assert ticks == [1, 2, 3]


async def test_events_lost_to_the_servers_buffer_are_counted_in_the_next_event(start_server: Any) -> None:
    """With a buffer of 10 and 25 events published at once, the first event taken says 15 were dropped."""
    server = await start_server(topics=news_topics(), subscription_buffer=10)
    async with Client(server.url) as client, client.subscribe("news") as events:
        for n in range(25):  # publish never waits, so the server's pump cannot run in between
            server.publish("news", n)
        got = []
        async with asyncio.timeout(TIMEOUT):
            async for event in events:
                got.append(event)
                if len(got) == 10:
                    break
    assert [e.data for e in got] == list(range(15, 25))
    assert [e.dropped for e in got] == [15] + [0] * 9


async def test_a_subscription_the_server_ends_ends_the_iteration_with_its_reason(start_server: Any) -> None:
    """A topic whose source stops after three events ends the loop, and the reason is kept."""
    server = await start_server(topics=news_topics())
    async with Client(server.url) as client, client.subscribe("three") as events:
        async with asyncio.timeout(TIMEOUT):
            got = [event.data async for event in events]
    assert got == [1, 2, 3]
    assert events.reason == "the topic's source ended"


async def test_subscribe_errors_raise_rpc_error(start_server: Any) -> None:
    """An unknown topic and bad params are -32602; past the server's limit, -32001."""
    server = await start_server(topics=news_topics(), max_subscriptions=1)
    async with Client(server.url) as client:
        with pytest.raises(RpcError, match="unknown topic 'weather'") as caught:
            async with client.subscribe("weather"):
                pass
        assert caught.value.code == -32602
        with pytest.raises(RpcError, match="interval") as caught:
            async with client.subscribe("clock", interval="fast"):
                pass
        assert caught.value.code == -32602
        async with client.subscribe("news"):
            with pytest.raises(RpcError, match="at most 1") as caught:
                async with client.subscribe("news"):
                    pass
            assert caught.value.code == -32001


async def test_a_subscription_raises_connection_lost_when_the_server_goes(start_server: Any) -> None:
    """When the server shuts down, the loop over events raises ConnectionLost instead of waiting forever."""
    server = await start_server(topics=news_topics())
    async with Client(server.url) as client:
        with pytest.raises(ConnectionLost):
            async with client.subscribe("news") as events:
                server.close()
                async with asyncio.timeout(TIMEOUT):
                    async for _ in events:
                        pass


# -- the sync facade -------------------------------------------------------------


async def test_the_sync_facade_streams_reports_progress_and_subscribes(server: Any) -> None:
    """connect_sync() gives stream() as a blocking iterator, progress=, and subscribe() as a with block."""

    def work() -> tuple[list[int], list[Any], list[int], Any]:
        reports: list[Any] = []
        with connect_sync(server.url, timeout=TIMEOUT) as client:
            parts = list(client.stream("count", 3, 0))
            client.call("long_task", 0.01, progress=lambda *report: reports.append(report))
            ticks = []
            with client.subscribe("clock", interval=0.01) as events:
                for event in events:
                    ticks.append(event.data["tick"])
                    if len(ticks) == 3:
                        break
            for part in client.stream("count", 100, 0.001):
                if part == 2:
                    break  # leaves the stream: the generator's close cancels the call
            in_flight = client._client.in_flight
        return parts, reports, ticks, in_flight

    parts, reports, ticks, in_flight = await asyncio.to_thread(work)
    assert parts == [1, 2, 3]
    assert [r[0] for r in reports] == list(range(1, 11))
    assert ticks == [1, 2, 3]
    assert in_flight == 0
