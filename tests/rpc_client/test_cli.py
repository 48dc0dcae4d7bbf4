"""The command line through main(argv), against a real server in a thread, and once as a subprocess."""

from __future__ import annotations

import asyncio
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from rpc_client import cli
from rpc_client.cli import invoked_as, main, parse_params, parse_value

from .test_connecting import BAD_URLS

HINT = "is the server running?"


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3", 3),
        ("2.5", 2.5),
        ("true", True),
        ("null", None),
        ("[1,2]", [1, 2]),
        ('"3"', "3"),
        ('{"a": 1}', {"a": 1}),
        ("hello", "hello"),
        ("NaN", "NaN"),
        ("-Infinity", "-Infinity"),
        ("", ""),
    ],
)
def test_a_param_is_its_json_value_when_it_is_json_else_the_text(text, value):
    """Each word is read as JSON when it is JSON (NaN and Infinity are not), else kept as a string."""
    assert parse_value(text) == value
    assert type(parse_value(text)) is type(value)


def test_name_value_words_become_named_params_and_mixing_is_refused():
    """name=value words make a params object; a JSON string holding '=' stays positional; mixing is an error."""
    assert parse_params(["minuend=42", "subtrahend=23"]) == {"minuend": 42, "subtrahend": 23}
    assert parse_params(["value=a=b", "seconds=0"]) == {"value": "a=b", "seconds": 0}
    assert parse_params(['"a=b"', "3"]) == ["a=b", 3]
    assert parse_params([]) == []
    with pytest.raises(cli.UsageError, match="not both"):
        parse_params(["1", "b=2"])


def test_multiply_prints_the_result_and_exits_0(threaded_server, capsys):
    """`multiply 3 4` prints 12 alone on stdout and exits 0."""
    assert main(["--url", threaded_server, "multiply", "3", "4"]) == 0
    assert capsys.readouterr() == ("12\n", "")


def test_named_params_json_values_and_strings_reach_the_server(threaded_server, capsys):
    """name=value params go by name, and JSON results print as JSON."""
    assert main(["--url", threaded_server, "subtract", "minuend=42", "subtrahend=23"]) == 0
    assert main(["--url", threaded_server, "sleep", "seconds=0", 'value={"a": [1, 2.5, "x"]}']) == 0
    assert main(["--url", threaded_server, "sleep", "0", "done"]) == 0
    assert main(["--url", threaded_server, "subtract", "5", "-3"]) == 0
    assert capsys.readouterr().out.splitlines() == ["19", '{"a": [1, 2.5, "x"]}', '"done"', "8"]


def test_the_url_comes_from_rpc_url_when_not_given(threaded_server, capsys, monkeypatch):
    """RPC_URL names the server when --url is absent."""
    monkeypatch.setenv("RPC_URL", threaded_server)
    assert main(["add", "1", "2"]) == 0
    assert capsys.readouterr().out == "3\n"


def test_a_jsonrpc_error_prints_code_message_and_data_on_stderr_and_exits_1(threaded_server, capsys):
    """An unknown method prints `error -32601: Method not found: nope` on stderr, nothing on stdout, exit 1."""
    assert main(["--url", threaded_server, "nope"]) == 1
    assert capsys.readouterr() == ("", "error -32601: Method not found: nope\n")
    assert main(["--url", threaded_server, "divide", "1", "0"]) == 1
    assert capsys.readouterr().err == "error 1001: Division by zero: divisor is 0\n"


def test_json_prints_the_whole_response_object(threaded_server, capsys):
    """--json prints the response object, result or error, with its id."""
    assert main(["--url", threaded_server, "--json", "multiply", "3", "4"]) == 0
    assert json.loads(capsys.readouterr().out) == {"jsonrpc": "2.0", "result": 12, "id": 1}
    assert main(["--url", threaded_server, "--json", "divide", "1", "0"]) == 1
    response = json.loads(capsys.readouterr().out)
    assert response["error"] == {"code": 1001, "message": "Division by zero", "data": "divisor is 0"}


