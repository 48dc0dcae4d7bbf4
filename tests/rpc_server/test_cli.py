"""The command line: ``python -m rpc_server`` as a real subprocess, and the parser and main() in-process."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme
from websockets.asyncio.client import connect

from rpc_server import Limits, Registry, cli

from ..security.kit import client_context
from .corpus import request

READY = re.compile(r"^listening on (wss?://127\.0\.0\.1:(\d+)/ws)$")
WAIT = 10  # seconds: a bound on start-up and shutdown, which take well under one here


@dataclass(slots=True)
class Running:
    process: asyncio.subprocess.Process
    url: str


@asynccontextmanager
async def rpc_server_process(*args: str, env: dict[str, str] | None = None) -> AsyncIterator[Running]:
    """Start ``python -m rpc_server --port 0 ...``, wait for its ready line, and always stop it afterwards."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "rpc_server",
        "--port",
        "0",
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(WAIT):
            line = (await process.stdout.readline()).decode().strip()
        match = READY.match(line)
        assert match, f"expected the ready line, got {line!r}"
        assert match.group(2) != "0"
        yield Running(process, match.group(1))
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def stop(running: Running, sig: signal.Signals) -> tuple[int, str]:
    """Send ``sig`` and return the exit status and what went to stderr."""
    running.process.send_signal(sig)
    async with asyncio.timeout(WAIT):
        _, stderr = await running.process.communicate()
    return running.process.returncode, stderr.decode()  # type: ignore[return-value]


async def call(url: str, method: str, params: object, **options: Any) -> object:
    async with connect(url, **options) as ws, asyncio.timeout(WAIT):
        await ws.send(request(method, params, 1))
        return json.loads(await ws.recv())


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=lambda s: s.name)
async def test_the_server_runs_as_a_module_and_stops_cleanly_on_a_signal(sig: signal.Signals) -> None:
    """It prints its ready line with the real port, answers a call, and exits 0 on the signal with no traceback."""
    async with rpc_server_process() as running:
        assert await call(running.url, "multiply", [3, 4]) == {"jsonrpc": "2.0", "result": 12, "id": 1}
        status, stderr = await stop(running, sig)
    assert status == 0, stderr
    assert "Traceback" not in stderr


async def test_the_server_runs_on_uvloop_when_asked() -> None:
    """--loop uvloop serves calls (uvloop's transports are no asyncio.Transport) and still stops cleanly."""
    pytest.importorskip("uvloop", reason="uvloop comes with the bench and speed extras")
    async with rpc_server_process("--loop", "uvloop") as running:
        assert await call(running.url, "multiply", [3, 4]) == {"jsonrpc": "2.0", "result": 12, "id": 1}
        assert await call(running.url, "add", [1, 2]) == {"jsonrpc": "2.0", "result": 3, "id": 1}
        status, stderr = await stop(running, signal.SIGTERM)
    assert status == 0, stderr
    assert "Traceback" not in stderr


async def test_the_server_serves_tls_on_uvloop(pem_files: tuple[Path, Path, Path], ca: trustme.CA) -> None:
    """--loop uvloop with a certificate: the TLS handshake is the server's own, on uvloop's transports too."""
    pytest.importorskip("uvloop", reason="uvloop comes with the bench and speed extras")
    certfile, keyfile, _ = pem_files
    async with rpc_server_process(
        "--loop", "uvloop", "--certfile", str(certfile), "--keyfile", str(keyfile)
    ) as running:
        assert running.url.startswith("wss://")
        answer = await call(running.url, "multiply", [3, 4], ssl=client_context(ca))
        assert answer == {"jsonrpc": "2.0", "result": 12, "id": 1}
        status, stderr = await stop(running, signal.SIGTERM)
    assert status == 0, stderr
    assert "Traceback" not in stderr


async def test_a_connection_open_at_shutdown_does_not_stop_a_clean_exit() -> None:
    """SIGTERM with a client connected and a call running still exits 0, with no traceback."""
    async with rpc_server_process() as running:
        async with connect(running.url) as ws:
            await ws.send(request("sleep", [5], 1))
            status, stderr = await stop(running, signal.SIGTERM)
    assert status == 0, stderr
    assert "Traceback" not in stderr


