"""The pytest plugin, run as its users run it: a suite of their own, in a pytest of its own (pytester).

The inner suite's conftest.py checks, around every test and every module,
that no thread, file descriptor (socket), task or child process outlives
what started it, and that every server's port is closed once it is done;
warnings are errors there, so a transport or task destroyed unclosed fails
the run too.
"""

from __future__ import annotations

import importlib.metadata
import re
import sys
import textwrap
from pathlib import Path

import pytest

pytest_plugins = ["pytester"]

# A bound for a whole inner pytest run: a few seconds when all is well.
RUN_TIMEOUT = 120
# Inner runs see warnings as errors, but for those the project already knows of.
WARNINGS = ["-W", "error", "-W", "ignore::pytest.PytestDeprecationWarning"]

# The user's tools: a copy of sample_tools.py.
TOOLS = (Path(__file__).parent / "sample_tools.py").read_text(encoding="utf-8")

# Checks that nothing outlives what started it; see the module docstring.
LEAK_CHECKS = """
import asyncio
import os
import socket
import threading

import pytest
import pytest_asyncio

PORTS = {}


def open_fds():
    return set(os.listdir("/proc/self/fd"))


def children():
    found = set()
    for task in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{task}/children") as f:
                found.update(f.read().split())
        except FileNotFoundError:  # a thread that ended meanwhile
            pass
    return found


def snapshot():
    return set(threading.enumerate()), open_fds(), children()


def check(before, what):
    threads, fds, kids = before
    assert set(threading.enumerate()) <= threads, f"{what} left threads: {set(threading.enumerate()) - threads}"
    assert open_fds() <= fds, f"{what} left file descriptors open: {open_fds() - fds}"
    assert children() <= kids, f"{what} left processes: {children() - kids}"


def closed(port):
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


@pytest.fixture(autouse=True, scope="module")
def leaks_of_the_module(request):
    before = snapshot()
    yield
    check(before, request.node.name)
    for port in PORTS.pop(request.node.name, []):
        assert closed(port), f"port {port} still accepts connections"


# Named to sort before tasks_of_the_test: pytest sets autouse fixtures up in name order, and this
# one must look before the event loop (and its thread pool) is made, and after it is closed.
@pytest.fixture(autouse=True)
def leaks_of_the_test(request):
    shared = any(m.kwargs.get("scope") == "module" for m in request.node.iter_markers("rpc_tools"))
    before = snapshot()
    yield
    if not shared:  # a module's shared server lives on until the module ends
        check(before, request.node.name)


@pytest_asyncio.fixture(autouse=True)
async def tasks_of_the_test():
    yield
    left = asyncio.all_tasks() - {asyncio.current_task()}
    assert not left, f"tasks left: {left}"


@pytest.fixture
def record_port(request):
    def record(port):
        PORTS.setdefault(request.node.module.__name__.rpartition(".")[2] + ".py", []).append(port)
    return record
"""

