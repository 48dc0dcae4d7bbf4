"""Subscribers that never read cost no CPU, and subscriptions are capped server-wide (issue 9, defect 5).

Before: 20 connections x 32 ``clock`` subscriptions at 0.01 s took 96% of a
core for peers that never read, and nothing capped subscriptions across
connections. Now a topic's source is not iterated while its subscriber's
buffer is full, and ``max_subscriptions_total`` caps them all.
"""

from __future__ import annotations

import asyncio
import resource
from collections.abc import AsyncIterator
from typing import Any

from websockets.asyncio.client import connect

from rpc_server import Topics, codes
from rpc_server.session import Session
from rpc_server.topics import clock

from ..rpc_server.rawws import RawClient
from .harness import Bystander, call, request, wait_for

PAD = "x" * 16384  # large events fill an idle peer's socket buffers in a moment


def cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def test_subscribers_that_never_read_cost_no_cpu_once_their_buffers_are_full(start_server: Any) -> None:
    """20 connections x 32 subscriptions ticking every 0.01 s, never read: under 0.05 s of CPU a second once full.

    Before, each source kept producing into its full buffer (dropping the
    oldest) at 100 events a second, 64,000 a second in all: 0.22 s of CPU a
    second here (the fix measured 0.003 s). The server runs
    in this process, so its CPU is the process's; the clients only hold their
    sockets. 1 s for a bystander's answer is the fairness check.
    """
    topics = Topics()

    @topics.source("blob")
    async def blob(interval: float = 0.01) -> AsyncIterator[dict[str, Any]]:
        async for tick in clock(interval):
            yield {"tick": tick["tick"], "pad": PAD}

    server = await start_server(topics=topics, subscription_buffer=10)
    clients = []
    try:
        async with Bystander(server.url) as bystander:
            for _ in range(20):
                client = await RawClient.connect(server.url)
                client.write(client.text_frames(*(request("rpc.subscribe", ["blob", [0.01]], i) for i in range(32))))
                clients.append(client)
            subscriptions = lambda: [s for c in server.connections for s in c.session.subscriptions.values()]  # noqa: E731
            await wait_for(
                lambda: len(subscriptions()) == 640 and all(len(s.pending) >= 10 for s in subscriptions()),
                "every buffer to fill",
                timeout=30,
            )
            before = cpu_s()
            await asyncio.sleep(1.0)
            used = cpu_s() - before
        assert used < 0.05, f"{used:.2f} s of CPU in 1 s for subscribers that do not read"
        assert bystander.slow == []
    finally:
        for client in clients:
            client.abort()


async def test_a_source_is_not_iterated_while_its_buffer_is_full() -> None:
    """A session whose pushes never complete: its source yields the buffer's worth and one more, then waits."""
    produced = 0
    stuck = asyncio.Event()

    async def never_sent(message: bytes) -> None:
        await stuck.wait()

    topics = Topics()

    @topics.source("numbers")
    async def numbers() -> AsyncIterator[int]:
        nonlocal produced
        while True:
            produced += 1
            yield produced
            await asyncio.sleep(0)  # a source that waits on something, as real ones do

    session = Session(never_sent, topics=topics, subscription_buffer=5)
    subscription = topics.subscribe(topics.get("numbers"), [], session)
    try:
        # One goes to the pump (stuck sending it), five fill the buffer.
        await wait_for(lambda: produced >= 6, "the buffer to fill")
        for _ in range(100):
            await asyncio.sleep(0)
        assert produced == 6
    finally:
        await asyncio.gather(*subscription.cancel(), return_exceptions=True)


async def test_the_clock_skips_the_ticks_it_missed_while_paused() -> None:
    """After a pause the clock's next tick is the interval now due, not the first one missed."""
    ticks = clock(0.01)
    first = await anext(ticks)
    await asyncio.sleep(0.1)  # the subscriber did not take any: about ten intervals go by
    second = await anext(ticks)
    await ticks.aclose()  # type: ignore[attr-defined]
    assert first["tick"] == 1
    assert second["tick"] >= 5


async def test_past_max_subscriptions_total_rpc_subscribe_answers_too_many(start_server: Any) -> None:
    """max_subscriptions_total=3 across two connections: the fourth is -32001 naming the server's limit."""
    topics = Topics()
    topics.add("news")
    server = await start_server(topics=topics, max_subscriptions_total=3)
    async with connect(server.url) as a, connect(server.url) as b:
        for i, ws in enumerate([a, a, b]):
            assert "result" in await call(ws, "rpc.subscribe", ["news"], i)
        refused = await call(b, "rpc.subscribe", ["news"], 9)
        assert refused["error"]["code"] == codes.TOO_MANY_SUBSCRIPTIONS
        assert "limit of 3 subscriptions" in refused["error"]["data"]
        await a.close()
        await wait_for(lambda: server.topics.count() == 1, "the closed connection's subscriptions to end")
        assert "result" in await call(b, "rpc.subscribe", ["news"], 10)
