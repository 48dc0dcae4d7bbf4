"""Shared fixtures: real servers started in-process on port 0."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme

from rpc_server import Registry, RpcServer, builtin_tools
from rpc_server.testing import server_arguments

from .security.kit import tls_files

StartServer = Callable[..., Awaitable[RpcServer]]


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """The server's main() configures logging for the process: in a test, that must not outlive the test."""
    root, websockets = logging.getLogger(), logging.getLogger("websockets")
    handlers, levels = root.handlers[:], (root.level, websockets.level)
    yield
    root.handlers[:] = handlers
    root.setLevel(levels[0])
    websockets.setLevel(levels[1])


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


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    """A certificate authority of the tests' own, made in memory (no certificate is committed)."""
    return trustme.CA()


@pytest.fixture
def pem_files(tmp_path: Path, ca: trustme.CA) -> tuple[Path, Path, Path]:
    """A server's certificate chain and key (for 127.0.0.1 and localhost) signed by ``ca``, and ``ca``, as PEM files."""
    return tls_files(ca, tmp_path)
