"""The read side's bookkeeping, with no socket: fragments that pay for their headers, and the backlog."""

from __future__ import annotations

import pytest
from websockets.frames import Frame, Opcode

from rpc_server.inbox import BINARY, NONE, Backlog, Fragments, MessageTooBig, cancel_target, header_bytes

from .corpus import request


def test_a_fragmented_text_message_is_put_together_when_its_last_frame_comes() -> None:
    """TEXT, CONT, CONT(fin): None, None, then the whole text."""
    fragments = Fragments(max_bytes=1000)
    assert fragments.add(Frame(Opcode.TEXT, b"ab", fin=False)) is None
    assert fragments.add(Frame(Opcode.CONT, b"cd", fin=False)) is None
    assert fragments.add(Frame(Opcode.CONT, b"ef", fin=True)) == b"abcdef"


def test_a_fragmented_binary_message_comes_out_as_binary_without_its_bytes() -> None:
    """A binary message is refused whole: the assembler says so and keeps none of it."""
    fragments = Fragments(max_bytes=1000)
    assert fragments.add(Frame(Opcode.BINARY, b"x" * 100, fin=False)) is None
    assert fragments.partial == bytearray()
    assert fragments.add(Frame(Opcode.CONT, b"y", fin=True)) is BINARY


def test_each_frame_pays_for_its_header_so_empty_fragments_reach_the_limit() -> None:
    """Under 60 bytes, empty frames (6 bytes of header each) are refused at the eleventh."""
    fragments = Fragments(max_bytes=60)
    fragments.add(Frame(Opcode.TEXT, b"", fin=False))
    for _ in range(9):
        assert fragments.add(Frame(Opcode.CONT, b"", fin=False)) is None
    with pytest.raises(MessageTooBig, match="frame headers included"):
        fragments.add(Frame(Opcode.CONT, b"", fin=False))
    assert fragments.partial is None


@pytest.mark.parametrize(("payload", "header"), [(0, 6), (125, 6), (126, 8), (65535, 8), (65536, 14)])
def test_header_sizes_are_those_of_a_masked_client_frame(payload: int, header: int) -> None:
    """2 bytes, 4 of mask, and 2 or 8 more for a longer payload: what RFC 6455 section 5.2 puts on the wire."""
    assert header_bytes(payload) == header
    assert len(Frame(Opcode.CONT, b"x" * payload).serialize(mask=True)) == payload + header


@pytest.mark.parametrize(
    ("message", "target"),
    [
        (request("rpc.cancel", {"id": 7}), 7),
        (request("rpc.cancel", ["x"]), "x"),
        (request("rpc.cancel", {"id": None}), None),
        (request("rpc.cancel", {"id": 7}, 1), NONE),  # a request, not a notification: answered in turn
        (request("rpc.cancel", {"id": [1]}), NONE),
        (request("multiply", [1, 2]), NONE),
        ('{"method": "rpc.cancel", "params": {', NONE),
    ],
)
def test_cancel_target_is_the_id_a_lone_cancel_notification_names(message: str, target: object) -> None:
    """Only an rpc.cancel notification with one id names a target."""
    found = cancel_target(message.encode())
    if target is NONE:
        assert found is NONE
    else:
        assert found is not NONE and found == target


def test_the_backlog_finds_a_queued_request_alone_or_in_a_batch_and_keeps_its_weight() -> None:
    """A request alone in its message is removed; a batch member is only found; notifications never match."""
    backlog = Backlog()
    alone = request("sleep", [1], "a").encode()
    batch = f"[{request('sleep', [1], 'b')},{request('add', [1, 2], 'c')}]".encode()
    notification = request("sleep", [1]).encode()
    for data in (alone, batch, notification):
        backlog.put(data)
    assert backlog.bytes == len(alone) + len(batch) + len(notification)
    assert backlog.find("a") == "alone"
    assert list(backlog) == [batch, notification] and backlog.bytes == len(batch) + len(notification)
    assert backlog.find("c") == "batch"
    assert backlog.find("zzz") is None
    assert backlog.take() == batch and backlog.bytes == len(notification)
    backlog.clear()
    assert not backlog and backlog.bytes == 0
