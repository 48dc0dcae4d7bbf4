"""A batch's calls read back: the fast reading of an answer as the server sent it, against the general one."""

from __future__ import annotations

from typing import Any

import pytest

from rpc_client import ProtocolError, RpcError
from rpc_client.batch import Batch
from rpc_client.messages import outcome_from, outcome_value

RAW_ANSWERS: list[Any] = [
    {"jsonrpc": "2.0", "result": 12, "id": 1},
    {"jsonrpc": "2.0", "result": None, "id": 1},
    {"jsonrpc": "2.0", "result": [1, {"a": 2}], "id": "x"},
    {"jsonrpc": "2.0", "error": {"code": 1001, "message": "Division by zero", "data": "divisor is 0"}, "id": 1},
    {"jsonrpc": "2.0", "result": 3, "error": {"code": 1, "message": "both"}, "id": 1},
    {"jsonrpc": "2.0", "result": 3},  # no id
    {"jsonrpc": "2.0", "id": 1},  # neither result nor error
    {"jsonrpc": "2.0", "error": "not an object", "id": 1},
    ProtocolError("the server's batch response has no answer for request id 1"),
]


def _read(read: Any) -> str:
    try:
        return f"value {read()!r}"
    except (RpcError, ProtocolError) as exc:
        return f"{type(exc).__name__} {exc}"


@pytest.mark.parametrize("answer", RAW_ANSWERS, ids=range(len(RAW_ANSWERS)))
def test_a_call_s_result_reads_its_raw_answer_as_outcome_from_reads_it(answer: Any) -> None:
    """result() and send()'s values give what outcome_value(outcome_from(answer)) gives, raising what it holds."""
    batch = Batch(exchange=None)  # type: ignore[arg-type]  # never sent: its outcomes are set by hand
    handle = batch.call("multiply", 3, 4)
    batch._outcomes = [answer]

    def general() -> Any:
        outcome = answer if isinstance(answer, ProtocolError) else outcome_value(outcome_from(answer))
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def value() -> Any:
        outcome = batch._value(0)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    assert _read(handle.result) == _read(value) == _read(general)
