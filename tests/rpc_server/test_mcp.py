"""MCP over the registry, with no socket: text in, text out, progress out through the session."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import jsonschema
import orjson
import pytest

from rpc_server import Dispatcher, Registry, Session, builtin_tools
from rpc_server.mcp import LATEST, VERSIONS, McpSession

from .corpus import deep_tools


class Peer:
    """An MCP session over the built-in tools, and what it pushed."""

    def __init__(self, registry: Registry | None = None, allowed: Callable[[str], bool] | None = None) -> None:
        self.pushed: list[dict[str, Any]] = []
        self.session = Session(self._send)
        self.session.allowed = allowed
        self.mcp = McpSession(Dispatcher(registry or builtin_tools()))
        self.ids = 0

    async def _send(self, message: bytes) -> None:
        self.pushed.append(json.loads(message))

    def start(self, message: Any) -> Awaitable[Any] | Any:
        """Hand one message over; the decoded answer, or an awaitable of it for a call that runs on."""
        reply = self.mcp(json.dumps(message), self.session)
        if reply is None or isinstance(reply, bytes):
            return None if reply is None else json.loads(reply)

        async def later() -> Any:
            answer = await reply
            return None if answer is None else json.loads(answer)

        return later()

    async def send(self, message: Any) -> Any:
        outcome = self.start(message)
        return await outcome if isinstance(outcome, Awaitable) else outcome

    async def request(self, method: str, params: dict[str, Any] | None = None) -> Any:
        self.ids += 1
        message: dict[str, Any] = {"jsonrpc": "2.0", "id": self.ids, "method": method}
        if params is not None:
            message["params"] = params
        return await self.send(message)

    async def initialize(self, version: str = LATEST) -> dict[str, Any]:
        response = await self.request(
            "initialize",
            {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "test", "version": "1"}},
        )
        await self.send({"jsonrpc": "2.0", "method": "notifications/initialized"})
        return response  # type: ignore[no-any-return]

    async def call(self, name: str, arguments: Any = None, **params: Any) -> dict[str, Any]:
        response = await self.request("tools/call", {"name": name, "arguments": arguments or {}, **params})
        assert "result" in response, response
        return response["result"]  # type: ignore[no-any-return]

    async def tools(self) -> dict[str, dict[str, Any]]:
        return {t["name"]: t for t in (await self.request("tools/list"))["result"]["tools"]}

    def progress(self) -> list[dict[str, Any]]:
        return [m["params"] for m in self.pushed if m.get("method") == "notifications/progress"]


# -- initialize ---------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
async def test_initialize_agrees_on_each_supported_version(version: str) -> None:
    """A client asking for a version we support gets it, with the tools capability and our name."""
    result = (await Peer().initialize(version))["result"]
    assert result["protocolVersion"] == version
    assert result["capabilities"] == {"tools": {"listChanged": False}}
    assert result["serverInfo"]["name"] == "rpc-tools"


async def test_initialize_answers_the_newest_version_to_a_client_asking_for_another() -> None:
    """An unknown version is answered with the newest we speak; the client decides whether to go on."""
    assert VERSIONS == ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
    assert (await Peer().initialize("2099-01-01"))["result"]["protocolVersion"] == LATEST == "2025-11-25"


async def test_only_ping_and_initialize_come_before_initialize() -> None:
    """tools/list before initialize is refused; ping is answered {} at any time; initialize twice is refused."""
    peer = Peer()
    assert (await peer.request("ping"))["result"] == {}
    assert (await peer.request("tools/list"))["error"]["code"] == -32600
    await peer.initialize()
    assert (await peer.request("initialize", {"protocolVersion": LATEST}))["error"]["code"] == -32600


async def test_malformed_messages_get_json_rpc_errors() -> None:
    """Not JSON is -32700, an unknown method -32601, a null id -32600, a non-object params -32602."""
    peer = Peer()
    await peer.initialize()
    assert json.loads(peer.mcp("{", peer.session))["error"]["code"] == -32700  # type: ignore[arg-type]
    assert (await peer.request("resources/list"))["error"]["code"] == -32601
    assert (await peer.send({"jsonrpc": "2.0", "id": None, "method": "ping"}))["error"]["code"] == -32600
    assert (await peer.send({"jsonrpc": "2.0", "id": 9, "method": "ping", "params": [1]}))["error"]["code"] == -32602
    assert await peer.send({"jsonrpc": "2.0", "id": 9, "result": {}}) is None  # a response: dropped


async def test_a_batch_gets_one_array_of_answers() -> None:
    """2025-03-26 allowed batches: each request is answered, notifications are not."""
    peer = Peer()
    await peer.initialize("2025-03-26")
    answers = await peer.send(
        [
            {"jsonrpc": "2.0", "id": "a", "method": "ping"},
            {"jsonrpc": "2.0", "method": "notifications/initialized"},
            {
                "jsonrpc": "2.0",
                "id": "b",
                "method": "tools/call",
                "params": {"name": "sleep", "arguments": {"seconds": 0, "value": 5}},
            },
        ]
    )
    assert [a["id"] for a in answers] == ["a", "b"]
    assert answers[1]["result"]["content"][0]["text"] == "5"


async def test_the_calls_of_a_batch_run_together() -> None:
    """Two calls in one batch run at once: a cancel of the first, sent while both wait, finds the second running too."""
    peer = Peer()
    await peer.initialize("2025-03-26")
    calls = [
        {"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {"name": "sleep", "arguments": {"seconds": 10}}}
        for n in (1, 2)
    ]
    batch = asyncio.ensure_future(peer.start(calls))  # type: ignore[arg-type]
    for _ in range(10):
        await asyncio.sleep(0)
    assert all(task is not None for task in peer.session.running.values()) and len(peer.session.running) == 2
    for n in (1, 2):
        await peer.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": n}})
    assert await asyncio.wait_for(batch, timeout=5) is None  # both cancelled: nothing is answered


# -- tools/list -------------------------------------------------------------------


async def test_tools_list_describes_every_tool_with_an_object_input_schema() -> None:
    """Each built-in tool is listed with its title, description and an object inputSchema that is valid JSON Schema."""
    peer = Peer()
    await peer.initialize()
    tools = await peer.tools()
    assert list(tools) == list(builtin_tools())
    for tool in tools.values():
        assert tool["inputSchema"]["type"] == "object"
        jsonschema.Draft202012Validator.check_schema(tool["inputSchema"])
    assert tools["multiply"]["title"] == "Multiply"
    assert tools["multiply"]["description"] == "Multiply two numbers: a * b."
    assert tools["multiply"]["inputSchema"] == builtin_tools()["multiply"].schema["else"]


async def test_a_tool_of_star_args_takes_one_array_argument() -> None:
    """sum(*numbers) is listed as {numbers: array of numbers} and called with one."""
    peer = Peer()
    await peer.initialize()
    assert (await peer.tools())["sum"]["inputSchema"]["properties"] == {
        "numbers": {"type": "array", "items": {"type": "number"}}
    }
    result = await peer.call("sum", {"numbers": [1, 2, 3.5]})
    assert result["content"] == [{"type": "text", "text": "6.5"}]
    assert result["structuredContent"] == {"result": 6.5}


async def test_output_schemas_are_objects_and_wrap_other_values() -> None:
    """A number result is {"result": number}; long_task's object result is its own schema; sleep's is unknown."""
    peer = Peer()
    await peer.initialize()
    tools = await peer.tools()
    assert tools["multiply"]["outputSchema"] == {
        "type": "object",
        "properties": {"result": {"type": "number"}},
        "required": ["result"],
    }
    assert tools["long_task"]["outputSchema"]["required"] == ["steps", "seconds"]
    assert "outputSchema" not in tools["sleep"]
    for tool in tools.values():
        if "outputSchema" in tool:
            assert tool["outputSchema"]["type"] == "object"


async def test_older_versions_get_no_titles_output_schemas_or_structured_content() -> None:
    """Before 2025-06-18 there were no titles, outputSchema or structuredContent: none are sent."""
    peer = Peer()
    await peer.initialize("2025-03-26")
    multiply = (await peer.tools())["multiply"]
    assert "title" not in multiply and "outputSchema" not in multiply
    result = await peer.call("multiply", {"a": 3, "b": 4})
    assert result == {"content": [{"type": "text", "text": "12"}]}


async def test_schemas_are_written_in_2020_12_for_2025_11_25() -> None:
    """A tuple param's draft-07 items list becomes prefixItems, the default dialect from 2025-11-25 on."""
    registry = Registry()

    @registry.tool
    def span(pair: tuple[int, int]) -> int:
        return pair[1] - pair[0]

    new, old = Peer(registry), Peer(registry)
    await new.initialize("2025-11-25")
    await old.initialize("2025-06-18")
    pair_new = (await new.tools())["span"]["inputSchema"]["properties"]["pair"]
    pair_old = (await old.tools())["span"]["inputSchema"]["properties"]["pair"]
    assert pair_new["prefixItems"] == [{"type": "integer"}, {"type": "integer"}]
    assert "items" not in pair_new or pair_new["items"] is False
    assert pair_old["items"] == [{"type": "integer"}, {"type": "integer"}]
    jsonschema.validate([1, 2], pair_new, cls=jsonschema.Draft202012Validator)
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate([1, 2, 3], pair_new, cls=jsonschema.Draft202012Validator)
    assert (await new.call("span", {"pair": [2, 7]}))["structuredContent"] == {"result": 5}


