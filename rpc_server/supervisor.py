"""Workers: N server processes on one port, under a small supervisor in the same command.

``--workers N`` starts N copies of the server, each its own process with its
own listening socket on the same address, bound with ``SO_REUSEPORT``: the
kernel spreads new connections over them by a hash of the client's address,
so the cores share the load with no process in the path of the data. This
module is the supervisor that runs them:

- it binds the address once itself (``SO_REUSEPORT``, not listening) to learn
  the port when 0 was asked for, and to keep it while a worker restarts;
- each worker is ``python -m rpc_server`` with the same flags, ``--workers 1``
  and that port; the environment names its number (``RPC_WORKER``) and the
  folder where workers share their metrics (``RPC_METRICS_DIR``);
- the ``listening on`` line (the first worker's: ``wss://`` with TLS) is
  printed once, when every worker has printed its own; a worker's other
  output is passed through; a worker that says nothing within a minute
  stops them all;
- a worker that dies is started again after a delay that doubles with each
  death in a row (0.5 s up to 30 s; back to 0.5 s once it has run for a
  minute), and the supervisor says so on stderr;
- SIGTERM or SIGINT is passed to every worker, each drains as a lone server
  would, and the supervisor exits 0 once all have exited 0 (1 otherwise).

Workers run in a process group of their own (a Ctrl-C reaches them once,
through the supervisor) and, on Linux, get SIGTERM should the supervisor die.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["METRICS_DIR_ENV", "WORKER_ENV", "Supervisor", "cpu_count", "reserve"]

logger = logging.getLogger("rpc_server.supervisor")

WORKER_ENV = "RPC_WORKER"
METRICS_DIR_ENV = "RPC_METRICS_DIR"
_LISTENING = b"listening on "
_FIRST_BACKOFF_S = 0.5
_MAX_BACKOFF_S = 30.0
_STEADY_S = 60.0
_START_TIMEOUT_S = 60.0


def cpu_count() -> int:
    """The cores this process may run on (``--workers auto``)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def reserve(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` with ``SO_REUSEPORT`` and not listening: it holds the port for the workers.

    Raises:
        OSError: the address cannot be bound (taken, or not this machine's).
    """
    family, kind, proto, _, address = socket.getaddrinfo(
        host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
    )[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind(address)
    except OSError:
        sock.close()
        raise
    return sock


def _die_with_parent() -> None:
    # In the worker, before exec: SIGTERM when the supervisor dies, even by SIGKILL.
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass(slots=True)
class _Worker:
    number: int
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    backoff_s: float = _FIRST_BACKOFF_S
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    listening: str = ""  # its own "listening on ..." line
    output: asyncio.Task[None] | None = None


class Supervisor:
    """Runs ``workers`` copies of the server on one port; see the module docstring.

    Args:
        argv: the server's flags, as given on the command line; each worker
            gets them with ``--workers 1 --port PORT`` added.
        workers: how many worker processes.
        host: the address to listen on.
        port: the port; 0 picks a free one.
        start_timeout_s: how long every worker has to say it listens.
    """

    def __init__(
        self, argv: Sequence[str], workers: int, host: str, port: int, *, start_timeout_s: float = _START_TIMEOUT_S
    ) -> None:
        self.argv = list(argv)
        self.workers = [_Worker(number) for number in range(1, workers + 1)]
        self.host = host
        self.port = port
        self.start_timeout_s = start_timeout_s
        self.stopping = False
        self.listening = False
        self._stop = asyncio.Event()
        self._metrics_dir = ""

    def _command(self) -> list[str]:
        return [sys.executable, "-m", "rpc_server", *self.argv, "--workers", "1", "--port", str(self.port)]

    async def run(self) -> int:
        """Start the workers, keep them running until SIGTERM or SIGINT, then drain them; the exit status.

        Raises:
            OSError: the address cannot be bound.
        """
        holder = reserve(self.host, self.port)
        self.port = holder.getsockname()[1]
        self._metrics_dir = tempfile.mkdtemp(prefix="rpc-server-metrics-")
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal, sig)
        try:
            watchers = [asyncio.create_task(self._keep(worker)) for worker in self.workers]
            ready: asyncio.Future[Any] = asyncio.ensure_future(
                asyncio.gather(*(worker.ready.wait() for worker in self.workers))
            )
            stop: asyncio.Future[Any] = asyncio.ensure_future(self._stop.wait())
            done, _ = await asyncio.wait(
                [ready, stop], timeout=self.start_timeout_s, return_when=asyncio.FIRST_COMPLETED
            )
            if ready in done:
                self.listening = True
                # A worker's own line: it knows its scheme (wss:// with TLS) and the port it bound.
                print(self.workers[0].listening, end="", flush=True)
            else:
                ready.cancel()
            if not done:
                silent = [str(worker.number) for worker in self.workers if not worker.ready.is_set()]
                logger.error(
                    "no 'listening on' line from worker %s within %g s; stopping",
                    ", ".join(silent),
                    self.start_timeout_s,
                )
                self._kill()
            await stop
            statuses = await asyncio.gather(*watchers)
            return 0 if all(status == 0 for status in statuses) else 1
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            holder.close()
            shutil.rmtree(self._metrics_dir, ignore_errors=True)

    def _on_signal(self, sig: int) -> None:
        if not self.stopping:
            logger.info("stopping: draining %d workers", len(self.workers))
        self.stopping = True
        self._stop.set()
        for worker in self.workers:
            if worker.process is not None and worker.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.send_signal(sig)

    def _kill(self) -> None:
        """Stop at once: a worker stuck before it listens may not be handling signals yet."""
        self.stopping = True
        self._stop.set()
        for worker in self.workers:
            if worker.process is not None and worker.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    worker.process.kill()

    async def _start(self, worker: _Worker) -> None:
        env = dict(os.environ, **{WORKER_ENV: str(worker.number), METRICS_DIR_ENV: self._metrics_dir})
        env["PYTHONUNBUFFERED"] = "1"
        worker.process = await asyncio.create_subprocess_exec(
            *self._command(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            env=env,
            process_group=0,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        worker.started_at = time.monotonic()
        worker.output = asyncio.create_task(self._relay_output(worker, worker.process))

    async def _relay_output(self, worker: _Worker, process: asyncio.subprocess.Process) -> None:
        assert process.stdout is not None
        async for line in process.stdout:
            if line.startswith(_LISTENING):
                worker.listening = line.decode(errors="replace")
                worker.ready.set()
            else:
                sys.stdout.buffer.write(line)
                sys.stdout.flush()

    async def _keep(self, worker: _Worker) -> int:
        """Run one worker, restarting it when it dies, until the supervisor stops; its last exit status."""
        while True:
            await self._start(worker)
            assert worker.process is not None
            status = await worker.process.wait()
            if worker.output is not None:
                await worker.output
            if self.stopping:
                if status != 0:
                    logger.error("worker %d (pid %d) exited with status %d", worker.number, worker.process.pid, status)
                return status
            if not self.listening:
                # It could not start at all (the address, the tools): starting it again would fail the same way.
                logger.error("worker %d exited with status %d before it was ready; stopping", worker.number, status)
                self._on_signal(signal.SIGTERM)
                return status or 1
            if time.monotonic() - worker.started_at > _STEADY_S:
                worker.backoff_s = _FIRST_BACKOFF_S
            logger.error(
                "worker %d (pid %d) exited with status %d; starting it again in %.1f s",
                worker.number,
                worker.process.pid,
                status,
                worker.backoff_s,
            )
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop.wait(), worker.backoff_s)
            if self.stopping:
                return 0
            worker.backoff_s = min(worker.backoff_s * 2, _MAX_BACKOFF_S)
