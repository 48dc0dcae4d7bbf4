"""The seed's stack: a FastAPI websocket endpoint under uvicorn, with uvicorn's defaults.

It answers the seed's message, ``{"func": "multiply", "args": [3, 4]}``, with
``{"result": 12}``, one message at a time, as the seed did. It has no ids and no
batches. permessage-deflate is uvicorn's to negotiate; it is on only with ``--compression``.

Run as ``python fastapi_peer.py --port 0 [--compression]``.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

import uvicorn
from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from benchmarks.peers import run_peer

__all__ = ["app", "main"]

app = FastAPI()

OPERATIONS: dict[str, Any] = {"multiply": lambda a, b: a * b}


@app.websocket("/ws")
async def calls(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            message = json.loads(await websocket.receive_text())
            try:
                answer = {"result": OPERATIONS[message["func"]](*message["args"])}
            except (KeyError, TypeError) as exc:
                answer = {"error": str(exc)}
            await websocket.send_text(json.dumps(answer))
    except WebSocketDisconnect:
        pass


async def serve_until_stopped(host: str, port: int, compression: bool) -> None:
    # Binding here, not in uvicorn, is what lets us print the port that 0 picked.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(app, log_level="warning", ws_per_message_deflate=compression)
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve(sockets=[sock]))
    for _ in range(1000):  # up to 10 s
        if server.started or serving.done():
            break
        await asyncio.sleep(0.01)
    if server.started:
        print(f"listening on ws://{host}:{sock.getsockname()[1]}/ws", flush=True)
    # uvicorn handles SIGINT and SIGTERM itself and then returns from serve().
    await serving


def main(argv: list[str] | None = None) -> None:
    run_peer(serve_until_stopped, __doc__, argv)


if __name__ == "__main__":
    main()
