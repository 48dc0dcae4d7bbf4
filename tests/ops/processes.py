"""Real processes for the operations tests: servers (``python -m rpc_server``), Redis and nginx.

Each is started on free ports of 127.0.0.1 and stopped by the fixture that
started it, process group and all, even when the test fails.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import redis

__all__ = ["Nginx", "RedisServer", "ServerProcess", "free_port", "wait_for"]

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT_S = 60.0
_LISTENING = re.compile(r"listening on (wss?://\S+)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_for(condition: object, timeout: float, what: str, every: float = 0.05) -> None:
    """Poll ``condition()`` (a function, maybe async) until true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = condition()  # type: ignore[operator]
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(every)


def _stop_group(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)
            process.wait(10)
    return process.returncode


@dataclass
class ServerProcess:
    """``python -m rpc_server FLAGS`` in a process group of its own; stderr (the logs) goes to a file."""

    flags: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    process: subprocess.Popen[bytes] | None = None
    url: str = ""
    port: int = 0
    stdout: Path | None = None

    def launch(self) -> None:
        self.stdout = self.log.with_suffix(".out")
        env = dict(os.environ, PYTHONUNBUFFERED="1", **self.env)
        with open(self.stdout, "wb") as out, open(self.log, "wb") as err:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "rpc_server", "--port", "0", *self.flags],
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                env=env,
                start_new_session=True,
            )

    async def start(self) -> ServerProcess:
        """Launch, and wait for the ``listening on`` line."""
        self.launch()
        assert self.process is not None and self.stdout is not None

        def listening() -> bool:
            assert self.process is not None and self.stdout is not None
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited with {self.process.returncode}: {self.log.read_text()}")
            return bool(_LISTENING.search(self.stdout.read_text()))

        await wait_for(listening, START_TIMEOUT_S, "the server's 'listening on' line")
        found = _LISTENING.search(self.stdout.read_text())
        assert found is not None
        self.url = found.group(1)
        self.port = int(self.url.rsplit(":", 1)[1].split("/")[0])
        return self

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    async def wait(self, timeout: float = 30.0) -> int:
        """Wait for the process to exit; its status."""
        assert self.process is not None
        await wait_for(lambda: self.process is not None and self.process.poll() is not None, timeout, "the exit")
        return self.process.returncode

    def stop(self) -> int | None:
        return None if self.process is None else _stop_group(self.process)

    def listening_lines(self) -> int:
        assert self.stdout is not None
        return len(_LISTENING.findall(self.stdout.read_text()))


@dataclass
class RedisServer:
    """``redis-server`` on a free port, with nothing written to disk; it can be stopped and started again."""

    executable: str
    directory: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def ping(self) -> bool:
        try:
            with redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=1) as client:
                return bool(client.ping())
        except redis.RedisError:
            return False

    async def start(self) -> RedisServer:
        command = [self.executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""]
        command += ["--appendonly", "no", "--dir", str(self.directory)]
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True
        )
        await wait_for(self.ping, 20.0, "redis-server to answer PING")
        return self

    def stop(self) -> None:
        if self.process is not None:
            _stop_group(self.process)


@dataclass
class Nginx:
    """nginx with deploy/nginx.conf rendered onto a free port, in front of the given replicas."""

    executable: str
    directory: Path
    upstreams: list[int]
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    def render(self) -> Path:
        text = (ROOT / "deploy" / "nginx.conf").read_text()
        servers = "".join(f"server 127.0.0.1:{port} max_fails=3 fail_timeout=10s;\n" for port in self.upstreams)
        text, replaced = re.subn(
            r"(?m)^(\s*)server 127\.0\.0\.1:800\d [^\n]*\n(?:\s*server 127[^\n]*\n)*", servers, text
        )
        assert replaced == 1, "deploy/nginx.conf: the upstream servers were not found"
        text, replaced = re.subn(r"listen 8080;", f"listen 127.0.0.1:{self.port};", text)
        assert replaced == 1, "deploy/nginx.conf: 'listen 8080;' was not found"
        # Logs and temporary files in the test's folder, not the system's.
        local = "".join(
            f"    {name} {self.directory / name.split('_')[0]};\n"
            for name in (
                "client_body_temp_path",
                "proxy_temp_path",
                "fastcgi_temp_path",
                "uwsgi_temp_path",
                "scgi_temp_path",
            )
        )
        text = text.replace("http {\n", f"http {{\n    access_log {self.directory / 'access.log'};\n{local}", 1)
        path = self.directory / "nginx.conf"
        path.write_text(text)
        return path

    async def start(self) -> Nginx:
        config = self.render()
        directives = f"daemon off; pid {self.directory / 'nginx.pid'}; error_log {self.directory / 'error.log'};"
        self.process = subprocess.Popen(
            [self.executable, "-p", str(self.directory), "-c", str(config), "-g", directives],
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )

        def up() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"nginx exited: {(self.directory / 'error.log').read_text()}")
            with socket.socket() as sock:
                return sock.connect_ex(("127.0.0.1", self.port)) == 0

        await wait_for(up, 20.0, "nginx to listen")
        return self

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def stop(self) -> None:
        if self.process is not None:
            _stop_group(self.process, signal.SIGQUIT)