async def test_a_caller_sees_and_calls_only_what_it_may_call() -> None:
    """With the session's allowed(), tools/list shows only what it allows; calling another is -32004, as in JSON-RPC.

    A tool the server does not serve stays an unknown tool, -32602.
    """
    peer = Peer(allowed=lambda name: name == "add")
    await peer.initialize()
    assert list(await peer.tools()) == ["add"]
    forbidden = await peer.request("tools/call", {"name": "multiply", "arguments": {"a": 1, "b": 2}})
    assert forbidden["error"] == {"code": -32004, "message": "Forbidden", "data": "not allowed to call 'multiply'"}
    unknown = await peer.request("tools/call", {"name": "nope", "arguments": {}})
    assert unknown["error"] == {"code": -32602, "message": "Invalid params", "data": "Unknown tool: 'nope'"}


# -- tools/call -------------------------------------------------------------------


async def test_a_call_answers_its_result_as_text_and_structured_content() -> None:
    """multiply 3 and 4 answers one text item "12" and structuredContent {"result": 12}."""
    peer = Peer()
    await peer.initialize()
    assert await peer.call("multiply", {"a": 3, "b": 4}) == {
        "content": [{"type": "text", "text": "12"}],
        "structuredContent": {"result": 12},
    }


async def test_a_result_nested_deeper_than_an_answer_may_be_is_32603_and_no_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """deep(1000) is written (orjson reads it back); deeper results are -32603 naming the depth, logged in one line."""
    peer = Peer(deep_tools())
    await peer.initialize()

    async def call(n: int) -> Any:
        reply = peer.mcp(
            json.dumps(
                {"jsonrpc": "2.0", "id": n, "method": "tools/call", "params": {"name": "deep", "arguments": {"n": n}}}
            ),
            peer.session,
        )
        return orjson.loads(await reply if isinstance(reply, Awaitable) else reply)

    deepest = (await call(1000))["result"]
    assert deepest["content"][0]["text"] == "[" * 1000 + "]" * 1000
    data = "the answer would be nested more than 1024 levels deep"
    assert (await call(1021))["error"] == {"code": -32603, "message": "Internal error", "data": data}
    assert (await call(1100))["result"] == {
        "content": [{"type": "text", "text": f"Error -32603: Internal error: {data}"}],
        "isError": True,
    }
    assert not [r for r in caplog.records if r.exc_info is not None]
    assert sum("nested more than" in r.getMessage() for r in caplog.records) == 2


