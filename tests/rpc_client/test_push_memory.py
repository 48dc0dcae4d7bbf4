"""Streams, progress, subscriptions and cancellation over the in-memory transport: the test plays the server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

import pytest

from rpc_client import (
    Backoff,
    CallTimeout,
    Client,
    ConnectionLost,
    Event,
    MemoryConnector,
    MemoryTransport,
    RpcError,
    StreamError,
)

URL = "memory://test"
TIMEOUT = 5


async def receive(peer: MemoryTransport):
    async with asyncio.timeout(TIMEOUT):
        return json.loads(await peer.receive())


async def send(peer: MemoryTransport, message) -> None:
    await peer.send(json.dumps(message))


async def notify(peer: MemoryTransport, method: str, **params) -> None:
    await send(peer, {"jsonrpc": "2.0", "method": method, "params": params})


async def answer(peer: MemoryTransport, result, id) -> None:
    await send(peer, {"jsonrpc": "2.0", "result": result, "id": id})


async def step(awaitable):
    async with asyncio.timeout(TIMEOUT):
        return await awaitable


@pytest.fixture
async def connector():
    return MemoryConnector()


@pytest.fixture
async def connected(connector):
    """A client on the in-memory transport, and the peer end of its connection."""
    async with Client(URL, connector=connector, timeout=TIMEOUT) as client:
        peer = await step(connector.accept())
        yield client, peer


# -- streams and progress ------------------------------------------------------


async def test_a_stream_yields_each_part_as_it_arrives_before_the_final_answer(connected):
    """stream() sends "stream": true, yields part 1 before part 2 was even sent, and ends only with the answer."""
    client, peer = connected
    reports = []
    parts = client.stream("count", 2, progress=lambda *report: reports.append(report))
    first = asyncio.ensure_future(anext(parts))
    request = await receive(peer)
    assert request == {"jsonrpc": "2.0", "method": "count", "params": [2], "id": request["id"], "stream": True}
    id = request["id"]
    await notify(peer, "rpc.part", id=id, value="one")
    assert await step(first) == "one"  # the answer has not been sent: the part came first
    await notify(peer, "rpc.progress", id=id, done=1, total=2, message="half")
    await notify(peer, "rpc.part", id=id, value="two")
    assert await step(anext(parts)) == "two"
    assert reports == [(1, 2, "half")]  # reported in its place, between the two parts
    ended = asyncio.ensure_future(anext(parts))
    await asyncio.sleep(0)
    assert not ended.done()  # no answer yet: the stream is not over
    await answer(peer, 2, id)
    with pytest.raises(StopAsyncIteration):
        await step(ended)
    assert client.in_flight == 0


async def test_a_call_with_progress_reports_each_step_in_order_before_returning(connected):
    """call(progress=...) sends "stream": true; sync and async callbacks get each report in order, before the result."""
    client, peer = connected
    reports = []

    async def on_progress(done, total, message):
        reports.append((done, total, message))

    call = asyncio.ensure_future(client.call("long_task", seconds=1, progress=on_progress))
    request = await receive(peer)
    assert request["stream"] is True and request["params"] == {"seconds": 1}
    for done in (1, 2, 3):
        await notify(peer, "rpc.progress", id=request["id"], done=done, total=3, message=f"step {done}")
    await answer(peer, {"steps": 3}, request["id"])
    assert await step(call) == {"steps": 3}
    assert reports == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]

    plain = []
    call = asyncio.ensure_future(client.call("long_task", 1, progress=lambda *r: plain.append(r)))
    request = await receive(peer)
    await notify(peer, "rpc.progress", id=request["id"], done=0.5, total=None, message=None)
    await answer(peer, "done", request["id"])
    assert await step(call) == "done"
    assert plain == [(0.5, None, None)]


async def test_a_call_with_progress_to_a_streaming_method_returns_its_parts_as_one_list(connected):
    """Parts pushed to a call that only asked for progress are gathered: it answers what it would without streaming."""
    client, peer = connected
    call = asyncio.ensure_future(client.call("count", 3, progress=lambda *r: None))
    request = await receive(peer)
    for value in (1, 2, 3):
        await notify(peer, "rpc.part", id=request["id"], value=value)
    await answer(peer, 3, request["id"])
    assert await step(call) == [1, 2, 3]


async def test_a_plain_call_does_not_opt_in_and_pushes_for_it_are_dropped(connected, caplog):
    """Without stream() or progress=, the request has no "stream" member, and stray pushes do not disturb the call."""
    client, peer = connected
    call = asyncio.ensure_future(client.call("count", 2))
    request = await receive(peer)
    assert "stream" not in request
    with caplog.at_level(logging.DEBUG, logger="rpc_client"):
        await notify(peer, "rpc.part", id=request["id"], value=1)
        await answer(peer, [1, 2], request["id"])
        assert await step(call) == [1, 2]
    assert "dropping a notification nobody listens to" in caplog.text


async def test_notifications_of_other_conventions_are_logged_at_debug_and_dropped(connected, caplog):
    """A server's own notifications (not rpc.*), or rpc.* ones for nobody, do not disturb calls or subscriptions."""
    client, peer = connected
    with caplog.at_level(logging.DEBUG, logger="rpc_client"):
        call = asyncio.ensure_future(client.call("add", 1, 2))
        request = await receive(peer)
        await notify(peer, "server.hello", version=3)
        await send(peer, {"jsonrpc": "2.0", "method": "rpc.event", "params": ["not", "an", "object"]})
        await notify(peer, "rpc.event", subscription="never-made", event=1)
        await send(peer, {"notification": "feed", "params": [1]})  # rpc-websockets' own event shape
        await answer(peer, 3, request["id"])
        assert await step(call) == 3
    assert caplog.text.count("dropping") == 4
    assert not [r for r in caplog.records if r.levelno > logging.DEBUG]