def test_notify_prints_nothing_and_exits_0(threaded_server, capsys):
    """--notify sends a notification, waits for no answer and prints nothing."""
    assert main(["--url", threaded_server, "--notify", "multiply", "3", "4"]) == 0
    assert capsys.readouterr() == ("", "")


def test_a_batch_file_of_json_lines_prints_one_line_per_call_in_order(threaded_server, capsys, tmp_path):
    """--batch FILE (JSON lines) prints each call's result or error on its own line, in order; exit 1 on an error."""
    calls = tmp_path / "calls.jsonl"
    calls.write_text(
        '{"method": "sleep", "params": [0.05, "slow"]}\n'
        "\n"
        '{"method": "divide", "params": {"dividend": 1, "divisor": 0}}\n'
        '{"method": "multiply", "params": [3, 4]}\n'
    )
    assert main(["--url", threaded_server, "--batch", str(calls)]) == 1
    assert capsys.readouterr().out.splitlines() == ['"slow"', "error 1001: Division by zero: divisor is 0", "12"]


def test_a_batch_array_on_stdin_with_json_prints_response_objects(threaded_server, capsys, monkeypatch):
    """--batch - reads one JSON array from stdin; with --json each line is a response object."""
    monkeypatch.setattr(sys, "stdin", io.StringIO('[{"method": "add", "params": [1, 2]}, {"method": "sum"}]'))
    assert main(["--url", threaded_server, "--batch", "-", "--json"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["result"] for line in lines] == [3, 0]


def test_demo_prints_each_answer_as_it_comes_back(threaded_server, capsys):
    """--demo sends its calls at once and prints `3 * 4 = 12` and the others; the slow one, sent first, comes last."""
    assert main(["--url", threaded_server, "--demo"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"connected to {threaded_server}; sending {len(cli.DEMO)} calls at once"
    assert "3 * 4 = 12" in lines
    assert "2 ** 10 = 1024" in lines
    assert lines[-1] == 'sleep(0.2, "slow") = "slow"'
    assert len(lines) == 1 + len(cli.DEMO)


def test_an_unreachable_server_prints_one_line_naming_the_url_and_exits_3(unused_url, capsys):
    """With nothing listening, it prints one line naming the URL and suggesting python -m rpc_server, exit 3."""
    assert main(["--url", unused_url, "multiply", "3", "4"]) == 3
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert unused_url in err
    assert "python -m rpc_server" in err
    assert "Traceback" not in err


def test_a_timeout_prints_a_sentence_and_exits_4(threaded_server, capsys):
    """A call not answered within --timeout prints what happened and exits 4."""
    assert main(["--url", threaded_server, "--timeout", "0.5", "sleep", "5"]) == 4
    assert capsys.readouterr().err == f"rpc-client: no answer to 'sleep' within 0.5 s ({threaded_server})\n"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ([], "give a METHOD to call, or --batch FILE, or --demo"),
        (["--demo", "multiply"], "one of them"),
        (["add", "1", "b=2"], "not both"),
        (["--notify", "--demo"], "--notify needs a METHOD"),
        (["--timeout", "0", "add"], "must be more than 0"),
        (["--batch", "/nonexistent/calls.jsonl"], "cannot read /nonexistent/calls.jsonl"),
    ],
)
def test_bad_usage_exits_2_with_a_message(argv, message, capsys):
    """Bad usage prints the usage and what is wrong, and exits 2 without connecting."""
    assert main(["--url", "ws://127.0.0.1:9/ws", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage:")
    assert message in err


def test_a_bad_batch_file_names_the_line_and_exits_2(tmp_path, capsys):
    """A batch line that is not a call is reported with its line number, exit 2, before connecting."""
    calls = tmp_path / "calls.jsonl"
    calls.write_text('{"method": "add", "params": [1, 2]}\n{"params": [1]}\n')
    assert main(["--url", "ws://127.0.0.1:9/ws", "--batch", str(calls)]) == 2
    assert f'{calls}, line 2: expected an object with a "method" string' in capsys.readouterr().err


def test_help_shows_examples_and_exit_codes(capsys):
    """--help exits 0 and shows examples and the exit statuses."""
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "rpc-client multiply 3 4" in out  # named as run: rpc-client, as sys.argv[0] is not __main__.py
    assert "exit status" in out


def test_ctrl_c_exits_130_without_a_traceback(monkeypatch, capsys):
    """KeyboardInterrupt while running ends with exit 130 and a one-line message."""

    async def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "_run", interrupted)
    assert main(["add", "1", "2"]) == 130
    assert capsys.readouterr().err == "rpc-client: interrupted\n"


def test_a_closed_output_pipe_exits_141_quietly(monkeypatch, capsys):
    """When stdout's reader goes away (`| head -1`), it stops with exit 141 and prints no traceback."""

    async def broken_pipe(*args):
        raise BrokenPipeError

    monkeypatch.setattr(cli, "_run", broken_pipe)
    assert main(["add", "1", "2"]) == 141
    assert capsys.readouterr().err == ""


def test_python_m_rpc_client_multiply_3_4_against_a_server_process(server_process):
    """`python -m rpc_client multiply 3 4` as a process, against `python -m rpc_server --port 0`, prints 12, exit 0."""
    done = subprocess.run(
        [sys.executable, "-m", "rpc_client", "--url", server_process, "multiply", "3", "4"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout, done.stderr) == (0, "12\n", "")


async def test_a_batch_the_server_refuses_unread_prints_its_error_and_exits_1(start_server, capsys, monkeypatch):
    """A --batch longer than the server's max_batch gets its null-id -32600 printed and exit 1, not a timeout."""
    server = await start_server(max_batch=2)
    monkeypatch.setattr(sys, "stdin", io.StringIO('{"method": "add", "params": [1, 2]}\n' * 3))
    status = await asyncio.to_thread(main, ["--url", server.url, "--timeout", "10", "--batch", "-"])
    assert status == 1
    assert "error -32600" in capsys.readouterr().err


@pytest.mark.parametrize(("url", "message"), BAD_URLS)
def test_a_bad_url_is_a_usage_error_with_the_reason(url, message, capsys):
    """--url that cannot name a WebSocket server: exit 2, the usage, and why; no traceback, no connection hint."""
    assert main(["--url", url, "add", "1", "2"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: rpc-client")
    assert f"rpc-client: error: --url: {url!r}" in err and message in err
    assert "Traceback" not in err and HINT not in err


@pytest.mark.parametrize("words", [["1e400", "1"], ["--", "-1e400", "1"], ["[1, 1e999]"], ["a=1e400"]])
def test_a_number_beyond_a_doubles_range_is_a_usage_error(words, capsys):
    """`add 1e400 1` is refused as usage (exit 2) with a sentence, not an overflow traceback."""
    assert main(["--url", "ws://127.0.0.1:9/ws", "add", *words]) == 2
    err = capsys.readouterr().err
    assert "is out of range: JSON numbers are doubles" in err
    assert "Traceback" not in err


DEEP_WORD = "[" * 3000 + "]" * 3000


@pytest.mark.parametrize("words", [[DEEP_WORD, "1"], [f"a={DEEP_WORD}"]])
def test_a_param_nested_past_the_parser_is_a_usage_error(words, capsys):
    """`add [[[...]]] 1`, 3,000 levels deep, is refused as usage (exit 2) with a sentence, not a RecursionError."""
    assert main(["--url", "ws://127.0.0.1:9/ws", "add", *words]) == 2
    err = capsys.readouterr().err
    assert "a JSON value nested more than about 1,000 levels deep cannot be sent" in err
    assert "Traceback" not in err


def test_a_batch_line_with_a_number_out_of_range_names_the_line(tmp_path, capsys):
    """A --batch line holding 1e400 is a usage error naming its line."""
    calls = tmp_path / "calls.jsonl"
    calls.write_text('{"method": "add", "params": [1e400, 1]}\n')
    assert main(["--url", "ws://127.0.0.1:9/ws", "--batch", str(calls)]) == 2
    assert f"{calls}, line 1: the number 1e400 is out of range" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--timeout", "abc", "add"], "argument --timeout: expected a number of seconds, not 'abc'"),
        (["--connect-timeout", "soon", "add"], "argument --connect-timeout: expected a number of seconds, not 'soon'"),
        (["--stream", "--max", "x", "count"], "argument --max: expected a whole number, not 'x'"),
    ],
)
def test_argparse_errors_name_the_flag_and_no_internal_function(argv, message, capsys):
    """A bad flag value says what was expected, in words, never 'invalid _seconds value'."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert f"rpc-client: error: {message}" in err
    assert "_seconds" not in err and "_count" not in err


def test_the_program_names_itself_as_invoked():
    """The module is 'python -m rpc_client', the console script its own name, a plain call 'rpc-client'."""
    assert invoked_as("/x/site-packages/rpc_client/__main__.py") == "python -m rpc_client"
    assert invoked_as("/x/.venv/bin/rpc-client") == "rpc-client"
    assert invoked_as("/x/lib/python3.11/site-packages/pytest/__main__.py") == "rpc-client"


@pytest.mark.parametrize(
    ("command", "prog"),
    [
        ([sys.executable, "-m", "rpc_client"], "python -m rpc_client"),
        ([str(Path(sys.executable).with_name("rpc-client"))], "rpc-client"),
    ],
)
def test_usage_and_error_lines_carry_the_name_the_program_was_run_by(command, prog):
    """`python -m rpc_client` and the `rpc-client` script each print their own name in the usage and the error."""
    done = subprocess.run([*command, "--timeout", "abc", "add"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = done.stderr.splitlines()
    assert lines[0].startswith(f"usage: {prog} ")
    assert lines[-1] == f"{prog}: error: argument --timeout: expected a number of seconds, not 'abc'"


def test_timeout_bounds_connecting_too(silent_url, capsys):
    """--timeout 0.3 against a server that never answers the handshake: exit 3 in well under 10 s, no hint."""
    assert main(["--url", silent_url, "--timeout", "0.3", "add", "1", "2"]) == 3
    err = capsys.readouterr().err
    assert err == f"rpc-client: cannot connect to {silent_url}: no WebSocket connection within 0.3 s\n"


def test_connect_timeout_bounds_connecting_alone(silent_url, capsys):
    """--connect-timeout 0.2 with the default --timeout fails connecting within 0.2 s."""
    assert main(["--url", silent_url, "--connect-timeout", "0.2", "add", "1", "2"]) == 3
    assert "no WebSocket connection within 0.2 s" in capsys.readouterr().err


def test_a_404_path_and_a_wss_url_get_no_start_a_server_hint(threaded_server, capsys):
    """The hint to start a server comes only with a refusal: not for a wrong path, nor for wss:// to a plain server."""
    wrong_path = threaded_server.rsplit("/", 1)[0] + "/nope"
    assert main(["--url", wrong_path, "add", "1", "2"]) == 3
    err = capsys.readouterr().err
    assert "HTTP 404" in err and HINT not in err
    assert main(["--url", threaded_server.replace("ws://", "wss://"), "--timeout", "5", "add", "1", "2"]) == 3
    err = capsys.readouterr().err
    assert "the server does not speak TLS" in err and HINT not in err


def test_loop_uvloop_runs_the_call_on_uvloop(threaded_server, capsys):
    """--loop uvloop makes the same call on uvloop's event loop."""
    pytest.importorskip("uvloop", reason="uvloop comes with the bench and speed extras")
    assert main(["--url", threaded_server, "--loop", "uvloop", "multiply", "3", "4"]) == 0
    assert capsys.readouterr().out == "12\n"


@pytest.mark.parametrize("prog", ["rpc-client", "python -m rpc_client"])
def test_help_examples_use_the_name_the_program_was_run_by(prog: str) -> None:
    """Examples pasted from `rpc-client --help` must run as they are: with the name that was typed."""
    examples = cli.build_parser(prog).format_help().split("examples:", 1)[1]
    commands = [line.strip() for line in examples.splitlines() if "multiply 3 4" in line]
    assert commands and all(prog in line for line in commands)
    other = "python -m rpc_client" if prog == "rpc-client" else "rpc-client "
    assert other not in examples
