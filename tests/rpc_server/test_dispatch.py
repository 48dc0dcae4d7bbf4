"""The dispatcher without sockets: text in, response out, for every rule of the wire protocol."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from rpc_server import Dispatcher, Registry, codes
from rpc_server.tools import MAX_INT_BITS

from .corpus import MAX_BATCH, NO_REPLY, corpus_registry, parse, request

NUMBERS_ONLY = [("a string", "ab"), ("a boolean", True), ("null", None), ("an object", {}), ("an array", [1])]


@pytest.fixture(scope="module")
def dispatcher() -> Dispatcher:
    return Dispatcher(corpus_registry(), max_batch=MAX_BATCH)


async def answer(dispatcher: Dispatcher, message: str | bytes) -> Any:
    return parse(await dispatcher.dispatch_async(message))


def error_of(response: Any, code: int) -> dict[str, Any]:
    """The error member of a response that must be an error with ``code``."""
    assert "result" not in response, response
    assert response["error"]["code"] == code, response
    assert response["error"]["message"] == codes.MESSAGES[code]
    return response["error"]


# -- notifications -----------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        request("multiply", [3, 4]),
        request("sleep", [0, "late"]),
        request("nope", [1]),
        request("multiply", ["ab", 3]),
        request("multiply", [1]),
        request("fail"),
        request("divide", [1, 0]),
        request("pow", [10, 10**9]),
    ],
    ids=["plain", "async", "unknown method", "bad type", "missing param", "failing tool", "app error", "too large"],
)
async def test_notifications_are_never_answered_not_even_with_an_error(dispatcher: Dispatcher, message: str) -> None:
    """A request without an id gets no reply, whatever happens to it."""
    assert await dispatcher.dispatch_async(message) is None


async def test_a_failing_notification_is_still_logged(dispatcher: Dispatcher, caplog: pytest.LogCaptureFixture) -> None:
    """Silence towards the client does not hide a tool's failure from the operator."""
    with caplog.at_level(logging.ERROR, logger="rpc_server"):
        assert await dispatcher.dispatch_async(request("fail")) is None
    assert any("fail" in r.getMessage() for r in caplog.records)


# -- ids -----------------------------------------------------------------------


@pytest.mark.parametrize("id", ["abc", "", 7, 0, -3, 1.5, 2.0, -0.5, None], ids=lambda v: f"{type(v).__name__}:{v!r}")
async def test_ids_are_echoed_with_their_type(dispatcher: Dispatcher, id: Any) -> None:
    """The response's id is the request's, of the same JSON type (2.0 stays 2.0, not 2)."""
    response = await answer(dispatcher, request("multiply", [3, 4], id))
    assert response == {"jsonrpc": "2.0", "result": 12, "id": id}
    assert type(response["id"]) is type(id)


async def test_an_id_beyond_64_bits_is_echoed_exactly(dispatcher: Dispatcher) -> None:
    """JSON has integers of any size; an id of 2**70 comes back as 2**70, not as a float near it."""
    response = await answer(dispatcher, request("multiply", [3, 4], 2**70))
    assert response["id"] == 2**70 and type(response["id"]) is int


@pytest.mark.parametrize("id", [True, False, {}, {"a": 1}, [], [1]], ids=repr)
async def test_an_id_of_another_type_is_an_invalid_request_with_id_null(dispatcher: Dispatcher, id: Any) -> None:
    """Booleans, objects and arrays are not ids: -32600, and the id is null."""
    response = await answer(dispatcher, request("multiply", [3, 4], id))
    assert error_of(response, codes.INVALID_REQUEST)["data"] == "id must be a string, a number or null"
    assert response["id"] is None


@pytest.mark.parametrize(
    "message",
    [
        '{"jsonrpc": "1.0", "method": "multiply", "params": [3, 4], "id": 1}',
        '{"jsonrpc": 2.0, "method": "multiply", "params": [3, 4], "id": 1}',
        '{"jsonrpc": 2, "method": "multiply", "params": [3, 4], "id": 1}',
        '{"jsonrpc": "2.0 ", "method": "multiply", "params": [3, 4], "id": 1}',
        '{"jsonrpc": null, "method": "multiply", "params": [3, 4], "id": 1}',
        '{"method": "multiply", "params": [3, 4], "id": 1}',
    ],
    ids=["1.0", "number 2.0", "number 2", "trailing space", "null", "missing"],
)
async def test_jsonrpc_must_be_exactly_the_string_2_0(dispatcher: Dispatcher, message: str) -> None:
    """Anything but the string "2.0" is -32600 with id null, even when the id itself is fine."""
    response = await answer(dispatcher, message)
    assert error_of(response, codes.INVALID_REQUEST)["data"] == 'jsonrpc must be exactly "2.0"'
    assert response["id"] is None


