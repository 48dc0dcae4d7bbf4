"""The client against this project's real server, over real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import logging
import re
import threading

import pytest

from rpc_client import (
    Backoff,
    CallTimeout,
    Client,
    ClientClosedError,
    ConnectError,
    ConnectionLost,
    Ok,
    ProtocolError,
    RpcError,
    connect_sync,
)
from rpc_server import Registry, RpcServer, builtin_tools

FAST = Backoff(initial=0.01, maximum=0.1)


def loop_threads() -> int:
    """How many background loops of connect_sync() are running."""
    return sum(t.name.startswith("rpc_client loop") for t in threading.enumerate())


async def test_call_returns_results_by_position_and_by_name(server):
    """multiply(3, 4) is 12 and subtract(minuend=42, subtrahend=23) is 19 over a real socket."""
    async with Client(server.url) as client:
        assert await client.call("multiply", 3, 4) == 12
        assert await client.call("subtract", minuend=42, subtrahend=23) == 19
        assert await client.call("sum") == 0


async def test_server_errors_raise_rpc_error_with_the_servers_code_and_data(server):
    """Unknown methods, bad params and tool errors raise RpcError with the server's code, message and data."""
    async with Client(server.url) as client:
        with pytest.raises(RpcError) as caught:
            await client.call("nope")
        assert (caught.value.code, caught.value.message, caught.value.data) == (-32601, "Method not found", "nope")
        with pytest.raises(RpcError) as caught:
            await client.call("multiply", "ab", 3)
        assert caught.value.code == -32602
        assert "parameter 'a' must be a number" in caught.value.data
        with pytest.raises(RpcError) as caught:
            await client.call("divide", 1, 0)
        assert caught.value.code == 1001
        response = await client.request("divide", [6, 3])
        assert isinstance(response, Ok) and response.result == 2


async def test_a_thousand_concurrent_calls_on_one_connection_each_get_their_own_answer(server):
    """asyncio.gather of 1,000 calls, slow ones among them, returns every caller its own product."""
    async with Client(server.url, timeout=20) as client:
        slow = [client.call("sleep", 0.05, n) for n in range(10)]
        fast = [client.call("multiply", n, 3) for n in range(990)]
        results = await asyncio.gather(*slow, *fast)
        assert results == list(range(10)) + [n * 3 for n in range(990)]
        assert client.in_flight == 0


async def test_a_slow_call_does_not_hold_up_a_fast_one_sent_after_it(server):
    """The answer to a fast call sent second arrives while the slow call sent first is still waiting."""
    async with Client(server.url) as client:
        slow = asyncio.ensure_future(client.call("sleep", 10, "slow"))
        assert await client.call("multiply", 3, 4) == 12
        assert not slow.done()
        slow.cancel()
        with pytest.raises(asyncio.CancelledError):
            await slow
        assert client.in_flight == 0


async def test_a_batch_returns_each_outcome_in_the_order_asked(server):
    """A batch with a slow member, an error and a named call returns values and RpcErrors in request order."""
    async with Client(server.url) as client:
        results = await client.batch_call(
            [
                ("sleep", [0.05, "slow"]),
                ("divide", [1, 0]),
                ("subtract", {"minuend": 42, "subtrahend": 23}),
                ("nope", None),
            ]
        )
        assert results[0] == "slow"
        assert isinstance(results[1], RpcError) and results[1].code == 1001
        assert results[2] == 19
        assert isinstance(results[3], RpcError) and results[3].code == -32601

        async with client.batch() as batch:
            product = batch.call("multiply", 3, 4)
            power = batch.call("pow", base=2, exponent=10)
            batch.notify("multiply", 1, 1)
        assert (product.result(), power.result()) == (12, 1024)
        assert client.in_flight == 0


async def test_a_batch_the_server_rejects_whole_times_out_and_logs_the_servers_error(start_server, caplog):
    """A batch over the server's limit gets one id-null error: logged as a warning, and the batch times out."""
    server = await start_server(max_batch=2)
    async with Client(server.url) as client:
        with caplog.at_level(logging.WARNING, logger="rpc_client"):
            with pytest.raises(CallTimeout):
                await client.batch_call([("add", [1, 1])] * 3, timeout=0.5)
        assert "error -32600: Invalid Request: a batch may hold at most 2" in caplog.text
        assert client.in_flight == 0
        assert await client.call("add", 1, 1) == 2


