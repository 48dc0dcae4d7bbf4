"""Fixtures for the client's tests: servers that blocking code can reach, and a server we did not write."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path

import pytest

from tests.servers import ThreadedServer

NODE_DIR = Path(__file__).parent / "node"
NPM_INSTALL = ["npm", "ci", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund"]


@pytest.fixture
def threaded_server() -> Iterator[str]:
    """The URL of a server with the built-in tools, running in a thread of its own."""
    server = ThreadedServer()
    url = server.start()
    yield url
    server.stop()


@pytest.fixture
def unused_url() -> str:
    """A ws:// URL on 127.0.0.1 where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"ws://127.0.0.1:{port}/ws"


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A ws:// URL where a socket listens, so TCP connects, and nothing ever answers the handshake."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)  # never accepted: the kernel completes the TCP handshake, no one reads
        yield f"ws://127.0.0.1:{sock.getsockname()[1]}/ws"


def read_listening_line(proc: subprocess.Popen[str], timeout: float = 20) -> str:
    """The URL from a server's "listening on URL" line; kills the process if it does not come in time."""
    result: Future[str] = Future()

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("listening on "):
                result.set_result(line.removeprefix("listening on ").strip())
                return
        result.set_exception(RuntimeError(f"the server exited with {proc.wait()} before listening"))

    threading.Thread(target=read, daemon=True).start()
    try:
        return result.result(timeout=timeout)
    except BaseException:
        proc.kill()
        proc.wait()
        raise


def stop_process(proc: subprocess.Popen[str]) -> None:
    if proc.stdin is not None:
        proc.stdin.close()  # the node server exits when its stdin closes
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@pytest.fixture
def server_process() -> Iterator[str]:
    """``python -m rpc_server --port 0`` as a subprocess; its URL, and it is stopped after the test."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "rpc_server", "--port", "0", "--log-level", "warning"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        yield read_listening_line(proc)
    finally:
        stop_process(proc)


def _ensure_node_modules() -> None:
    if (NODE_DIR / "node_modules" / "rpc-websockets").is_dir():
        return
    if shutil.which("npm") is None:
        pytest.fail("these tests need Node.js with npm, to run a JSON-RPC server this project did not write")
    subprocess.run(NPM_INSTALL, check=True, timeout=300, stdout=subprocess.DEVNULL)


@pytest.fixture(scope="module")
def rpc_websockets_url() -> Iterator[str]:
    """The URL of a server built on the npm package rpc-websockets (see node/rpc_websockets_server.js)."""
    _ensure_node_modules()
    proc = subprocess.Popen(
        ["node", str(NODE_DIR / "rpc_websockets_server.js"), "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=NODE_DIR,
        env={**os.environ, "NODE_ENV": "test"},
    )
    try:
        yield read_listening_line(proc)
    finally:
        stop_process(proc)