@pytest.mark.parametrize(
    ("message", "why"),
    [
        ('{"jsonrpc": "2.0", "params": [3, 4], "id": 1}', "method must be a string"),
        ('{"jsonrpc": "2.0", "method": 7, "id": 1}', "method must be a string"),
        ('{"jsonrpc": "2.0", "method": "multiply", "params": "ab", "id": 1}', "params must be an array or an object"),
        ('{"jsonrpc": "2.0", "method": "multiply", "params": null, "id": 1}', "params must be an array or an object"),
        ('{"jsonrpc": "2.0", "method": "multiply", "params": [3, 4], "id": 1, "x": 0}', "unexpected member 'x'"),
        ("1", "a request must be a JSON object"),
        ('"multiply"', "a request must be a JSON object"),
        ("null", "a request must be a JSON object"),
    ],
)
async def test_other_invalid_requests_say_what_is_wrong(dispatcher: Dispatcher, message: str, why: str) -> None:
    """Each malformed envelope is -32600 with id null and a data member naming the fault."""
    response = await answer(dispatcher, message)
    assert error_of(response, codes.INVALID_REQUEST)["data"] == why
    assert response["id"] is None


# -- parse errors, unknown methods ----------------------------------------------


@pytest.mark.parametrize("message", ['{"jsonrpc": "2.0"', "", "nul", "[1,", b"\xff\xfe", '{"a": NaN}'])
async def test_text_that_is_not_json_is_a_parse_error(dispatcher: Dispatcher, message: str | bytes) -> None:
    """Broken JSON (and bytes that are not UTF-8) is -32700 with id null."""
    response = await answer(dispatcher, message)
    assert error_of(response, codes.PARSE_ERROR)["data"]
    assert response["id"] is None


@pytest.mark.parametrize("method", ["nope", "", "rpc.nothing", "Multiply"])
async def test_an_unknown_method_is_method_not_found_naming_it(dispatcher: Dispatcher, method: str) -> None:
    """-32601 echoes the id and names the method in data."""
    response = await answer(dispatcher, request(method, [], "x"))
    assert error_of(response, codes.METHOD_NOT_FOUND)["data"] == method
    assert response["id"] == "x"


# -- invalid params ---------------------------------------------------------------


@pytest.mark.parametrize(("what", "value"), NUMBERS_ONLY, ids=[w for w, _ in NUMBERS_ONLY])
@pytest.mark.parametrize(
    ("method", "params", "name"),
    [
        ("multiply", lambda v: [v, 3], "a"),
        ("multiply", lambda v: [3, v], "b"),
        ("multiply", lambda v: {"a": 3, "b": v}, "b"),
        ("add", lambda v: [v, 3], "a"),
        ("subtract", lambda v: {"minuend": v, "subtrahend": 1}, "minuend"),
        ("divide", lambda v: [1, v], "divisor"),
        ("pow", lambda v: [v, 2], "base"),
        ("sum", lambda v: [1, 2, v], "numbers[2]"),
        ("sleep", lambda v: [v], "seconds"),
    ],
    ids=["multiply a", "multiply b", "multiply b by name", "add", "subtract by name", "divide", "pow", "sum", "sleep"],
)
async def test_numbers_only_a_wrong_type_is_invalid_params_naming_the_parameter(
    dispatcher: Dispatcher, method: str, params: Any, name: str, what: str, value: Any
) -> None:
    """A string, boolean, null, object or array where a number belongs is -32602; data names the parameter."""
    response = await answer(dispatcher, request(method, params(value), 1))
    data = error_of(response, codes.INVALID_PARAMS)["data"]
    assert data == f"parameter {name!r} must be a number, got {what}"
    assert response["id"] == 1


async def test_multiply_never_repeats_a_string(dispatcher: Dispatcher) -> None:
    """multiply("ab", 3) is an error, never "ababab" on the wire."""
    reply = await dispatcher.dispatch_async(request("multiply", ["ab", 3], 1))
    assert b"ababab" not in reply
    assert error_of(parse(reply), codes.INVALID_PARAMS)


