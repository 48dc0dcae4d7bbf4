"""Servers for tests whose own thread blocks: a real RpcServer on an event loop in a thread of its own."""

from __future__ import annotations

import asyncio
import threading

from rpc_server import RpcServer

__all__ = ["ThreadedServer"]


class ThreadedServer:
    """A real RpcServer (the built-in tools, a free port on 127.0.0.1) on its own event loop in a thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="test server loop", daemon=True)
        self.server = RpcServer(host="127.0.0.1", port=0)

    def start(self) -> str:
        """Start it; its URL."""
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(timeout=10)
        return self.server.url

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)
        self.loop.close()