async def test_a_tool_error_is_a_result_with_is_error() -> None:
    """divide by 0 is isError, its text naming code 1001, message and data."""
    peer = Peer()
    await peer.initialize()
    result = await peer.call("divide", {"dividend": 1, "divisor": 0})
    assert result == {
        "content": [{"type": "text", "text": "Error 1001: Division by zero: divisor is 0"}],
        "isError": True,
    }


@pytest.mark.parametrize(
    ("name", "arguments", "text"),
    [
        ("multiply", {"a": 3}, "Error -32602: Invalid params: missing required parameter 'b'"),
        ("multiply", {"a": "x", "b": 1}, "Error -32602: Invalid params: parameter 'a' must be a number, got a string"),
        ("multiply", {"a": 1, "b": 2, "c": 3}, "Error -32602: Invalid params: unexpected parameter 'c'"),
        (
            "sum",
            {"numbers": [1, "x"]},
            "Error -32602: Invalid params: parameter 'numbers[1]' must be a number, got a string",
        ),
        ("sum", {"values": [1]}, "Error -32602: Invalid params: unexpected parameter 'values'"),
    ],
)
async def test_invalid_arguments_are_a_result_with_is_error(name: str, arguments: Any, text: str) -> None:
    """The tool's own validator judges the arguments; its sentence comes back as an isError result."""
    peer = Peer()
    await peer.initialize()
    assert await peer.call(name, arguments) == {"content": [{"type": "text", "text": text}], "isError": True}


