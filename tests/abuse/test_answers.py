"""Small requests cannot buy large answers (issue 9, defect 1), and answers stay within max_response_bytes.

The attack: a batch of ``count(10000, 0)`` calls, a few bytes each, made a
49 MB answer and +440 MB at peak for 72 KB. The test against a server
process measures its peak memory; the others show each shape of answer that
can outgrow the limit (one result, a batch's array, a generator's parts, the
seed's shape) answered -32003 with the caller's id.
"""

from __future__ import annotations

import asyncio

import orjson
import pytest
from websockets.asyncio.client import connect

from rpc_server import Limits, Registry, builtin_tools, codes
from rpc_server.dispatch import Dispatcher
from rpc_server.session import Session

from .harness import MIB, WAIT, Bystander, ServerProcess, request

LIMIT = 256 * 1024


async def test_a_batch_of_count_calls_is_answered_too_large_with_bounded_memory_and_cpu() -> None:
    """200 count(10000, 0) in 14 KB: each answered -32003, peak memory under +32 MB, CPU under 4 s, others served.

    Before: a 9.8 MB answer, +87 MB at peak and 8 s of CPU. The bounds are
    generous (the fix measured +2 MB and 0.3 s); 1 s for the bystander's
    answer is the fairness check.
    """
    async with ServerProcess.run(env={"RPC_MAX_RESPONSE_SIZE": str(LIMIT)}) as server:
        base = server.rss_bytes()
        server.reset_peak()
        cpu = server.cpu_s()
        async with Bystander(server.url) as bystander, connect(server.url, max_size=None) as ws:
            await ws.send("[" + ",".join(request("count", [10000, 0], i) for i in range(200)) + "]")
            async with asyncio.timeout(WAIT * 3):
                answer = orjson.loads(await ws.recv())
        grown, used = server.peak_bytes() - base, server.cpu_s() - cpu
        assert [r["id"] for r in answer] == list(range(200))
        assert {r["error"]["code"] for r in answer} == {codes.RESPONSE_TOO_LARGE}
        assert grown < 32 * MIB, f"peak memory grew by {grown / MIB:.1f} MiB"
        assert used < 4.0, f"the server used {used:.1f} s of CPU"
        assert bystander.slow == []
        assert server.tracebacks() == []


def dispatcher(limit: int = 2048) -> Dispatcher:
    registry = builtin_tools()

    @registry.tool
    def text(n: int) -> str:
        return "x" * n

    return Dispatcher(registry, limits=Limits(max_response_bytes=limit))


async def answer(d: Dispatcher, message: str) -> object:
    reply = await d.dispatch_async(message, Session())
    assert reply is not None
    return orjson.loads(reply)


async def test_one_result_over_the_limit_is_too_large_with_its_id_and_the_sizes() -> None:
    """A plain tool's 5,000-byte string under a 2,048-byte limit: -32003 naming both sizes."""
    reply = await answer(dispatcher(), request("text", [5000], "big"))
    assert reply == {
        "jsonrpc": "2.0",
        "error": {
            "code": codes.RESPONSE_TOO_LARGE,
            "message": "Response too large",
            "data": "the answer would be 5,040 bytes; the limit is 2,048",
        },
        "id": "big",
    }


async def test_a_result_just_under_the_limit_is_answered() -> None:
    """The limit counts the whole answer: what fits in it is sent as it is."""
    d = dispatcher()
    fits = 2048 - len('{"jsonrpc":"2.0","result":"","id":1}')
    assert (await answer(d, request("text", [fits], 1)))["result"] == "x" * fits  # type: ignore[index]
    assert (await answer(d, request("text", [fits + 1], 1)))["error"]["code"] == -32003  # type: ignore[index]


