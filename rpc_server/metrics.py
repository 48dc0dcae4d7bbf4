"""Prometheus metrics: counted in plain integers as calls go by, turned into metrics when scraped.

``GET /metrics`` answers the Prometheus text format (``prometheus-client``
writes it). The hot path only adds to integers and lists, here
(:class:`Calls`, the dispatcher's call observer) and in
:class:`~.traffic.Traffic` (the connections'); a collector reads them at
scrape time, along with what can be counted then and not before (calls in
flight, subscriptions open). Method labels are bounded: a method the server
does not serve counts as ``(unknown)``, so a client cannot make series up.

With ``--workers`` each worker writes a snapshot of its counts to a folder
the supervisor shares (:data:`~.supervisor.METRICS_DIR_ENV`) every second,
when it stops, and when it answers a scrape; that worker then exposes the sum
of every file, its own included. A file only grows, and a worker that died
keeps its last one, so whichever worker answers, no counter is ever lower
than in an earlier scrape (Prometheus would take that for a reset). Counters
and histograms add up exactly; the gauges of dead workers are left out; the
process and garbage-collector metrics carry a ``worker`` label. A scrape may
lag the other workers by up to a second.

The metrics and their labels are listed in docs/operations.md.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import logging
import os
import time
from collections.abc import Callable, Collection, Iterable, Iterator
from pathlib import Path
from typing import Any, Protocol

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector
from websockets.http11 import Request, Response

from .dispatch import Dispatcher
from .handshake import Admission, Handshake, response
from .logs import UNKNOWN_METHOD, outcome_code
from .session import Session, TopicDirectory
from .traffic import Traffic

__all__ = ["BUCKETS_S", "UNKNOWN_METHOD", "Calls", "Measured", "Meter", "install"]

logger = logging.getLogger("rpc_server.metrics")

# Call durations: a plain tool answers in microseconds, an async one in whatever it awaits.
BUCKETS_S = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
)
_BOUNDS = list(BUCKETS_S)
_bucket = bisect.bisect_left
# Outcome codes kept apart per method; a tool raising codes beyond these counts under "other".
_MAX_CODES = 32
_SNAPSHOT_EVERY_S = 1.0

Snapshot = dict[str, Any]


class _Connection(Protocol):
    @property
    def session(self) -> Session: ...


class Measured(Protocol):
    """What the metrics need of the server they count (:class:`~.server.RpcServer` is one)."""

    traffic: Traffic | None  # where its connections count; install() sets it

    @property
    def dispatcher(self) -> Dispatcher: ...

    @property
    def topics(self) -> TopicDirectory: ...

    @property
    def connections(self) -> Collection[_Connection]: ...

    @property
    def handshake(self) -> Handshake: ...


class _Method:
    """One method's counts: answered with a result, by error code, and a histogram of durations."""

    __slots__ = ("buckets", "codes", "ok", "seconds")

    def __init__(self) -> None:
        self.ok = 0  # apart from the codes: the common case costs one addition
        self.codes: dict[str, int] = {}
        self.buckets = [0] * (len(BUCKETS_S) + 1)  # the last one: above every bound
        self.seconds = 0.0


