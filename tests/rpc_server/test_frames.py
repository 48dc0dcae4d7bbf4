"""The server's text frames are byte for byte the frames websockets would write."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode

from rpc_server.frames import text_frame


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_a_text_frame_is_what_websockets_writes(size: int) -> None:
    """Each length encoding (7 bits, 16, 64) at and around its bounds gives websockets' own bytes."""
    payload = bytes(i % 251 for i in range(size))
    assert text_frame(payload) == Frame(Opcode.TEXT, payload).serialize(mask=False, extensions=[])
