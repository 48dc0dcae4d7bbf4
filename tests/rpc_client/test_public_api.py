"""The declared public surface of rpc_client, and the exception tree its errors module draws."""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
from pathlib import Path

import rpc_client
from rpc_client import Client, SyncClient, errors

PUBLIC = {
    "AuthenticationError",
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
    "InvalidURL",
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
    "SyncBatch",
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
    "credentials",
    "errors",
    "exchange",
    "memory",
    "messages",
    "pending",
    "progress",
    "push",
    "session",
    "sharedloop",
    "streams",
    "subscription",
    "sync",
    "transport",
    "url",
    "websocket",
    "websockets_asyncio",
]

PACKAGE = Path(rpc_client.__file__).parent

# What batch, streams and subscription used to reach into the client for (issue 8).
CLIENT_PRIVATES = {
    "_connection",
    "_exchange",
    "_cancel_on_server",
    "_send_in_background",
    "_seconds",
    "_pending",
    "_transport",
    "_send_batch",
}

# The public members of Client that SyncClient cannot have, each with why.
ASYNC_ONLY = {
    "connect": "connect_sync() returns a connected SyncClient",
    "__aenter__": "SyncClient is used with 'with', not 'async with'",
    "__aexit__": "SyncClient is used with 'with', not 'async with'",
}
SYNC_ONLY = {
    "__enter__": "the blocking counterpart of __aenter__",
    "__exit__": "the blocking counterpart of __aexit__",
}


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


def _imports(module: str) -> set[str]:
    """The rpc_client modules that ``module`` imports, at any level of its code (TYPE_CHECKING blocks included)."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                found.add(node.module.split(".")[0])
            else:
                found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("rpc_client."):
            found.add(node.module.split(".")[1])
    return found & set(MODULES)


def test_the_modules_import_each_other_without_a_cycle():
    """The package's modules form a graph with no cycle: each depends downward only (issue 8)."""
    graph = {name: _imports(name) for name in MODULES}
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> None:
        assert name not in path, f"import cycle: {' -> '.join([*path, name])}"
        if name in done:
            return
        for imported in graph[name]:
            visit(imported, [*path, name])
        done.add(name)

    for name in MODULES:
        visit(name, [])


def test_batches_streams_and_subscriptions_know_the_client_only_as_an_exchange():
    """batch, streams and subscription import neither the client nor its session, and touch no private name."""
    for name in ("batch", "streams", "subscription"):
        assert not {"client", "session"} & _imports(name), name
        tree = ast.parse((PACKAGE / f"{name}.py").read_text())
        reached = [
            f"{ast.unparse(node.value)}.{node.attr}"
            for node in ast.walk(tree)
            if isinstance(node, ast.Attribute)
            and node.attr in CLIENT_PRIVATES
            and not (isinstance(node.value, ast.Name) and node.value.id == "self")
        ]
        assert not reached, (name, reached)


def _surface(cls: type) -> dict[str, list[tuple[str, object, object]] | str]:
    """The public methods (with their parameters) and properties of a class."""
    members: dict[str, list[tuple[str, object, object]] | str] = {}
    for name, member in inspect.getmembers(cls):
        if name.startswith("_") and name not in ("__aenter__", "__aexit__", "__enter__", "__exit__"):
            continue
        if isinstance(member, property):
            members[name] = "property"
        elif inspect.isfunction(member):
            parameters = list(inspect.signature(member).parameters.values())[1:]
            members[name] = [(p.name, p.kind, p.default) for p in parameters]
    return members


def test_sync_client_offers_what_client_offers_with_the_same_parameters():
    """Client and SyncClient have the same public methods and properties, with the same parameters, bar the listed."""
    async_surface, sync_surface = _surface(Client), _surface(SyncClient)
    assert set(async_surface) - set(sync_surface) == set(ASYNC_ONLY)
    assert set(sync_surface) - set(async_surface) == set(SYNC_ONLY)
    for name in set(async_surface) & set(sync_surface):
        assert async_surface[name] == sync_surface[name], name
