"""The five scenarios: what each measures on one server, once, and what its figures mean.

1. ``throughput``: ``multiply`` calls over one connection, a fixed number in flight
   (each answer sends the next request): answered calls per second; beside it the CPU
   that the load generator and the server spent per call.
2. ``latency``: calls one at a time over one connection: round trip percentiles in µs.
3. ``batch``: one JSON-RPC batch, timed from its send to its whole answer, in ms
   (repeated; the round's figure is the median). A server without batches (the seed's
   FastAPI peer) gets the same number of calls pipelined instead, all sent at once.
4. ``scale``: many connections opened at once, each making a few calls one at a time,
   then all closed: the seconds it took, the errors, and the server's RSS before, with
   all open, and once it has let them all go. Each round is one cycle on the same
   server process, so the RSS of the last cycle against the first shows whether memory
   stays flat.
5. ``deflate``: scenario 1 with permessage-deflate negotiated (servers started with
   compression on; the client is picows' websockets-compatible layer, see
   :mod:`benchmarks.loadgen`).
6. ``connections``: many connections (64), each with calls pipelined, all at once, on
   one worker and on two (``--workers 2``): calls/s, the server's CPU (all its
   processes), and calls per server-CPU-second, the fairer figure when the load
   generator competes for the same cores.
7. ``metrics``: scenario 1 with the metrics on (as shipped) and with ``--no-metrics``.

A round's figures are a flat dict of numbers; the report takes their medians.
"""

from __future__ import annotations

import asyncio
import dataclasses
import statistics
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from picows import WSError

from .errors import LoadError
from .loadgen import Connection, check_batch, deflate_calls, percentile
from .servers import ServerProcess

__all__ = ["FULL", "QUICK", "SCENARIOS", "Metric", "Scenario", "Sizes", "describe"]

Figures = dict[str, float]


@dataclass(frozen=True, slots=True)
class Sizes:
    """How big each scenario is, and the time bound of one measurement."""

    rounds: int
    throughput_calls: int
    window: int
    latency_calls: int
    batch_size: int
    batch_repeats: int
    scale_connections: int
    scale_calls: int
    scale_cycles: int
    deflate_calls: int
    warmup_calls: int
    timeout: float
    connections: int = 64
    connection_calls: int = 1_000
    connection_window: int = 16


FULL = Sizes(
    rounds=5,
    throughput_calls=20_000,
    window=100,
    latency_calls=5_000,
    batch_size=1_000,
    batch_repeats=20,
    scale_connections=1_000,
    scale_calls=10,
    # The first cycle, then the same cycle 5 times more: the last against the first.
    scale_cycles=6,
    deflate_calls=20_000,
    warmup_calls=2_000,
    timeout=120.0,
)
QUICK = Sizes(
    rounds=2,
    throughput_calls=400,
    window=50,
    latency_calls=100,
    batch_size=100,
    batch_repeats=2,
    scale_connections=20,
    scale_calls=3,
    scale_cycles=2,
    deflate_calls=200,
    warmup_calls=50,
    timeout=20.0,
    connections=8,
    connection_calls=20,
    connection_window=4,
)


@dataclass(frozen=True, slots=True)
class Metric:
    """A figure that the table shows and that ratios are taken of."""

    key: str
    label: str
    higher_is_better: bool


@dataclass(frozen=True, slots=True)
class Scenario:
    """One scenario: the servers it runs on, its rounds and its measurement."""

    key: str
    number: int
    title: Callable[[Sizes], str]
    servers: tuple[str, ...]
    compression: bool
    rounds: Callable[[Sizes], int]
    warmup: Callable[[ServerProcess, Sizes], Awaitable[None]]
    measure: Callable[[ServerProcess, Sizes], Awaitable[Figures]]
    metrics: tuple[Metric, ...]


# Opening a connection can fail in these ways; each is counted, never raised past a round.
CONNECT_ERRORS = (OSError, WSError, LoadError, asyncio.TimeoutError)


async def _warm_calls(server: ServerProcess, sizes: Sizes) -> None:
    conn = await Connection.open(server.url, server.spec.dialect, timeout=sizes.timeout)
    try:
        await conn.calls(sizes.warmup_calls, window=sizes.window, timeout=sizes.timeout)
    finally:
        await conn.close()


async def _throughput(server: ServerProcess, sizes: Sizes) -> Figures:
    calls = sizes.throughput_calls
    conn = await Connection.open(server.url, server.spec.dialect, timeout=sizes.timeout)
    try:
        cpu = server.cpu_seconds()
        run = await conn.calls(calls, window=sizes.window, timeout=sizes.timeout)
        server_cpu = server.cpu_seconds() - cpu
    finally:
        await conn.close()
    return {
        "calls_per_s": run.calls_per_s,
        "seconds": run.seconds,
        "errors": run.errors,
        "client_cpu_us_per_call": run.client_cpu_seconds * 1e6 / calls,
        "server_cpu_us_per_call": server_cpu * 1e6 / calls,
    }


