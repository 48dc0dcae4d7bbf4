"""The WebSocket link's own cutting of frames, against websockets' parser, on raw bytes with no socket."""

from __future__ import annotations

import asyncio
import random

import pytest
from websockets.client import ClientProtocol
from websockets.frames import Close, CloseCode, Frame, Opcode
from websockets.protocol import State
from websockets.uri import parse_uri

from rpc_client.websocket import WebSocketConnection

URL = "ws://127.0.0.1:1/ws"


class CapturingTransport(asyncio.Transport):
    """A transport that keeps what is written to it."""

    def __init__(self) -> None:
        super().__init__()
        self.data = bytearray()
        self.closing = False

    def write(self, data: bytes) -> None:  # type: ignore[override]
        self.data += data

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.closing = True


def server_frame(opcode: Opcode, data: bytes, fin: bool = True) -> bytes:
    """A frame as a server sends it (unmasked)."""
    return Frame(opcode, data, fin).serialize(mask=False)


def opened(own_frames: bool, max_size: int | None = 2**20) -> tuple[WebSocketConnection, list[bytes | str]]:
    protocol = ClientProtocol(parse_uri(URL), state=State.OPEN, max_size=max_size)
    connection = WebSocketConnection(
        protocol,
        URL,
        additional_headers=None,
        user_agent_header=None,
        ping_interval=None,
        ping_timeout=None,
        close_timeout=1,
    )
    connection.transport = CapturingTransport()
    connection.opened.set_result(None)
    connection._own_frames = own_frames  # the way under test, or websockets' alone
    received: list[bytes | str] = []
    connection.start(received.append, lambda: None)
    return connection, received


STREAMS = {
    "short texts": [server_frame(Opcode.TEXT, b'{"id": %d}' % n) for n in range(20)],
    "lengths around 126 and 65536": [
        server_frame(Opcode.TEXT, b"x" * n) for n in (0, 1, 125, 126, 127, 65535, 65536, 70000)
    ],
    "binary": [server_frame(Opcode.BINARY, b"\x00\xff" * 40), server_frame(Opcode.TEXT, b"after")],
    "a ping among them": [
        server_frame(Opcode.TEXT, b"one"),
        server_frame(Opcode.PING, b"hello"),
        server_frame(Opcode.TEXT, b"two"),
    ],
    "a fragmented message": [
        server_frame(Opcode.TEXT, b"frag", fin=False),
        server_frame(Opcode.PING, b"in between"),
        server_frame(Opcode.CONT, b"ment", fin=False),
        server_frame(Opcode.CONT, b"ed", fin=True),
        server_frame(Opcode.TEXT, b"whole"),
    ],
    "unicode": [server_frame(Opcode.TEXT, "é日本 \u2028".encode())],
    "a close": [
        server_frame(Opcode.TEXT, b"last"),
        server_frame(Opcode.CLOSE, Close(CloseCode.GOING_AWAY, "bye").serialize()),
        server_frame(Opcode.TEXT, b"after the close"),
    ],
    "invalid UTF-8": [
        server_frame(Opcode.TEXT, b"ok"),
        server_frame(Opcode.TEXT, b"\xff\xfe"),
        server_frame(Opcode.TEXT, b"no"),
    ],
    "too big": [
        server_frame(Opcode.TEXT, b"fits"),
        server_frame(Opcode.TEXT, b"y" * 300),
        server_frame(Opcode.TEXT, b"no"),
    ],
}


def _cuts(data: bytes, seed: int) -> list[bytes]:
    rng = random.Random(seed)
    points = sorted(rng.sample(range(1, len(data)), min(len(data) - 1, rng.randint(0, 12))))
    return [data[a:b] for a, b in zip([0, *points], [*points, len(data)], strict=True)]


@pytest.mark.parametrize("name", STREAMS)
@pytest.mark.parametrize("seed", [0, 1, 2, 3])
async def test_frames_cut_here_give_what_websockets_parser_gives(name, seed):
    """Any stream, cut anywhere: the same messages delivered, the same bytes written back, the same state."""
    data = b"".join(STREAMS[name])
    max_size = 200 if name == "too big" else 2**20
    fast, fast_received = opened(own_frames=True, max_size=max_size)
    slow, slow_received = opened(own_frames=False, max_size=max_size)
    for piece in _cuts(data, seed):
        fast.data_received(piece)
        slow.data_received(piece)
        slow._own_frames = False  # stay on websockets' parser throughout
    assert fast_received == slow_received
    assert fast.ws.state is slow.ws.state
    # Pongs and close frames are masked at random: compare what they carry, not their bytes.
    assert len(fast.transport.data) == len(slow.transport.data)  # type: ignore[union-attr]
    if name == "a ping among them":
        assert fast_received == ["one", "two"]
        assert fast.transport.data  # type: ignore[union-attr]  # the pong went out


async def test_the_streams_cover_the_cases_cut_apart():
    """The way under test does deliver on its own in the plain cases (so the comparison compares something)."""
    fast, received = opened(own_frames=True)
    fast.data_received(b"".join(STREAMS["short texts"]))
    assert fast._own_frames and len(received) == 20


async def test_a_write_while_the_server_closes_says_closing_and_why_not_still_open():
    """After the server's close frame, a write raises ConnectionLost naming the close it received (review F5)."""
    from rpc_client import ConnectionLost

    connection, _ = opened(own_frames=True)
    assert connection.close_reason == "it is still open"
    connection.data_received(
        server_frame(Opcode.CLOSE, Close(CloseCode.GOING_AWAY, "the server is shutting down").serialize())
    )
    assert connection.ws.state is State.CLOSING
    with pytest.raises(ConnectionLost) as raised:
        connection.write(b'{"jsonrpc": "2.0", "method": "add", "params": [1, 2], "id": 1}')
    message = str(raised.value)
    assert "still open" not in message
    assert message.endswith(
        "is no longer open (closing: received 1001 (going away) the server is shutting down; "
        "then sent 1001 (going away) the server is shutting down)"
    ), message
