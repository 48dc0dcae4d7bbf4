"""The load generator's ceiling: a bare picows server that answers each frame with itself.

It costs less per message than any server measured here, so what the load generator
reaches against it is about as much as the load generator can drive. With
``--compression`` it runs picows' websockets-compatible server, which negotiates
permessage-deflate; picows' core does not.

Run as ``python picows_echo.py --port 0 [--compression]``.
"""

from __future__ import annotations

import asyncio
import signal
from typing import Any

from picows import WSFrame, WSListener, WSMsgType, WSTransport, WSUpgradeRequest, ws_create_server

from benchmarks.peers import run_peer

__all__ = ["main"]


class Echo(WSListener):  # type: ignore[misc]
    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        kind = frame.msg_type
        if kind == WSMsgType.CLOSE:
            transport.send_close(frame.get_close_code(), frame.get_close_message())
            transport.disconnect()
        elif kind != WSMsgType.PING and kind != WSMsgType.PONG:
            # Fragments go back as fragments, in order: still an echo of each frame.
            transport.send(kind, frame.get_payload_as_memoryview(), frame.fin)


async def _echo_messages(ws: Any) -> None:
    async for message in ws:
        await ws.send(message)


async def serve_until_stopped(host: str, port: int, compression: bool) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    if compression:
        from picows.websockets.asyncio.server import serve

        server: Any = await serve(_echo_messages, host, port, compression="deflate", ping_interval=None, max_size=2**20)
    else:

        def listener(request: WSUpgradeRequest) -> Echo:
            return Echo()

        server = await ws_create_server(listener, host, port)
    try:
        bound = server.sockets[0].getsockname()[1]
        print(f"listening on ws://{host}:{bound}/ws", flush=True)
        await stop.wait()
    finally:
        server.close()


def main(argv: list[str] | None = None) -> None:
    run_peer(serve_until_stopped, __doc__, argv)


if __name__ == "__main__":
    main()
