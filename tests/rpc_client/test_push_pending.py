"""Routing what the server pushes, on its own: the correlation table and the inbox, no transport at all."""

from __future__ import annotations

import asyncio
import logging

import pytest
from jsonrpcclient import Ok

from rpc_client import ConnectionLost, ProtocolError
from rpc_client.pending import PendingCalls
from rpc_client.push import Inbox, Progress

TIMEOUT = 5


def ok(result, id):
    return {"jsonrpc": "2.0", "result": result, "id": id}


def note(method, **params):
    return {"jsonrpc": "2.0", "method": method, "params": params}


class Recorder:
    """A Listener that keeps what it is given."""

    def __init__(self):
        self.pushed = []
        self.failed = None

    def push(self, method, params):
        self.pushed.append((method, params))

    def fail(self, exc):
        self.failed = exc


async def test_parts_and_progress_reach_the_listener_of_their_call_in_order():
    """rpc.part and rpc.progress carrying a call's id go to that call's listener, in order, before its answer."""
    pending = PendingCalls()
    mine, other = Recorder(), Recorder()
    with pending.expecting([1], listener=mine) as (future,), pending.expecting([2], listener=other):
        pending.resolve(note("rpc.part", id=1, value="a"))
        pending.resolve(note("rpc.progress", id=1, done=1, total=2, message=None))
        pending.resolve(note("rpc.part", id=2, value="other"))
        pending.resolve(note("rpc.part", id=1, value="b"))
        pending.resolve(ok(2, 1))
        assert future.result() == Ok(2, 1)
    assert [m for m, _ in mine.pushed] == ["rpc.part", "rpc.progress", "rpc.part"]
    assert [p.get("value") for _, p in mine.pushed] == ["a", None, "b"]
    assert other.pushed == [("rpc.part", {"id": 2, "value": "other"})]


async def test_pushes_for_a_call_without_a_listener_or_for_no_call_are_dropped_at_debug(caplog):
    """A push for a call that did not opt in, for an unknown id, or of an unknown method is logged and dropped."""
    pending = PendingCalls()
    with caplog.at_level(logging.DEBUG, logger="rpc_client"), pending.expecting([1]) as (future,):
        pending.resolve(note("rpc.part", id=1, value="unasked"))
        pending.resolve(note("rpc.progress", id=99, done=1))
        pending.resolve(note("someone.elses", anything=True))
        pending.resolve({"jsonrpc": "2.0", "method": "ping", "id": 1})  # a request to us, not the answer to 1
        assert not future.done()
        pending.resolve(ok("answer", 1))
        assert future.result() == Ok("answer", 1)
    assert caplog.text.count("dropping a notification nobody listens to") == 4


async def test_a_subscription_is_filed_when_its_answer_is_read_so_the_next_event_is_not_lost():
    """The events that follow the subscribe answer at once reach the listener, until rpc.unsubscribed."""
    pending = PendingCalls()
    listener = Recorder()
    with pending.expecting([1], listener=listener, subscription=True) as (future,):
        # All in one go, as a reader with buffered messages would: the waiter has not run yet.
        pending.resolve(ok("s1", 1))
        pending.resolve(note("rpc.event", subscription="s1", topic="t", event=1))
        pending.resolve(note("rpc.unsubscribed", subscription="s1", reason="done"))
        pending.resolve(note("rpc.event", subscription="s1", topic="t", event=2))
    assert future.result() == Ok("s1", 1)
    assert [m for m, _ in listener.pushed] == ["rpc.event", "rpc.unsubscribed"]
    assert pending.subscriptions == 0


async def test_a_forgotten_subscription_gets_no_more_events():
    """After forget(), events for that subscription are dropped."""
    pending = PendingCalls()
    listener = Recorder()
    with pending.expecting([1], listener=listener, subscription=True):
        pending.resolve(ok(7, 1))  # a number is an id too
    assert pending.listening(7)
    assert pending.forget(7)
    pending.resolve(note("rpc.event", subscription=7, event="late"))
    assert listener.pushed == []
    assert not pending.forget(7)


async def test_losing_the_connection_fails_every_subscription_listener():
    """fail_all() reaches subscriptions as well as calls, and empties both tables."""
    pending = PendingCalls()
    listener = Recorder()
    with pending.expecting([1], listener=listener, subscription=True):
        pending.resolve(ok("s1", 1))
    pending.fail_all(ConnectionLost("gone"))
    assert isinstance(listener.failed, ConnectionLost)
    assert pending.subscriptions == 0


async def test_the_answer_to_an_abandoned_subscribe_call_is_handed_to_on_orphan():
    """A subscribe call left before its answer leaves a subscription on the server; its id goes to on_orphan."""
    orphans = []
    pending = PendingCalls(on_orphan=orphans.append)
    with pending.expecting([1], listener=Recorder(), subscription=True):
        pass  # the caller left (cancelled, timed out) before the answer
    assert len(pending) == 0
    pending.resolve(ok("s9", 1))
    pending.resolve(ok("s9", 1))  # a duplicate is not an orphan twice
    assert orphans == ["s9"]
    assert pending.subscriptions == 0


async def test_a_call_inbox_gives_everything_pushed_before_the_answer_then_none():
    """The inbox of a call hands out its items in order, and None only once the answer is in and all are taken."""
    loop = asyncio.get_running_loop()
    final = loop.create_future()
    inbox = Inbox()
    inbox.ends_with(final)
    inbox.push("rpc.part", {"value": 1})
    inbox.push("rpc.part", {"value": 2})
    final.set_result("answer")
    async with asyncio.timeout(TIMEOUT):
        assert await inbox.get() == ("rpc.part", {"value": 1})
        assert await inbox.get() == ("rpc.part", {"value": 2})
        assert await inbox.get() is None


async def test_a_full_subscription_inbox_drops_its_oldest_events_and_counts_them_in_the_next():
    """Past its limit an inbox drops the oldest event; the next one taken counts it, with the server's own drops."""
    inbox = Inbox(limit=2)
    inbox.push("rpc.event", {"event": 1, "dropped": 4})  # the server had already lost 4 before this one
    inbox.push("rpc.event", {"event": 2})
    inbox.push("rpc.event", {"event": 3})
    async with asyncio.timeout(TIMEOUT):
        assert await inbox.get() == ("rpc.event", {"event": 2, "dropped": 5})
        assert await inbox.get() == ("rpc.event", {"event": 3})


async def test_a_failed_inbox_gives_what_came_before_then_raises():
    """After fail(), the items already there are still taken, then the error is raised."""
    inbox = Inbox()
    inbox.push("rpc.event", {"event": 1})
    inbox.fail(ConnectionLost("gone"))
    async with asyncio.timeout(TIMEOUT):
        assert await inbox.get() == ("rpc.event", {"event": 1})
        with pytest.raises(ConnectionLost):
            await inbox.get()


def test_a_progress_report_needs_numbers():
    """Progress.from_params reads done/total/message and refuses a done that is not a number."""
    assert Progress.from_params({"done": 3, "total": 10, "message": "x"}) == Progress(3, 10, "x")
    assert Progress.from_params({"done": 0.5}) == Progress(0.5, None, None)
    with pytest.raises(ProtocolError, match="numbers"):
        Progress.from_params({"done": "3"})
