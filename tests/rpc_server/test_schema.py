"""The JSON Schema files agree with the code: request.json with request_error, response.json with our replies."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import annotated_types
import jsonschema
import pytest
from pydantic import Field

from rpc_server import Dispatcher, InvalidParamsError, Registry, ToolDefinitionError, builtin_tools, protocol
from rpc_server.schema import DRAFT, compile_params, from_signature, load, return_schema

from .corpus import CASES, MAX_BATCH, Case, corpus_registry, parse

REQUEST_SCHEMA = load("request.json")
RESPONSE_SCHEMA = load("response.json")
GOOD = {"jsonrpc": "2.0", "method": "m"}


def _with(**members: Any) -> dict[str, Any]:
    return {**GOOD, **members}


def _without(name: str, obj: dict[str, Any] | None = None) -> dict[str, Any]:
    return {k: v for k, v in (obj or _with(params=[1], id=1)).items() if k != name}


# Hand-enumerated edge cases, in the spirit of hypothesis: each member at each
# JSON type, and the values either side of every rule.
ENVELOPES: list[Any] = [
    GOOD,
    _with(params=[]),
    _with(params={}),
    _with(params=[1, "a", None, {"k": []}]),
    _with(params={"a": 1}),
    _with(method=""),
    _with(method="rpc.x"),
    _with(method="ünïcode ✓"),
    *(_with(id=v) for v in ["", "x", 0, -1, 7, 2**70, -(2**70), 1.5, 2.0, -0.0, 1e300, None]),
    *(_with(id=v) for v in [True, False, [], [1], {}, {"a": 1}]),
    *(_with(jsonrpc=v) for v in ["1.0", "2", "2.0 ", " 2.0", 2.0, 2, None, True, ["2.0"], {"v": "2.0"}]),
    _without("jsonrpc"),
    *(_with(method=v) for v in [1, 1.5, None, True, [], ["m"], {}]),
    _without("method"),
    *(_with(params=v) for v in ["x", "", 1, 1.5, None, True, False]),
    _with(x=1),
    _with(ID=1),
    _with(Method="m"),
    _with(result=1),
    _with(error={"code": 1, "message": "m"}),
    _with(params="x", extra=1),
    _with(id=True, params="x"),
    {},
    {"foo": "boo"},
    {"func": "multiply", "args": [3, 4]},
    1,
    1.5,
    "x",
    None,
    True,
]


def _schema_valid(instance: Any) -> bool:
    return jsonschema.Draft7Validator(REQUEST_SCHEMA).is_valid(instance)


def test_the_schema_files_are_valid_draft_07() -> None:
    """The envelope, response and every tool schema are themselves well-formed draft-07 schemas."""
    for schema in [REQUEST_SCHEMA, RESPONSE_SCHEMA, *(load(f"tools/{name}.json") for name in builtin_tools())]:
        assert schema["$schema"] == DRAFT
        jsonschema.Draft7Validator.check_schema(schema)


@pytest.mark.parametrize("obj", ENVELOPES, ids=lambda o: json.dumps(o)[:60])
def test_request_schema_agrees_with_request_error_on_single_objects(obj: Any) -> None:
    """schemas/request.json accepts exactly the objects that protocol.request_error finds no fault in."""
    assert _schema_valid(obj) is (protocol.request_error(obj) is None)


BATCHES: list[list[Any]] = [
    [],
    [GOOD],
    [GOOD, _with(id=1), _with(params=[], id="a")],
    [GOOD, _with(id=True)],
    [_with(jsonrpc=2.0)],
    [[GOOD]],
    [1],
    [1, 2, 3],
    [{"foo": "boo"}, GOOD],
    [None],
]


@pytest.mark.parametrize("batch", BATCHES, ids=lambda b: json.dumps(b)[:60])
def test_request_schema_agrees_with_request_error_on_batches(batch: list[Any]) -> None:
    """A batch is schema-valid exactly when it is not empty and request_error finds no fault in any member."""
    assert _schema_valid(batch) is (bool(batch) and all(protocol.request_error(m) is None for m in batch))


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_every_reply_fits_the_response_schema(case: Case) -> None:
    """Whatever the corpus sends, the reply is a Response object or an array of them (spec 5)."""
    reply = await Dispatcher(corpus_registry(), max_batch=MAX_BATCH).dispatch_async(case.message)
    if reply is not None:
        jsonschema.validate(parse(reply), RESPONSE_SCHEMA, cls=jsonschema.Draft7Validator)


def test_the_built_in_schemas_ship_as_package_data() -> None:
    """schema.load reads the files through importlib.resources, as an installed package does."""
    assert load("tools/multiply.json")["title"] == "multiply"
    assert REQUEST_SCHEMA["$id"] == "request.json"


def test_a_params_validator_names_the_parameter_it_refuses() -> None:
    """compile_params turns a schema failure into InvalidParamsError whose data names the parameter."""
    validate = compile_params(load("tools/divide.json"), "divide")
    validate([1, 2])
    validate({"dividend": 1, "divisor": 2.5})
    with pytest.raises(InvalidParamsError) as caught:
        validate({"dividend": 1, "divisor": "2"})
    assert caught.value.data == "parameter 'divisor' must be a number, got a string"


def test_a_schema_that_does_not_compile_is_refused_when_the_tool_is_added() -> None:
    """A broken params schema fails at registration, never at call time."""
    with pytest.raises(ToolDefinitionError, match="broken"):
        Registry().add(lambda: None, name="broken", schema={"type": "no-such-type"})


# The fast check that compile_params puts in front of fastjsonschema must never
# accept what the full validator refuses: here both see the same params.
FAST_PATH_PARAMS: list[Any] = [
    [3, 4],
    [3.5, -4],
    [True, 4],
    [None, 4],
    ["3", 4],
    [[3], 4],
    [{"a": 1}, 4],
    [3],
    [3, 4, 5],
    [],
    {"a": 1, "b": 2},
    {"a": 1.5, "b": False},
    {"a": 1},
    {"a": 1, "b": 2, "c": 3},
    {"a": 1, "c": 2},
    {"minuend": 1, "subtrahend": 2},
    {"base": 2, "exponent": "x"},
    {"dividend": 1, "divisor": None},
    [2.0, 3],
    {"a": 2.0, "b": 3},
]


def _fast_path_registry() -> Registry:
    registry = builtin_tools()

    @registry.tool
    def typed(n: int, s: str, flag: bool, anything: Any) -> None: ...

    @registry.tool
    def pair(a: float, b: float) -> None: ...

    return registry


@pytest.mark.parametrize("tool", list(_fast_path_registry().values()), ids=lambda t: t.name)
def test_the_fast_params_check_accepts_only_what_the_full_validator_accepts(tool: Any) -> None:
    """For every tool, any params the fast check lets through pass the full fastjsonschema validator too."""
    import fastjsonschema

    from rpc_server.schema import _fast_path

    fast = _fast_path(tool.schema)
    if fast is None:
        pytest.skip("no fast check for this schema")
    full = fastjsonschema.compile(tool.schema)
    extra: list[Any] = [
        [1, "s", True, None],
        [1, "s", 1, None],
        [1.0, "s", True, None],
        {"n": 1, "s": "s", "flag": False, "anything": [1]},
        {"n": 1, "s": "s", "flag": False},
        {"n": True, "s": "s", "flag": False, "anything": 1},
    ]
    accepted = 0
    for params in FAST_PATH_PARAMS + extra:
        if fast(params):
            accepted += 1
            full(params)  # raises if the fast check was wrong
            assert tool.validate(params) == params
    assert accepted > 0, "the corpus never reaches the fast check's accepting branch"


def test_a_derived_schema_carries_defaults_and_docstring_descriptions() -> None:
    """Defaults, Google-style Args and Annotated text reach the derived schema, by name and by position."""

    def f(a: int, b: int = 2, *, c: Annotated[str, "the c"] = "x") -> int:
        """Add.

        Args:
            a: the first.
            b (int): the second,
                continued.

        Returns:
            the sum.
        """
        return a

    schema = from_signature(f)
    properties = schema["else"]["properties"]
    assert properties["a"] == {"type": "integer", "description": "the first."}
    assert properties["b"] == {"type": "integer", "description": "the second, continued.", "default": 2}
    assert properties["c"] == {"type": "string", "description": "the c", "default": "x"}
    assert schema["then"]["items"][1] == {"title": "b", **properties["b"]}
    assert "Returns" not in properties


def test_annotated_constraints_reach_the_schema_and_are_checked() -> None:
    """pydantic's Field(ge=..., pattern=...) and annotated_types' bounds become schema keywords that validate."""
    registry = Registry()

    @registry.tool
    def g(
        a: Annotated[int, Field(ge=0, le=10, description="0 to 10")],
        s: Annotated[str, Field(max_length=3, pattern="^[a-z]+$")] = "ab",
        xs: Annotated[list[int], annotated_types.Len(1, 2)] = [1],  # noqa: B006
        f: Annotated[float, annotated_types.Interval(gt=0, lt=1)] = 0.5,
    ) -> int:
        return a

    properties = registry["g"].schema["else"]["properties"]
    assert properties["a"] == {"type": "integer", "description": "0 to 10", "minimum": 0, "maximum": 10}
    assert properties["s"] == {"type": "string", "maxLength": 3, "pattern": "^[a-z]+$", "default": "ab"}
    assert properties["xs"]["minItems"] == 1 and properties["xs"]["maxItems"] == 2
    assert properties["f"]["exclusiveMinimum"] == 0 and properties["f"]["exclusiveMaximum"] == 1
    dispatcher = Dispatcher(registry)

    def answer(params: str) -> Any:
        return json.loads(dispatcher.dispatch(f'{{"jsonrpc":"2.0","method":"g","params":{params},"id":1}}'))

    assert answer('[5, "ab"]')["result"] == 5
    for bad in ('[-5, "ab"]', '{"a": 11}', '[5, "TOOLONG"]', '[5, "AB"]', '[5, "ab", []]', '[5, "ab", [1], 1]'):
        assert answer(bad)["error"]["code"] == -32602, bad


def test_the_return_schema_comes_from_the_return_annotation() -> None:
    """-> int is an integer; an async generator's schema is that of each part; no annotation is unknown."""

    async def parts() -> AsyncIterator[float]:
        yield 1.0

    def untyped():  # type: ignore[no-untyped-def]
        return 1

    def typed() -> dict[str, list[int]]:
        return {}

    assert return_schema(parts) == {"type": "number"}
    assert return_schema(untyped) is None
    assert return_schema(typed) == {
        "type": "object",
        "additionalProperties": {"type": "array", "items": {"type": "integer"}},
    }


def test_docstring_params_in_sphinx_style_are_descriptions() -> None:
    """:param x: lines, with their continuation lines, describe the params; :returns: does not leak in."""

    def f(x: int, y: int) -> int:
        """Do it.

        :param x: the x,
            continued
        :param y: the y
        :returns: something
        """
        return x

    properties = from_signature(f)["else"]["properties"]
    assert properties["x"]["description"] == "the x, continued"
    assert properties["y"]["description"] == "the y"


def test_defaults_that_json_cannot_say_are_left_out() -> None:
    """A default that is an object or NaN gives no "default" keyword; the param stays optional."""
    marker = object()

    def f(a: Any = marker, b: float = float("nan"), c: tuple[int, int] = (1, 2)) -> None:
        pass

    properties = from_signature(f)["else"]["properties"]
    assert "default" not in properties["a"] and "default" not in properties["b"]
    assert properties["c"]["default"] == [1, 2]
