"""A server with what running it as a service takes: health, readiness, metrics, access log, broker.

:class:`Service` wraps a :class:`~.server.RpcServer` that is not yet started,
adds the HTTP routes (``/healthz``, ``/readyz``, ``/metrics``), the call
observers (metrics, access log) and the event broker, and starts and stops
them in order around the server: the broker connects before the server
listens, and outlives it while it drains.

>>> service = Service(RpcServer(port=0), broker="redis://127.0.0.1:6379/0")  # doctest: +SKIP
>>> async with service:  # doctest: +SKIP
...     print(service.server.url)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from types import TracebackType

from websockets.http11 import Request, Response

from . import health
from .broker import Broker
from .handshake import Admission, is_upgrade, refuse, response
from .logs import AccessLog
from .metrics import install as install_metrics
from .server import RpcServer

__all__ = ["Service"]

logger = logging.getLogger("rpc_server")
# What a refused upgrade is told during the drain's grace: try again (on another replica, through a balancer).
_RETRY_AFTER_S = 1


def _metrics_off(request: Request, admission: Admission) -> Response:
    return response(404, "Not Found: this server counts nothing (--no-metrics)\n")


class Service:
    """See the module docstring.

    Args:
        server: the server, not yet started.
        broker: a Redis URL to relay topics through (:mod:`.broker`); None: topics stay in this process.
        metrics: count, and answer ``/metrics`` (``--no-metrics`` turns both off).
        access_log: log one line per call (:class:`~.logs.AccessLog`).
        worker: this process's number among the workers (:mod:`.supervisor`):
            it then binds with ``SO_REUSEPORT``.
        metrics_dir: with workers, the folder where they share their counts.
        drain_grace_s: on a graceful stop, how long the server keeps listening
            before it drains: /readyz answers 503 and new upgrades get 503 with
            ``Retry-After``, so that a balancer's readiness probe has time to
            send new clients elsewhere; open connections are served as before.
    """

    def __init__(
        self,
        server: RpcServer,
        *,
        broker: str | None = None,
        metrics: bool = True,
        access_log: bool = False,
        worker: int | None = None,
        metrics_dir: str | None = None,
        drain_grace_s: float = 0.0,
    ) -> None:
        self.server = server
        self.draining = False
        self.drain_grace_s = drain_grace_s
        server.handshake.gates.insert(0, self._refuse_while_draining)
        self.broker = Broker(broker, server.topics) if broker else None
        health.install(server.handshake.routes, [self._draining, self._broker_down])
        self.meter = install_metrics(server, shared_dir=metrics_dir, worker=worker) if metrics else None
        if not metrics:
            server.handshake.routes.add("/metrics", _metrics_off)
        if access_log:
            server.dispatcher.observe(AccessLog(known=server.dispatcher.serves))
        if worker is not None:
            server.reuse_port = True
        self._sharing: asyncio.Task[None] | None = None

    def _draining(self) -> str | None:
        return "draining" if self.draining or self.server.draining or self.server.closing else None

    def _broker_down(self) -> str | None:
        if self.broker is None or self.broker.available:
            return None
        return "the event broker is unreachable"

    def _refuse_while_draining(self, request: Request, admission: Admission) -> Response | None:
        if not self.draining or not is_upgrade(request):  # a scrape of /metrics still gets its answer
            return None
        headers = [("Retry-After", str(_RETRY_AFTER_S))]
        return refuse(503, "the server is shutting down: connect again", headers, peer=admission.peer)

    async def start(self) -> None:
        """Connect the broker (one try; it retries in the background), then start the server."""
        if self.broker is not None:
            await self.broker.start()
        await self.server.start()
        if self.meter is not None and self.meter.shared_dir is not None:
            # Once now: a scrape right after every worker says it listens already sees them all.
            self.meter.write()
            self._sharing = asyncio.create_task(self.meter.share(), name="rpc metrics sharing")

    async def drain(self, timeout_s: float | None = None) -> None:
        """Stop gracefully: /readyz answers 503 from now; after ``drain_grace_s`` the server drains
        (:meth:`RpcServer.drain`), then the broker.

        Cancelling it (a second signal) leaves the server as it is: ``server.abort()`` cuts it.
        """
        self.draining = True
        if self.drain_grace_s > 0:
            logger.info("draining: /readyz answers 503; still listening for %g s (--drain-grace)", self.drain_grace_s)
            await asyncio.sleep(self.drain_grace_s)
        await self.server.drain(timeout_s)
        await self._stop_the_rest()

    async def close(self) -> None:
        """Stop at once: /readyz answers 503 from now; the server closes (calls cancelled), then the broker."""
        self.draining = True
        self.server.close()
        await self.server.wait_closed()
        await self._stop_the_rest()

    async def _stop_the_rest(self) -> None:
        if self._sharing is not None:
            self._sharing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sharing
        if self.broker is not None:
            await self.broker.close()

    async def __aenter__(self) -> Service:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.close()