class Calls:
    """Counts calls by method and outcome, and their durations: the dispatcher's call observer.

    Args:
        known: whether a method name is served (others count as ``(unknown)``).
    """

    def __init__(self, known: Callable[[str], bool]) -> None:
        self.known = known
        self.methods: dict[str, _Method] = {UNKNOWN_METHOD: _Method()}

    def call(self, request: Any, outcome: dict[str, Any] | None, seconds: float) -> None:
        """One call has finished (``outcome`` None: nothing was answered)."""
        try:
            stats = self.methods[request["method"]]
        except (KeyError, TypeError, IndexError):  # a new method, or not a request at all
            stats = self._first(request)
        if outcome is not None and "result" in outcome:
            stats.ok += 1
        else:
            code = outcome_code(outcome)
            codes = stats.codes
            if code in codes:
                codes[code] += 1
            elif len(codes) < _MAX_CODES:
                codes[code] = 1
            else:
                codes["other"] = codes.get("other", 0) + 1
        stats.buckets[_bucket(_BOUNDS, seconds)] += 1
        stats.seconds += seconds

    def calls(self, requests: list[Any], outcomes: list[Any], seconds: list[float]) -> None:
        """A batch's members, member i having taken ``seconds[i]``, counted as :meth:`call` counts them.

        Members still running (outcomes neither a dict nor None) are not: each is counted when it ends.

        One call() a member was a sixth of a batch's cost. In a run of members
        answered with a result by the same method, each after the first costs
        three increments and a bisection.
        """
        method: Any = None
        stats: _Method | None = None
        for request, outcome, took in zip(requests, outcomes, seconds, strict=True):
            if type(outcome) is dict and "result" in outcome:
                # Answered with a result: a valid request, whose method is a string.
                if stats is not None and request["method"] == method:
                    stats.ok += 1
                    stats.buckets[_bucket(_BOUNDS, took)] += 1
                    stats.seconds += took
                    continue
                self.call(request, outcome, took)
                method = request["method"]
                stats = self.methods.get(method)
            elif outcome is None or type(outcome) is dict:
                self.call(request, outcome, took)

    def _first(self, request: Any) -> _Method:
        method = request.get("method") if type(request) is dict else None
        if type(method) is str and self.known(method):
            stats = self.methods[method] = _Method()
            return stats
        return self.methods[UNKNOWN_METHOD]

    def snapshot(self) -> dict[str, Any]:
        return {
            name: {
                "codes": {"ok": stats.ok, **stats.codes} if stats.ok else dict(stats.codes),
                "buckets": list(stats.buckets),
                "seconds": stats.seconds,
            }
            for name, stats in self.methods.items()
        }


