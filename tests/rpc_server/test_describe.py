"""Reading a tool's params off its schema: structure, one object schema for all, and arguments put back in place."""

from __future__ import annotations

from typing import Any

import jsonschema
import pytest

from rpc_server import InvalidParamsError, Registry, builtin_tools
from rpc_server.describe import BY_NAME, BY_POSITION, EITHER, describe, params_of, summary
from rpc_server.schema import from_signature


def f_either(a: int, b: int = 2) -> int:
    return a + b


def f_positional(a: int, b: int = 2, /, *rest: int) -> int:
    return a + b + sum(rest)


def f_named(a: int, *, key: str) -> str:
    return key * a


def f_kwargs(a: int, **more: float) -> float:
    return a + sum(more.values())


@pytest.mark.parametrize(
    ("fn", "structure", "names"),
    [
        (f_either, EITHER, ["a", "b"]),
        (f_positional, BY_POSITION, ["a", "b", "rest"]),
        (f_named, BY_NAME, ["a", "key"]),
        (f_kwargs, BY_NAME, ["a"]),
    ],
)
def test_the_structure_follows_the_signature(fn: Any, structure: str, names: list[str]) -> None:
    """either for plain params, by-position for positional-only and *args, by-name for keyword-only and **kwargs."""
    params = params_of(from_signature(fn))
    assert params.structure == structure
    assert [p.name for p in params.params] == names


def test_the_object_schema_of_a_by_position_tool_takes_its_args_as_an_array() -> None:
    """sum's one object: numbers, an array of numbers; it is what MCP and forms are given."""
    schema = describe(builtin_tools()["sum"]).params.object_schema()
    assert schema == {
        "type": "object",
        "properties": {"numbers": {"type": "array", "items": {"type": "number"}}},
        "additionalProperties": False,
    }
    jsonschema.Draft7Validator.check_schema(schema)


def test_the_object_schema_of_an_either_tool_is_its_by_name_form() -> None:
    """For multiply the one object is exactly the schema file's by-name form."""
    tool = builtin_tools()["multiply"]
    assert describe(tool).params.object_schema() == tool.schema["else"]


def test_the_object_schema_allows_what_kwargs_allow() -> None:
    """A **kwargs of floats becomes additionalProperties of that type."""
    schema = params_of(from_signature(f_kwargs)).object_schema()
    assert schema["additionalProperties"] == {"type": "number"}
    assert schema["required"] == ["a"]


@pytest.mark.parametrize(
    ("arguments", "expected"),
    [
        ({"a": 1}, [1]),
        ({"a": 1, "b": 5}, [1, 5]),
        ({"a": 1, "rest": [3, 4]}, [1, 2, 3, 4]),  # b's default fills the gap before rest
        ({"a": 1, "b": 5, "rest": []}, [1, 5]),
        ({}, []),
    ],
)
def test_arguments_by_name_are_put_in_place_for_a_by_position_tool(arguments: Any, expected: list[Any]) -> None:
    """Named arguments become the positional list, *args spread at the end, and the tool's validator accepts it."""
    registry = Registry()
    registry.add(f_positional)
    tool = registry["f_positional"]
    params = describe(tool).params.from_object(arguments)
    assert params == expected
    if expected:
        assert tool.validate(params) == expected


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"a": 1, "c": 2}, "unexpected parameter 'c'"),
        ({"b": 1}, "missing required parameter 'a'"),
        ({"a": 1, "rest": 3}, "parameter 'rest' must be an array"),
    ],
)
def test_arguments_that_cannot_be_put_in_place_are_invalid_params(arguments: Any, message: str) -> None:
    """Unknown names, a gap with no default, and a non-array for *args are -32602, named."""
    with pytest.raises(InvalidParamsError) as caught:
        params_of(from_signature(f_positional)).from_object(arguments)
    assert message in str(caught.value.data)


def test_arguments_of_a_tool_that_takes_names_pass_as_they_are() -> None:
    """An either or by-name tool gets its arguments object as its params, for its validator to judge."""
    assert params_of(from_signature(f_either)).from_object({"a": 1, "zzz": 2}) == {"a": 1, "zzz": 2}


def test_a_summary_is_the_first_paragraph_on_one_line() -> None:
    """Line breaks inside the first paragraph become spaces; later paragraphs are left out."""
    assert summary("Add two\n  numbers.\n\nMore text.") == "Add two numbers."
    assert summary("") == ""


def test_titles_are_readable_names() -> None:
    """long_task is 'Long task'; a schema title other than the name wins."""
    registry = Registry()
    registry.add(f_either, schema={**from_signature(f_either), "title": "Add with a default"})
    assert describe(builtin_tools()["long_task"]).title == "Long task"
    assert describe(registry["f_either"]).title == "Add with a default"


def test_a_tool_is_described_once_and_a_replaced_one_again() -> None:
    """describe() keeps its answer per tool record; a tool added again under the same name is read anew."""
    registry = Registry()
    registry.add(f_either, name="f")
    first = describe(registry["f"])
    assert describe(registry["f"]) is first
    registry.add(f_named, name="f", replace=True)
    assert describe(registry["f"]).params.structure == BY_NAME
