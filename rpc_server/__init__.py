"""Serve Python functions as JSON-RPC 2.0 methods over one persistent WebSocket.

>>> from rpc_server import Registry, RpcServer
>>> registry = Registry()
>>> @registry.tool
... def greet(name: str) -> str:
...     return f"Hello, {name}"

Then ``async with RpcServer(registry, port=0) as server: ...``. The layers:
:mod:`.protocol` (wire format), :mod:`.dispatch` (message in, response out, no
I/O), :mod:`.registry` and :mod:`.schema` (tools and their params),
:mod:`.server` (WebSocket), :mod:`.cli` (the command line).
"""

from __future__ import annotations

from . import codes
from .dispatch import Dispatcher
from .errors import InvalidParamsError, RpcServerError, ToolDefinitionError, ToolError
from .registry import Kind, Registry, Tool
from .server import RpcServer
from .session import Context, Session
from .tools import builtin_tools
from .topics import Topics, builtin_topics

__all__ = [
    "Context",
    "Dispatcher",
    "InvalidParamsError",
    "Kind",
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
