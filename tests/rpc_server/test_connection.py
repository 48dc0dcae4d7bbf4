"""Regression tests for the transport (rpc_server.connection and the server's lifecycle), from the server review.

Each test pins down one bug found in review, asserting the behaviour the fix
gives. Where only the bytes on the wire show the bug (frames sharing one TCP
read, a frame behind a handshake, a peer that pings but never answers a close)
the test drives :class:`.rawws.RawClient`; otherwise a plain ``websockets``
client. Every wait is bounded, and no test asserts how long anything took.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidHandshake, InvalidStatus
from websockets.frames import Opcode

import rpc_server.connection as connection_module
from rpc_server import InvalidParamsError, Registry, RpcServer, Topics, builtin_tools, codes
from rpc_server.schema import DRAFT, _fast_path, compile_params

from .corpus import parse, request
from .rawws import WAIT, RawClient, handshake_bytes, masked_text_frame
from .wire import StartServer, receive, rpc, wait_for

CANCELLED = {"code": codes.REQUEST_CANCELLED, "message": "Request cancelled"}


async def wait_until(condition: Callable[[], Any], what: str) -> None:
    """Yield to the loop until ``condition()`` holds, for at most WAIT seconds."""
    try:
        async with asyncio.timeout(WAIT):
            while not condition():
                await asyncio.sleep(0)
    except TimeoutError:
        pytest.fail(f"gave up waiting: {what}")


def held_tools() -> tuple[Registry, asyncio.Event, asyncio.Event]:
    """The built-in tools plus ``hold``, which answers "done" once released; and its started and release events."""
    started, release = asyncio.Event(), asyncio.Event()
    registry = builtin_tools()

    @registry.tool
    async def hold() -> str:
        started.set()
        await release.wait()
        return "done"

    return registry, started, release


# -- keepalive ---------------------------------------------------------------------------------


async def test_a_client_that_answers_pings_is_kept_while_at_its_in_flight_cap(start_server: StartServer) -> None:
    """At the in-flight cap the server still takes in pongs: keepalive pings a live client on and never cuts it."""
    registry, started, release = held_tools()
    server = await start_server(registry, max_in_flight=1, ping_interval_s=0.02, ping_timeout_s=1.0)
    client = await RawClient.connect(server.url)
    try:
        client.write(client.text_frames(request("hold", id=1)))
        await wait_for(started, "the held call to start")
        # The server sends its next ping only once it has taken the pong to the last
        # one (RawClient answers each as it reads it): a third ping proves two pongs
        # were seen while the one call allowed was running.
        for n in range(3):
            try:
                await client.next_frame(Opcode.PING)
            except EOFError:
                pytest.fail(f"the server cut a client that answered its pings, before ping {n + 1}")
        release.set()
        assert parse(await client.next_text()) == {"jsonrpc": "2.0", "result": "done", "id": 1}
    finally:
        release.set()
        client.abort()


# -- cancellation ------------------------------------------------------------------------------


async def test_rpc_cancel_in_the_same_read_as_its_request_cancels_it(start_server: StartServer) -> None:
    """A call and its rpc.cancel written in one go (one server read) answer -32800, and the connection serves on."""
    registry, _, release = held_tools()
    server = await start_server(registry)
    client = await RawClient.connect(server.url)
    try:
        client.write(client.text_frames(request("hold", id=9), request("rpc.cancel", {"id": 9})))
        assert parse(await client.next_text()) == {"jsonrpc": "2.0", "error": CANCELLED, "id": 9}
        client.write(client.text_frames(request("multiply", [3, 4], 10)))
        assert parse(await client.next_text()) == {"jsonrpc": "2.0", "result": 12, "id": 10}
    finally:
        release.set()
        client.abort()


async def test_rpc_cancel_later_in_the_same_batch_as_its_request_cancels_it(start_server: StartServer) -> None:
    """In one batch, rpc.cancel of an earlier member makes that member answer -32800."""
    registry, _, release = held_tools()
    server = await start_server(registry)
    try:
        async with connect(server.url) as ws:
            await ws.send(f"[{request('hold', id=1)},{request('rpc.cancel', {'id': 1})}]")
            assert await receive(ws) == [{"jsonrpc": "2.0", "error": CANCELLED, "id": 1}]
    finally:
        release.set()


# -- awkward messages ----------------------------------------------------------------------------


async def test_a_deep_message_holding_a_huge_float_is_a_parse_error_and_the_connection_serves_on(
    server: RpcServer,
) -> None:
    """A float of 2**63 or more sends the message to the exact (recursive) parser; 1000 levels deep it is -32700."""
    deep = "[" * 1000 + "]" * 1000
    async with connect(server.url) as ws:
        await ws.send('{"jsonrpc":"2.0","method":"sum","params":[1e19,' + deep + '],"id":1}')
        response = await receive(ws)
        assert response["error"]["code"] == codes.PARSE_ERROR and response["id"] is None
        assert (await rpc(ws, "add", [1, 2], 2))["result"] == 3


async def test_a_result_nested_as_deep_as_the_parser_reads_is_written_back(server: RpcServer) -> None:
    """sleep(0, <1020-deep list>) is read, and answered with that value exactly (issue 9: it was -32603)."""
    deep = "[" * 1020 + "]" * 1020
    async with connect(server.url) as ws:
        await ws.send('{"jsonrpc":"2.0","method":"sleep","params":[0,' + deep + '],"id":1}')
        async with asyncio.timeout(WAIT):
            answer = await ws.recv()
        assert answer == '{"jsonrpc":"2.0","result":' + deep + ',"id":1}'
        assert (await rpc(ws, "add", [1, 2], 2))["result"] == 3


async def test_integers_of_more_than_308_digits_are_read_exactly_and_a_float_that_large_is_refused(
    server: RpcServer,
) -> None:
    """add(10**400, 1) answers 10**400 + 1 exactly; the float literal 1e400 (infinite as a double) is -32700."""
    async with connect(server.url) as ws:
        assert await rpc(ws, "add", [10**400, 1], 1) == {"jsonrpc": "2.0", "result": 10**400 + 1, "id": 1}
        assert await rpc(ws, "add", {"a": -(10**400), "b": 1}, 2) == {
            "jsonrpc": "2.0",
            "result": -(10**400) + 1,
            "id": 2,
        }
        await ws.send('{"jsonrpc":"2.0","method":"add","params":[1e400,1],"id":3}')
        response = await receive(ws)
        assert response["error"]["code"] == codes.PARSE_ERROR and response["id"] is None
        assert (await rpc(ws, "add", [1, 2], 4))["result"] == 3


# -- handshake -----------------------------------------------------------------------------------


async def _pipeline_a_call_behind_the_handshake(start_server: StartServer, path: str) -> tuple[bytes, list[int]]:
    """Write a handshake for ``path`` and a call of ``touch`` in one write; the server's reply, and touch's runs."""
    runs: list[int] = []
    registry = Registry()

    @registry.tool
    def touch(x: int) -> int:
        runs.append(x)
        return x

    server = await start_server(registry)
    reader, writer = await asyncio.open_connection(server.host, server.port)
    try:
        url = f"ws://{server.host}:{server.port}{path}"
        writer.write(handshake_bytes(url) + masked_text_frame(request("touch", [7], 1)))
        reply = b""
        async with asyncio.timeout(WAIT):
            # Until the server ends the stream (a refusal), or until touch's answer (an acceptance).
            while b'"result":7' not in reply and (chunk := await reader.read(65536)):
                reply += chunk
        # Our end of the stream, after every byte we sent: once the server has let
        # the connection go, it has read all of them and nothing more can run.
        writer.write_eof()
        await wait_until(lambda: not server.connections or runs, "the server to finish with the connection")
    finally:
        writer.transport.abort()
    return reply, runs


async def test_a_frame_sent_right_behind_a_handshake_on_an_unknown_path_is_not_run(start_server: StartServer) -> None:
    """The handshake on /nope is answered 404, and the call pipelined behind it never reaches its tool."""
    reply, runs = await _pipeline_a_call_behind_the_handshake(start_server, "/nope")
    assert reply.startswith(b"HTTP/1.1 404")
    assert runs == [], "the tool ran for a connection whose handshake was refused"


async def test_the_same_bytes_on_the_endpoint_do_run_the_call(start_server: StartServer) -> None:
    """Control for the test above: on /ws the same handshake and frame are accepted and the call runs."""
    reply, runs = await _pipeline_a_call_behind_the_handshake(start_server, "/ws")
    assert reply.startswith(b"HTTP/1.1 101")
    assert runs == [7]


async def test_a_browser_from_an_origin_not_listed_is_refused_with_403(start_server: StartServer) -> None:
    """With origins set, a handshake carrying another Origin is refused before any WebSocket is opened."""
    server = await start_server(origins=["https://good.example", None])
    with pytest.raises(InvalidStatus) as caught:
        async with connect(server.url, origin="https://evil.example"):  # type: ignore[arg-type]
            pass
    assert caught.value.response.status_code == 403


@pytest.mark.parametrize("origin", ["https://good.example", None], ids=["listed-origin", "no-origin"])
async def test_a_listed_origin_and_a_client_with_no_origin_are_served(
    start_server: StartServer, origin: str | None
) -> None:
    """With origins=[good, None], a browser from the listed Origin and a client sending none both get answers."""
    server = await start_server(origins=["https://good.example", None])
    async with connect(server.url, origin=origin) as ws:  # type: ignore[arg-type]
        assert (await rpc(ws, "multiply", [3, 4]))["result"] == 12


# -- closing -------------------------------------------------------------------------------------


@pytest.mark.parametrize("pinging", [False, True], ids=["silent-peer", "pinging-peer"])
async def test_a_peer_that_never_answers_the_close_is_cut_after_close_timeout(
    start_server: StartServer, pinging: bool
) -> None:
    """A peer that ignores the server's close is cut once close_timeout passes, even if it keeps pinging meanwhile."""
    server = await start_server(close_timeout_s=0.2)
    client = await RawClient.connect(server.url)
    ended = asyncio.create_task(client.discard_until_eof())

    async def keep_pinging() -> None:
        # Each ping draws a pong from the closing server. Bounded: it outlasts
        # the wait below, and stops when the server ends the connection.
        for _ in range(20 * WAIT * 2):
            if ended.done():
                return
            client.write(client.ping_frame())
            await asyncio.sleep(0.05)

    pinger = asyncio.create_task(keep_pinging()) if pinging else None
    try:
        server.close()
        try:
            async with asyncio.timeout(WAIT):
                await ended
                await server.wait_closed()
        except TimeoutError:
            pytest.fail("the server never cut a peer that did not answer its close")
        assert not server.connections
    finally:
        for task in (ended, pinger):
            if task is not None:
                task.cancel()
        client.abort()


