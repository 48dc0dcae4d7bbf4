"""The fast way of building requests and reading answers, compared with jsonrpcclient and json (the slow way)."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import json
import math

import pytest
from jsonrpcclient import notification, parse, request

from rpc_client.messages import (
    Members,
    NestedTooDeep,
    batch_messages,
    cancel_message,
    decode,
    encode,
    notification_bytes,
    request_bytes,
    request_object,
    response_from,
)


class Colour(enum.IntEnum):
    RED = 1


@dataclasses.dataclass
class Point:
    x: int


PARAMS = [
    (),
    [],
    {},
    None,
    (3, 4),
    [3, 4],
    {"minuend": 42, "subtrahend": 23},
    ("é", "日本", "\u2028", "null", 'a "quoted" \\ word'),
    (2**63 - 1, -(2**63), 2**64, 2**70, -(2**80)),
    (0.1, 1e16, 1e-7, -0.0, 1.7976931348623157e308, 5e-324),
    (True, False, None, [None, [None]], {"a": None}),
    ({"nested": {"deep": [1, {"x": [2.5, "y"]}]}},),
    ({1: "int key", False: "bool key", None: "none key", 2.5: "float key"},),
    (Colour.RED,),
    ("x" * 70_000,),
]

UNENCODABLE = [
    ({1, 2},),
    (object(),),
    (datetime.datetime(2024, 1, 1),),
    (Point(1),),
    (b"bytes",),
]

NOT_FINITE = [(math.nan,), (math.inf,), {"a": [1, -math.inf]}, ({"deep": [math.nan]},)]


def _slow(obj: object) -> object:
    """What the stdlib makes of an object on the wire and back."""
    return json.loads(json.dumps(obj, allow_nan=False, ensure_ascii=False))


@pytest.mark.parametrize("params", PARAMS, ids=range(len(PARAMS)))
def test_requests_and_notifications_are_what_jsonrpcclient_and_json_make(params):
    """For every kind of params, the bytes built here decode to what jsonrpcclient's request() plus json.dumps gives."""
    assert json.loads(request_bytes("method", params, 7)) == _slow(request("method", params, id=7))
    assert request_bytes("method", params, 7) == encode(request_object("method", params, 7))  # fast way = general
    assert json.loads(notification_bytes("method", params)) == _slow(notification("method", params))
    streamed = json.loads(request_bytes("method", params, 8, stream=True))
    assert streamed == {**_slow(request("method", params, id=8)), "stream": True}


@pytest.mark.parametrize(
    ("notify_every", "all_params"),
    [(0, False), (0, True), (1, False), (3, False)],
    ids=["calls", "calls-all-with-params", "notifications", "mixed"],
)
def test_a_batch_s_messages_are_the_requests_built_one_by_one(notify_every, all_params):
    """batch_messages() (a comprehension over the members) builds what request_object() builds for each member."""
    members = Members()
    for at, params in enumerate([p for p in PARAMS if p or not all_params] * 2):
        members.add(f"m{at}", params, call=not notify_every or at % notify_every != 0)
    ids = range(41, 41 + members.calls)
    numbers = iter(ids)
    expected = [
        request_object(method, params, None if at in members.notifications else next(numbers))
        for at, (method, params) in enumerate(zip(members.methods, members.params, strict=True))
    ]
    assert batch_messages(members, ids) == expected
    assert json.loads(encode(batch_messages(members, ids))) == _slow(expected)


@pytest.mark.parametrize("params", UNENCODABLE, ids=range(len(UNENCODABLE)))
def test_what_json_cannot_write_is_refused_with_type_error_as_json_refuses_it(params):
    """Sets, objects, datetimes, dataclasses and bytes raise TypeError, as json.dumps does; orjson would write some."""
    with pytest.raises(TypeError):
        json.dumps(params)
    with pytest.raises(TypeError):
        request_bytes("method", params, 1)


@pytest.mark.parametrize("params", NOT_FINITE, ids=range(len(NOT_FINITE)))
def test_nan_and_infinity_are_refused_with_value_error_not_written_as_null(params):
    """NaN and infinity, anywhere in the params, raise ValueError as json with allow_nan=False does."""
    with pytest.raises(ValueError):
        json.dumps(params, allow_nan=False)
    with pytest.raises(ValueError):
        request_bytes("method", params, 1)


def test_a_string_that_is_not_unicode_text_is_refused():
    """A lone surrogate cannot be sent as UTF-8: ValueError, nothing built."""
    with pytest.raises(ValueError):
        encode(["\ud800"])


def test_bad_methods_and_params_are_type_errors():
    """A method that is not a string, or params that are not an array or object, raise TypeError."""
    with pytest.raises(TypeError, match="method must be a string"):
        request_object(3, None, 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="params must be"):
        request_object("m", "text", 1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="params must be"):
        request_object("m", 0, 1)  # type: ignore[arg-type]


def test_cancel_messages_are_one_notification_or_a_batch_of_them():
    """rpc.cancel for one id is one notification; for several, an array of them."""
    assert json.loads(cancel_message([5])) == _slow(notification("rpc.cancel", {"id": 5}))
    assert json.loads(cancel_message([5, 6])) == [_slow(notification("rpc.cancel", {"id": n})) for n in (5, 6)]