@pytest.mark.parametrize(
    ("params", "data"),
    [
        ([3], "missing required parameter 'b'"),
        ([], "missing required parameter 'a'"),
        ({"a": 3}, "missing required parameter 'b'"),
        ([3, 4, 5], "takes at most 2 positional params, got 3"),
        ({"a": 3, "b": 4, "c": 5}, "unexpected parameter 'c'"),
    ],
)
async def test_the_wrong_number_of_params_is_invalid_params_saying_which(
    dispatcher: Dispatcher, params: Any, data: str
) -> None:
    """Missing and extra params are -32602 with data naming them."""
    response = await answer(dispatcher, request("multiply", params, 1))
    assert error_of(response, codes.INVALID_PARAMS)["data"] == data


@pytest.mark.parametrize(
    ("method", "data"),
    [("nothing", "takes no positional params, got 2"), ("one", "takes at most 1 positional param, got 2")],
)
async def test_too_many_positional_params_is_said_in_good_english(method: str, data: str) -> None:
    """A tool of no parameter, and of one: 'no positional params' and '1 positional param', not '0 ... params'."""
    registry = Registry()
    registry.add(lambda: None, name="nothing")
    registry.add(lambda a: a, name="one")
    response = await answer(Dispatcher(registry), request(method, [1, 2], 1))
    assert error_of(response, codes.INVALID_PARAMS)["data"] == data


async def test_sleep_refuses_more_than_its_documented_maximum(dispatcher: Dispatcher) -> None:
    """sleep(11) is -32602 naming 'seconds' and the cap, not an 11-second wait."""
    response = await answer(dispatcher, request("sleep", [11], 1))
    data = error_of(response, codes.INVALID_PARAMS)["data"]
    assert "'seconds'" in data and "10" in data


# -- internal errors ----------------------------------------------------------------


def _failing_registry() -> Registry:
    registry = Registry()

    @registry.tool
    def fail_sync() -> None:
        raise ValueError("secret")

    @registry.tool
    async def fail_async() -> None:
        raise ValueError("secret")

    @registry.tool(blocking=True)
    def fail_blocking() -> None:
        raise ValueError("secret")

    @registry.tool
    def unserialisable() -> object:
        return {"secret": object()}

    return registry


@pytest.mark.parametrize("method", ["fail_sync", "fail_async", "fail_blocking", "unserialisable"])
async def test_a_failing_tool_is_an_internal_error_that_leaks_nothing(
    method: str, caplog: pytest.LogCaptureFixture
) -> None:
    """-32603 with the generic message and no data; the details and the request id go to the server log."""
    dispatcher = Dispatcher(_failing_registry())
    with caplog.at_level(logging.ERROR, logger="rpc_server"):
        reply = await dispatcher.dispatch_async(request(method, None, "req-42"))
    assert b"secret" not in reply and b"Traceback" not in reply
    assert parse(reply) == {"jsonrpc": "2.0", "error": {"code": -32603, "message": "Internal error"}, "id": "req-42"}
    logged = [r for r in caplog.records if r.name == "rpc_server"]
    assert any("'req-42'" in r.getMessage() and r.exc_info for r in logged)


