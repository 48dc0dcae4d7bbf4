"""The instructions the metrics add per call, for callgrind: ``multiply`` calls through one connection, no sockets.

One process feeds ``--calls`` pipelined calls (in reads of 100 frames) to a
server connection over a transport that discards what it writes, with the
metrics on or off. Run it under callgrind twice per setting, with ``--calls
0`` and with N calls; the difference over N is the cost of one call::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \
        python -m benchmarks.metrics_cost --calls 20000 --metrics on

``--calls 0`` still builds the server, handshakes and warms up, so the
start-up cost cancels out. The figures are in docs/operations.md.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.uri import parse_uri

from rpc_server import RpcServer, builtin_tools
from rpc_server.connection import Connection
from rpc_server.service import Service

READ = 100  # frames per data_received, as a pipelining client's reads bring them


class _Sink(asyncio.Transport):
    """A transport that takes every write and never pushes back."""

    def write(self, data: Any) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 50000) if name == "peername" else default

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


# One call, masked as a client sends it; a read repeats it (plain calls may share an id).
_CALL = Frame(Opcode.TEXT, b'{"jsonrpc":"2.0","method":"multiply","params":[3,4],"id":1}').serialize(mask=True)


def _reads(count: int) -> list[bytes]:
    return [_CALL * min(READ, count - start) for start in range(0, count, READ)]


async def run(calls: int, metrics: bool) -> None:
    server = RpcServer(builtin_tools(), port=0)
    Service(server, metrics=metrics)
    connection = Connection(server)
    connection.connection_made(_Sink())
    client = ClientProtocol(parse_uri("ws://127.0.0.1:8000/ws"))
    client.send_request(client.connect())
    connection.data_received(b"".join(client.data_to_send()))
    for read in _reads(1000):  # warm-up, the same with --calls 0
        connection.data_received(read)
    reads = _reads(calls)
    for read in reads:
        connection.data_received(read)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=20_000)
    parser.add_argument("--metrics", choices=("on", "off"), default="on")
    args = parser.parse_args()
    asyncio.run(run(args.calls, args.metrics == "on"))


if __name__ == "__main__":
    main()