FUNCTION_SCOPE = """
import asyncio
import threading

import pytest
from rpc_client import ConnectionLost, RpcError

from tools import news, registry


@pytest.mark.rpc_tools(registry)
@pytest.mark.asyncio
async def test_the_marker_names_the_registry(rpc_server, rpc_client, record_port):
    record_port(rpc_server.port)
    assert rpc_server.url.startswith("ws://127.0.0.1:")
    assert await rpc_client.call("greet", "Ada") == "Hello, Ada!"
    assert await rpc_client.call("shout", "ada") == "ADA"
    with pytest.raises(RpcError):
        await rpc_client.call("multiply", 3, 4)


@pytest.mark.asyncio
async def test_without_a_registry_the_built_ins_are_served(rpc_server, rpc_client, record_port):
    record_port(rpc_server.port)
    assert await rpc_client.call("multiply", 3, 4) == 12


@pytest.mark.rpc_tools(registry, max_message_bytes=64, client_options={"timeout": 3})
@pytest.mark.asyncio
async def test_server_and_client_options_pass_through(rpc_server, rpc_client, record_port):
    record_port(rpc_server.port)
    assert rpc_client.timeout == 3
    with pytest.raises(ConnectionLost, match="1009"):
        await rpc_client.call("greet", "x" * 100)


@pytest.mark.rpc_tools(topics=news())
@pytest.mark.asyncio
async def test_the_server_publishes_to_a_subscriber(rpc_server, rpc_client, record_port):
    record_port(rpc_server.port)
    async with rpc_client.subscribe("news") as events:
        assert rpc_server.publish("news", {"n": 1}) == 1
        async with asyncio.timeout(5):
            assert (await anext(aiter(events))).data == {"n": 1}


@pytest.mark.rpc_tools(registry)
@pytest.mark.asyncio
async def test_a_call_still_running_at_the_end_is_cancelled_with_its_server(rpc_server, rpc_client, record_port):
    record_port(rpc_server.port)
    asyncio.ensure_future(rpc_client.call("hold", 30)).add_done_callback(lambda f: f.exception())
    await asyncio.sleep(0.01)


@pytest.mark.rpc_tools(registry)
@pytest.mark.asyncio
async def test_the_memory_client_needs_no_socket(rpc_memory_server, rpc_memory_client):
    assert rpc_memory_client.url == "memory://"
    assert await rpc_memory_client.call("greet", "Ada") == "Hello, Ada!"
    assert await rpc_memory_client.call("shout", "ada") == "ADA"


@pytest.mark.rpc_tools(topics=news())
@pytest.mark.asyncio
async def test_the_memory_server_publishes(rpc_memory_server, rpc_memory_client):
    async with rpc_memory_client.subscribe("news") as events:
        assert rpc_memory_server.publish("news", {"n": 2}) == 1
        async with asyncio.timeout(5):
            assert (await anext(aiter(events))).data == {"n": 2}


@pytest.mark.rpc_tools(registry)
def test_the_sync_client_works_from_a_plain_test(rpc_server_thread, rpc_sync_client, record_port):
    record_port(rpc_server_thread.port)
    assert threading.current_thread() is threading.main_thread()
    assert rpc_sync_client.call("greet", "Ada") == "Hello, Ada!"


@pytest.mark.rpc_tools(topics=news())
def test_the_server_thread_publishes_from_a_plain_test(rpc_server_thread, rpc_sync_client, record_port):
    record_port(rpc_server_thread.port)
    with rpc_sync_client.subscribe("news") as events:
        assert rpc_server_thread.publish("news", {"n": 3}) == 1
        assert next(iter(events)).data == {"n": 3}

"""

REGISTRY_FIXTURE = """
import pytest

from tools import other, registry


@pytest.fixture
def rpc_registry():
    return other


@pytest.mark.asyncio
async def test_an_overridden_registry_fixture_is_served(rpc_client):
    assert await rpc_client.call("farewell", "Ada") == "Bye, Ada."


@pytest.mark.rpc_tools(registry)
@pytest.mark.asyncio
async def test_the_marker_wins_over_the_fixture(rpc_client):
    assert await rpc_client.call("greet", "Ada") == "Hello, Ada!"
"""

OPTIONS_FIXTURE = """
import pytest
from rpc_client import RpcError

from tools import registry

pytestmark = pytest.mark.rpc_tools(registry)


@pytest.fixture
def rpc_server_options():
    return {"max_batch": 1}


@pytest.fixture
def rpc_client_options():
    return {"timeout": 0.2}


@pytest.mark.asyncio
async def test_options_come_from_overridden_fixtures(rpc_memory_client):
    assert rpc_memory_client.timeout == 0.2
    with pytest.raises(TimeoutError):  # refused as over max_batch, with a null id
        await rpc_memory_client.batch_call([("greet", ["a"]), ("greet", ["b"])])


@pytest.mark.rpc_tools(max_batch=2)
@pytest.mark.asyncio
async def test_a_test_marker_adds_to_the_module_marker_and_wins(rpc_memory_client):
    assert await rpc_memory_client.batch_call([("greet", ["a"]), ("greet", ["b"])]) == ["Hello, a!", "Hello, b!"]
"""

