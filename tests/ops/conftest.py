"""Fixtures of the operations tests: server processes, a real Redis, a real nginx; all stopped after the test."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from tests.components import require_command

from .processes import Nginx, RedisServer, ServerProcess

StartProcess = Callable[..., Awaitable[ServerProcess]]
TOOLS = ["--tools", "tests.ops.ops_tools"]


@pytest.fixture
async def start_process(tmp_path: Path) -> AsyncIterator[StartProcess]:
    """``await start_process(*flags, env={})``: ``python -m rpc_server --port 0 FLAGS``, listening; stopped after."""
    started: list[ServerProcess] = []

    async def start(*flags: str, env: dict[str, str] | None = None) -> ServerProcess:
        server = ServerProcess(list(flags), tmp_path / f"server-{len(started)}.log", env or {})
        started.append(server)
        return await server.start()

    yield start
    for server in started:
        server.stop()


@pytest.fixture
async def redis_server(tmp_path: Path) -> AsyncIterator[RedisServer]:
    """A real redis-server on a free port."""
    server = RedisServer(require_command("redis-server", "redis-server"), tmp_path)
    await server.start()
    yield server
    server.stop()


@pytest.fixture
def nginx_executable() -> str:
    return require_command("nginx", "nginx")


@pytest.fixture
async def start_nginx(tmp_path: Path, nginx_executable: str) -> AsyncIterator[Callable[[list[int]], Awaitable[Nginx]]]:
    """``await start_nginx([port, ...])``: nginx with deploy/nginx.conf in front of those replicas."""
    started: list[Nginx] = []

    async def start(upstreams: list[int]) -> Nginx:
        directory = tmp_path / f"nginx-{len(started)}"
        directory.mkdir()
        nginx = Nginx(nginx_executable, directory, upstreams)
        started.append(nginx)
        return await nginx.start()

    yield start
    for nginx in started:
        nginx.stop()
