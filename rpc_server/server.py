"""The server: listens, and runs one :class:`~.connection.Connection` per client.

Each connection answers a message served by plain tools at once, in the read
that brought it; a message that awaits an ``async`` tool gets a task of its
own, so a slow call never holds up the calls behind it (see
:mod:`.connection` for backpressure and closing).

Stopping: :meth:`RpcServer.close` closes every connection at once, cancelling
what runs; :meth:`RpcServer.drain` stops gracefully, answering what was read
first (the command line drains on SIGTERM and SIGINT). :mod:`.capacity`
holds the connection limit.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import ssl as _ssl
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any

from websockets.extensions.permessage_deflate import enable_server_permessage_deflate
from websockets.http11 import Request, Response
from websockets.server import ServerProtocol
from websockets.typing import Subprotocol

from . import capacity, discovery
from .auth import Auth
from .config import Limits
from .connection import BINARY_FRAME_REPLY, DRAIN_CLOSE_WAIT_S, Connection, Handler
from .dispatch import Dispatcher
from .errors import UnguardedAddressError
from .handshake import PATHS, Admission, Handshake
from .logs import redacting_logger
from .origins import OriginPolicy
from .ratelimit import RateLimiter, TokenBucket
from .registry import Registry
from .tls import TlsHandshake, certificate_gate, requires_client_certificates
from .tools import builtin_tools
from .topics import Topics, builtin_topics
from .traffic import Traffic

__all__ = ["BINARY_FRAME_REPLY", "PATHS", "RpcServer", "is_loopback"]

logger = logging.getLogger("rpc_server")
_WEBSOCKETS_LOGGER = redacting_logger()


def is_loopback(host: str) -> bool:
    """Whether only this machine can reach ``host``: ``localhost`` or a loopback address (not ``0.0.0.0``)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a name may resolve to any address


def _select_subprotocol(ws: ServerProtocol, offered: Sequence[Subprotocol]) -> Subprotocol | None:
    """Ours that the client offers, first in our order; else none: the client speaks plain JSON-RPC.

    websockets' default refuses (400) a client that offers none of the server's
    subprotocols, which would shut out every plain client once one is served.
    """
    for name in ws.available_subprotocols or ():
        if name in offered:
            return name
    return None


