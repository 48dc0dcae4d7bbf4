"""/metrics in one process: counters move by exactly the calls made, labels stay bounded, --no-metrics is off."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import AsyncIterator

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from rpc_server import Limits, RpcServer, builtin_tools, builtin_topics
from rpc_server.auth import Auth
from rpc_server.handshake import refuse, response
from rpc_server.service import Service
from tests.rpc_server.test_handshake import http_get
from tests.rpc_server.wire import receive, rpc

from .scrape import Samples, parse, scrape, value


@pytest.fixture
async def service() -> AsyncIterator[Service]:
    topics = builtin_topics()
    topics.add("news")
    server = RpcServer(
        builtin_tools(),
        port=0,
        topics=topics,
        origins=["https://app.example", None],
        limits=Limits(subscription_buffer=1),
    )
    async with Service(server) as started:
        yield started


async def _scrape(service: Service) -> Samples:
    return await asyncio.to_thread(scrape, service.server.port)


async def test_counters_move_by_exactly_the_calls_made(service: Service) -> None:
    """Single calls, batch members and {func, args} calls count once each, by method and outcome code."""
    before = await _scrape(service)
    sent = []
    async with connect(service.server.url) as ws:
        for i in range(3):
            sent.append(json.dumps({"jsonrpc": "2.0", "method": "multiply", "params": [i, 2], "id": i}))
            await ws.send(sent[-1])
            assert "result" in json.loads(await ws.recv())
        sent.append(json.dumps([{"jsonrpc": "2.0", "method": "multiply", "params": [1, 1], "id": n} for n in range(4)]))
        await ws.send(sent[-1])
        assert len(json.loads(await ws.recv())) == 4
        sent.append(json.dumps({"func": "multiply", "args": [2, 2]}))
        await ws.send(sent[-1])
        assert json.loads(await ws.recv()) == {"result": 4}
        for i in range(2):
            sent.append(json.dumps({"jsonrpc": "2.0", "method": "divide", "params": [1, 0], "id": i}))
            await ws.send(sent[-1])
            assert json.loads(await ws.recv())["error"]["code"] == 1001
        sent.append(json.dumps({"jsonrpc": "2.0", "method": "no_such_tool", "id": 9}))
        await ws.send(sent[-1])
        assert json.loads(await ws.recv())["error"]["code"] == -32601
        sent.append(json.dumps({"jsonrpc": "2.0", "method": "sleep", "params": [0.01], "id": 10}))
        await ws.send(sent[-1])
        answer = await ws.recv()
        during = await _scrape(service)
    after = await _scrape(service)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("rpc_calls_total", method="multiply", code="ok") == 8
    assert moved("rpc_calls_total", method="divide", code="1001") == 2
    assert moved("rpc_calls_total", method="(unknown)", code="-32601") == 1
    assert moved("rpc_calls_total", method="sleep", code="ok") == 1
    assert moved("rpc_call_duration_seconds_count", method="multiply") == 8
    assert moved("rpc_call_duration_seconds_bucket", method="multiply", le="+Inf") == 8
    assert moved("rpc_call_duration_seconds_count", method="sleep") == 1
    assert moved("rpc_call_duration_seconds_sum", method="sleep") > 0
    assert moved("rpc_messages_received_total") == len(sent)
    assert moved("rpc_received_bytes_total") == sum(len(m.encode()) for m in sent)
    assert moved("rpc_messages_sent_total") == len(sent)
    assert moved("rpc_sent_bytes_total") >= len(answer)
    assert moved("rpc_connections_accepted_total") == 1
    assert value(during, "rpc_connections") == 1
    assert value(after, "rpc_connections") == 0
    # The default collectors are there too.
    assert value(after, "process_cpu_seconds_total") > 0
    assert any(name == "python_info" for name, _ in after)


async def test_in_flight_calls_and_open_subscriptions_are_gauges(service: Service) -> None:
    """A call awaiting its tool and a subscription show while they last, and are gone after."""
    async with connect(service.server.url) as ws:
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "sleep", "params": [10], "id": 1}))
        assert "result" in await rpc(ws, "rpc.subscribe", {"topic": "news"}, id=2)
        samples = await _scrape(service)
        assert value(samples, "rpc_calls_in_flight") == 1
        assert value(samples, "rpc_subscriptions") == 1
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "rpc.cancel", "params": {"id": 1}}))
        assert (await receive(ws))["error"]["code"] == -32800
    await asyncio.sleep(0)
    samples = await _scrape(service)
    assert value(samples, "rpc_calls_in_flight") == 0
    assert value(samples, "rpc_subscriptions") == 0


async def test_events_dropped_for_a_slow_subscriber_are_counted_by_topic(service: Service) -> None:
    """With a buffer of one event, 100 events published at once drop 99, and the metric says 99."""
    async with connect(service.server.url) as ws:
        assert "result" in await rpc(ws, "rpc.subscribe", {"topic": "news"})
        for n in range(100):  # in one go: the subscription's pump cannot run in between
            service.server.publish("news", n)
        event = await receive(ws)
        assert event["params"]["event"] == 99 and event["params"]["dropped"] == 99
    assert value(await _scrape(service), "rpc_events_dropped_total", topic="news") == 99


async def test_method_labels_stay_bounded_whatever_clients_call(service: Service) -> None:
    """Calls to 200 made-up method names count under one label, "(unknown)"."""
    async with connect(service.server.url) as ws:
        batch = [{"jsonrpc": "2.0", "method": f"made_up_{n}", "id": n} for n in range(200)]
        await ws.send(json.dumps(batch))
        assert len(json.loads(await ws.recv())) == 200
    samples = await _scrape(service)
    methods = {dict(labels)["method"] for name, labels in samples if name == "rpc_calls_total"}
    assert "(unknown)" in methods and not any(m.startswith("made_up") for m in methods)
    assert value(samples, "rpc_calls_total", method="(unknown)", code="-32601") == 200


async def test_refused_handshakes_are_counted_by_reason(service: Service) -> None:
    """A browser from a foreign origin is refused (403) and counted under reason="origin"."""
    with pytest.raises(InvalidStatus):
        async with connect(service.server.url, origin="https://evil.example"):  # type: ignore[arg-type]
            pass
    samples = await _scrape(service)
    assert value(samples, "rpc_handshakes_refused_total", reason="origin") == 1
    assert value(samples, "rpc_handshakes_refused_total", reason="auth") == 0


async def test_a_gate_added_after_the_metrics_is_counted_by_what_its_refusal_says(service: Service) -> None:
    """The connection counts each refusal by its reason: a later gate's plain 429 is "limit", a Refusal says its own."""
    gates = service.server.handshake.gates
    gates.append(lambda request, admission: response(429, "slow down\n") if request.path == "/ws?plain" else None)
    gates.append(lambda request, admission: refuse(403, "no", why="origin") if request.path == "/ws?own" else None)
    for query in ("plain", "own"):
        with pytest.raises(InvalidStatus):
            async with connect(f"{service.server.url}?{query}"):
                pass
    samples = await _scrape(service)
    assert value(samples, "rpc_handshakes_refused_total", reason="limit") == 1
    assert value(samples, "rpc_handshakes_refused_total", reason="origin") == 1


