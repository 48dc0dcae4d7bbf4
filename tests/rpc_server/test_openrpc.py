"""The OpenRPC document: valid against the official meta-schema, and read off the same records that validate calls."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

import jsonschema
import pytest

from rpc_server import (
    Context,
    Dispatcher,
    Registry,
    Session,
    ToolDefinitionError,
    ToolError,
    builtin_tools,
    builtin_topics,
)
from rpc_server.methods import protocol_methods
from rpc_server.openrpc import OPENRPC_VERSION, document, package_version
from rpc_server.schema import DRAFT
from rpc_server.topics import Topics

from .corpus import request
from .specs import openrpc_errors

URL = "ws://127.0.0.1:8000/ws"


def builtin_document(**options: Any) -> dict[str, Any]:
    return document(builtin_tools(), protocol=protocol_methods().values(), topics=builtin_topics(), url=URL, **options)


def by_name(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {m["name"]: m for m in doc["methods"]}


def test_the_built_in_server_s_document_is_valid_openrpc() -> None:
    """The whole document, with every tool, topic and rpc.* method, passes the official meta-schema."""
    doc = builtin_document()
    assert openrpc_errors(doc) == []
    assert doc["openrpc"] == OPENRPC_VERSION == "1.3.2"
    assert doc["info"]["version"] == package_version() != "0+unknown"
    assert doc["servers"] == [{"name": "rpc-tools", "url": URL}]


def test_the_meta_schema_check_can_fail() -> None:
    """A document with a bad param schema or an unknown member is refused: the check is not vacuous."""
    doc = builtin_document()
    doc["methods"][0]["params"][0]["schema"] = {"type": 5}
    assert openrpc_errors(doc)
    doc = builtin_document()
    doc["methods"][0]["returns"] = {}
    assert openrpc_errors(doc)


def test_every_tool_and_rpc_method_is_listed_with_its_description() -> None:
    """Each built-in tool and each rpc.* method appears once, with its docstring's first paragraph as summary."""
    methods = by_name(builtin_document())
    assert list(methods) == [*builtin_tools(), "rpc.cancel", "rpc.subscribe", "rpc.unsubscribe"]
    assert methods["multiply"]["summary"] == "Multiply two numbers: a * b."
    assert methods["rpc.unsubscribe"]["description"].startswith("End a subscription; false when")
    assert methods["rpc.subscribe"]["params"][0]["description"].startswith("the topic's name")


def test_a_param_s_schema_is_the_one_that_validates_calls() -> None:
    """Each content descriptor's schema is the by-name form's schema of that param, from the same file."""
    tools = builtin_tools()
    for name, method in by_name(builtin_document()).items():
        if name not in tools or method["paramStructure"] == "by-position":
            continue
        properties = tools[name].schema["else"]["properties"]
        assert [p["name"] for p in method["params"]] == list(properties)
        for param in method["params"]:
            assert param["schema"] == properties[param["name"]]
            assert param["required"] == (param["name"] in tools[name].schema["else"].get("required", []))


def test_the_arithmetic_tools_declare_their_application_errors() -> None:
    """divide and pow list 1001-1003, the others 1002-1003, each with its standard message."""
    methods = by_name(builtin_document())
    assert methods["divide"]["errors"] == [
        {"code": 1001, "message": "Division by zero"},
        {"code": 1002, "message": "Result too large"},
        {"code": 1003, "message": "Result is not a finite real number"},
    ]
    assert [e["code"] for e in methods["pow"]["errors"]] == [1001, 1002, 1003]
    for name in ("add", "subtract", "multiply", "sum"):
        assert [e["code"] for e in methods[name]["errors"]] == [1002, 1003]


def test_sum_takes_any_count_of_numbers_by_position() -> None:
    """sum(*numbers) is by-position, with one variadic param of numbers that is not required."""
    method = by_name(builtin_document())["sum"]
    assert method["paramStructure"] == "by-position"
    assert method["params"] == [
        {"name": "numbers", "required": False, "schema": {"type": "number"}, "x-variadic": True}
    ]
    assert method["result"]["schema"] == {"type": "number"}


