"""Per-connection budgets (issue 9, defect 2): calls counted one by one, bytes in flight, answers not read.

Before: a batch counted as one call against ``--max-in-flight``, so 130
batches of 1,000 ``sleep(10)`` ran 130,000 calls at once on one connection;
answers to a client that did not read piled up in the socket buffer (128
large echo batches held 165 MB). The process tests measure the server's peak
memory under each attack with a bystander connection probed throughout
("answered within 1 s" is the fairness check); the in-process tests pin down
the rules: a batch larger than what is left waits until the connection is
idle, then runs whole.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from websockets.asyncio.client import ClientConnection, connect

from rpc_server import Registry, builtin_tools

from ..rpc_server.rawws import RawClient
from .harness import MIB, WAIT, Bystander, ServerProcess, request, wait_for


async def _attack(server: ServerProcess, frames: list[str], settle_s: float) -> tuple[float, Bystander]:
    """Write ``frames`` on a connection that never reads; the server's peak growth (MiB) after ``settle_s``."""
    base = server.rss_bytes()
    server.reset_peak()
    async with Bystander(server.url) as bystander:
        client = await RawClient.connect(server.url)
        try:
            for frame in frames:
                client.write(client.text_frames(frame))
            await asyncio.sleep(settle_s)  # the calls run (or wait); no answer is read
        finally:
            client.abort()
    return (server.peak_bytes() - base) / MIB, bystander


async def test_each_batch_member_counts_against_max_in_flight() -> None:
    """30 batches of 1,000 sleep(3) on one connection: one batch runs, the rest wait; peak under +24 MiB.

    Before: all 30,000 calls ran at once, +61 MiB (the fix measured +4 MiB).
    """
    batches = ["[" + ",".join(request("sleep", [3], b * 1000 + i) for i in range(1000)) + "]" for b in range(30)]
    async with ServerProcess.run() as server:
        grown, bystander = await _attack(server, batches, settle_s=1.5)
        assert grown < 24, f"peak memory grew by {grown:.1f} MiB"
        assert bystander.slow == []
        assert server.tracebacks() == []


async def test_answers_a_client_does_not_read_are_bounded() -> None:
    """64 batches of 100 sleep(1, 8 KB) never read: the server stops reading; peak under +32 MiB.

    Before: every batch was read and answered into the socket buffer, +117 MiB
    (the fix measured +5 MiB).
    """
    value = "x" * 8000
    batches = ["[" + ",".join(request("sleep", [1, value], b * 100 + i) for i in range(100)) + "]" for b in range(64)]
    async with ServerProcess.run() as server:
        grown, bystander = await _attack(server, batches, settle_s=1.5)
        assert grown < 32, f"peak memory grew by {grown:.1f} MiB"
        assert bystander.slow == []
        assert server.tracebacks() == []


async def test_the_bytes_of_messages_in_flight_are_bounded() -> None:
    """100 calls of sleep(1, 500 KB), one per message: at most 8 MiB of them run; peak under +40 MiB.

    Before: all 100 ran at once, +98 MiB (the fix measured +15 MiB).
    """
    value = "x" * 500_000
    calls = [request("sleep", [1, value], i) for i in range(100)]
    async with ServerProcess.run() as server:
        grown, bystander = await _attack(server, calls, settle_s=1.5)
        assert grown < 40, f"peak memory grew by {grown:.1f} MiB"
        assert bystander.slow == []
        assert server.tracebacks() == []


class Held:
    """A tool ``hold(n)`` that runs until released (``first`` for n < 0), counting how many run at once."""

    def __init__(self) -> None:
        self.running = 0
        self.most = 0
        self.first = asyncio.Event()
        self.release = asyncio.Event()

    def registry(self) -> Registry:
        registry = builtin_tools()

        @registry.tool
        async def hold(n: int) -> int:
            self.running += 1
            self.most = max(self.most, self.running)
            try:
                await (self.first if n < 0 else self.release).wait()
                return n
            finally:
                self.running -= 1

        return registry


async def read_by_server(ws: ClientConnection) -> None:
    """Return once the (in-process) server has read every frame sent before, and run what it started."""
    async with asyncio.timeout(WAIT):
        await (await ws.ping())  # the pong goes out from the read that took in the frames before it
    for _ in range(10):  # the tasks that read started get their turns
        await asyncio.sleep(0)


async def replies(ws: ClientConnection, count: int) -> list[Any]:
    """The next ``count`` messages, parsed, within WAIT seconds."""
    async with asyncio.timeout(WAIT):
        return [orjson.loads(await ws.recv()) for _ in range(count)]


async def test_a_batch_larger_than_what_is_left_waits_until_the_connection_is_idle_then_runs_whole(
    start_server: Any,
) -> None:
    """max_in_flight=4 with 2 calls running: a batch of 10 starts only once they are done, all 10 together."""
    held = Held()
    server = await start_server(held.registry(), max_in_flight=4)
    async with connect(server.url) as ws:
        await ws.send(request("hold", [-1], "a"))
        await ws.send(request("hold", [-2], "b"))
        await wait_for(lambda: held.running == 2, "two calls to run")
        await ws.send("[" + ",".join(request("hold", [i], i) for i in range(10)) + "]")
        await ws.send(request("multiply", [6, 7], "later"))  # behind the waiting batch: it waits too
        await read_by_server(ws)
        assert held.running == 2, "the batch started beside the calls already running"
        held.first.set()
        await wait_for(lambda: held.running == 10, "the whole batch to run once the connection was idle")
        held.release.set()
        answers = await replies(ws, 4)
    ids = sorted(a["id"] for a in answers if isinstance(a, dict))
    assert ids == ["a", "b", "later"]
    batch = next(a for a in answers if isinstance(a, list))
    assert [r["result"] for r in batch] == list(range(10))


async def test_a_batch_that_fits_in_what_is_left_runs_beside_the_others(start_server: Any) -> None:
    """max_in_flight=8 with 2 running: a batch of 4 starts at once."""
    held = Held()
    server = await start_server(held.registry(), max_in_flight=8)
    async with connect(server.url) as ws:
        await ws.send(request("hold", [-1], "a"))
        await ws.send(request("hold", [-2], "b"))
        await ws.send("[" + ",".join(request("hold", [i], i) for i in range(4)) + "]")
        await wait_for(lambda: held.running == 6, "the batch to run beside the two calls")
        held.first.set()
        held.release.set()
        assert len(await replies(ws, 3)) == 3


async def test_the_next_message_waits_while_the_bytes_in_flight_are_at_their_limit(start_server: Any) -> None:
    """max_in_flight_bytes=2000: a second message of 1,500 bytes waits until the first is done."""
    held = Held()
    server = await start_server(held.registry(), max_in_flight_bytes=2000)
    padding = " " * 1500  # JSON allows whitespace after the value
    async with connect(server.url) as ws:
        await ws.send(request("hold", [-1], "a") + padding)
        await wait_for(lambda: held.running == 1, "the first call to run")
        await ws.send(request("hold", [1], "b") + padding)
        await read_by_server(ws)
        assert held.running == 1, "a message ran past the bytes in flight"
        held.first.set()
        held.release.set()
        assert sorted(a["id"] for a in await replies(ws, 2)) == ["a", "b"]
