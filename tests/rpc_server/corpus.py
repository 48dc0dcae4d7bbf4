"""The conformance corpus: section 7 of the JSON-RPC 2.0 specification and our own cases, with the tools they call.

Shared by the dispatcher, specification, schema and differential tests, so each
of them runs over the same messages. Responses are read back with the standard
library's ``json`` (exact for integers of any size), never with orjson.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from rpc_server import Registry, builtin_tools
from rpc_server.conformance.cases import CASES as KIT_CASES
from rpc_server.conformance.cases import SILENCE

__all__ = [
    "CASES",
    "MAX_BATCH",
    "NO_REPLY",
    "SPEC_EXAMPLES",
    "SPEC_METHODS",
    "Case",
    "SpecExample",
    "corpus_registry",
    "deep_tools",
    "fail",
    "nested",
    "parse",
    "request",
    "strip_error_data",
]


def nested(depth: int) -> list[Any]:
    """An array nested ``depth`` levels deep: ``nested(2)`` is ``[[]]``."""
    value: list[Any] = []
    for _ in range(depth - 1):
        value = [value]
    return value


def deep_tools() -> Registry:
    """The built-in tools, ``deep(n)`` answering ``nested(n)``, and ``deep_parts(n)`` yielding 1, then ``nested(n)``."""
    registry = builtin_tools()

    @registry.tool
    def deep(n: int) -> list[Any]:
        return nested(n)

    @registry.tool
    async def deep_parts(n: int):  # type: ignore[no-untyped-def]
        yield 1
        yield nested(n)

    return registry


# Small, so that the corpus can hold a batch over the limit without a thousand members.
MAX_BATCH = 6

# What the specification writes as "nothing is returned".
NO_REPLY: Any = None


def get_data() -> list[Any]:
    """The specification's get_data (section 7, batch example)."""
    return ["hello", 5]


def notify_hello(*args: Any) -> None:
    """The specification's notify_hello: only ever called as a notification."""


def notify_sum(*args: Any) -> None:
    """The specification's notify_sum: only ever called as a notification."""


def update(*args: Any) -> None:
    """The specification's update: only ever called as a notification."""


def fail() -> None:
    """A tool that breaks; its exception text must never reach a client."""
    raise ValueError("secret")


SPEC_METHODS = {"get_data": get_data, "notify_hello": notify_hello, "notify_sum": notify_sum, "update": update}


def corpus_registry() -> Registry:
    """The built-in tools plus the specification's extra methods and ``fail``."""
    registry = builtin_tools()
    for name, fn in {**SPEC_METHODS, "fail": fail}.items():
        registry.add(fn, name=name)
    return registry


def request(method: str, params: Any = None, id: Any = ..., **extra: Any) -> str:
    """The text of a Request object; ``id=...`` (the default) makes a notification."""
    obj: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        obj["params"] = params
    if id is not ...:
        obj["id"] = id
    obj.update(extra)
    return json.dumps(obj)


def _not_json(constant: str) -> Any:
    raise ValueError(f"{constant} is not JSON")


def parse(reply: bytes | str | None) -> Any:
    """A reply as Python data, NO_REPLY for silence; NaN and Infinity, which are not JSON, are refused."""
    if reply is None or reply in (b"", ""):
        return NO_REPLY
    return json.loads(reply, parse_constant=_not_json)


def strip_error_data(response: Any) -> Any:
    """The response without ``error.data``, which the specification's examples omit."""
    if isinstance(response, list):
        return [strip_error_data(r) for r in response]
    if isinstance(response, dict) and isinstance(response.get("error"), dict):
        error = {k: v for k, v in response["error"].items() if k != "data"}
        return {**response, "error": error}
    return response


@dataclass(frozen=True, slots=True)
class SpecExample:
    """One request of section 7 and the response the specification gives for it."""

    name: str
    request: str
    response: Any


# Section 7, in the specification's order and with its exact text, as the
# conformance kit sends it; the names are the kit's case ids ("7:batch").
SPEC_EXAMPLES = [
    SpecExample(case.id, case.send[0], NO_REPLY if case.expect is SILENCE else case.expect.accepted[0])
    for case in KIT_CASES
    if case.section == "7"
]


@dataclass(frozen=True, slots=True)
class Case:
    """One message of the corpus, named for the test id."""

    name: str
    message: str


def _batch(*members: Any) -> str:
    return "[" + ",".join(m if isinstance(m, str) else json.dumps(m) for m in members) + "]"


