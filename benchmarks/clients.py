"""The clients measured against one running server (ours): what a Python user would call it with.

Each client is measured the same ways, as far as it can be:

- ``gather``: ``asyncio.gather`` of N ``multiply`` calls over one connection;
- ``window``: the same N calls, 100 (``--window``) in flight, from 100 tasks calling in turn;
- ``sequential``: one call at a time, each round trip timed (p50, p90, p99);
- ``batch``: one JSON-RPC batch of 1,000 calls, from building it to the results in hand.

The clients: the picows load generator of :mod:`.loadgen` (the ceiling: C frames, a
callback per answer, prebuilt requests; its batch is sent prebuilt too), this project's
:class:`rpc_client.Client` (on asyncio's loop, and on uvloop beside it), its blocking
facade (``connect_sync``, called from a thread), a plain ``websockets`` client with a
dict of futures (what a user would write by hand), and ``jsonrpc-websocket`` from PyPI
(what a user would install instead; it has no batches). Each answer is checked.

The client's CPU time (this process, every thread) is measured beside each figure: the
server runs in a process of its own.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import statistics
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from .dialects import JSONRPC
from .errors import LoadError
from .loadgen import Connection, check_batch, percentile

__all__ = ["CLIENTS", "CLIENT_SCENARIOS", "ClientScenario", "ClientSpec", "Load", "available", "measure"]

Figures = dict[str, float]


@dataclass(frozen=True, slots=True)
class Load:
    """How much each measurement does, and its time bound."""

    calls: int
    window: int
    sequential: int
    batch_size: int
    batch_repeats: int
    timeout: float


# One way of calling: opens its connection(s), runs the work, closes; raises on a wrong answer.
Driver = Callable[[str, Load, str], Awaitable[Figures]]


@dataclass(frozen=True, slots=True)
class ClientSpec:
    """A client: its label for the table and what it does in each way of calling."""

    name: str
    label: str
    open: Callable[[str, Load], contextlib.AbstractAsyncContextManager[Any]]
    modes: frozenset[str]


# -- the ways of calling, for any client with an async call(i) ------------------------

Call = Callable[[int], Awaitable[Any]]


async def _gather(call: Call, load: Load) -> tuple[float, int]:
    results = await asyncio.gather(*(call(i) for i in range(load.calls)))
    return load.calls, sum(result != 2 * i for i, result in enumerate(results))


async def _window(call: Call, load: Load) -> tuple[float, int]:
    numbers = iter(range(load.calls))
    errors = 0

    async def worker() -> None:
        nonlocal errors
        for i in numbers:
            errors += await call(i) != 2 * i

    await asyncio.gather(*(worker() for _ in range(load.window)))
    return load.calls, errors


async def _sequential(call: Call, load: Load) -> tuple[list[int], int]:
    latencies: list[int] = []
    errors = 0
    now = time.perf_counter_ns
    for i in range(load.sequential):
        started = now()
        result = await call(i)
        latencies.append(now() - started)
        errors += result != 2 * i
    return latencies, errors


def _throughput(calls: float, errors: int, seconds: float, cpu: float) -> Figures:
    return {
        "calls_per_s": calls / seconds if seconds > 0 else 0.0,
        "seconds": seconds,
        "errors": errors,
        "client_cpu_us_per_call": cpu * 1e6 / calls if calls else 0.0,
    }


def _latency(latencies: list[int], errors: int, cpu: float) -> Figures:
    values = sorted(latencies)
    return {
        "p50_us": percentile(values, 50) / 1e3,
        "p90_us": percentile(values, 90) / 1e3,
        "p99_us": percentile(values, 99) / 1e3,
        "errors": errors,
        "client_cpu_us_per_call": cpu * 1e6 / len(values) if values else 0.0,
    }


def _batch_figures(samples: list[float], errors: int, cpu: float, load: Load) -> Figures:
    return {
        "ms": statistics.median(samples),
        "ms_min": min(samples),
        "errors": errors,
        "client_cpu_us_per_call": cpu * 1e6 / (load.batch_size * load.batch_repeats),
    }


async def _timed(work: Awaitable[Any], timeout: float) -> tuple[Any, float, float]:
    cpu, started = time.process_time(), time.perf_counter()
    try:
        async with asyncio.timeout(timeout):
            outcome = await work
    except TimeoutError:
        raise LoadError(f"the measurement did not finish within {timeout} s") from None
    return outcome, time.perf_counter() - started, time.process_time() - cpu


async def _call_modes(call: Call, batch: Callable[[int], Awaitable[int]] | None, mode: str, load: Load) -> Figures:
    """One measurement of a client that offers ``call(i)`` (and ``batch(size)``, giving its errors)."""
    if mode in ("gather", "window"):
        (calls, errors), seconds, cpu = await _timed(
            (_gather if mode == "gather" else _window)(call, load), load.timeout
        )
        return _throughput(calls, errors, seconds, cpu)
    if mode == "sequential":
        (latencies, errors), _, cpu = await _timed(_sequential(call, load), load.timeout)
        return _latency(latencies, errors, cpu)
    assert batch is not None
    samples: list[float] = []
    errors = 0
    cpu = time.process_time()
    for _ in range(load.batch_repeats):
        started = time.perf_counter()
        errors += (await _timed(batch(load.batch_size), load.timeout))[0]
        samples.append((time.perf_counter() - started) * 1e3)
    return _batch_figures(samples, errors, time.process_time() - cpu, load)


# -- the clients ---------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _loadgen(url: str, load: Load) -> AsyncIterator[Callable[[str], Awaitable[Figures]]]:
    conn = await Connection.open(url, JSONRPC, timeout=load.timeout)

    async def run(mode: str) -> Figures:
        if mode in ("gather", "window"):
            # Its "gather" is its usual 100 in flight: the reference the goals name.
            run = await conn.calls(load.calls, window=load.window, timeout=load.timeout)
            return _throughput(run.answered, run.errors, run.seconds, run.client_cpu_seconds)
        if mode == "sequential":
            run = await conn.calls(load.sequential, window=1, timeout=load.timeout, latencies=True)
            return _latency(run.latencies_ns, run.errors, run.client_cpu_seconds)
        ids = range(1, load.batch_size + 1)
        payload = JSONRPC.batch(ids)
        samples, errors, cpu = [], 0, time.process_time()
        for _ in range(load.batch_repeats):
            seconds, reply = await conn.message(payload, timeout=load.timeout)
            errors += load.batch_size if reply is None else check_batch(JSONRPC, reply, ids)
            samples.append(seconds * 1e3)
        return _batch_figures(samples, errors, time.process_time() - cpu, load)

    try:
        yield run
    finally:
        await conn.close()


async def _ours_batch(client: Any, size: int) -> int:
    async with client.batch() as batch:
        handles = [batch.call("multiply", i, 2) for i in range(size)]
    return sum(handle.result() != 2 * i for i, handle in enumerate(handles))


@contextlib.asynccontextmanager
async def _ours(url: str, load: Load) -> AsyncIterator[Callable[[str], Awaitable[Figures]]]:
    from rpc_client import Client

    async with Client(url, timeout=load.timeout) as client:

        def call(i: int) -> Awaitable[Any]:
            return client.call("multiply", i, 2)

        async def run(mode: str) -> Figures:
            return await _call_modes(call, lambda size: _ours_batch(client, size), mode, load)

        yield run


@contextlib.asynccontextmanager
async def _ours_uvloop(url: str, load: Load) -> AsyncIterator[Callable[[str], Awaitable[Figures]]]:
    """This project's client on uvloop: each measurement runs on a uvloop loop in a thread of its own."""
    import uvloop

    async def on_uvloop(mode: str) -> Figures:
        async with _ours(url, load) as run:
            return await run(mode)

    async def run(mode: str) -> Figures:
        return await asyncio.to_thread(uvloop.run, on_uvloop(mode))

    yield run


