"""The server's hot path in instructions: pipelined calls through one connection, no network.

``python -m benchmarks.hotpath`` prints the CPU instructions the server spends
per call (``multiply`` pipelined, 100 frames a read) and per batch member
(batches of 1,000 ``multiply``), counted by valgrind's callgrind: unlike a
throughput figure, an instruction count does not move with the load of a
shared machine, so a change of a few percent shows.

It drives a real :class:`rpc_server.connection.Connection` (websockets'
parser, our dispatch, the writes) from its ``asyncio.Protocol`` callbacks,
with a transport that swallows what is written. Each figure is the difference
of two runs, ``N`` calls against none, so start-up and imports cancel out.

To compare two trees, run it in each with the same Python: it uses the
``rpc_server`` that Python imports (``PYTHONPATH=/other/tree python -m
benchmarks.hotpath``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from typing import Any

__all__ = ["main"]

CHUNK = 100  # frames a read: what a pipelining client's writes look like to the server


class _Sink(asyncio.Transport):
    """A transport that takes every write and never pushes back."""

    def __init__(self) -> None:
        super().__init__()
        self.written = 0
        self.closing = False
        self.kept: list[bytes] | None = []  # what is written until the handshake is answered

    def write(self, data: Any) -> None:
        self.written += len(data)
        if self.kept is not None:
            self.kept.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def can_write_eof(self) -> bool:
        return False

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


async def _drive(kind: str, count: int, metrics: bool) -> int:
    from websockets.client import ClientProtocol
    from websockets.uri import parse_uri

    from rpc_server import RpcServer
    from rpc_server.connection import Connection

    server = RpcServer(port=0)
    if metrics:  # as python -m rpc_server serves by default
        from rpc_server.metrics import install

        install(server)
    connection = Connection(server)
    sink = _Sink()
    connection.connection_made(sink)
    client = ClientProtocol(parse_uri("ws://127.0.0.1/ws"))
    client.send_request(client.connect())
    connection.data_received(b"".join(client.data_to_send()))
    assert sink.kept is not None
    client.receive_data(b"".join(sink.kept))
    sink.kept, sink.written = None, 0
    if kind == "call":
        reads = []
        for start in range(0, count, CHUNK):
            for i in range(start, min(start + CHUNK, count)):
                client.send_text(b'{"jsonrpc":"2.0","method":"multiply","params":[%d,7],"id":%d}' % (i, i))
            reads.append(b"".join(client.data_to_send()))
    else:
        member = '{"jsonrpc":"2.0","method":"multiply","params":[3,7],"id":%d}'
        batch = ("[" + ",".join(member % i for i in range(1000)) + "]").encode()
        reads = []
        for _ in range(count // 1000):
            client.send_text(batch)
            reads.append(b"".join(client.data_to_send()))
    for data in reads:
        connection.data_received(data)
    await asyncio.sleep(0)
    return sink.written


def _run_one(kind: str, count: int, metrics: bool) -> None:
    written = asyncio.run(_drive(kind, count, metrics))
    if count and not written:
        raise SystemExit("nothing was answered")


def _instructions(kind: str, count: int, valgrind: str, metrics: bool) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "callgrind.out")
        done = subprocess.run(
            [
                valgrind,
                "--tool=callgrind",
                f"--callgrind-out-file={out}",
                sys.executable,
                "-m",
                "benchmarks.hotpath",
                "--child",
                kind,
                str(count),
                *(["--metrics"] if metrics else []),
            ],
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": "0"},
        )
    match = re.search(r"Collected : (\d+)", done.stderr)
    if match is None:
        raise SystemExit(f"callgrind gave no count:\n{done.stderr[-2000:]}")
    return int(match.group(1))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.hotpath", description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=20_000, help="calls per run (default %(default)s)")
    parser.add_argument("--valgrind", default="valgrind", help="the valgrind command")
    parser.add_argument(
        "--metrics", action="store_true", help="count calls as python -m rpc_server does by default (/metrics)"
    )
    parser.add_argument("--child", nargs=2, metavar=("KIND", "COUNT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        _run_one(args.child[0], int(args.child[1]), args.metrics)
        return 0
    figures: dict[str, float] = {}
    for kind in ("call", "batch"):
        base = _instructions(kind, 0, args.valgrind, args.metrics)
        full = _instructions(kind, args.calls, args.valgrind, args.metrics)
        figures[f"{kind}_instructions"] = (full - base) / args.calls
    import rpc_server

    where = os.path.dirname(rpc_server.__file__)
    print(json.dumps({"rpc_server": where, "calls": args.calls, "metrics": args.metrics, **figures}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