def test_streamed_tools_and_progress_are_described_in_extensions() -> None:
    """count streams integers (its result an array of them); long_task reports progress; both can be cancelled."""
    methods = by_name(builtin_document())
    count = methods["count"]
    assert count["x-stream"] == {"part": {"name": "part", "schema": {"type": "integer"}}}
    assert count["result"]["schema"] == {"type": "array", "items": {"type": "integer"}}
    assert count["params"][1]["schema"]["default"] == 0.1
    assert "x-progress" not in count
    long_task = methods["long_task"]
    assert long_task["x-progress"] is True
    assert "x-stream" not in long_task
    assert {"code": -32800, "message": "Request cancelled"} in long_task["errors"]
    assert "errors" not in methods["rpc.cancel"]


def test_a_result_schema_can_come_from_a_schemas_file() -> None:
    """long_task's result schema is schemas/results/long_task.json, without its $schema and $id."""
    schema = by_name(builtin_document())["long_task"]["result"]["schema"]
    assert schema["required"] == ["steps", "seconds"]
    assert "$id" not in schema and "$schema" not in schema
    jsonschema.validate({"steps": 10, "seconds": 0.5}, schema)


def test_topics_are_listed_with_their_params_and_events() -> None:
    """x-topics holds clock, its interval param (default 1) and the schema of its events."""
    (clock,) = builtin_document()["x-topics"]
    assert clock["name"] == "clock"
    assert clock["params"] == [
        {
            "name": "interval",
            "required": False,
            "schema": {"type": "number", "minimum": 0.01, "maximum": 3600, "default": 1},
        }
    ]
    assert clock["event"]["schema"]["type"] == "object"


def test_the_notifications_the_server_sends_are_listed() -> None:
    """x-notifications names rpc.part, rpc.progress, rpc.event and rpc.unsubscribed with their params."""
    notes = {n["name"]: [p["name"] for p in n["params"]] for n in builtin_document()["x-notifications"]}
    assert notes == {
        "rpc.part": ["id", "value"],
        "rpc.progress": ["id", "done", "total", "message"],
        "rpc.event": ["subscription", "topic", "event", "dropped"],
        "rpc.unsubscribed": ["subscription", "reason"],
    }


def test_a_plain_user_function_is_described_with_no_extra_work() -> None:
    """def f(a: int, b: int = 2) -> int with a docstring: params, default, required, result and description."""
    registry = Registry()

    @registry.tool
    def scale(a: int, b: int = 2) -> int:
        """Scale a by b.

        Args:
            a: the number to scale.
            b: the factor.
        """
        return a * b

    doc = document(registry)
    assert openrpc_errors(doc) == []
    (method,) = doc["methods"]
    assert method == {
        "name": "scale",
        "summary": "Scale a by b.",
        "description": "Scale a by b.\n\nArgs:\n    a: the number to scale.\n    b: the factor.",
        "paramStructure": "either",
        "params": [
            {
                "name": "a",
                "description": "the number to scale.",
                "required": True,
                "schema": {"type": "integer", "description": "the number to scale."},
            },
            {
                "name": "b",
                "description": "the factor.",
                "required": False,
                "schema": {"type": "integer", "description": "the factor.", "default": 2},
            },
        ],
        "result": {"name": "result", "schema": {"type": "integer"}},
    }
    assert "servers" not in doc and "x-topics" not in doc


def test_keyword_only_positional_only_and_annotated_params() -> None:
    """Keyword-only params make a tool by-name; positional-only by-position; Annotated text is a description."""
    registry = Registry()

    @registry.tool
    def named(*, text: Annotated[str, "what to echo"], times: int = 1) -> list[str]:
        return [text] * times

    @registry.tool
    def positional(x: float, /, *rest: float) -> float:
        return x + sum(rest)

    @registry.tool
    async def ticks(n: int, ctx: Context) -> AsyncIterator[dict[str, int]]:
        yield {"tick": n}

    doc = document(registry)
    assert openrpc_errors(doc) == []
    methods = by_name(doc)
    assert methods["named"]["paramStructure"] == "by-name"
    assert methods["named"]["params"][0]["description"] == "what to echo"
    assert methods["named"]["result"]["schema"] == {"type": "array", "items": {"type": "string"}}
    assert methods["positional"]["paramStructure"] == "by-position"
    assert [(p["name"], p["required"], p.get("x-variadic", False)) for p in methods["positional"]["params"]] == [
        ("x", True, False),
        ("rest", False, True),
    ]
    streamed = methods["ticks"]
    assert [p["name"] for p in streamed["params"]] == ["n"]  # the Context is not a param
    assert streamed["x-stream"]["part"]["schema"] == {"type": "object", "additionalProperties": {"type": "integer"}}
    assert streamed["x-progress"] is True


