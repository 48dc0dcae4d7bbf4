"""The wire format on its own: the envelope check, Response objects and their encoding, with no I/O."""

from __future__ import annotations

import json
from typing import Any

import pytest

from rpc_server import codes, protocol
from rpc_server.errors import NODATA

from .corpus import nested

VALID = {"jsonrpc": "2.0", "method": "m"}


@pytest.mark.parametrize(
    "obj",
    [
        VALID,
        {**VALID, "params": []},
        {**VALID, "params": {}},
        {**VALID, "id": "x"},
        {**VALID, "id": 0},
        {**VALID, "id": 1.5},
        {**VALID, "id": None},
        {**VALID, "id": 2**70},
        {**VALID, "params": [1], "id": 1},
    ],
    ids=repr,
)
def test_a_request_object_passes_the_envelope_check(obj: dict[str, Any]) -> None:
    """Requests and notifications of every allowed shape have no fault."""
    assert protocol.request_error(obj) is None


@pytest.mark.parametrize(
    ("obj", "why"),
    [
        ([VALID], "a request must be a JSON object"),
        ("m", "a request must be a JSON object"),
        ({"method": "m"}, 'jsonrpc must be exactly "2.0"'),
        ({**VALID, "jsonrpc": 2.0}, 'jsonrpc must be exactly "2.0"'),
        ({"jsonrpc": "2.0"}, "method must be a string"),
        ({**VALID, "method": None}, "method must be a string"),
        ({**VALID, "params": "x"}, "params must be an array or an object"),
        ({**VALID, "params": None}, "params must be an array or an object"),
        ({**VALID, "id": True}, "id must be a string, a number or null"),
        ({**VALID, "id": []}, "id must be a string, a number or null"),
        ({**VALID, "result": 1}, "unexpected member 'result'"),
        ({**VALID, "params": [], "id": 1, "Id": 2}, "unexpected member 'Id'"),
    ],
    ids=repr,
)
def test_the_envelope_check_names_the_fault(obj: Any, why: str) -> None:
    """Each fault is a sentence naming the member concerned."""
    assert protocol.request_error(obj) == why


def test_a_success_response_has_exactly_three_members() -> None:
    """jsonrpc, result and id: nothing more."""
    assert protocol.success([1], "a") == {"jsonrpc": "2.0", "result": [1], "id": "a"}


def test_an_error_response_leaves_data_out_unless_given() -> None:
    """data is optional (spec 5.1): absent when not given, present even when it is null."""
    assert protocol.error(codes.INTERNAL_ERROR, id=3) == {
        "jsonrpc": "2.0",
        "error": {"code": -32603, "message": "Internal error"},
        "id": 3,
    }
    assert protocol.error(codes.INVALID_PARAMS, None, 3)["error"] == {
        "code": -32602,
        "message": "Invalid params",
        "data": None,
    }
    assert protocol.error(codes.INVALID_PARAMS, NODATA, 3, "Custom")["error"] == {"code": -32602, "message": "Custom"}


@pytest.mark.parametrize("value", [2**64, -(2**64), 2**100, [1, 2**70, {"k": -(2**90)}]], ids=repr)
def test_integers_beyond_64_bits_are_encoded_exactly(value: Any) -> None:
    """orjson refuses them; the fallback writes every digit."""
    encoded = protocol.encode(protocol.success(value, 1))
    assert json.loads(encoded)["result"] == value


def test_text_is_encoded_as_utf8_not_escaped() -> None:
    """Non-ASCII results go out as UTF-8, readable by any JSON parser."""
    encoded = protocol.encode(protocol.success("héllo ✓", 1))
    assert "héllo ✓".encode() in encoded
    assert json.loads(encoded)["result"] == "héllo ✓"


def test_a_batch_joins_encoded_responses_into_one_array() -> None:
    """encode_batch gives a JSON array of the responses in the given order."""
    parts = [protocol.encode(protocol.success(i, i)) for i in range(3)]
    assert json.loads(protocol.encode_batch(parts)) == [protocol.success(i, i) for i in range(3)]


@pytest.mark.parametrize("batch", [False, True], ids=["alone", "in-a-batch"])
def test_the_deepest_answer_written_is_the_deepest_read(batch: bool) -> None:
    """A result 1,022 deep is written (and reads back, even in a batch); one level more raises TooDeep."""

    def write(result: Any) -> bytes:
        response = protocol.success(result, 1)
        return protocol.encode([response, protocol.success(2, 2)] if batch else response)

    assert protocol.decode(write(nested(protocol.MAX_DEPTH - 2))) is not None
    with pytest.raises(protocol.TooDeep, match="nested more than 1024 levels deep"):
        write(nested(protocol.MAX_DEPTH - 1))
    with pytest.raises(protocol.TooDeep):
        write(nested(3000))


def test_a_shallow_answer_with_many_brackets_is_not_taken_for_a_deep_one() -> None:
    """Many brackets side by side, and in strings, beside a big integer: written, not refused."""
    result = [[2**70, "[[[["] for _ in range(2000)]
    assert json.loads(protocol.encode(protocol.success(result, 1)))["result"] == result


def test_a_gathered_part_leaves_room_for_its_array_its_response_and_a_batch() -> None:
    """encode_part writes a part 1,021 deep and refuses one 1,022 deep: three levels go around it."""
    depth = protocol.PART_DEPTH
    assert protocol.encode_part(nested(depth)) == b"[" * depth + b"]" * depth
    with pytest.raises(protocol.TooDeep):
        protocol.encode_part(nested(protocol.PART_DEPTH + 1))