class RpcServer:
    """A JSON-RPC 2.0 server on a WebSocket, serving the tools of a registry.

    Use as ``async with RpcServer(registry, port=0) as server:``; ``server.url``
    then names the endpoint, with the port actually bound.

    Args:
        registry: the tools to serve; the built-in tools when not given.
        host: the address to listen on.
        port: the port; 0 picks a free one.
        limits: what each connection and the server may use (:class:`~.config.Limits`).
        compression: negotiate permessage-deflate. Off by default: it cost
            27-37% of throughput on small messages here.
        topics: what clients can subscribe to; the built-in ``clock`` when not given.
        origins: the web pages (``Origin`` headers) that may connect: ``["*"]``
            for any; when not given, only this server's own pages and local
            ones (``localhost``, ``127.0.0.1``, ``[::1]``, any port). Clients
            that send no ``Origin`` (not browsers) are always accepted. See
            :mod:`.origins`.
        auth: the credentials a caller must present (:class:`~.auth.Auth`):
            API keys and/or JWTs. None: no credential is asked for.
        ssl: serve ``wss://`` with this context (:func:`~.tls.server_context`);
            one that requires client certificates makes them a credential.
        allow_unauthenticated: listen on an address other machines can reach
            with no credential at all. Without it, that is refused.

    Raises:
        ConfigError: a malformed origin; UnguardedAddressError: a reachable address with no credential.

    Attributes:
        handshake: what decides each opening request (:mod:`.handshake`): add
            HTTP routes to ``handshake.routes`` and gates to ``handshake.gates``
            before the server starts. The first gate is the connection limit's.
        max_connections: the connection limit in force (``limits.max_connections``,
            or the one derived from the descriptor limit once started).
        subprotocols: handlers for WebSocket subprotocols a client may ask for,
            by name: each is called once per connection that negotiated it and
            returns what answers that connection's messages. A client that
            offers none of them speaks plain JSON-RPC.

    Out of the box (:mod:`.discovery`): ``GET /openrpc.json``, the playground
    page at ``GET /`` and ``/playground``, and MCP for the subprotocol ``mcp``.
    """

    def __init__(
        self,
        registry: Registry | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 8000,
        limits: Limits | None = None,
        compression: bool = False,
        topics: Topics | None = None,
        origins: Sequence[str | None] | None = None,
        auth: Auth | None = None,
        ssl: _ssl.SSLContext | None = None,
        allow_unauthenticated: bool = False,
    ) -> None:
        if auth is None and not requires_client_certificates(ssl) and not allow_unauthenticated:
            if not is_loopback(host):
                raise UnguardedAddressError(
                    host,
                    "pass auth= (or ssl= requiring client certificates), or allow_unauthenticated=True to serve anyway",
                )
        self.limits = limits if limits is not None else Limits()
        self.registry = registry if registry is not None else builtin_tools()
        self.dispatcher = Dispatcher(self.registry, limits=self.limits)
        self.host = host
        self.compression = compression
        self.topics = topics if topics is not None else builtin_topics()
        self.origins = origins
        self.auth = auth
        self.ssl = ssl
        self.origin_policy = OriginPolicy(origins, host=host)
        # The cheap refusal first: a foreign web page is turned away before any credential is checked.
        self.handshake = Handshake(gates=[self.origin_policy.gate])
        if ssl is not None:
            self.handshake.gates.append(certificate_gate)
        if auth is not None:
            self.handshake.gates.append(auth.gate)
        self.subprotocols: dict[str, Callable[[], Handler]] = {}
        discovery.install(self)
        self.connections: set[Connection] = set()
        self.closing = False
        self._draining = False
        self.max_connections = self.limits.max_connections
        # A full server says so before any other gate does any work.
        full = capacity.connection_gate(
            lambda: len(self.connections),
            lambda: sum(1 for connection in self.connections if connection.accepted),
            lambda: self.max_connections,
        )
        self.handshake.gates.insert(0, full)
        self._rates = RateLimiter(self.limits.rate_limit_calls_per_s, self.limits.burst_calls)
        # Counts for the metrics (rpc_server.metrics sets it; None: nothing is counted).
        self.traffic: Traffic | None = None
        # Bind with SO_REUSEPORT, beside the other workers on the same port (rpc_server.supervisor).
        self.reuse_port = False
        self._port = port
        self._server: asyncio.Server | None = None

    # -- what each connection asks of its server (connection.Host) ------------

    def websocket(self) -> ServerProtocol:
        return ServerProtocol(
            # No origins: the origin policy is a gate of the handshake.
            subprotocols=list(self.subprotocols) or None,  # type: ignore[arg-type]
            select_subprotocol=_select_subprotocol,
            max_size=self.limits.max_message_bytes,
            extensions=enable_server_permessage_deflate(None) if self.compression else None,
            logger=_WEBSOCKETS_LOGGER,
        )

    def admit(self, request: Request, admission: Admission) -> Response | Admission:
        return self.handshake.decide(request, admission)

    def handler(self, subprotocol: str | None) -> Handler:
        if subprotocol is None:
            return self.dispatcher.dispatch
        return self.subprotocols[subprotocol]()

    def bucket(self, identity: str | None) -> TokenBucket | None:
        return self._rates.bucket(identity)

    def opened(self, connection: Connection) -> None:
        self.connections.add(connection)
        most = self.max_connections
        if most is not None and len(self.connections) > most + capacity.OVERFLOW:
            connection.abort()  # beyond what it can even refuse politely: keep the descriptors

    def closed(self, connection: Connection) -> None:
        self.connections.discard(connection)

    # -- lifecycle -----------------------------------------------------------

    async def start(self) -> None:
        """Bind and start accepting connections.

        It raises the process's open-files limit to its hard limit first, and
        derives ``max_connections`` from it unless the limits set one.
        """
        loop = asyncio.get_running_loop()
        descriptors = capacity.raise_descriptor_limit()
        if self.max_connections is None:
            self.max_connections = capacity.default_max_connections(descriptors)
        capacity.AcceptErrors.install(loop, lambda: len(self.connections))
        self._server = await loop.create_server(
            self._protocol, self.host, self._port, reuse_port=self.reuse_port or None
        )
        self._port = int(self._server.sockets[0].getsockname()[1])

    def _protocol(self) -> asyncio.Protocol:
        """What serves an accepted socket: its connection; with TLS, after our handshake (whose failures are seen)."""
        if self.ssl is None:
            return Connection(self)
        return TlsHandshake(lambda: Connection(self), self.ssl, self.limits.open_timeout_s, self._tls_refused)

    def _tls_refused(self, peer: str, reason: str, kind: str | None) -> None:
        # A client certificate refused is a credential refused: logged once and counted as one.
        if kind == "auth":
            logger.warning("refused %s: %s", peer, reason)
        else:
            logger.log(logging.INFO if kind else logging.DEBUG, "refused %s: %s", peer, reason)
        if kind is not None and self.traffic is not None:
            self.traffic.refused[kind] += 1

    @property
    def port(self) -> int:
        """The port bound (the real one when 0 was asked for)."""
        if self._server is None:
            raise RuntimeError("the server is not started")
        return self._port

    @property
    def url(self) -> str:
        """The endpoint, ``ws://HOST:PORT/ws`` (``wss://`` with TLS), with the port actually bound."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'wss' if self.ssl is not None else 'ws'}://{host}:{self.port}/ws"

    @property
    def draining(self) -> bool:
        """A graceful stop is under way (:meth:`drain`): a readiness check should now fail."""
        return self._draining

    def _stop_accepting(self) -> None:
        self.closing = True
        if self._server is not None:
            self._server.close()

    def close(self) -> None:
        """Stop accepting, and close every connection (code 1001, going away); calls running are cancelled."""
        self._stop_accepting()
        for connection in list(self.connections):
            connection.close()

    async def drain(self, timeout_s: float | None = None) -> None:
        """Stop gracefully: answer what was read, then close every connection with 1001, and wait for them.

        At once, the server stops accepting, stops reading from its
        connections (but their closing handshakes) and ends every
        subscription with its ``rpc.unsubscribed`` notice. The calls already
        read run on for up to ``timeout_s`` (``limits.drain_timeout_s`` when
        not given), and their answers go out; then the calls still running,
        or not yet started, are cancelled and answered -32800, data "the
        server is shutting down". Each connection then closes with 1001; a
        peer that does not answer the close within
        :data:`~.connection.DRAIN_CLOSE_WAIT_S` is cut.

        Cancelling this (a second signal, say) leaves the connections as
        they are: :meth:`abort` then cuts them.
        """
        timeout = self.limits.drain_timeout_s if timeout_s is None else timeout_s
        self._draining = True
        self._stop_accepting()
        deadline = asyncio.get_running_loop().time() + timeout
        connections = list(self.connections)
        if connections:
            await asyncio.gather(*(connection.drain(deadline) for connection in connections))
        try:
            async with asyncio.timeout(DRAIN_CLOSE_WAIT_S + 1.0):  # each cuts its peer after DRAIN_CLOSE_WAIT_S
                await self.wait_closed()
        except TimeoutError:
            self.abort()
            await self.wait_closed()

    def abort(self) -> None:
        """Stop accepting, and cut every connection at once, with no closing handshake: nothing more is answered."""
        self._stop_accepting()
        for connection in list(self.connections):
            connection.abort()

    async def wait_closed(self) -> None:
        """Wait until every connection has closed and cleaned up after itself.

        Cancelling this wait (a timeout around it, say) leaves the connections
        closing as they were, and the wait can be made again.
        """
        if self._server is not None:
            await self._server.wait_closed()
        while self.connections:
            # asyncio.wait, not gather: a cancelled wait must not cancel what it waits for.
            await asyncio.wait([c.closed for c in self.connections])

    async def serve_forever(self) -> None:
        """Serve until cancelled, starting first if need be."""
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def __aenter__(self) -> RpcServer:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
        await self.wait_closed()

    def publish(self, topic: str, event: Any) -> int:
        """Send ``event`` to every subscriber of ``topic``; returns how many there are.

        Raises:
            KeyError: the server has no such topic.
        """
        return self.topics.publish(topic, event)
