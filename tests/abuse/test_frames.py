"""Fragmented messages pay for their frames' headers (issue 9, defect 6).

Before: the size limit counted payload bytes only, so 5,000,000 empty
continuation frames (28 MB on the wire) cost 41 MB and 22 s of CPU and the
connection stayed open, and a legal 1 MiB message in 2-byte fragments cost
28 MB. Now each frame of a fragmented message counts its header (6 bytes or
more for a client's masked frame) with its payload against
``max_message_bytes``, and the fragments are put together as they come.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from websockets.frames import Close, CloseCode, Frame, Opcode

from ..rpc_server.rawws import RawClient
from .harness import MIB, WAIT, Bystander, ServerProcess, request

EMPTY_CONTINUATION = Frame(Opcode.CONT, b"", fin=False).serialize(mask=True)


async def _close_code(client: RawClient) -> int | None:
    """The code of the server's close frame, or None if the connection ended without one (no time bound)."""
    while True:
        for event in client.events:
            if isinstance(event, Frame) and event.opcode is Opcode.CLOSE:
                return Close.parse(event.data).code
        try:
            if not await client.read():
                return None
        except ConnectionError:
            return None


async def test_a_flood_of_empty_continuation_frames_is_closed_1009_after_a_megabyte() -> None:
    """Empty fragments after an empty first frame: closed with 1009 after about 174,000; +16 MiB, 3 s of CPU at most.

    Before: a million of them were all taken in (22 s of CPU for five
    million), and the connection stayed open. The fix measured 1.4 s of CPU
    and +3 MiB; a bystander is answered within 1 s throughout (the fairness
    check), since a read is taken in slices of 64 KiB a loop turn.
    """
    chunk = EMPTY_CONTINUATION * 20_000  # 120 KB a write
    async with ServerProcess.run() as server:
        base = server.rss_bytes()
        server.reset_peak()
        cpu = server.cpu_s()
        async with Bystander(server.url) as bystander:
            client = await RawClient.connect(server.url)
            client.write(Frame(Opcode.TEXT, b"", fin=False).serialize(mask=True))
            sent = 0
            closed = asyncio.create_task(_close_code(client))
            try:
                while sent < 1_000_000 and not closed.done():
                    client.write(chunk)
                    sent += 20_000
                    try:
                        async with asyncio.timeout(WAIT):
                            await client.writer.drain()
                    except ConnectionError:
                        break
                async with asyncio.timeout(WAIT):
                    code = await closed
            finally:
                closed.cancel()
                client.abort()
        used = server.cpu_s() - cpu
        assert code == CloseCode.MESSAGE_TOO_BIG
        grown = (server.peak_bytes() - base) / MIB
        assert grown < 16, f"peak memory grew by {grown:.1f} MiB"
        assert used < 3.0, f"the server used {used:.1f} s of CPU"
        assert bystander.slow == [], bystander.slow
        assert server.tracebacks() == []


def fragments(text: str, size: int) -> bytes:
    """``text`` as a text message in fragments of ``size`` (< 126) bytes, masked as a client sends them.

    Written by hand rather than by websockets, frame by frame: half a million
    frames would take the test seconds. The mask is zero, which RFC 6455 allows.
    """
    assert size < 126
    data = text.encode()
    pieces = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
    last = len(pieces) - 1
    out = bytearray()
    for i, piece in enumerate(pieces):
        opcode = Opcode.TEXT.value if i == 0 else Opcode.CONT.value
        out += bytes((opcode | (0x80 if i == last else 0), 0x80 | len(piece))) + b"\0\0\0\0" + piece
    return bytes(out)


async def test_a_megabyte_in_two_byte_fragments_is_refused_with_1009(start_server: Any) -> None:
    """A 1 MiB message in 2-byte fragments is 4 MiB of frames: over the 1 MiB limit, closed 1009."""
    server = await start_server()
    client = await RawClient.connect(server.url)
    try:
        message = request("sleep", [0, "x" * (MIB - 100)], 1)
        client.write(fragments(message, 2))
        async with asyncio.timeout(WAIT):
            assert await _close_code(client) == CloseCode.MESSAGE_TOO_BIG
    finally:
        client.abort()


async def test_a_fragmented_message_within_the_limit_headers_included_is_answered(start_server: Any) -> None:
    """Under max_message_bytes=2048, 100 fragments of a message are answered while its payload and headers fit."""
    server = await start_server(max_message_bytes=2048)
    client = await RawClient.connect(server.url)
    try:
        # 100 frames of 6-byte headers: 600 bytes of headers, so 1,448 of payload at most.
        message = request("sleep", [0, "x" * 10], 1)
        message += " " * (1448 - len(message.encode()))
        client.write(fragments(message, 15))  # 1448 / 15: 97 frames, 582 bytes of headers
        assert orjson.loads(await client.next_text()) == {"jsonrpc": "2.0", "result": "x" * 10, "id": 1}
        client.write(fragments(message + " " * 200, 15))  # 110 frames: 660 + 1648 bytes
        async with asyncio.timeout(WAIT):
            assert await _close_code(client) == CloseCode.MESSAGE_TOO_BIG
    finally:
        client.abort()


async def test_a_fragmented_binary_message_is_answered_as_binary_frames_are(start_server: Any) -> None:
    """A binary message in fragments gets the binary frame's -32600, and the connection serves on."""
    server = await start_server()
    client = await RawClient.connect(server.url)
    try:
        frames = [
            Frame(Opcode.BINARY, b"ab", fin=False).serialize(mask=True),
            Frame(Opcode.CONT, b"cd", fin=True).serialize(mask=True),
        ]
        client.write(b"".join(frames) + fragments(request("multiply", [6, 7], 2), 5))
        first, second = orjson.loads(await client.next_text()), orjson.loads(await client.next_text())
        assert first["error"]["code"] == -32600 and "binary" in first["error"]["data"]
        assert second == {"jsonrpc": "2.0", "result": 42, "id": 2}
    finally:
        client.abort()
