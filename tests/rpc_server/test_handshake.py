"""The opening request: plain HTTP routes, refusals by gates, and admissions, first without a socket, then over one."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.datastructures import Headers
from websockets.exceptions import InvalidStatus
from websockets.http11 import Request, Response

from rpc_server import Registry, codes
from rpc_server.handshake import (
    Admission,
    Handshake,
    Refusal,
    Routes,
    endpoint_of,
    is_upgrade,
    json_response,
    refuse,
    response,
)

from .corpus import request
from .wire import WAIT, StartServer, rpc

UPGRADE = [
    ("Host", "127.0.0.1"),
    ("Upgrade", "websocket"),
    ("Connection", "Upgrade"),
    ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
    ("Sec-WebSocket-Version", "13"),
]


def upgrade(path: str = "/ws", *extra: tuple[str, str]) -> Request:
    return Request(path, Headers([*UPGRADE, *extra]))


def plain(path: str) -> Request:
    return Request(path, Headers([("Host", "127.0.0.1")]))


def health(request: Request, admission: Admission) -> Response:
    return json_response(200, {"status": "ok"})


# -- the decision, with no socket ------------------------------------------------------


def test_a_plain_request_to_a_route_gets_its_handler_s_answer() -> None:
    """GET /healthz with no Upgrade header is answered by its route."""
    routes = Routes()
    routes.add("/healthz", health)
    decision = Handshake(routes).decide(plain("/healthz?verbose=1"))
    assert isinstance(decision, Response)
    assert (decision.status_code, json.loads(decision.body)) == (200, {"status": "ok"})
    assert decision.headers["Content-Type"] == "application/json"


def test_head_gets_the_get_s_status_and_headers_without_the_body() -> None:
    """HEAD /healthz: 200 with the GET's Content-Type and Content-Length, and no body."""
    routes = Routes()
    routes.add("/healthz", health)
    get = Handshake(routes).decide(plain("/healthz"))
    head = Handshake(routes).decide(Request("/healthz", Headers([("Host", "127.0.0.1")]), method="HEAD"))
    assert isinstance(get, Response) and isinstance(head, Response)
    assert (head.status_code, head.body) == (200, b"")
    assert head.headers["Content-Length"] == get.headers["Content-Length"] == str(len(get.body))
    assert head.headers["Content-Type"] == "application/json"


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "OPTIONS", "PATCH"])
def test_other_methods_on_a_route_get_405_with_allow(method: str) -> None:
    """A route answers GET and HEAD only: anything else is 405 with Allow, and the handler does not run."""
    routes = Routes()
    ran: list[str] = []
    routes.add("/healthz", lambda request, admission: ran.append("ran") or health(request, admission))  # type: ignore[func-returns-value]
    decision = Handshake(routes).decide(Request("/healthz", Headers([("Host", "127.0.0.1")]), method=method))
    assert isinstance(decision, Response) and decision.status_code == 405
    assert decision.headers["Allow"] == "GET, HEAD"
    assert ran == []


def test_a_gate_s_plain_response_becomes_a_refusal_whose_reason_its_status_gives() -> None:
    """judge() gives a Refusal: 401/403 "auth", 429/503 "limit", others "invalid"; refuse(why=) names its own."""
    for status, reason in [(401, "auth"), (403, "auth"), (429, "limit"), (503, "limit"), (400, "invalid")]:
        decision = Handshake(gates=[lambda request, admission, status=status: response(status)]).decide(upgrade())
        assert isinstance(decision, Refusal) and (decision.status_code, decision.reason) == (status, reason)
    decision = Handshake(gates=[lambda request, admission: refuse(403, "foreign", why="origin")]).decide(upgrade())
    assert isinstance(decision, Refusal) and decision.reason == "origin" and decision.body == b"foreign\n"
    with pytest.raises(ValueError, match="reason"):
        refuse(403, "x", why="made-up")


def test_an_upgrade_to_a_route_s_path_is_not_taken_by_the_route() -> None:
    """Routes answer plain HTTP only: an upgrade to /healthz is a 404, not a health answer."""
    routes = Routes()
    routes.add("/healthz", health)
    decision = Handshake(routes).decide(upgrade("/healthz"))
    assert isinstance(decision, Response) and decision.status_code == 404


def test_a_plain_request_to_an_endpoint_goes_on_to_websockets_own_check() -> None:
    """GET /ws without Upgrade and no route: admitted here, so that websockets answers 426 as before."""
    assert isinstance(Handshake().decide(plain("/ws")), Admission)


def test_an_unknown_path_is_404_naming_the_endpoints() -> None:
    """An upgrade or a page load to another path is refused with 404 and says where the endpoints are."""
    for req in (upgrade("/nope"), plain("/nope")):
        decision = Handshake().decide(req)
        assert isinstance(decision, Response) and decision.status_code == 404
        assert b"/ and /ws" in decision.body