async def test_wait_closed_can_be_waited_for_again_after_a_wait_that_timed_out(start_server: StartServer) -> None:
    """A wait_closed() cut short by a timeout leaves the closing as it was: a second wait sees it through."""
    server = await start_server()  # close_timeout 10 s: only the peer can end the closing here
    client = await RawClient.connect(server.url)
    try:
        server.close()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.05):
                await server.wait_closed()
        client.abort()
        try:
            async with asyncio.timeout(WAIT):
                await server.wait_closed()
        except asyncio.CancelledError:
            pytest.fail("the second wait_closed() was cancelled: the first one's timeout broke the closing")
        assert not server.connections
    finally:
        client.abort()


async def test_wait_closed_waits_for_the_clean_up_of_connections_already_lost(start_server: StartServer) -> None:
    """A connection lost before close() is still awaited: wait_closed() returns only after its tools finished."""
    started, cancelled, cleaned = asyncio.Event(), asyncio.Event(), asyncio.Event()
    registry = builtin_tools()

    @registry.tool
    async def stubborn() -> None:
        started.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise
        finally:
            await asyncio.sleep(0.05)  # a tool that needs a moment to release what it holds
            cleaned.set()

    server = await start_server(registry)
    client = await RawClient.connect(server.url)
    client.write(client.text_frames(request("stubborn", id=1)))
    await wait_for(started, "the tool to start")
    client.abort()
    await wait_for(cancelled, "the lost connection's call to be cancelled")
    server.close()
    async with asyncio.timeout(WAIT):
        await server.wait_closed()
    assert cleaned.is_set(), "wait_closed() returned while a lost connection was still cleaning up"