async def test_notifications_reach_the_server_and_get_no_answer(start_server, caplog):
    """A notification runs its tool on the server, and no answer of any kind comes back for it."""
    seen: list[str] = []
    arrived = asyncio.Event()
    registry = Registry()

    @registry.tool
    def record(text: str) -> None:
        seen.append(text)
        arrived.set()

    tools = builtin_tools()
    tools.include(registry)
    server = await start_server(tools)
    async with Client(server.url) as client:
        with caplog.at_level(logging.DEBUG, logger="rpc_client"):
            await client.notify("record", "hello")
            async with asyncio.timeout(5):
                await arrived.wait()
            # A call after it: had the notification been answered, that answer would arrive first.
            assert await client.call("multiply", 3, 4) == 12
        assert seen == ["hello"]
        assert "dropping" not in caplog.text
        assert client.in_flight == 0


async def test_a_call_times_out_and_the_connection_carries_on(server):
    """A call past its timeout raises TimeoutError, leaves nothing pending, and the next call works."""
    async with Client(server.url) as client:
        with pytest.raises(TimeoutError):
            await client.call("sleep", 5, timeout=0.05)
        assert client.in_flight == 0
        assert await client.call("add", 1, 2) == 3


async def test_the_server_closing_fails_pending_calls_with_connection_lost(start_server):
    """When the server shuts down, the calls waiting fail at once with ConnectionLost, none hangs."""
    server = await start_server()
    async with Client(server.url, timeout=20) as client:
        calls = [asyncio.ensure_future(client.call("sleep", 10)) for _ in range(3)]
        assert await client.call("add", 1, 1) == 2  # the sleeps were sent before this was answered
        server.close()
        async with asyncio.timeout(5):
            results = await asyncio.gather(*calls, return_exceptions=True)
        assert all(isinstance(r, ConnectionLost) for r in results), results
        assert "1001 (going away)" in str(results[0])
        with pytest.raises(ConnectionLost, match="does not reconnect"):
            await client.call("add", 1, 1)


async def test_connecting_where_nothing_listens_raises_connect_error(unused_url):
    """Opening a client on a port with no server raises ConnectError naming the URL and the reason."""
    with pytest.raises(ConnectError, match=re.escape(f"cannot connect to {unused_url}: connection refused")):
        async with Client(unused_url):
            pass


async def test_reconnect_after_the_server_restarts_on_the_same_port():
    """With reconnect=True, the call in flight at the restart fails, and one made while down waits and succeeds."""
    first = RpcServer(builtin_tools(), host="127.0.0.1", port=0)
    await first.start()
    port = first.port
    second: RpcServer | None = None
    try:
        async with Client(first.url, reconnect=True, backoff=FAST, timeout=10) as client:
            assert await client.call("multiply", 3, 4) == 12
            in_flight = asyncio.ensure_future(client.call("sleep", 10, "never"))
            assert await client.call("add", 1, 1) == 2  # so the sleep has reached the server
            first.close()
            await first.wait_closed()
            with pytest.raises(ConnectionLost, match="not re-sent"):
                await in_flight
            assert not client.connected
            waiting = asyncio.ensure_future(client.call("multiply", 5, 6))
            second = RpcServer(builtin_tools(), host="127.0.0.1", port=port)
            await second.start()
            assert await waiting == 30
            assert client.connected
    finally:
        for server in (first, second):
            if server is not None:
                server.close()
                await server.wait_closed()


async def test_the_sync_facade_calls_from_a_plain_thread(server):
    """connect_sync() gives blocking call, batch_call and notify on a background loop, and closes it."""

    def work():
        with connect_sync(server.url, timeout=5) as client:
            assert loop_threads() == 1
            product = client.call("multiply", 3, 4)
            difference = client.call("subtract", minuend=42, subtrahend=23)
            batch = client.batch_call([("add", [1, 2]), ("divide", [1, 0])])
            client.notify("add", 1, 1)
            with pytest.raises(RpcError, match="Method not found"):
                client.call("nope")
            with pytest.raises(TimeoutError):
                client.call("sleep", 5, timeout=0.05)
        with pytest.raises(ClientClosedError, match="closed"):
            client.call("add", 1, 1)
        return product, difference, batch

    product, difference, batch = await asyncio.to_thread(work)
    assert (product, difference, batch[0]) == (12, 19, 3)
    assert isinstance(batch[1], RpcError) and batch[1].code == 1001
    assert loop_threads() == 0


