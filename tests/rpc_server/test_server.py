"""The WebSocket transport end to end, with a plain ``websockets`` client against servers started on port 0.

Ordering and concurrency are proven by order of arrival and by tools that wait
on events, never by timing; every wait is bounded.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from rpc_server import Registry, RpcServer, builtin_tools
from rpc_server.server import BINARY_FRAME_REPLY

from .corpus import parse, request
from .wire import WAIT, StartServer, receive, rpc, wait_for


def root_url(server: RpcServer, path: str) -> str:
    return f"ws://{server.host}:{server.port}{path}"


class Gate:
    """Async tools that block until released, recording when they start and whether they were cancelled."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.started: list[Any] = []
        self.cancelled: list[Any] = []
        self.tasks: list[asyncio.Task[Any]] = []
        self.all_started = asyncio.Event()
        self.all_cancelled = asyncio.Event()
        self.release = asyncio.Event()

    async def hold(self, tag: Any = None) -> Any:
        self.started.append(tag)
        self.tasks.append(asyncio.current_task())  # type: ignore[arg-type]
        if len(self.started) == self.expected:
            self.all_started.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.append(tag)
            if len(self.cancelled) == self.expected:
                self.all_cancelled.set()
            raise
        return tag


def gated_registry(gate: Gate) -> tuple[Registry, list[int]]:
    """The built-in tools, plus ``hold`` (gated) and ``tally`` (a plain tool counting its runs)."""
    registry = builtin_tools()
    runs: list[int] = []
    registry.add(gate.hold, name="hold")

    @registry.tool
    def tally() -> int:
        runs.append(1)
        return len(runs)

    return registry, runs


@asynccontextmanager
async def released(gate: Gate) -> AsyncIterator[Gate]:
    """Open the gate on the way out, so a failing test never leaves a server unable to shut down."""
    try:
        yield gate
    finally:
        gate.release.set()


# -- endpoints ---------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/ws", "/ws?client=test"])
async def test_both_endpoints_answer(server: RpcServer, path: str) -> None:
    """/ and /ws (query strings aside) speak JSON-RPC."""
    async with connect(root_url(server, path)) as ws:
        assert await rpc(ws, "multiply", [3, 4], "p") == {"jsonrpc": "2.0", "result": 12, "id": "p"}


@pytest.mark.parametrize("path", ["/other", "/ws/", "/wss", "/api/ws"])
async def test_any_other_path_gets_http_404(server: RpcServer, path: str) -> None:
    """The handshake on an unknown path is refused with 404, before any WebSocket is opened."""
    with pytest.raises(InvalidStatus) as caught:
        async with connect(root_url(server, path)):
            pass
    assert caught.value.response.status_code == 404


async def test_the_url_names_the_port_actually_bound(server: RpcServer) -> None:
    """With port 0 the server reports the real port in its ws://HOST:PORT/ws url."""
    assert server.port != 0
    assert server.url == f"ws://127.0.0.1:{server.port}/ws"


# -- concurrency --------------------------------------------------------------------


async def test_a_slow_call_does_not_delay_a_fast_one_sent_after_it(server: RpcServer) -> None:
    """sleep(0.5) sent first, multiply sent second: multiply's reply arrives first."""
    async with connect(server.url) as ws:
        await ws.send(request("sleep", [0.5, "slow"], "slow"))
        await ws.send(request("multiply", [3, 4], "fast"))
        first, second = await receive(ws), await receive(ws)
    assert (first["id"], first["result"]) == ("fast", 12)
    assert (second["id"], second["result"]) == ("slow", "slow")


async def test_batch_members_run_concurrently_over_a_socket(start_server: StartServer) -> None:
    """Each member of a batch waits until all have started, so the batch only completes if they run together."""
    size = 8
    gate = Gate(size)
    registry = Registry()

    @registry.tool
    async def rendezvous(i: int) -> int:
        gate.started.append(i)
        if len(gate.started) == size:
            gate.all_started.set()
        await gate.all_started.wait()
        return i

    server = await start_server(registry)
    async with connect(server.url) as ws:
        await ws.send("[" + ",".join(request("rendezvous", [i], i) for i in range(size)) + "]")
        try:
            response = await receive(ws)
        except TimeoutError:
            pytest.fail(f"batch members ran one after another: only {gate.started} had started")
    assert [(r["id"], r["result"]) for r in response] == [(i, i) for i in range(size)]


async def test_batch_of_sleeps_answers_every_member_in_order(server: RpcServer) -> None:
    """A batch of equal sleeps is one array, in request order, holding every value."""
    async with connect(server.url) as ws:
        await ws.send("[" + ",".join(request("sleep", [0.01, i], i) for i in range(10)) + "]")
        response = await receive(ws)
    assert [(r["id"], r["result"]) for r in response] == [(i, i) for i in range(10)]


async def _probe_reads(server: RpcServer, gate: Gate, held: int, counted: int) -> ClientConnection:
    """Send ``held`` gated calls then ``counted`` count calls; return once the server has surely received them all.

    The ping goes out after the count calls, so its pong proves that the server's
    WebSocket layer has taken in every frame before it. Keep ``held + counted``
    under websockets' max_queue (16): past it the server stops taking frames in,
    and the pong would never come.
    """
    ws = await connect(server.url)
    for i in range(held):
        await ws.send(request("hold", [i], f"hold-{i}"))
    for i in range(counted):
        await ws.send(request("tally", None, f"count-{i}"))
    await wait_for(gate.all_started, f"{held} held calls to start")
    async with asyncio.timeout(WAIT):
        await (await ws.ping())
    return ws