async def test_a_connection_accepted_in_the_same_loop_turn_as_close_is_closed_too(
    start_server: StartServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """close() run between the accept and connection_made still ends that connection, so wait_closed() returns."""
    server = await start_server()
    original = connection_module.Connection.__init__

    def init(self: connection_module.Connection, srv: RpcServer) -> None:
        original(self, srv)
        # asyncio calls connection_made with call_soon after building the protocol: this runs first.
        asyncio.get_running_loop().call_soon(srv.close)

    monkeypatch.setattr(connection_module.Connection, "__init__", init)
    ws: ClientConnection | None = None
    try:
        ws = await connect(server.url, open_timeout=WAIT)
    except (InvalidHandshake, ConnectionError):
        pass  # dropped while connecting: closed, as it should be
    try:
        # The client keeps its end open: only the server can end this connection.
        async with asyncio.timeout(WAIT):
            await server.wait_closed()
    except TimeoutError:
        pytest.fail("wait_closed() waited for a connection that close() never closed")
    finally:
        if ws is not None:
            await ws.close()
    assert not server.connections


# -- subscriptions ---------------------------------------------------------------------------------


async def subscribe(ws: ClientConnection, topic: str, params: Any = None, id: int = 100) -> Any:
    """The response to rpc.subscribe, whatever it is."""
    return await rpc(ws, "rpc.subscribe", {"topic": topic, "params": params} if params else [topic], id)


async def test_publishing_an_event_json_cannot_carry_raises_type_error_and_the_subscription_carries_on(
    start_server: StartServer,
) -> None:
    """publish() of a non-JSON event raises TypeError to the publisher; the subscriber still gets later events."""
    topics = Topics()
    topics.add("news")
    server = await start_server(topics=topics)
    async with connect(server.url) as ws:
        sid = (await subscribe(ws, "news"))["result"]
        with pytest.raises(TypeError):
            server.publish("news", {"bad": object()})
        assert server.publish("news", {"good": 1}) == 1
        assert await receive(ws) == {
            "jsonrpc": "2.0",
            "method": "rpc.event",
            "params": {"subscription": sid, "topic": "news", "event": {"good": 1}},
        }
        (connection,) = server.connections
        assert list(connection.session.subscriptions) == [sid]


async def test_a_failed_subscribe_leaves_nothing_behind(start_server: StartServer) -> None:
    """A topic whose source cannot start fails rpc.subscribe with no subscription and no task left over."""

    async def ticks(every: float) -> AsyncIterator[int]:
        yield 1

    topics = Topics()
    topics.add("news")
    # The schema asks for a param the source does not take: the params pass, the source cannot start.
    rate = {"type": "object", "properties": {"rate": {"type": "number"}}, "required": ["rate"]}
    ticks_topic = topics.add("ticks", ticks, schema={"$schema": DRAFT, **rate, "additionalProperties": False})
    server = await start_server(topics=topics)
    async with connect(server.url) as ws:
        (connection,) = server.connections
        before = asyncio.all_tasks()
        response = await subscribe(ws, "ticks", {"rate": 1.0}, id=1)
        assert response["error"]["code"] == codes.INTERNAL_ERROR and response["id"] == 1
        assert connection.session.subscriptions == {}
        assert ticks_topic.subscribers == set()
        assert asyncio.all_tasks() - before == set(), "the failed subscribe left tasks running"
        sid = (await subscribe(ws, "news", id=2))["result"]
        assert server.publish("news", "later") == 1
        assert (await receive(ws))["params"] == {"subscription": sid, "topic": "news", "event": "later"}
        assert list(connection.session.subscriptions) == [sid]


# -- params schemas --------------------------------------------------------------------------------

_NUMBERS = {"items": [{"type": "number"}, {"type": "number"}], "minItems": 2, "additionalItems": False}
_NAMED = {
    "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
    "required": ["a", "b"],
    "additionalProperties": False,
}


@pytest.mark.parametrize(
    ("then", "else_", "params"),
    [
        ({"type": "object", **_NUMBERS}, {"type": "object", **_NAMED}, [3, 4]),
        ({"type": "array", **_NUMBERS}, {"type": "array", **_NAMED}, {"a": 3, "b": 4}),
    ],
    ids=["then-is-object", "else-is-array"],
)
def test_no_fast_params_check_for_a_schema_whose_branches_contradict_their_types(
    then: dict[str, Any], else_: dict[str, Any], params: Any
) -> None:
    """When "then" is not an array schema or "else" not an object one, no fast check stands in for the validator."""
    schema = {"$schema": DRAFT, "if": {"type": "array"}, "then": then, "else": else_}
    assert _fast_path(schema) is None
    with pytest.raises(InvalidParamsError):
        compile_params(schema, "contradictory")(params)
