"""The servers this project is measured against, each run as its own process by the harness.

Each prints one line, ``listening on ws://HOST:PORT/PATH``, once it accepts
connections, and stops on SIGTERM or SIGINT:

- ``echo_server.py``: the limit, a bare ``websockets`` server that answers each frame with itself;
- ``picows_echo.py``: the load generator's ceiling, a bare picows echo server;
- ``fastapi_peer.py``: the seed's stack, FastAPI under uvicorn, ``{"func", "args"}`` in, ``{"result"}`` out;
- ``node_peer/``: Node's ``rpc-websockets`` with a ``multiply`` method (installed by the harness).
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

__all__ = ["run_peer"]

Serve = Callable[[str, int, bool], Coroutine[Any, Any, None]]


def run_peer(serve_until_stopped: Serve, description: str | None, argv: list[str] | None = None) -> None:
    """The command line every peer shares: ``--host``, ``--port`` (0: a free one), ``--compression``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--compression", action="store_true", help="negotiate permessage-deflate")
    args = parser.parse_args(argv)
    asyncio.run(serve_until_stopped(args.host, args.port, args.compression))