async def test_no_metrics_means_no_endpoint_and_no_counting() -> None:
    """With metrics off /metrics is 404 saying why, and there is no traffic counter, no call observer."""
    server = RpcServer(builtin_tools(), port=0)
    async with Service(server, metrics=False) as service:
        assert service.meter is None and server.traffic is None
        async with connect(server.url) as ws:
            assert (await rpc(ws, "multiply", [2, 3]))["result"] == 6
        status, _, body = await http_get(server.port, "/metrics")
        assert (status, body) == (404, b"Not Found: this server counts nothing (--no-metrics)\n")
        status, _, body = await http_get(server.port, "/healthz")
        assert (status, json.loads(body)) == (200, {"status": "ok"})


async def test_with_credentials_metrics_needs_them_and_health_does_not() -> None:
    """An API key configured: /metrics answers 401 without it and 200 with it; /healthz and /readyz never ask."""
    key = "an-api-key-long-enough-for-the-server-0123456789"
    server = RpcServer(builtin_tools(), port=0, auth=Auth(api_keys={key: []}))
    async with Service(server) as service:
        status, _, _ = await http_get(server.port, "/metrics")
        assert status == 401
        request = urllib.request.Request(
            f"http://127.0.0.1:{server.port}/metrics", headers={"Authorization": f"Bearer {key}"}
        )
        with await asyncio.to_thread(urllib.request.urlopen, request, timeout=10) as answer:
            assert answer.status == 200 and b"rpc_calls_total" in answer.read()
        for path in ("/healthz", "/readyz"):
            status, _, _ = await http_get(server.port, path)
            assert status == 200, path
        with pytest.raises(InvalidStatus):
            async with connect(server.url):
                pass
    # The refusal above is counted under its reason.
    assert service.meter is not None
    assert value(parse(service.meter.exposition().decode()), "rpc_handshakes_refused_total", reason="auth") == 1


async def test_every_rpc_method_served_gets_its_own_label(service: Service) -> None:
    """rpc.discover and the other rpc.* methods are served, so they are labelled by name, not "(unknown)"."""
    async with connect(service.server.url) as ws:
        assert "result" in await rpc(ws, "rpc.discover")
    samples = await _scrape(service)
    assert value(samples, "rpc_calls_total", method="rpc.discover", code="ok") == 1