class Meter:
    """A server's counts, as a snapshot to merge with other workers' and expose.

    Args:
        server: the server measured; :func:`install` wires it.
        shared_dir: the folder where workers share snapshots (None: a lone process).
        worker: this worker's number, for the labels of its process metrics.
    """

    def __init__(self, server: Measured, *, shared_dir: str | None = None, worker: int | None = None) -> None:
        self.server = server
        self.traffic = Traffic()
        self.calls = Calls(server.dispatcher.serves)
        self.shared_dir = Path(shared_dir) if shared_dir else None
        self.worker = worker
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(_Collector(self))
        if self.shared_dir is None:
            for collector in (ProcessCollector, PlatformCollector, GCCollector):
                collector(registry=self.registry)
        else:
            PlatformCollector(registry=self.registry)
            # Read into each snapshot, to be exposed with the worker's label (see _process_metrics).
            self._gc = GCCollector(registry=CollectorRegistry())
            self._set_aside_a_dead_namesake()

    # -- counts ------------------------------------------------------------------

    def snapshot(self) -> Snapshot:
        """This process's counts now, as plain JSON-able values."""
        server = self.server
        traffic = self.traffic
        topics = [topic for topic in map(server.topics.get, server.topics.names()) if topic is not None]
        return {
            "pid": os.getpid(),
            "worker": self.worker,
            "calls": self.calls.snapshot(),
            "counters": {
                "messages_in": traffic.messages_in,
                "bytes_in": traffic.bytes_in,
                "messages_out": traffic.messages_out,
                "bytes_out": traffic.bytes_out,
                "connections_accepted": traffic.connections_accepted,
            },
            "refused": dict(traffic.refused),
            "dropped": {topic.name: topic.dropped for topic in topics},
            "gauges": {
                "connections": traffic.connections_open,
                "in_flight": sum(len(c.session.running) for c in list(server.connections)),
                "subscriptions": sum(len(topic.subscribers) for topic in topics),
            },
            "gc": [_as_json(family) for family in self._gc.collect()] if self.shared_dir is not None else [],
        }

    def snapshots(self) -> list[Snapshot]:
        """Every worker's latest snapshot, this one's written now; a lone process's own counts."""
        if self.shared_dir is None:
            return [self.snapshot()]
        try:
            self.write()
        except OSError:
            logger.exception("cannot write this worker's metrics into %s", self.shared_dir)
        found = []
        for path in self.shared_dir.glob("*.json"):
            try:
                snapshot = json.loads(path.read_bytes())
            except (OSError, ValueError):
                continue  # not one of ours: os.replace() never leaves a file half written
            snapshot["alive"] = path.stem == str(snapshot["pid"]) and _alive(int(snapshot["pid"]))
            found.append(snapshot)
        return found

    # -- sharing with the other workers ------------------------------------------

    def write(self) -> None:
        """Write this worker's snapshot where the others read it (atomically: a reader never sees half)."""
        assert self.shared_dir is not None
        own = self.snapshot()
        path = self.shared_dir / f"{own['pid']}.json"
        temporary = path.with_suffix(".tmp")
        temporary.write_text(json.dumps(own))
        os.replace(temporary, path)

    def _set_aside_a_dead_namesake(self) -> None:
        """Keep the counts of a dead worker whose pid this one was given: its file must not be overwritten."""
        assert self.shared_dir is not None
        path = self.shared_dir / f"{os.getpid()}.json"
        with contextlib.suppress(OSError):  # none there: the common case
            os.replace(path, path.with_name(f"{os.getpid()}-{time.time_ns()}.json"))

    async def share(self) -> None:
        """Write the snapshot every second until cancelled, and once more then."""
        try:
            while True:
                await asyncio.sleep(_SNAPSHOT_EVERY_S)
                with contextlib.suppress(OSError):
                    self.write()
        finally:
            with contextlib.suppress(OSError):
                self.write()

    # -- the endpoint ------------------------------------------------------------

    def exposition(self) -> bytes:
        """The Prometheus text format of everything counted."""
        return generate_latest(self.registry)

    def endpoint(self, request: Request, admission: Admission) -> Response:
        """``GET /metrics`` (a guarded route: with credentials configured, only a caller who presents one gets here)."""
        return response(200, self.exposition(), CONTENT_TYPE_LATEST)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _Collector:
    """Turns the merged snapshots into metric families at scrape time."""

    def __init__(self, meter: Meter) -> None:
        self.meter = meter

    def collect(self) -> Iterator[Metric]:
        snapshots = self.meter.snapshots()
        yield from _calls(snapshots)
        counters = _sum(s["counters"] for s in snapshots)
        gauges = _sum(s["gauges"] for s in snapshots if s.get("alive", True))

        def counter(name: str, text: str, value: float) -> CounterMetricFamily:
            return CounterMetricFamily(name, text, value=value)

        def gauge(name: str, text: str, value: float) -> GaugeMetricFamily:
            return GaugeMetricFamily(name, text, value=value)

        yield gauge("rpc_calls_in_flight", "Calls (with an id) running in async tools now.", gauges["in_flight"])
        yield gauge("rpc_connections", "WebSocket connections open now.", gauges["connections"])
        yield counter(
            "rpc_connections_accepted",
            "WebSocket connections accepted (handshake done).",
            counters["connections_accepted"],
        )
        yield counter("rpc_messages_received", "WebSocket messages received.", counters["messages_in"])
        yield counter(
            "rpc_messages_sent", "WebSocket messages sent (answers and notifications).", counters["messages_out"]
        )
        yield counter("rpc_received_bytes", "Bytes of the WebSocket messages received.", counters["bytes_in"])
        yield counter("rpc_sent_bytes", "Bytes of the WebSocket messages sent.", counters["bytes_out"])
        yield gauge("rpc_subscriptions", "Subscriptions open now.", gauges["subscriptions"])
        dropped = CounterMetricFamily(
            "rpc_events_dropped", "Events dropped for subscribers too slow to take them.", labels=["topic"]
        )
        for topic, count in sorted(_sum(s["dropped"] for s in snapshots).items()):
            dropped.add_metric([topic], count)
        yield dropped
        refused = CounterMetricFamily(
            "rpc_handshakes_refused", "WebSocket upgrades refused, by reason.", labels=["reason"]
        )
        for reason, count in sorted(_sum(s["refused"] for s in snapshots).items()):
            refused.add_metric([reason], count)
        yield refused
        if self.meter.shared_dir is not None:
            yield from _process_metrics(snapshots)


