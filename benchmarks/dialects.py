"""What each server is sent and what counts as a right answer; no I/O.

Every server gets the same work, ``multiply(3, 4)``, in the shape it speaks:

- ``JSONRPC``: this project's server and Node's ``rpc-websockets`` get the real
  JSON-RPC 2.0 request and must answer ``{"jsonrpc": "2.0", "result": 12, "id": N}``
  with the request's id. Ids start at 1: ``rpc-websockets`` treats a falsy id
  (``0``) as a notification and stays silent.
- ``ECHO``: the echo servers get the same request and must send it back unchanged.
- ``SEED``: the FastAPI peer gets the seed's ``{"func": "multiply", "args": [3, 4]}``
  and must answer ``{"result": 12}``; that shape has no ids and no batches.

Answers are decoded and checked, never trusted: a wrong, unknown or repeated answer
counts as an error.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

__all__ = ["ECHO", "JSONRPC", "NO_ID", "SEED", "Dialect"]

# What `answer_id` gives for a right answer in a shape that carries no id.
NO_ID = -1


@dataclass(frozen=True, slots=True)
class Dialect:
    """One message shape.

    Args:
        name: a short name for reports.
        request: the encoded request for call number ``n`` (``n >= 1``).
        answer_id: the id that a decoded right answer carries, :data:`NO_ID` for a
            right answer without ids, or ``None`` for a wrong one.
        batches: whether the server answers a JSON array of requests with one array.
    """

    name: str
    request: Callable[[int], bytes]
    answer_id: Callable[[Any], int | None]
    batches: bool

    def batch(self, ids: range) -> bytes:
        """One message holding the requests for ``ids`` as a JSON array."""
        return b"[" + b",".join(self.request(n) for n in ids) + b"]"


def _jsonrpc_request(n: int) -> bytes:
    return b'{"jsonrpc":"2.0","method":"multiply","params":[3,4],"id":%d}' % n


def _jsonrpc_answer(obj: Any) -> int | None:
    if type(obj) is dict and len(obj) == 3 and obj.get("result") == 12 and obj.get("jsonrpc") == "2.0":
        id = obj.get("id")
        if type(id) is int:
            return id
    return None


def _echo_answer(obj: Any) -> int | None:
    if (
        type(obj) is dict
        and len(obj) == 4
        and obj.get("method") == "multiply"
        and obj.get("params") == [3, 4]
        and obj.get("jsonrpc") == "2.0"
    ):
        id = obj.get("id")
        if type(id) is int:
            return id
    return None


_SEED_REQUEST = b'{"func":"multiply","args":[3,4]}'


def _seed_request(n: int) -> bytes:
    return _SEED_REQUEST


def _seed_answer(obj: Any) -> int | None:
    return NO_ID if obj == {"result": 12} else None


JSONRPC = Dialect("json-rpc", _jsonrpc_request, _jsonrpc_answer, batches=True)
ECHO = Dialect("echo", _jsonrpc_request, _echo_answer, batches=True)
SEED = Dialect("seed", _seed_request, _seed_answer, batches=False)
