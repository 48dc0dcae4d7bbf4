"""The cases: what the kit sends, and what the JSON-RPC 2.0 specification says must come back.

Data only, no I/O. Each :class:`Case` names the section of the specification
(https://www.jsonrpc.org/specification) whose rule it checks and says the
rule in one sentence. Section 7's examples are sent with the specification's
own text, byte for byte; the other cases are built the same way.

Method names are the specification's (``subtract``, ``sum``, ``get_data``);
a server whose methods are named otherwise is called by its own names (see
:func:`Case.frames`). ``update``, ``notify_hello``, ``notify_sum``,
``foobar`` and ``foo.get`` are only ever notified or meant not to exist, so
a server needs none of them.

The kit's own methods and values, chosen so that every expected answer is
known: ``subtract(42, 23)`` is 19, ``sum(1, 2, 4)`` is 7, ``get_data()`` is
``["hello", 5]``; the slow method is only asked to answer after the fast.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "CASES",
    "COMPLETION_ORDER",
    "ERRORS",
    "METHODS",
    "SILENCE",
    "Answer",
    "Answers",
    "Case",
    "error",
    "result",
]

# The roles a server's methods can play; the kit calls each by the server's name for it.
METHODS = ("subtract", "sum", "get_data", "slow")

# Section 5.1: the predefined errors' codes and messages.
PARSE_ERROR = -32700
INVALID_REQUEST = -32600
METHOD_NOT_FOUND = -32601
ERRORS = {
    PARSE_ERROR: "Parse error",
    INVALID_REQUEST: "Invalid Request",
    METHOD_NOT_FOUND: "Method not found",
    -32602: "Invalid params",
    -32603: "Internal error",
}


class _Silence:
    def __repr__(self) -> str:
        return "no answer"


# What a notification gets: nothing, checked by a request sent after it (see test_conformance.py).
SILENCE: Any = _Silence()


class _CompletionOrder:
    def __repr__(self) -> str:
        return "the fast call's answer first, then the slow one's"


# A slow call and a fast one sent behind it: each answered when done.
COMPLETION_ORDER: Any = _CompletionOrder()


@dataclass(frozen=True, slots=True)
class Answer:
    """One message is answered, with one of these values (exactly, as parsed JSON).

    A list is a batch's answer: the same Response objects, in any order
    (section 6). An error object's ``data`` is the server's to fill or omit
    (section 5.1) and is not compared.
    """

    accepted: tuple[Any, ...]

    def __init__(self, *accepted: Any) -> None:
        object.__setattr__(self, "accepted", accepted)


@dataclass(frozen=True, slots=True)
class Answers:
    """Each message sent is answered with a frame of its own; these values, one per frame, in any order."""

    values: tuple[Any, ...]

    def __init__(self, *values: Any) -> None:
        object.__setattr__(self, "values", values)


@dataclass(frozen=True, slots=True)
class Case:
    """One check: frames to send in order, and what must come back."""

    id: str  # "SECTION:name", the test's id
    rule: str  # the rule checked, in one sentence
    send: tuple[str, ...]
    expect: Any  # an Answer, Answers, SILENCE or COMPLETION_ORDER
    needs: tuple[str, ...] = ()  # the methods (roles in METHODS) it calls and expects to exist

    @property
    def section(self) -> str:
        return self.id.partition(":")[0]

    def frames(self, names: dict[str, str]) -> list[str]:
        """The frames to send, with each method called by the server's name for it."""
        frames = []
        for text in self.send:
            for role, name in names.items():
                if name != role:
                    text = text.replace(json.dumps(role), json.dumps(name))
            frames.append(text)
        return frames


def request(method: str, params: Any = ..., id: Any = ...) -> str:
    """The text of a Request object; without ``id``, a notification."""
    obj: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not ...:
        obj["params"] = params
    if id is not ...:
        obj["id"] = id
    return json.dumps(obj, ensure_ascii=False)


def result(value: Any, id: Any) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "result": value, "id": id}


def error(code: int, id: Any = None) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": {"code": code, "message": ERRORS[code]}, "id": id}


