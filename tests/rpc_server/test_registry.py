"""Adding tools: the decorator, schemas derived from type hints, how each kind runs, and jsonrpcserver-style tools."""

from __future__ import annotations

import asyncio
import threading
from typing import Any, Literal, Optional

import pytest
from jsonrpcserver import Error, InvalidParams, JsonRpcError, Success, method
from jsonrpcserver.methods import global_methods

from rpc_server import Dispatcher, InvalidParamsError, Kind, Registry, Tool, ToolDefinitionError, ToolError
from rpc_server.registry import make_tool

from .corpus import parse, request


async def call(registry: Registry, name: str, params: Any = None, id: Any = 1) -> Any:
    return parse(await Dispatcher(registry).dispatch_async(request(name, params, id)))


def result_of(response: Any) -> Any:
    assert "error" not in response, response
    return response["result"]


def invalid_params(response: Any) -> str:
    assert response.get("error", {}).get("code") == -32602, response
    return str(response["error"]["data"])


# -- the decorator ----------------------------------------------------------------


async def test_the_decorator_serves_a_plain_function_and_returns_it_unchanged() -> None:
    """@registry.tool on a def serves it under its name and leaves it callable as before."""
    registry = Registry()

    @registry.tool
    def greet(name: str) -> str:
        """Say hello."""
        return f"Hello, {name}"

    assert greet("Ada") == "Hello, Ada"
    assert registry["greet"].kind is Kind.SYNC
    assert registry["greet"].description == "Say hello."
    assert result_of(await call(registry, "greet", ["Ada"])) == "Hello, Ada"
    assert result_of(await call(registry, "greet", {"name": "Bo"})) == "Hello, Bo"


async def test_the_decorator_serves_an_async_function_on_the_loop() -> None:
    """@registry.tool on an async def runs it as a coroutine on the running loop."""
    registry = Registry()
    loop_seen = []

    @registry.tool(name="later", description="Answer later.")
    async def answer_later(x: int) -> int:
        loop_seen.append(asyncio.get_running_loop())
        await asyncio.sleep(0)
        return x + 1

    assert registry["later"].kind is Kind.ASYNC
    assert registry["later"].description == "Answer later."
    assert result_of(await call(registry, "later", [1])) == 2
    assert loop_seen == [asyncio.get_running_loop()]


async def test_a_callable_object_with_an_async_call_is_an_async_tool() -> None:
    """An instance whose __call__ is async is awaited, not returned as a coroutine."""

    class Doubler:
        async def __call__(self, x: int) -> int:
            return 2 * x

    registry = Registry()
    registry.add(Doubler(), name="double")
    assert registry["double"].kind is Kind.ASYNC
    assert result_of(await call(registry, "double", [21])) == 42


async def test_plain_tools_run_inline_and_blocking_tools_in_a_thread() -> None:
    """A plain def runs on the loop's thread; blocking=True moves it to another thread."""
    registry = Registry()
    threads: dict[str, int] = {}

    @registry.tool
    def inline() -> None:
        threads["inline"] = threading.get_ident()

    @registry.tool(blocking=True)
    def blocking() -> None:
        threads["blocking"] = threading.get_ident()

    assert registry["blocking"].kind is Kind.BLOCKING
    await call(registry, "inline")
    await call(registry, "blocking")
    assert threads["inline"] == threading.get_ident()
    assert threads["blocking"] != threading.get_ident()


def test_blocking_is_refused_for_an_async_tool() -> None:
    """An async tool already runs on the loop; blocking=True on it is a definition error."""

    async def coro() -> None:
        pass

    with pytest.raises(ToolDefinitionError, match="blocking"):
        Registry().add(coro, blocking=True)


def test_a_tool_must_be_callable() -> None:
    """Registering something that cannot be called is refused at once."""
    with pytest.raises(ToolDefinitionError):
        Registry().add(42, name="x")  # type: ignore[arg-type]


def test_unresolvable_type_hints_are_refused_when_the_tool_is_added() -> None:
    """A hint naming an unknown type fails at registration, not on the first call."""

    def broken(x: NoSuchType) -> None:  # type: ignore[name-defined]  # noqa: F821
        pass

    with pytest.raises(ToolDefinitionError, match="type hints"):
        Registry().add(broken)