async def test_tools_load_from_a_module_named_on_the_command_line(tmp_path: Path) -> None:
    """--tools MODULE:NAME serves a user's Registry beside the built-in tools."""
    (tmp_path / "my_cli_tools.py").write_text(
        "from rpc_server import Registry\n"
        "registry = Registry()\n\n"
        "@registry.tool\n"
        "def shout(text: str) -> str:\n"
        "    return text.upper()\n"
        "\n"
        "methods = {'whisper': lambda text: text.lower()}\n"
    )
    env = {"PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    async with rpc_server_process("--tools", "my_cli_tools:registry", "--tools", "my_cli_tools:methods", env=env) as r:
        assert (await call(r.url, "shout", ["hi"]))["result"] == "HI"  # type: ignore[index]
        assert (await call(r.url, "whisper", ["HI"]))["result"] == "hi"  # type: ignore[index]
        assert (await call(r.url, "multiply", [3, 4]))["result"] == 12  # type: ignore[index]
        status, stderr = await stop(r, signal.SIGTERM)
    assert status == 0, stderr


# -- in-process: the parser and main() ------------------------------------------------------


@pytest.fixture(autouse=True)
def keep_root_logging() -> Iterator[None]:
    """main() calls logging.basicConfig; undo whatever it did to this process's root logger."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def _flags() -> list[str]:
    parser = cli.build_parser()
    return [a.option_strings[0] for a in parser._actions if a.option_strings and a.dest != "help"]


def test_help_names_the_environment_variable_of_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    """--help documents, for each flag, its RPC_* environment variable."""
    assert cli.main(["--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    flags = _flags()
    assert {"--host", "--port", "--max-in-flight", "--max-batch", "--max-message-size", "--compression"} <= set(flags)
    for flag in flags:
        assert flag in text
        env = "RPC_" + flag.removeprefix("--").replace("-", "_").upper()
        assert env in text, f"{flag}: {env} is not in --help"


@pytest.mark.parametrize(
    ("env", "value", "dest", "expected"),
    [
        ("RPC_HOST", "::1", "host", "::1"),
        ("RPC_PORT", "0", "port", 0),
        ("RPC_MAX_IN_FLIGHT", "7", "max_in_flight", 7),
        ("RPC_MAX_BATCH", "9", "max_batch", 9),
        ("RPC_MAX_MESSAGE_SIZE", "4096", "max_message_size", 4096),
        ("RPC_COMPRESSION", "1", "compression", True),
        ("RPC_TOOLS", "a:registry,b", "tools", ["a:registry", "b"]),
        ("RPC_NO_BUILTINS", "yes", "no_builtins", True),
        ("RPC_LOG_LEVEL", "warning", "log_level", "warning"),
        ("RPC_LOOP", "uvloop", "loop", "uvloop"),
    ],
)
def test_each_environment_variable_sets_its_flag(
    monkeypatch: pytest.MonkeyPatch, env: str, value: str, dest: str, expected: object
) -> None:
    """A flag not given on the command line takes its value from the environment."""
    monkeypatch.setenv(env, value)
    assert getattr(cli.build_parser().parse_args([]), dest) == expected


def test_the_defaults_are_the_documented_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """With no flags and no environment: 127.0.0.1:8000, the package's limits, compression off."""
    for name in list(os.environ):
        if name.startswith("RPC_"):
            monkeypatch.delenv(name)
    args = cli.build_parser().parse_args([])
    assert (args.host, args.port, args.compression) == ("127.0.0.1", 8000, False)
    assert cli.limits_from(args) == Limits()


@pytest.mark.parametrize(
    "argv",
    [
        ["--bogus"],
        ["--port", "70000"],
        ["--port", "http"],
        ["--max-batch", "0"],
        ["--log-level", "loud"],
        ["--loop", "trio"],
    ],
    ids=" ".join,
)
def test_a_bad_flag_exits_with_status_2_and_says_why(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """argparse's usage error: status 2 and a message on stderr that names no internal function, no traceback."""
    assert cli.main(argv, prog="rpc-server") == 2
    err = capsys.readouterr().err
    assert "rpc-server: error:" in err
    assert "invalid _" not in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("env", "value", "said"),
    [
        ("RPC_PORT", "abc", "argument --port: must be a whole number, not 'abc'"),
        ("RPC_MAX_BATCH", "0", "argument --max-batch: must be at least 1, not 0"),
        ("RPC_LOG_FORMAT", "xml", "argument --log-format: must be one of text, json, not 'xml'"),
    ],
)
def test_a_bad_value_from_the_environment_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: str, value: str, said: str
) -> None:
    """No flag was typed: the error says which environment variable holds the bad value."""
    monkeypatch.setenv(env, value)
    assert cli.main([], prog="rpc-server") == 2
    assert f"rpc-server: error: {said} (set by {env} in the environment)\n" in capsys.readouterr().err
    assert cli.main([f"--{env.removeprefix('RPC_').lower().replace('_', '-')}", value], prog="rpc-server") == 2
    assert "in the environment" not in capsys.readouterr().err  # typed on the command line: the flag is named