async def test_the_sync_facade_shares_one_connection_between_threads(server):
    """Calls from several threads at once through one SyncClient all get their own answers."""

    def work():
        with connect_sync(server.url, timeout=10) as client:
            results: dict[int, int] = {}

            def one(n):
                results[n] = client.call("multiply", n, n)

            threads = [threading.Thread(target=one, args=(n,)) for n in range(8)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(timeout=10)
            return results

    assert await asyncio.to_thread(work) == {n: n * n for n in range(8)}


def test_connect_sync_where_nothing_listens_raises_and_leaves_no_thread(unused_url):
    """A failed connect_sync() raises ConnectError and stops its background thread."""
    with pytest.raises(ConnectError, match="connection refused"):
        connect_sync(unused_url)
    assert loop_threads() == 0


async def test_a_closed_client_refuses_calls(server):
    """After close(), a call fails at once with ClientClosedError."""
    client = Client(server.url)
    await client.connect()
    await client.close()
    with pytest.raises(ClientClosedError):
        await client.call("add", 1, 1)


async def in_daemon_thread(work, timeout: float = 10):
    """Run blocking ``work`` in a daemon thread and await its outcome, bounded: a deadlock fails, not hangs."""
    loop = asyncio.get_running_loop()
    done = loop.create_future()

    def settle(outcome, failed: bool) -> None:
        if done.done():
            return
        if failed:
            done.set_exception(outcome)
        else:
            done.set_result(outcome)

    def run() -> None:
        try:
            result = work()
        except BaseException as exc:
            loop.call_soon_threadsafe(settle, exc, True)
        else:
            loop.call_soon_threadsafe(settle, result, False)

    threading.Thread(target=run, daemon=True).start()
    async with asyncio.timeout(timeout):
        return await done


async def test_a_callback_calling_the_sync_client_raises_runtime_error_instead_of_deadlocking(server):
    """A progress callback that calls client.call or client.close gets RuntimeError; the client still works after."""

    def work():
        with connect_sync(server.url, timeout=5) as client:
            refusals = []

            def call_back(*report):
                for blocking in (lambda: client.call("add", 1, 2), client.close):
                    try:
                        blocking()
                    except RuntimeError as exc:
                        refusals.append(str(exc))

            result = client.call("long_task", 0.05, progress=call_back)
            return result, refusals, client.call("add", 1, 2)

    result, refusals, after = await in_daemon_thread(work)
    assert result["steps"] > 0 and after == 3
    assert refusals and len(refusals) % 2 == 0
    assert set(refusals) == {"cannot block on the client from its own loop thread (a callback)"}


async def test_an_answer_too_deep_to_read_over_a_real_socket_fails_only_its_call(caplog):
    """A server answering one call with 5,000 levels of nesting: that call fails; the connection and the rest go on."""
    import json

    from websockets.asyncio.server import serve

    deep = "[" * 5000 + "]" * 5000

    async def handler(websocket) -> None:
        async for message in websocket:
            request = json.loads(message)
            if request["method"] == "deep":
                await websocket.send('{"jsonrpc": "2.0", "result": ' + deep + f', "id": {request["id"]}}}')
            else:
                await asyncio.sleep(0.05)  # answered after the deep one
                await websocket.send(json.dumps({"jsonrpc": "2.0", "result": request["params"], "id": request["id"]}))

    async with serve(handler, "127.0.0.1", 0) as ws_server:
        port = ws_server.sockets[0].getsockname()[1]
        async with Client(f"ws://127.0.0.1:{port}/ws", timeout=10) as client:
            other = asyncio.ensure_future(client.call("echo", "other"))
            with caplog.at_level(logging.WARNING, logger="rpc_client"):
                with pytest.raises(ProtocolError, match="cannot be read: the message is nested more than"):
                    await client.call("deep")
            assert await other == ["other"]
            assert await client.call("echo", 1) == [1]
            assert client.connected
    assert "Traceback" not in caplog.text and "Fatal error" not in caplog.text