# -- schemas from type hints ------------------------------------------------------------


def _typed_registry() -> Registry:
    registry = Registry()

    @registry.tool
    def scalars(s: str, i: int, f: float, b: bool) -> list[Any]:
        return [s, i, f, b]

    @registry.tool
    def containers(xs: list[int], d: dict[str, int]) -> list[Any]:
        return [xs, d]

    @registry.tool
    def optional(x: Optional[int] = None, y: int | None = None) -> list[Any]:  # noqa: UP045
        return [x, y]

    @registry.tool
    def choice(mode: Literal["fast", "slow"]) -> str:
        return mode

    @registry.tool
    def defaults(a: int, b: int = 10, c: str = "c") -> list[Any]:
        return [a, b, c]

    @registry.tool
    def varargs(first: str, *rest: int) -> list[Any]:
        return [first, list(rest)]

    @registry.tool
    def varkw(a: int, **options: bool) -> list[Any]:
        return [a, options]

    @registry.tool
    def keyword_only(a: int, *, scale: float) -> float:
        return a * scale

    @registry.tool
    def keyword_default(a: int, *, scale: float = 2.0) -> float:
        return a * scale

    @registry.tool
    def untyped(x, y=None):  # type: ignore[no-untyped-def]
        return [x, y]

    return registry


@pytest.mark.parametrize(
    ("name", "params", "result"),
    [
        ("scalars", ["s", 1, 2, False], ["s", 1, 2, False]),
        ("scalars", {"s": "", "i": -1, "f": 0.5, "b": True}, ["", -1, 0.5, True]),
        ("containers", [[1, 2], {"k": 3}], [[1, 2], {"k": 3}]),
        ("containers", [[], {}], [[], {}]),
        ("optional", [], [None, None]),
        ("optional", [None, 5], [None, 5]),
        ("optional", {"y": 3}, [None, 3]),
        ("choice", ["slow"], "slow"),
        ("defaults", [1], [1, 10, "c"]),
        ("defaults", {"a": 1, "c": "z"}, [1, 10, "z"]),
        ("varargs", ["a"], ["a", []]),
        ("varargs", ["a", 1, 2, 3], ["a", [1, 2, 3]]),
        ("varkw", {"a": 1, "x": True, "y": False}, [1, {"x": True, "y": False}]),
        ("varkw", [1], [1, {}]),
        ("keyword_only", {"a": 2, "scale": 1.5}, 3.0),
        ("keyword_default", [2], 4.0),
        ("keyword_default", {"a": 2, "scale": 3}, 6),
        ("untyped", ["anything", {"at": "all"}], ["anything", {"at": "all"}]),
    ],
)
async def test_params_that_fit_the_hints_are_accepted(name: str, params: Any, result: Any) -> None:
    """The derived schema lets through every value the hints allow, by position and by name."""
    assert result_of(await call(_typed_registry(), name, params)) == result


@pytest.mark.parametrize(
    ("name", "params", "words"),
    [
        ("scalars", [1, 1, 1.0, True], ["'s'", "string"]),
        ("scalars", ["s", "1", 1.0, True], ["'i'", "integer"]),
        ("scalars", ["s", 1.5, 1.0, True], ["'i'", "integer"]),
        ("scalars", ["s", 1, "1.0", True], ["'f'", "number"]),
        ("scalars", ["s", 1, 1.0, 1], ["'b'", "boolean"]),
        ("scalars", {"s": "s", "i": True, "f": 1.0, "b": True}, ["'i'", "integer"]),
        ("containers", [[1, "2"], {}], ["'xs[1]'", "integer"]),
        ("containers", [{}, {}], ["'xs'", "array"]),
        ("containers", [[], {"k": "v"}], ["'d.k'", "integer"]),
        ("containers", [[], []], ["'d'", "object"]),
        ("optional", ["x"], ["'x'"]),
        ("choice", ["medium"], ["'mode'", "fast", "slow"]),
        ("defaults", [], ["missing", "'a'"]),
        ("defaults", [1, 2, "c", 4], ["at most 3"]),
        ("defaults", {"a": 1, "d": 4}, ["unexpected", "'d'"]),
        ("varargs", ["a", 1, "two"], ["'rest[1]'", "integer"]),
        ("varkw", {"a": 1, "x": "yes"}, ["'x'", "boolean"]),
        ("keyword_only", [2, 1.5], ["by name"]),
        ("keyword_only", {"a": 2}, ["missing", "'scale'"]),
        ("keyword_default", [2, 3.0], ["at most 1"]),
    ],
)
async def test_params_that_break_the_hints_are_invalid_params_naming_the_parameter(
    name: str, params: Any, words: list[str]
) -> None:
    """The derived schema refuses what the hints exclude with -32602 and data naming the parameter."""
    data = invalid_params(await call(_typed_registry(), name, params))
    for word in words:
        assert word in data, data


