"""The correlation table on its own: no transport, no socket, only futures."""

from __future__ import annotations

import asyncio
import logging
import random

import pytest
from jsonrpcclient import Error, Ok

from rpc_client import ConnectionLost, ProtocolError
from rpc_client.messages import outcome_from
from rpc_client.pending import PendingCalls


def ok(result, id):
    return {"jsonrpc": "2.0", "result": result, "id": id}


def err(code, message, id, data=None):
    error = {"code": code, "message": message}
    if data is not None:
        error["data"] = data
    return {"jsonrpc": "2.0", "error": error, "id": id}


def test_ids_are_unique_and_start_at_one():
    """Ids count up from 1, since some servers take an id of 0 for a notification."""
    pending = PendingCalls()
    ids = [pending.next_id() for _ in range(1000)]
    assert ids[0] == 1
    assert len(set(ids)) == 1000


async def test_answers_arriving_out_of_order_go_to_their_own_callers():
    """Three answers delivered in reverse order each settle the future of their own id."""
    pending = PendingCalls()
    ids = [pending.next_id() for _ in range(3)]
    with pending.expecting(ids) as futures:
        for id in reversed(ids):
            pending.resolve(ok(id * 10, id))
        assert [f.result() for f in futures] == [Ok(10, 1), Ok(20, 2), Ok(30, 3)]
    assert len(pending) == 0


async def test_an_error_answer_is_a_value_with_code_message_and_data():
    """An error response settles its future with jsonrpcclient's Error, not an exception."""
    pending = PendingCalls()
    with pending.expecting([1]) as (future,):
        pending.resolve(err(-32601, "Method not found", 1, data="nope"))
        assert future.result() == Error(-32601, "Method not found", "nope", 1)


async def test_a_batch_array_settles_each_member_by_id(caplog):
    """A batch response in any order settles each member; a stranger in it is dropped."""
    pending = PendingCalls()
    with pending.expecting([1, 2, 3]) as futures:
        with caplog.at_level(logging.DEBUG, logger="rpc_client"):
            pending.resolve([ok("c", 3), ok("x", 99), err(1001, "Division by zero", 1), ok("b", 2)])
        assert [f.result() for f in futures] == [Error(1001, "Division by zero", None, 1), Ok("b", 2), Ok("c", 3)]
    assert "unknown or late id" in caplog.text


async def test_a_batch_array_missing_a_member_fails_that_member():
    """A member the server's batch array leaves out fails with ProtocolError instead of waiting forever."""
    pending = PendingCalls()
    with pending.expecting([1, 2]) as (first, second):
        pending.resolve([ok(1, 1)])
        assert first.result() == Ok(1, 1)
        with pytest.raises(ProtocolError, match="no answer for request id 2"):
            second.result()


async def test_unknown_ids_are_logged_at_debug_and_dropped(caplog):
    """Answers for ids never sent, of the wrong type, or for a bool id change nothing and are logged."""
    pending = PendingCalls()
    with pending.expecting([1]) as (future,):
        with caplog.at_level(logging.DEBUG, logger="rpc_client"):
            pending.resolve(ok("stranger", 42))
            pending.resolve(ok("bool", True))  # True == 1 in Python, but it is not id 1
            pending.resolve(ok("list", [1]))
            pending.resolve({"method": "event", "params": []})  # a server-sent notification
            pending.resolve("not an object")
        assert not future.done()
        assert 1 in pending
    debug = [r for r in caplog.records if r.levelno == logging.DEBUG]
    assert len(debug) == 5


async def test_an_error_with_a_null_id_is_logged_as_a_warning_and_matches_no_call(caplog):
    """An error the server could not tie to a request (id null) settles no call and is logged as a warning."""
    pending = PendingCalls()
    with pending.expecting([1]) as (future,):
        with caplog.at_level(logging.DEBUG, logger="rpc_client"):
            pending.resolve(err(-32600, "Invalid Request", None, data="a batch may hold at most 1000"))
        assert not future.done()
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert "error -32600: Invalid Request: a batch may hold at most 1000" in caplog.text


