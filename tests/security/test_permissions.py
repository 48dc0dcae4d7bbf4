"""Per-tool permissions over real sockets: -32004 Forbidden in every shape a call can take.

A key's patterns (or a token's ``scope``) name the tools it may call, and the
topics it may subscribe to as ``topic:NAME``. Anything else is -32004, with
``data`` naming what was refused, and the tool does not run.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from rpc_server import RpcServer, codes
from rpc_server.auth import Auth

from ..rpc_server.wire import StartServer, receive, rpc
from .kit import KEY_ALL, KEY_MATH, SECRET, mint, tools

FORBIDDEN = {"code": codes.FORBIDDEN, "message": "Forbidden"}


def forbidden(name: str, id: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": {**FORBIDDEN, "data": f"not allowed to call {name!r}"}, "id": id}


@pytest.fixture
async def server(start_server: StartServer) -> tuple[RpcServer, list[str]]:
    """KEY_MATH may call multiply and the stream count, and subscribe to clock; KEY_ALL may do anything.

    Also a tool ``touch`` that records each run, to show a refused call does not run.
    """
    registry = tools()
    runs: list[str] = []

    @registry.tool
    def touch(label: str) -> str:
        runs.append(label)
        return label

    auth = Auth(api_keys={KEY_MATH: ["multiply", "count", "topic:clock"], KEY_ALL: []}, jwt_secret=SECRET)
    return await start_server(registry, auth=auth), runs


def as_key(server: RpcServer, key: str = KEY_MATH) -> Any:
    return connect(server.url, additional_headers={"Authorization": f"Bearer {key}"})


async def test_a_single_call_outside_the_patterns_is_forbidden_and_does_not_run(
    server: tuple[RpcServer, list[str]],
) -> None:
    """multiply answers; touch answers -32004 naming it, and never runs; a forbidden notification gets nothing."""
    srv, runs = server
    async with as_key(srv) as ws:
        assert (await rpc(ws, "multiply", [3, 4]))["result"] == 12
        assert await rpc(ws, "touch", ["no"], id=2) == forbidden("touch", 2)
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "touch", "params": ["silent"]}))
        assert (await rpc(ws, "multiply", [1, 1], id=3))["id"] == 3  # the notification was answered by nothing
    assert runs == []


async def test_each_member_of_a_batch_is_checked_on_its_own(server: tuple[RpcServer, list[str]]) -> None:
    """In one batch, multiply answers and touch is -32004: a forbidden member does not spoil the others."""
    srv, runs = server
    batch = [
        {"jsonrpc": "2.0", "method": "multiply", "params": [2, 5], "id": 1},
        {"jsonrpc": "2.0", "method": "touch", "params": ["batch"], "id": 2},
        {"jsonrpc": "2.0", "method": "nope", "id": 3},
    ]
    async with as_key(srv) as ws:
        await ws.send(json.dumps(batch))
        answers = {a["id"]: a for a in await receive(ws)}
    assert answers[1]["result"] == 10
    assert answers[2] == forbidden("touch", 2)
    assert answers[3]["error"]["code"] == codes.METHOD_NOT_FOUND  # an unknown name stays unknown
    assert runs == []


async def test_the_seed_s_message_shape_is_checked_too(server: tuple[RpcServer, list[str]]) -> None:
    """{"func": "touch", "args": [...]} answers the seed's error shape with Forbidden, and touch does not run."""
    srv, runs = server
    async with as_key(srv) as ws:
        await ws.send(json.dumps({"func": "multiply", "args": [3, 4]}))
        assert await receive(ws) == {"result": 12}
        await ws.send(json.dumps({"func": "touch", "args": ["seed"]}))
        assert await receive(ws) == {"error": "Forbidden: not allowed to call 'touch'"}
    assert runs == []


async def subscribe(ws: ClientConnection, topic: str) -> dict[str, Any]:
    return await rpc(ws, "rpc.subscribe", {"topic": topic, "params": {"interval": 0.05}}, id="sub")  # type: ignore[no-any-return]