async def test_at_the_in_flight_cap_the_server_stops_reading_and_drops_nothing(start_server: StartServer) -> None:
    """With max_in_flight=K, calls sent after K blocked ones are not read until one finishes; then all are answered."""
    held, counted = 3, 4
    gate = Gate(held)
    registry, runs = gated_registry(gate)
    server = await start_server(registry, max_in_flight=held)
    async with released(gate):
        ws = await _probe_reads(server, gate, held, counted)
        try:
            assert runs == [], "the server read past its in-flight cap"
            gate.release.set()
            replies = [await receive(ws) for _ in range(held + counted)]
        finally:
            await ws.close()
    assert sorted(r["id"] for r in replies) == sorted(
        [f"hold-{i}" for i in range(held)] + [f"count-{i}" for i in range(counted)]
    )
    assert all("result" in r for r in replies)
    assert len(runs) == counted


async def test_below_the_cap_the_same_probe_sees_the_later_calls_run(start_server: StartServer) -> None:
    """The probe of the test above is sound: when the cap is not reached, the count calls have run by the pong."""
    held, counted = 3, 4
    gate = Gate(held)
    registry, runs = gated_registry(gate)
    server = await start_server(registry, max_in_flight=held + 1)
    async with released(gate):
        ws = await _probe_reads(server, gate, held, counted)
        try:
            assert len(runs) == counted
        finally:
            await ws.close()


async def test_a_connection_at_its_cap_does_not_hold_up_other_connections(start_server: StartServer) -> None:
    """The cap is per connection: while one is full, another connection is served at once."""
    gate = Gate(2)
    registry, _ = gated_registry(gate)
    server = await start_server(registry, max_in_flight=2)
    async with released(gate):
        full = await _probe_reads(server, gate, 2, 0)
        try:
            async with connect(server.url) as other:
                assert (await rpc(other, "multiply", [6, 7]))["result"] == 42
        finally:
            await full.close()


# -- frames ---------------------------------------------------------------------------


async def test_a_binary_frame_gets_the_documented_error_and_the_connection_stays_open(server: RpcServer) -> None:
    """A binary frame, even of valid JSON-RPC, is answered -32600 (as a text frame); the next call works."""
    async with connect(server.url) as ws:
        await ws.send(request("multiply", [3, 4], 1).encode())
        async with asyncio.timeout(WAIT):
            frame = await ws.recv()
        assert isinstance(frame, str)
        assert frame.encode() == BINARY_FRAME_REPLY
        response = parse(frame)
        assert response["error"]["code"] == -32600 and response["id"] is None
        assert "binary" in response["error"]["data"]
        assert (await rpc(ws, "multiply", [3, 4], 2))["result"] == 12


async def test_bad_input_leaves_the_connection_serving(server: RpcServer) -> None:
    """A parse error, an invalid request and a failing call are each answered, and the connection carries on."""
    async with connect(server.url) as ws:
        for bad in ["{", "[]", request("multiply", ["ab", 3], 1), request("divide", [1, 0], 2)]:
            await ws.send(bad)
            assert "error" in await receive(ws)
        assert (await rpc(ws, "multiply", [3, 4], 3))["result"] == 12


async def test_a_message_over_the_size_limit_closes_with_1009_and_others_are_still_served(
    start_server: StartServer,
) -> None:
    """An oversized message closes its own connection with 1009; an open connection and a new one keep working."""
    server = await start_server(max_message_bytes=1024)
    async with connect(server.url) as bystander, connect(server.url) as ws:
        await ws.send(request("sum", [1] * 1000, 1))
        with pytest.raises(ConnectionClosedError) as caught:
            await receive(ws)
        assert caught.value.rcvd is not None and caught.value.rcvd.code == 1009
        assert (await rpc(bystander, "multiply", [3, 4]))["result"] == 12
    async with connect(server.url) as newcomer:
        assert (await rpc(newcomer, "multiply", [3, 4]))["result"] == 12


# -- closing ------------------------------------------------------------------------------


async def _close_cancels(start_server: StartServer, held: int, max_in_flight: int) -> None:
    gate = Gate(held)
    registry, _ = gated_registry(gate)
    server = await start_server(registry, max_in_flight=max_in_flight)
    before = asyncio.all_tasks()
    async with released(gate):
        ws = await connect(server.url)
        for i in range(held):
            await ws.send(request("hold", [i], i))
        await wait_for(gate.all_started, "the calls to start")
        connection_tasks = asyncio.all_tasks() - before - {asyncio.current_task()}
        await ws.close()
        await wait_for(gate.all_cancelled, f"the running calls to be cancelled (cancelled: {gate.cancelled})")
        _, pending = await asyncio.wait(connection_tasks, timeout=WAIT)
        assert not pending, f"tasks of the closed connection still running: {pending}"
        assert all(task.cancelled() for task in gate.tasks)


async def test_closing_the_connection_cancels_its_running_calls(start_server: StartServer) -> None:
    """A call still running when its client goes away is cancelled, and no task of the connection is left."""
    await _close_cancels(start_server, held=2, max_in_flight=8)


async def test_closing_the_connection_cancels_its_running_calls_even_at_the_cap(start_server: StartServer) -> None:
    """At the in-flight cap the read loop is waiting for room; closing the socket must still cancel the calls."""
    await _close_cancels(start_server, held=2, max_in_flight=2)


async def test_stopping_the_server_cancels_running_calls(start_server: StartServer) -> None:
    """close() and wait_closed() end every connection and cancel the calls still running."""
    gate = Gate(1)
    registry, _ = gated_registry(gate)
    server = await start_server(registry)
    async with released(gate), connect(server.url) as ws:
        await ws.send(request("hold", ["x"], 1))
        await wait_for(gate.all_started, "the call to start")
        server.close()
        async with asyncio.timeout(WAIT):
            await server.wait_closed()
        assert gate.cancelled == ["x"]