_OWN = {
    # ids, echoed with their type
    "id string": request("multiply", [3, 4], "abc"),
    "id int": request("multiply", [3, 4], 7),
    "id zero": request("multiply", [3, 4], 0),
    "id negative": request("multiply", [3, 4], -3),
    "id float": request("multiply", [3, 4], 1.5),
    "id integral float": request("multiply", [3, 4], 2.0),
    "id null": request("multiply", [3, 4], None),
    "id beyond 64 bits": request("multiply", [3, 4], 2**70),
    # envelopes that are not Request objects: -32600 with id null
    "id true": request("multiply", [3, 4], True),
    "id false": request("multiply", [3, 4], False),
    "id object": request("multiply", [3, 4], {"a": 1}),
    "id array": request("multiply", [3, 4], [1]),
    "jsonrpc 1.0": '{"jsonrpc": "1.0", "method": "multiply", "params": [3, 4], "id": 1}',
    "jsonrpc as the number 2.0": '{"jsonrpc": 2.0, "method": "multiply", "params": [3, 4], "id": 1}',
    "jsonrpc as the number 2": '{"jsonrpc": 2, "method": "multiply", "params": [3, 4], "id": 1}',
    "jsonrpc missing": '{"method": "multiply", "params": [3, 4], "id": 1}',
    "jsonrpc null": '{"jsonrpc": null, "method": "multiply", "params": [3, 4], "id": 1}',
    "method missing": '{"jsonrpc": "2.0", "params": [3, 4], "id": 1}',
    "method a number": '{"jsonrpc": "2.0", "method": 7, "id": 1}',
    "params a string": request("multiply", "ab", 1),
    "params a number": request("multiply", 3, 1),
    "params null": '{"jsonrpc": "2.0", "method": "multiply", "params": null, "id": 1}',
    "extra member": request("multiply", [3, 4], 1, extra=True),
    "invalid, no id": '{"jsonrpc": "2.0", "method": 7}',
    # parse errors and top-level values that are not requests
    "truncated object": '{"jsonrpc": "2.0"',
    "empty message": "",
    "not JSON": "nul",
    "NaN literal": '{"jsonrpc": "2.0", "method": "multiply", "params": [NaN, 1], "id": 1}',
    "top-level number": "1",
    "top-level string": '"multiply"',
    "top-level null": "null",
    "top-level true": "true",
    # notifications: never answered, whatever happens
    "notification": request("multiply", [3, 4]),
    "notification, unknown method": request("nope", [3, 4]),
    "notification, bad params": request("multiply", ["ab", 3]),
    "notification, failing tool": request("fail"),
    "notification, application error": request("divide", [1, 0]),
    # methods
    "unknown method": request("nope", [], 1),
    "reserved method name": request("rpc.nothing", None, 1),
    # params the tools refuse: -32602
    "a string where a number belongs": request("multiply", ["ab", 3], 1),
    "a boolean where a number belongs": request("multiply", [True, 3], 1),
    "null where a number belongs": request("multiply", [None, 3], 1),
    "an object where a number belongs": request("multiply", [{}, 3], 1),
    "a string by name": request("multiply", {"a": 3, "b": "x"}, 1),
    "a string among sum's numbers": request("sum", [1, "x"], 1),
    "a negative sleep": request("sleep", [-1], 1),
    "a missing positional param": request("multiply", [3], 1),
    "a missing named param": request("multiply", {"a": 3}, 1),
    "one positional param too many": request("multiply", [3, 4, 5], 1),
    "an unexpected named param": request("multiply", {"a": 3, "b": 4, "c": 5}, 1),
    "a named param for sum": request("sum", {"x": 1}, 1),
    "no params for multiply": request("multiply", None, 1),
    # tools that work
    "add": request("add", [1, 2], 1),
    "subtract by name": request("subtract", {"minuend": 42, "subtrahend": 23}, 1),
    "sum of none": request("sum", [], 1),
    "sum of none, by name": request("sum", {}, 1),
    "sum of many": request("sum", list(range(100)), 1),
    "sleep answers its value": request("sleep", [0, {"v": [1, 2]}], 1),
    "sleep by name": request("sleep", {"seconds": 0}, 1),
    # int stays int, otherwise float
    "int times int": request("multiply", [3, 4], 1),
    "float times int": request("multiply", [1.5, 2], 1),
    "whole quotient of ints": request("divide", [6, 3], 1),
    "fractional quotient of ints": request("divide", [7, 2], 1),
    "quotient of floats": request("divide", [6.0, 3], 1),
    "int plus float": request("add", [1, 2.0], 1),
    # integers beyond 64 bits
    "a result beyond 64 bits": request("pow", [2, 100], 1),
    "a product beyond 64 bits": request("multiply", [2**40, 2**40], 1),
    "a param beyond 64 bits": request("multiply", [2**70, 3], 1),
    # application errors
    "divide by zero": request("divide", [1, 0], 1),
    "divide by float zero": request("divide", [1, 0.0], 1),
    "zero to a negative power": request("pow", [0, -1], 1),
    "pow(10, 10**9)": request("pow", [10, 10**9], 1),
    "pow(2.0, 10000)": request("pow", [2.0, 10000], 1),
    "multiply(1e308, 10)": request("multiply", [1e308, 10], 1),
    "pow(-8, 0.5)": request("pow", [-8, 0.5], 1),
    # a tool that breaks: -32603
    "failing tool": request("fail", None, "f-1"),
    # batches
    "batch of one": _batch(request("multiply", [3, 4], 1)),
    "batch, sync and async members": _batch(
        request("sleep", [0, "slept"], "s"), request("multiply", [3, 4], "m"), request("add", [1, 2], "a")
    ),
    "batch, mixed": _batch(
        request("multiply", [3, 4], 1),
        request("multiply", [3, 4]),
        {"foo": "boo"},
        request("nope", [], 2),
        request("multiply", ["ab", 3], 3),
    ),
    "batch, nested": _batch([request("multiply", [3, 4], 1)]),
    "batch, every member fails differently": _batch(
        request("divide", [1, 0], 1), request("fail", None, 2), request("multiply", [None, 1], 3)
    ),
    "batch of notifications": _batch(request("multiply", [3, 4]), request("sleep", [0]), request("nope")),
    "batch at the limit": _batch(*(request("add", [i, 1], i) for i in range(MAX_BATCH))),
    "batch over the limit": _batch(*(request("add", [i, 1], i) for i in range(MAX_BATCH + 1))),
    "batch, duplicate ids": _batch(request("add", [1, 1], 1), request("add", [2, 2], 1)),
}

CASES = [Case(e.name, e.request) for e in SPEC_EXAMPLES] + [Case(name, text) for name, text in _OWN.items()]
