"""The servers this project is measured against, each run as its own process by the harness.

Each prints one line, ``listening on ws://HOST:PORT/PATH``, once it accepts
connections, and stops on SIGTERM or SIGINT:

- ``echo_server.py``: the limit, a bare ``websockets`` server that answers each frame with itself;
- ``picows_echo.py``: the load generator's ceiling, a bare picows echo server;
- ``fastapi_peer.py``: the seed's stack, FastAPI under uvicorn, ``{"func", "args"}`` in, ``{"result"}`` out;
- ``node_peer/``: Node's ``rpc-websockets`` with a ``multiply`` method (installed by the harness).
"""

from __future__ import annotations

__all__: list[str] = []
