"""The command line's push features through main(argv), and Ctrl-C on a real process pair."""

from __future__ import annotations

import io
import json
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from rpc_client.cli import main
from rpc_client.progress import ProgressDisplay, progress_line

from .conftest import read_listening_line, stop_process

ROOT = Path(__file__).resolve().parents[2]
TOOLS = ["--tools", "tests.rpc_client.push_tools"]
TIMEOUT = 20


def test_stream_prints_each_part_on_its_own_line(threaded_server, capsys):
    """`--stream count 3` prints 1, 2 and 3, one line each, and nothing else; exit 0."""
    assert main(["--url", threaded_server, "--stream", "count", "3", "0"]) == 0
    assert capsys.readouterr() == ("1\n2\n3\n", "")


def test_stream_max_stops_after_n_parts(threaded_server, capsys):
    """`--stream count 100 --max 2` prints two parts and exits 0 (the rest is cancelled)."""
    assert main(["--url", threaded_server, "--stream", "--max", "2", "count", "n=100", "interval=0.001"]) == 0
    assert capsys.readouterr() == ("1\n2\n", "")


def test_stream_of_a_method_that_does_not_stream_exits_1_saying_so(threaded_server, capsys):
    """`--stream` on a plain tool gets its result instead of a count: one line saying so, exit 1."""
    assert main(["--url", threaded_server, "--stream", "--no-progress", "multiply", "3", "4"]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert "answered 12 after 0 part(s); parts were lost, or the method does not stream" in err


def test_progress_is_printed_as_lines_on_stderr_when_it_is_not_a_terminal(threaded_server, capsys):
    """long_task prints its ten progress lines on stderr, in order, and its result alone on stdout."""
    assert main(["--url", threaded_server, "long_task", "0.01"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == {"steps": 10, "seconds": 0.01}
    assert err.splitlines() == [f"progress {n}/10: step {n} of 10" for n in range(1, 11)]


def test_no_progress_and_json_send_a_plain_request(threaded_server, capsys):
    """With --no-progress or --json no progress is asked for, so none is printed; a generator tool answers its list."""
    assert main(["--url", threaded_server, "--no-progress", "long_task", "0.01"]) == 0
    assert capsys.readouterr().err == ""
    assert main(["--url", threaded_server, "--json", "long_task", "0.01"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and json.loads(out)["result"] == {"steps": 10, "seconds": 0.01}
    assert main(["--url", threaded_server, "count", "3", "0"]) == 0
    assert capsys.readouterr().out == "[1, 2, 3]\n"


def test_subscribe_prints_events_as_json_lines_until_max(threaded_server, capsys):
    """`--subscribe clock interval=0.01 --max 3` prints ticks 1, 2, 3 as JSON lines and exits 0."""
    assert main(["--url", threaded_server, "--subscribe", "clock", "interval=0.01", "--max", "3"]) == 0
    out, err = capsys.readouterr()
    assert [json.loads(line)["tick"] for line in out.splitlines()] == [1, 2, 3]
    assert err == ""


def test_subscribe_with_json_prints_each_events_envelope(threaded_server, capsys):
    """With --json each line holds the subscription id, the topic and the event."""
    assert main(["--url", threaded_server, "--json", "--subscribe", "clock", "interval=0.01", "--max", "2"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [(line["topic"], line["event"]["tick"]) for line in lines] == [("clock", 1), ("clock", 2)]
    assert lines[0]["subscription"] == lines[1]["subscription"]


def test_subscribing_to_an_unknown_topic_exits_1_with_the_servers_error(threaded_server, capsys):
    """`--subscribe weather` prints the -32602 error naming the known topics, exit 1."""
    assert main(["--url", threaded_server, "--subscribe", "weather"]) == 1
    assert capsys.readouterr() == ("", "error -32602: Invalid params: unknown topic 'weather' (topics: clock)\n")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--stream", "--subscribe", "clock"], "do not go together"),
        (["--stream"], "give a METHOD to call"),
        (["--subscribe", "--notify", "clock"], "--subscribe needs a METHOD"),
        (["--max", "3", "add", "1", "2"], "--max goes with --stream or --subscribe"),
        (["--subscribe", "clock", "--max", "0"], "must be at least 1"),
    ],
)
def test_bad_push_usage_exits_2_with_a_message(argv, message, capsys):
    """Flags that do not fit together are refused before connecting, exit 2."""
    assert main(["--url", "ws://127.0.0.1:9/ws", *argv]) == 2
    assert message in capsys.readouterr().err


def test_help_shows_the_push_examples(capsys):
    """--help shows --stream, progress, --subscribe and Ctrl-C."""
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "rpc-client --stream count 5" in out
    assert "rpc-client --subscribe clock interval=0.5 --max 3" in out
    assert "progress 3/10: step 3 of 10" in out
    assert "Ctrl-C during a call cancels it on the\nserver (rpc.cancel) and exits 130" in out


def test_progress_lines_read_done_total_and_message():
    """A report becomes `progress 3/10: step 3`; no total or message leaves them out."""
    assert progress_line(3, 10, "step 3") == "progress 3/10: step 3"
    assert progress_line(2.5, None, None) == "progress 2.5"
    assert progress_line(1, 4, "") == "progress 1/4"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_on_a_terminal_progress_is_a_tqdm_bar():
    """On a terminal the reports drive a tqdm bar showing the method, done/total and the message."""
    terminal = Terminal()
    display = ProgressDisplay("long_task", terminal)
    for n in range(1, 11):
        display(n, 10, f"step {n} of 10")
    display.close()
    shown = terminal.getvalue()
    assert "\r" in shown  # redrawn in place, not one line per report
    assert "long_task: 100%" in shown
    assert "10/10" in shown and "step 10 of 10" in shown
    assert "progress 1/10" not in shown


# -- Ctrl-C on real processes --------------------------------------------------------


def lines_of(proc: subprocess.Popen[str]) -> queue.Queue[str | None]:
    """Each line the process prints from now on, as it comes; None once its stdout closes."""
    lines: queue.Queue[str | None] = queue.Queue()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=read, daemon=True).start()
    return lines


def restore_sigint() -> None:
    # A shell without job control starts background jobs with SIGINT ignored, and the child would inherit that.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture
def tools_server() -> Iterator[tuple[str, queue.Queue[str | None]]]:
    """`python -m rpc_server --tools tests.rpc_client.push_tools` on port 0: its URL and its stdout lines."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rpc_server", "--port", "0", "--log-level", "warning", *TOOLS],
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )
    try:
        url = read_listening_line(proc)
        yield url, lines_of(proc)
    finally:
        stop_process(proc)


def test_ctrl_c_during_a_call_cancels_it_on_the_server_and_exits_130(tools_server):
    """SIGINT to `python -m rpc_client wait_for_cancel` while it runs: exit 130, and rpc.cancel reached the tool."""
    url, server_lines = tools_server
    client = subprocess.Popen(
        [sys.executable, "-m", "rpc_client", "--url", url, "wait_for_cancel"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        preexec_fn=restore_sigint,
    )
    try:
        assert server_lines.get(timeout=TIMEOUT) == "started"  # the call is running on the server
        client.send_signal(signal.SIGINT)
        out, err = client.communicate(timeout=TIMEOUT)
    finally:
        if client.poll() is None:
            client.kill()
            client.wait()
    assert client.returncode == 130
    assert (out, err) == ("", "python -m rpc_client: interrupted\n")
    assert server_lines.get(timeout=TIMEOUT) == "cancelled by rpc.cancel"


class StrictServer(threading.Thread):
    """A JSON-RPC server built on jsonrpcserver, whose request schema refuses any member it does not know."""

    def __init__(self, echo_id: bool) -> None:
        super().__init__(daemon=True)
        self.echo_id = echo_id  # refuse with the request's id, not jsonrpcserver's null
        self.seen: list[dict[str, object]] = []
        self.ready: queue.Queue[tuple[str, object, object]] = queue.Queue()

    def run(self) -> None:
        import asyncio

        from jsonrpcserver import Success, async_dispatch
        from websockets.asyncio.server import serve

        async def multiply(a: int, b: int):  # type: ignore[no-untyped-def]
            return Success(a * b)

        async def handler(ws):  # type: ignore[no-untyped-def]
            async for message in ws:
                request = json.loads(message)
                self.seen.append(request)
                if self.echo_id and "stream" in request:
                    refusal = {"code": -32600, "message": "Invalid Request"}
                    await ws.send(json.dumps({"jsonrpc": "2.0", "error": refusal, "id": request["id"]}))
                    continue
                response = await async_dispatch(message, methods={"multiply": multiply})
                if response:
                    await ws.send(response)

        async def serve_until_stopped() -> None:
            stopped = asyncio.Event()
            async with serve(handler, "127.0.0.1", 0) as server:
                url = f"ws://127.0.0.1:{server.sockets[0].getsockname()[1]}/"
                self.ready.put((url, asyncio.get_running_loop(), stopped))
                await stopped.wait()

        asyncio.run(serve_until_stopped())


@pytest.fixture(params=[False, True], ids=["null-id refusal", "refusal with our id"])
def strict_server(request: pytest.FixtureRequest) -> Iterator[StrictServer]:
    server = StrictServer(echo_id=request.param)
    server.start()
    url, loop, stopped = server.ready.get(timeout=TIMEOUT)
    server.url = url  # type: ignore[attr-defined]
    try:
        yield server
    finally:
        loop.call_soon_threadsafe(stopped.set)  # type: ignore[attr-defined]
        server.join(TIMEOUT)


def test_a_server_that_refuses_the_stream_member_still_answers_a_plain_call(strict_server, capsys):
    """Against a strict server the progress opt-in gets -32600, so the CLI asks again plainly: 12, exit 0."""
    assert main(["--url", strict_server.url, "multiply", "3", "4"]) == 0
    assert capsys.readouterr().out == "12\n"
    asked = [message.get("stream") for message in strict_server.seen if message.get("method") == "multiply"]
    assert asked == [True, None]
