"""Differential test: over the corpus, we answer as jsonrpcserver 5.0.9 does, save where the spec disagrees.

Both serve the same functions: ours through :func:`corpus_registry`, jsonrpcserver
through a methods dict of the same functions, each wrapped to return ``Success``.
Answers are compared per response on (id, result) or (id, error code), with the
JSON type of each kept (``2`` is not ``2.0``). The cases where they differ on
purpose are listed in :data:`DISAGREEMENTS`, each with the specification section
that decides it and jsonrpcserver's answer, so the list cannot go stale: a listed
case on which the two agree fails too.
"""

from __future__ import annotations

import functools
import inspect
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jsonrpcserver
import pytest
from jsonrpcserver import Success

from rpc_server import Dispatcher, builtin_tools, codes

from .corpus import CASES, MAX_BATCH, SPEC_METHODS, Case, corpus_registry, fail

Summary = Any  # None | tuple | list[tuple]


def _as_jsonrpcserver_method(fn: Callable[..., Any]) -> Callable[..., Any]:
    """jsonrpcserver's async dispatch awaits every method and wants a Result back."""

    @functools.wraps(fn)  # keeps the signature, which jsonrpcserver binds params against
    async def method(*args: Any, **kwargs: Any) -> Any:
        result = fn(*args, **kwargs)
        if inspect.isawaitable(result):
            result = await result
        return Success(result)

    return method


BUILTIN_FUNCTIONS = {name: tool.fn for name, tool in builtin_tools().items()}
REFERENCE_METHODS = {
    name: _as_jsonrpcserver_method(fn) for name, fn in {**BUILTIN_FUNCTIONS, **SPEC_METHODS, "fail": fail}.items()
}


def summarise(text: str | bytes | None) -> Summary:
    """Per response: (id as JSON, "result", result as JSON) or (id as JSON, "error", code); None for silence."""
    if not text:
        return None
    data = json.loads(text)

    def one(response: dict[str, Any]) -> tuple[Any, ...]:
        id = json.dumps(response["id"])
        if "error" in response:
            return (id, "error", response["error"]["code"])
        return (id, "result", json.dumps(response["result"], sort_keys=True))

    return [one(r) for r in data] if isinstance(data, list) else one(data)


@dataclass(frozen=True, slots=True)
class Disagreement:
    """Why the two answers differ, and what jsonrpcserver answers."""

    why: str
    theirs: Summary


_WHOLE_BATCH_REFUSED = ("null", "error", -32600)

_BATCH = (
    "Spec 6 and 7.9-7.11: a batch is answered member by member, an invalid member getting its own -32600; "
    "jsonrpcserver validates the whole array against one schema and answers a single -32600 for it."
)
_TYPES = (
    "Spec 5.1 (-32602, invalid method parameters): the tool's params schema refuses this value, so we answer "
    "-32602; jsonrpcserver only binds the signature, so the call runs and its Python outcome is answered."
)

