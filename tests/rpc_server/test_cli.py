"""The command line: ``python -m rpc_server`` as a real subprocess, and the parser and main() in-process."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import signal
import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from rpc_server import cli
from rpc_server.dispatch import DEFAULT_MAX_BATCH
from rpc_server.server import DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_MESSAGE_SIZE

from .corpus import request

READY = re.compile(r"^listening on (ws://127\.0\.0\.1:(\d+)/ws)$")
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


async def call(url: str, method: str, params: object) -> object:
    async with connect(url) as ws, asyncio.timeout(WAIT):
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
    with pytest.raises(SystemExit) as caught:
        cli.main(["--help"])
    assert caught.value.code == 0
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
    assert (args.max_in_flight, args.max_batch, args.max_message_size) == (
        DEFAULT_MAX_IN_FLIGHT,
        DEFAULT_MAX_BATCH,
        DEFAULT_MAX_MESSAGE_SIZE,
    )


@pytest.mark.parametrize(
    "argv",
    [["--bogus"], ["--port", "70000"], ["--port", "http"], ["--max-batch", "0"], ["--log-level", "loud"]],
    ids=" ".join,
)
def test_a_bad_flag_exits_with_status_2_and_says_why(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    """argparse's usage error: status 2 and a message on stderr, no traceback."""
    with pytest.raises(SystemExit) as caught:
        cli.main(argv)
    assert caught.value.code == 2
    assert "error:" in capsys.readouterr().err


def test_tools_that_cannot_be_loaded_exit_with_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    """A --tools module that does not exist, or names no registry, is a one-line error and status 2."""
    assert cli.main(["--tools", "no_such_module_for_rpc_tests"]) == 2
    assert "cannot import" in capsys.readouterr().err
    assert cli.main(["--tools", "json:dumps"]) == 2
    assert "expected a Registry" in capsys.readouterr().err


def test_no_builtins_without_tools_is_a_usage_error() -> None:
    """--no-builtins alone would serve nothing: refused with status 2."""
    with pytest.raises(SystemExit) as caught:
        cli.main(["--no-builtins"])
    assert caught.value.code == 2