def test_a_user_tool_declares_its_error_codes() -> None:
    """errors= takes codes of rpc_server.codes alone, others with their message; an unknown bare code is refused."""
    registry = Registry()

    def reserve(item: str) -> bool:
        raise ToolError(4001, "Out of stock")

    registry.add(reserve, errors={4001: "Out of stock", 1001: "Division by zero"})
    registry.add(reserve, name="reserve_known", errors=[1002])
    methods = by_name(document(registry))
    assert methods["reserve"]["errors"] == [
        {"code": 1001, "message": "Division by zero"},
        {"code": 4001, "message": "Out of stock"},
    ]
    assert methods["reserve_known"]["errors"] == [{"code": 1002, "message": "Result too large"}]
    with pytest.raises(ToolDefinitionError, match=r"errors=\{4002: "):
        registry.add(reserve, name="unknown", errors=[4002])
    with pytest.raises(ToolDefinitionError, match="integer"):
        registry.add(reserve, name="bad", errors=["4001"])  # type: ignore[list-item]


def test_a_declared_result_schema_wins_over_the_annotation() -> None:
    """result= is what clients are told, whatever the return annotation says."""
    registry = Registry()
    registry.add(lambda: {"ok": True}, name="status", result={"type": "object", "required": ["ok"]})
    assert by_name(document(registry))["status"]["result"]["schema"] == {"type": "object", "required": ["ok"]}


def test_a_hand_written_schema_of_another_shape_is_still_valid_openrpc() -> None:
    """A plain object schema is by-name; a schema the describer cannot list travels whole in x-params-schema."""
    registry = Registry()
    registry.add(
        lambda **kw: kw,
        name="named",
        schema={"$schema": DRAFT, "type": "object", "properties": {"q": {"type": "string"}}, "required": ["q"]},
    )
    registry.add(lambda *a: a, name="anything", schema={"$schema": DRAFT, "anyOf": [{"type": "array"}]})
    doc = document(registry)
    assert openrpc_errors(doc) == []
    methods = by_name(doc)
    assert methods["named"]["paramStructure"] == "by-name"
    assert methods["named"]["params"] == [{"name": "q", "required": True, "schema": {"type": "string"}}]
    assert methods["named"]["x-additional-params"] == {}
    assert methods["anything"]["params"] == []
    assert methods["anything"]["x-params-schema"]["anyOf"] == [{"type": "array"}]


def test_may_call_keeps_only_the_methods_the_caller_may_call() -> None:
    """With a may_call predicate, the tools it refuses are not in the document; the rpc.* methods always are."""
    doc = builtin_document(may_call=lambda name: name == "multiply")
    assert [m["name"] for m in doc["methods"]] == ["multiply", "rpc.cancel", "rpc.subscribe", "rpc.unsubscribe"]


def test_topics_without_params_are_listed_with_none() -> None:
    """A topic fed by publish() takes no params: an empty list, and the document stays valid."""
    topics = Topics()
    topics.add("news")
    doc = document(Registry(), topics=topics)
    assert openrpc_errors(doc) == []
    assert doc["x-topics"] == [
        {"name": "news", "paramStructure": "either", "params": [], "event": {"name": "event", "schema": {}}}
    ]


async def test_rpc_discover_answers_the_document_for_the_caller_s_session() -> None:
    """rpc.discover, with no socket: the session's endpoint is the server, and its allowed() picks the tools."""
    registry = builtin_tools()
    session = Session(topics=builtin_topics())
    session.endpoint = URL
    session.allowed = lambda name: name in ("add", "count")
    response = json.loads(await Dispatcher(registry).dispatch_async(request("rpc.discover", [], 1), session))  # type: ignore[arg-type]
    doc = response["result"]
    assert openrpc_errors(doc) == []
    assert doc["servers"] == [{"name": "rpc-tools", "url": URL}]
    assert [m["name"] for m in doc["methods"]] == [
        "add",
        "count",
        "rpc.cancel",
        "rpc.subscribe",
        "rpc.unsubscribe",
        "rpc.discover",
    ]
    assert Dispatcher(registry).describe()["methods"][0]["name"] == "add"