def test_gates_run_in_order_and_the_first_refusal_wins() -> None:
    """Each gate sees the admission the earlier ones wrote; a refusal stops the rest."""
    seen: list[str] = []

    def who(req: Request, admission: Admission) -> Response | None:
        seen.append("who")
        admission.identity = req.headers.get("X-Who")
        return None

    def only_alice(req: Request, admission: Admission) -> Response | None:
        seen.append("only_alice")
        return None if admission.identity == "alice" else response(403, "Forbidden\n")

    def never(req: Request, admission: Admission) -> Response | None:
        seen.append("never")
        return None

    handshake = Handshake(gates=[who, only_alice, never])
    admitted = handshake.decide(upgrade("/ws", ("X-Who", "alice")))
    assert isinstance(admitted, Admission) and admitted.identity == "alice"
    assert seen == ["who", "only_alice", "never"]
    seen.clear()
    refused = handshake.decide(upgrade("/", ("X-Who", "mallory")))
    assert isinstance(refused, Response) and refused.status_code == 403
    assert seen == ["who", "only_alice"]


def test_an_upgrade_is_recognised_whatever_the_case_of_its_header() -> None:
    """Upgrade: WebSocket and websocket alike."""
    assert is_upgrade(Request("/", Headers([("Upgrade", "WebSocket")])))
    assert not is_upgrade(plain("/"))


def test_a_guarded_route_is_judged_by_the_gates_and_gets_their_admission() -> None:
    """A guarded route's handler runs only past the gates, and sees who they admitted; an unguarded one skips them."""

    def key_only(req: Request, admission: Admission) -> Response | None:
        if req.headers.get("X-Key") != "k":
            return response(401, "Unauthorized: no key\n")
        admission.identity = "keyholder"
        return None

    def whoami(req: Request, admission: Admission) -> Response:
        return json_response(200, {"identity": admission.identity})

    routes = Routes()
    routes.add("/whoami", whoami, guarded=True)
    routes.add("/open", whoami)
    handshake = Handshake(routes, gates=[key_only])
    refused = handshake.decide(plain("/whoami"))
    assert isinstance(refused, Response) and refused.status_code == 401
    admitted = handshake.decide(Request("/whoami", Headers([("X-Key", "k")])))
    assert isinstance(admitted, Response) and json.loads(admitted.body) == {"identity": "keyholder"}
    open_answer = handshake.decide(plain("/open"))
    assert isinstance(open_answer, Response) and json.loads(open_answer.body) == {"identity": None}


def test_routes_refuse_a_taken_path_and_a_relative_one() -> None:
    """Two handlers for one path, or a path without '/', are mistakes caught when they are added."""
    routes = Routes()
    routes.add("/a", health)
    with pytest.raises(ValueError, match="already"):
        routes.add("/a", health)
    with pytest.raises(ValueError, match="begins with"):
        routes.add("a", health)


# -- over a socket ---------------------------------------------------------------------


async def http_get(port: int, path: str) -> tuple[int, dict[str, str], bytes]:
    """One plain HTTP/1.1 GET; the status, headers and body (the server closes after one answer)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
        async with asyncio.timeout(WAIT):
            raw = await reader.read()
    finally:
        writer.close()
    head, _, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, body


async def test_a_route_answers_plain_http_on_the_websocket_port(start_server: StartServer) -> None:
    """A server with a /healthz route answers a plain GET on the same port, and still serves WebSocket calls."""
    server = await start_server()
    server.handshake.routes.add("/healthz", health)
    status, headers, body = await http_get(server.port, "/healthz")
    assert (status, json.loads(body)) == (200, {"status": "ok"})
    assert headers["Connection"] == "close"
    async with connect(server.url) as ws:
        assert (await rpc(ws, "multiply", [3, 4]))["result"] == 12


async def test_a_page_load_of_an_endpoint_without_a_route_is_426(start_server: StartServer) -> None:
    """GET /ws without Upgrade, no route: websockets' own answer, 426 Upgrade Required."""
    server = await start_server()
    status, _, _ = await http_get(server.port, "/ws")
    assert status == 426


async def test_a_gate_s_refusal_reaches_the_client_and_runs_no_tool(start_server: StartServer) -> None:
    """A gate answering 401 refuses the upgrade before any message is read."""
    server = await start_server()

    def no_entry(req: Request, admission: Admission) -> Response | None:
        return response(401, "Unauthorized: no credential\n", headers=[("WWW-Authenticate", "Bearer")])

    server.handshake.gates.append(no_entry)
    with pytest.raises(InvalidStatus) as refused:
        async with connect(server.url):
            pass
    assert refused.value.response.status_code == 401
    assert refused.value.response.headers["WWW-Authenticate"] == "Bearer"