async def test_a_stream_that_fails_yields_the_parts_that_came_then_raises_rpc_error(connected):
    """A stream whose call answers an error yields the parts pushed before it, then raises that RpcError."""
    client, peer = connected
    received = []

    async def consume():
        async for part in client.stream("flaky"):
            received.append(part)

    task = asyncio.ensure_future(consume())
    request = await receive(peer)
    await notify(peer, "rpc.part", id=request["id"], value=1)
    error = {"code": -32603, "message": "Internal error"}
    await send(peer, {"jsonrpc": "2.0", "error": error, "id": request["id"]})
    with pytest.raises(RpcError) as caught:
        await step(task)
    assert caught.value.code == -32603
    assert received == [1]


async def test_a_stream_whose_count_does_not_match_its_parts_raises_stream_error(connected):
    """An answer of 3 after 2 parts means a part was lost; an answer that is no count means no stream: StreamError."""
    client, peer = connected

    async def consume(method):
        return [part async for part in client.stream(method)]

    task = asyncio.ensure_future(consume("count"))
    request = await receive(peer)
    await notify(peer, "rpc.part", id=request["id"], value="a")
    await notify(peer, "rpc.part", id=request["id"], value="b")
    await answer(peer, 3, request["id"])
    with pytest.raises(StreamError, match=r"answered 3 after 2 part\(s\); parts were lost"):
        await step(task)

    task = asyncio.ensure_future(consume("multiply"))
    request = await receive(peer)
    await answer(peer, {"not": "a count"}, request["id"])
    with pytest.raises(StreamError, match="does the method stream"):
        await step(task)


# -- cancellation --------------------------------------------------------------


async def test_cancelling_the_task_awaiting_a_call_sends_rpc_cancel_with_its_id(connected):
    """Cancelling the awaiting task sends the rpc.cancel notification for that id, and leaves nothing pending."""
    client, peer = connected
    call = asyncio.ensure_future(client.call("sleep", 10))
    request = await receive(peer)
    call.cancel()
    with pytest.raises(asyncio.CancelledError):
        await call
    assert client.in_flight == 0
    assert await receive(peer) == {"jsonrpc": "2.0", "method": "rpc.cancel", "params": {"id": request["id"]}}


