"""Discovery on a real server: rpc.discover, GET /openrpc.json, the playground's files, and the mcp subprotocol."""

from __future__ import annotations

import json
import re
import socket
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.http11 import Request, Response

from rpc_server import Registry, builtin_tools
from rpc_server.handshake import Admission, response

from .specs import openrpc_errors
from .test_handshake import http_get
from .wire import StartServer, rpc


def only_multiply(request: Request, admission: Admission) -> Response | None:
    """A gate as an authenticating one would be: this caller may call multiply only."""
    admission.allowed = lambda method: method == "multiply"
    return None


async def test_rpc_discover_answers_the_document_with_the_url_the_client_connected_to(
    start_server: StartServer,
) -> None:
    """rpc.discover is a valid OpenRPC document whose servers entry is the URL this client used."""
    server = await start_server()
    async with connect(server.url) as ws:
        doc = (await rpc(ws, "rpc.discover"))["result"]
    assert openrpc_errors(doc) == []
    assert doc["servers"] == [{"name": "rpc-tools", "url": server.url}]
    names = [m["name"] for m in doc["methods"]]
    assert names == [*builtin_tools(), "rpc.cancel", "rpc.subscribe", "rpc.unsubscribe", "rpc.discover"]
    assert [t["name"] for t in doc["x-topics"]] == ["clock"]


async def test_rpc_discover_describes_itself(start_server: StartServer) -> None:
    """rpc.discover takes no params and its result is an OpenRPC document, by the meta-schema's URL."""
    server = await start_server()
    async with connect(server.url) as ws:
        doc = (await rpc(ws, "rpc.discover", []))["result"]
    (discover,) = [m for m in doc["methods"] if m["name"] == "rpc.discover"]
    assert discover["params"] == []
    assert discover["result"]["schema"] == {"$ref": "https://meta.open-rpc.org/"}


async def test_rpc_discover_lists_only_what_the_caller_may_call(start_server: StartServer) -> None:
    """With an admission that allows multiply only, the document's tools are multiply (and the rpc.* methods)."""
    server = await start_server()
    server.handshake.gates.append(only_multiply)
    async with connect(server.url) as ws:
        doc = (await rpc(ws, "rpc.discover"))["result"]
    assert [m["name"] for m in doc["methods"] if not m["name"].startswith("rpc.")] == ["multiply"]


async def test_tools_added_after_start_are_discovered(start_server: StartServer) -> None:
    """The document is built when asked: a tool added to the running server's registry is in it."""
    registry = Registry()
    server = await start_server(registry)
    registry.add(lambda: "pong", name="late", description="Added while serving.")
    async with connect(server.url) as ws:
        doc = (await rpc(ws, "rpc.discover"))["result"]
    assert doc["methods"][0]["name"] == "late"


async def test_get_openrpc_json_serves_the_same_document_over_http(start_server: StartServer) -> None:
    """GET /openrpc.json is the document as JSON, naming the WebSocket endpoint at the Host the request gave."""
    server = await start_server()
    status, headers, body = await http_get(server.port, "/openrpc.json")
    assert status == 200 and headers["Content-Type"] == "application/json"
    doc = json.loads(body)
    assert openrpc_errors(doc) == []
    assert doc["servers"] == [{"name": "rpc-tools", "url": "ws://127.0.0.1/ws"}]
    async with connect(server.url) as ws:
        over_ws = (await rpc(ws, "rpc.discover"))["result"]
    assert doc["methods"] == over_ws["methods"]


async def test_get_openrpc_json_passes_the_same_gates_as_an_upgrade(start_server: StartServer) -> None:
    """A gate that refuses refuses the document too; one that restricts the caller restricts the document."""
    server = await start_server()
    server.handshake.gates.append(only_multiply)
    _, _, body = await http_get(server.port, "/openrpc.json")
    assert [m["name"] for m in json.loads(body)["methods"] if not m["name"].startswith("rpc.")] == ["multiply"]

    def no_entry(request: Request, admission: Admission) -> Response | None:
        return response(401, "Unauthorized\n")

    server.handshake.gates.insert(0, no_entry)
    status, _, _ = await http_get(server.port, "/openrpc.json")
    assert status == 401


@pytest.mark.parametrize("path", ["/", "/playground"])
async def test_the_playground_page_is_served_to_a_page_load(start_server: StartServer, path: str) -> None:
    """GET / and /playground without an upgrade answer the page, with a policy that allows only its own origin."""
    server = await start_server()
    status, headers, body = await http_get(server.port, path)
    assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
    assert b"<title>rpc-tools playground</title>" in body
    policy = headers["Content-Security-Policy"]
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy and "frame-ancestors 'none'" in policy


async def test_the_playground_loads_nothing_from_elsewhere(start_server: StartServer) -> None:
    """The page, its script and its style name no other origin: no CDN, no font service, so it works offline."""
    server = await start_server()
    for path in ("/", "/playground/playground.js", "/playground/playground.css"):
        status, _, body = await http_get(server.port, path)
        assert status == 200, path
        assert re.search(rb"(https?:)?//[a-z0-9.-]+\.[a-z]{2,}", body, re.I) is None, path


async def test_the_websocket_endpoint_at_slash_still_upgrades(start_server: StartServer) -> None:
    """/ serves the page to a page load, and is still a WebSocket endpoint for an upgrade."""
    server = await start_server()
    async with connect(f"ws://127.0.0.1:{server.port}/") as ws:
        assert (await rpc(ws, "multiply", [3, 4]))["result"] == 12


async def test_the_playground_does_not_widen_the_origin_policy(start_server: StartServer) -> None:
    """With origins set, a socket from the page's own origin is refused until that origin is listed too."""
    server = await start_server(origins=["https://app.example"])
    own = f"http://127.0.0.1:{server.port}"
    status, _, _ = await http_get(server.port, "/")
    assert status == 200  # the page itself is served...
    with pytest.raises(InvalidStatus) as refused:
        async with connect(server.url, origin=own):  # type: ignore[arg-type]
            pass
    assert refused.value.response.status_code == 403  # ...but its socket is not let in
    # Listing the server's own origin lets the page in: a second server, on a port known beforehand.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    own = f"http://127.0.0.1:{port}"
    listed = await start_server(origins=["https://app.example", own], port=port)
    async with connect(listed.url, origin=own) as ws:  # type: ignore[arg-type]
        assert (await rpc(ws, "multiply", [3, 4]))["result"] == 12


async def test_a_client_offering_mcp_gets_it(start_server: StartServer) -> None:
    """Offering "mcp" is answered with it, and the connection speaks MCP; plain clients stay plain."""
    server = await start_server()
    async with connect(server.url, subprotocols=["mcp"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "mcp"
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        assert json.loads(await ws.recv()) == {"jsonrpc": "2.0", "result": {}, "id": 1}
    async with connect(server.url) as ws:
        assert ws.subprotocol is None
        assert (await rpc(ws, "multiply", [3, 4]))["result"] == 12


async def test_mcp_connections_honour_the_admission(start_server: StartServer) -> None:
    """An MCP caller allowed multiply only sees multiply in tools/list."""
    server = await start_server()
    server.handshake.gates.append(only_multiply)
    async with connect(server.url, subprotocols=["mcp"]) as ws:  # type: ignore[list-item]
        init: dict[str, Any] = {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "t", "version": "1"},
        }
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": init}))
        await ws.recv()
        await ws.send(json.dumps({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
        tools = json.loads(await ws.recv())["result"]["tools"]
    assert [t["name"] for t in tools] == ["multiply"]
