"""A connection lives no longer than its token: at ``exp`` it is closed with 1008 "token expired".

Calls already running are answered first (or the connection closes
``EXPIRY_GRACE_S`` later all the same); what arrives after ``exp`` is not run.
Tokens here expire two seconds after they are made, with no leeway: every wait
is bounded by WAIT, and no test asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.frames import CloseCode

import rpc_server.connection as connection_module
from rpc_server import RpcServer
from rpc_server.auth import Auth

from ..rpc_server.rawws import WAIT
from ..rpc_server.wire import StartServer, receive, rpc
from .kit import KEY_ALL, SECRET, mint, tools

LIFETIME = 2


async def closed_by_server(ws: ClientConnection) -> tuple[int, str]:
    """The code and reason of the close the server sends, waiting at most WAIT beyond the token's lifetime."""
    with pytest.raises(ConnectionClosed) as caught:
        async with asyncio.timeout(WAIT + LIFETIME):
            while True:
                await ws.recv()
    received = caught.value.rcvd
    assert received is not None, "the connection ended without a close frame from the server"
    return received.code, received.reason


async def wait_until(condition: Any, what: str) -> None:
    try:
        async with asyncio.timeout(WAIT + LIFETIME):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        pytest.fail(f"gave up waiting: {what}")


@pytest.fixture
async def expiring(start_server: StartServer) -> tuple[RpcServer, asyncio.Event, asyncio.Event, list[str]]:
    """A server taking HS256 tokens with no leeway, with ``hold`` (answers once released) and ``touch`` (records)."""
    registry = tools()
    started, release = asyncio.Event(), asyncio.Event()
    runs: list[str] = []

    @registry.tool
    async def hold() -> str:
        started.set()
        await release.wait()
        return "done"

    @registry.tool
    def touch(label: str) -> str:
        runs.append(label)
        return label

    server = await start_server(registry, auth=Auth(jwt_secret=SECRET, jwt_leeway_s=0))
    return server, started, release, runs


def short_token() -> str:
    return mint(exp=int(time.time()) + LIFETIME)


async def test_an_idle_connection_is_closed_with_1008_when_its_token_expires(expiring: Any) -> None:
    """Nothing running: at exp the server closes with 1008 and the reason 'token expired'."""
    server, *_ = expiring
    async with connect(server.url, additional_headers={"Authorization": f"Bearer {short_token()}"}) as ws:
        assert (await rpc(ws, "multiply", [2, 3]))["result"] == 6
        assert await closed_by_server(ws) == (CloseCode.POLICY_VIOLATION, "token expired")


async def test_a_connection_of_a_token_without_exp_is_closed_max_age_after_its_iat(start_server: StartServer) -> None:
    """An iat-only token is good for --jwt-max-age after iat: then its connection closes with 1008 too."""
    server = await start_server(tools(), auth=Auth(jwt_secret=SECRET, jwt_leeway_s=0, jwt_max_age_s=LIFETIME))
    token = mint(lifetime=None, iat=int(time.time()))
    async with connect(server.url, additional_headers={"Authorization": f"Bearer {token}"}) as ws:
        assert (await rpc(ws, "multiply", [2, 3]))["result"] == 6
        assert await closed_by_server(ws) == (CloseCode.POLICY_VIOLATION, "token expired")


async def test_a_call_running_at_expiry_is_answered_before_the_close_and_later_calls_do_not_run(
    expiring: Any,
) -> None:
    """hold runs across exp: its answer comes, then the 1008 close; a call sent after exp is not run nor answered.

    The connection's subscription ends at exp, while hold still runs.
    """
    server, started, release, runs = expiring
    async with connect(server.url, additional_headers={"Authorization": f"Bearer {short_token()}"}) as ws:
        assert "result" in await rpc(ws, "rpc.subscribe", {"topic": "clock", "params": {"interval": 60}}, id=0)
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "hold", "id": 1}))
        await asyncio.wait_for(started.wait(), WAIT)
        [connection] = server.connections
        assert connection.session.subscriptions
        await wait_until(lambda: connection.expired, "the token to expire")
        assert not connection.session.subscriptions
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "touch", "params": ["late"], "id": 2}))
        release.set()
        assert await receive(ws) == {"jsonrpc": "2.0", "result": "done", "id": 1}
        assert await closed_by_server(ws) == (CloseCode.POLICY_VIOLATION, "token expired")
    assert runs == []


async def test_a_call_that_outlasts_the_grace_does_not_keep_the_connection(
    expiring: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call still running EXPIRY_GRACE_S after exp is cut off with the connection: 1008 all the same."""
    monkeypatch.setattr(connection_module, "EXPIRY_GRACE_S", 0.05)
    server, started, _, _ = expiring
    async with connect(server.url, additional_headers={"Authorization": f"Bearer {short_token()}"}) as ws:
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "hold", "id": 1}))
        await asyncio.wait_for(started.wait(), WAIT)
        assert await closed_by_server(ws) == (CloseCode.POLICY_VIOLATION, "token expired")


async def test_a_connection_admitted_by_a_key_does_not_expire(start_server: StartServer) -> None:
    """An API key has no exp: its connection's admission carries none, and no timer is set."""
    server = await start_server(auth=Auth(api_keys={KEY_ALL: []}))
    async with connect(server.url, additional_headers={"Authorization": f"Bearer {KEY_ALL}"}) as ws:
        assert (await rpc(ws, "multiply", [2, 3]))["result"] == 6
        assert all(c.expiry_timer is None for c in server.connections)