RESPONSES = [
    '{"jsonrpc": "2.0", "result": 12, "id": 1}',
    '{"jsonrpc": "2.0", "result": null, "id": 2}',
    '{"jsonrpc": "2.0", "result": [1, {"a": "é"}], "id": "abc"}',
    '{"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found", "data": "nope"}, "id": 3}',
    '{"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": 4}',
    '{"jsonrpc": "2.0", "result": 123456789012345678901234567890, "id": 5}',
    '{"jsonrpc": "2.0", "result": 1e400, "id": 6}',
    '{"jsonrpc": "2.0", "result": NaN, "id": 7}',
    '{"jsonrpc": "2.0", "result": -0.0, "id": 8}',
    '{"jsonrpc": "2.0", "id": 9}',
    '{"jsonrpc": "2.0", "error": "bad", "id": 10}',
    '{"jsonrpc": "2.0", "error": {"code": 1}, "id": 11}',
    '{"jsonrpc": "2.0", "result": 1}',
    # Integers past 64 bits (orjson would read them as floats), wherever they are: the digit scan finds them.
    '{"jsonrpc": "2.0", "result": [1, 2, -9223372036854775809], "id": 12}',
    '{"jsonrpc": "2.0", "result": {"n": 18446744073709551616}, "id": 13}',
    '[{"jsonrpc": "2.0", "result": 1, "id": 14}, {"jsonrpc": "2.0", "result": 99999999999999999999, "id": 15}]',
    '{"jsonrpc": "2.0", "result": "٣٣٣٣٣٣٣٣٣٣٣٣٣٣٣٣٣٣٣", "id": 16}',
]


@pytest.mark.parametrize("text", RESPONSES, ids=range(len(RESPONSES)))
def test_answers_are_read_as_json_and_jsonrpcclient_read_them(text):
    """decode() gives what json.loads gives, and response_from() what jsonrpcclient's parse() gives, or fails alike."""
    decoded = decode(text)
    reference = json.loads(text)
    assert json.dumps(decoded) == json.dumps(reference)  # NaN != NaN: compare what they write
    assert json.dumps(decode(text.encode())) == json.dumps(reference)  # a binary message, read alike
    if isinstance(reference, list):
        return
    try:
        expected = parse(reference)
    except Exception as exc:
        with pytest.raises(type(exc)):
            response_from(decoded)
    else:
        got = response_from(decoded)
        assert type(got) is type(expected)
        assert repr(got) == repr(expected)


@pytest.mark.parametrize("data", [b"not json", b"", b"\xff\xfe{}", "{'single': 1}"])
def test_what_is_not_json_is_a_value_error(data):
    """decode() raises ValueError (UnicodeDecodeError included) for what is not JSON, as json.loads does."""
    with pytest.raises(ValueError):
        json.loads(data)
    with pytest.raises(ValueError):
        decode(data)


def _nest(levels: int, inner: str = "[]") -> str:
    return "[" * levels + inner + "]" * levels


DEEP = _nest(3000)


@pytest.mark.parametrize(
    ("text", "ids"),
    [
        ('{"jsonrpc": "2.0", "result": ' + DEEP + ', "id": 7}', [7]),
        ('{"id": "s-1", "jsonrpc": "2.0", "result": ' + DEEP + "}", ["s-1"]),
        # Brackets, commas, quotes and a key "id" inside strings and nested values are no members of the answer.
        ('{"jsonrpc": "2.0", "result": [' + DEEP + ', "], \\"id\\": 1, {", {"id": 2}], "id": 3}', [3]),
        ('{"jsonrpc": "2.0", "method": "progress", "params": ' + DEEP + "}", []),  # no id: nothing to fail
        ('{"jsonrpc": "2.0", "result": ' + DEEP + ', "id": ' + DEEP + "}", []),  # no id of ours
    ],
    ids=["id-last", "id-first", "decoys", "notification", "deep-id"],
)
def test_an_answer_too_deep_to_parse_names_the_id_it_answers(text, ids):
    """decode() raises NestedTooDeep (a ValueError) with the id found by scanning, not parsing, the answer."""
    for message in (text, text.encode()):
        with pytest.raises(NestedTooDeep) as raised:
            decode(message)
        assert isinstance(raised.value, ValueError)
        assert (raised.value.ids, raised.value.readable) == (ids, [])
        assert "nested more than about 1,000 levels deep" in str(raised.value)


def test_a_batch_answer_with_a_member_too_deep_keeps_its_other_members():
    """In a batch's array, the members that can be read are decoded; the deep one is named by its id."""
    shallow = [{"jsonrpc": "2.0", "result": "a, [b]", "id": 1}, {"jsonrpc": "2.0", "error": {"code": 1}, "id": 3}]
    text = (
        f"[{json.dumps(shallow[0])}, "
        + '{"jsonrpc": "2.0", "result": '
        + DEEP
        + f', "id": 2}}, {json.dumps(shallow[1])}, '
        + _nest(2000, "{}")
        + "]"
    )
    with pytest.raises(NestedTooDeep) as raised:
        decode(text)
    assert raised.value.ids == [2]
    assert raised.value.readable == shallow


def test_a_message_as_deep_as_the_parser_reads_is_still_decoded():
    """Nesting within the parsers' reach decodes as before: the scan is only for what they refuse."""
    text = '{"jsonrpc": "2.0", "result": ' + _nest(500) + ', "id": 1}'
    assert decode(text) == json.loads(text)


def test_a_value_too_deep_to_write_is_refused_with_value_error():
    """encode() of params nested past the writer's reach raises ValueError (not RecursionError), naming the depth."""
    value: list = []
    for _ in range(5000):
        value = [value]
    with pytest.raises(ValueError, match="nested more than about 1,000 levels deep") as raised:
        encode({"params": value})
    assert not isinstance(raised.value, RecursionError)
    shallow: list = []
    for _ in range(200):
        shallow = [shallow]
    assert json.loads(encode(shallow)) == shallow