async def test_a_call_that_times_out_sends_rpc_cancel_and_drops_the_late_answer(connected, caplog):
    """A timeout raises CallTimeout and sends rpc.cancel for the call; the -32800 that follows is dropped."""
    client, peer = connected
    with pytest.raises(CallTimeout):
        await client.call("sleep", 10, timeout=0.05)
    request = await receive(peer)
    assert await receive(peer) == {"jsonrpc": "2.0", "method": "rpc.cancel", "params": {"id": request["id"]}}
    assert client.in_flight == 0
    with caplog.at_level(logging.DEBUG, logger="rpc_client"):
        error = {"code": -32800, "message": "Request cancelled"}
        await send(peer, {"jsonrpc": "2.0", "error": error, "id": request["id"]})
        call = asyncio.ensure_future(client.call("add", 1, 1))
        second = await receive(peer)
        await answer(peer, 2, second["id"])  # read after the late answer, which was dropped by then
        assert await step(call) == 2
    assert "unknown or late id" in caplog.text


async def test_a_stream_timing_out_or_cancelled_sends_rpc_cancel(connected):
    """A stream whose wait times out, or whose consumer is cancelled, sends rpc.cancel for its id."""
    client, peer = connected
    with pytest.raises(CallTimeout, match=r"no answer to 'count' within 0\.05 s"):
        async for _ in client.stream("count", 10, timeout=0.05):
            pass
    request = await receive(peer)
    assert await receive(peer) == {"jsonrpc": "2.0", "method": "rpc.cancel", "params": {"id": request["id"]}}

    async def consume():
        async for _ in client.stream("count", 10):
            pass

    task = asyncio.ensure_future(consume())
    request = await receive(peer)
    await notify(peer, "rpc.part", id=request["id"], value=1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await receive(peer) == {"jsonrpc": "2.0", "method": "rpc.cancel", "params": {"id": request["id"]}}
    assert client.in_flight == 0


async def test_leaving_a_stream_early_sends_rpc_cancel(connected):
    """Breaking out of a stream (closed with aclosing) cancels the rest on the server."""
    client, peer = connected

    async def first_part():
        async with contextlib.aclosing(client.stream("count", 100)) as parts:
            async for part in parts:
                return part

    task = asyncio.ensure_future(first_part())
    request = await receive(peer)
    await notify(peer, "rpc.part", id=request["id"], value=1)
    assert await step(task) == 1
    assert await receive(peer) == {"jsonrpc": "2.0", "method": "rpc.cancel", "params": {"id": request["id"]}}
    assert client.in_flight == 0


async def test_cancelling_a_batch_cancels_its_unanswered_members_in_one_message(connected):
    """A cancelled batch sends one batch of rpc.cancel notifications, for the members not answered."""
    client, peer = connected
    batch = asyncio.ensure_future(client.batch_call([("sleep", [10]), ("sleep", [20])]))
    first, second = await receive(peer)
    batch.cancel()
    with pytest.raises(asyncio.CancelledError):
        await batch
    assert await receive(peer) == [
        {"jsonrpc": "2.0", "method": "rpc.cancel", "params": {"id": first["id"]}},
        {"jsonrpc": "2.0", "method": "rpc.cancel", "params": {"id": second["id"]}},
    ]


async def test_send_cancel_false_sends_no_rpc_cancel(connector):
    """With send_cancel=False a cancelled call sends nothing more (for servers that do not know rpc.cancel)."""
    async with Client(URL, connector=connector, send_cancel=False) as client:
        peer = await step(connector.accept())
        call = asyncio.ensure_future(client.call("sleep", 10))
        await receive(peer)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        await client.notify("marker")
        assert (await receive(peer))["method"] == "marker"  # the next thing sent after the call


class RefusingTransport(MemoryTransport):
    """A connection that refuses to send rpc.cancel, as a closing connection would."""

    async def send(self, text: str) -> None:
        if "rpc.cancel" in text:
            raise ConnectionLost("the in-memory connection is closing")
        await super().send(text)


async def test_a_cancel_that_cannot_be_sent_neither_blocks_nor_raises(caplog):
    """When rpc.cancel cannot go out, the cancelled task still ends with CancelledError alone; it is logged at debug."""
    ours, theirs = RefusingTransport("client end"), MemoryTransport("peer end")
    ours._peer, theirs._peer = theirs, ours

    async def connect(url):
        return ours

    with caplog.at_level(logging.DEBUG, logger="rpc_client"):
        async with Client(URL, connector=connect) as client:
            call = asyncio.ensure_future(client.call("sleep", 10))
            await receive(theirs)
            call.cancel()
            with pytest.raises(asyncio.CancelledError):
                await call
    assert "could not send" in caplog.text and "rpc.cancel" in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


# -- subscriptions -------------------------------------------------------------


async def test_a_subscription_yields_events_with_their_dropped_counts_until_the_server_ends_it(connected):
    """Events arrive as Event values (data, topic, dropped); rpc.unsubscribed ends the iteration with its reason."""
    client, peer = connected

    async def subscribe():
        async with client.subscribe("news", region="eu") as events:
            got = [event async for event in events]
            return events, got

    task = asyncio.ensure_future(subscribe())
    request = await receive(peer)
    assert request["method"] == "rpc.subscribe"
    assert request["params"] == {"topic": "news", "params": {"region": "eu"}}
    # The answer and the first events in one burst: none may slip past before the id is filed.
    await answer(peer, "s1", request["id"])
    await notify(peer, "rpc.event", subscription="s1", topic="news", event={"n": 1})
    await notify(peer, "rpc.event", subscription="s1", topic="news", event={"n": 5}, dropped=3)
    await notify(peer, "rpc.event", subscription="other", topic="news", event="not ours")
    await notify(peer, "rpc.unsubscribed", subscription="s1", reason="the topic's source ended")
    events, got = await step(task)
    assert got == [
        Event(data={"n": 1}, topic="news", subscription="s1", dropped=0),
        Event(data={"n": 5}, topic="news", subscription="s1", dropped=3),
    ]
    assert events.reason == "the topic's source ended"
    assert not events.active
    await client.notify("marker")  # the server ended it: no rpc.unsubscribe goes out on exit
    assert (await receive(peer))["method"] == "marker"


async def test_leaving_a_subscription_sends_rpc_unsubscribe_and_waits_for_its_answer(connected):
    """Exiting the block sends rpc.unsubscribe for its id and returns once answered; later events are dropped."""
    client, peer = connected
    left = asyncio.Event()

    async def subscribe():
        async with client.subscribe("clock", {"interval": 0.5}) as events:
            event = await anext(events)
        left.set()
        return event

    task = asyncio.ensure_future(subscribe())
    request = await receive(peer)
    assert request["params"] == {"topic": "clock", "params": {"interval": 0.5}}
    await answer(peer, "7", request["id"])
    await notify(peer, "rpc.event", subscription="7", topic="clock", event={"tick": 1})
    unsubscribe = await receive(peer)
    assert unsubscribe["method"] == "rpc.unsubscribe" and unsubscribe["params"] == {"subscription": "7"}
    assert not left.is_set()  # waiting for the answer
    await answer(peer, True, unsubscribe["id"])
    assert (await step(task)).data == {"tick": 1}
    assert client._session.pending.subscriptions == 0


async def test_losing_the_connection_raises_in_the_subscription(connected):
    """When the connection drops, the events already in are taken, then the iteration raises ConnectionLost."""
    client, peer = connected
    got = []

    async def subscribe():
        async with client.subscribe("news") as events:
            async for event in events:
                got.append(event.data)

    task = asyncio.ensure_future(subscribe())
    request = await receive(peer)
    assert request["params"] == {"topic": "news"}
    await answer(peer, "s1", request["id"])
    await notify(peer, "rpc.event", subscription="s1", topic="news", event="last")
    await peer.close("the server went away")
    with pytest.raises(ConnectionLost, match="the server went away"):
        await step(task)
    assert got == ["last"]


async def test_a_refused_subscription_raises_rpc_error_from_the_async_with(connected):
    """An error answer to rpc.subscribe raises RpcError on entering the block."""
    client, peer = connected

    async def subscribe():
        async with client.subscribe("weather"):
            pass

    task = asyncio.ensure_future(subscribe())
    request = await receive(peer)
    error = {"code": -32602, "message": "Invalid params", "data": "unknown topic 'weather' (topics: clock)"}
    await send(peer, {"jsonrpc": "2.0", "error": error, "id": request["id"]})
    with pytest.raises(RpcError, match="unknown topic 'weather'"):
        await step(task)
    assert client._session.pending.subscriptions == 0


async def test_a_subscribe_abandoned_before_its_answer_is_ended_on_the_server(connected):
    """If the subscribe call is cancelled and its answer comes later, the client unsubscribes that id by itself."""
    client, peer = connected

    async def subscribe():
        async with client.subscribe("news"):
            pass

    task = asyncio.ensure_future(subscribe())
    request = await receive(peer)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert (await receive(peer))["method"] == "rpc.cancel"
    await answer(peer, "s3", request["id"])  # the server had already subscribed
    assert await receive(peer) == {"jsonrpc": "2.0", "method": "rpc.unsubscribe", "params": {"subscription": "s3"}}


# -- subscriptions across races and reconnections -------------------------------


async def test_a_subscribe_abandoned_in_the_step_its_answer_is_read_is_unsubscribed(connected):
    """A subscribe cancelled just as its answer is read keeps no listener and sends rpc.unsubscribe for the id."""
    client, peer = connected
    entering = asyncio.ensure_future(client.subscribe("clock").__aenter__())
    request = await receive(peer)
    # What the reader does with the answer, and then, in the same loop step, the caller's cancellation.
    client._session.pending.resolve({"jsonrpc": "2.0", "result": "7", "id": request["id"]})
    entering.cancel()
    with pytest.raises(asyncio.CancelledError):
        await step(entering)
    assert client._session.pending.subscriptions == 0
    assert await receive(peer) == {"jsonrpc": "2.0", "method": "rpc.unsubscribe", "params": {"subscription": "7"}}


async def test_leaving_an_old_subscription_after_a_reconnect_spares_a_new_one_with_the_same_id(connector):
    """After a reconnect, ending the lost connection's subscription sends nothing and the new one keeps its events."""
    async with Client(
        URL, connector=connector, timeout=TIMEOUT, reconnect=True, backoff=Backoff(initial=0.01)
    ) as client:
        first = await step(connector.accept())
        old = client.subscribe("clock")
        entering = asyncio.ensure_future(old.__aenter__())
        await answer(first, "1", (await receive(first))["id"])
        await step(entering)
        await first.close("server restarted")
        second = await step(connector.accept())
        new = client.subscribe("clock")
        entering = asyncio.ensure_future(new.__aenter__())  # waits for the new connection if need be
        await answer(second, "1", (await receive(second))["id"])  # a restarted server counts from 1 again
        await step(entering)
        with pytest.raises(ConnectionLost):
            await step(anext(old))
        await step(old.__aexit__(None, None, None))
        await notify(second, "rpc.event", subscription="1", event="e")
        assert (await step(anext(new))).data == "e"
        await step(new.unsubscribe(wait=False))
        # The first thing the old block sent on the new connection would come before this.
        assert await receive(second) == {
            "jsonrpc": "2.0",
            "method": "rpc.unsubscribe",
            "params": {"subscription": "1"},
        }
