"""The shipped deploy/nginx.conf in front of two replicas sharing a real Redis: events cross, a drain loses nothing."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import urllib.request
from collections.abc import Awaitable, Callable

from websockets.asyncio.client import connect

from rpc_client import Client, RpcConnectionError

from .conftest import TOOLS, StartProcess
from .processes import ROOT, Nginx, RedisServer, ServerProcess, wait_for
from .scrape import scrape, value

StartNginx = Callable[[list[int]], Awaitable[Nginx]]


def _ready(server: ServerProcess) -> bool:
    try:
        with urllib.request.urlopen(f"{server.http}/readyz", timeout=5) as answer:
            return bool(answer.status == 200)
    except OSError:
        return False


async def _replicas(start_process: StartProcess, redis_server: RedisServer) -> list[ServerProcess]:
    flags = ["--broker", redis_server.url, "--topic", "news", *TOOLS]
    replicas = [await start_process(*flags), await start_process(*flags)]
    for replica in replicas:
        await wait_for(lambda replica=replica: _ready(replica), 20.0, "the replica to be ready")  # type: ignore[misc]
    return replicas


async def _call(ws: object, method: str, params: list[object], id: int) -> object:
    await ws.send(json.dumps({"jsonrpc": "2.0", "method": method, "params": params, "id": id}))  # type: ignore[attr-defined]
    async with asyncio.timeout(30):
        while True:
            message = json.loads(await ws.recv())  # type: ignore[attr-defined]
            if message.get("id") == id:
                return message["result"]


async def test_a_subscriber_through_nginx_gets_events_from_the_other_replica_and_a_plain_program(
    start_process: StartProcess, redis_server: RedisServer, start_nginx: StartNginx
) -> None:
    """Subscribed through nginx to one replica, a client gets what a tool on the other publishes, and publish()'s."""
    replicas = await _replicas(start_process, redis_server)
    nginx = await start_nginx([r.port for r in replicas])
    async with connect(nginx.url) as subscriber:
        here = await _call(subscriber, "whoami", [], 1)
        other = next(r for r in replicas if r.pid != here)
        assert await _call(subscriber, "rpc.subscribe", ["news"], 2) == "1"
        async with connect(other.url) as publisher:
            assert await _call(publisher, "announce", ["news", {"from": "the other replica"}], 1) == 0
        event = json.loads(await asyncio.wait_for(subscriber.recv(), 30))
        assert event["params"]["event"] == {"from": "the other replica"}

        program = (
            "from rpc_server.broker import publish\n"
            f"print(publish({redis_server.url!r}, 'news', {{'from': 'a batch job'}}))\n"
        )
        done = await asyncio.to_thread(
            subprocess.run, [sys.executable, "-c", program], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "2"  # both replicas heard it
        event = json.loads(await asyncio.wait_for(subscriber.recv(), 30))
        assert event["params"]["event"] == {"from": "a batch job"}

    # nginx passes health checks through to a replica.
    with urllib.request.urlopen(f"http://127.0.0.1:{nginx.port}/healthz", timeout=10) as answer:
        assert json.loads(answer.read()) == {"status": "ok"}


async def test_through_nginx_the_playground_s_origin_is_admitted_and_discover_names_nginx_s_url(
    start_process: StartProcess, start_nginx: StartNginx
) -> None:
    """nginx passes the client's Host on, port included: a page served through it may connect, and servers names it."""
    replica = await start_process(*TOOLS)
    nginx = await start_nginx([replica.port])
    origin = f"http://127.0.0.1:{nginx.port}"  # the playground's origin, loaded through nginx
    with urllib.request.urlopen(f"{origin}/", timeout=10) as answer:
        assert b"<html" in answer.read().lower()
    async with connect(nginx.url, origin=origin) as ws:  # type: ignore[arg-type]
        document = await _call(ws, "rpc.discover", [], 1)
    assert document["servers"][0]["url"] == f"ws://127.0.0.1:{nginx.port}/ws"  # type: ignore[index]


async def test_a_replica_drained_behind_nginx_answers_its_calls_and_clients_continue_on_the_other(
    start_process: StartProcess, redis_server: RedisServer, start_nginx: StartNginx
) -> None:
    """SIGTERM to the replica a client is on: its calls in flight are answered, and reconnect=True moves on."""
    replicas = await _replicas(start_process, redis_server)
    nginx = await start_nginx([r.port for r in replicas])
    async with Client(nginx.url, reconnect=True, timeout=30) as client:
        here = await client.call("whoami")
        draining = next(r for r in replicas if r.pid == here)
        staying = next(r for r in replicas if r.pid != here)
        in_flight = [asyncio.create_task(client.call("sleep", 1.0, i)) for i in range(5)]
        await wait_for(
            lambda: value(scrape(draining.port), "rpc_calls_in_flight") == 5, 10.0, "the calls to be in flight"
        )
        draining.signal(signal.SIGTERM)
        assert await asyncio.gather(*in_flight) == list(range(5))  # answered, none lost

        async def moved_on() -> bool:
            try:
                return bool(await client.call("whoami") == staying.pid)
            except RpcConnectionError:
                return False  # the old connection closing; the client reconnects

        await wait_for(moved_on, 30.0, "the client to continue on the other replica")
        answers = await asyncio.gather(*(client.call("multiply", i, 2) for i in range(50)))
        assert answers == [i * 2 for i in range(50)]
    assert await draining.wait() == 0
