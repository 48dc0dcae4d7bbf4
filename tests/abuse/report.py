"""The attacks of issue 9 at full size, measured on a server process: the table in docs/limits.md.

``python -m tests.abuse.report`` runs each attack against ``python -m
rpc_server`` with its default limits and prints a Markdown table: what the
attacker got, the server's peak memory growth and CPU time, and whether a
bystander connection was answered within 1 s throughout. ``--before TREE``
runs the same attacks against another checkout too (the code before the
fix) and prints both side by side. ``--only NAME`` runs some of them.

The figures are of one run on a shared machine: memory and the answers are
stable, CPU and times provisional (within a factor of about 2). The tests in
this folder run the same attacks, scaled down, with bounds.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import socket
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
from websockets.asyncio.client import connect
from websockets.client import ClientProtocol
from websockets.frames import Close, Frame, Opcode
from websockets.uri import parse_uri

from ..rpc_server.rawws import RawClient
from .harness import MIB, ROOT, Bystander, ServerProcess, raise_own_descriptor_limit, request

__all__ = ["ATTACKS", "main"]


@dataclass(slots=True)
class Outcome:
    got: str  # what the attacker (or the clients) got
    peak_mib: float | None = None
    cpu_s: float | None = None
    fair: bool | None = None  # a bystander answered within 1 s throughout
    log: str = ""  # what the server logged, when it matters


Attack = Callable[[Path], Awaitable[Outcome]]


@contextlib.asynccontextmanager
async def measured(server: ServerProcess) -> Any:
    """Peak memory growth and CPU over the block, and a bystander probed throughout."""
    await asyncio.sleep(0.3)
    base = server.rss_bytes()
    server.reset_peak()
    cpu = server.cpu_s()
    box: dict[str, Any] = {}
    async with Bystander(server.url) as bystander:
        yield box
    box["peak_mib"] = (server.peak_bytes() - base) / MIB
    box["cpu_s"] = server.cpu_s() - cpu
    box["fair"] = not bystander.slow


def outcome(got: str, box: dict[str, Any], server: ServerProcess) -> Outcome:
    tracebacks = len(server.tracebacks())
    log = f"{tracebacks} tracebacks" if tracebacks else ""
    return Outcome(got, box.get("peak_mib"), box.get("cpu_s"), box.get("fair"), log)


def codes_of(answer: Any) -> str:
    items = answer if isinstance(answer, list) else [answer]
    counted = Counter("result" if "result" in a else str(a["error"]["code"]) for a in items)
    return ", ".join(f"{n} x {what}" for what, n in counted.most_common())


async def amplification(tree: Path) -> Outcome:
    async with ServerProcess.run(tree=tree) as server:
        async with measured(server) as box, connect(server.url, max_size=None) as ws:
            batch = "[" + ",".join(request("count", [10000, 0], i) for i in range(1000)) + "]"
            await ws.send(batch)
            async with asyncio.timeout(300):
                answer = await ws.recv()
        got = f"{len(batch) / 1000:.0f} KB in, {len(answer) / 1e6:.2f} MB out: {codes_of(orjson.loads(answer))}"
        return outcome(got, box, server)


async def _unread(tree: Path, frames: list[str], settle_s: float, what: str) -> Outcome:
    async with ServerProcess.run(tree=tree) as server:
        async with measured(server) as box:
            client = await RawClient.connect(server.url)
            for frame in frames:
                client.write(client.text_frames(frame))
            await asyncio.sleep(settle_s)
            client.abort()
        return outcome(what, box, server)


async def batches_in_flight(tree: Path) -> Outcome:
    frames = ["[" + ",".join(request("sleep", [10], b * 1000 + i) for i in range(1000)) + "]" for b in range(130)]
    return await _unread(tree, frames, 5.0, "measured 5 s in")


async def unread_answers(tree: Path) -> Outcome:
    value = "x" * 8000
    frames = ["[" + ",".join(request("sleep", [1, value], b * 100 + i) for i in range(100)) + "]" for b in range(128)]
    return await _unread(tree, frames, 4.0, "answers never read; measured 4 s in")


async def bytes_in_flight(tree: Path) -> Outcome:
    value = "x" * 500_000
    return await _unread(tree, [request("sleep", [1, value], i) for i in range(100)], 4.0, "measured 4 s in")


async def _client(url: str) -> str:
    try:
        ws = await connect(url, open_timeout=10)
    except TimeoutError:
        return "timed out"
    except Exception as exc:
        response = getattr(exc, "response", None)
        if response is not None:
            return f"HTTP {response.status_code}"
        return "timed out" if "timed out" in str(exc) else "cut"
    await asyncio.sleep(2)
    await ws.close()
    return "connected"


async def descriptors(tree: Path) -> Outcome:
    raise_own_descriptor_limit()
    async with ServerProcess.run(tree=tree, descriptors=(1024, 1024)) as server:
        async with measured(server) as box:
            results = await asyncio.gather(*(_client(server.url) for _ in range(1500)))
            await asyncio.sleep(1)
        counted = Counter(results)
        got = ", ".join(f"{n} {what}" for what, n in counted.most_common())
        result = outcome(got, box, server)
        lines = len(server.log)
        result.log = f"{len(server.tracebacks())} tracebacks, {lines} log lines"
        return result


async def cancel_at_the_cap(tree: Path) -> Outcome:
    async with ServerProcess.run(tree=tree) as server:
        async with measured(server) as box:
            client = await RawClient.connect(server.url)
            client.write(client.text_frames(*(request("sleep", [2], i) for i in range(128))))
            await asyncio.sleep(0.5)
            start = time.monotonic()
            client.write(client.text_frames(request("sleep", [2], "X"), request("rpc.cancel", {"id": "X"})))
            got = "no answer for X"
            async with asyncio.timeout(10):
                while True:
                    answer = orjson.loads(await client.next_text())
                    if answer.get("id") == "X":
                        what = "result" if "result" in answer else str(answer["error"]["code"])
                        got = f"X answered {what} after {time.monotonic() - start:.2f} s"
                        break
            client.abort()
        return outcome(got, box, server)


async def _small_window_client(url: str) -> RawClient:
    uri = parse_uri(url)
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, (uri.host, uri.port))
    reader, writer = await asyncio.open_connection(sock=sock)
    client = RawClient(reader, writer, ClientProtocol(uri))
    client.protocol.send_request(client.protocol.connect())
    client._send_pending()
    while not client.events:
        await client.read()
    client.events.clear()
    return client


async def subscriptions(tree: Path) -> Outcome:
    async with ServerProcess.run(tree=tree) as server:
        async with measured(server) as box:
            clients = []
            for _ in range(20):
                client = await _small_window_client(server.url)
                params = {"topic": "clock", "params": {"interval": 0.01}}
                client.write(client.text_frames(*(request("rpc.subscribe", params, i) for i in range(32))))
                clients.append(client)
            shares = []
            # Socket buffers take a while to fill at this rate; past 40 s the
            # keepalive would cut these peers (they answer no ping).
            for _ in range(4):
                cpu = server.cpu_s()
                await asyncio.sleep(8)
                shares.append((server.cpu_s() - cpu) / 8)
            for client in clients:
                client.abort()
        got = "CPU share in each 8 s: " + ", ".join(f"{s:.0%}" for s in shares)
        return outcome(got, box, server)


async def _until_closed(client: RawClient) -> str:
    while True:
        for event in client.events:
            if isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
                return f"closed {Close.parse(event.data).code}"
        try:
            if not await client.read():
                return "connection ended"
        except ConnectionError:
            return "connection reset"


async def empty_fragments(tree: Path) -> Outcome:
    chunk = Frame(Opcode.CONT, b"", fin=False).serialize(mask=True) * 50_000
    async with ServerProcess.run(tree=tree) as server:
        async with measured(server) as box:
            client = await RawClient.connect(server.url)
            client.write(Frame(Opcode.TEXT, b"", fin=False).serialize(mask=True))
            closed = asyncio.create_task(_until_closed(client))
            with contextlib.suppress(ConnectionError):
                for _ in range(100):  # 5,000,000 frames
                    if closed.done():
                        break
                    client.write(chunk)
                    await client.writer.drain()
            try:
                async with asyncio.timeout(60):
                    got = await closed
            except TimeoutError:
                got = "still open 60 s after the last frame"
            client.abort()
        return outcome(got, box, server)


async def small_fragments(tree: Path) -> Outcome:
    from .test_frames import fragments

    async with ServerProcess.run(tree=tree) as server:
        async with measured(server) as box:
            client = await RawClient.connect(server.url)
            client.write(fragments(request("sleep", [0, "x" * (MIB - 100)], 1), 2))
            try:
                async with asyncio.timeout(60):
                    got = await _until_closed(client)
                    if got.startswith("connection"):
                        got = "answered" if client.events else got
            except TimeoutError:
                got = "no close"
            answered = [e for e in client.events if isinstance(e, Frame) and e.opcode is Opcode.TEXT]
            if answered:
                got = "answered " + codes_of(orjson.loads(bytes(answered[0].data)))
            client.abort()
        return outcome(got, box, server)


async def deep_values(tree: Path) -> Outcome:
    deep = "[" * 1000 + "]" * 1000
    members = [f'{{"jsonrpc":"2.0","method":"sleep","params":[0,{deep}],"id":{i}}}' for i in range(500)]
    async with ServerProcess.run(tree=tree) as server:
        async with measured(server) as box, connect(server.url, max_size=None) as ws:
            await ws.send("[" + ",".join(members) + "]")
            async with asyncio.timeout(60):
                answer = await ws.recv()
            ok = answer.count('"result"')
            errors = answer.count('"error"')
        await asyncio.sleep(0.5)
        result = outcome(f"{ok} values echoed, {errors} errors", box, server)
        result.log = f"{len(server.log)} log lines"
        return result


async def huge_integer(tree: Path) -> Outcome:
    async with ServerProcess.run(tree=tree) as server:
        async with measured(server) as box, connect(server.url) as ws:
            await ws.send('{"jsonrpc":"2.0","method":"add","params":[1' + "0" * 100000 + ',1],"id":1}')
            data = orjson.loads(await ws.recv())["error"]["data"]
        return outcome(f"-32700: {data!r}", box, server)


async def _drain(tree: Path, ignore_close: bool, second_signal: bool) -> Outcome:
    async with ServerProcess.run(tree=tree) as server:
        client = await RawClient.connect(server.url)
        seconds = 8 if second_signal else 2
        if not ignore_close:  # alone, so that the exit's delay is the close's
            client.write(client.text_frames(*(request("sleep", [seconds], i) for i in range(100))))
        await asyncio.sleep(0.5)
        start = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        if second_signal:
            await asyncio.sleep(1)
            server.process.send_signal(signal.SIGTERM)
        answered = 0
        if ignore_close:
            reader = asyncio.create_task(client.discard_until_eof())
        else:
            with contextlib.suppress(EOFError, TimeoutError, ConnectionError):
                async with asyncio.timeout(30):
                    while True:
                        await client.next_text()
                        answered += 1
        async with asyncio.timeout(60):
            status = await server.process.wait()
        took = time.monotonic() - start
        if ignore_close:
            reader.cancel()
        client.abort()
        if ignore_close:
            return Outcome(f"exit {status} after {took:.1f} s")
        return Outcome(f"{answered} of 100 answered; exit {status} after {took:.1f} s")


async def drain(tree: Path) -> Outcome:
    return await _drain(tree, ignore_close=False, second_signal=False)


async def drain_ignored_close(tree: Path) -> Outcome:
    return await _drain(tree, ignore_close=True, second_signal=False)


async def drain_second_signal(tree: Path) -> Outcome:
    return await _drain(tree, ignore_close=False, second_signal=True)


ATTACKS: dict[str, tuple[str, Attack]] = {
    "amplification": ("1. a batch of 1,000 `count(10000, 0)`", amplification),
    "batches": ("2. 130 batches of 1,000 `sleep(10)` on one connection", batches_in_flight),
    "unread": ("2. 128 batches of 100 `sleep(1, 8 KB)`, answers never read", unread_answers),
    "bytes": ("2. 100 messages of `sleep(1, 500 KB)`", bytes_in_flight),
    "descriptors": ("3. 1,500 clients at once, 1,024 descriptors", descriptors),
    "cancel": ("4. `rpc.cancel` of a call queued behind 128 `sleep(2)`", cancel_at_the_cap),
    "subscriptions": ("5. 20 x 32 `clock` subscriptions at 0.01 s, never read", subscriptions),
    "fragments": ("6. 5,000,000 empty continuation frames", empty_fragments),
    "small-fragments": ("6. a 1 MiB message in 2-byte fragments", small_fragments),
    "deep": ("7. a batch of 500 values nested 1,000 deep", deep_values),
    "integer": ("8. `10**100000` as a param", huge_integer),
    "drain": ("9. SIGTERM with 100 `sleep(2)` running", drain),
    "ignored-close": ("9. SIGTERM, an idle peer that ignores the close", drain_ignored_close),
    "second-signal": ("9. a second SIGTERM during the drain of 100 `sleep(8)`", drain_second_signal),
}


def cell(result: Outcome | None) -> str:
    if result is None:
        return ""
    parts = [result.got]
    if result.peak_mib is not None:
        parts.append(f"peak +{result.peak_mib:.0f} MiB")
    if result.cpu_s is not None:
        parts.append(f"CPU {result.cpu_s:.1f} s")
    if result.fair is not None:
        parts.append("others answered < 1 s" if result.fair else "**others waited > 1 s**")
    if result.log:
        parts.append(result.log)
    return "; ".join(parts).replace("|", "\\|")


async def run(names: Sequence[str], trees: list[tuple[str, Path]]) -> str:
    rows = []
    for name in names:
        title, attack = ATTACKS[name]
        cells = []
        for label, tree in trees:
            print(f"{name} ({label})...", file=sys.stderr, flush=True)
            try:
                cells.append(cell(await attack(tree)))
            except Exception as exc:  # an attack that breaks the old server is a result too
                cells.append(f"failed: {type(exc).__name__}: {exc}"[:200])
        rows.append(f"| {title} | " + " | ".join(cells) + " |")
    header = "| attack | " + " | ".join(label for label, _ in trees) + " |"
    rule = "|---|" + "---|" * len(trees)
    return "\n".join([header, rule, *rows])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.abuse.report", description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, help="another checkout to measure too (the code before a fix)")
    parser.add_argument("--only", help=f"comma-separated, from: {', '.join(ATTACKS)}")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",")] if args.only else list(ATTACKS)
    unknown = [n for n in names if n not in ATTACKS]
    if unknown:
        parser.error(f"unknown attacks: {', '.join(unknown)}")
    trees = [("before", args.before.resolve())] if args.before else []
    trees.append(("now" if args.before else "outcome", ROOT))
    print(asyncio.run(run(names, trees)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
