"""A graceful stop answers what it owes (issue 9, defect 9).

Before: SIGTERM with 100 ``sleep(2)`` calls running closed with 1001 after
0.01 s and answered none of them; a peer that ignored the close frame delayed
the exit by 10 s, and a second signal did not shorten it. Now SIGTERM or
SIGINT drains: stop accepting and reading, answer the calls already read for
up to ``--drain-timeout`` (those still running then answer -32800), send
each subscription's final notice, close with 1001, exit 0; a peer that does
not answer the close is cut after 1 s; a second signal exits at once, with 1.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from rpc_server import builtin_tools
from rpc_server.connection import DRAIN_CLOSE_WAIT_S, SHUTTING_DOWN

from ..rpc_server.rawws import RawClient
from .harness import WAIT, ServerProcess, call, request, wait_for

SHUTDOWN_CANCEL = {"code": -32800, "message": "Request cancelled", "data": SHUTTING_DOWN}


async def _everything_until_closed(ws: ClientConnection) -> list[Any]:
    """Every message the server sends until it closes, parsed; bounded by WAIT."""
    messages = []
    async with asyncio.timeout(WAIT):
        try:
            async for message in ws:
                messages.append(orjson.loads(message))
        except ConnectionClosed:
            pass
    return messages


async def _send_and_wait_until_read(ws: ClientConnection, messages: list[str]) -> None:
    for message in messages:
        await ws.send(message)
    async with asyncio.timeout(WAIT):
        await (await ws.ping())  # the server has read everything sent before


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
async def test_a_signal_answers_every_call_in_flight_then_closes_1001_and_exits_0(sig: signal.Signals) -> None:
    """100 sleep(1) calls running at SIGTERM/SIGINT: all 100 answered with their results, then 1001, exit 0."""
    async with ServerProcess.run() as server, connect(server.url) as ws:
        await _send_and_wait_until_read(ws, [request("sleep", [1, i], i) for i in range(100)])
        server.process.send_signal(sig)
        answers = await _everything_until_closed(ws)
        assert sorted(a["result"] for a in answers) == list(range(100))
        assert ws.close_code == 1001 and ws.close_reason == SHUTTING_DOWN
        async with asyncio.timeout(WAIT):
            assert await server.process.wait() == 0
        assert server.tracebacks() == []


async def test_calls_still_running_at_the_drain_deadline_are_answered_cancelled() -> None:
    """RPC_DRAIN_TIMEOUT=0.5 with 50 sleep(8) running: each answered -32800 "the server is shutting down"."""
    async with ServerProcess.run(env={"RPC_DRAIN_TIMEOUT": "0.5"}) as server, connect(server.url) as ws:
        await _send_and_wait_until_read(ws, [request("sleep", [8], i) for i in range(50)])
        server.process.send_signal(signal.SIGTERM)
        answers = await _everything_until_closed(ws)
        assert sorted(a["id"] for a in answers) == list(range(50))
        assert all(a["error"] == SHUTDOWN_CANCEL for a in answers)
        assert ws.close_code == 1001
        async with asyncio.timeout(WAIT):
            assert await server.process.wait() == 0


async def test_a_peer_that_ignores_the_close_is_cut_after_a_second() -> None:
    """A client that reads but never answers the close frame holds the exit up for DRAIN_CLOSE_WAIT_S, not 10 s."""
    async with ServerProcess.run() as server:
        client = await RawClient.connect(server.url)
        try:
            client.write(client.text_frames(request("multiply", [2, 3], 1)))
            assert orjson.loads(await client.next_text())["result"] == 6
            ignoring = asyncio.create_task(client.discard_until_eof())  # reads, answers nothing
            server.process.send_signal(signal.SIGTERM)
            async with asyncio.timeout(DRAIN_CLOSE_WAIT_S + 4):  # well under the 10 s close timeout
                assert await server.process.wait() == 0
            await ignoring
        finally:
            client.abort()


async def test_a_second_signal_exits_at_once_with_status_1() -> None:
    """With calls that would run 8 s more and a 10 s drain, a second SIGTERM ends the process at once, status 1."""
    async with ServerProcess.run() as server, connect(server.url) as ws:
        await _send_and_wait_until_read(ws, [request("sleep", [8], i) for i in range(10)])
        server.process.send_signal(signal.SIGTERM)
        await wait_for(lambda: any("stopping" in line for line in server.log), "the drain to begin")
        server.process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(3):  # the drain would take 8 s
            assert await server.process.wait() == 1
        assert server.tracebacks() == []


async def test_each_subscription_gets_its_final_notice_before_the_close() -> None:
    """A clock subscription at SIGTERM: rpc.unsubscribed, reason "the server is shutting down", then 1001."""
    async with ServerProcess.run() as server, connect(server.url) as ws:
        sid = (await call(ws, "rpc.subscribe", {"topic": "clock", "params": {"interval": 0.05}}, 1))["result"]
        server.process.send_signal(signal.SIGTERM)
        messages = await _everything_until_closed(ws)
        assert messages[-1] == {
            "jsonrpc": "2.0",
            "method": "rpc.unsubscribed",
            "params": {"subscription": sid, "reason": SHUTTING_DOWN},
        }
        assert all(m["method"] == "rpc.event" for m in messages[:-1])
        assert ws.close_code == 1001


async def test_drain_in_the_library_says_it_is_draining_and_stops_accepting(start_server: Any) -> None:
    """server.drain(): draining is true at once, new clients are not let in, and calls read are answered."""
    release = asyncio.Event()
    registry = builtin_tools()

    @registry.tool
    async def hold() -> str:
        await release.wait()
        return "done"

    server = await start_server(registry)
    async with connect(server.url) as ws:
        await _send_and_wait_until_read(ws, [request("hold", None, 1)])
        assert not server.draining
        draining = asyncio.create_task(server.drain(timeout_s=WAIT))
        await wait_for(lambda: server.draining, "the drain to begin")
        with pytest.raises(OSError):
            await connect(server.url, open_timeout=WAIT)
        release.set()
        assert await _everything_until_closed(ws) == [{"jsonrpc": "2.0", "result": "done", "id": 1}]
        async with asyncio.timeout(WAIT):
            await draining
        assert not server.connections


async def test_messages_queued_behind_the_cap_are_answered_by_the_drain(start_server: Any) -> None:
    """At the cap, calls read and waiting are run when room comes, or answered -32800 at the deadline."""
    server = await start_server(max_in_flight=2)
    async with connect(server.url) as ws:
        calls = [request("sleep", [0.2, i], i) for i in range(2)]
        calls += [request("sleep", [8], f"late{i}") for i in range(2)]
        calls += [request("multiply", [3, 3], "quick")]
        await _send_and_wait_until_read(ws, calls)
        await server.drain(timeout_s=1.0)
        answers = {a["id"]: a for a in await _everything_until_closed(ws)}
    assert answers[0]["result"] == 0 and answers[1]["result"] == 1
    assert answers["late0"]["error"] == SHUTDOWN_CANCEL and answers["late1"]["error"] == SHUTDOWN_CANCEL
    assert answers["quick"]["result"] == 9
