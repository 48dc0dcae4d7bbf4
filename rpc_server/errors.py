"""The exceptions of ``rpc_server``, under one base.

.. code-block:: text

    RpcServerError
     ├── ToolError            raised by a tool: answered as a JSON-RPC error
     │    └── InvalidParamsError   the params do not fit the tool (-32602)
     ├── ToolDefinitionError  a tool or its schema cannot be registered
     └── ConfigError          the server cannot start as configured (a key file that cannot
          │                   be read, a malformed origin); also a ValueError
          └── UnguardedAddressError   an address other machines can reach, with no credential

``ToolError`` is also a :class:`jsonrpcserver.exceptions.JsonRpcError`, so code
written for jsonrpcserver that catches or raises that class works unchanged.
"""

from __future__ import annotations

from typing import Any

from jsonrpcserver.exceptions import JsonRpcError
from jsonrpcserver.sentinels import NODATA

from . import codes

__all__ = [
    "NODATA",
    "ConfigError",
    "InvalidParamsError",
    "RpcServerError",
    "ToolDefinitionError",
    "ToolError",
    "UnguardedAddressError",
]


class RpcServerError(Exception):
    """Base class of every exception this package raises."""


class ToolError(RpcServerError, JsonRpcError):
    """A tool's failure that the caller should see, with its code and data.

    Args:
        code: the JSON-RPC error code; application codes live in :mod:`.codes`.
        message: a short sentence; defaults to the standard message of ``code``.
        data: optional detail; omitted from the response when not given.
    """

    def __init__(self, code: int, message: str | None = None, data: Any = NODATA) -> None:
        message = message if message is not None else codes.MESSAGES.get(code, "Server error")
        JsonRpcError.__init__(self, code, message, data)
        RpcServerError.__init__(self, message)

    def __str__(self) -> str:
        if self.data is NODATA:
            return f"{self.message} ({self.code})"
        return f"{self.message} ({self.code}): {self.data}"


class InvalidParamsError(ToolError):
    """The params do not fit the tool; ``data`` says which one and why."""

    def __init__(self, data: Any = NODATA) -> None:
        super().__init__(codes.INVALID_PARAMS, None, data)


class ToolDefinitionError(RpcServerError):
    """A tool cannot be registered: a clash of names, or a schema that does not compile."""


class ConfigError(RpcServerError, ValueError):
    """The server cannot start as configured; the message says what to change."""


class UnguardedAddressError(ConfigError):
    """A server would listen where other machines can reach it, with no credential: anyone could call every tool.

    Args:
        host: the address asked for.
        fix: how to go on, in the caller's terms (the library's arguments, the command line's flags).
    """

    def __init__(self, host: str, fix: str) -> None:
        self.host = host
        super().__init__(
            f"refusing to listen on {host or 'every address'} with no credential, where anyone who can reach it "
            f"could call every tool: {fix}"
        )