async def test_a_failure_s_log_line_holds_at_most_64_characters_of_the_request_id(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A client's 100 KB id is cut in the failure's log line (message and field), while the answer echoes it whole."""
    long_id = "A" * 100_000
    with caplog.at_level(logging.ERROR, logger="rpc_server"):
        reply = await Dispatcher(_failing_registry()).dispatch_async(request("fail_sync", None, long_id))
    assert parse(reply)["id"] == long_id
    [record] = [r for r in caplog.records if r.name == "rpc_server"]
    assert len(record.getMessage()) < 200 and record.request_id == "A" * 63 + "…"  # type: ignore[attr-defined]


async def test_an_internal_error_in_a_batch_spoils_only_its_own_member(caplog: pytest.LogCaptureFixture) -> None:
    """A result JSON cannot carry becomes -32603 for that member; the others keep their results."""
    registry = _failing_registry()
    registry.include(corpus_registry())
    dispatcher = Dispatcher(registry)
    batch = f"[{request('unserialisable', None, 1)},{request('add', [1, 2], 2)}]"
    with caplog.at_level(logging.CRITICAL, logger="rpc_server"):
        response = await answer(dispatcher, batch)
    assert response == [
        {"jsonrpc": "2.0", "error": {"code": -32603, "message": "Internal error"}, "id": 1},
        {"jsonrpc": "2.0", "result": 3, "id": 2},
    ]


# -- application errors, results ------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "params", "code"),
    [
        ("divide", [1, 0], codes.DIVISION_BY_ZERO),
        ("divide", [1.5, 0.0], codes.DIVISION_BY_ZERO),
        ("pow", [0, -1], codes.DIVISION_BY_ZERO),
        ("pow", [10, 10**9], codes.RESULT_TOO_LARGE),
        ("pow", [2, MAX_INT_BITS + 1], codes.RESULT_TOO_LARGE),
        ("pow", [2.0, 10000], codes.RESULT_TOO_LARGE),
        ("divide", [1e308, 1e-308], codes.NOT_FINITE),
        ("multiply", [1e308, 10], codes.NOT_FINITE),
        ("add", [1.7e308, 1.7e308], codes.NOT_FINITE),
        ("pow", [-8, 0.5], codes.NOT_FINITE),
    ],
    ids=lambda v: json.dumps(v) if not isinstance(v, int) or v < 10**6 else "big",
)
async def test_arithmetic_failures_are_application_errors_with_their_own_codes(
    dispatcher: Dispatcher, method: str, params: list[Any], code: int
) -> None:
    """Division by zero, too-large and non-finite results answer at once with 1001/1002/1003 and a reason."""
    response = await answer(dispatcher, request(method, params, 1))
    assert error_of(response, code)["data"]
    assert response["id"] == 1


async def test_a_tool_result_that_is_not_finite_is_an_application_error() -> None:
    """A user tool returning nan or inf gets 1003, never null or NaN on the wire."""
    registry = Registry()

    @registry.tool
    def nan() -> float:
        return float("nan")

    @registry.tool
    async def inf() -> float:
        return float("inf")

    dispatcher = Dispatcher(registry)
    for method in ("nan", "inf"):
        assert error_of(await answer(dispatcher, request(method, None, 1)), codes.NOT_FINITE)


@pytest.mark.parametrize("result", [[1.0, float("nan")], {"x": float("inf")}, [[float("-inf")]]], ids=repr)
async def test_a_result_with_a_non_finite_float_inside_is_an_application_error(result: Any) -> None:
    """A tool's list or object holding nan or inf is 1003, never null in its place."""
    registry = Registry()
    registry.add(lambda: result, name="odd")
    reply = await Dispatcher(registry).dispatch_async(request("odd", None, 1))
    response = parse(reply)
    assert "result" not in response, f"a non-finite float went out as {reply!r}"
    assert response["error"]["code"] == codes.NOT_FINITE


@pytest.mark.parametrize(
    ("method", "params", "text"),
    [
        ("multiply", [3, 4], b'"result":12,'),
        ("divide", [6, 3], b'"result":2,'),
        ("sum", [1, 2, 3], b'"result":6,'),
        ("subtract", [1, 3], b'"result":-2,'),
        ("multiply", [1.5, 2], b'"result":3.0,'),
        ("divide", [7, 2], b'"result":3.5,'),
        ("divide", [6.0, 3], b'"result":2.0,'),
        ("add", [1, 2.0], b'"result":3.0,'),
        ("pow", [2, -1], b'"result":0.5,'),
    ],
)
async def test_int_stays_int_otherwise_float(
    dispatcher: Dispatcher, method: str, params: list[Any], text: bytes
) -> None:
    """Integer operands give an integer result when exact; any float operand gives a float."""
    reply = await dispatcher.dispatch_async(request(method, params, 1))
    assert text in reply


@pytest.mark.parametrize(
    ("method", "params", "value"), [("pow", [2, 100], 2**100), ("multiply", [2**40, 2**40], 2**80)]
)
async def test_integer_results_beyond_64_bits_are_written_exactly(
    dispatcher: Dispatcher, method: str, params: list[Any], value: int
) -> None:
    """2**100 is written as its 31 digits, not as a float and not as an error."""
    reply = await dispatcher.dispatch_async(request(method, params, 1))
    assert f'"result":{value},'.encode() in reply


async def test_integer_params_beyond_64_bits_keep_their_precision(dispatcher: Dispatcher) -> None:
    """multiply(2**70, 3) is exactly 3 * 2**70, an integer: a JSON integer is not rounded to a float."""
    response = await answer(dispatcher, request("multiply", [2**70, 3], 1))
    assert response.get("result") == 3 * 2**70 and type(response["result"]) is int, response


async def test_plain_tools_are_answered_without_an_awaitable(dispatcher: Dispatcher) -> None:
    """dispatch() gives bytes at once for plain tools, and an awaitable only when an async tool is involved."""
    assert isinstance(dispatcher.dispatch(request("multiply", [3, 4], 1)), bytes)
    assert isinstance(dispatcher.dispatch(f"[{request('multiply', [3, 4], 1)}]"), bytes)
    pending = dispatcher.dispatch(request("sleep", [0, "v"], 1))
    assert not isinstance(pending, bytes)
    assert parse(await pending)["result"] == "v"  # type: ignore[misc]


async def test_bytes_are_accepted_as_well_as_text(dispatcher: Dispatcher) -> None:
    """The dispatcher reads UTF-8 bytes the same as str."""
    assert (await answer(dispatcher, request("multiply", [3, 4], 1).encode()))["result"] == 12


# -- batches ------------------------------------------------------------------------


async def test_an_empty_batch_is_one_invalid_request(dispatcher: Dispatcher) -> None:
    """[] is a single -32600 error object, not an array."""
    response = await answer(dispatcher, "[]")
    assert error_of(response, codes.INVALID_REQUEST)["data"]
    assert response["id"] is None


async def test_a_batch_over_the_limit_is_one_error_naming_the_limit() -> None:
    """max_batch + 1 members are refused whole with one -32600 whose data names the limit; none of them runs."""
    ran = []
    registry = Registry()

    @registry.tool
    def note(i: int) -> int:
        ran.append(i)
        return i

    dispatcher = Dispatcher(registry, max_batch=3)
    at_limit = "[" + ",".join(request("note", [i], i) for i in range(3)) + "]"
    assert [r["result"] for r in await answer(dispatcher, at_limit)] == [0, 1, 2]
    ran.clear()
    over = "[" + ",".join(request("note", [i], i) for i in range(4)) + "]"
    response = await answer(dispatcher, over)
    data = error_of(response, codes.INVALID_REQUEST)["data"]
    assert "3" in data and "4" in data
    assert response["id"] is None and ran == []


async def test_a_batch_of_notifications_gets_no_reply(dispatcher: Dispatcher) -> None:
    """Notifications only, even with async or failing members: nothing is sent."""
    batch = f"[{request('multiply', [3, 4])},{request('sleep', [0])},{request('nope')},{request('fail')}]"
    assert await dispatcher.dispatch_async(batch) is NO_REPLY


async def test_a_mixed_batch_answers_each_request_in_order() -> None:
    """Results, errors and invalid members keep the request order; notifications are left out."""
    dispatcher = Dispatcher(corpus_registry())
    batch = (
        "["
        + ",".join(
            [
                request("sleep", [0, "slow"], "s"),
                request("multiply", [3, 4]),
                '{"foo": "boo"}',
                request("multiply", [3, 4], 1),
                request("nope", [], 2),
                request("multiply", ["ab", 3], 3),
                request("divide", [1, 0], 4),
                "5",
                request("sleep", [0, "also slow"], 6.5),
            ]
        )
        + "]"
    )
    response = await answer(dispatcher, batch)
    summary = [(r["id"], r.get("result", r.get("error", {}).get("code"))) for r in response]
    assert summary == [
        ("s", "slow"),
        (None, -32600),
        (1, 12),
        (2, -32601),
        (3, -32602),
        (4, 1001),
        (None, -32600),
        (6.5, "also slow"),
    ]


async def test_batch_members_run_concurrently() -> None:
    """Every member of a batch has started before any of them finishes: each waits for all the others."""
    size = 5
    arrived: list[int] = []
    everyone = asyncio.Event()
    registry = Registry()

    @registry.tool
    async def rendezvous(i: int) -> int:
        arrived.append(i)
        if len(arrived) == size:
            everyone.set()
        await everyone.wait()
        return i

    dispatcher = Dispatcher(registry)
    batch = "[" + ",".join(request("rendezvous", [i], i) for i in range(size)) + "]"
    try:
        async with asyncio.timeout(5):
            response = await answer(dispatcher, batch)
    except TimeoutError:
        pytest.fail(f"batch members ran one after another: only {arrived} had started")
    assert [r["result"] for r in response] == list(range(size))