# error.data is not compared, so it is not listed: jsonrpcserver puts a failing
# tool's exception text in -32603's data, which this server never does (see
# test_dispatch.py), and the two word their other data differently.
DISAGREEMENTS: dict[str, Disagreement] = {
    "7:invalid-batch-1": Disagreement(_BATCH, _WHOLE_BATCH_REFUSED),
    "7:invalid-batch-3": Disagreement(_BATCH, _WHOLE_BATCH_REFUSED),
    "7:batch": Disagreement(_BATCH, _WHOLE_BATCH_REFUSED),
    "batch, mixed": Disagreement(_BATCH, _WHOLE_BATCH_REFUSED),
    "batch, nested": Disagreement(_BATCH, _WHOLE_BATCH_REFUSED),
    # Python's own outcomes for the wrong types: "ab" * 3 is "ababab", which the tool's own result check
    # refuses as not a number (1003); True * 3 is 3; None * 3, {} * 3 and 1 + "x" raise TypeError (-32603).
    "a string where a number belongs": Disagreement(_TYPES, ("1", "error", 1003)),
    "a string by name": Disagreement(_TYPES, ("1", "error", 1003)),
    "a boolean where a number belongs": Disagreement(_TYPES, ("1", "result", "3")),
    "null where a number belongs": Disagreement(_TYPES, ("1", "error", -32603)),
    "an object where a number belongs": Disagreement(_TYPES, ("1", "error", -32603)),
    "a string among sum's numbers": Disagreement(_TYPES, ("1", "error", -32603)),
    # asyncio.sleep(-1) returns at once; our schema says seconds >= 0.
    "a negative sleep": Disagreement(_TYPES, ("1", "result", "null")),
    "batch, every member fails differently": Disagreement(
        _TYPES + " Here multiply(null, 1) is the member concerned.",
        [("1", "error", 1001), ("2", "error", -32603), ("3", "error", -32603)],
    ),
    "NaN literal": Disagreement(
        "Spec 5.1 (-32700, invalid JSON) and section 1 (the data format is JSON, RFC 4627): NaN is not JSON; "
        "jsonrpcserver's json.loads accepts it, and multiply(NaN, 1) then fails in the tool's result check.",
        ("1", "error", 1003),
    ),
    "batch over the limit": Disagreement(
        "Not in the spec, which sets no limit: issue 2 caps a batch (here at MAX_BATCH) and answers one -32600 "
        "naming the limit; jsonrpcserver has no cap and answers every member.",
        [(str(i), "result", str(i + 1)) for i in range(MAX_BATCH + 1)],
    ),
}

# Spec 5.1 gives each standard code its message. jsonrpcserver writes -32600's as
# "Invalid request"; the specification (and this server) say "Invalid Request".
MESSAGE_DISAGREEMENTS = {codes.INVALID_REQUEST: ("Invalid Request", "Invalid request")}


@pytest.fixture(scope="module")
def ours() -> Dispatcher:
    return Dispatcher(corpus_registry(), max_batch=MAX_BATCH)


async def theirs(message: str) -> str:
    # jsonrpcserver logs every exception a method raises; the corpus raises some on purpose.
    logging.getLogger("jsonrpcserver").disabled = True
    try:
        return await jsonrpcserver.async_dispatch(message, methods=REFERENCE_METHODS)
    finally:
        logging.getLogger("jsonrpcserver").disabled = False


def test_every_disagreement_names_a_corpus_case() -> None:
    """The exception list refers only to messages that the corpus holds."""
    assert set(DISAGREEMENTS) <= {c.name for c in CASES}


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
async def test_answers_equal_jsonrpcserver_except_where_the_spec_disagrees(ours: Dispatcher, case: Case) -> None:
    """Our (id, result or error code) per response equals jsonrpcserver's, or differs exactly as listed."""
    mine = summarise(await ours.dispatch_async(case.message))
    reference = summarise(await theirs(case.message))
    listed = DISAGREEMENTS.get(case.name)
    if listed is None:
        assert mine == reference
    else:
        assert reference == listed.theirs, f"jsonrpcserver's answer changed: {reference}"
        assert mine != reference, f"listed as a disagreement, yet both answer {mine}"


async def test_standard_error_messages_match_except_where_the_spec_disagrees(ours: Dispatcher) -> None:
    """For each standard code both servers answer with, the messages agree, save -32600's capitalisation."""
    mine: dict[int, set[str]] = {}
    reference: dict[int, set[str]] = {}
    for case in CASES:
        for answers, text in ((mine, await ours.dispatch_async(case.message)), (reference, await theirs(case.message))):
            if not text:
                continue
            data = json.loads(text)
            for response in data if isinstance(data, list) else [data]:
                error = response.get("error")
                if error and -32768 <= error["code"] <= -32000:
                    answers.setdefault(error["code"], set()).add(error["message"])
    assert set(mine) == set(reference) == {-32700, -32600, -32601, -32602, -32603}
    for code in mine:
        assert mine[code] == {codes.MESSAGES[code]}
        if code in MESSAGE_DISAGREEMENTS:
            spec, theirs_ = MESSAGE_DISAGREEMENTS[code]
            assert mine[code] == {spec} and reference[code] == {theirs_}
        else:
            assert reference[code] == mine[code]
