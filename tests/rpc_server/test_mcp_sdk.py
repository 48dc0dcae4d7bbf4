"""MCP over our WebSocket, driven by the official MCP Python SDK's WebSocket client (mcp 1.x)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

import pytest
from mcp import ClientSession
from mcp.client.websocket import websocket_client
from mcp.types import LATEST_PROTOCOL_VERSION, TextContent

from .wire import WAIT, StartServer

# The SDK marks its WebSocket client deprecated (2.x drops it); it is the official MCP client that speaks WebSocket.
# Each test's exchange is bounded: a broken one fails it rather than hanging.
BOUND = 4 * WAIT
pytestmark = pytest.mark.filterwarnings("ignore:The WebSocket client transport is deprecated:DeprecationWarning")


@contextlib.asynccontextmanager
async def sdk_session(url: str) -> AsyncIterator[ClientSession]:
    """The SDK's client session over its WebSocket client, within BOUND seconds."""
    async with asyncio.timeout(BOUND), websocket_client(url) as (read, write), ClientSession(read, write) as session:
        yield session


def text_of(result: object) -> str:
    (item,) = result.content  # type: ignore[attr-defined]
    assert isinstance(item, TextContent)
    return item.text


async def test_the_sdk_initializes_lists_and_calls_multiply(start_server: StartServer) -> None:
    """initialize agrees on the SDK's newest version; tools/list has multiply; multiply 3 4 is 12 (text, structured)."""
    server = await start_server()
    async with sdk_session(server.url) as session:
        init = await session.initialize()
        assert init.protocolVersion == LATEST_PROTOCOL_VERSION
        assert init.serverInfo.name == "rpc-tools"
        assert init.capabilities.tools is not None
        tools = {tool.name: tool for tool in (await session.list_tools()).tools}
        assert {"multiply", "divide", "sum", "count", "long_task"} <= set(tools)
        assert tools["multiply"].inputSchema["required"] == ["a", "b"]
        assert tools["sum"].inputSchema["properties"]["numbers"]["type"] == "array"
        result = await session.call_tool("multiply", {"a": 3, "b": 4})
        assert not result.isError
        assert text_of(result) == "12"
        assert result.structuredContent == {"result": 12}
        assert (await session.call_tool("sum", {"numbers": [1, 2, 3]})).structuredContent == {"result": 6}


async def test_the_sdk_receives_progress_from_a_tool_that_reports_it(start_server: StartServer) -> None:
    """long_task called with a progress callback: ten reports, each with its total and message, then the result."""
    server = await start_server()
    reports: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        reports.append((progress, total, message))

    async with sdk_session(server.url) as session:
        await session.initialize()
        result = await session.call_tool("long_task", {"seconds": 0.05}, progress_callback=on_progress)
        assert result.structuredContent == {"steps": 10, "seconds": 0.05}
        assert reports == [(step, 10, f"step {step} of 10") for step in range(1, 11)]
        reports.clear()
        streamed = await session.call_tool("count", {"n": 3, "interval": 0}, progress_callback=on_progress)
        assert streamed.structuredContent == {"result": [1, 2, 3]}
        assert reports == [(1, None, "1"), (2, None, "2"), (3, None, "3")]


async def test_the_sdk_gets_is_error_for_bad_arguments_and_tool_failures(start_server: StartServer) -> None:
    """Arguments the schema refuses, and divide by 0, come back as isError results with the reason in the text."""
    server = await start_server()
    async with sdk_session(server.url) as session:
        await session.initialize()
        bad = await session.call_tool("multiply", {"a": "three", "b": 4})
        assert bad.isError
        assert text_of(bad) == "Error -32602: Invalid params: parameter 'a' must be a number, got a string"
        failed = await session.call_tool("divide", {"dividend": 1, "divisor": 0})
        assert failed.isError and text_of(failed).startswith("Error 1001: Division by zero")
