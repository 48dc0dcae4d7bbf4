"""The servers measured: what each is, how to start it, and how to make sure it stops.

Each server runs as its own process, in a process group of its own, on 127.0.0.1
with a port it picks (``--port 0``); it says where it listens in one
``listening on ws://...`` line. :class:`ServerProcess` stops the group with
SIGTERM, then SIGKILL; an ``atexit`` hook stops any group still running, and on
Linux each child is also asked to get SIGTERM should the harness die first.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import importlib.util
import json
import os
import re
import resource
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .dialects import ECHO, JSONRPC, SEED, Dialect
from .errors import MissingDependency, ServerStartError

__all__ = [
    "CATALOG",
    "NODE_DIR",
    "ServerProcess",
    "ServerSpec",
    "availability",
    "ensure_node_peer",
    "node_versions",
    "raise_open_files_limit",
    "running",
    "stop_all",
]

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers"
NODE_DIR = HERE / ".node"
START_TIMEOUT = 30.0
_LISTENING = re.compile(rb"listening on (ws://\S+)")


@dataclass(frozen=True, slots=True)
class ServerSpec:
    """One kind of server.

    Args:
        name: the short name used on the command line and in the JSON.
        label: what it is, for the table.
        dialect: what it is sent and must answer.
        command: the command line that starts it, given whether to negotiate deflate.
        token: a credential its clients present (as the ``access_token`` query
            parameter, which every load generator here can send).
    """

    name: str
    label: str
    dialect: Dialect
    command: Callable[[bool], list[str]]
    token: str | None = None


def _ours(compression: bool, *flags: str) -> list[str]:
    # As shipped: every default (validation on, log level info), only a free port.
    return [sys.executable, "-m", "rpc_server", "--port", "0", *flags, *(["--compression"] if compression else [])]


def _ours_with(*flags: str) -> Callable[[bool], list[str]]:
    return lambda compression: _ours(compression, *flags)


# The API key of "ours-key", made for this run; its file is written on first use and removed at exit.
BENCH_KEY = secrets.token_urlsafe(32)
_KEY_FILES: list[Path] = []


def _ours_with_key(compression: bool) -> list[str]:
    # As shipped, with one API key for every tool: authentication runs once per connection.
    if not _KEY_FILES:
        fd, name = tempfile.mkstemp(prefix="bench-keys-")
        with os.fdopen(fd, "w") as keys:
            keys.write(BENCH_KEY + "\n")
        _KEY_FILES.append(Path(name))
        atexit.register(lambda: _KEY_FILES[0].unlink(missing_ok=True))
    return [*_ours(compression), "--api-key-file", str(_KEY_FILES[0])]


def _python_peer(script: str) -> Callable[[bool], list[str]]:
    module = f"benchmarks.peers.{script.removesuffix('.py')}"

    def command(compression: bool) -> list[str]:
        return [sys.executable, "-m", module, "--port", "0", *(["--compression"] if compression else [])]

    return command


def _node(compression: bool) -> list[str]:
    return ["node", str(NODE_DIR / "server.js"), "--port", "0", *(["--compression"] if compression else [])]


CATALOG: dict[str, ServerSpec] = {
    spec.name: spec
    for spec in (
        ServerSpec("ours", "ours (rpc_server, defaults)", JSONRPC, _ours),
        ServerSpec("ours-2w", "ours, --workers 2", JSONRPC, _ours_with("--workers", "2")),
        ServerSpec("ours-nometrics", "ours, --no-metrics", JSONRPC, _ours_with("--no-metrics")),
        ServerSpec("ours-uvloop", "ours, --loop uvloop", JSONRPC, _ours_with("--loop", "uvloop")),
        ServerSpec("ours-key", "ours with an API key (--api-key-file)", JSONRPC, _ours_with_key, BENCH_KEY),
        ServerSpec("echo", "echo (bare websockets: the limit)", ECHO, _python_peer("echo_server.py")),
        ServerSpec("fastapi", "FastAPI + uvicorn (the seed)", SEED, _python_peer("fastapi_peer.py")),
        ServerSpec("node", "Node rpc-websockets", JSONRPC, _node),
        ServerSpec("picows-echo", "picows echo (load generator ceiling)", ECHO, _python_peer("picows_echo.py")),
    )
}


def availability(name: str) -> str | None:
    """Why server ``name`` cannot run here, or None when it can (Node's install is checked later)."""
    if name == "fastapi":
        missing = [m for m in ("fastapi", "uvicorn") if importlib.util.find_spec(m) is None]
        if missing:
            return f"skipped: {', '.join(missing)} not installed (pip install -e '.[bench]')"
    if name == "node":
        missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
        if missing:
            return f"skipped: {' and '.join(missing)} not found on PATH"
    return None


def ensure_node_peer(log: Callable[[str], None], timeout: float = 300.0) -> str | None:
    """Install the Node peer into ``benchmarks/.node/``; give why it cannot run, or None when ready.

    The peer's sources live in ``peers/node_peer/``; they are copied beside the
    ``node_modules`` that ``npm install --prefix`` makes, and npm runs only when
    the dependencies changed or were never installed.
    """
    reason = availability("node")
    if reason is not None:
        return reason
    source = PEERS / "node_peer"
    NODE_DIR.mkdir(exist_ok=True)
    wanted = (source / "package.json").read_text()
    installed = NODE_DIR / "package.json"
    shutil.copyfile(source / "server.js", NODE_DIR / "server.js")
    ready = (NODE_DIR / "node_modules" / "rpc-websockets" / "package.json").exists()
    if ready and installed.exists() and installed.read_text() == wanted:
        return None
    installed.write_text(wanted)
    log("installing the Node peer (npm install --prefix benchmarks/.node) ...")
    command = ["npm", "install", "--prefix", str(NODE_DIR), "--no-audit", "--no-fund", "--loglevel=error"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired:
        installed.unlink(missing_ok=True)
        return f"skipped: npm install took over {timeout:.0f} s"
    if done.returncode != 0:
        installed.unlink(missing_ok=True)
        tail = (done.stderr or done.stdout).strip().splitlines()[-3:]
        return "skipped: npm install failed: " + " / ".join(tail)
    return None


def node_versions() -> dict[str, str]:
    """The versions of node, rpc-websockets and ws, as installed for the Node peer."""
    versions: dict[str, str] = {}
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        versions["node"] = subprocess.run(
            ["node", "--version"], capture_output=True, text=True, timeout=10, check=False
        ).stdout.strip()
    for package in ("rpc-websockets", "ws"):
        with contextlib.suppress(OSError, ValueError, KeyError):
            meta = json.loads((NODE_DIR / "node_modules" / package / "package.json").read_text())
            versions[package] = meta["version"]
    return versions


def raise_open_files_limit(needed: int) -> tuple[int, int]:
    """Raise this process's soft limit on open files towards ``needed`` (children inherit it).

    Returns:
        The soft and hard limits now in force.

    Raises:
        MissingDependency: the hard limit is below ``needed``.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft < needed:
        raise MissingDependency(f"{needed} open files are needed and the hard limit is {hard} (ulimit -Hn)")
    return soft, hard


# -- processes -----------------------------------------------------------------


def psutil_errors() -> type[Exception]:
    import psutil

    return psutil.Error  # type: ignore[no-any-return]


_RUNNING: dict[int, subprocess.Popen[bytes]] = {}


def _cpu_clock(pid: int) -> int | None:
    # A clock of the process's CPU time in ns; /proc and psutil count in 10 ms ticks,
    # too coarse for a run of a fraction of a second.
    clock = ctypes.c_int()
    try:
        if ctypes.CDLL(None, use_errno=True).clock_getcpuclockid(pid, ctypes.byref(clock)) == 0:
            time.clock_gettime(clock.value)
            return clock.value
    except (OSError, AttributeError):
        pass
    return None


def _die_with_parent() -> None:
    # In the child, before exec: SIGTERM when the harness dies, even by SIGKILL.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _signal_group(process: subprocess.Popen[bytes], sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(process.pid, sig)


def _stop(process: subprocess.Popen[bytes], grace: float) -> None:
    if process.poll() is None:
        _signal_group(process, signal.SIGTERM)
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            _signal_group(process, signal.SIGKILL)
            process.wait(5)
    else:
        # The leader is gone; anything it left in its group goes too.
        _signal_group(process, signal.SIGKILL)
    _RUNNING.pop(process.pid, None)


def stop_all(grace: float = 5.0) -> None:
    """Stop every server process still running (also run at exit)."""
    for process in list(_RUNNING.values()):
        _stop(process, grace)


atexit.register(stop_all, 1.0)


class ServerProcess:
    """A running server: its URL, and its memory and CPU as the OS sees them.

    Start with :meth:`start`; stop with :meth:`stop` (or use it as a context manager).
    """

    def __init__(self, spec: ServerSpec, compression: bool, log_dir: Path) -> None:
        self.spec = spec
        self.compression = compression
        self.url = ""
        self._log_path = log_dir / f"{spec.name}{'-deflate' if compression else ''}-{time.monotonic_ns()}.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._ps: Any = None
        self._clock: int | None = None

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the server is not started")
        return self._process.pid

    def launch(self) -> None:
        """Start the process; :meth:`wait_listening` then waits for its URL."""
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        with open(self._log_path, "wb") as log:
            self._process = subprocess.Popen(
                self.spec.command(self.compression),
                cwd=HERE.parent,  # the peers run as modules of the benchmarks package
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=_die_with_parent if sys.platform == "linux" else None,
            )
        _RUNNING[self._process.pid] = self._process

    def wait_listening(self, timeout: float = START_TIMEOUT) -> str:
        """Wait for the ``listening on`` line and give the URL.

        Raises:
            ServerStartError: the process exited, or said nothing in ``timeout`` seconds.
        """
        assert self._process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = _LISTENING.search(self._log_path.read_bytes())
            if found:
                self.url = found.group(1).decode()
                if self.spec.token is not None:
                    self.url += f"?access_token={self.spec.token}"
                import psutil

                self._ps = psutil.Process(self._process.pid)
                self._clock = _cpu_clock(self._process.pid)
                return self.url
            if self._process.poll() is not None:
                raise ServerStartError(f"{self.spec.name} exited with {self._process.returncode}: {self.log_tail()}")
            time.sleep(0.02)
        self.stop()
        raise ServerStartError(
            f"{self.spec.name} did not say where it listens within {timeout:.0f} s: {self.log_tail()}"
        )

    def log_tail(self, lines: int = 5) -> str:
        try:
            text = self._log_path.read_text(errors="replace").strip().splitlines()
        except OSError:
            return "(no log)"
        return " / ".join(text[-lines:]) or "(empty log)"

    def log_lines(self) -> int:
        """How many lines the server has written to stdout and stderr so far."""
        try:
            return self._log_path.read_bytes().count(b"\n")
        except OSError:
            return 0

    def rss(self) -> int:
        """The server's resident memory, in bytes."""
        return int(self._ps.memory_info().rss)

    def cpu_seconds(self) -> float:
        """The CPU time the server has used (user + system, all its threads, and its workers' if it has any)."""
        workers = 0.0
        with contextlib.suppress(psutil_errors()):
            for child in self._ps.children(recursive=True):
                clock = _cpu_clock(child.pid)  # in ns, where psutil counts 10 ms ticks
                try:
                    workers += time.clock_gettime(clock) if clock is not None else sum(child.cpu_times()[:2])
                except OSError:  # it has just exited
                    continue
        if self._clock is not None:
            with contextlib.suppress(OSError):
                return time.clock_gettime(self._clock) + workers
        times = self._ps.cpu_times()
        return float(times.user + times.system) + workers

    def open_files(self) -> int:
        """The server's open file descriptors (sockets included)."""
        return int(self._ps.num_fds())

    @property
    def returncode(self) -> int | None:
        """The exit status once stopped; None while running or before the start."""
        return None if self._process is None else self._process.poll()

    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def stop(self, grace: float = 5.0) -> int | None:
        """Stop the process group; give the exit status."""
        if self._process is None:
            return None
        _stop(self._process, grace)
        return self._process.returncode

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


@contextlib.contextmanager
def running(
    specs: list[ServerSpec],
    compression: bool,
    log_dir: Path | None = None,
    on_failure: Callable[[str, str], None] | None = None,
) -> Iterator[list[ServerProcess]]:
    """Start the servers side by side and give those that listen; stop them all on the way out.

    A server that cannot start is left out, and ``on_failure(name, why)`` is told.
    """
    own_dir = log_dir is None
    directory = Path(tempfile.mkdtemp(prefix="bench-logs-")) if log_dir is None else log_dir
    servers = [ServerProcess(spec, compression, directory) for spec in specs]
    started: list[ServerProcess] = []
    try:
        launched = []
        for server in servers:
            try:
                server.launch()
                launched.append(server)
            except OSError as exc:
                if on_failure is not None:
                    on_failure(server.spec.name, f"cannot start: {exc}")
        for server in launched:
            try:
                server.wait_listening()
                started.append(server)
            except ServerStartError as exc:
                if on_failure is not None:
                    on_failure(server.spec.name, str(exc))
        yield started
    finally:
        for server in servers:
            server.stop()
        if own_dir:
            shutil.rmtree(directory, ignore_errors=True)