async def test_an_unknown_tool_is_error_32602() -> None:
    """A name that is not a tool, or is one of the rpc.* methods, is a protocol error -32602."""
    peer = Peer()
    await peer.initialize()
    for name in ("nope", "rpc.cancel", 42):
        response = await peer.request("tools/call", {"name": name, "arguments": {}})
        assert response["error"]["code"] == -32602, response
    response = await peer.request("tools/call", {"name": "add", "arguments": [1, 2]})
    assert response["error"]["code"] == -32602


async def test_a_call_without_a_progress_token_gets_no_progress() -> None:
    """long_task and count without _meta.progressToken push nothing; count answers all its parts."""
    peer = Peer()
    await peer.initialize()
    await peer.call("long_task", {"seconds": 0})
    result = await peer.call("count", {"n": 3, "interval": 0})
    assert result["structuredContent"] == {"result": [1, 2, 3]}
    assert peer.pushed == []


async def test_a_tool_that_reports_progress_reaches_the_progress_token() -> None:
    """long_task's ten reports arrive as notifications/progress with the token, growing, with total and message."""
    peer = Peer()
    await peer.initialize()
    result = await peer.call("long_task", {"seconds": 0}, _meta={"progressToken": "tok"})
    assert result["structuredContent"] == {"steps": 10, "seconds": 0}
    progress = peer.progress()
    assert [p["progress"] for p in progress] == list(range(1, 11))
    assert progress[0] == {"progressToken": "tok", "progress": 1, "total": 10, "message": "step 1 of 10"}


async def test_a_streamed_tool_reports_each_part_as_progress() -> None:
    """count 3 with a token: three progress steps whose messages are the parts, then all parts as the result."""
    peer = Peer()
    await peer.initialize()
    result = await peer.call("count", {"n": 3, "interval": 0}, _meta={"progressToken": 7})
    assert peer.progress() == [
        {"progressToken": 7, "progress": 1, "message": "1"},
        {"progressToken": 7, "progress": 2, "message": "2"},
        {"progressToken": 7, "progress": 3, "message": "3"},
    ]
    assert result["content"] == [{"type": "text", "text": "[1,2,3]"}]


async def test_progress_for_2024_11_05_has_no_message() -> None:
    """The first version had no message in progress notifications: none is sent."""
    peer = Peer()
    await peer.initialize("2024-11-05")
    await peer.call("long_task", {"seconds": 0}, _meta={"progressToken": "t"})
    assert all("message" not in p for p in peer.progress())
    assert len(peer.progress()) == 10


async def test_notifications_cancelled_cancels_the_call_and_no_answer_is_sent() -> None:
    """A cancelled sleep stops at once (its task is cancelled) and its request gets no answer at all."""
    peer = Peer()
    await peer.initialize()
    outcome = peer.start(
        {
            "jsonrpc": "2.0",
            "id": "slow",
            "method": "tools/call",
            "params": {"name": "sleep", "arguments": {"seconds": 10}},
        }
    )
    task = asyncio.ensure_future(outcome)  # type: ignore[arg-type]
    await asyncio.sleep(0)  # the call starts
    assert peer.session.running
    await peer.send(
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": "slow", "reason": "no"}}
    )
    assert await asyncio.wait_for(task, timeout=5) is None
    assert not peer.session.running


async def test_a_cancel_for_an_unknown_request_is_ignored() -> None:
    """notifications/cancelled naming no call in flight changes nothing and answers nothing."""
    peer = Peer()
    await peer.initialize()
    assert await peer.send({"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 99}}) is None
    assert (await peer.call("add", {"a": 1, "b": 2}))["structuredContent"] == {"result": 3}
