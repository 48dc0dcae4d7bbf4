"""A raw WebSocket client for tests that must control the bytes on the wire.

websockets' own client writes one frame per call and answers the server by
itself; some transport behaviour only shows when several frames arrive in one
TCP read, when frames follow a handshake before its answer, or when a peer
pings but never answers a close. :class:`RawClient` builds frames with
websockets' Sans-I/O :class:`~websockets.client.ClientProtocol` and leaves the
writing and reading to the test; the module functions serialise a handshake or
a frame with no connection at all.
"""

from __future__ import annotations

import asyncio

from websockets.client import ClientProtocol
from websockets.frames import Frame, Opcode
from websockets.http11 import Request, Response
from websockets.uri import parse_uri

__all__ = ["WAIT", "RawClient", "handshake_bytes", "masked_text_frame"]

WAIT = 5  # seconds: a bound on waits that normally take milliseconds


def handshake_bytes(url: str) -> bytes:
    """The opening handshake (an HTTP GET) that a client sends for ``url``."""
    protocol = ClientProtocol(parse_uri(url))
    protocol.send_request(protocol.connect())
    return b"".join(protocol.data_to_send())


def masked_text_frame(text: str) -> bytes:
    """One text frame as a client sends it (masked), whatever the state of any connection."""
    return Frame(Opcode.TEXT, text.encode()).serialize(mask=True)


class RawClient:
    """A WebSocket client connection whose writes and reads the test drives.

    Reading feeds the protocol and sends what it answers by itself (pongs, the
    echo of a close), as any client would; :meth:`discard_until_eof` reads
    without answering anything.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, protocol: ClientProtocol) -> None:
        self.reader = reader
        self.writer = writer
        self.protocol = protocol
        self.events: list[Request | Response | Frame] = []  # received and not yet taken by a test

    @classmethod
    async def connect(cls, url: str) -> RawClient:
        """Open a TCP connection to ``url`` and complete the opening handshake.

        Raises:
            AssertionError: the server refused the handshake or closed the connection first.
        """
        uri = parse_uri(url)
        reader, writer = await asyncio.open_connection(uri.host, uri.port)
        client = cls(reader, writer, ClientProtocol(uri))
        client.protocol.send_request(client.protocol.connect())
        client._send_pending()
        async with asyncio.timeout(WAIT):
            while not any(isinstance(event, Response) for event in client.events):
                assert await client.read(), "the server closed the connection during the handshake"
        response = next(event for event in client.events if isinstance(event, Response))
        client.events.remove(response)
        assert response.status_code == 101, f"handshake refused: {response.status_code}"
        return client

    def text_frames(self, *texts: str) -> bytes:
        """Text frames serialised back to back, for the test to write in one go."""
        for text in texts:
            self.protocol.send_text(text.encode())
        return b"".join(self.protocol.data_to_send())

    def ping_frame(self, data: bytes = b"raw") -> bytes:
        """A ping frame serialised, for the test to write."""
        self.protocol.send_ping(data)
        return b"".join(self.protocol.data_to_send())

    def write(self, data: bytes) -> None:
        """Write bytes as they are, in one call (so usually in one TCP segment)."""
        self.writer.write(data)

    async def read(self) -> bool:
        """Read once and take in what arrived, answering as a client does; False at the end of the stream."""
        data = await self.reader.read(65536)
        if not data:
            self.protocol.receive_eof()
        else:
            self.protocol.receive_data(data)
        self.events.extend(self.protocol.events_received())
        self._send_pending()
        return bool(data)

    async def next_frame(self, *opcodes: Opcode) -> Frame:
        """The next frame received with one of ``opcodes``, waiting at most :data:`WAIT` seconds.

        Raises:
            TimeoutError: none came in time.
            EOFError: the connection ended first.
        """
        async with asyncio.timeout(WAIT):
            while True:
                for event in self.events:
                    if isinstance(event, Frame) and event.opcode in opcodes:
                        self.events.remove(event)
                        return event
                if not await self.read():
                    raise EOFError(f"the connection ended before a {'/'.join(o.name for o in opcodes)} frame")

    async def next_text(self) -> str:
        """The next text message received (see :meth:`next_frame`)."""
        frame = await self.next_frame(Opcode.TEXT)
        return bytes(frame.data).decode()

    async def discard_until_eof(self) -> None:
        """Read and drop everything, answering nothing (not even a close), until the server ends the stream."""
        while True:
            try:
                if not await self.reader.read(65536):
                    return
            except ConnectionError:  # cut with a reset rather than a FIN: ended all the same
                return

    def abort(self) -> None:
        """Drop the TCP connection at once, with no closing handshake."""
        self.writer.transport.abort()

    def _send_pending(self) -> None:
        for chunk in self.protocol.data_to_send():
            if chunk:
                self.writer.write(chunk)
