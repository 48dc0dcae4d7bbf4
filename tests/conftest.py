"""Shared fixtures: real servers started in-process on port 0."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from rpc_server import Registry, RpcServer, builtin_tools
from rpc_server.testing import server_arguments

StartServer = Callable[..., Awaitable[RpcServer]]


@pytest.fixture
async def start_server() -> AsyncIterator[StartServer]:
    """A factory: ``await start_server(registry=None, **options)`` gives a running server, closed after the test.

    It listens on 127.0.0.1, on a free port unless ``port=`` says otherwise.
    Options named as :class:`Limits` fields (``max_in_flight=1``) go into its limits.
    """
    started: list[RpcServer] = []

    async def start(registry: Registry | None = None, **options: Any) -> RpcServer:
        options = server_arguments({"host": "127.0.0.1", "port": 0, **options})
        server = RpcServer(registry if registry is not None else builtin_tools(), **options)
        await server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()
        await server.wait_closed()


@pytest.fixture
async def server(start_server: StartServer) -> RpcServer:
    """A server with the built-in tools and default limits."""
    return await start_server()
