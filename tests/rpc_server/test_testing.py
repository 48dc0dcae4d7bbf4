"""rpc_server.testing: a server and a client in one block, over a socket, in memory, or for blocking code."""

from __future__ import annotations

import asyncio
import socket
import threading

import pytest

from rpc_client import Client, ConnectionLost, RpcError
from rpc_server import RpcServer, codes
from rpc_server.testing import MemoryServer, ServerThread, running, serve, serve_memory, serve_sync

from .sample_tools import news, registry

WAIT = 5


def refuses(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


async def test_serve_gives_a_client_of_a_server_of_the_registry_on_a_free_local_port() -> None:
    """serve(registry) serves exactly that registry, on 127.0.0.1; the port is closed afterwards."""
    async with running(registry) as server, Client(server.url) as client:
        assert server.url.startswith("ws://127.0.0.1:") and server.port != 0
        assert await client.call("greet", "Ada") == "Hello, Ada!"
        with pytest.raises(RpcError) as caught:
            await client.call("multiply", 3, 4)  # not in this registry
        assert caught.value.code == codes.METHOD_NOT_FOUND
    assert refuses(server.port)
    async with serve(registry) as client:
        assert await client.call("shout", "bob") == "BOB"


async def test_serve_without_a_registry_serves_the_built_in_tools() -> None:
    """No registry: the built-ins, as RpcServer() itself does."""
    async with serve() as client:
        assert await client.call("multiply", 3, 4) == 12


async def test_server_and_client_options_are_passed_through() -> None:
    """max_batch reaches RpcServer (a batch over it is refused), timeout reaches the Client."""
    async with serve(max_batch=1, client_options={"timeout": 0.25}) as client:
        assert client.timeout == 0.25
        assert await client.batch_call([("add", [1, 2])]) == [3]
        with pytest.raises(TimeoutError):  # the refusal has a null id: no call can be matched to it
            await client.batch_call([("add", [1, 2]), ("add", [3, 4])])


async def test_unknown_server_options_are_refused_as_rpc_server_refuses_them() -> None:
    """A misspelt option is RpcServer's TypeError, not silently dropped."""
    with pytest.raises(TypeError):
        async with serve(max_batchh=1):
            pass


async def test_serve_memory_answers_calls_batches_and_errors_with_no_socket() -> None:
    """Over the in-memory pair: results, JSON-RPC errors and batches, as over a WebSocket."""
    async with serve_memory(registry) as client:
        assert client.url == "memory://"
        assert await client.call("greet", "Ada") == "Hello, Ada!"
        assert await client.call("shout", "bob") == "BOB"
        outcomes = await client.batch_call([("greet", ["Cy"]), ("nope", None), ("greet", {"name": 3})])
        assert outcomes[0] == "Hello, Cy!"
        assert [o.code for o in outcomes[1:]] == [codes.METHOD_NOT_FOUND, codes.INVALID_PARAMS]


async def test_serve_memory_answers_each_call_when_it_finishes() -> None:
    """A slow call sent first does not hold up a fast one: each message is dispatched as it arrives."""
    async with serve_memory(registry) as client:
        slow = asyncio.create_task(client.call("hold", 0.2))
        assert await client.call("greet", "Ada") == "Hello, Ada!"
        assert not slow.done()
        assert await slow == "held"


async def test_serve_memory_streams_reports_progress_and_cancels() -> None:
    """Push works in memory: parts, progress reports, and rpc.cancel when the caller gives up."""
    async with serve_memory(client_options={"timeout": WAIT}) as client:
        assert [part async for part in client.stream("count", 3, 0)] == [1, 2, 3]
    async with serve_memory(registry) as client:
        reports: list[tuple[float, float | None]] = []
        assert (
            await client.call("build", 3, progress=lambda done, total, message: reports.append((done, total)))
            == "built"
        )
        assert reports == [(1, 3), (2, 3), (3, 3)]
        with pytest.raises(TimeoutError):
            await client.call("hold", 10, timeout=0.05)  # sends rpc.cancel: the server's task ends at once
        assert await client.call("greet", "Ada") == "Hello, Ada!"


async def test_memory_server_publishes_to_subscribers_and_applies_the_server_options() -> None:
    """MemoryServer.publish reaches a subscription; max_subscriptions is the server's own check."""
    async with MemoryServer(topics=news(), max_subscriptions=1) as server, server.client() as client:
        async with client.subscribe("news") as events:
            assert server.publish("news", {"n": 1}) == 1
            async with asyncio.timeout(WAIT):
                event = await anext(aiter(events))
            assert event.data == {"n": 1}
            with pytest.raises(RpcError) as caught:
                async with client.subscribe("news"):
                    pass
            assert caught.value.code == codes.TOO_MANY_SUBSCRIPTIONS


async def test_closing_a_memory_server_ends_its_connections_and_their_calls() -> None:
    """Closing the server loses its clients' connections; calls waiting fail, and its tasks are gone."""
    server = MemoryServer(registry)
    async with server.client() as client:
        call = asyncio.create_task(client.call("hold", 10))
        await asyncio.sleep(0)
        await server.close()
        with pytest.raises(ConnectionLost):
            await call
    assert not [task for task in asyncio.all_tasks() if task is not asyncio.current_task()]


def test_serve_sync_gives_a_blocking_client_and_leaves_no_thread() -> None:
    """serve_sync() works from plain code; afterwards its threads and its port are gone."""
    before = set(threading.enumerate())
    with serve_sync(registry, client_options={"timeout": WAIT}) as client:
        assert client.call("greet", "Ada") == "Hello, Ada!"
        assert client.call("shout", "bob") == "BOB"
    assert set(threading.enumerate()) == before


def test_a_server_thread_publishes_from_the_calling_thread() -> None:
    """ServerThread.publish runs on the server's loop; a blocking subscriber gets the event."""
    from rpc_client import connect_sync

    with ServerThread(topics=news()) as server, connect_sync(server.url, timeout=WAIT) as client:
        with client.subscribe("news") as events:
            assert server.publish("news", {"n": 1}) == 1
            assert next(iter(events)).data == {"n": 1}
        assert server.call(server.server.publish, "news", {"n": 2}) == 0  # leaving the block unsubscribed
    assert refuses(server.port)


def test_a_server_thread_that_cannot_start_raises_and_leaves_no_thread() -> None:
    """RpcServer's own error (a bad option, a port in use) comes out of start(), and the thread ends."""
    before = set(threading.enumerate())
    with pytest.raises(ValueError, match="max_in_flight"):
        ServerThread(max_in_flight=0).start()
    with ServerThread() as first:
        with pytest.raises(OSError):
            ServerThread(port=first.port).start()
    assert set(threading.enumerate()) == before


def test_a_server_thread_stops_once_and_refuses_to_start_twice() -> None:
    """Stopping twice is harmless; starting a started one is an error."""
    server = ServerThread().start()
    with pytest.raises(RuntimeError, match="already started"):
        server.start()
    server.stop()
    server.stop()
    with pytest.raises(RuntimeError, match="not started"):
        server.publish("clock", 1)


async def test_a_running_server_is_an_rpc_server_with_the_options_given() -> None:
    """running() hands over the RpcServer itself; its limits are those asked for."""
    async with running(max_message_bytes=1024) as server, Client(server.url) as client:
        assert isinstance(server, RpcServer)
        with pytest.raises(ConnectionLost, match="1009"):
            await client.call("sleep", 0, "x" * 2048)
