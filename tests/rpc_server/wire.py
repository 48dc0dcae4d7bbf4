"""Helpers the socket-level server tests share: bounded waits, and one call over a websockets client."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection

from rpc_server import RpcServer

from .corpus import parse, request
from .rawws import WAIT

__all__ = ["WAIT", "StartServer", "receive", "rpc", "wait_for"]

StartServer = Callable[..., Awaitable[RpcServer]]


async def receive(ws: ClientConnection) -> Any:
    """The next message, parsed; a test fails rather than hang if none comes."""
    async with asyncio.timeout(WAIT):
        return parse(await ws.recv())


async def rpc(ws: ClientConnection, method: str, params: Any = None, id: Any = 1) -> Any:
    """Send one request and return the next message."""
    await ws.send(request(method, params, id))
    return await receive(ws)


async def wait_for(event: asyncio.Event, what: str) -> None:
    """Wait for ``event``, failing the test with ``what`` after WAIT seconds."""
    try:
        async with asyncio.timeout(WAIT):
            await event.wait()
    except TimeoutError:
        pytest.fail(f"gave up waiting: {what}")
