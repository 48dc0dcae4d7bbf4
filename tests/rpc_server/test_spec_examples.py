"""Every example of section 7 of the JSON-RPC 2.0 specification, answered exactly, with no socket."""

from __future__ import annotations

import pytest

from rpc_server import Dispatcher

from .corpus import NO_REPLY, SPEC_EXAMPLES, SpecExample, corpus_registry, parse, strip_error_data


def _example(name: str) -> SpecExample:
    return next(e for e in SPEC_EXAMPLES if e.name == name)


@pytest.fixture(scope="module")
def dispatcher() -> Dispatcher:
    return Dispatcher(corpus_registry())


@pytest.mark.parametrize("example", SPEC_EXAMPLES, ids=lambda e: e.name)
async def test_each_specification_example_is_answered_exactly(dispatcher: Dispatcher, example: SpecExample) -> None:
    """The response equals the specification's, once the optional error.data it omits is removed."""
    reply = parse(await dispatcher.dispatch_async(example.request))
    assert strip_error_data(reply) == example.response


async def test_a_batch_of_invalid_members_answers_each_one_not_the_batch(dispatcher: Dispatcher) -> None:
    """7.10: [1,2,3] is an array of three errors, each saying why its member is not a request."""
    reply = parse(await dispatcher.dispatch_async("[1,2,3]"))
    assert isinstance(reply, list) and len(reply) == 3
    for member in reply:
        assert member["id"] is None
        assert member["error"]["code"] == -32600
        assert "object" in member["error"]["data"]


async def test_the_mixed_batch_explains_its_invalid_member(dispatcher: Dispatcher) -> None:
    """7.11: the {"foo": "boo"} member's error says what is missing, and -32601 names the method."""
    reply = parse(await dispatcher.dispatch_async(_example("7:batch").request))
    assert "jsonrpc" in reply[2]["error"]["data"]
    assert reply[3]["error"]["data"] == "foo.get"


async def test_errors_carry_data_saying_what_went_wrong(dispatcher: Dispatcher) -> None:
    """Parse errors say where the text broke; invalid requests say which member is wrong."""
    parse_error = parse(await dispatcher.dispatch_async(_example("7:invalid-json").request))
    assert parse_error["error"]["code"] == -32700
    assert "column" in parse_error["error"]["data"]
    invalid = parse(await dispatcher.dispatch_async(_example("7:invalid-request").request))
    assert invalid["error"]["data"] == "method must be a string"


@pytest.mark.parametrize("example", [e for e in SPEC_EXAMPLES if e.response is NO_REPLY], ids=lambda e: e.name)
def test_notifications_of_the_specification_get_no_reply_even_before_awaiting(
    dispatcher: Dispatcher, example: SpecExample
) -> None:
    """A notification served by plain tools is silent at once: dispatch() gives None, not an awaitable."""
    assert dispatcher.dispatch(example.request) is None