async def test_a_topic_needs_its_topic_pattern(start_server: StartServer) -> None:
    """topic:clock lets a caller subscribe to clock; without it rpc.subscribe is -32004 naming topic:clock."""
    auth = Auth(api_keys={KEY_MATH: ["multiply", "topic:clock"], KEY_ALL: ["multiply"]})
    srv = await start_server(auth=auth)
    async with as_key(srv, KEY_MATH) as ws:
        answer = await subscribe(ws, "clock")
        assert isinstance(answer["result"], str)
        event = await receive(ws)
        assert event["method"] == "rpc.event" and event["params"]["topic"] == "clock"
    async with as_key(srv, KEY_ALL) as ws:
        answer = await subscribe(ws, "clock")
        assert answer["error"] == {**FORBIDDEN, "data": "not allowed to subscribe to 'topic:clock'"}


async def test_an_unknown_topic_lists_only_the_topics_the_caller_may_have(start_server: StartServer) -> None:
    """The -32602 for an unknown topic does not tell a caller of topics it may not subscribe to."""
    srv = await start_server(auth=Auth(api_keys={KEY_ALL: ["multiply"]}))
    async with as_key(srv, KEY_ALL) as ws:
        answer = await subscribe(ws, "nope")
    assert answer["error"]["data"] == "unknown topic 'nope' (topics: none)"


@pytest.mark.parametrize(("patterns", "listed"), [(["multiply"], []), (["multiply", "topic:clock"], ["clock"])])
async def test_discover_lists_only_the_topics_the_caller_may_subscribe_to(
    start_server: StartServer, patterns: list[str], listed: list[str]
) -> None:
    """rpc.discover's x-topics names a topic only to a caller whose patterns match topic:NAME."""
    srv = await start_server(auth=Auth(api_keys={KEY_ALL: patterns}))
    async with as_key(srv, KEY_ALL) as ws:
        document = (await rpc(ws, "rpc.discover", []))["result"]
    assert [topic["name"] for topic in document["x-topics"]] == listed


async def test_a_streamed_call_outside_the_patterns_pushes_nothing(server: tuple[RpcServer, list[str]]) -> None:
    """count with "stream": true streams for KEY_MATH; for a token scoped to multiply it is -32004, no part sent."""
    srv, _ = server
    async with as_key(srv) as ws:
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "count", "params": [2, 0], "id": 1, "stream": True}))
        parts = [await receive(ws) for _ in range(2)]
        assert [p["params"]["value"] for p in parts] == [1, 2]
        assert (await receive(ws))["result"] == 2
    token = mint(scope="multiply")
    async with as_key(srv, token) as ws:
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "count", "params": [2, 0], "id": 9, "stream": True}))
        assert await receive(ws) == forbidden("count", 9)
        assert (await rpc(ws, "multiply", [2, 2], id=10))["result"] == 4  # nothing was pushed in between


async def test_a_token_s_scope_limits_it_as_a_key_s_patterns_do(server: tuple[RpcServer, list[str]]) -> None:
    """scope 'multiply' admits multiply only; a token without scope may call anything."""
    srv, runs = server
    async with as_key(srv, mint(scope="multiply")) as ws:
        assert (await rpc(ws, "multiply", [2, 3]))["result"] == 6
        assert await rpc(ws, "touch", ["scoped"], id=2) == forbidden("touch", 2)
    async with as_key(srv, mint()) as ws:
        assert (await rpc(ws, "touch", ["unscoped"]))["result"] == "unscoped"
    assert runs == ["unscoped"]


async def test_the_protocol_s_own_methods_stay_open(server: tuple[RpcServer, list[str]]) -> None:
    """rpc.cancel and rpc.unsubscribe need no pattern: they only touch the caller's own calls and subscriptions."""
    srv, _ = server
    async with as_key(srv, mint(scope="multiply")) as ws:
        assert (await rpc(ws, "rpc.unsubscribe", {"subscription": "1"}))["result"] is False
        assert (await rpc(ws, "rpc.cancel", {"id": 5}, id=2))["result"] is False
