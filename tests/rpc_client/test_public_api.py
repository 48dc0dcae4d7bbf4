"""The declared public surface of rpc_client, and the exception tree its errors module draws."""

from __future__ import annotations

import builtins
import importlib

import rpc_client
from rpc_client import errors

PUBLIC = {
    "Backoff",
    "Batch",
    "BatchCall",
    "CallTimeout",
    "Client",
    "ClientClosedError",
    "ConnectError",
    "ConnectionLost",
    "Connector",
    "DEFAULT_CONNECT_TIMEOUT",
    "DEFAULT_TIMEOUT",
    "Error",
    "Event",
    "MemoryConnector",
    "MemoryTransport",
    "Ok",
    "Params",
    "ProtocolError",
    "RpcClientError",
    "RpcConnectionError",
    "RpcError",
    "StreamError",
    "Subscription",
    "SyncClient",
    "SyncSubscription",
    "Transport",
    "connect_sync",
    "unwrap",
}

MODULES = [
    "backoff",
    "batch",
    "cli",
    "client",
    "errors",
    "memory",
    "messages",
    "pending",
    "push",
    "streams",
    "subscription",
    "sync",
    "transport",
    "websocket",
]


def test_the_package_exports_exactly_its_declared_surface():
    """__all__ lists the public names, each one importable from the package."""
    assert set(rpc_client.__all__) == PUBLIC
    for name in rpc_client.__all__:
        assert getattr(rpc_client, name) is not None


def test_every_module_declares_all_and_a_docstring():
    """Each module says what it exports and what its job is."""
    for name in MODULES:
        module = importlib.import_module(f"rpc_client.{name}")
        assert module.__doc__, name
        for exported in module.__all__:
            assert hasattr(module, exported), f"{name}.{exported}"


def test_every_exception_descends_from_the_one_base_and_is_drawn_in_the_docstring():
    """All exceptions share RpcClientError, each appears in the errors docstring, and the built-in bases hold."""
    classes = [getattr(errors, name) for name in errors.__all__]
    for cls in classes:
        assert issubclass(cls, errors.RpcClientError)
        assert cls.__name__ in errors.__doc__
    assert issubclass(errors.CallTimeout, builtins.TimeoutError)
    assert issubclass(errors.ConnectionLost, builtins.ConnectionError)
    assert issubclass(errors.ConnectError, builtins.ConnectionError)
    assert issubclass(errors.StreamError, errors.ProtocolError)


def test_connection_errors_read_as_the_sentence_they_were_given():
    """A connection error's str is its message alone, although ConnectionError is an OSError."""
    exc = errors.ConnectError("cannot connect to ws://127.0.0.1:1/ws: connection refused")
    assert str(exc) == "cannot connect to ws://127.0.0.1:1/ws: connection refused"
    assert str(errors.RpcError(-32601, "Method not found")) == "Method not found (-32601)"