def _sum(parts: Iterable[dict[str, float]]) -> dict[str, float]:
    total: dict[str, float] = {}
    for part in parts:
        for key, value in part.items():
            total[key] = total.get(key, 0) + value
    return total


def _calls(snapshots: list[Snapshot]) -> Iterator[Metric]:
    codes: dict[tuple[str, str], int] = {}
    buckets: dict[str, list[int]] = {}
    seconds: dict[str, float] = {}
    for snapshot in snapshots:
        for method, stats in snapshot["calls"].items():
            for code, count in stats["codes"].items():
                codes[method, code] = codes.get((method, code), 0) + count
            into = buckets.setdefault(method, [0] * (len(BUCKETS_S) + 1))
            for i, count in enumerate(stats["buckets"]):
                into[i] += count
            seconds[method] = seconds.get(method, 0.0) + stats["seconds"]
    calls = CounterMetricFamily("rpc_calls", "Calls answered, by method and outcome code.", labels=["method", "code"])
    for (method, code), count in sorted(codes.items()):
        calls.add_metric([method, code], count)
    yield calls
    durations = HistogramMetricFamily(
        "rpc_call_duration_seconds", "How long calls took, from their message to their answer.", labels=["method"]
    )
    for method, counts in sorted(buckets.items()):
        if not any(counts):
            continue
        cumulative, running = [], 0
        for bound, count in zip((*map(str, BUCKETS_S), "+Inf"), counts, strict=True):
            running += count
            cumulative.append((bound, running))
        durations.add_metric([method], cumulative, seconds[method])
    yield durations


def _as_json(family: Metric) -> list[Any]:
    return [family.name, family.documentation, family.type, [[s.name, s.labels, s.value] for s in family.samples]]


def _process_metrics(snapshots: list[Snapshot]) -> Iterator[Metric]:
    """The process and garbage-collector metrics of every live worker, each with its ``worker`` label."""
    families: dict[str, Metric] = {}
    for snapshot in snapshots:
        if not snapshot.get("alive", True):
            continue
        pid, worker = int(snapshot["pid"]), str(snapshot["worker"])
        found = [
            _as_json(family)
            for family in ProcessCollector(pid=lambda pid=pid: pid, registry=None).collect()  # type: ignore[misc]
        ]
        for name, documentation, kind, samples in found + snapshot.get("gc", []):
            into = families.setdefault(name, Metric(name, documentation, kind))
            for sample_name, labels, value in samples:
                into.add_sample(sample_name, {**labels, "worker": worker}, value)
    yield from families.values()


def install(server: Measured, *, shared_dir: str | None = None, worker: int | None = None) -> Meter:
    """Count what ``server`` does and answer ``GET /metrics`` with it.

    Args:
        server: not yet started.
        shared_dir: with workers, the folder where they share snapshots; the
            caller runs :meth:`Meter.share` while the server runs.
        worker: this worker's number.
    """
    meter = Meter(server, shared_dir=shared_dir, worker=worker)
    server.traffic = meter.traffic  # the connections count into it, refused upgrades included
    server.dispatcher.observe(meter.calls)
    # Guarded: the handshake's gates judge a scrape as they judge an upgrade (credentials, origin).
    server.handshake.routes.add("/metrics", meter.endpoint, guarded=True)
    return meter
