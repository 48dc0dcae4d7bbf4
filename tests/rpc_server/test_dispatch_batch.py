"""The batch's fast path (issue 13) against the general one: the same answers, the same counts.

A session with no rate limit takes :meth:`Dispatcher._members`, which answers
well-formed requests for plain tools itself; a session with a rate limit that
never refuses takes :meth:`Dispatcher._request` for every member. Each batch
here is answered both ways and the two answers compared byte for byte.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest

from rpc_server import Dispatcher
from rpc_server.metrics import Calls
from rpc_server.session import Session

from .corpus import corpus_registry


class _Unlimited:
    """A rate limit that never refuses: it only turns the fast path off."""

    def take(self) -> bool:
        return True

    def retry_after(self) -> float:
        return 0.0


def _call(method: Any, params: Any = None, id: Any = ..., **extra: Any) -> dict[str, Any]:
    member: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params is not None:
        member["params"] = params
    if id is not ...:
        member["id"] = id
    return {**member, **extra}


MEMBERS: dict[str, Any] = {
    "positional": _call("multiply", [3, 4], 1),
    "named": _call("multiply", {"a": 2, "b": 5}, "x"),
    "float id": _call("multiply", [1.5, 2], 2.5),
    "null id": _call("add", [1, 2], None),
    "too few params": _call("multiply", [3], 3),
    "a string param": _call("multiply", ["a", 1], 4),
    "an infinite result": _call("multiply", [1e308, 10], 5),
    "a big integer result": _call("multiply", [2**62, 2**62], 6),
    "a tool error": _call("divide", [1, 0], 7),
    "a tool that breaks": _call("fail", [], 8),
    "no params": _call("get_data", id=9),
    "a notification": _call("multiply", [1, 2]),
    "a streamed notification": _call("multiply", [1, 2], stream=True),
    "stream asked for": _call("multiply", [1, 2], 10, stream=True),
    "jsonrpc 1.0": {"jsonrpc": "1.0", "method": "multiply", "params": [1, 2], "id": 11},
    "no jsonrpc, four members": {"method": "multiply", "params": [1, 2], "id": 12, "extra": 1},
    "a number for method": _call(7, [1, 2], 13),
    "null method": _call(None, [1, 2], 14),
    "a boolean id": _call("multiply", [1, 2], True),
    "an array id": _call("multiply", [1, 2], [1]),
    "params a string": _call("multiply", "x", 15),
    "an unknown member instead of params": {"jsonrpc": "2.0", "method": "multiply", "foo": 1, "id": 16},
    "an unknown method": _call("nope", [], 17),
    "a forbidden tool": _call("subtract", [5, 3], 18),
    "an rpc method": _call("rpc.nope", [], 19),
    "not an object": 1,
    "a string": "multiply",
    "an empty array": [],
    "an async tool": _call("sleep", [0, "slept"], 20),
}


def _batches() -> list[tuple[str, list[Any]]]:
    every = list(MEMBERS.values())
    alternating = [_call("multiply" if i % 3 else "add", [i, 2], i) for i in range(30)]
    same = [_call("multiply", [i, 7], i) for i in range(200)]
    return [
        ("every member once", every),
        ("every member once, reversed", every[::-1]),
        ("each member after a run of multiply", [m for member in every for m in (same[0], same[1], member)]),
        ("methods alternating", alternating),
        ("one method", same),
        *((f"{name}, alone", [member]) for name, member in MEMBERS.items()),
    ]


def _session(*, limited: bool) -> Session:
    session = Session()
    session.allowed = lambda method: method != "subtract"
    if limited:
        session.bucket = _Unlimited()
    return session


async def _answer(dispatcher: Dispatcher, batch: list[Any], *, limited: bool) -> bytes | None:
    return await dispatcher.dispatch_async(json.dumps(batch), _session(limited=limited))


@pytest.mark.parametrize(("name", "batch"), _batches(), ids=[name for name, _ in _batches()])
async def test_the_fast_path_answers_a_batch_byte_for_byte_as_the_general_path(
    name: str, batch: list[Any], caplog: pytest.LogCaptureFixture
) -> None:
    """Every kind of member, alone, mixed and in runs of one method, is answered identically by both paths."""
    caplog.set_level(logging.CRITICAL, "rpc_server")  # the tool that breaks logs its traceback
    dispatcher = Dispatcher(corpus_registry())
    fast = await _answer(dispatcher, batch, limited=False)
    general = await _answer(dispatcher, batch, limited=True)
    assert fast == general
    assert fast is None or json.loads(fast)  # both answered something that reads back


async def test_the_fast_path_counts_each_member_as_the_general_path_does() -> None:
    """The metrics count the same calls, methods and outcomes whichever path answered a batch."""
    batch = [m for member in MEMBERS.values() for m in (_call("multiply", [1, 2], 0), member)]

    results = []
    for limited in (False, True):
        dispatcher = Dispatcher(corpus_registry())
        calls = Calls(dispatcher.serves)
        dispatcher.observe(calls)
        await _answer(dispatcher, batch, limited=limited)
        snapshot = calls.snapshot()
        results.append({name: (entry["codes"], sum(entry["buckets"])) for name, entry in snapshot.items()})
    assert results[0] == results[1]
    # The run of one multiply before each member, and five of MEMBERS: answered with a result.
    assert results[0]["multiply"][0]["ok"] == len(MEMBERS) + 5


class _Recorder:
    """A call observer with no ``calls``: told of each member through ``call``, as the access log is."""

    def __init__(self) -> None:
        self.seen: list[tuple[Any, float]] = []

    def call(self, request: Any, outcome: dict[str, Any] | None, seconds: float) -> None:
        self.seen.append((request.get("id"), seconds))


@pytest.mark.parametrize("limited", [False, True], ids=["fast path", "general path"])
async def test_each_member_of_a_batch_is_timed_on_its_own(monkeypatch: pytest.MonkeyPatch, limited: bool) -> None:
    """A slow member counts its own time, not the batch's mean: in the histogram and for each observer."""
    now = [0.0]
    monkeypatch.setattr("rpc_server.dispatch._clock", lambda: now[0])  # time moves only when a tool says so
    registry = corpus_registry()

    @registry.tool
    def slow(x: int) -> int:
        now[0] += 7.0
        return x

    dispatcher = Dispatcher(registry)
    calls, recorder = Calls(dispatcher.serves), _Recorder()
    dispatcher.observe(calls)
    dispatcher.observe(recorder)
    batch = [_call("multiply", [1, 2], 1), _call("slow", [3], 2), _call("multiply", [2, 2], 3)]
    await _answer(dispatcher, batch, limited=limited)
    assert sorted(recorder.seen) == [(1, 0.0), (2, 7.0), (3, 0.0)]
    snapshot = calls.snapshot()
    assert snapshot["slow"]["seconds"] == 7.0 and snapshot["multiply"]["seconds"] == 0.0
    assert snapshot["multiply"]["buckets"][0] == 2
