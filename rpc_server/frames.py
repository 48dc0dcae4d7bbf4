"""The server's own WebSocket text frames, written without websockets' Frame objects.

An answer is one unfragmented, unmasked text frame (RFC 6455 section 5.2).
websockets builds a :class:`~websockets.frames.Frame` and serialises it
through a buffer for each: a sixth of the CPU of a single call here (issue
13). Where no extension is negotiated (permessage-deflate rewrites the
payload), the frame is this header and the payload, byte for byte what
websockets writes; tests/rpc_server/test_frames.py compares them.
"""

from __future__ import annotations

__all__ = ["FrameReader", "text_frame"]

_FIN_TEXT = 0x81  # FIN set, opcode 1 (text)
_SHORT = _FIN_TEXT.to_bytes(1, "big")
_WAITED = frozenset((0x1, 0x2, 0x8, 0x9, 0xA))  # text, binary, close, ping, pong: the opcodes waited for whole


def text_frame(payload: bytes) -> bytes:
    """One whole text frame, as a server sends it (no mask), carrying ``payload``."""
    size = len(payload)
    if size < 126:
        return bytes((_FIN_TEXT, size)) + payload
    if size < 65536:
        return _SHORT + b"\x7e" + size.to_bytes(2, "big") + payload
    return _SHORT + b"\x7f" + size.to_bytes(8, "big") + payload


class FrameReader:
    """Splits what a client sends into whole frames, and finds the masked text frames among them; no I/O.

    websockets parses each frame through a generator, a reader and a Frame
    object: a quarter of the CPU of a single call. Fed a connection's
    bytes once websockets' own parser stands between two frames, this hands
    back each whole frame as it came, with where its payload starts when it is
    a whole, masked text frame with no reserved bit: the caller unmasks those
    itself and hands every other frame, whole, to websockets, whose parser so
    stays between frames. A frame websockets would refuse from its header
    alone (no mask, a reserved bit, an undefined opcode, a control frame over
    125 bytes, more than ``max_size``), and any continuation frame, is not
    waited for: it and all that follows go to websockets, and :attr:`off` says
    the reader has handed over for good.

    Args:
        max_size: the longest payload waited for; websockets' ``max_message_size``.
    """

    __slots__ = ("max_size", "off", "pending")

    def __init__(self, max_size: int | None) -> None:
        self.max_size = max_size
        self.off = False
        self.pending = bytearray()  # the start of a frame not yet whole

    def feed(self, data: bytes) -> list[tuple[bytes, int]]:
        """The whole frames completed by ``data``, each with its payload's offset, or -1 when not a text frame.

        Once :attr:`off`, the last item holds everything from the refused frame on, and nothing more is read.
        """
        pending = self.pending
        if pending:
            pending += data
            buf: bytes | bytearray = pending
        else:
            buf = data
        end = len(buf)
        pos = 0
        frames: list[tuple[bytes, int]] = []
        while end - pos >= 2:
            first, second = buf[pos], buf[pos + 1]
            length = second & 0x7F
            head = 6 if length < 126 else 8 if length == 126 else 14  # with the 4 bytes of the mask
            # What websockets refuses from the first two bytes: no mask (a client must mask), a
            # reserved bit (no extension is negotiated), an opcode RFC 6455 does not define, a control
            # frame longer than 125 bytes. A continuation goes too: only websockets knows what is left
            # of its message's size limit (fragments are rare, so the fast path is not missed).
            opcode = first & 0x0F
            refused = not second & 0x80 or first & 0x70 or opcode not in _WAITED or (opcode & 0x08 and length > 125)
            if not refused:
                if end - pos < head:
                    break
                if length == 126:
                    length = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                elif length == 127:
                    length = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                refused = self.max_size is not None and length > self.max_size
            if refused:
                frames.append((bytes(buf[pos:]), -1))
                self.off = True
                pos = end
                break
            total = head + length
            if end - pos < total:
                break
            frames.append((bytes(buf[pos : pos + total]), head if first == 0x81 else -1))
            pos += total
        if pending:
            del pending[:pos]
        elif pos < end:
            pending += buf[pos:]
        return frames
