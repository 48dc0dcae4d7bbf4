"""--list and --describe: the OpenRPC document as text, pure and through the command line against a real server."""

from __future__ import annotations

import shlex
from typing import Any

import pytest

from rpc_client import Client
from rpc_client.cli import main
from rpc_client.describe import describe_method, example_command, list_methods, type_text
from rpc_server import Registry, builtin_tools, builtin_topics
from rpc_server.dispatch import Dispatcher
from rpc_server.session import Session


def document(registry: Registry | None = None) -> dict[str, Any]:
    """The document the built-in server answers (or one serving ``registry``), as rpc.discover gives it."""
    return Dispatcher(registry or builtin_tools()).describe(Session(topics=builtin_topics()), url="ws://h/ws")


@pytest.mark.parametrize(
    ("schema", "text"),
    [
        ({"type": "number"}, "number"),
        ({"type": ["integer", "null"]}, "integer | null"),
        ({"type": "array", "items": {"type": "string"}}, "array of string"),
        ({"type": "array", "items": [{"type": "integer"}, {"type": "string"}]}, "[integer, string]"),
        ({"enum": ["a", 1]}, '"a" | 1'),
        ({"anyOf": [{"type": "string"}, {"type": "null"}]}, "string | null"),
        ({"type": "object", "properties": {"n": {"type": "integer"}}}, "{n: integer}"),
        ({}, "any"),
        (True, "any"),
    ],
)
def test_a_schema_reads_as_a_short_type(schema: Any, text: str) -> None:
    """Types, unions, arrays, tuples, enums and objects with properties each read as one short phrase."""
    assert type_text(schema) == text


def test_the_list_is_one_line_per_method_then_the_topics() -> None:
    """--list: a header, each tool with its params and summary (rpc.* left out), then the topics."""
    lines = list_methods(document()).splitlines()
    assert lines[0].split() == ["METHOD", "PARAMS", "DESCRIPTION"]
    rows = {line.split()[0]: line for line in lines[1:] if line and not line.startswith("TOPIC")}
    assert list(rows)[: len(builtin_tools())] == list(builtin_tools())
    assert "a: number, b: number" in rows["multiply"] and rows["multiply"].endswith("Multiply two numbers: a * b.")
    assert "*numbers: number" in rows["sum"]
    assert "n: integer, [interval: number = 0.1]" in rows["count"]
    assert not any(name.startswith("rpc.") for name in rows)
    assert lines[lines.index("") + 1].split() == ["TOPIC", "PARAMS", "DESCRIPTION"]
    assert all(len(line) <= 120 for line in lines)


def test_describe_shows_params_defaults_result_errors_and_an_example() -> None:
    """--describe divide: each param with its type and requirement, the result, errors 1001-1003, an example."""
    text = describe_method(document(), "divide")
    assert "params (by position or by name):" in text
    assert "dividend  number  required  the number divided" in text
    assert "result: number" in text
    for code, message in [(1001, "Division by zero"), (1002, "Result too large")]:
        assert f"{code}  {message}" in text
    assert text.rstrip().endswith("python -m rpc_client divide 1 1")
    assert "optional, default 0.1" in describe_method(document(), "count")


def test_describe_says_how_to_stream_and_subscribe() -> None:
    """A streamed tool's example uses --stream; a topic's uses --subscribe."""
    assert "--stream count 1" in describe_method(document(), "count")
    assert "python -m rpc_client --subscribe clock" in describe_method(document(), "clock")


def test_describe_of_rpc_subscribe_reads_as_prose_and_its_example_subscribes_to_a_topic() -> None:
    """No docstring Args: block (the params table has them), no reST quotes; the example is --subscribe TOPIC."""
    text = describe_method(document(), "rpc.subscribe")
    assert "Args:" not in text and "``" not in text
    assert "The caller needs the permission `topic:NAME` (-32004 otherwise)." in text
    assert "topic   string" in text  # the params table is still there
    assert text.rstrip().endswith("python -m rpc_client --subscribe clock")
    no_topics = Dispatcher(builtin_tools()).describe(Session(), url="ws://h/ws")
    assert text.replace("python -m rpc_client --subscribe clock", "(this server offers you no topic)") == (
        describe_method(no_topics, "rpc.subscribe")
    )


def test_describe_of_an_unknown_method_raises_key_error() -> None:
    """A name the document lacks is a KeyError, for the command line to explain."""
    with pytest.raises(KeyError):
        describe_method(document(), "nope")


def test_the_example_of_a_by_name_tool_names_its_params() -> None:
    """A tool with keyword-only params gets name=value words, quoted for the shell."""
    registry = Registry()

    @registry.tool
    def greet(*, name: str, punctuation: str = "!") -> str:
        return f"Hello, {name}{punctuation}"

    method = next(m for m in document(registry)["methods"] if m["name"] == "greet")
    command = example_command(method, url="ws://example:9/ws")
    assert command == "python -m rpc_client --url ws://example:9/ws greet name=text"
    assert shlex.split(command)[-1] == "name=text"


def test_every_built_in_example_runs_as_printed(threaded_server: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Each tool's example command, run through main(), exits 0 against a real server."""
    doc = document()
    for name in builtin_tools():
        if name == "long_task":
            continue  # its example works for a second; the others show the same shape faster
        method = next(m for m in doc["methods"] if m["name"] == name)
        words = shlex.split(example_command(method, url=threaded_server))[3:]  # drop "python -m rpc_client"
        assert main(words) == 0, (name, words, capsys.readouterr())


async def test_client_discover_returns_the_document(threaded_server: str) -> None:
    """await client.discover() is the server's OpenRPC document, naming the URL the client used."""
    async with Client(threaded_server) as client:
        doc = await client.discover()
    assert doc["openrpc"] == "1.3.2"
    assert doc["servers"][0]["url"] == threaded_server


def test_cli_list_and_describe_against_a_server(threaded_server: str, capsys: pytest.CaptureFixture[str]) -> None:
    """--list prints the table and --describe one method, both read from the live server's rpc.discover."""
    assert main(["--url", threaded_server, "--list"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines()[0].split() == ["METHOD", "PARAMS", "DESCRIPTION"] and err == ""
    assert main(["--url", threaded_server, "--describe", "multiply"]) == 0
    out, _ = capsys.readouterr()
    assert out.startswith("multiply\n") and f"python -m rpc_client --url {threaded_server} multiply 1 1" in out
    assert main(["--url", threaded_server, "--describe", "nope"]) == 1
    assert "no method or topic 'nope'; --list shows them" in capsys.readouterr().err


def test_cli_discovery_flags_are_a_mode_of_their_own(capsys: pytest.CaptureFixture[str]) -> None:
    """--list with a METHOD, or with --describe, is a usage error (2) before any connection."""
    assert main(["--list", "multiply", "3", "4"]) == 2
    assert main(["--list", "--describe", "add"]) == 2
    assert "--list or --describe METHOD (one of them)" in capsys.readouterr().err


def test_the_example_names_the_url_only_when_it_came_from_the_command_line(
    threaded_server: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the server named by RPC_URL, the example needs no --url: the reader's shell has it too."""
    monkeypatch.setenv("RPC_URL", threaded_server)
    assert main(["--describe", "multiply"]) == 0
    assert capsys.readouterr().out.rstrip().endswith("\n  python -m rpc_client multiply 1 1")
