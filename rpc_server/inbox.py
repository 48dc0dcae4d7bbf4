"""What a connection has read and not yet run; no I/O.

- :class:`Fragments` puts a fragmented message together as its frames come.
  Each frame's header counts with its payload against the message size
  limit: websockets counts payload only, so five million empty continuation
  frames (28 MB on the wire) once cost 41 MB and 22 s of CPU and were never
  refused (issue 9).
- :class:`Backlog` holds the whole messages waiting behind a connection's
  in-flight limits, counted and weighed, and finds among them the request an
  ``rpc.cancel`` names (:func:`cancel_target`), so that a call still waiting
  can be cancelled too.
"""

from __future__ import annotations

import collections
from typing import Any

import orjson
from websockets.frames import Frame, Opcode

from .protocol import request_error

__all__ = ["BINARY", "NONE", "Backlog", "Fragments", "MessageTooBig", "cancel_target"]

# What Fragments.add() gives for a whole binary message (answered as refused, never run).
BINARY: Any = object()
# No id: the message is not a lone rpc.cancel notification (None is a valid id).
NONE: Any = object()
_ID_TYPES = frozenset((str, int, float, type(None)))
_CONT, _BINARY = Opcode.CONT, Opcode.BINARY


class MessageTooBig(Exception):
    """A fragmented message's frames, headers included, are over the size limit."""


def header_bytes(payload: int) -> int:
    """The size of a client frame's header (masked) carrying ``payload`` bytes."""
    return 6 if payload < 126 else 8 if payload < 65536 else 14


class Fragments:
    """The fragmented message being put together on one connection.

    Args:
        max_bytes: the most its frames may weigh, headers and payloads together.
    """

    __slots__ = ("binary", "cost", "max_bytes", "partial")

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.partial: bytearray | None = None
        self.binary = False
        self.cost = 0

    def add(self, frame: Frame) -> bytes | None:
        """Take one frame of a fragmented message (the first, a continuation, or the last).

        Returns:
            the whole text message once its last frame is in, :data:`BINARY`
            for a whole binary message, else None.

        Raises:
            MessageTooBig: the frames so far weigh more than ``max_bytes``.
        """
        data: bytes = frame.data  # type: ignore[assignment]  # a client's frames are unmasked into bytes
        cost = len(data) + header_bytes(len(data))
        if frame.opcode is not _CONT:  # the first frame of a message
            self.binary = frame.opcode is _BINARY
            # A binary message is refused whole: its bytes need not be kept.
            self.partial = bytearray() if self.binary else bytearray(data)
            self.cost = cost
            return None
        assert self.partial is not None  # websockets refuses a continuation that continues nothing
        self.cost += cost
        if self.cost > self.max_bytes:
            self.partial = None
            raise MessageTooBig(f"message over {self.max_bytes} bytes, frame headers included")
        if not self.binary:
            self.partial += data
        if not frame.fin:
            return None
        whole, self.partial = self.partial, None
        return BINARY if self.binary else bytes(whole)

    def clear(self) -> None:
        """Drop a message not yet whole (it was never read, so nothing is owed for it)."""
        self.partial = None


def cancel_target(data: bytes) -> Any:
    """The id a lone ``rpc.cancel`` notification names, or :data:`NONE` (a substring test first keeps it cheap)."""
    if b"rpc.cancel" not in data:
        return NONE
    try:
        message = orjson.loads(data)
    except orjson.JSONDecodeError:
        return NONE
    if type(message) is not dict or message.get("method") != "rpc.cancel" or "id" in message:
        return NONE
    params = message.get("params")
    if type(params) is dict and len(params) == 1:
        id = params.get("id", NONE)
    elif type(params) is list and len(params) == 1:
        id = params[0]
    else:
        return NONE
    return id if type(id) in _ID_TYPES else NONE


def _names(message: Any, id: Any) -> bool:
    """Whether a JSON-RPC request object (not a notification) carries this id."""
    return (
        type(message) is dict
        and request_error(message) is None
        and "id" in message
        and type(message["id"]) is type(id)
        and message["id"] == id
    )


class Backlog(collections.deque[bytes]):
    """Whole messages waiting to be run, oldest first; ``bytes`` is what they weigh.

    A deque, so that testing whether one waits costs what a deque's does: the
    connection asks it for every message it reads.
    """

    def __init__(self) -> None:
        super().__init__()
        self.bytes = 0

    def put(self, data: bytes) -> None:
        self.append(data)
        self.bytes += len(data)

    def take(self) -> bytes:
        data = self.popleft()
        self.bytes -= len(data)
        return data

    def clear(self) -> None:
        super().clear()
        self.bytes = 0

    def find(self, id: Any) -> str | None:
        """Where the request with this id waits: "alone" (its message, now removed), "batch", or None."""
        needle = orjson.dumps(id)
        for data in self:
            if needle not in data:
                continue
            try:
                message = orjson.loads(data)
            except orjson.JSONDecodeError:
                continue
            if _names(message, id):
                self.remove(data)
                self.bytes -= len(data)
                return "alone"
            if type(message) is list and any(_names(member, id) for member in message):
                return "batch"
        return None
