"""The client against a JSON-RPC 2.0 WebSocket server this project did not write: npm's rpc-websockets.

That server has habits of its own, which the client must cope with: it takes
an id of 0 for a notification, answers a notification for an unknown method
with an error whose id is null, reports a thrown Error as code -32000 with
the error's name as message, and drops the "result" member when a method
returns undefined.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from rpc_client import Client, ProtocolError, RpcError, connect_sync


async def test_calls_by_position_and_by_name(rpc_websockets_url):
    """Params by position and by name reach the methods, and their results come back."""
    async with Client(rpc_websockets_url) as client:
        assert await client.call("multiply", 3, 4) == 12
        assert await client.call("subtract", minuend=42, subtrahend=23) == 19
        assert await client.call("echo", {"nested": [1, "two", None]}) == [{"nested": [1, "two", None]}]


async def test_concurrent_calls_answered_out_of_order_reach_their_callers(rpc_websockets_url):
    """A slow call sent first is answered after 200 fast ones sent behind it, and everyone gets their own."""
    async with Client(rpc_websockets_url, timeout=20) as client:
        slow = asyncio.ensure_future(client.call("sleep", 0.2, "slow"))
        fast = await asyncio.gather(*(client.call("multiply", n, 2) for n in range(200)))
        assert fast == [n * 2 for n in range(200)]
        assert not slow.done()
        assert await slow == "slow"
        assert client.in_flight == 0


async def test_its_errors_raise_rpc_error_with_its_codes(rpc_websockets_url):
    """Method not found, a thrown Error and a thrown error object each raise RpcError with that server's fields."""
    async with Client(rpc_websockets_url) as client:
        with pytest.raises(RpcError) as caught:
            await client.call("nope")
        assert (caught.value.code, caught.value.message, caught.value.data) == (-32601, "Method not found", None)
        with pytest.raises(RpcError) as caught:
            await client.call("fail")
        assert (caught.value.code, caught.value.message, caught.value.data) == (-32000, "Error", "it failed on purpose")
        with pytest.raises(RpcError) as caught:
            await client.call("fail_with_code")
        assert (caught.value.code, caught.value.data) == (4001, "give at least one number")


async def test_a_batch_returns_outcomes_in_order(rpc_websockets_url):
    """A batch sent to it comes back as values and RpcErrors in the order asked."""
    async with Client(rpc_websockets_url) as client:
        product, missing, difference = await client.batch_call(
            [("multiply", [3, 4]), ("nope", None), ("subtract", {"minuend": 42, "subtrahend": 23})]
        )
        assert (product, difference) == (12, 19)
        assert isinstance(missing, RpcError) and missing.code == -32601


async def test_an_unasked_null_id_error_is_not_taken_for_a_pending_calls_answer(rpc_websockets_url, caplog):
    """Its null-id error for a notification of an unknown method is logged; the pending call still gets its answer."""
    async with Client(rpc_websockets_url) as client:
        slow = asyncio.ensure_future(client.call("sleep", 0.2, "mine"))
        with caplog.at_level(logging.WARNING, logger="rpc_client"):
            await client.notify("nope")
            await client.notify("echo", 1)  # a known method: no answer at all
            assert await client.call("multiply", 2, 2) == 4  # the error for "nope" arrived before this answer
            assert await slow == "mine"
        assert "error -32601: Method not found" in caplog.text


async def test_an_answer_without_result_or_error_fails_that_call_with_protocol_error(rpc_websockets_url):
    """When a method returns undefined it answers with neither result nor error: that call gets ProtocolError."""
    async with Client(rpc_websockets_url) as client:
        with pytest.raises(ProtocolError, match=r"not a JSON-RPC 2\.0 response"):
            await client.call("nothing")
        assert await client.call("multiply", 3, 4) == 12


async def test_the_sync_facade_works_against_it(rpc_websockets_url):
    """connect_sync() calls it from a plain thread."""

    def work():
        with connect_sync(rpc_websockets_url) as client:
            return client.call("multiply", 6, 7)

    assert await asyncio.to_thread(work) == 42
