"""How many connections the server takes, and what it does when it is full.

Every connection holds a file descriptor. Without a limit, running out of
them made asyncio's accept loop log one traceback per failed ``accept()``
(issue 9: 73,000 of them, 32 MB, in 25 s, with 1,500 clients against 1,024
descriptors) while clients waited for nothing. So:

- at start-up the descriptor limit is raised from its soft value to its hard
  one (:func:`raise_descriptor_limit`), as servers such as nginx do;
- ``max_connections`` defaults to that limit less :data:`RESERVED_DESCRIPTORS`
  (for the listening sockets, logs, files the tools open);
- past it, a WebSocket upgrade is refused with HTTP 503 and ``Retry-After``
  (:func:`connection_gate`, the first of the handshake's gates), and a socket
  accepted beyond it by more than :data:`OVERFLOW` is cut at once, so the
  descriptors never run out;
- should they run out all the same (other code in the process using them),
  :class:`AcceptErrors` logs one warning per :data:`WARN_EVERY_S`, with no
  traceback.
"""

from __future__ import annotations

import asyncio
import http
import logging
import resource
import time
from collections.abc import Callable
from typing import Any

from websockets.http11 import Request, Response

from .handshake import Admission, Gate, response

__all__ = [
    "OVERFLOW",
    "RESERVED_DESCRIPTORS",
    "RETRY_AFTER_S",
    "WARN_EVERY_S",
    "AcceptErrors",
    "connection_gate",
    "default_max_connections",
    "raise_descriptor_limit",
]

logger = logging.getLogger("rpc_server")

RESERVED_DESCRIPTORS = 100
# Sockets past max_connections still accepted, to answer their upgrade with 503 rather than cut them.
OVERFLOW = 32
RETRY_AFTER_S = 5
WARN_EVERY_S = 5.0
_ACCEPT_FAILED = "socket.accept() out of system resource"


def raise_descriptor_limit() -> int:
    """Raise the soft limit on open files to the hard one; returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 2**20  # what Linux allows by default (fs.nr_open)
    if soft != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError) as exc:  # a sandbox may forbid it: keep the soft limit
            logger.warning("could not raise the open-files limit from %d to %d: %s", soft, hard, exc)
    return hard if soft == resource.RLIM_INFINITY else soft


def default_max_connections(descriptors: int) -> int:
    """The connections a server with ``descriptors`` open files can hold and still answer the ones after."""
    return max(1, descriptors - RESERVED_DESCRIPTORS)


def connection_gate(
    sockets: Callable[[], int], connections: Callable[[], int], limit: Callable[[], int | None]
) -> Gate:
    """A handshake gate refusing upgrades with 503 while ``connections()`` is at ``limit()``.

    ``connections()`` counts the WebSocket connections open (a burst of
    clients still in their handshakes must not refuse each other), and is only
    asked when ``sockets()``, every socket held, shows the limit may be near.
    """

    def gate(request: Request, admission: Admission) -> Response | None:
        most = limit()
        if most is None or sockets() <= most or connections() < most:
            return None
        return response(
            http.HTTPStatus.SERVICE_UNAVAILABLE,
            f"Service Unavailable: the server holds its limit of {most} connections; retry later\n",
            headers=[("Retry-After", str(RETRY_AFTER_S))],
        )

    return gate


class AcceptErrors:
    """A loop exception handler that turns the flood of failed accepts into one warning now and then.

    Every other context goes on to the handler that was there before (or the
    loop's default one).
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, count: Callable[[], int]) -> None:
        self.previous = loop.get_exception_handler()
        self.count = count
        self.last = -WARN_EVERY_S
        self.missed = 0

    @classmethod
    def install(cls, loop: asyncio.AbstractEventLoop, count: Callable[[], int]) -> None:
        """Put one on ``loop``, unless one is there already."""
        if not isinstance(loop.get_exception_handler(), cls):
            loop.set_exception_handler(cls(loop, count))

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        if context.get("message") != _ACCEPT_FAILED:
            if self.previous is not None:
                self.previous(loop, context)
            else:
                loop.default_exception_handler(context)
            return
        now = time.monotonic()
        if now - self.last < WARN_EVERY_S:
            self.missed += 1
            return
        exc = context.get("exception")
        also = f" ({self.missed} more since the last warning)" if self.missed else ""
        logger.warning(
            "cannot accept connections: %s; %d open. Raise the open-files limit or lower --max-connections%s",
            getattr(exc, "strerror", None) or exc,
            self.count(),
            also,
        )
        self.last, self.missed = now, 0
