"""The exceptions of ``rpc_client``, under one base.

.. code-block:: text

    RpcClientError
     ├── InvalidURL            the URL cannot name a WebSocket server (raised by Client(url)); also a ValueError
     ├── RpcError              the server answered with a JSON-RPC error: code, message, data
     ├── ProtocolError         the server's answer is not JSON-RPC 2.0 (a call with a bad answer fails with it)
     │    └── StreamError          a streamed call's answer is not the count of the parts received
     ├── CallTimeout           no answer within the timeout; also a TimeoutError
     └── RpcConnectionError    the connection is not there; also a ConnectionError
          ├── ConnectError         it could not be opened
          │    └── AuthenticationError  the server refused it: HTTP 401 (the credential) or 403
          ├── ConnectionLost       it closed while the call was waiting; the call was not re-sent
          └── ClientClosedError    the client was closed, by its owner

A call fails with exactly one of them. ``CallTimeout`` is a :class:`TimeoutError`,
the connection errors are :class:`ConnectionError` and ``InvalidURL`` is a
:class:`ValueError`, so code that catches the built-in exceptions works unchanged.
Every message is a sentence naming what happened, e.g. ``cannot connect to ws://127.0.0.1:8000/ws: connection refused``.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "AuthenticationError",
    "CallTimeout",
    "ClientClosedError",
    "ConnectError",
    "ConnectionLost",
    "InvalidURL",
    "ProtocolError",
    "RpcClientError",
    "RpcConnectionError",
    "RpcError",
    "StreamError",
]


class RpcClientError(Exception):
    """Base class of every exception this package raises."""


class InvalidURL(RpcClientError, ValueError):
    """The URL cannot name a WebSocket server: not ``ws://`` or ``wss://``, no host, a port out of range.

    Raised where the mistake is, by ``Client(url)`` (and ``connect_sync(url)``),
    never later by a connection attempt: no retry can mend it.
    """


class RpcError(RpcClientError):
    """The server answered the call with a JSON-RPC error object.

    Args:
        code: the error's code (-32601 is "Method not found").
        message: the server's short description.
        data: the server's detail, or None when it sent none.
    """

    def __init__(self, code: int, message: str, data: Any = None) -> None:
        super().__init__(code, message, data)
        self.code = code
        self.message = message
        self.data = data

    def __str__(self) -> str:
        if self.data is None:
            return f"{self.message} ({self.code})"
        return f"{self.message} ({self.code}): {self.data}"


class ProtocolError(RpcClientError):
    """The server's answer to a call is not a valid JSON-RPC 2.0 response."""


class StreamError(ProtocolError):
    """A streamed call ended with an answer other than the count of the parts received.

    Either a part was lost on the way, or the method does not stream (its
    answer is a plain result, not a count). The parts already yielded stand.
    """


class CallTimeout(RpcClientError, TimeoutError):
    """No answer came within the call's timeout; a late answer is dropped."""


class RpcConnectionError(RpcClientError, ConnectionError):
    """The connection to the server is not there, so the call cannot go on."""


class ConnectError(RpcConnectionError):
    """The connection could not be opened: refused, unreachable, timed out or rejected.

    Args:
        message: what happened, as a sentence naming the URL.
        refused: nothing listens at that address (the connection was refused):
            the server is not running, or the port is wrong.
    """

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused

    def __reduce__(self) -> tuple[Any, ...]:
        # copy.copy (fail_all gives each waiter its own copy) rebuilds from this.
        return (_connect_error, (str(self), self.refused))


def _connect_error(message: str, refused: bool) -> ConnectError:
    return ConnectError(message, refused=refused)


class AuthenticationError(ConnectError):
    """The server refused to open the connection: HTTP 401 (no credential, or not one it accepts) or 403.

    A :class:`ConnectError`, so code that handles failing to connect handles it
    too; a client with ``reconnect=True`` does not retry it, unless its token
    provider gives a token other than the one refused (the same would be refused again).

    Args:
        message: what happened, as a sentence naming the URL and the server's reason.
        status: the HTTP status: 401 or 403.
        reason: the server's reason, one line (``token expired``), or the
            status's phrase when it gave none.
        challenge: its ``WWW-Authenticate`` header (``Bearer realm="rpc", error="invalid_token", ...``), or None.
    """

    def __init__(self, message: str, *, status: int, reason: str, challenge: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.reason = reason
        self.challenge = challenge

    def __reduce__(self) -> tuple[Any, ...]:
        return (_authentication_error, (str(self), self.status, self.reason, self.challenge))


def _authentication_error(message: str, status: int, reason: str, challenge: str | None) -> AuthenticationError:
    return AuthenticationError(message, status=status, reason=reason, challenge=challenge)


class ConnectionLost(RpcConnectionError):
    """The connection closed while the call was waiting; the call was not re-sent."""


class ClientClosedError(RpcConnectionError):
    """The client was closed (by its owner) before the call could finish."""