def test_every_value_in_the_usage_is_named_by_its_unit_or_its_choices(capsys: pytest.CaptureFixture[str]) -> None:
    """No flag shows its own name in capitals as its value (MAX_IN_FLIGHT); --log-format lists its choices."""
    usage = cli.build_parser(prog="rpc-server").format_usage()
    assert not re.findall(r"--[\w-]+ [A-Z]+_[A-Z_]+", usage), usage
    assert "[--log-format {text,json}]" in usage and "[--max-in-flight CALLS]" in usage


def test_a_number_that_is_not_one_is_named_in_plain_words(capsys: pytest.CaptureFixture[str]) -> None:
    """--port http says the port must be a whole number, quoting what was given."""
    assert cli.main(["--port", "http"], prog="rpc-server") == 2
    assert "argument --port: must be a whole number, not 'http'" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv0", "prog"), [("/venv/bin/rpc-server", "rpc-server"), ("/x/rpc_server/__main__.py", "python -m rpc_server")]
)
def test_usage_names_the_command_as_the_user_ran_it(
    monkeypatch: pytest.MonkeyPatch, argv0: str, prog: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """The console script says rpc-server, the module says python -m rpc_server, in usage and in errors alike."""
    monkeypatch.setattr(sys, "argv", [argv0])
    assert cli.main(["--bogus"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: {prog} ")
    assert f"{prog}: error: unrecognized arguments: --bogus" in err


def test_tools_that_cannot_be_loaded_exit_with_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    """A --tools module that does not exist, or names no registry, is a one-line error and status 2."""
    assert cli.main(["--tools", "no_such_module_for_rpc_tests"]) == 2
    assert "cannot import" in capsys.readouterr().err
    assert cli.main(["--tools", "json:dumps"]) == 2
    assert "--tools json:dumps: json.dumps is a function; expected a Registry" in capsys.readouterr().err
    assert cli.main(["--tools", "json:__doc__"]) == 2
    assert "json.__doc__ is a str;" in capsys.readouterr().err


def test_no_builtins_without_tools_is_a_usage_error() -> None:
    """--no-builtins alone would serve nothing: refused with status 2."""
    assert cli.main(["--no-builtins"]) == 2


# -- --tools: finding the tools ------------------------------------------------------------


@pytest.fixture
def tools_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """An empty current directory that is not on the import path, as for a console script; modules forgotten after."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(tmp_path))])
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


def test_tools_are_found_in_the_current_directory_as_with_python_m(tools_dir: Path) -> None:
    """--tools imports from the current directory even when it is not on sys.path (the rpc-server script)."""
    (tools_dir / "cwd_tools_a.py").write_text(
        "from rpc_server import Registry\nregistry = Registry()\nregistry.add(lambda: 'pong', name='ping')\n"
    )
    assert list(cli.load_tools("cwd_tools_a")) == ["ping"]


def test_a_module_whose_only_registry_has_another_name_serves_it(tools_dir: Path) -> None:
    """Without :NAME and with no 'registry', the module's one Registry is served."""
    (tools_dir / "cwd_tools_b.py").write_text(
        "from rpc_server import Registry\napi = Registry()\napi.add(lambda: 1, name='one')\n"
    )
    assert list(cli.load_tools("cwd_tools_b")) == ["one"]


def test_a_module_of_jsonrpcserver_methods_serves_them(tools_dir: Path) -> None:
    """A module that defines jsonrpcserver @method functions serves those: importing it registers them."""
    (tools_dir / "cwd_tools_c.py").write_text(
        "from jsonrpcserver import Success, method\n\n"
        "@method\ndef hello_cwd_c(name):\n    return Success('hi ' + name)\n"
    )
    assert list(cli.load_tools("cwd_tools_c")) == ["hello_cwd_c"]


def test_a_module_with_no_tools_says_what_to_write(tools_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A module with neither a Registry nor @method functions is refused with the lines to add, status 2."""
    (tools_dir / "cwd_tools_d.py").write_text("x = 1\n")
    assert cli.main(["--tools", "cwd_tools_d"], prog="rpc-server") == 2
    err = capsys.readouterr().err
    assert "rpc-server: error: --tools cwd_tools_d: module 'cwd_tools_d' has no Registry" in err
    assert "registry = Registry()" in err and "--tools cwd_tools_d:NAME" in err


def test_an_empty_jsonrpcserver_global_registry_is_explained(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """--tools jsonrpcserver.methods:global_methods alone serves nothing: refused, naming the fix."""
    import jsonrpcserver.methods

    monkeypatch.setattr(jsonrpcserver.methods, "global_methods", {})  # as in a process that imported no @method
    assert cli.main(["--tools", "jsonrpcserver.methods:global_methods"], prog="rpc-server") == 2
    assert "name the module that defines them" in capsys.readouterr().err


def registry_module(directory: Path, module: str, line: str) -> None:
    """Write ``module.py``: a ``registry`` and one line that adds to it."""
    (directory / f"{module}.py").write_text(f"from rpc_server import Registry\nregistry = Registry()\n{line}\n")


def test_a_tool_named_like_a_built_in_says_so_and_what_to_do(
    tools_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """--tools defining its own 'add': one line naming the built-in clash and the way out; --no-builtins serves it."""
    registry_module(tools_dir, "cwd_tools_e", "registry.add(lambda a, b: a - b, name='add')")
    assert cli.main(["--tools", "cwd_tools_e"], prog="rpc-server") == 2
    assert capsys.readouterr().err == (
        "rpc-server: error: --tools cwd_tools_e: 'add' is also the name of a built-in tool: rename yours, "
        "or serve only yours with --no-builtins\n"
    )
    served = Registry()
    cli.include_tools(served, "cwd_tools_e", builtins=False)
    assert list(served) == ["add"]


def test_two_tools_modules_that_clash_are_named(tools_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same name from two --tools modules: the second is refused, saying an earlier --tools serves it."""
    for module in ("cwd_tools_f", "cwd_tools_g"):
        registry_module(tools_dir, module, "registry.add(lambda: 1, name='same')")
    assert cli.main(["--tools", "cwd_tools_f", "--tools", "cwd_tools_g"], prog="rpc-server") == 2
    assert capsys.readouterr().err == (
        "rpc-server: error: --tools cwd_tools_g: 'same' is also served by an earlier --tools: rename one\n"
    )


def test_a_tool_refused_while_its_module_is_imported_is_named_with_its_tools_flag(
    tools_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A module that registers 'rpc.mine' fails its import: the error says which --tools, in one line."""
    registry_module(tools_dir, "cwd_tools_h", "registry.add(lambda: 1, name='rpc.mine')")
    assert cli.main(["--tools", "cwd_tools_h"], prog="rpc-server") == 2
    err = capsys.readouterr().err
    assert err.startswith("rpc-server: error: --tools cwd_tools_h: 'rpc.mine': names beginning with 'rpc.' are")
    assert err.count("\n") == 1


def test_an_error_found_after_parsing_is_one_line_without_the_usage(capsys: pytest.CaptureFixture[str]) -> None:
    """--no-builtins with no --tools: the error alone, not under 20 lines of usage."""
    assert cli.main(["--no-builtins"], prog="rpc-server") == 2
    assert capsys.readouterr().err == "rpc-server: error: no tools to serve: --no-builtins needs --tools\n"


def test_a_port_in_use_is_said_in_words(capsys: pytest.CaptureFixture[str]) -> None:
    """Another socket holds the port: exit 1, 'already in use' and what to do, no Python tuple."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert cli.main(["--port", str(port), "--no-metrics"], prog="rpc-server") == 1
    assert capsys.readouterr().err == (
        f"rpc-server: error: cannot listen on 127.0.0.1:{port}: the address is already in use "
        "(is another server running?); choose another with --port\n"
    )


async def test_the_console_script_serves_tools_from_the_current_directory(tmp_path: Path) -> None:
    """`rpc-server --tools mod` in the directory holding mod.py serves its tools, as `python -m rpc_server` does."""
    script = Path(sys.executable).parent / "rpc-server"
    if not script.exists():
        pytest.skip("the package is not installed with its console scripts")
    (tmp_path / "script_tools.py").write_text(
        "from rpc_server import Registry\nregistry = Registry()\n\n"
        "@registry.tool\ndef shout(text: str) -> str:\n    return text.upper()\n"
    )
    process = await asyncio.create_subprocess_exec(
        str(script), "--port", "0", "--tools", "script_tools", cwd=tmp_path, stdout=asyncio.subprocess.PIPE
    )
    try:
        assert process.stdout is not None
        async with asyncio.timeout(WAIT):
            line = (await process.stdout.readline()).decode().strip()
        match = READY.match(line)
        assert match, line
        assert await call(match.group(1), "shout", ["hi"]) == {"jsonrpc": "2.0", "result": "HI", "id": 1}
    finally:
        process.terminate()
        await process.wait()
