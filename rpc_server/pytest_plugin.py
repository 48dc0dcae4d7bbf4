"""pytest fixtures for testing your own tools: a live server and a connected client in one argument.

Loaded by the ``pytest11`` entry point when rpc-tools is installed; where
entry points are not installed, load it with ``pytest -p rpc_server.pytest_plugin``
(or ``pytest_plugins = ["rpc_server.pytest_plugin"]`` in your top conftest.py).

What is served comes from the ``rpc_tools`` marker, else from fixtures you may override::

    @pytest.mark.rpc_tools(registry, max_batch=2)       # the registry, and RpcServer options
    async def test_greet(rpc_client):
        assert await rpc_client.call("greet", "Ada") == "Hello, Ada!"

- ``rpc_registry``: the :class:`~rpc_server.Registry` to serve; ``None`` (the
  default) serves the built-in tools.
- ``rpc_server_options``: keyword arguments for :class:`~rpc_server.RpcServer`
  (limits, topics, credentials...); ``{}`` by default.
- ``rpc_client_options``: keyword arguments for :class:`~rpc_client.Client`; ``{}``.

The marker's registry and options win over the fixtures'; markers on a
module, class and test are merged, the closest winning. ``scope="module"`` in
the marker keeps one server for every test of the module that asks for the
same registry and options (it then runs on a thread of its own, so that it
outlives each test's event loop); by default each test gets its own server.
The in-memory server is always the test's own.

The fixtures:

- ``rpc_server``: a started :class:`~rpc_server.RpcServer` on 127.0.0.1 and a
  free port, on the test's event loop (a :class:`~rpc_server.testing.ServerThread`
  under ``scope="module"``); both have ``url``, ``port`` and ``publish()``.
- ``rpc_client``: a :class:`~rpc_client.Client` connected to it.
- ``rpc_memory_server``, ``rpc_memory_client``: the same protocol with no
  socket (:class:`~rpc_server.testing.MemoryServer`), for unit tests of tools.
- ``rpc_server_thread``, ``rpc_sync_client``: for plain ``def`` tests, a
  server in a thread and a blocking :class:`~rpc_client.SyncClient`.

The async fixtures need pytest-asyncio, in ``auto`` or ``strict`` mode (in
strict mode, mark your tests ``@pytest.mark.asyncio`` as usual); they run on
the test's own event loop.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from rpc_client import Client, SyncClient, connect_sync

from .registry import Registry
from .server import RpcServer
from .testing import MemoryServer, ServerThread, running

try:
    import pytest_asyncio
except ImportError:  # the sync fixtures still work; the async ones say what is missing
    pytest_asyncio = None  # type: ignore[assignment]

__all__ = [
    "rpc_client",
    "rpc_client_options",
    "rpc_memory_client",
    "rpc_memory_server",
    "rpc_registry",
    "rpc_server",
    "rpc_server_options",
    "rpc_server_thread",
    "rpc_sync_client",
]

# The conformance kit's command-line options and hooks (pytest --pyargs rpc_server.conformance).
pytest_plugins = ["rpc_server.conformance.plugin"]

MARKER = "rpc_tools"
SCOPES = ("function", "module")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        f"{MARKER}(registry=None, *, scope='function', client_options=None, **server_options): "
        "what the rpc_server, rpc_client and related fixtures serve (see rpc_server.pytest_plugin)",
    )


@dataclass(frozen=True, slots=True)
class Setup:
    """What one test asks to be served, from its markers and the overridable fixtures."""

    registry: Registry | None
    server_options: dict[str, Any]
    client_options: dict[str, Any]
    scope: str

    def same_server(self, other: Setup) -> bool:
        return self.registry is other.registry and self.server_options == other.server_options


# -- what to serve: fixtures to override, and the marker ------------------------------------


@pytest.fixture
def rpc_registry() -> Registry | None:
    """The tools to serve; override it, or use ``@pytest.mark.rpc_tools(registry)``. None: the built-ins."""
    return None


@pytest.fixture
def rpc_server_options() -> dict[str, Any]:
    """Keyword arguments for :class:`~rpc_server.RpcServer` (limits, topics...); override it, or use the marker."""
    return {}


@pytest.fixture
def rpc_client_options() -> dict[str, Any]:
    """Keyword arguments for :class:`~rpc_client.Client` (``timeout``...); or ``client_options=`` in the marker."""
    return {}


def _marker_setup(
    registry: Any, args: tuple[Any, ...], kwargs: dict[str, Any], setup: dict[str, Any], where: str
) -> Registry | None:
    if len(args) > 1:
        raise pytest.UsageError(f"{where}: @pytest.mark.{MARKER} takes one positional argument, the registry")
    if args:
        registry = args[0]
    kwargs = dict(kwargs)
    if "registry" in kwargs:
        registry = kwargs.pop("registry")
    if "scope" in kwargs:
        setup["scope"] = kwargs.pop("scope")
    if "client_options" in kwargs:
        setup["client_options"] = {**setup["client_options"], **(kwargs.pop("client_options") or {})}
    setup["server_options"] = {**setup["server_options"], **kwargs}
    return registry  # type: ignore[no-any-return]


@pytest.fixture
def _rpc_setup(
    request: pytest.FixtureRequest,
    rpc_registry: Registry | None,
    rpc_server_options: dict[str, Any],
    rpc_client_options: dict[str, Any],
) -> Setup:
    registry = rpc_registry
    setup: dict[str, Any] = {
        "scope": "function",
        "server_options": dict(rpc_server_options),
        "client_options": dict(rpc_client_options),
    }
    # Farthest first (module, class, test), so that the closest marker wins.
    for marker in reversed(list(request.node.iter_markers(MARKER))):
        registry = _marker_setup(registry, marker.args, marker.kwargs, setup, request.node.nodeid)
    if setup["scope"] not in SCOPES:
        raise pytest.UsageError(
            f"{request.node.nodeid}: @pytest.mark.{MARKER}(scope={setup['scope']!r}): "
            f"scope must be one of {', '.join(SCOPES)}"
        )
    return Setup(registry, setup["server_options"], setup["client_options"], setup["scope"])


# -- servers shared by a module --------------------------------------------------------------


class _SharedServers:
    """The server threads of one module, each for one registry and set of options; stopped with the module."""

    def __init__(self) -> None:
        self.servers: list[tuple[Setup, ServerThread]] = []

    def get(self, setup: Setup) -> ServerThread:
        for known, server in self.servers:
            if known.same_server(setup):
                return server
        server = ServerThread(setup.registry, **setup.server_options).start()
        self.servers.append((setup, server))
        return server

    def stop(self) -> None:
        while self.servers:
            self.servers.pop()[1].stop()


@pytest.fixture(scope="module")
def _rpc_shared_servers() -> Iterator[_SharedServers]:
    shared = _SharedServers()
    yield shared
    shared.stop()


# -- socket servers and clients, blocking ---------------------------------------------------


@pytest.fixture
def rpc_server_thread(_rpc_setup: Setup, _rpc_shared_servers: _SharedServers) -> Iterator[ServerThread]:
    """A server in a thread of its own (see :class:`~rpc_server.testing.ServerThread`): for plain ``def`` tests."""
    if _rpc_setup.scope == "module":
        yield _rpc_shared_servers.get(_rpc_setup)
        return
    with ServerThread(_rpc_setup.registry, **_rpc_setup.server_options) as server:
        yield server


@pytest.fixture
def rpc_sync_client(_rpc_setup: Setup, rpc_server_thread: ServerThread) -> Iterator[SyncClient]:
    """A blocking :class:`~rpc_client.SyncClient` connected to ``rpc_server_thread``."""
    with connect_sync(rpc_server_thread.url, **_rpc_setup.client_options) as client:
        yield client


# -- socket and in-memory servers and clients, async -----------------------------------------


if pytest_asyncio is not None:
    # pytest-asyncio's own decorator: these fixtures then work in its auto and strict modes alike.
    _async_fixture = pytest_asyncio.fixture
else:

    def _async_fixture(fn: Callable[..., Any]) -> Any:
        def missing() -> None:
            pytest.fail(f"the {fn.__name__} fixture needs pytest-asyncio (pip install pytest-asyncio)", pytrace=False)

        return pytest.fixture(name=fn.__name__)(missing)


@_async_fixture
async def rpc_server(_rpc_setup: Setup, _rpc_shared_servers: _SharedServers) -> AsyncIterator[RpcServer | ServerThread]:
    """A started server on 127.0.0.1 and a free port; ``url``, ``port`` and ``publish()`` on either kind."""
    if _rpc_setup.scope == "module":
        yield _rpc_shared_servers.get(_rpc_setup)
        return
    async with running(_rpc_setup.registry, **_rpc_setup.server_options) as server:
        yield server


@_async_fixture
async def rpc_client(_rpc_setup: Setup, rpc_server: RpcServer | ServerThread) -> AsyncIterator[Client]:
    """A :class:`~rpc_client.Client` connected to ``rpc_server``, closed after the test."""
    async with Client(rpc_server.url, **_rpc_setup.client_options) as client:
        yield client


@_async_fixture
async def rpc_memory_server(_rpc_setup: Setup) -> AsyncIterator[MemoryServer]:
    """The protocol with no socket (see :class:`~rpc_server.testing.MemoryServer`); one per test."""
    async with MemoryServer(_rpc_setup.registry, **_rpc_setup.server_options) as server:
        yield server


@_async_fixture
async def rpc_memory_client(_rpc_setup: Setup, rpc_memory_server: MemoryServer) -> AsyncIterator[Client]:
    """A :class:`~rpc_client.Client` connected to ``rpc_memory_server``, with no socket."""
    async with rpc_memory_server.client(**_rpc_setup.client_options) as client:
        yield client