async def _latency(server: ServerProcess, sizes: Sizes) -> Figures:
    conn = await Connection.open(server.url, server.spec.dialect, timeout=sizes.timeout)
    try:
        run = await conn.calls(sizes.latency_calls, window=1, timeout=sizes.timeout, latencies=True)
    finally:
        await conn.close()
    values = sorted(run.latencies_ns)
    return {
        "p50_us": percentile(values, 50) / 1e3,
        "p90_us": percentile(values, 90) / 1e3,
        "p99_us": percentile(values, 99) / 1e3,
        "max_us": (values[-1] if values else 0) / 1e3,
        "errors": run.errors,
    }


async def _batch(server: ServerProcess, sizes: Sizes) -> Figures:
    dialect, size = server.spec.dialect, sizes.batch_size
    ids = range(1, size + 1)
    payload = dialect.batch(ids) if dialect.batches else b""
    samples: list[float] = []
    errors = 0
    conn = await Connection.open(server.url, dialect, timeout=sizes.timeout)
    try:
        for _ in range(sizes.batch_repeats):
            if dialect.batches:
                seconds, reply = await conn.message(payload, timeout=sizes.timeout)
                errors += size if reply is None else check_batch(dialect, reply, ids)
            else:
                run = await conn.calls(size, window=size, timeout=sizes.timeout)
                seconds = run.seconds
                errors += run.errors
            samples.append(seconds * 1e3)
    finally:
        await conn.close()
    return {
        "ms": statistics.median(samples),
        "ms_min": min(samples),
        "errors": errors,
        "pipelined": 0.0 if dialect.batches else 1.0,
    }


async def _scale_connection(server: ServerProcess, sizes: Sizes) -> tuple[Connection | None, int]:
    try:
        conn = await Connection.open(server.url, server.spec.dialect, timeout=sizes.timeout)
    except CONNECT_ERRORS:
        return None, sizes.scale_calls
    run = await conn.calls(sizes.scale_calls, window=1, timeout=sizes.timeout)
    return conn, run.errors


