"""rpc.cancel of a call still waiting behind the in-flight limit (issue 9, defect 4).

Before: with the connection at its cap, a call X waited in the backlog, and
``rpc.cancel {"id": X}`` ran at once, found nothing running, and did
nothing: X later ran to completion. Now the cancel finds X where it waits: a
request alone in its message is removed and answered -32800 at once, a batch
member answers -32800 (unrun) when its batch is read.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson

from rpc_server import builtin_tools, codes

from ..rpc_server.rawws import RawClient
from .harness import request, wait_for

CANCELLED = {"code": codes.REQUEST_CANCELLED, "message": "Request cancelled"}


def tools() -> tuple[Any, list[Any], asyncio.Event]:
    """The built-ins plus ``hold(n)``, which waits for its release; and the list of n that ran, and the release."""
    ran: list[Any] = []
    release = asyncio.Event()
    registry = builtin_tools()

    @registry.tool
    async def hold(n: Any) -> Any:
        ran.append(n)
        await release.wait()
        return n

    return registry, ran, release


async def next_message(client: RawClient) -> Any:
    return orjson.loads(await client.next_text())


async def test_cancelling_a_queued_call_answers_it_at_once_and_it_never_runs(start_server: Any) -> None:
    """4 calls hold the cap of 4; X waits behind them; rpc.cancel X answers X -32800 now, and X never runs."""
    registry, ran, release = tools()
    server = await start_server(registry, max_in_flight=4)
    client = await RawClient.connect(server.url)
    try:
        client.write(client.text_frames(*(request("hold", [i], i) for i in range(4))))
        await wait_for(lambda: len(ran) == 4, "the cap to be reached")
        client.write(client.text_frames(request("hold", ["X"], "X"), request("rpc.cancel", {"id": "X"})))
        assert await next_message(client) == {"jsonrpc": "2.0", "error": CANCELLED, "id": "X"}
        release.set()
        answers = [await next_message(client) for _ in range(4)]
        assert sorted(a["id"] for a in answers) == [0, 1, 2, 3]
        assert "X" not in ran
    finally:
        release.set()
        client.abort()


async def test_cancelling_a_member_of_a_queued_batch_answers_it_unrun_and_runs_the_rest(start_server: Any) -> None:
    """A queued batch [X, Y] and rpc.cancel X: once read, X answers -32800 without running; Y runs."""
    registry, ran, release = tools()
    server = await start_server(registry, max_in_flight=2)
    client = await RawClient.connect(server.url)
    try:
        client.write(client.text_frames(request("hold", [0], 0), request("hold", [1], 1)))
        await wait_for(lambda: len(ran) == 2, "the cap to be reached")
        batch = "[" + request("hold", ["X"], "X") + "," + request("multiply", [2, 3], "Y") + "]"
        client.write(client.text_frames(batch, request("rpc.cancel", ["X"])))
        release.set()
        answers = [await next_message(client) for _ in range(3)]
        (batch_answer,) = [a for a in answers if isinstance(a, list)]
        assert batch_answer == [
            {"jsonrpc": "2.0", "error": CANCELLED, "id": "X"},
            {"jsonrpc": "2.0", "result": 6, "id": "Y"},
        ]
        assert "X" not in ran
        # The id is free again: a later call with it runs.
        client.write(client.text_frames(request("hold", ["X"], "X")))
        assert await next_message(client) == {"jsonrpc": "2.0", "result": "X", "id": "X"}
    finally:
        release.set()
        client.abort()


async def test_a_cancel_naming_nothing_queued_or_running_changes_nothing(start_server: Any) -> None:
    """At the cap, rpc.cancel of an unknown id does nothing; the queued call still runs and answers."""
    registry, ran, release = tools()
    server = await start_server(registry, max_in_flight=1)
    client = await RawClient.connect(server.url)
    try:
        client.write(client.text_frames(request("hold", [0], 0)))
        await wait_for(lambda: ran == [0], "the cap to be reached")
        client.write(client.text_frames(request("hold", [1], 1), request("rpc.cancel", {"id": "nobody"})))
        release.set()
        answers = [await next_message(client) for _ in range(2)]
        assert sorted(a["result"] for a in answers) == [0, 1]
    finally:
        release.set()
        client.abort()


async def test_a_cancel_reaches_a_batch_waiting_for_the_connection_to_be_idle(start_server: Any) -> None:
    """A batch larger than what is left waits, already read: rpc.cancel of its member answers it -32800."""
    registry, ran, release = tools()
    server = await start_server(registry, max_in_flight=2)
    client = await RawClient.connect(server.url)
    try:
        client.write(client.text_frames(request("hold", [0], 0)))
        await wait_for(lambda: ran == [0], "one call to run")
        batch = "[" + ",".join(request("hold", [f"b{i}"], f"b{i}") for i in range(3)) + "]"
        client.write(client.text_frames(batch, request("rpc.cancel", {"id": "b1"})))
        release.set()
        answers = [await next_message(client) for _ in range(2)]
        (batch_answer,) = [a for a in answers if isinstance(a, list)]
        assert batch_answer[1] == {"jsonrpc": "2.0", "error": CANCELLED, "id": "b1"}
        assert [a["result"] for a in (batch_answer[0], batch_answer[2])] == ["b0", "b2"]
        assert "b1" not in ran
    finally:
        release.set()
        client.abort()