async def test_an_int_parameter_never_receives_a_float() -> None:
    """A whole float such as 2.0 for an int hint is refused (-32602) or passed as int: never a crash inside the tool."""
    registry = Registry()
    seen: list[Any] = []

    @registry.tool
    def repeat(text: str, times: int) -> str:
        seen.append(times)
        return text * times  # TypeError for a float

    response = await call(registry, "repeat", ["ab", 2.0])
    if "error" in response:
        assert response["error"]["code"] == -32602, f"the tool was called with {seen} and failed: {response}"
    else:
        assert response["result"] == "abab" and type(seen[0]) is int


# -- jsonrpcserver's ways of answering ----------------------------------------------------


def _jsonrpcserver_style_registry() -> Registry:
    registry = Registry()

    @registry.tool
    def success() -> Any:
        return Success({"ok": True})

    @registry.tool
    async def async_success() -> Any:
        return Success([1, 2])

    @registry.tool(blocking=True)
    def blocking_success() -> Any:
        return Success("done")

    @registry.tool
    def error() -> Any:
        return Error(42, "Custom failure", {"why": "testing"})

    @registry.tool
    async def error_without_data() -> Any:
        return Error(43, "Bare failure")

    @registry.tool
    def invalid() -> Any:
        return InvalidParams("x must be even")

    @registry.tool
    async def raises_jsonrpcerror() -> Any:
        raise JsonRpcError(44, "Raised failure", [1])

    @registry.tool(blocking=True)
    def raises_tool_error() -> Any:
        raise ToolError(45, data="ours")

    @registry.tool
    def raises_invalid_params() -> Any:
        raise InvalidParamsError("y is odd")

    return registry


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("success", {"result": {"ok": True}}),
        ("async_success", {"result": [1, 2]}),
        ("blocking_success", {"result": "done"}),
        ("error", {"error": {"code": 42, "message": "Custom failure", "data": {"why": "testing"}}}),
        ("error_without_data", {"error": {"code": 43, "message": "Bare failure"}}),
        ("invalid", {"error": {"code": -32602, "message": "Invalid params", "data": "x must be even"}}),
        ("raises_jsonrpcerror", {"error": {"code": 44, "message": "Raised failure", "data": [1]}}),
        ("raises_tool_error", {"error": {"code": 45, "message": "Server error", "data": "ours"}}),
        ("raises_invalid_params", {"error": {"code": -32602, "message": "Invalid params", "data": "y is odd"}}),
    ],
)
async def test_jsonrpcserver_results_and_errors_are_answered_as_jsonrpcserver_would(
    name: str, expected: dict[str, Any]
) -> None:
    """Success, Error, InvalidParams and a raised JsonRpcError become the same Response, from any kind of tool."""
    assert await call(_jsonrpcserver_style_registry(), name, None, "i") == {"jsonrpc": "2.0", **expected, "id": "i"}


async def test_a_jsonrpcserver_methods_dict_is_served_as_it_is() -> None:
    """Registry.from_methods serves a {name: function} dict of jsonrpcserver methods, sync and async, unchanged."""

    def ping() -> Any:
        return Success("pong")

    async def add(a, b):  # type: ignore[no-untyped-def]
        return Success(a + b)

    registry = Registry.from_methods({"ping": ping, "math.add": add})
    assert sorted(registry) == ["math.add", "ping"]
    assert result_of(await call(registry, "ping")) == "pong"
    assert result_of(await call(registry, "math.add", [2, 3])) == 5
    assert invalid_params(await call(registry, "math.add", [2]))