def _invalid(id: Any) -> Answer:
    # Section 5: the id is null "if there was an error in detecting the id";
    # where the request's id could be read, echoing it is as right.
    return Answer(error(INVALID_REQUEST), error(INVALID_REQUEST, id))


_SUBTRACT = ("subtract",)
_19 = '"method": "subtract", "params": [42, 23]'

_EXAMPLES = [
    # Section 7, in the specification's order and with its exact text.
    Case(
        "7:positional-params-1",
        "rpc call with positional parameters (4.2: by-position, an Array)",
        ('{"jsonrpc": "2.0", "method": "subtract", "params": [42, 23], "id": 1}',),
        Answer(result(19, 1)),
        _SUBTRACT,
    ),
    Case(
        "7:positional-params-2",
        "rpc call with positional parameters, the other way round",
        ('{"jsonrpc": "2.0", "method": "subtract", "params": [23, 42], "id": 2}',),
        Answer(result(-19, 2)),
        _SUBTRACT,
    ),
    Case(
        "7:named-params-1",
        "rpc call with named parameters (4.2: by-name, an Object, names matched exactly)",
        ('{"jsonrpc": "2.0", "method": "subtract", "params": {"subtrahend": 23, "minuend": 42}, "id": 3}',),
        Answer(result(19, 3)),
        _SUBTRACT,
    ),
    Case(
        "7:named-params-2",
        "rpc call with named parameters, in the other order: an Object's order does not matter",
        ('{"jsonrpc": "2.0", "method": "subtract", "params": {"minuend": 42, "subtrahend": 23}, "id": 4}',),
        Answer(result(19, 4)),
        _SUBTRACT,
    ),
    Case(
        "7:notification-1",
        "a Notification (4.1: no id) is never answered",
        ('{"jsonrpc": "2.0", "method": "update", "params": [1,2,3,4,5]}',),
        SILENCE,
    ),
    Case(
        "7:notification-2",
        "a Notification of a method that does not exist is not answered either, not even with an error (4.1)",
        ('{"jsonrpc": "2.0", "method": "foobar"}',),
        SILENCE,
    ),
    Case(
        "7:non-existent-method",
        "rpc call of non-existent method: -32601 Method not found, with the request's id",
        ('{"jsonrpc": "2.0", "method": "foobar", "id": "1"}',),
        Answer(error(METHOD_NOT_FOUND, "1")),
    ),
    Case(
        "7:invalid-json",
        "rpc call with invalid JSON: -32700 Parse error, id null",
        ('{"jsonrpc": "2.0", "method": "foobar, "params": "bar", "baz]',),
        Answer(error(PARSE_ERROR)),
    ),
    Case(
        "7:invalid-request",
        "rpc call with invalid Request object: -32600 Invalid Request, id null",
        ('{"jsonrpc": "2.0", "method": 1, "params": "bar"}',),
        Answer(error(INVALID_REQUEST)),
    ),
    Case(
        "7:batch-invalid-json",
        "rpc call Batch, invalid JSON: one -32700 Parse error, not an Array",
        ('[\n  {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},\n  {"jsonrpc": "2.0", "method"\n]',),
        Answer(error(PARSE_ERROR)),
    ),
    Case(
        "7:empty-array",
        "rpc call with an empty Array: one -32600 Invalid Request, not an Array (6)",
        ("[]",),
        Answer(error(INVALID_REQUEST)),
    ),
    Case(
        "7:invalid-batch-1",
        "rpc call with an invalid Batch (but not empty): an Array of one -32600",
        ("[1]",),
        Answer([error(INVALID_REQUEST)]),
    ),
    Case(
        "7:invalid-batch-3",
        "rpc call with invalid Batch: an Array with one -32600 for each member",
        ("[1,2,3]",),
        Answer([error(INVALID_REQUEST)] * 3),
    ),
    Case(
        "7:batch",
        "rpc call Batch: an answer for each request, none for the notification, in any order (6)",
        (
            """[
        {"jsonrpc": "2.0", "method": "sum", "params": [1,2,4], "id": "1"},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]},
        {"jsonrpc": "2.0", "method": "subtract", "params": [42,23], "id": "2"},
        {"foo": "boo"},
        {"jsonrpc": "2.0", "method": "foo.get", "params": {"name": "myself"}, "id": "5"},
        {"jsonrpc": "2.0", "method": "get_data", "id": "9"}
    ]""",
        ),
        Answer(
            [
                result(7, "1"),
                result(19, "2"),
                error(INVALID_REQUEST),
                error(METHOD_NOT_FOUND, "5"),
                result(["hello", 5], "9"),
            ]
        ),
        ("subtract", "sum", "get_data"),
    ),
    Case(
        "7:batch-all-notifications",
        "rpc call Batch (all notifications): nothing is returned, not even an empty Array (6)",
        (
            """[
        {"jsonrpc": "2.0", "method": "notify_sum", "params": [1,2,4]},
        {"jsonrpc": "2.0", "method": "notify_hello", "params": [7]}
    ]""",
        ),
        SILENCE,
    ),
]


