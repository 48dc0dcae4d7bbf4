"""What the server decides about each opening request; no I/O.

Every connection starts with one HTTP request. Before any protocol code runs,
the server decides here, in this order:

1. A request that is not a WebSocket upgrade is plain HTTP: a :class:`Routes`
   handler answers it (health, metrics, documents, pages) for GET and HEAD
   (without the body), other methods get 405 with ``Allow``; a route added
   with ``guarded=True`` is judged by the gates first, as an upgrade is
   (step 3), and its handler gets their admission. On an endpoint with no
   route, websockets' own check answers it (426 Upgrade Required).
2. An upgrade to a path other than the endpoints is 404.
3. Each :data:`Gate` in turn may refuse the upgrade with a response of its
   own (a full server: 503; a browser from a foreign origin: 403; a missing
   credential: 401), a :class:`Refusal` that says why (the connection counts
   refusals by reason for the metrics), or write down what it learnt in the connection's
   :class:`Admission` (who the caller is, what it may call, until when).
4. Otherwise the upgrade is accepted; the connection then applies the
   admission to its session.

Each gate is a small function that sees the request before the next one, the
way geth's JWT handler and jsonrpsee's HTTP middleware wrap the handler behind
them, so a refused caller never reaches the dispatcher.
"""

from __future__ import annotations

import dataclasses
import email.utils
import http
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import orjson
from websockets.datastructures import Headers
from websockets.http11 import Request, Response

__all__ = [
    "PATHS",
    "REFUSALS",
    "Admission",
    "Gate",
    "Handler",
    "Handshake",
    "Refusal",
    "Routes",
    "endpoint_of",
    "is_upgrade",
    "json_response",
    "path_of",
    "peer_name",
    "reason_of",
    "refuse",
    "response",
]

logger = logging.getLogger("rpc_server")

# The WebSocket endpoints: the seed's /ws, and / for clients that name no path.
PATHS = ("/", "/ws")


@dataclass(slots=True)
class Admission:
    """What the gates learnt about a caller whose upgrade they let through.

    The transport fills in what it knows before the gates run (``peer``,
    ``certificate``); the gates fill in the rest.

    Attributes:
        identity: who the caller is, for logs (a key's name, a token's ``sub``,
            a certificate's subject); None when no credential is configured.
        allowed: which methods it may call (None: all of them).
        expires_at: when its credential expires, in seconds since the epoch;
            the connection is closed then. None: it does not expire.
        peer: the caller's address, ``host:port``, for logs.
        certificate: the client's TLS certificate, as :meth:`ssl.SSLSocket.getpeercert`
            gives it, when the server asked for one (mutual TLS).
    """

    identity: str | None = None
    allowed: Callable[[str], bool] | None = None
    expires_at: float | None = None
    peer: str | None = None
    certificate: dict[str, Any] | None = None


# Why an upgrade was refused: a foreign web page, a missing or wrong credential, a
# server at its limits (or shutting down), or a request that is no valid WebSocket handshake.
REFUSALS = ("origin", "auth", "limit", "invalid")


def reason_of(status: int) -> str:
    """The reason a refusal with ``status`` stands for, when who refused does not say."""
    if status in (401, 403):
        return "auth"
    if status in (429, 503):
        return "limit"
    return "invalid"


@dataclass
class Refusal(Response):
    """A response refusing an upgrade, and why: one of :data:`REFUSALS` (the metrics count by it).

    :func:`refuse` makes one; :meth:`Handshake.judge` turns a gate's plain
    :class:`Response` into one, its reason read from its status.
    """

    reason: str = "invalid"

    def __post_init__(self) -> None:
        if self.reason not in REFUSALS:  # a label value: the series stay bounded
            raise ValueError(f"a refusal's reason is one of {', '.join(REFUSALS)}, not {self.reason!r}")

    @classmethod
    def of(cls, answer: Response, reason: str | None = None) -> Refusal:
        """``answer`` as a refusal, for ``reason`` (by default, what its status stands for)."""
        if isinstance(answer, Refusal) and reason is None:
            return answer
        why = reason or reason_of(answer.status_code)
        return cls(answer.status_code, answer.reason_phrase, answer.headers, answer.body, reason=why)


# A gate refuses an upgrade with a response (a Refusal says why; a plain Response is
# read by its status), or returns None to let it through (writing what it learnt into the admission).
Gate = Callable[[Request, Admission], Response | None]
# Answers one plain HTTP request, given what is known of the caller (see Routes.add).
Handler = Callable[[Request, Admission], Response]


def peer_name(address: Any) -> str | None:
    """A socket's peer address (``getpeername()``) as logs name it, ``host:port`` or ``[v6]:port``; None if unknown."""
    if isinstance(address, tuple) and len(address) >= 2:
        host = str(address[0])
        return f"[{host}]:{address[1]}" if ":" in host else f"{host}:{address[1]}"
    return None


def path_of(request: Request) -> str:
    """The request's path without its query string (which may carry a credential, and is never logged)."""
    return request.path.partition("?")[0]


def endpoint_of(request: Request, path: str | None = None) -> str | None:
    """The WebSocket URL the client reached, as it named it (Host header), without the query; None with no Host.

    Args:
        path: the endpoint's path, for a plain HTTP request about it (``/openrpc.json``
            names ``/ws``); the request's own path when not given.
    """
    host = request.headers.get("Host")
    if not host or any(c in host for c in "/\\?#@ "):
        return None
    # Behind a TLS-terminating proxy the client spoke wss; the proxy says so.
    scheme = "wss" if request.headers.get("X-Forwarded-Proto", "").strip().lower() == "https" else "ws"
    return f"{scheme}://{host}{path if path is not None else path_of(request)}"


