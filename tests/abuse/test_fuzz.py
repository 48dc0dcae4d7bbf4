"""Property-based fuzzing: random messages to the dispatcher, random interleavings over a socket.

Invariants, whatever comes in:

- every answer is valid JSON-RPC 2.0 (``schemas/response.json``), or the
  seed's shape (``{"result"}`` or ``{"error": text}``) for a seed message;
- every request with an id gets exactly one answer carrying that id, every
  invalid member of a batch one answer with a null id, a notification none;
- the server logs no traceback (checked by the suite's conftest);
- other connections keep being answered, and the connection fuzzed serves
  on unless the input closed it.

Examples: the ``ci`` profile (the default) runs a few thousand; ``long``
runs a hundred times more, by hand::

    HYPOTHESIS_PROFILE=long .venv/bin/pytest tests/abuse/test_fuzz.py
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from typing import Any

import fastjsonschema
from hypothesis import given, settings
from hypothesis import strategies as st
from websockets.asyncio.client import connect
from websockets.frames import Frame, Opcode

from rpc_server import Dispatcher, Limits, RpcServer, builtin_tools, protocol
from rpc_server.schema import load
from rpc_server.session import Session

from ..rpc_server.rawws import RawClient
from .harness import WAIT, call

# Compiled: jsonschema's validator cost more per example than the dispatch it checks.
valid_response = fastjsonschema.compile(load("response.json"))


def invalid(answer: Any) -> str | None:
    """Why ``answer`` is not a valid JSON-RPC 2.0 response (or batch of them), or None."""
    try:
        valid_response(answer)
    except fastjsonschema.JsonSchemaException as exc:
        return f"{exc.message}: {answer}"
    return None


EXAMPLES = settings().max_examples  # from the profile: see conftest.py
# Short: the fuzz's sleeps and slow streams end in -32002 rather than hold it up.
LIMITS = Limits(call_timeout_s=0.01, max_batch=20)
METHODS = [
    "multiply",
    "add",
    "divide",
    "pow",
    "sum",
    "subtract",
    "sleep",
    "count",
    "long_task",
    "rpc.cancel",
    "rpc.subscribe",
    "rpc.unsubscribe",
    "nope",
    "",
]

# Generating data is most of a dispatcher example's cost: short texts from a small alphabet
# (with the characters JSON must escape, and one beyond the BMP) keep it quick.
text = st.text(alphabet='ab"\\\n\x00é\U0001f600', max_size=6)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
    max_leaves=6,
)
ids = st.one_of(st.integers(min_value=-5, max_value=5), text, st.none(), st.floats(0, 5), values)


# Mostly well-formed requests to the real methods, with any params; now and then a broken envelope.
requests = st.fixed_dictionaries(
    {"jsonrpc": st.sampled_from(["2.0", "2.0", "2.0", "1.0"]), "method": st.sampled_from(METHODS) | st.just(7)},
    optional={
        "params": st.lists(values, max_size=3) | st.dictionaries(text, values, max_size=3) | values,
        "id": ids,
        "stream": st.booleans() | values,
        "extra": values,
    },
)


seed_messages = st.fixed_dictionaries(
    {"func": st.sampled_from(METHODS) | values, "args": st.lists(values, max_size=3) | values},
    optional={"id": values},
)


def dumps(value: Any) -> bytes:
    return json.dumps(value).encode()  # integers past 64 bits too


messages = st.one_of(
    requests.map(dumps),
    st.lists(requests | values, min_size=0, max_size=5).map(dumps),
    seed_messages.map(dumps),
    values.map(dumps),
    st.text(max_size=30).map(str.encode),
    st.binary(max_size=30),
)


def key(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def expected_ids(message: Any) -> Counter[str]:
    """The ids the answer must carry, each as often: one per request with an id, null per invalid member."""
    if type(message) is dict:
        items, batch = [message], False
    elif type(message) is list and 0 < len(message) <= LIMITS.max_batch:
        items, batch = message, True
    else:
        return Counter([key(None)])
    out: Counter[str] = Counter()
    for item in items:
        if protocol.request_error(item) is not None:
            out[key(None)] += 1
        elif "id" in item:
            out[key(item["id"])] += 1
    del batch
    return out


DISPATCHER = Dispatcher(builtin_tools(), limits=LIMITS)  # compiling the tools' schemas is the slow part


def check_seed_answer(message: dict[str, Any], answer: Any) -> None:
    assert type(answer) is dict
    assert ("result" in answer) != ("error" in answer), answer
    if "error" in answer:
        assert isinstance(answer["error"], str)
    if "id" in message:
        assert key(answer["id"]) == key(message["id"])


@given(message=messages)
@settings(max_examples=EXAMPLES)
async def test_every_message_gets_valid_answers_one_per_id(message: bytes) -> None:
    """Random JSON, requests and bytes to the dispatcher: valid answers, exactly one per id, no traceback."""
    async with asyncio.timeout(WAIT):
        reply = await DISPATCHER.dispatch_async(message, Session())
    try:
        sent = protocol.decode(message)  # as the server reads it
    except protocol.DecodeError:
        sent = None  # not JSON: one parse error
        assert reply is not None
    if reply is None:
        assert sent is not None and not expected_ids(sent)
        return
    answer = json.loads(reply)
    if type(sent) is dict and "func" in sent and "jsonrpc" not in sent:
        check_seed_answer(sent, answer)
        return
    problem = invalid(answer)
    assert problem is None, problem
    answers = answer if type(answer) is list else [answer]
    expected = Counter([key(None)]) if sent is None else expected_ids(sent)
    assert Counter(key(a["id"]) for a in answers) == expected


# -- over a socket ---------------------------------------------------------------------------------

quick_calls = st.one_of(
    st.tuples(st.just("multiply"), st.tuples(st.integers(-9, 9), st.integers(-9, 9)).map(list)),
    st.tuples(st.just("sleep"), st.tuples(st.sampled_from([0, 0.01, 0.03, 0.2]), st.integers()).map(list)),
    st.tuples(st.just("count"), st.tuples(st.integers(0, 5), st.just(0.01)).map(list)),
    st.tuples(st.just("divide"), st.just([1, 0])),
)
actions = st.one_of(
    st.tuples(st.just("call"), quick_calls, st.integers(0, 6), st.booleans()),
    st.tuples(st.just("notify"), quick_calls),
    st.tuples(st.just("batch"), st.lists(st.tuples(quick_calls, st.integers(0, 6)), min_size=1, max_size=4)),
    st.tuples(st.just("cancel"), st.integers(0, 6)),
    st.tuples(st.just("garbage"), st.text(max_size=30)),
    st.tuples(st.just("binary"), st.binary(max_size=10)),
    st.tuples(st.just("fragmented"), quick_calls, st.integers(0, 6)),
    st.tuples(st.just("close")),
)


def _request(call_: tuple[str, list[Any]], id: Any = None, stream: bool = False) -> str:
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": call_[0], "params": call_[1]}
    if id is not None:
        message["id"] = id
    if stream:
        message["stream"] = True
    return json.dumps(message)


@given(script=st.lists(actions, max_size=12))
@settings(max_examples=max(20, EXAMPLES // 50))
async def test_interleaved_calls_cancels_and_closes_keep_every_promise(script: list[tuple[Any, ...]]) -> None:
    """Calls, batches, cancels, garbage and closes in any order on one connection: one answer per id; others served."""
    server = RpcServer(builtin_tools(), host="127.0.0.1", port=0, limits=Limits(max_in_flight=3, max_batch=20))
    await server.start()
    try:
        async with connect(server.url) as bystander:
            client = await RawClient.connect(server.url)
            owed: Counter[Any] = Counter()
            closed = False
            for action in script:
                kind = action[0]
                if kind == "close":
                    client.abort()
                    closed = True
                    break
                if kind == "call":
                    _, call_, id, stream = action
                    client.write(client.text_frames(_request(call_, id, stream)))
                    owed[id] += 1
                elif kind == "notify":
                    client.write(client.text_frames(_request(action[1])))
                elif kind == "batch":
                    members = [_request(call_, id) for call_, id in action[1]]
                    client.write(client.text_frames("[" + ",".join(members) + "]"))
                    owed.update(id for _, id in action[1])
                elif kind == "cancel":
                    client.write(
                        client.text_frames(
                            json.dumps({"jsonrpc": "2.0", "method": "rpc.cancel", "params": [action[1]]})
                        )
                    )
                elif kind == "garbage":
                    client.write(client.text_frames(action[1]))
                    owed[None] += 1  # a parse error or an invalid request, with a null id
                    if action[1].strip():
                        try:
                            parsed = json.loads(action[1])
                        except ValueError:
                            parsed = None
                        if isinstance(parsed, list) and parsed:
                            owed[None] += len(parsed) - 1
                        elif isinstance(parsed, dict) and "func" in parsed:
                            owed[None] -= 1  # the seed's shape: answered, but not by id
                            owed["seed"] += 1
                elif kind == "binary":
                    client.writer.write(Frame(Opcode.BINARY, action[1]).serialize(mask=True))
                    owed[None] += 1
                elif kind == "fragmented":
                    text = _request(action[1], action[2]).encode()
                    half = len(text) // 2
                    client.writer.write(
                        Frame(Opcode.TEXT, text[:half], fin=False).serialize(mask=True)
                        + Frame(Opcode.CONT, text[half:]).serialize(mask=True)
                    )
                    owed[action[2]] += 1
            if not closed:
                # The last word: once it is answered, everything before it must have been too.
                client.write(client.text_frames(_request(("multiply", [1, 1]), "last")))
                got: Counter[Any] = Counter()
                async with asyncio.timeout(WAIT):
                    while got["last"] == 0 or sum(got.values()) < sum(owed.values()) + 1:
                        answer = json.loads(await client.next_text())
                        for item in answer if isinstance(answer, list) else [answer]:
                            if "method" in item:
                                continue  # pushed parts and progress: not answers
                            if "jsonrpc" not in item:
                                got["seed"] += 1
                                continue
                            problem = invalid(item)
                            assert problem is None, problem
                            got[item["id"]] += 1
                owed["last"] += 1
                assert +got == +owed
                client.abort()
            assert (await call(bystander, "multiply", [6, 7], "bystander"))["result"] == 42
    finally:
        server.close()
        async with asyncio.timeout(WAIT):
            await server.wait_closed()
