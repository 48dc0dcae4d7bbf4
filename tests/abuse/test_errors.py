"""Deep values and what error texts say (issue 9, defects 7 and 8).

Before: values nested 978 to 1,023 deep were read but could not be written
back (-32603, and a traceback logged per call: a 1 MiB batch of them wrote
31,000 log lines); ``10**100000`` as a param answered with Python's "use
sys.set_int_max_str_digits()"; ``1e400`` repeated its position twice. The
suite's conftest fails any test here that logs a traceback.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
import pytest
from websockets.asyncio.client import connect

from rpc_server import Dispatcher, builtin_tools, codes, protocol
from rpc_server.session import Session

from ..rpc_server.corpus import deep_tools
from .harness import WAIT, call, request

# Python internals, and the standard library's way of saying where: none belongs in an answer.
INTERNALS = ("sys.", "set_int_max_str_digits", "Python", "Traceback", "(char 0): line", "RecursionError")


def parsed(reply: bytes | None) -> Any:
    assert reply is not None
    return orjson.loads(reply)


async def test_values_as_deep_as_the_parser_reads_are_echoed_back_with_nothing_logged(server: Any) -> None:
    """sleep(0, v) for v nested 978 to 1,021 deep, in one batch: every value comes back exactly."""
    depths = [978, 990, 1000, 1010, 1021]
    members = [request("sleep", [0, orjson.Fragment(("[" * d + "]" * d).encode())], d) for d in depths]
    async with connect(server.url) as ws:
        await ws.send("[" + ",".join(members) + "]")
        async with asyncio.timeout(WAIT):
            answer = await ws.recv()
        expected = ",".join(f'{{"jsonrpc":"2.0","result":{"[" * d + "]" * d},"id":{d}}}' for d in depths)
        assert answer == "[" + expected + "]"
        assert (await call(ws, "multiply", [6, 7]))["result"] == 42


TOO_DEEP = {
    "code": codes.INTERNAL_ERROR,
    "message": "Internal error",
    "data": f"the answer would be nested more than {protocol.MAX_DEPTH} levels deep",
}


async def test_a_result_deeper_than_the_parser_reads_is_answered_32603_and_the_server_goes_on(
    start_server: Any, caplog: pytest.LogCaptureFixture
) -> None:
    """deep(1100) alone, in a batch, gathered from a generator and in the seed's shape: -32603 naming the depth."""
    server = await start_server(deep_tools())
    async with connect(server.url) as ws:
        assert (await call(ws, "deep", [1100], 1))["error"] == TOO_DEEP
        await ws.send("[" + request("deep", [1100], 2) + "," + request("multiply", [6, 7], 3) + "]")
        async with asyncio.timeout(WAIT):
            batch = orjson.loads(await ws.recv())
        assert batch == [{"jsonrpc": "2.0", "error": TOO_DEEP, "id": 2}, {"jsonrpc": "2.0", "result": 42, "id": 3}]
        assert (await call(ws, "deep_parts", [1100], 4))["error"] == TOO_DEEP
        await ws.send(orjson.dumps({"func": "deep", "args": [1100]}).decode())
        async with asyncio.timeout(WAIT):
            assert orjson.loads(await ws.recv()) == {"error": f"Internal error: {TOO_DEEP['data']}"}
        # As deep as can be read back: written, and the connection still serves.
        answer = await call(ws, "deep", [protocol.MAX_DEPTH - 2], 5)
        assert answer["id"] == 5 and "result" in answer
        assert (await call(ws, "multiply", [6, 7], 6))["result"] == 42
    warnings = [r.getMessage() for r in caplog.records if "nested more than" in r.getMessage()]
    assert len(warnings) == 4 and "request id 1" in warnings[0], warnings


def test_deeper_than_the_parser_reads_is_a_parse_error_naming_the_depth() -> None:
    """1,025 levels: -32700 "nested more than 1024 levels deep"."""
    reply = parsed(Dispatcher(builtin_tools()).dispatch("[" * 1025 + "]" * 1025))
    assert reply["error"] == {
        "code": codes.PARSE_ERROR,
        "message": "Parse error",
        "data": f"nested more than {protocol.MAX_DEPTH} levels deep",
    }


@pytest.mark.parametrize(
    ("message", "data"),
    [
        (
            '{"jsonrpc":"2.0","method":"add","params":[1' + "0" * 100000 + ',1],"id":1}',
            "an integer of 100001 digits is longer than the 4300 digits read",
        ),
        ('{"jsonrpc":"2.0","method":"add","params":[1e400,1],"id":1}', "the number 1e400 is too large"),
        ('{"jsonrpc":"2.0","method":"add","params":[-1e99999,1],"id":1}', "the number -1e99999 is too large"),
        ("[1," + "[" * 1100 + "]" * 1100 + ", 1e400]", "nested"),
    ],
    ids=["10**100000", "1e400", "-1e99999", "deep-and-huge"],
)
def test_numbers_json_cannot_hold_exactly_are_refused_in_our_words(message: str, data: str) -> None:
    """-32700 with a sentence of ours: no Python internals, the position said at most once."""
    error = parsed(Dispatcher(builtin_tools()).dispatch(message))["error"]
    assert error["code"] == codes.PARSE_ERROR
    assert error["data"].startswith(data), error["data"]
    assert not any(word in error["data"] for word in INTERNALS), error["data"]
    assert error["data"].count("line ") <= 1


BAD_INPUTS = [
    "",
    "{",
    "[1,]",
    '"\\ud800"',
    '{"a": NaN}',
    "Infinity",
    "\x00",
    '{"jsonrpc":"2.0","method":"sum","params":[' + "9" * 5000 + "],",
    '{"jsonrpc":"2.0","method":"sum","params":[' + "9" * 5000 + '],"id":1}',
    '{"jsonrpc":"2.0","method":"pow","params":[10,100000],"id":1}',
    '{"jsonrpc":"2.0","method":"multiply","params":[1e308,10],"id":1}',
    '{"jsonrpc":"2.0","method":"divide","params":[1e308,1e-308],"id":1}',
    '{"jsonrpc":"2.0","method":"sleep","params":[0, 1e400],"id":1}',
    '{"func": "pow", "args": [2, 100000]}',
    '{"func": "nope"}',
    "[" + ",".join(['{"jsonrpc":"2.0","method":"sum","params":[1e999],"id":1}'] * 3) + "]",
]


@pytest.mark.parametrize("message", BAD_INPUTS)
async def test_no_answer_to_bad_input_names_python_internals(message: str) -> None:
    """Malformed JSON, huge numbers, overflowing results, the seed's shape: the answers speak our language."""
    reply = await Dispatcher(builtin_tools()).dispatch_async(message, Session())
    text = reply.decode() if reply is not None else ""
    assert not any(word in text for word in INTERNALS), text[:500]
