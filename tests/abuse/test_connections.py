"""The connection limit and the descriptor limit (issue 9, defect 3).

Before: no connection limit; with 1,024 descriptors, 1,500 clients made 483
time out and asyncio's accept loop wrote 73,000 tracebacks (32 MB) in 25 s.
Now the server raises its open-files limit to the hard one, refuses upgrades
past ``max_connections`` with HTTP 503 and ``Retry-After``, cuts sockets far
past it at once, and logs a failed accept at most once every few seconds.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus

from rpc_server import capacity

from .harness import WAIT, ServerProcess, call, raise_own_descriptor_limit


async def _connect(url: str) -> tuple[str, ClientConnection | None]:
    """One client's outcome: "open", "503", "cut" (refused or reset) or "timeout"."""
    try:
        ws = await connect(url, open_timeout=WAIT)
    except InvalidStatus as exc:
        status = exc.response.status_code
        assert status != 503 or exc.response.headers.get("Retry-After") == str(capacity.RETRY_AFTER_S)
        return str(status), None
    except TimeoutError:
        return "timeout", None
    except (OSError, EOFError, Exception) as exc:  # a reset or an abrupt end: cut, with an answer at once
        if "timed out" in str(exc):
            return "timeout", None
        return "cut", None
    return "open", ws


async def test_past_max_connections_clients_are_refused_at_once_and_the_log_stays_quiet() -> None:
    """400 clients against 256 descriptors: at most 156 open, the rest 503 or cut, none waits; no traceback."""
    raise_own_descriptor_limit()
    async with ServerProcess.run(descriptors=(256, 256)) as server:
        outcomes = await asyncio.gather(*(_connect(server.url) for _ in range(400)))
        kinds = [kind for kind, _ in outcomes]
        opened = [ws for _, ws in outcomes if ws is not None]
        try:
            assert kinds.count("timeout") == 0, f"{kinds.count('timeout')} clients waited for nothing"
            assert len(opened) <= capacity.default_max_connections(256)
            assert kinds.count("503") > 0
            # Those let in are served.
            assert (await call(opened[0], "multiply", [6, 7]))["result"] == 42
        finally:
            await asyncio.gather(*(ws.close() for ws in opened))
        # Once they are gone, a newcomer is let in again.
        async with connect(server.url, open_timeout=WAIT) as newcomer:
            assert (await call(newcomer, "multiply", [2, 3]))["result"] == 6
        assert server.tracebacks() == []
        assert len(server.log) < 10, "\n".join(server.log[:20])


def _open_files_limit(pid: int) -> int:
    for line in Path(f"/proc/{pid}/limits").read_text().splitlines():
        if line.startswith("Max open files"):
            return int(line.split()[3])
    raise AssertionError("no open-files line in /proc/PID/limits")


async def test_the_server_raises_its_open_files_limit_to_the_hard_one() -> None:
    """Started with a soft limit of 256 under a hard one of 1,024, it runs with 1,024."""
    async with ServerProcess.run(descriptors=(256, 1024)) as server:
        assert _open_files_limit(server.pid) == 1024


async def test_an_upgrade_past_max_connections_gets_503_with_retry_after(start_server: Any) -> None:
    """max_connections=2: the third client is refused with 503 and Retry-After; once one leaves, it gets in."""
    server = await start_server(max_connections=2)
    first = await connect(server.url)
    second = await connect(server.url)
    try:
        with pytest.raises(InvalidStatus) as refused:
            await connect(server.url)
        assert refused.value.response.status_code == 503
        assert refused.value.response.headers["Retry-After"] == str(capacity.RETRY_AFTER_S)
        assert b"limit of 2 connections" in refused.value.response.body
        await first.close()
        async with asyncio.timeout(WAIT):
            while len(server.connections) > 1:
                await asyncio.sleep(0.01)
        async with connect(server.url) as third:
            assert (await call(third, "multiply", [3, 4]))["result"] == 12
    finally:
        await second.close()


def test_failed_accepts_are_logged_once_in_a_while_without_a_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """A thousand 'out of system resource' accepts in a row make one warning, with no traceback."""
    loop = asyncio.new_event_loop()
    try:
        capacity.AcceptErrors.install(loop, lambda: 7)
        handler = loop.get_exception_handler()
        assert handler is not None
        error = OSError(24, "Too many open files")
        with caplog.at_level(logging.WARNING, logger="rpc_server"):
            for _ in range(1000):
                handler(loop, {"message": "socket.accept() out of system resource", "exception": error})
        warnings = [r for r in caplog.records if r.name == "rpc_server"]
        assert len(warnings) == 1
        assert warnings[0].exc_info is None
        assert "Too many open files" in warnings[0].getMessage() and "7 open" in warnings[0].getMessage()
        # Installing twice does not stack handlers.
        capacity.AcceptErrors.install(loop, lambda: 7)
        assert loop.get_exception_handler() is handler
    finally:
        loop.close()


def test_other_loop_errors_still_reach_the_handler_that_was_there() -> None:
    """Only failed accepts are thinned out: anything else goes to the previous handler."""
    seen: list[dict[str, Any]] = []
    loop = asyncio.new_event_loop()
    try:
        loop.set_exception_handler(lambda _, context: seen.append(context))
        capacity.AcceptErrors.install(loop, lambda: 0)
        handler = loop.get_exception_handler()
        assert handler is not None
        handler(loop, {"message": "something else"})
        assert seen == [{"message": "something else"}]
    finally:
        loop.close()
