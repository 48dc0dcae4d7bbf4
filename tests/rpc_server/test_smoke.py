"""A first end-to-end check: one call over a real socket."""

import json

from websockets.asyncio.client import connect


async def test_multiply_over_a_real_socket(server):
    """multiply(3, 4) sent over /ws answers 12 with the request's id."""
    async with connect(server.url) as ws:
        await ws.send(json.dumps({"jsonrpc": "2.0", "method": "multiply", "params": [3, 4], "id": 1}))
        assert json.loads(await ws.recv()) == {"jsonrpc": "2.0", "result": 12, "id": 1}
