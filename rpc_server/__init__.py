"""Serve Python functions as JSON-RPC 2.0 methods over one persistent WebSocket.

>>> from rpc_server import Registry, RpcServer
>>> registry = Registry()
>>> @registry.tool
... def greet(name: str) -> str:
...     return f"Hello, {name}"

Then ``async with RpcServer(registry, port=0) as server: ...``. The layers,
from the bottom: :mod:`.protocol` (wire format), :mod:`.config` (the limits),
:mod:`.session` and :mod:`.context` (per-connection state, what a tool sees),
:mod:`.schema` and :mod:`.registry` (tools and their params), :mod:`.topics`,
:mod:`.methods` (the ``rpc.*`` methods), :mod:`.dispatch` (message in,
response out, no I/O), :mod:`.handshake` (the opening request: HTTP routes,
gates, admission; no I/O), :mod:`.auth`, :mod:`.origins` and :mod:`.tls`
(who may connect and what they may call), :mod:`.connection` (one socket),
:mod:`.server` (listening), :mod:`.cli` (the command line).
"""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    # jsonrpcserver 5.0.9 reads its schema with a deprecated importlib call as it is
    # imported. Not the importer's fault: silenced here, or under -W error it would stop
    # every pytest run in an environment where this package (and its pytest11 plugin) is installed.
    warnings.filterwarnings("ignore", r"(read|open)_text is deprecated", DeprecationWarning)
    import jsonrpcserver  # noqa: F401

from . import codes
from .auth import Auth
from .config import Limits
from .context import Context
from .dispatch import Dispatcher
from .errors import ConfigError, InvalidParamsError, RpcServerError, ToolDefinitionError, ToolError
from .registry import Kind, Registry, Tool
from .server import RpcServer
from .session import Session
from .tools import builtin_tools
from .topics import Topics, builtin_topics

__all__ = [
    "Auth",
    "ConfigError",
    "Context",
    "Dispatcher",
    "InvalidParamsError",
    "Kind",
    "Limits",
    "Registry",
    "RpcServer",
    "RpcServerError",
    "Session",
    "Tool",
    "ToolDefinitionError",
    "ToolError",
    "Topics",
    "builtin_tools",
    "builtin_topics",
    "codes",
]