def _id_case(name: str, id: Any, rule: str) -> Case:
    return Case(f"5:id-{name}", rule, (request("subtract", [42, 23], id),), Answer(result(19, id)), _SUBTRACT)


_IDS = [
    _id_case("string", "abc", "a String id is echoed as sent"),
    _id_case("unicode", "ид-✓ 🙂", "a String id of any Unicode text is echoed as sent"),
    _id_case("empty-string", "", "the empty String is an id like any other"),
    _id_case("integer", 7, "a Number id is echoed as sent"),
    _id_case("zero", 0, "0 is an id like any other, not a missing one"),
    _id_case("negative", -3, "a negative Number id is echoed as sent"),
    _id_case("fractional", 1.5, "a fractional id (which 4 discourages) is still echoed as sent"),
    _id_case("2^53+1", 2**53 + 1, "an integer id beyond a double's 53 bits is echoed exactly, not rounded"),
    _id_case("2^64+1", 2**64 + 1, "an integer id beyond 64 bits is echoed exactly, not rounded"),
    _id_case("null", None, "an id of null (which 4 discourages) makes a request, not a notification: it is answered"),
]

_REQUESTS = [
    Case(
        "4:jsonrpc-missing",
        'a request without "jsonrpc" is not a JSON-RPC 2.0 Request object: -32600',
        ('{"method": "subtract", "params": [42, 23], "id": 1}',),
        _invalid(1),
    ),
    Case(
        "4:jsonrpc-1.0",
        '"jsonrpc" MUST be exactly "2.0": "1.0" is an Invalid Request',
        (f'{{"jsonrpc": "1.0", {_19}, "id": 1}}',),
        _invalid(1),
    ),
    Case(
        "4:jsonrpc-number",
        '"jsonrpc" MUST be the String "2.0", not the Number 2.0',
        (f'{{"jsonrpc": 2.0, {_19}, "id": 1}}',),
        _invalid(1),
    ),
    Case(
        "4:method-missing",
        'a request without "method" is an Invalid Request',
        ('{"jsonrpc": "2.0", "params": [42, 23], "id": 1}',),
        _invalid(1),
    ),
    Case(
        "4:method-not-string",
        '"method" MUST be a String',
        ('{"jsonrpc": "2.0", "method": 7, "params": [42, 23], "id": 1}',),
        _invalid(1),
    ),
    Case(
        "4.2:params-string",
        '"params", if present, MUST be a Structured value (an Array or an Object), not a String',
        ('{"jsonrpc": "2.0", "method": "subtract", "params": "bar", "id": 1}',),
        _invalid(1),
    ),
    Case(
        "4.2:params-number",
        '"params", if present, MUST be a Structured value, not a Number',
        ('{"jsonrpc": "2.0", "method": "subtract", "params": 42, "id": 1}',),
        _invalid(1),
    ),
    Case(
        "4:id-object",
        "an id MUST be a String, a Number or null: an Object makes the request invalid, so the tool does not run",
        (f'{{"jsonrpc": "2.0", {_19}, "id": {{"a": 1}}}}',),
        Answer(error(INVALID_REQUEST)),
    ),
    Case(
        "4:id-array",
        "an id MUST be a String, a Number or null: not an Array",
        (f'{{"jsonrpc": "2.0", {_19}, "id": [1]}}',),
        Answer(error(INVALID_REQUEST)),
    ),
    Case(
        "4:id-boolean",
        "an id MUST be a String, a Number or null: not a Boolean",
        (f'{{"jsonrpc": "2.0", {_19}, "id": true}}',),
        Answer(error(INVALID_REQUEST)),
    ),
    Case(
        "4:not-an-object",
        "a message that is neither an Object nor an Array is not a request: -32600, id null",
        ("42",),
        Answer(error(INVALID_REQUEST)),
    ),
    Case(
        "4.2:params-omitted",
        '"params" MAY be omitted',
        ('{"jsonrpc": "2.0", "method": "get_data", "id": 1}',),
        Answer(result(["hello", 5], 1)),
        ("get_data",),
    ),
]