async def test_jsonrpcserver_global_method_registry_is_served_as_it_is() -> None:
    """Functions registered with jsonrpcserver's @method are served through Registry.from_methods(global_methods)."""
    name = "tests.rpc_server.test_registry.echo"

    @method(name=name)
    def echo(value):  # type: ignore[no-untyped-def]
        return Success(value)

    try:
        registry = Registry.from_methods(global_methods)
        assert result_of(await call(registry, name, ["hi"])) == "hi"
    finally:
        del global_methods[name]


# -- names ------------------------------------------------------------------------------


def test_a_name_already_taken_is_refused_unless_replacing() -> None:
    """Adding a second tool under a taken name raises; replace=True swaps it."""
    registry = Registry()
    registry.add(lambda: 1, name="one")
    with pytest.raises(ToolDefinitionError, match="already registered"):
        registry.add(lambda: 2, name="one")
    with pytest.raises(ToolDefinitionError, match="already registered"):
        registry.tool(name="one")(lambda: 3)
    with pytest.raises(ToolDefinitionError, match="already registered"):
        registry.include({"one": lambda: 4})
    registry.add(lambda: 5, name="one", replace=True)
    assert registry["one"].fn() == 5


def test_include_refuses_a_clash_between_registries() -> None:
    """Merging two registries that both define a name raises rather than silently picking one."""
    first, second = Registry(), Registry()
    first.add(lambda: 1, name="same")
    second.add(lambda: 2, name="same")
    with pytest.raises(ToolDefinitionError):
        first.include(second)


def test_including_a_registry_is_live() -> None:
    """A tool added to an included registry after include() is served by the includer too (README order)."""
    served, mine = Registry(), Registry()
    served.include(mine)
    mine.add(lambda: "late", name="late")
    assert served["late"].fn() == "late"
    assert served.lookup("late") is mine["late"]  # the dispatcher's lookup sees it


def test_a_late_tool_that_clashes_in_the_includer_is_refused_in_both() -> None:
    """Adding to an included registry a name its includer already has fails, and changes neither."""
    served, mine = Registry(), Registry()
    served.add(lambda: 1, name="same")
    served.include(mine)
    with pytest.raises(ToolDefinitionError, match="'same' is already served by a registry that includes this one"):
        mine.add(lambda: 2, name="same")
    assert "same" not in mine
    assert served["same"].fn() == 1


def test_including_the_same_functions_twice_is_harmless() -> None:
    """The same function under the same name, from two includes, is served once without a clash."""

    def ping() -> str:
        return "pong"

    served = Registry()
    served.include({"ping": ping})
    served.include({"ping": ping})
    assert list(served) == ["ping"]


def test_registries_cannot_include_each_other_in_a_circle() -> None:
    """A includes B includes A would loop forever on each add: refused."""
    a, b = Registry(), Registry()
    a.include(b)
    with pytest.raises(ToolDefinitionError, match="circle"):
        b.include(a)
    with pytest.raises(ToolDefinitionError, match="circle"):
        a.include(a)


@pytest.mark.parametrize(
    "register",
    [
        lambda r, f: r.add(f, name="rpc.discover"),
        lambda r, f: r.tool(name="rpc.x")(f),
        lambda r, f: r.include({"rpc.x": f}),
        lambda r, f: Registry.from_methods({"rpc.x": f}),
    ],
    ids=["add", "decorator", "include a dict", "from_methods"],
)
def test_names_beginning_with_rpc_dot_are_refused(register: Any) -> None:
    """'rpc.' names belong to the protocol (spec 4): every way of adding a function refuses them."""
    with pytest.raises(ToolDefinitionError, match="reserved"):
        register(Registry(), lambda: None)


def test_a_registry_built_from_tool_records_refuses_rpc_names() -> None:
    """Registry(tools) with a public Tool record named 'rpc.…' is refused like add() refuses it."""
    tool = make_tool(lambda: None, name="rpc.discover")
    assert isinstance(tool, Tool)
    with pytest.raises(ToolDefinitionError, match="reserved"):
        Registry([tool])
