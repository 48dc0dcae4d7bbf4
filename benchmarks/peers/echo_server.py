"""The limit: a bare ``websockets`` server that answers each frame with itself.

Run as ``python echo_server.py --port 0 [--compression]``.
"""

from __future__ import annotations

import asyncio
import signal

from websockets.asyncio.server import ServerConnection, serve

from benchmarks.peers import run_peer

__all__ = ["main"]


async def echo(ws: ServerConnection) -> None:
    async for message in ws:
        await ws.send(message)


async def serve_until_stopped(host: str, port: int, compression: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # Both settings stated, as in this project's server: deflate only when asked, 1 MiB messages.
    async with serve(echo, host, port, compression="deflate" if compression else None, max_size=2**20) as server:
        bound = server.sockets[0].getsockname()[1]
        print(f"listening on ws://{host}:{bound}/ws", flush=True)
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    run_peer(serve_until_stopped, __doc__, argv)


if __name__ == "__main__":
    main()