async def test_a_batch_whose_whole_answer_is_too_large_answers_each_call_too_large_and_keeps_errors() -> None:
    """Three results of 1,000 bytes under a 2,048-byte limit: each -32003, and the member's own error stays."""
    batch = [request("text", [1000], i) for i in range(3)] + [request("divide", [1, 0], "e")]
    reply = await answer(dispatcher(), "[" + ",".join(batch) + "]")
    assert [r["id"] for r in reply] == [0, 1, 2, "e"]  # type: ignore[union-attr]
    assert [r["error"]["code"] for r in reply] == [-32003, -32003, -32003, codes.DIVISION_BY_ZERO]  # type: ignore[union-attr]


async def test_a_generator_stops_being_gathered_once_its_parts_outgrow_the_answer() -> None:
    """count(10000) under 2,048 bytes answers -32003 after a few hundred parts, not ten thousand."""
    parts: list[int] = []
    registry = Registry()

    @registry.tool
    async def numbers(n: int):  # type: ignore[no-untyped-def]
        for i in range(n):
            parts.append(i)
            yield i

    d = Dispatcher(registry, limits=Limits(max_response_bytes=2048))
    reply = await answer(d, request("numbers", [10000], 1))
    assert reply["error"]["code"] == codes.RESPONSE_TOO_LARGE  # type: ignore[index]
    assert len(parts) < 1000
    # A streamed call is not gathered: its parts go out one by one, each within the limit.
    assert orjson.loads(await d.dispatch_async(request("numbers", [3], 2), Session())) == {  # type: ignore[arg-type]
        "jsonrpc": "2.0",
        "result": [0, 1, 2],
        "id": 2,
    }


async def test_generators_gathering_more_parts_than_the_limit_answer_too_large() -> None:
    """max_gathered_parts=500: count(400) is answered, two of them in one batch (800 parts) are -32003."""
    d = Dispatcher(builtin_tools(), limits=Limits(max_gathered_parts=500))
    assert (await answer(d, request("count", [400, 0], 1)))["result"] == list(range(1, 401))  # type: ignore[index]
    reply = await answer(d, "[" + request("count", [400, 0], 1) + "," + request("count", [400, 0], 2) + "]")
    assert [r["error"]["code"] for r in reply] == [-32003, -32003]  # type: ignore[union-attr]
    assert reply[0]["error"]["data"] == (  # type: ignore[index]
        "the answer would gather more than 500 parts of generators; the limit is 500"
    )
    # Streamed, the parts are not gathered: no limit on their number.
    session = Session()
    assert await d.dispatch_async(request("count", [600, 0], 3, stream=True), session) == (
        b'{"jsonrpc":"2.0","result":600,"id":3}'
    )


async def test_a_batch_member_that_outgrows_the_answer_ends_the_whole_batch_at_once() -> None:
    """A slow member does not hold the batch once another's parts have outgrown it: all answer -32003."""
    batch = "[" + request("count", [10000, 0], 1) + "," + request("sleep", [10], 2) + "]"
    async with asyncio.timeout(WAIT):
        reply = await answer(dispatcher(), batch)
    assert reply == [
        {
            "jsonrpc": "2.0",
            "error": {"code": -32003, "message": "Response too large", "data": reply[0]["error"]["data"]},
            "id": i,
        }  # type: ignore[index]
        for i in (1, 2)
    ]
    assert "more than" in reply[0]["error"]["data"]  # type: ignore[index]


async def test_the_seed_shape_says_too_large_in_its_own_shape() -> None:
    """{"func", "args"} over the limit: {"error": "Response too large: ..."} with the id echoed."""
    reply = await answer(dispatcher(), '{"func": "text", "args": [5000], "id": 7}')
    assert reply["id"] == 7  # type: ignore[index]
    assert reply["error"].startswith("Response too large: the answer would be")  # type: ignore[index]


@pytest.mark.parametrize("limit", [512, 1023])
def test_a_limit_too_small_for_an_error_answer_is_refused(limit: int) -> None:
    """max_response_bytes under 1 KiB could not carry even the error that says so."""
    with pytest.raises(ValueError, match="max_response_bytes"):
        Limits(max_response_bytes=limit)