async def test_a_malformed_answer_for_a_known_id_fails_that_call():
    """An answer with neither result nor error fails its call with ProtocolError rather than leaving it waiting."""
    pending = PendingCalls()
    with pending.expecting([1]) as (future,):
        pending.resolve({"jsonrpc": "2.0", "id": 1})
        with pytest.raises(ProtocolError, match=r"request id 1 is not a JSON-RPC 2\.0 response"):
            future.result()


async def test_a_timed_out_wait_leaves_no_entry_and_its_late_answer_is_dropped(caplog):
    """When the waiter times out, its id leaves the table, and the answer that comes later is dropped."""
    pending = PendingCalls()
    id = pending.next_id()
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.01):
            with pending.expecting([id]) as (future,):
                await future
    assert id not in pending
    assert len(pending) == 0
    with caplog.at_level(logging.DEBUG, logger="rpc_client"):
        pending.resolve(ok("late", id))
    assert "unknown or late id" in caplog.text
    assert len(pending) == 0


async def test_a_cancelled_wait_leaves_no_entry():
    """Cancelling the waiting task removes its ids from the table."""
    pending = PendingCalls()
    entered = asyncio.Event()

    async def wait():
        with pending.expecting([1, 2]) as futures:
            entered.set()
            await asyncio.gather(*futures)

    task = asyncio.create_task(wait())
    async with asyncio.timeout(5):
        await entered.wait()
    assert len(pending) == 2
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(pending) == 0


async def test_fail_all_wakes_every_waiter_with_the_exception_and_empties_the_table():
    """fail_all() fails every pending future at once, single calls and batch members alike."""
    pending = PendingCalls()
    with pending.expecting([1]) as (single,), pending.expecting([2, 3]) as batch:
        pending.fail_all(ConnectionLost("the connection was lost"))
        assert len(pending) == 0
        for future in [single, *batch]:
            with pytest.raises(ConnectionLost, match="was lost"):
                future.result()


async def test_an_answer_after_fail_all_is_dropped():
    """Once fail_all() has run, an answer for one of those ids finds nothing to settle."""
    pending = PendingCalls()
    with pending.expecting([1]) as (future,):
        pending.fail_all(ConnectionLost("gone"))
        pending.resolve(ok(1, 1))
        assert isinstance(future.exception(), ConnectionLost)


async def test_registering_an_id_already_waiting_is_refused():
    """The same id cannot be awaited twice at once, so two callers never share an answer."""
    pending = PendingCalls()
    with pending.expecting([1]):
        with pytest.raises(ValueError, match="already waiting"):
            with pending.expecting([1]):
                pass
        assert 1 in pending


# -- the fast ways (expect, expect_batch) against the general one (expecting) ------------------

ANSWER_SETS = [
    # in order; out of order; an error; a member missing; a member that is not a response;
    # a notification among them; an unknown id; the answer to a member given alone.
    [{"jsonrpc": "2.0", "result": 1, "id": 1}, {"jsonrpc": "2.0", "result": 2, "id": 2}],
    [{"jsonrpc": "2.0", "result": 2, "id": 2}, {"jsonrpc": "2.0", "result": 1, "id": 1}],
    [
        {"jsonrpc": "2.0", "error": {"code": -32601, "message": "Method not found"}, "id": 1},
        {"jsonrpc": "2.0", "result": 2, "id": 2},
    ],
    [{"jsonrpc": "2.0", "result": 2, "id": 2}],
    [{"jsonrpc": "2.0", "id": 1}, {"jsonrpc": "2.0", "result": 2, "id": 2}],
    [
        {"jsonrpc": "2.0", "method": "rpc.event", "params": {"subscription": 9}},
        {"jsonrpc": "2.0", "result": 1, "id": 1},
        {"jsonrpc": "2.0", "result": 2, "id": 2},
    ],
    [
        {"jsonrpc": "2.0", "result": 0, "id": 77},
        {"jsonrpc": "2.0", "result": 1, "id": 1},
        {"jsonrpc": "2.0", "result": 2, "id": 2},
    ],
    # ids that equal ours in Python but are not: true is no id of ours; 1.0 and 2.0 are taken as 1 and 2.
    [{"jsonrpc": "2.0", "result": 1, "id": True}, {"jsonrpc": "2.0", "result": 2, "id": 2}],
    [{"jsonrpc": "2.0", "result": 1, "id": 1.0}, {"jsonrpc": "2.0", "result": 2, "id": 2.0}],
]