async def _wait_for(condition: Callable[[], bool], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        await asyncio.sleep(0.02)
    return condition()


async def _scale(server: ServerProcess, sizes: Sizes) -> Figures:
    count = sizes.scale_connections
    idle_rss, idle_fds, log_lines = server.rss(), server.open_files(), server.log_lines()
    started = time.perf_counter()
    outcomes = await asyncio.gather(*(_scale_connection(server, sizes) for _ in range(count)))
    open_calls_s = time.perf_counter() - started
    conns = [conn for conn, _ in outcomes if conn is not None]
    errors = sum(errors for _, errors in outcomes)
    open_rss, open_fds = server.rss(), server.open_files()
    started = time.perf_counter()
    for conn in conns:
        conn.start_close()
    closed = await asyncio.gather(*(conn.wait_closed(sizes.timeout) for conn in conns))
    close_s = time.perf_counter() - started
    # The server has let a connection go when its socket is closed: wait for the fd count to fall back.
    released = await _wait_for(lambda: server.open_files() <= idle_fds, timeout=10.0)
    closed_rss = server.rss()
    return {
        "total_s": open_calls_s + close_s,
        "open_and_calls_s": open_calls_s,
        "close_s": close_s,
        "errors": errors,
        "failed_connections": count - len(conns),
        "unclean_closes": closed.count(False),
        "released": 1.0 if released else 0.0,
        "open_fds": open_fds - idle_fds,
        "rss_idle_mb": idle_rss / 2**20,
        "rss_open_mb": open_rss / 2**20,
        "rss_closed_mb": closed_rss / 2**20,
        "kb_per_connection": (open_rss - idle_rss) / 1024 / count,
        "log_lines": server.log_lines() - log_lines,
    }


async def _warm_scale(server: ServerProcess, sizes: Sizes) -> None:
    conn, _ = await _scale_connection(server, sizes)
    if conn is not None:
        await conn.close()


async def _warm_deflate(server: ServerProcess, sizes: Sizes) -> None:
    await deflate_calls(
        server.url, server.spec.dialect, calls=sizes.warmup_calls, window=sizes.window, timeout=sizes.timeout
    )


async def _deflate(server: ServerProcess, sizes: Sizes) -> Figures:
    calls = sizes.deflate_calls
    cpu = server.cpu_seconds()
    outcome = await deflate_calls(
        server.url, server.spec.dialect, calls=calls, window=sizes.window, timeout=sizes.timeout
    )
    server_cpu = server.cpu_seconds() - cpu
    run = outcome.run
    return {
        "calls_per_s": run.calls_per_s,
        "seconds": run.seconds,
        "errors": run.errors,
        "negotiated": 1.0 if outcome.negotiated else 0.0,
        "client_cpu_us_per_call": run.client_cpu_seconds * 1e6 / calls,
        "server_cpu_us_per_call": server_cpu * 1e6 / calls,
    }


async def _connections(server: ServerProcess, sizes: Sizes) -> Figures:
    count, per = sizes.connections, sizes.connection_calls
    conns = await asyncio.gather(
        *(Connection.open(server.url, server.spec.dialect, timeout=sizes.timeout) for _ in range(count))
    )
    try:
        cpu = server.cpu_seconds()
        started = time.perf_counter()
        runs = await asyncio.gather(
            *(c.calls(per, window=sizes.connection_window, timeout=sizes.timeout) for c in conns)
        )
        seconds = time.perf_counter() - started
        server_cpu = server.cpu_seconds() - cpu
    finally:
        await asyncio.gather(*(c.close() for c in conns))
    answered = sum(run.answered for run in runs)
    return {
        "calls_per_s": answered / seconds,
        "seconds": seconds,
        "errors": sum(run.errors for run in runs),
        "server_cpu_s": server_cpu,
        "server_cores": server_cpu / seconds,
        "calls_per_server_cpu_s": answered / server_cpu if server_cpu > 0 else 0.0,
    }


def _rounds(sizes: Sizes) -> int:
    return sizes.rounds


_ALL = ("ours", "echo", "fastapi", "node", "picows-echo")
# Where authentication could cost: per call (it must not) and per connection.
_WITH_KEY = ("ours", "ours-key", "echo", "fastapi", "node", "picows-echo")
# Issue 13: the event loop counts most where one call or one batch waits for its answer.
_WITH_UVLOOP = ("ours", "ours-uvloop", "echo", "fastapi", "node", "picows-echo")

SCENARIOS: dict[str, Scenario] = {
    s.key: s
    for s in (
        Scenario(
            "throughput",
            1,
            lambda z: f"throughput: {z.throughput_calls:,} calls over one connection, {z.window} in flight",
            _WITH_KEY,
            False,
            _rounds,
            _warm_calls,
            _throughput,
            (Metric("calls_per_s", "calls/s", True),),
        ),
        Scenario(
            "latency",
            2,
            lambda z: f"latency: {z.latency_calls:,} calls one at a time, round trip",
            _WITH_UVLOOP,
            False,
            _rounds,
            _warm_calls,
            _latency,
            (Metric("p50_us", "p50 µs", False), Metric("p90_us", "p90 µs", False), Metric("p99_us", "p99 µs", False)),
        ),
        Scenario(
            "batch",
            3,
            lambda z: f"batch: one batch of {z.batch_size:,} calls to its whole answer (median of {z.batch_repeats})",
            _WITH_UVLOOP,
            False,
            _rounds,
            _warm_calls,
            _batch,
            (Metric("ms", "ms", False),),
        ),
        Scenario(
            "scale",
            4,
            lambda z: (
                f"scale: {z.scale_connections:,} connections at once, {z.scale_calls} calls each, "
                f"{z.scale_cycles} cycles on one process"
            ),
            ("ours", "ours-key", "echo", "fastapi", "node"),
            False,
            lambda z: z.scale_cycles,
            _warm_scale,
            _scale,
            (Metric("total_s", "total s", False), Metric("kb_per_connection", "KB/conn", False)),
        ),
        Scenario(
            "deflate",
            5,
            lambda z: f"deflate: scenario 1 with permessage-deflate ({z.deflate_calls:,} calls, {z.window} in flight)",
            _ALL,
            True,
            _rounds,
            _warm_deflate,
            _deflate,
            (Metric("calls_per_s", "calls/s", True),),
        ),
        Scenario(
            "connections",
            6,
            lambda z: (
                f"connections: {z.connections} connections at once, {z.connection_calls:,} calls each, "
                f"{z.connection_window} in flight per connection; 1 worker and 2"
            ),
            ("ours", "ours-2w"),
            False,
            _rounds,
            _warm_calls,
            _connections,
            (Metric("calls_per_s", "calls/s", True), Metric("calls_per_server_cpu_s", "calls/CPU-s", True)),
        ),
        Scenario(
            "metrics",
            7,
            lambda z: f"metrics: scenario 1 ({z.throughput_calls:,} calls, {z.window} in flight), on and off",
            ("ours", "ours-nometrics"),
            False,
            _rounds,
            _warm_calls,
            _throughput,
            (Metric("calls_per_s", "calls/s", True),),
        ),
    )
}


def describe(sizes: Sizes) -> dict[str, Any]:
    """The sizes as a plain dict, for the JSON."""
    return dataclasses.asdict(sizes)
