"""The client across a server's graceful stop: every call the server answered is kept, then it reconnects.

A drain answers the calls it has read before it closes with 1001, so a
client with ``reconnect=True`` must hand each of those answers to its caller
(results, and -32800 for calls cut at the drain's deadline), treat the 1001
as "reconnect", and serve later calls on the new connection.
"""

from __future__ import annotations

import asyncio

import pytest

from rpc_client import Backoff, Client, RpcError
from rpc_server import RpcServer, builtin_tools, codes
from rpc_server.connection import SHUTTING_DOWN

from .harness import WAIT

FAST = Backoff(initial=0.01, maximum=0.1)


async def test_a_draining_server_loses_no_answered_call_and_the_client_reconnects() -> None:
    """20 calls that finish within the drain get their results, 3 that do not get -32800; then a new server serves."""
    first = RpcServer(builtin_tools(), host="127.0.0.1", port=0)
    await first.start()
    second: RpcServer | None = None
    try:
        async with Client(first.url, reconnect=True, backoff=FAST, timeout=WAIT * 2) as client:
            quick = [asyncio.ensure_future(client.call("sleep", 0.3, i)) for i in range(20)]
            slow = [asyncio.ensure_future(client.call("sleep", WAIT, "never")) for _ in range(3)]
            assert await client.call("add", 1, 1) == 2  # every call before it has reached the server
            async with asyncio.timeout(WAIT):
                await first.drain(timeout_s=1.0)
            assert await asyncio.gather(*quick) == list(range(20))
            for call in slow:
                with pytest.raises(RpcError) as cut:
                    await call
                assert (cut.value.code, cut.value.data) == (codes.REQUEST_CANCELLED, SHUTTING_DOWN)
            # The 1001 was taken as "reconnect": the next call waits for the server's successor.
            waiting = asyncio.ensure_future(client.call("multiply", 5, 6))
            second = RpcServer(builtin_tools(), host="127.0.0.1", port=first.port)
            await second.start()
            assert await waiting == 30
            assert client.connected
    finally:
        for server in (first, second):
            if server is not None:
                server.close()
                await server.wait_closed()