def _described(outcome: object) -> str:
    return f"{type(outcome).__name__}: {outcome}"


@pytest.mark.parametrize("answers", ANSWER_SETS, ids=range(len(ANSWER_SETS)))
async def test_a_batch_awaited_whole_ends_as_the_same_batch_awaited_member_by_member(answers):
    """expect_batch() gives each member the outcome that expecting() + gather gives it, for the same array."""
    slow, fast = PendingCalls(), PendingCalls()
    with slow.expecting([1, 2]) as futures:
        slow.resolve(answers)
        expected = [_described(o) for o in await asyncio.gather(*futures, return_exceptions=True)]
    future = fast.expect_batch(range(1, 3))
    fast.resolve(answers)
    assert [_described(o) for o in await future] == expected
    assert len(fast) == len(slow) == 0


@pytest.mark.parametrize("answer", [answers[-1] for answers in ANSWER_SETS], ids=range(len(ANSWER_SETS)))
async def test_a_call_awaited_by_expect_ends_as_the_same_call_awaited_by_expecting(answer):
    """expect() settles a lone call as expecting() does: the same Ok, Error or ProtocolError."""
    slow, fast = PendingCalls(), PendingCalls()
    id = answer.get("id")
    if not isinstance(id, int) or id == 77:
        id = 2
    with slow.expecting([id]) as (expected,):
        slow.resolve(answer)
        future = fast.expect(id)
        fast.resolve(answer)
        assert expected.done() == future.done()
        if expected.done():
            assert _described(expected.exception() or expected.result()) == _described(
                future.exception() or future.result()
            )
        fast.discard(id, future)
    assert len(fast) == len(slow) == 0


@pytest.mark.parametrize("answers", ANSWER_SETS, ids=range(len(ANSWER_SETS)))
async def test_a_batch_kept_raw_reads_as_the_batch_read_at_once(answers):
    """expect_batch(raw=True), each answer read by outcome_from() later, equals expect_batch() reading them at once."""
    eager, lazy = PendingCalls(), PendingCalls()
    at_once = eager.expect_batch(range(1, 3))
    kept = lazy.expect_batch(range(1, 3), raw=True)
    eager.resolve(answers)
    lazy.resolve(answers)
    read_later = [o if isinstance(o, ProtocolError) else outcome_from(o) for o in await kept]
    assert [_described(o) for o in read_later] == [_described(o) for o in await at_once]


def _random_answers(rng: random.Random, ids: range) -> list[list[object]]:
    """Arrays (one or several) a server might send for a batch of ``ids``: in order or not, lost, doubled, odd ids."""
    members: list[object] = []
    for id in ids:
        roll = rng.random()
        if roll < 0.1:
            continue  # lost
        answer: object = ok(id * 10, id) if roll < 0.7 else err(-32000, "no", id)
        if roll > 0.95:
            answer = {"jsonrpc": "2.0", "id": id}  # neither result nor error
        members.append(answer)
        if rng.random() < 0.05:
            members.append(ok(-1, id))  # the same id twice: the first answer stands
    for odd in (True, 1.0, float(ids.start + 1), "1", None, ids.stop + 5, 3.5):
        if rng.random() < 0.08:
            members.insert(rng.randrange(len(members) + 1), ok("odd", odd))
    if rng.random() < 0.05:
        members.insert(rng.randrange(len(members) + 1), "not an object")
    if rng.random() < 0.5:
        rng.shuffle(members)
    if len(members) > 1 and rng.random() < 0.2:
        cut = rng.randrange(1, len(members))
        return [members[:cut], members[cut:]]
    return [members]


