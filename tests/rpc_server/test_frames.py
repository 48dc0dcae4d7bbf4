"""The server's text frames are byte for byte the frames websockets would write."""

from __future__ import annotations

import json

import pytest
from websockets.frames import Frame, Opcode, apply_mask

from rpc_server.frames import FrameReader, text_frame

from ..conftest import StartServer
from .rawws import RawClient


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_a_text_frame_is_what_websockets_writes(size: int) -> None:
    """Each length encoding (7 bits, 16, 64) at and around its bounds gives websockets' own bytes."""
    payload = bytes(i % 251 for i in range(size))
    assert text_frame(payload) == Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])


def _client_frames() -> tuple[bytes, list[tuple[int, bytes]]]:
    """What a client writes for a mix of frames, and each frame's (opcode, payload)."""
    frames = [
        Frame(Opcode.TEXT, b'{"jsonrpc":"2.0","method":"add","params":[1,2],"id":1}'),
        Frame(Opcode.PING, b"ping"),
        Frame(Opcode.TEXT, b"x" * 300),  # a 16-bit length
        Frame(Opcode.TEXT, b"first half, ", fin=False),  # then a continuation: handed over (see below)
        Frame(Opcode.BINARY, b"\x00\x01"),
        Frame(Opcode.TEXT, b""),
        Frame(Opcode.TEXT, b"y" * 70000),  # a 64-bit length
    ]
    wire = b"".join(frame.serialize(mask=True, extensions=[]) for frame in frames)
    return wire, [(frame.opcode.value, frame.data) for frame in frames]


def _read(reader: FrameReader, wire: bytes, step: int) -> list[tuple[bytes, int]]:
    return [item for at in range(0, len(wire), step) for item in reader.feed(wire[at : at + step])]


@pytest.mark.parametrize("step", [1, 2, 3, 7, 1000, 10**6])
def test_the_reader_finds_the_same_frames_however_the_bytes_are_cut(step: int) -> None:
    """Fed in pieces of any size, it hands back each frame whole, and marks whole text frames only."""
    wire, sent = _client_frames()
    reader = FrameReader(max_size=2**20)
    read = _read(reader, wire, step)
    assert b"".join(frame for frame, _ in read) == wire
    assert not reader.pending and not reader.off
    assert len(read) == len(sent)
    for (frame, start), (opcode, payload) in zip(read, sent, strict=True):
        assert (start >= 0) == (opcode == Opcode.TEXT.value and frame[0] & 0x80 != 0)
        if start >= 0:
            assert apply_mask(frame[start:], frame[start - 4 : start]) == payload


def test_a_frame_over_the_size_limit_is_handed_over_from_its_header() -> None:
    """A header announcing more than max_size is not waited for: it, and all after it, go to websockets."""
    reader = FrameReader(max_size=100)
    small = Frame(Opcode.TEXT, b"ok").serialize(mask=True, extensions=[])
    big = Frame(Opcode.TEXT, b"z" * 101).serialize(mask=True, extensions=[])
    assert reader.feed(small + big[:10]) == [(small, 6), (big[:10], -1)]
    assert reader.off


@pytest.mark.parametrize(
    ("name", "frame"),
    [
        ("unmasked", Frame(Opcode.TEXT, b"hi").serialize(mask=False, extensions=[])),
        ("a reserved bit", bytes([0xC1]) + Frame(Opcode.TEXT, b"hi").serialize(mask=True, extensions=[])[1:]),
        ("an undefined opcode", bytes([0x83]) + Frame(Opcode.TEXT, b"hi").serialize(mask=True, extensions=[])[1:]),
        # Only websockets knows how much of the message's size limit is left for a continuation.
        ("a continuation", Frame(Opcode.CONT, b"x" * 200).serialize(mask=True, extensions=[])),
    ],
)
def test_a_frame_websockets_refuses_from_its_header_is_handed_over_at_once(name: str, frame: bytes) -> None:
    """websockets judges these from the header (and fails the connection on the first three): it gets them at once."""
    reader = FrameReader(max_size=2**20)
    assert reader.feed(frame[:2]) == [(frame[:2], -1)]
    assert reader.off


async def test_a_connection_answers_frames_cut_at_every_byte_as_whole_ones(start_server: StartServer) -> None:
    """Calls, a ping and a fragmented call, sent one byte a write, are all answered, in order."""
    server = await start_server()
    client = await RawClient.connect(server.url)
    try:
        client.protocol.send_text(b'{"jsonrpc":"2.0","method":"multiply","params":[3,7],"id":1}')
        client.protocol.send_ping(b"are you there")
        client.protocol.send_text(b'{"jsonrpc":"2.0","method":"add",', fin=False)
        client.protocol.send_continuation(b'"params":[3,7],"id":2}', fin=True)
        wire = b"".join(client.protocol.data_to_send())
        for at in range(len(wire)):
            client.write(wire[at : at + 1])
            await client.writer.drain()
        assert json.loads(await client.next_text()) == {"jsonrpc": "2.0", "result": 21, "id": 1}
        assert bytes((await client.next_frame(Opcode.PONG)).data) == b"are you there"
        assert json.loads(await client.next_text()) == {"jsonrpc": "2.0", "result": 10, "id": 2}
    finally:
        client.abort()


@pytest.mark.parametrize("debug", [False, True])
async def test_the_server_reads_with_its_own_reader_except_at_debug_level(
    start_server: StartServer, debug: bool, caplog: pytest.LogCaptureFixture
) -> None:
    """After a call, the connection reads through .frames (the fast path is really on); at debug level, websockets."""
    if debug:
        caplog.set_level("DEBUG", logger="websockets")
    server = await start_server()
    client = await RawClient.connect(server.url)
    try:
        client.protocol.send_text(b'{"jsonrpc":"2.0","method":"multiply","params":[6,7],"id":1}')
        client.write(b"".join(client.protocol.data_to_send()))
        assert json.loads(await client.next_text()) == {"jsonrpc": "2.0", "result": 42, "id": 1}
        [connection] = server.connections
        assert (connection.reader is not None) is not debug
        assert connection.own_frames is not debug
    finally:
        client.abort()
