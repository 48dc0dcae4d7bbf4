"""--workers: N processes on one port, spread, restarted when they die, counted together, drained on SIGTERM."""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import ssl
from pathlib import Path

import psutil
import pytest
import trustme
from websockets.asyncio.client import connect

from rpc_server.supervisor import Supervisor

from .conftest import TOOLS, StartProcess
from .processes import ServerProcess, wait_for
from .scrape import scrape, value


async def _whoami(url: str) -> int:
    async with connect(url) as ws:
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "whoami", "id": 1}))
        async with asyncio.timeout(30):
            return int(json.loads(await ws.recv())["result"])


def _workers(server: ServerProcess) -> set[int]:
    return {child.pid for child in psutil.Process(server.pid).children()}


async def test_connections_spread_over_both_workers_and_every_call_is_answered(start_process: StartProcess) -> None:
    """200 connections to --workers 2 reach both worker processes; each call is answered; one 'listening on' line."""
    server = await start_process("--workers", "2", *TOOLS)
    assert server.listening_lines() == 1
    workers = _workers(server)
    assert len(workers) == 2
    answered_by: list[int] = []
    for start in range(0, 200, 50):  # 50 at a time: the load generator shares the machine's cores
        answered_by += await asyncio.gather(*(_whoami(server.url) for _ in range(start, start + 50)))
    assert len(answered_by) == 200
    assert set(answered_by) == workers
    assert min(answered_by.count(pid) for pid in workers) >= 20  # spread, not all on one


async def test_a_killed_worker_is_replaced_and_the_port_keeps_serving(start_process: StartProcess) -> None:
    """SIGKILL one worker: the other answers at once, and a new worker takes the dead one's place."""
    server = await start_process("--workers", "2", *TOOLS)
    first, second = sorted(_workers(server))
    os.kill(first, signal.SIGKILL)
    # Once the kernel has closed its socket (the supervisor has reaped it), the other worker takes every connection.
    await wait_for(lambda: first not in _workers(server), 10.0, "the killed worker to be gone")
    answers = await asyncio.gather(*(_whoami(server.url) for _ in range(20)))
    assert set(answers) <= {second} | (_workers(server) - {first})
    await wait_for(lambda: len(_workers(server) - {first, second}) == 1, 30.0, "a new worker")
    replacement = (_workers(server) - {second}).pop()
    seen: set[int] = set()
    for _ in range(10):  # the new worker serves too, once it listens
        seen.update(await asyncio.gather(*(_whoami(server.url) for _ in range(20))))
        if replacement in seen:
            break
        await asyncio.sleep(0.5)
    assert replacement in seen and second in seen
    assert "exited with status -9; starting it again" in server.log.read_text()


async def test_metrics_of_all_workers_come_in_one_scrape_exactly(start_process: StartProcess) -> None:
    """Counters add up over the workers: 120 calls over 40 connections move rpc_calls_total by exactly 120."""
    server = await start_process("--workers", "2", *TOOLS)

    async def calls(n: int) -> list[int]:
        async with connect(server.url) as ws:
            for i in range(n):
                await ws.send(json.dumps({"jsonrpc": "2.0", "method": "multiply", "params": [i, 1], "id": i}))
            async with asyncio.timeout(30):
                return [json.loads(await ws.recv())["id"] for _ in range(n)]

    answered = await asyncio.gather(*(calls(3) for _ in range(40)))
    assert sum(len(ids) for ids in answered) == 120

    seen: list[float] = []

    def converged() -> bool:
        # Whichever worker answers, it adds the other's latest snapshot (at most a second old).
        counts = [value(scrape(server.port), "rpc_calls_total", method="multiply", code="ok") for _ in range(4)]
        seen.extend(counts)
        return all(count == 120 for count in counts)

    await wait_for(converged, 15.0, "every scrape to count the 120 calls")
    assert max(seen) == 120  # never more than were made
    for _ in range(3):
        samples = await asyncio.to_thread(scrape, server.port)
        assert value(samples, "rpc_calls_total", method="multiply", code="ok") == 120
        assert value(samples, "rpc_call_duration_seconds_count", method="multiply") == 120
        assert value(samples, "rpc_connections_accepted_total") == 40
        for process_metric in ("process_cpu_seconds_total", "python_gc_collections_total"):
            workers = {dict(labels).get("worker") for name, labels in samples if name == process_metric}
            assert workers == {"1", "2"}, process_metric


async def test_counters_never_go_back_between_scrapes_whichever_worker_answers(start_process: StartProcess) -> None:
    """Calls and scrapes interleaved, each on a new connection: every scrape counts at least what the one before did."""
    server = await start_process("--workers", "2", *TOOLS)
    seen: list[float] = []
    answered_by: set[int] = set()
    for _ in range(30):
        async with connect(server.url) as ws:  # a new client port: the kernel picks either worker
            for i in range(20):
                await ws.send(json.dumps({"jsonrpc": "2.0", "method": "multiply", "params": [i, 1], "id": i}))
            async with asyncio.timeout(30):
                for _ in range(20):
                    json.loads(await ws.recv())
        answered_by.add(await _whoami(server.url))
        samples = await asyncio.to_thread(scrape, server.port)
        seen.append(value(samples, "rpc_calls_total", method="multiply", code="ok"))
    assert len(answered_by) == 2  # both workers served, so both answered scrapes too
    assert all(later >= earlier for earlier, later in itertools.pairwise(seen)), seen
    await wait_for(
        lambda: value(scrape(server.port), "rpc_calls_total", method="multiply", code="ok") == 600,
        15.0,
        "a scrape to count the 600 calls",
    )


async def test_sigterm_drains_every_worker_and_exits_0(start_process: StartProcess) -> None:
    """SIGTERM to the supervisor reaches each worker; it exits 0 once all have, leaving none behind."""
    server = await start_process("--workers", "2", *TOOLS)
    workers = _workers(server)
    server.signal(signal.SIGTERM)
    assert await server.wait() == 0
    assert not [pid for pid in workers if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]


async def test_workers_with_tls_say_wss_once_and_answer_over_it(start_process: StartProcess, tmp_path: Path) -> None:
    """--workers 2 with a certificate prints one 'listening on wss://' line; a client trusting the CA is answered."""
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    certfile, keyfile = tmp_path / "cert.pem", tmp_path / "key.pem"
    for blob in leaf.cert_chain_pems:
        blob.write_to_path(str(certfile), append=True)
    leaf.private_key_pem.write_to_path(str(keyfile))
    server = await start_process("--workers", "2", "--certfile", str(certfile), "--keyfile", str(keyfile), *TOOLS)
    assert server.url == f"wss://127.0.0.1:{server.port}/ws"
    assert server.listening_lines() == 1
    context = ssl.create_default_context()
    ca.configure_trust(context)
    async with connect(server.url, ssl=context) as ws:
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "multiply", "params": [6, 7], "id": 1}))
        async with asyncio.timeout(30):
            assert json.loads(await ws.recv())["result"] == 42


async def test_a_worker_that_never_listens_stops_the_supervisor_with_an_error(
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """Workers stuck before they listen: past the start timeout the supervisor names them, kills them, exits 1."""
    supervisor = Supervisor(["--tools", "tests.ops.stuck_tools"], 2, "127.0.0.1", 0, start_timeout_s=3.0)
    async with asyncio.timeout(60):
        assert await supervisor.run() == 1
    assert "no 'listening on' line from worker 1, 2 within 3 s; stopping" in caplog.text
    assert "listening on" not in capsys.readouterr().out
    assert all(worker.process is not None and worker.process.returncode is not None for worker in supervisor.workers)
