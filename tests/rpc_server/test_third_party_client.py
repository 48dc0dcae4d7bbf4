"""A JSON-RPC client from PyPI that this project did not write, jsonrpc-websocket (on aiohttp), drives the server.

It shows that a third party's reading of the protocol works with ours: its own
ids (UUID strings), its own framing, its own error handling.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from jsonrpc_base import ProtocolError
from jsonrpc_websocket import Server

from rpc_server import RpcServer

WAIT = 5


@pytest.fixture
async def client(server: RpcServer) -> AsyncIterator[Server]:
    remote = Server(server.url, timeout=WAIT)
    await remote.ws_connect()
    try:
        yield remote
    finally:
        await remote.close()


async def test_calls_by_position_and_by_name(client: Server) -> None:
    """multiply(3, 4) and subtract(minuend=42, subtrahend=23) come back as 12 and 19."""
    assert await client.multiply(3, 4) == 12
    assert await client.subtract(minuend=42, subtrahend=23) == 19
    assert await client.sum(1, 2, 4) == 7
    assert await client.pow(2, 100) == 2**100


async def test_errors_reach_the_client_as_its_protocol_errors(client: Server) -> None:
    """Invalid params, an unknown method and an application error raise the client's ProtocolError with the code."""
    for call, code in [
        (client.multiply("ab", 3), -32602),
        (client.no_such_method(), -32601),
        (client.divide(1, 0), 1001),
    ]:
        with pytest.raises(ProtocolError) as caught:
            await call
        assert caught.value.args[0] == code


async def test_concurrent_calls_on_one_connection_are_matched_by_id(client: Server) -> None:
    """Calls in flight together, finishing out of order, each get their own answer."""
    async with asyncio.timeout(WAIT):
        slow, fast, sums = await asyncio.gather(
            client.sleep(0.2, "slow"),
            client.multiply(6, 7),
            asyncio.gather(*(client.add(i, i) for i in range(20))),
        )
    assert (slow, fast, sums) == ("slow", 42, [2 * i for i in range(20)])


async def test_a_notification_returns_nothing_and_the_connection_carries_on(client: Server) -> None:
    """A notification returns nothing to the client, and the next call is answered normally."""
    assert await client.multiply(3, 4, _notification=True) is None
    assert await client.multiply(5, 6) == 30
