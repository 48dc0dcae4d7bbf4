"""--log-format json and --access-log: one JSON object per line, with context, and never params or credentials."""

from __future__ import annotations

import io
import json
import logging
import signal
import sys
from pathlib import Path

from websockets.asyncio.client import connect

from rpc_server import logs
from rpc_server.logs import AccessLog, JsonFormatter

from .conftest import TOOLS, StartProcess

SECRET_PARAM = "hunter2-in-params"
# Keys of the server's key file: one travels in the query string (its name percent-encoded), one in a header.
SECRET_TOKEN = "token-in-the-query-string-0123456789"
SECRET_HEADER = "credential-in-a-header-0123456789"


async def test_json_logs_are_one_object_per_line_with_context_and_no_secrets(
    start_process: StartProcess, tmp_path: Path
) -> None:
    """Access lines and a tool's failure carry peer, connection, method and id; params and credentials never show.

    At --log-level debug, where websockets logs each request line, header and frame.
    """
    keys = tmp_path / "keys.txt"
    keys.write_text(f"{SECRET_TOKEN}\n{SECRET_HEADER}\n")
    keys.chmod(0o600)
    server = await start_process(
        "--log-format", "json", "--log-level", "debug", "--access-log", "--api-key-file", str(keys), *TOOLS
    )
    # Admitted (the server decodes %5F), so its request line is logged.
    async with connect(f"{server.url}?access%5Ftoken={SECRET_TOKEN}") as ws:
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "multiply", "params": [6, 7], "id": "q-1"}))
        assert json.loads(await ws.recv())["result"] == 42
    async with connect(server.url, additional_headers={"Authorization": f"Bearer {SECRET_HEADER}"}) as ws:
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "multiply", "params": [6, 7], "id": "m-1"}))
        assert json.loads(await ws.recv())["result"] == 42
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "explode", "params": [SECRET_PARAM], "id": 2}))
        assert json.loads(await ws.recv())["error"]["code"] == -32603
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "announce", "params": ["clock", SECRET_PARAM], "id": 3}))
        await ws.recv()
    server.signal(signal.SIGTERM)
    assert await server.wait() == 0

    text = server.log.read_text()
    for secret in (SECRET_PARAM, SECRET_TOKEN, SECRET_HEADER):
        assert secret not in text
    assert "?[redacted]" in text and "Authorization: [redacted]" in text  # request lines and headers were logged
    lines = [json.loads(line) for line in text.splitlines()]  # each line is one object
    for line in lines:
        assert {"time", "level", "logger", "message"} <= line.keys()

    access = [line for line in lines if line["logger"] == "rpc_server.access"]
    assert [(a["method"], a["request_id"], a["code"]) for a in access] == [
        ("multiply", "q-1", "ok"),
        ("multiply", "m-1", "ok"),
        ("explode", 2, "-32603"),
        ("announce", 3, "ok"),
    ]
    for entry in access:
        assert entry["peer"].startswith("127.0.0.1:") and isinstance(entry["connection"], int)
        assert entry["duration_ms"] >= 0 and entry["bytes_in"] > 0 and entry["bytes_out"] > 0
        assert "params" not in entry and "result" not in entry

    failure = next(line for line in lines if line["message"].startswith("tool 'explode' failed"))
    assert failure["level"] == "error" and failure["method"] == "explode" and failure["request_id"] == 2
    assert failure["peer"] == access[2]["peer"] and "RuntimeError: the tool broke" in failure["exception"]


async def test_text_logs_stay_the_default(start_process: StartProcess) -> None:
    """Without --log-format the lines are text, with the context in brackets after the message."""
    server = await start_process("--access-log")
    async with connect(server.url) as ws:
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "multiply", "params": [2, 3], "id": 7}))
        await ws.recv()
    server.signal(signal.SIGTERM)
    await server.wait()
    line = next(line for line in server.log.read_text().splitlines() if "rpc_server.access" in line)
    assert " INFO rpc_server.access: call [" in line and "method=multiply" in line and "request_id=7" in line


async def test_a_client_can_neither_forge_a_log_line_nor_make_one_long(start_process: StartProcess) -> None:
    """Text access lines quote an id with a newline, name an unknown method (unknown), cut a 100 KB id to 64 chars."""
    server = await start_process("--access-log")
    forged = "2026-12-03 13:00:00,000 WARNING rpc_server: forged"
    calls = [
        {"jsonrpc": "2.0", "method": "multiply", "params": [1, 2], "id": f"x]\n{forged} ["},
        {"jsonrpc": "2.0", "method": "nope\nFORGED", "id": 2},
        {"jsonrpc": "2.0", "method": "multiply", "params": [1, 2], "id": "A" * 100_000},
    ]
    async with connect(server.url, max_size=None) as ws:
        for call in calls:
            await ws.send(json.dumps(call))
            await ws.recv()
    server.signal(signal.SIGTERM)
    assert await server.wait() == 0

    lines = server.log.read_text().splitlines()
    assert not any(line.startswith(("2026-12-03 13:00:00", "FORGED")) for line in lines)
    access = [line for line in lines if " rpc_server.access: " in line]
    assert len(access) == 3 and all(len(line) < 400 for line in access)
    assert f'request_id="x]\\n{forged} ["' in access[0]
    assert "method=(unknown) request_id=2 " in access[1]
    assert f"request_id={'A' * 63}… " in access[2]


def test_a_json_access_line_holds_a_bounded_id_and_method() -> None:
    """In JSON too, a 100 KB id is cut to 64 characters, and a huge integer id is described, not written out."""
    lines: list[str] = []

    class Lines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(JsonFormatter().format(record))

    logger = logging.getLogger("test_logs.access")
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(Lines())
    access = AccessLog(logger)
    access.call({"jsonrpc": "2.0", "method": "m" * 1000, "id": "A" * 100_000}, {"result": 1}, 0.001)
    access.call({"jsonrpc": "2.0", "method": "multiply", "id": 10**5000}, {"result": 1}, 0.001)
    first, second = (json.loads(line) for line in lines)
    assert (first["method"], first["request_id"]) == ("m" * 63 + "…", "A" * 63 + "…")
    assert (second["method"], second["request_id"]) == ("multiply", "(an integer of 16610 bits)")


def test_configured_logs_follow_sys_stderr_when_it_is_replaced(monkeypatch) -> None:
    """Logs go to sys.stderr as it is now: one swapped (and closed) after configure() loses no line, raises nothing."""
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    logs.configure("info")  # undone after the test by tests/conftest.py
    first.close()
    second = io.StringIO()
    monkeypatch.setattr(sys, "stderr", second)
    logging.getLogger("rpc_server").warning("after the swap")
    assert second.getvalue().endswith("after the swap\n") and "Logging error" not in second.getvalue()
