"""The seed's message shape, {"func": name, "args": [...]}, answered through the same tools, socket or not."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from websockets.asyncio.client import connect

from rpc_server import Dispatcher, Registry, RpcServer, ToolError, builtin_tools

from .corpus import parse, request


def seed(func: Any, args: Any = ..., **extra: Any) -> str:
    obj: dict[str, Any] = {"func": func, **extra}
    if args is not ...:
        obj["args"] = args
    return json.dumps(obj)


@pytest.fixture(scope="module")
def dispatcher() -> Dispatcher:
    return Dispatcher(builtin_tools())


async def answer(dispatcher: Dispatcher, message: str) -> Any:
    reply = await dispatcher.dispatch_async(message)
    assert reply is not None, "the seed protocol always answers"
    return parse(reply)


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (seed("multiply", [3, 4]), {"result": 12}),
        (seed("multiply", {"a": 3, "b": 4}), {"result": 12}),
        (seed("divide", [7, 2]), {"result": 3.5}),
        (seed("sum", []), {"result": 0}),
        (seed("sum"), {"result": 0}),
        (seed("sleep", [0, "v"]), {"result": "v"}),
        (seed("pow", [2, 100]), {"result": 2**100}),
        (seed("multiply", [3, 4], id=7), {"result": 12, "id": 7}),
    ],
)
async def test_seed_calls_answer_with_a_result(dispatcher: Dispatcher, message: str, expected: dict[str, Any]) -> None:
    """A good call is {"result": value}, with the id echoed when one was given; async tools included."""
    assert await answer(dispatcher, message) == expected


async def test_an_unknown_function_is_named_in_the_error(dispatcher: Dispatcher) -> None:
    """The seed's own sentence, exactly."""
    assert await answer(dispatcher, seed("nope", [3, 4])) == {"error": "Unknown function 'nope'"}


@pytest.mark.parametrize(
    ("message", "words"),
    [
        (seed("multiply", ["ab", 3]), ["'a'", "number", "string"]),
        (seed("multiply", [3, None]), ["'b'", "number", "null"]),
        (seed("multiply", [3]), ["missing", "'b'"]),
        (seed("multiply", [3, 4, 5]), ["at most 2"]),
        (seed("multiply", {"a": 3, "b": 4, "c": 5}), ["unexpected", "'c'"]),
        (seed("multiply", "3, 4"), ["args", "array"]),
        (seed(3, [3, 4]), ["func", "string"]),
        (seed(None), ["func", "string"]),
        (seed("divide", [1, 0]), ["Division by zero"]),
        (seed("pow", [10, 10**9]), ["too large"]),
    ],
)
async def test_bad_calls_get_a_clear_error_sentence(dispatcher: Dispatcher, message: str, words: list[str]) -> None:
    """Bad arguments and failing arithmetic are {"error": sentence}; the sentence names what is wrong."""
    response = await answer(dispatcher, message)
    assert list(response) == ["error"] and isinstance(response["error"], str)
    for word in words:
        assert word in response["error"], response


async def test_a_failing_tool_leaks_nothing_through_the_seed_protocol(caplog: pytest.LogCaptureFixture) -> None:
    """An exception inside a tool is a generic error sentence here too."""
    registry = Registry()

    @registry.tool
    def fail() -> None:
        raise ValueError("secret")

    with caplog.at_level(logging.CRITICAL, logger="rpc_server"):
        response = await answer(Dispatcher(registry), seed("fail", []))
    assert response == {"error": "Internal error"}


async def test_both_shapes_reach_the_same_tool() -> None:
    """The seed shape is mapped onto the registry's tools: one implementation, called by either protocol."""
    registry = Registry()
    calls: list[tuple[int, int]] = []

    @registry.tool
    async def record(a: int, b: int) -> int:
        calls.append((a, b))
        await asyncio.sleep(0)
        return a + b

    dispatcher = Dispatcher(registry)
    assert await answer(dispatcher, seed("record", [1, 2])) == {"result": 3}
    assert parse(await dispatcher.dispatch_async(request("record", [3, 4], 1)))["result"] == 7
    assert calls == [(1, 2), (3, 4)]


async def test_a_message_with_jsonrpc_is_never_read_as_the_seed_shape(dispatcher: Dispatcher) -> None:
    """An object with both "jsonrpc" and "func" is a JSON-RPC request, and an invalid one."""
    response = await answer(dispatcher, json.dumps({"jsonrpc": "2.0", "func": "multiply", "args": [3, 4], "id": 1}))
    assert response["error"]["code"] == -32600


async def test_the_seed_protocol_works_over_a_real_socket(server: RpcServer) -> None:
    """On the same /ws endpoint: multiply answers 12, an unknown name the seed's error, bad args a sentence."""
    async with connect(server.url) as ws, asyncio.timeout(5):
        await ws.send(seed("multiply", [3, 4]))
        assert parse(await ws.recv()) == {"result": 12}
        await ws.send(seed("nope", [3, 4]))
        assert parse(await ws.recv()) == {"error": "Unknown function 'nope'"}
        await ws.send(seed("multiply", ["ab", 3]))
        assert "'a'" in parse(await ws.recv())["error"]
        await ws.send(request("multiply", [3, 4], 1))
        assert parse(await ws.recv()) == {"jsonrpc": "2.0", "result": 12, "id": 1}


async def test_a_result_json_cannot_carry_is_answered_in_the_seed_s_shape() -> None:
    """A tool's unwritable result is {"error": "Internal error"} for a {func, args} caller, not a JSON-RPC object."""
    from rpc_server import Dispatcher, Registry

    registry = Registry()

    @registry.tool
    def opaque() -> object:
        return object()

    assert await Dispatcher(registry).dispatch_async('{"func": "opaque", "args": [], "id": 3}') == (
        b'{"error":"Internal error","id":3}'
    )


async def test_structured_error_data_reads_as_json_in_the_seed_s_sentence() -> None:
    """A ToolError's dict or list data follows its message as JSON, never as Python's repr; text stays text."""
    registry = Registry()

    @registry.tool
    def refuse(what: str) -> None:
        data = {"field": "name", "allowed": ["a", None, True]} if what == "dict" else "plain words"
        raise ToolError(-32099, "Refused", data)

    dispatcher = Dispatcher(registry)
    error = (await answer(dispatcher, seed("refuse", ["dict"])))["error"]
    assert error.startswith("Refused: ")
    assert json.loads(error.removeprefix("Refused: ")) == {"field": "name", "allowed": ["a", None, True]}
    assert await answer(dispatcher, seed("refuse", ["text"])) == {"error": "Refused: plain words"}


async def test_rate_limited_in_the_seed_s_shape_says_retry_after_as_json(start_server: Any) -> None:
    """Past the burst, {func, args} hears 'Rate limited: {"retry_after":...}', which a JSON reader can take apart."""
    server = await start_server(rate_limit_calls_per_s=0.1, rate_limit_burst_calls=1)
    async with connect(server.url) as ws, asyncio.timeout(5):
        await ws.send(seed("multiply", [3, 4]))
        assert parse(await ws.recv()) == {"result": 12}
        await ws.send(seed("multiply", [3, 4]))
        error = parse(await ws.recv())["error"]
    assert error.startswith("Rate limited: ")
    assert 0 < json.loads(error.removeprefix("Rate limited: "))["retry_after"] <= 10