MODULE_SCOPE = """
import pytest

from tools import registry

pytestmark = pytest.mark.rpc_tools(registry, scope="module")
SEEN = []


@pytest.mark.asyncio
async def test_first(rpc_server, rpc_client, record_port):
    SEEN.append(rpc_server.port)
    record_port(rpc_server.port)
    assert await rpc_client.call("greet", "Ada") == "Hello, Ada!"


@pytest.mark.asyncio
async def test_second_shares_the_server(rpc_server, rpc_client):
    assert rpc_server.port == SEEN[0]
    assert await rpc_client.call("shout", "ada") == "ADA"


def test_a_plain_test_shares_it_too(rpc_server_thread, rpc_sync_client):
    assert rpc_server_thread.port == SEEN[0]
    assert rpc_sync_client.call("greet", "Bob") == "Hello, Bob!"


@pytest.mark.rpc_tools(max_batch=5)
@pytest.mark.asyncio
async def test_other_options_get_a_server_of_their_own(rpc_server, record_port):
    record_port(rpc_server.port)
    assert rpc_server.port != SEEN[0]
"""

SECOND_MODULE = """
import pytest

from tools import registry

pytestmark = pytest.mark.rpc_tools(registry, scope="module")


@pytest.mark.asyncio
async def test_another_module_gets_another_server(rpc_server, record_port):
    record_port(rpc_server.port)
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    """A user's project: tools, the leak checks, and tests of every fixture."""
    pytester.makepyfile(
        tools=TOOLS,
        conftest=LEAK_CHECKS,
        test_function_scope=FUNCTION_SCOPE,
        test_options_fixtures=OPTIONS_FIXTURE,
        test_registry_fixture=REGISTRY_FIXTURE,
        test_module_scope=MODULE_SCOPE,
        test_module_scope_2=SECOND_MODULE,
    )
    pytester.makeini(
        """
        [pytest]
        asyncio_default_fixture_loop_scope = function
        """
    )
    return pytester


def test_the_plugin_is_registered_as_a_pytest11_entry_point() -> None:
    """Installing the package is enough for pytest to load the fixtures."""
    plugins = {ep.value for ep in importlib.metadata.entry_points(group="pytest11")}
    assert "rpc_server.pytest_plugin" in plugins


@pytest.mark.parametrize("mode", ["auto", "strict"])
def test_every_fixture_works_and_leaves_nothing_behind(suite: pytest.Pytester, mode: str) -> None:
    """In pytest-asyncio's auto and strict modes alike, every test passes and the leak checks hold."""
    result = suite.runpytest_subprocess(
        "-p", "no:cacheprovider", "-o", f"asyncio_mode={mode}", *WARNINGS, timeout=RUN_TIMEOUT
    )
    result.assert_outcomes(passed=18)


def test_a_leak_would_be_seen(pytester: pytest.Pytester) -> None:
    """The inner suite's checks fail a test that leaves a thread, a socket or a task behind."""
    pytester.makeconftest(LEAK_CHECKS)
    pytester.makepyfile(
        """
        import asyncio, socket, threading
        import pytest

        STOP = threading.Event()
        KEPT = []

        def test_thread():
            threading.Thread(target=STOP.wait, daemon=True).start()

        def test_socket():
            STOP.set()
            KEPT.append(socket.socket())

        @pytest.mark.asyncio
        async def test_task():
            KEPT.pop().close()
            KEPT.append(asyncio.ensure_future(asyncio.Event().wait()))
        """
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function"
    )
    result.assert_outcomes(passed=3, errors=3)
    result.stdout.fnmatch_lines(["*left threads*", "*left file descriptors*", "*tasks left*"])


def test_the_plugin_loads_with_dash_p_where_entry_points_are_off(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With plugin autoloading off, ``-p rpc_server.pytest_plugin`` brings the fixtures (and nothing else does)."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    pytester.makepyfile(
        """
        import pytest

        def test_sync(rpc_sync_client):
            assert rpc_sync_client.call("multiply", 3, 4) == 12

        @pytest.mark.asyncio
        async def test_async(rpc_client):
            assert await rpc_client.call("multiply", 3, 4) == 12
        """
    )
    common = (
        "-p",
        "no:cacheprovider",
        "-p",
        "pytest_asyncio.plugin",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
    )
    result = pytester.runpytest_subprocess(*common, timeout=RUN_TIMEOUT)
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(["*fixture 'rpc_sync_client' not found*"])
    result = pytester.runpytest_subprocess(*common, "-p", "rpc_server.pytest_plugin", timeout=RUN_TIMEOUT)
    result.assert_outcomes(passed=2)