async def test_a_gate_or_a_route_that_raises_gets_a_500_and_the_server_serves_on(
    start_server: StartServer, caplog: pytest.LogCaptureFixture
) -> None:
    """A failing gate or route handler: HTTP 500 to the caller, its traceback logged, the next caller served."""
    server = await start_server()
    failing = True

    def broken(req: Request, admission: Admission) -> Response | None:
        if failing:
            raise OverflowError("int too large to convert to float")
        return None

    def broken_route(req: Request, admission: Admission) -> Response:
        raise RuntimeError("the route broke")

    server.handshake.gates.append(broken)
    server.handshake.routes.add("/broken", broken_route)
    with caplog.at_level(logging.ERROR, "rpc_server"):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(server.url):
                pass
        status, _, body = await http_get(server.port, "/broken?secret=x")
    assert refused.value.response.status_code == 500 and (status, body) == (500, b"Internal Server Error\n")
    failures = [r for r in caplog.records if r.getMessage().startswith("the handshake failed")]
    assert [r.getMessage() for r in failures] == [
        "the handshake failed on a request for /ws",
        "the handshake failed on a request for /broken",
    ]
    assert all(r.exc_info is not None for r in failures)
    failing = False
    async with connect(server.url) as ws:
        assert (await rpc(ws, "multiply", [3, 4]))["result"] == 12


async def test_the_admission_decides_what_the_connection_may_call(start_server: StartServer) -> None:
    """allowed() from the handshake applies to every call: a single call, a batch member, the seed's shape."""
    registry = Registry()
    registry.add(lambda a, b: a * b, name="multiply")
    registry.add(lambda a, b: a + b, name="add")
    server = await start_server(registry)

    def only_multiply(req: Request, admission: Admission) -> Response | None:
        admission.identity = "tester"
        admission.allowed = lambda method: method == "multiply"
        return None

    server.handshake.gates.append(only_multiply)
    forbidden: dict[str, Any] = {"code": codes.FORBIDDEN, "message": "Forbidden", "data": "not allowed to call 'add'"}
    async with connect(server.url) as ws:
        assert await rpc(ws, "multiply", [3, 4]) == {"jsonrpc": "2.0", "result": 12, "id": 1}
        assert await rpc(ws, "add", [3, 4]) == {"jsonrpc": "2.0", "error": forbidden, "id": 1}
        await ws.send("[" + request("add", [1, 2], 7) + "," + request("multiply", [2, 2], 8) + "]")
        async with asyncio.timeout(WAIT):
            batch = json.loads(await ws.recv())
        assert batch == [
            {"jsonrpc": "2.0", "error": forbidden, "id": 7},
            {"jsonrpc": "2.0", "result": 4, "id": 8},
        ]
        await ws.send(json.dumps({"func": "add", "args": [1, 2]}))
        async with asyncio.timeout(WAIT):
            assert json.loads(await ws.recv()) == {"error": "Forbidden: not allowed to call 'add'"}
        (connection,) = server.connections
        assert connection.session.identity == "tester"


def test_the_endpoint_is_the_url_the_client_named_without_its_query() -> None:
    """ws://Host/path from the request, never its query (a credential may be there); wss behind a TLS proxy."""
    assert endpoint_of(Request("/ws?access_token=secret", Headers({"Host": "example.org:8000"}))) == (
        "ws://example.org:8000/ws"
    )
    proxied = Request("/", Headers({"Host": "rpc.example.org", "X-Forwarded-Proto": "https"}))
    assert endpoint_of(proxied) == "wss://rpc.example.org/"
    assert endpoint_of(proxied, "/ws") == "wss://rpc.example.org/ws"
    assert endpoint_of(Request("/ws", Headers())) is None
    assert endpoint_of(Request("/ws", Headers({"Host": "evil/x"}))) is None


async def test_a_client_offering_none_of_the_served_subprotocols_speaks_plain_json_rpc(
    start_server: StartServer,
) -> None:
    """With a subprotocol served, a client offering none (or another) still connects, without one."""
    server = await start_server()
    server.subprotocols["echo"] = lambda: lambda text, session: text.encode()
    async with connect(server.url, subprotocols=["echo"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "echo"
        await ws.send("hello")
        assert await ws.recv() == "hello"
        assert [c.session.endpoint for c in server.connections] == [server.url]
    for offered in (None, ["chat"]):
        async with connect(server.url, subprotocols=offered) as ws:  # type: ignore[arg-type]
            assert ws.subprotocol is None
            assert (await rpc(ws, "multiply", [3, 4]))["result"] == 12