_NOTIFICATIONS = [
    Case(
        "4.1:notification-known-method",
        "a Notification of an existing method runs it and is not answered",
        (request("subtract", [42, 23]),),
        SILENCE,
        _SUBTRACT,
    ),
    Case(
        "4.1:notification-invalid-params",
        'a Notification is not answered even when it fails ("errors like Invalid params")',
        (request("subtract", {"no such param": 1}),),
        SILENCE,
        _SUBTRACT,
    ),
    Case(
        "4.1:notification-in-batch",
        "a Notification inside a Batch gets no Response object in the Array",
        (f"[{request('subtract', [42, 23])}, {request('subtract', [42, 23], 'a')}]",),
        Answer([result(19, "a")]),
        _SUBTRACT,
    ),
]

_RESPONSES = [
    Case(
        "5.1:parse-error-truncated",
        "a message cut short is not valid JSON: -32700 Parse error, id null",
        (f'{{"jsonrpc": "2.0", {_19}',),
        Answer(error(PARSE_ERROR)),
    ),
    Case(
        "5.1:parse-error-nan",
        "NaN is not JSON (RFC 8259): -32700 Parse error, id null",
        ('{"jsonrpc": "2.0", "method": "subtract", "params": [NaN, 23], "id": 1}',),
        Answer(error(PARSE_ERROR)),
    ),
    Case(
        "5.1:parse-error-empty",
        "an empty message is not JSON: -32700 Parse error, id null",
        ("",),
        Answer(error(PARSE_ERROR)),
    ),
    Case(
        "5:one-answer-each",
        "each request gets its own Response object, with its own id, in any order",
        (request("subtract", [42, 23], "first"), request("subtract", [23, 42], "second")),
        Answers(result(19, "first"), result(-19, "second")),
        _SUBTRACT,
    ),
    Case(
        "5:completion-order",
        "a slow call does not hold up a fast one sent after it; each answer carries its own id "
        "(not a MUST: the specification only requires answers to be matched by id)",
        (),
        COMPLETION_ORDER,
        ("subtract", "slow"),
    ),
]

_BATCHES = [
    Case(
        "6:batch-of-one",
        "a Batch of one request is answered with an Array of one Response object",
        (f"[{request('subtract', [42, 23], 1)}]",),
        Answer([result(19, 1)]),
        _SUBTRACT,
    ),
    Case(
        "6:batch-nested",
        "a Batch member that is an Array is not a Request object: -32600 for it",
        (f"[[{request('subtract', [42, 23], 1)}]]",),
        Answer([error(INVALID_REQUEST)]),
    ),
    Case(
        "6:batch-mixed-errors",
        "each member of a Batch is answered on its own: a bad one does not spoil the others",
        (f'[{request("subtract", [42, 23], "ok")}, {{"jsonrpc": "2.0", "method": 1, "id": "bad"}}, 7]',),
        Answer(
            [result(19, "ok"), error(INVALID_REQUEST), error(INVALID_REQUEST)],
            [result(19, "ok"), error(INVALID_REQUEST, "bad"), error(INVALID_REQUEST)],
        ),
        _SUBTRACT,
    ),
]

CASES: list[Case] = [*_EXAMPLES, *_REQUESTS, *_NOTIFICATIONS, *_IDS, *_RESPONSES, *_BATCHES]