@pytest.mark.parametrize("how", ["dash-p", "pytest_plugins"])
def test_naming_the_plugin_where_it_also_autoloads_is_harmless(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """With autoloading on, ``-p rpc_server.pytest_plugin`` or ``pytest_plugins`` finds it loaded: no second one."""
    monkeypatch.delenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", raising=False)
    pytester.makepyfile(
        """
        def test_sync(rpc_sync_client):
            assert rpc_sync_client.call("multiply", 3, 4) == 12
        """
    )
    named: tuple[str, ...] = ("-p", "rpc_server.pytest_plugin")
    if how == "pytest_plugins":
        pytester.makeconftest('pytest_plugins = ["rpc_server.pytest_plugin"]')
        named = ()
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *named, timeout=RUN_TIMEOUT)
    result.assert_outcomes(passed=1)
    assert "already registered" not in result.stdout.str() + result.stderr.str()


def test_without_pytest_asyncio_the_sync_fixtures_work_and_the_async_ones_say_why(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    """pytest-asyncio is optional: rpc_sync_client works without it; rpc_memory_client says what is missing."""
    # An importable pytest_asyncio that fails, as if it were not installed.
    pytester.mkpydir("hide").joinpath("pytest_asyncio.py").write_text("raise ImportError('not installed')\n")
    pytester.makepyfile(
        """
        def test_sync(rpc_sync_client):
            assert rpc_sync_client.call("add", 1, 2) == 3

        def test_async_fixture(rpc_memory_client):
            pass
        """
    )
    monkeypatch.setenv("PYTHONPATH", str(pytester.path / "hide"))
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", "-p", "no:asyncio", timeout=RUN_TIMEOUT)
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines(["*the rpc_memory_client fixture needs pytest-asyncio (pip install pytest-asyncio)*"])


def test_a_bad_marker_is_a_clear_error(pytester: pytest.Pytester) -> None:
    """A scope other than function or module, or a second positional argument, says what to write."""
    pytester.makepyfile(
        textwrap.dedent(
            """
            import pytest

            @pytest.mark.rpc_tools(scope="session")
            def test_scope(rpc_sync_client):
                pass

            @pytest.mark.rpc_tools(None, None)
            def test_arguments(rpc_sync_client):
                pass
            """
        )
    )
    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function"
    )
    result.assert_outcomes(errors=2)
    result.stdout.fnmatch_lines(
        ["*scope='session'*scope must be one of function, module*", "*takes one positional argument, the registry*"]
    )


GUIDE = Path(__file__).parents[2] / "docs" / "testing.md"


def blocks(markdown: str) -> list[tuple[str | None, str]]:
    """The fenced code blocks of a page: (the path its info string names with ``file=PATH``, or None; the text)."""
    return [
        (path or None, text)
        for path, text in re.findall(r"^```\w+(?: file=(\S+))?\n(.*?)^```$", markdown, re.MULTILINE | re.DOTALL)
    ]


def test_the_testing_guide_runs_as_written(pytester: pytest.Pytester) -> None:
    """docs/testing.md: its files make a project whose tests all pass, and its script runs."""
    files = [(path, text) for path, text in blocks(GUIDE.read_text(encoding="utf-8")) if path is not None]
    scripts = [text for path, text in blocks(GUIDE.read_text(encoding="utf-8")) if path is None]
    for path, text in files:
        (pytester.path / path).parent.mkdir(parents=True, exist_ok=True)
        (pytester.path / path).write_text(text)
    tests = sum(len(re.findall(r"^(?:async )?def test_", text, re.MULTILINE)) for _, text in files)
    assert tests >= 8 and scripts
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider", *WARNINGS, timeout=RUN_TIMEOUT)
    result.assert_outcomes(passed=tests)
    for script in scripts:
        done = pytester.run(sys.executable, "-c", script, timeout=RUN_TIMEOUT)
        assert done.ret == 0, done.errlines
