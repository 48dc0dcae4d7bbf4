"""What the abuse tests and the attack report share: a server process to measure, and a bystander.

:class:`ServerProcess` runs ``python -m rpc_server`` as a child process, so
that its memory (``/proc/PID/status``: VmRSS, and VmHWM, the peak, which
``/proc/PID/clear_refs`` resets between attacks) and its CPU time (psutil)
are the server's alone, and its stderr is kept (a traceback there fails the
tests). :class:`Bystander` is another client, connected before an attack and
asked for a ``multiply`` every so often during it: "answered within 1 s" is
the fairness check, the one time bound these tests use.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import resource
import signal
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import psutil
from websockets.asyncio.client import ClientConnection, connect

__all__ = [
    "FAIR_S",
    "MIB",
    "ROOT",
    "WAIT",
    "Bystander",
    "ServerProcess",
    "call",
    "raise_own_descriptor_limit",
    "request",
]

ROOT = Path(__file__).resolve().parents[2]
WAIT = 10  # seconds: a bound on waits that normally take well under one (start-up, answers, exit)
FAIR_S = 1.0  # the fairness check: another connection is answered within this
MIB = 2**20
READY = re.compile(r"^listening on (ws://\S+)$")


def request(method: str, params: Any = None, id: Any = None, **extra: Any) -> str:
    """One JSON-RPC request (a notification when ``id`` is None), as text."""
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method, **extra}
    if params is not None:
        message["params"] = params
    if id is not None:
        message["id"] = id
    return orjson.dumps(message).decode()


async def call(ws: ClientConnection, method: str, params: Any = None, id: Any = 1) -> Any:
    """Send one request and return the next message, parsed, within WAIT seconds."""
    await ws.send(request(method, params, id))
    async with asyncio.timeout(WAIT):
        return orjson.loads(await ws.recv())


def raise_own_descriptor_limit() -> int:
    """Raise this process's open-files limit to its hard limit (a test opening hundreds of sockets needs it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


@dataclass(slots=True)
class ServerProcess:
    """A ``python -m rpc_server`` child, measured from outside.

    Attributes:
        url: its endpoint, from its ready line.
        log: the lines it wrote to stderr so far.
    """

    process: asyncio.subprocess.Process
    url: str
    log: list[str] = field(default_factory=list)
    _reader: asyncio.Task[None] | None = None

    @classmethod
    @contextlib.asynccontextmanager
    async def run(
        cls,
        *flags: str,
        env: dict[str, str] | None = None,
        tree: Path = ROOT,
        descriptors: tuple[int, int] | None = None,
    ) -> AsyncIterator[ServerProcess]:
        """Start it (``--port 0`` and ``flags``) from ``tree``'s code, and always stop it afterwards.

        Args:
            env: more environment variables. Limits set as ``RPC_*`` variables
                rather than flags let older code, which does not know them,
                start all the same and show what it did without them.
            tree: the source tree whose ``rpc_server`` runs (another checkout, to measure old code).
            descriptors: its (soft, hard) open-files limits.
        """

        def limit() -> None:  # runs in the child, before exec
            if descriptors is not None:
                resource.setrlimit(resource.RLIMIT_NOFILE, descriptors)

        environment = {**os.environ, **(env or {}), "PYTHONPATH": str(tree)}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "rpc_server",
            "--port",
            "0",
            *flags,
            cwd=tree,
            env=environment,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            preexec_fn=limit,
        )
        try:
            assert process.stdout is not None
            async with asyncio.timeout(WAIT * 3):  # start-up on a loaded 2-core machine
                line = (await process.stdout.readline()).decode().strip()
            match = READY.match(line)
            if match is None:
                _, err = await process.communicate()
                raise AssertionError(f"the server did not start: {line!r} {err.decode()[-2000:]}")
            server = cls(process, match.group(1))
            server._reader = asyncio.create_task(server._read_log())
            yield server
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()

    async def _read_log(self) -> None:
        # Read stderr as it comes: a flood of log lines must not fill the pipe and stall the server.
        assert self.process.stderr is not None
        while line := await self.process.stderr.readline():
            self.log.append(line.decode(errors="replace").rstrip("\n"))

    @property
    def pid(self) -> int:
        return self.process.pid

    def _status(self, key: str) -> int:
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
        raise KeyError(key)

    def rss_bytes(self) -> int:
        """Its resident memory now."""
        return self._status("VmRSS")

    def peak_bytes(self) -> int:
        """Its highest resident memory since start-up or the last :meth:`reset_peak`."""
        return self._status("VmHWM")

    def reset_peak(self) -> None:
        """Make the peak its current resident memory (Linux: clear_refs 5)."""
        Path(f"/proc/{self.pid}/clear_refs").write_text("5")

    def cpu_s(self) -> float:
        """CPU seconds it has used, user and system."""
        times = psutil.Process(self.pid).cpu_times()
        return float(times.user + times.system)

    def tracebacks(self) -> list[str]:
        return [line for line in self.log if "Traceback" in line]

    async def stop(self, sig: signal.Signals = signal.SIGTERM) -> int:
        """Send ``sig`` and wait (within WAIT seconds) for its exit status."""
        self.process.send_signal(sig)
        async with asyncio.timeout(WAIT):
            status = await self.process.wait()
            if self._reader is not None:
                await self._reader
        return status


class Bystander:
    """Another client, connected before the attack; see the module docstring.

    ``async with Bystander(url) as bystander:`` probes every ``every`` seconds
    until the block ends; :attr:`slow` lists the probes not answered within
    :data:`FAIR_S` (the one time bound these tests assert). A slow answer is
    still waited for (up to WAIT), so the connection stays in step.
    """

    def __init__(self, url: str, every: float = 0.2) -> None:
        self.url = url
        self.every = every
        self.probes = 0
        self.slow: list[str] = []
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Bystander:
        self._ws = await connect(self.url, open_timeout=WAIT, max_size=None)
        await self.probe()
        self._task = asyncio.create_task(self._probing())
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.probe()
        if self._ws is not None:
            await self._ws.close()

    async def probe(self) -> None:
        """One call on the bystander's connection; noted in :attr:`slow` if not answered within FAIR_S."""
        assert self._ws is not None
        n = self.probes = self.probes + 1
        loop = asyncio.get_running_loop()
        sent = loop.time()
        await self._ws.send(request("multiply", [n, 2], n))
        async with asyncio.timeout(WAIT):
            while True:  # an answer to a probe cut short (by the end of the block) may come first
                answer = orjson.loads(await self._ws.recv())
                if answer.get("id") == n:
                    break
        waited = loop.time() - sent
        assert answer == {"jsonrpc": "2.0", "result": 2 * n, "id": n}, answer
        if waited > FAIR_S:
            self.slow.append(f"probe {n} answered after {waited:.2f} s")

    async def _probing(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            await self.probe()


async def wait_for(condition: Callable[[], bool], what: str, timeout: float = WAIT) -> None:
    """Poll ``condition`` every 10 ms until it holds; AssertionError naming ``what`` after ``timeout``."""
    try:
        async with asyncio.timeout(timeout):
            while not condition():
                await asyncio.sleep(0.01)
    except TimeoutError:
        raise AssertionError(f"gave up waiting: {what}") from None