@pytest.mark.parametrize("seed", range(300))
async def test_a_batch_by_range_ends_as_the_batch_by_id_whatever_the_server_sends(seed):
    """expect_batch() (ids as a range, whole arrays taken as they are) gives each member what expecting() gives it."""
    rng = random.Random(seed)
    slow, fast, lazy = PendingCalls(), PendingCalls(), PendingCalls()
    skipped = rng.choice([0, 0, 7])  # the batch's ids need not start at 1
    for table in (slow, fast, lazy):
        table.next_ids(skipped)
    count = rng.randint(1, 8)
    ids = fast.next_ids(count)
    assert lazy.next_ids(count) == slow.next_ids(count) == ids
    arrays = _random_answers(rng, ids)
    whole = fast.expect_batch(ids)
    kept = lazy.expect_batch(ids, raw=True)
    with slow.expecting(ids) as futures:
        for array in arrays:
            for table in (slow, fast, lazy):
                table.resolve(array)
        waiting = sum(not future.done() for future in futures)
        assert len(fast) == len(lazy) == len(slow) == waiting, arrays
        if waiting:  # no array touched the batch: every member waits for its timeout, either way
            assert not whole.done() and not kept.done()
            return
        expected = [_described(o) for o in await asyncio.gather(*futures, return_exceptions=True)]
    assert whole.done() and kept.done(), arrays
    assert [_described(o) for o in whole.result()] == expected
    read_later = [o if isinstance(o, ProtocolError) else outcome_from(o) for o in kept.result()]
    assert [_described(o) for o in read_later] == expected
    assert len(fast) == len(lazy) == len(slow) == 0


async def test_an_array_answering_a_whole_batch_in_order_is_taken_as_it_is():
    """The usual answer (every id of the batch, in order) becomes the raw outcomes themselves, the list unchanged."""
    pending = PendingCalls()
    ids = pending.next_ids(1000)
    future = pending.expect_batch(ids, raw=True)
    answers = [ok(i * 2, id) for i, id in enumerate(ids)]
    pending.resolve(answers)
    assert future.result() is answers
    assert len(pending) == 0 and 1 not in pending


async def test_a_lone_call_answered_inside_an_array_leaves_the_other_calls_waiting():
    """Calls of expect() share no group: an array answering one of them fails no other, as with expecting()."""
    slow, fast = PendingCalls(), PendingCalls()
    with slow.expecting([1]) as (slow_one,), slow.expecting([2]) as (slow_two,):
        slow.resolve([ok(10, 1)])
        one, two = fast.expect(1), fast.expect(2)
        fast.resolve([ok(10, 1)])
        assert (one.result(), two.done()) == (slow_one.result(), slow_two.done()) == (Ok(10, 1), False)
        assert 2 in fast and len(fast) == 1
        fast.discard(2, two)


@pytest.mark.parametrize("seed", range(20))
async def test_many_batches_waiting_at_once_each_get_their_own_answers(seed):
    """Fifty batches in flight, answered in any order, each by its array (in order or not): each gets its own."""
    rng = random.Random(seed)
    pending = PendingCalls()
    batches = []
    for _ in range(50):
        ids = pending.next_ids(rng.randint(1, 5))
        pending.next_ids(rng.choice([0, 0, 3]))  # ids given to others in between
        batches.append((ids, pending.expect_batch(ids, raw=rng.random() < 0.5)))
    with pytest.raises(ValueError, match="overlap"):
        pending.expect_batch(range(batches[10][0].start, batches[10][0].stop + 1))
    for ids, _ in rng.sample(batches, len(batches)):
        array = [ok(id * 10, id) for id in ids]
        if rng.random() < 0.5:
            rng.shuffle(array)  # the general way; in order, the array is taken whole
        pending.resolve(array if len(array) > 1 or rng.random() < 0.5 else array[0])
    for ids, future in batches:
        assert future.done()
        outcomes = [o if isinstance(o, Ok) else outcome_from(o) for o in future.result()]
        assert outcomes == [Ok(id * 10, id) for id in ids]
    assert len(pending) == 0
