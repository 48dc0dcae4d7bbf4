"""rpc.cancel of a call still waiting behind the in-flight limit (issue 9, defect 4).

Before: with the connection at its cap, a call X waited in the backlog, and
``rpc.cancel {"id": X}`` ran at once, found nothing running, and did
nothing: X later ran to completion. Now the cancel finds X where it waits: a
request alone in its message is removed and answered -32800 at once, a batch
member answers -32800 (unrun) when its batch is read.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson

from rpc_server import builtin_tools, codes

from ..rpc_server.rawws import RawClient
from .harness import request, wait_for

CANCELLED = {"code": codes.REQUEST_CANCELLED, "message": "Request cancelled"}


@dataclass(slots=True)
class AtTheCap:
    """A raw client whose connection holds ``running`` calls of ``hold(n)``, which wait for ``release``."""

    client: RawClient
    ran: list[Any]
    release: asyncio.Event

    async def next_message(self) -> Any:
        return orjson.loads(await self.client.next_text())

    def send(self, *messages: str) -> None:
        self.client.write(self.client.text_frames(*messages))


@contextlib.asynccontextmanager
async def at_the_cap(start_server: Any, max_in_flight: int, running: int) -> AsyncIterator[AtTheCap]:
    """A server with ``hold(n)`` and ``max_in_flight``, and a connection with ``running`` held calls (ids 0...)."""
    ran: list[Any] = []
    release = asyncio.Event()
    registry = builtin_tools()

    @registry.tool
    async def hold(n: Any) -> Any:
        ran.append(n)
        await release.wait()
        return n

    server = await start_server(registry, max_in_flight=max_in_flight)
    held = AtTheCap(await RawClient.connect(server.url), ran, release)
    try:
        held.send(*(request("hold", [i], i) for i in range(running)))
        await wait_for(lambda: len(ran) == running, f"{running} calls to run")
        yield held
    finally:
        release.set()
        held.client.abort()


async def test_cancelling_a_queued_call_answers_it_at_once_and_it_never_runs(start_server: Any) -> None:
    """4 calls hold the cap of 4; X waits behind them; rpc.cancel X answers X -32800 now, and X never runs."""
    async with at_the_cap(start_server, max_in_flight=4, running=4) as held:
        held.send(request("hold", ["X"], "X"), request("rpc.cancel", {"id": "X"}))
        assert await held.next_message() == {"jsonrpc": "2.0", "error": CANCELLED, "id": "X"}
        held.release.set()
        answers = [await held.next_message() for _ in range(4)]
        assert sorted(a["id"] for a in answers) == [0, 1, 2, 3]
        assert "X" not in held.ran


async def test_cancelling_a_member_of_a_queued_batch_answers_it_unrun_and_runs_the_rest(start_server: Any) -> None:
    """A queued batch [X, Y] and rpc.cancel X: once read, X answers -32800 without running; Y runs."""
    async with at_the_cap(start_server, max_in_flight=2, running=2) as held:
        held.send("[" + request("hold", ["X"], "X") + "," + request("multiply", [2, 3], "Y") + "]")
        held.send(request("rpc.cancel", ["X"]))
        held.release.set()
        answers = [await held.next_message() for _ in range(3)]
        (batch_answer,) = [a for a in answers if isinstance(a, list)]
        assert batch_answer == [
            {"jsonrpc": "2.0", "error": CANCELLED, "id": "X"},
            {"jsonrpc": "2.0", "result": 6, "id": "Y"},
        ]
        assert "X" not in held.ran
        # The id is free again: a later call with it runs.
        held.send(request("hold", ["X"], "X"))
        assert await held.next_message() == {"jsonrpc": "2.0", "result": "X", "id": "X"}


async def test_a_cancel_naming_nothing_queued_or_running_changes_nothing(start_server: Any) -> None:
    """At the cap, rpc.cancel of an unknown id does nothing; the queued call still runs and answers."""
    async with at_the_cap(start_server, max_in_flight=1, running=1) as held:
        held.send(request("hold", [1], 1), request("rpc.cancel", {"id": "nobody"}))
        held.release.set()
        answers = [await held.next_message() for _ in range(2)]
        assert sorted(a["result"] for a in answers) == [0, 1]


async def test_a_cancel_reaches_a_batch_waiting_for_the_connection_to_be_idle(start_server: Any) -> None:
    """A batch larger than what is left waits, already read: rpc.cancel of its member answers it -32800."""
    async with at_the_cap(start_server, max_in_flight=2, running=1) as held:
        batch = "[" + ",".join(request("hold", [f"b{i}"], f"b{i}") for i in range(3)) + "]"
        held.send(batch, request("rpc.cancel", {"id": "b1"}))
        held.release.set()
        answers = [await held.next_message() for _ in range(2)]
        (batch_answer,) = [a for a in answers if isinstance(a, list)]
        assert batch_answer[1] == {"jsonrpc": "2.0", "error": CANCELLED, "id": "b1"}
        assert [a["result"] for a in (batch_answer[0], batch_answer[2])] == ["b0", "b2"]
        assert "b1" not in held.ran
