"""--drain-grace: on SIGTERM the server keeps listening a while, not ready, before it drains."""

from __future__ import annotations

import asyncio
import json
import signal
import urllib.error
import urllib.request

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from .conftest import TOOLS, StartProcess
from .processes import ServerProcess, wait_for


def _status(server: ServerProcess, path: str) -> int:
    try:
        with urllib.request.urlopen(f"{server.http}{path}", timeout=5) as answer:
            return int(answer.status)
    except urllib.error.HTTPError as refused:
        return refused.code


async def test_during_the_grace_readyz_is_503_new_clients_are_turned_away_and_open_ones_are_served(
    start_process: StartProcess,
) -> None:
    """After SIGTERM, /readyz says 503 and an upgrade gets 503 + Retry-After; an open connection still gets answers."""
    server = await start_process("--drain-grace", "10", *TOOLS)
    assert _status(server, "/readyz") == 200
    async with connect(server.url) as ws:
        server.signal(signal.SIGTERM)
        await wait_for(lambda: _status(server, "/readyz") == 503, 5.0, "/readyz to answer 503")
        assert _status(server, "/healthz") == 200  # alive: no reason to restart it
        with pytest.raises(InvalidStatus) as refused:
            async with connect(server.url):
                pass
        assert refused.value.response.status_code == 503
        assert refused.value.response.headers["Retry-After"] == "1"
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "multiply", "params": [6, 7], "id": 1}))
        async with asyncio.timeout(30):
            assert json.loads(await ws.recv()) == {"jsonrpc": "2.0", "result": 42, "id": 1}
    assert await server.wait() == 0
    assert "still listening for 10 s" in server.log.read_text()
