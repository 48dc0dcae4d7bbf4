"""The server's own WebSocket text frames, written without websockets' Frame objects.

An answer is one unfragmented, unmasked text frame (RFC 6455 section 5.2).
websockets builds a :class:`~websockets.frames.Frame` and serialises it
through a buffer for each: a sixth of the CPU of a single call here (issue
13). Where no extension is negotiated (permessage-deflate rewrites the
payload), the frame is this header and the payload, byte for byte what
websockets writes; tests/rpc_server/test_frames.py compares them.
"""

from __future__ import annotations

__all__ = ["text_frame"]

_FIN_TEXT = 0x81  # FIN set, opcode 1 (text)
_SHORT = _FIN_TEXT.to_bytes(1, "big")


def text_frame(payload: bytes) -> bytes:
    """One whole text frame, as a server sends it (no mask), carrying ``payload``."""
    size = len(payload)
    if size < 126:
        return bytes((_FIN_TEXT, size)) + payload
    if size < 65536:
        return _SHORT + b"\x7e" + size.to_bytes(2, "big") + payload
    return _SHORT + b"\x7f" + size.to_bytes(8, "big") + payload
