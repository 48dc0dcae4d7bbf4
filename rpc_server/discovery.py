"""What a server offers to be found and used: its OpenRPC document, the playground page, and MCP.

:func:`install` adds, to a server's handshake and subprotocols:

- ``GET /openrpc.json``: the OpenRPC document that ``rpc.discover`` answers
  (:mod:`.openrpc`), its ``servers`` naming the WebSocket endpoint at the
  host the request named. The server's gates judge this request as they
  judge an upgrade (a credential in the query string or a header works the
  same), and the document lists only the tools the admitted caller may call;
- ``GET /`` and ``GET /playground``, for requests that are not WebSocket
  upgrades: the playground, a page that connects back to the same origin,
  lists the tools, and calls them from forms built from their schemas.
  Its script and style come from ``/playground/playground.js`` and
  ``.css``; nothing is loaded from elsewhere, so it works offline. Its
  WebSocket is same-origin: an ``origins`` list must name the server's own
  origin for it to connect, and nothing here widens that list;
- the subprotocol ``mcp``: a connection that negotiates it is served by an
  :class:`~.mcp.McpSession` of its own.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from typing import Protocol

from websockets.http11 import Request, Response

from .connection import Handler
from .dispatch import Dispatcher
from .handshake import Admission, Handshake, endpoint_of, json_response, response
from .mcp import SUBPROTOCOL, McpSession
from .session import Session, TopicDirectory

__all__ = ["OPENRPC_PATH", "PAGE_PATHS", "Discoverable", "install"]

OPENRPC_PATH = "/openrpc.json"
PAGE_PATHS = ("/", "/playground")
_ASSETS = {
    "/playground/playground.js": ("playground.js", "text/javascript; charset=utf-8"),
    "/playground/playground.css": ("playground.css", "text/css; charset=utf-8"),
}
# The page needs its own origin and nothing else: no inline script, no third party, no framing.
_PAGE_HEADERS = [
    (
        "Content-Security-Policy",
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
]


class Discoverable(Protocol):
    """What :func:`install` needs of a server; :class:`~.server.RpcServer` has it."""

    @property
    def dispatcher(self) -> Dispatcher: ...

    @property
    def handshake(self) -> Handshake: ...

    @property
    def subprotocols(self) -> dict[str, Callable[[], Handler]]: ...

    @property
    def topics(self) -> TopicDirectory: ...


def _asset(name: str) -> bytes:
    return resources.files("rpc_server").joinpath("playground", name).read_bytes()


def _static(body: bytes, content_type: str) -> Callable[[Request, Admission], Response]:
    def serve(request: Request, admission: Admission) -> Response:
        return response(200, body, content_type, _PAGE_HEADERS)

    return serve


def install(server: Discoverable) -> None:
    """Add the OpenRPC document, the playground and MCP to ``server`` (see the module docstring)."""

    def openrpc_json(request: Request, admission: Admission) -> Response:
        # Guarded: the gates have judged this request as an upgrade; list what they allow.
        session = Session(topics=server.topics)
        session.allowed = admission.allowed
        return json_response(200, server.dispatcher.describe(session, url=endpoint_of(request, "/ws")))

    routes = server.handshake.routes
    routes.add(OPENRPC_PATH, openrpc_json, guarded=True)
    page = _static(_asset("index.html"), "text/html; charset=utf-8")
    for path in PAGE_PATHS:
        routes.add(path, page)
    for path, (name, content_type) in _ASSETS.items():
        routes.add(path, _static(_asset(name), content_type))
    server.subprotocols[SUBPROTOCOL] = lambda: McpSession(server.dispatcher)