@contextlib.asynccontextmanager
async def _ours_sync(url: str, load: Load) -> AsyncIterator[Callable[[str], Awaitable[Figures]]]:
    """The blocking facade, called from one thread (the harness's loop waits meanwhile)."""
    from rpc_client import connect_sync

    client = await asyncio.to_thread(connect_sync, url, timeout=load.timeout)

    def sequential() -> Figures:
        latencies, errors, now = [], 0, time.perf_counter_ns
        cpu = time.process_time()
        for i in range(load.sequential):
            started = now()
            errors += client.call("multiply", i, 2) != 2 * i
            latencies.append(now() - started)
        return _latency(latencies, errors, time.process_time() - cpu)

    def batches() -> Figures:
        samples, errors, cpu = [], 0, time.process_time()
        for _ in range(load.batch_repeats):
            started = time.perf_counter()
            with client.batch() as batch:
                handles = [batch.call("multiply", i, 2) for i in range(load.batch_size)]
            errors += sum(handle.result() != 2 * i for i, handle in enumerate(handles))
            samples.append((time.perf_counter() - started) * 1e3)
        return _batch_figures(samples, errors, time.process_time() - cpu, load)

    async def run(mode: str) -> Figures:
        return await asyncio.to_thread(sequential if mode == "sequential" else batches)

    try:
        yield run
    finally:
        await asyncio.to_thread(client.close)