def is_upgrade(request: Request) -> bool:
    """Whether the request asks for a WebSocket (a browser's page load or a health check does not)."""
    return any(value.strip().lower() == "websocket" for value in request.headers.get_all("Upgrade"))


def response(
    status: int,
    body: bytes | str = b"",
    content_type: str = "text/plain; charset=utf-8",
    headers: Iterable[tuple[str, str]] = (),
) -> Response:
    """A complete HTTP/1.1 response; the connection closes after it."""
    status = http.HTTPStatus(status)
    data = body.encode() if isinstance(body, str) else body
    all_headers = Headers(
        [
            ("Date", email.utils.formatdate(usegmt=True)),
            ("Connection", "close"),
            ("Content-Length", str(len(data))),
            ("Content-Type", content_type),
            ("Cache-Control", "no-store"),
            *headers,
        ]
    )
    return Response(status.value, status.phrase, all_headers, data)


def refuse(
    status: int,
    reason: str,
    headers: Iterable[tuple[str, str]] = (),
    *,
    peer: str | None = None,
    why: str | None = None,
) -> Refusal:
    """A gate's refusal, logged once with the peer: the reason as a one-line plain-text body.

    The reason is for people and for clients to show; it must not quote a credential.

    Args:
        why: one of :data:`REFUSALS`, for the metrics; by default, what ``status`` stands for.
    """
    reason = "".join(c if c.isprintable() else "?" for c in reason)  # one line, whatever it quotes
    logger.warning("refused %s: %s", peer or "a request", reason)
    return Refusal.of(response(status, reason + "\n", headers=headers), why)


def json_response(status: int, value: Any) -> Response:
    """A response whose body is ``value`` as JSON."""
    return response(status, orjson.dumps(value), "application/json")


class Routes:
    """Handlers for plain HTTP requests, by path.

    >>> routes = Routes()
    >>> routes.add("/healthz", lambda request, admission: json_response(200, {"status": "ok"}))
    """

    def __init__(self) -> None:
        self._handlers: dict[str, tuple[Handler, bool]] = {}

    def add(self, path: str, handler: Handler, *, guarded: bool = False) -> None:
        """Answer ``GET path`` with ``handler(request, admission)``.

        Args:
            guarded: the gates judge the request first, as they judge an
                upgrade (origin, credentials...); the handler then gets their
                admission (who the caller is, what it may call). Unguarded,
                it gets only what the transport knows (the peer).

        Raises:
            ValueError: the path is taken, or does not begin with '/'.
        """
        if not path.startswith("/"):
            raise ValueError(f"a path begins with '/', not {path!r}")
        if path in self._handlers:
            raise ValueError(f"the path {path!r} already has a handler")
        self._handlers[path] = (handler, guarded)

    def get(self, path: str) -> tuple[Handler, bool] | None:
        """The handler of ``path`` and whether it is guarded, or None."""
        return self._handlers.get(path)

    def __contains__(self, path: object) -> bool:
        return path in self._handlers

    def paths(self) -> list[str]:
        return sorted(self._handlers)


class Handshake:
    """The decision for each opening request (see the module docstring).

    Args:
        routes: the plain HTTP handlers.
        gates: checked in order for each upgrade.
        paths: the WebSocket endpoints.
    """

    def __init__(self, routes: Routes | None = None, gates: Sequence[Gate] = (), paths: Sequence[str] = PATHS) -> None:
        self.routes = routes if routes is not None else Routes()
        self.gates = list(gates)
        self.paths = tuple(paths)

    def decide(self, request: Request, admission: Admission | None = None) -> Response | Admission:
        """A response that ends the exchange (an HTTP answer or a refusal), or the admission of an upgrade.

        ``admission`` holds what the transport knows of the caller (its address, its certificate).
        """
        path = path_of(request)
        upgrade = is_upgrade(request)
        admission = admission if admission is not None else Admission()
        if not upgrade:
            route = self.routes.get(path)
            if route is not None:
                if request.method not in ("GET", "HEAD"):
                    return response(
                        http.HTTPStatus.METHOD_NOT_ALLOWED,
                        f"Method Not Allowed: {path} answers GET and HEAD\n",
                        headers=[("Allow", "GET, HEAD")],
                    )
                handler, guarded = route
                refusal = self.judge(request, admission) if guarded else None
                answer = refusal if refusal is not None else handler(request, admission)
                # HEAD: the GET's status and headers (Content-Length included), no body (RFC 9110, 9.3.2).
                return dataclasses.replace(answer, body=b"") if request.method == "HEAD" else answer
        if path not in self.paths:
            return response(
                http.HTTPStatus.NOT_FOUND, f"Not Found: the WebSocket endpoints are {' and '.join(self.paths)}\n"
            )
        if not upgrade:
            return admission  # websockets' own check then answers 426 Upgrade Required
        refusal = self.judge(request, admission)
        return refusal if refusal is not None else admission

    def judge(self, request: Request, admission: Admission) -> Refusal | None:
        """Run the gates in order: the first refusal, or None when all let the request through."""
        for gate in self.gates:
            refusal = gate(request, admission)
            if refusal is not None:
                return Refusal.of(refusal)
        return None
