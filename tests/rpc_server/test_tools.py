"""The built-in tools: their schema files match their signatures, and their arithmetic keeps its promises."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

import pytest

from rpc_server import ToolError, builtin_tools, codes
from rpc_server.registry import Kind
from rpc_server.schema import load
from rpc_server.tools import MAX_INT_BITS, MAX_SLEEP, divide, multiply, pow_, sleep, subtract, sum_


def test_the_built_in_tools_are_the_seed_s_grown_and_the_two_push_demos() -> None:
    """add, subtract, multiply, divide, pow, sum and sleep, count and long_task, and nothing else."""
    assert sorted(builtin_tools()) == [
        "add",
        "count",
        "divide",
        "long_task",
        "multiply",
        "pow",
        "sleep",
        "subtract",
        "sum",
    ]


BUILTIN_FUNCTIONS = {name: tool.fn for name, tool in builtin_tools().items()}


@pytest.mark.parametrize(("name", "fn"), BUILTIN_FUNCTIONS.items(), ids=list(BUILTIN_FUNCTIONS))
def test_each_schema_file_matches_its_function_signature(name: str, fn: Callable[..., Any]) -> None:
    """Positional titles, named properties, required names and defaults follow the signature, in its order."""
    schema = load(f"tools/{name}.json")
    assert schema["title"] == name and schema["$id"] == f"tools/{name}.json"
    context = builtin_tools()[name].context
    params = [p for p in inspect.signature(fn).parameters.values() if p.name != context]
    fixed = [p for p in params if p.kind is p.POSITIONAL_OR_KEYWORD]
    varargs = [p for p in params if p.kind is p.VAR_POSITIONAL]
    assert len(fixed) + len(varargs) == len(params), "built-in tools take plain or *args params only"
    required = [p.name for p in fixed if p.default is p.empty]

    by_position = schema["then"]
    if varargs:
        assert by_position["items"]["title"] == varargs[0].name
        assert not fixed
    else:
        assert [item["title"] for item in by_position["items"]] == [p.name for p in fixed]
        assert by_position["minItems"] == len(required)
        assert by_position["additionalItems"] is False

    by_name = schema["else"]
    assert list(by_name["properties"]) == [p.name for p in fixed]
    assert by_name.get("required", []) == required
    assert by_name["additionalProperties"] is False
    for i, p in enumerate(fixed):
        if p.default is not p.empty:
            assert by_name["properties"][p.name]["default"] == p.default
            assert by_position["items"][i]["default"] == p.default


def test_the_sleep_cap_in_the_schema_is_the_documented_maximum() -> None:
    """MAX_SLEEP and the schema's maximum for seconds are the same number, by position and by name."""
    schema = load("tools/sleep.json")
    assert schema["then"]["items"][0]["maximum"] == MAX_SLEEP
    assert schema["else"]["properties"]["seconds"]["maximum"] == MAX_SLEEP


def test_the_arithmetic_runs_inline_and_only_the_waiting_tools_use_the_loop() -> None:
    """The arithmetic runs inline (cheaper than a task); sleep, count and long_task need the event loop."""
    kinds = {name: tool.kind for name, tool in builtin_tools().items()}
    assert kinds.pop("sleep") is Kind.ASYNC
    assert kinds.pop("long_task") is Kind.ASYNC
    assert kinds.pop("count") is Kind.STREAM
    assert set(kinds.values()) == {Kind.SYNC}


@pytest.mark.parametrize(
    ("call", "expected"),
    [
        (lambda: multiply(3, 4), 12),
        (lambda: multiply(1.5, 2), 3.0),
        (lambda: divide(6, 3), 2),
        (lambda: divide(7, 2), 3.5),
        (lambda: divide(-7, 7), -1),
        (lambda: subtract(23, 42), -19),
        (lambda: sum_(), 0),
        (lambda: sum_(1, 2.5), 3.5),
        (lambda: pow_(2, 10), 1024),
        (lambda: pow_(2, -2), 0.25),
        (lambda: pow_(-1, 10**12), 1),
        (lambda: pow_(1, 10**12), 1),
        (lambda: pow_(0, 10**12), 0),
        (lambda: pow_(2, MAX_INT_BITS - 1), 2 ** (MAX_INT_BITS - 1)),
    ],
    ids=lambda v: "" if callable(v) else repr(v)[:20],
)
def test_results_keep_their_type(call: Callable[[], Any], expected: Any) -> None:
    """Exact integer results stay int; any float operand makes a float; trivial huge powers are answered."""
    result = call()
    assert result == expected and type(result) is type(expected)


@pytest.mark.parametrize(
    ("call", "code"),
    [
        (lambda: divide(1, 0), codes.DIVISION_BY_ZERO),
        (lambda: pow_(0, -1), codes.DIVISION_BY_ZERO),
        (lambda: pow_(10, 10**9), codes.RESULT_TOO_LARGE),
        (lambda: pow_(-3, 10**18), codes.RESULT_TOO_LARGE),
        (lambda: pow_(2, MAX_INT_BITS + 1), codes.RESULT_TOO_LARGE),
        (lambda: multiply(2**4000, 2**4000), codes.RESULT_TOO_LARGE),
        (lambda: pow_(2.0, 10000), codes.RESULT_TOO_LARGE),
        (lambda: multiply(1e308, 10), codes.NOT_FINITE),
        (lambda: pow_(-8, 0.5), codes.NOT_FINITE),
        (lambda: sum_(1e308, 1e308), codes.NOT_FINITE),
    ],
)
def test_arithmetic_failures_raise_tool_errors_with_their_codes(call: Callable[[], Any], code: int) -> None:
    """Each failure is a ToolError with its application code and data saying why, never a bare exception."""
    with pytest.raises(ToolError) as caught:
        call()
    assert caught.value.code == code
    assert caught.value.data


async def test_sleep_answers_its_value() -> None:
    """sleep(0, value) gives value back; without one, None."""
    assert await sleep(0, {"v": 1}) == {"v": 1}
    assert await sleep(0) is None