class _ByHand:
    """What a user would write on ``websockets``: a dict of futures and one reader task."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.ids = itertools.count(1)
        self.waiting: dict[int, asyncio.Future[Any]] = {}
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for message in self.ws:
            answer = json.loads(message)
            for one in answer if isinstance(answer, list) else [answer]:
                future = self.waiting.pop(one.get("id"), None)
                if future is not None and not future.done():
                    future.set_result(one)

    async def call(self, method: str, *params: Any) -> Any:
        id = next(self.ids)
        future = self.waiting[id] = asyncio.get_running_loop().create_future()
        await self.ws.send(json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": id}))
        return (await future)["result"]

    async def batch(self, size: int) -> int:
        ids = [next(self.ids) for _ in range(size)]
        loop = asyncio.get_running_loop()
        futures = [loop.create_future() for _ in ids]
        self.waiting.update(zip(ids, futures, strict=True))
        requests = [{"jsonrpc": "2.0", "method": "multiply", "params": [i, 2], "id": id} for i, id in enumerate(ids)]
        await self.ws.send(json.dumps(requests))
        answers = await asyncio.gather(*futures)
        return sum(answer.get("result") != 2 * i for i, answer in enumerate(answers))


@contextlib.asynccontextmanager
async def _by_hand(url: str, load: Load) -> AsyncIterator[Callable[[str], Awaitable[Figures]]]:
    from websockets.asyncio.client import connect

    async with connect(url, compression=None, max_size=2**24) as ws:
        hand = _ByHand(ws)

        def call(i: int) -> Awaitable[Any]:
            return hand.call("multiply", i, 2)

        async def run(mode: str) -> Figures:
            return await _call_modes(call, hand.batch, mode, load)

        try:
            yield run
        finally:
            hand.reader.cancel()


@contextlib.asynccontextmanager
async def _jsonrpc_websocket(url: str, load: Load) -> AsyncIterator[Callable[[str], Awaitable[Figures]]]:
    from jsonrpc_websocket import Server

    server = Server(url)
    await server.ws_connect()
    try:

        def call(i: int) -> Awaitable[Any]:
            return server.multiply(i, 2)

        async def run(mode: str) -> Figures:
            return await _call_modes(call, None, mode, load)

        yield run
    finally:
        await server.close()


ALL_MODES = frozenset(("gather", "window", "sequential", "batch"))

CLIENTS: dict[str, ClientSpec] = {
    spec.name: spec
    for spec in (
        ClientSpec("loadgen", "picows load generator (the ceiling)", _loadgen, ALL_MODES),
        ClientSpec("ours", "rpc_client.Client", _ours, ALL_MODES),
        ClientSpec("ours-uvloop", "rpc_client.Client on uvloop", _ours_uvloop, ALL_MODES),
        ClientSpec("ours-sync", "rpc_client connect_sync", _ours_sync, frozenset(("sequential", "batch"))),
        ClientSpec("websockets", "websockets by hand", _by_hand, ALL_MODES),
        ClientSpec(
            "jsonrpc-websocket",
            "jsonrpc-websocket (PyPI)",
            _jsonrpc_websocket,
            frozenset(("gather", "window", "sequential")),
        ),
    )
}


def available(name: str) -> str | None:
    """Why client ``name`` cannot run here, or None."""
    import importlib.util

    needs = {"ours-uvloop": "uvloop", "jsonrpc-websocket": "jsonrpc_websocket"}.get(name)
    if needs is not None and importlib.util.find_spec(needs) is None:
        return f"skipped: {needs} not installed (pip install -e '.[bench,test]')"
    return None


async def measure(spec: ClientSpec, url: str, mode: str, load: Load) -> Figures:
    """One measurement of ``mode`` by ``spec`` against ``url``; the connection is opened and closed around it.

    Raises:
        LoadError: it did not finish in time.
    """
    async with spec.open(url, load) as run:
        return await run(mode)


@dataclass(frozen=True, slots=True)
class ClientScenario:
    """One way of calling, measured for every client that offers it."""

    key: str
    number: int
    mode: str
    title: Callable[[Load], str]


CLIENT_SCENARIOS: dict[str, ClientScenario] = {
    s.key: s
    for s in (
        ClientScenario(
            "client-gather",
            6,
            "gather",
            lambda z: (
                f"client gather: asyncio.gather of {z.calls:,} calls on one connection "
                f"(the load generator: {z.window} in flight)"
            ),
        ),
        ClientScenario(
            "client-window",
            7,
            "window",
            lambda z: f"client window: {z.calls:,} calls on one connection, {z.window} in flight",
        ),
        ClientScenario(
            "client-latency",
            8,
            "sequential",
            lambda z: f"client latency: {z.sequential:,} calls one at a time, round trip",
        ),
        ClientScenario(
            "client-batch",
            9,
            "batch",
            lambda z: (
                f"client batch: {z.batch_size:,} calls in one batch, built to results (median of {z.batch_repeats})"
            ),
        ),
    )
}
