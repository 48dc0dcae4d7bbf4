"""The correlation table: request ids to the futures of the calls awaiting them; no I/O.

This is the one place where answers, and what the server pushes, meet their
callers. The client draws an id (:meth:`PendingCalls.next_id`, unique for the
table's life, so per connection), registers it with
:meth:`PendingCalls.expecting` while it sends and waits, and its reader feeds
every decoded message to :meth:`PendingCalls.resolve`. Each future gets
jsonrpcclient's ``Ok`` or ``Error`` (errors as values); the caller decides
whether to raise.

- Out of order is the normal case: answers are matched by id, never by position.
- An answer with an unknown id (a late one, after its call timed out or was
  cancelled, or a duplicate) is logged at debug and dropped.
- ``expecting`` removes its ids on the way out, however the caller leaves
  (answer, timeout, cancellation, error): nothing is left behind.
- A batch's members share a group: when the server's batch array arrives
  without an answer for some member, that member fails with
  :class:`ProtocolError` rather than waiting for an answer that cannot come.
  :meth:`PendingCalls.expect_batch` waits for a whole batch on one future,
  its ids registered as one range (a future, or a table entry, per member
  cost more than the rest of a batch, issue 13); an array that answers the
  whole range in order is taken as it is, with no work per member.
- An error whose id is null (the server could not read a request) cannot be
  tied to any call by the specification's rules; it is logged as a warning and
  those calls run into their timeout.
- :meth:`PendingCalls.fail_all` wakes every waiter with one exception, when
  the connection is lost or the client is closed.

Server push (the convention is in the server's ``rpc_server/session.py``):
a message with a ``method`` is a notification, never an answer.

- ``rpc.part`` and ``rpc.progress`` carry a request id: they go to the
  :class:`Listener` of that call, if it registered one (it sent
  ``"stream": true``), before its answer, in the order they came.
- ``rpc.event`` and ``rpc.unsubscribed`` carry a subscription id. The answer
  to a call registered with ``subscription=True`` is that id; the listener is
  filed under it the moment the answer is read, so no event that follows it
  can slip past. ``rpc.unsubscribed`` is the last one a listener gets.
- Anything else (another server's own notifications, a push for a call that
  did not ask, a request from the server) is logged at debug and dropped.
- A subscribe call abandoned before its answer (cancelled, timed out) leaves
  a subscription on the server: when its answer comes, the id goes to
  ``on_orphan`` so the client can end it. So does one abandoned in the very
  loop step its answer was read, after its listener is forgotten.
"""

from __future__ import annotations

import asyncio
import bisect
import copy
import itertools
import logging
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from jsonrpcclient import Ok

from .errors import ProtocolError
from .messages import Response, outcome_from, response_from

__all__ = ["Listener", "PendingCalls", "Response", "is_id"]

logger = logging.getLogger("rpc_client")


# The notifications routed by request id, and those routed by subscription id.
_CALL_PUSH = frozenset(("rpc.part", "rpc.progress"))
_SUBSCRIPTION_PUSH = frozenset(("rpc.event", "rpc.unsubscribed"))


class Listener(Protocol):
    """Where the notifications pushed for one call or subscription go; called from the reader, must not block."""

    def push(self, method: str, params: dict[str, Any]) -> None:
        """One notification, in the order received."""

    def fail(self, exc: BaseException) -> None:
        """No more will come: the connection is gone (for subscriptions; a call's future says it)."""


@dataclass(slots=True)
class _Batch:
    """A batch awaited as a whole, its ids ``first`` to ``stop - 1``: each member's outcome in its place, one future."""

    future: asyncio.Future[list[Response | ProtocolError]]
    first: int
    stop: int
    outcomes: list[Any]  # None until answered
    left: int
    raw: bool  # keep each answer as decoded: the caller reads it (outcome_from) if and when asked

    def waits_for(self, id: Any) -> bool:
        return self.first <= id < self.stop and self.outcomes[id - self.first] is None

    def settle(self, id: int, answer: Any) -> None:
        self.outcomes[id - self.first] = (
            answer if self.raw or isinstance(answer, ProtocolError) else outcome_from(answer)
        )
        self.left -= 1
        if self.left == 0 and not self.future.done():
            self.future.set_result(self.outcomes)


@dataclass(slots=True)
class _Call:
    """A call registered by :meth:`PendingCalls.expecting`: its group, and what is pushed for it.

    A call of :meth:`PendingCalls.expect` has none of these: the table holds its future
    alone, one object fewer per call in flight for the garbage collector to walk (issue 13).
    """

    future: asyncio.Future[Response]
    group: int
    listener: Listener | None = None
    subscription: bool = False


def _future_of(call: _Call | asyncio.Future[Response]) -> asyncio.Future[Response]:
    return call.future if type(call) is _Call else call  # type: ignore[return-value]


def _key(id: Any) -> Any:
    """The table key for an id from the wire, or None when it cannot be one of ours."""
    # bool is excluded because True == 1 in Python: "id": true must not answer call 1.
    if type(id) is bool or not isinstance(id, (int, float, str)):
        return None
    if type(id) is float and id.is_integer():
        return int(id)  # 2.0 answers call 2, as it always has (a dict takes 2.0 for 2)
    return id


def is_id(value: Any) -> bool:
    """Whether a value from the wire can be a request or subscription id of ours (a string or a number)."""
    return _key(value) is not None


class PendingCalls:
    """Calls sent and not yet answered, by request id; subscriptions, by subscription id.

    Args:
        on_orphan: called with the id of a subscription whose subscribe call
            was abandoned before its answer came; nobody listens to it.
        on_unmatched_error: called with each error whose id is null, after it
            is logged: the owner may know more than the table (the CLI, which
            sent one request only, knows whose it is).
    """

    def __init__(
        self,
        on_orphan: Callable[[Any], None] | None = None,
        on_unmatched_error: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        # Ids start at 1: some servers (rpc-websockets) take an id of 0 for a notification.
        self._next = 1
        self._groups = itertools.count(1)
        self._calls: dict[Any, _Call | asyncio.Future[Response]] = {}  # a future alone for a call of expect()
        # Batches awaited whole, each a range of ids, by its first id; the first ids in order, so that the
        # batch of an id is found by bisection however many batches wait at once.
        self._batches: dict[int, _Batch] = {}
        self._firsts: list[int] = []
        self._subscriptions: dict[Any, Listener] = {}
        self._abandoned: set[Any] = set()  # subscribe calls left before their answer
        self._on_orphan = on_orphan
        self._on_unmatched_error = on_unmatched_error

    def next_id(self) -> int:
        """A new request id, never given before by this table."""
        id = self._next
        self._next = id + 1
        return id

    def next_ids(self, count: int) -> range:
        """``count`` new request ids in a row, never given before by this table."""
        first = self._next
        self._next = first + count
        return range(first, first + count)

    def __len__(self) -> int:
        return len(self._calls) + sum(batch.left for batch in self._batches.values())

    def __contains__(self, id: object) -> bool:
        return id in self._calls or self._batch_of(id) is not None

    @property
    def subscriptions(self) -> int:
        """How many subscriptions have a listener."""
        return len(self._subscriptions)

    def expect(self, id: int, future: asyncio.Future[Response] | None = None) -> asyncio.Future[Response]:
        """Register one plain call (no listener) and give the future of its answer: the fast way of :meth:`expecting`.

        The caller must :meth:`discard` it however it leaves without the answer.

        Args:
            future: where the answer goes, if not a new future of the running loop: anything
                with a future's ``done``, ``cancelled``, ``exception``, ``set_result`` and
                ``set_exception`` (the blocking facade's :class:`~rpc_client.sharedloop.Answer`).

        Raises:
            ValueError: the id is already waiting for its answer.
        """
        calls = self._calls
        if id in calls or (self._batches and self._batch_of(id) is not None):
            raise ValueError(f"request id {id!r} is already waiting for its answer")
        if future is None:
            future = asyncio.get_running_loop().create_future()
        calls[id] = future
        return future

    def discard(self, id: int, future: asyncio.Future[Response]) -> bool:
        """Forget a call of :meth:`expect` left before its answer; False if it was no longer waiting."""
        call = self._calls.get(id)
        if call is None or _future_of(call) is not future:
            return False
        del self._calls[id]
        return True

    def expect_batch(self, ids: range, *, raw: bool = False) -> asyncio.Future[list[Response | ProtocolError]]:
        """Register a batch's request ids, a range of them; give one future of their outcomes, in their order.

        An outcome is the member's answer (``Ok`` or ``Error``), or the :class:`ProtocolError`
        it failed with (the server's array lacks it, or it is not a Response object); with
        ``raw``, the answer as decoded, for :func:`~rpc_client.messages.outcome_from` to read
        when asked (a batch's results are mostly never all read one by one). The caller must
        :meth:`discard_batch` it however it leaves without the outcomes.

        Raises:
            ValueError: the range is empty or not in steps of 1, or an id is already waiting for its answer.
        """
        if not ids or ids.step != 1:
            raise ValueError(f"a batch's ids are a range of at least one id in steps of 1, not {ids!r}")
        firsts = self._firsts
        at = bisect.bisect_left(firsts, ids.start)
        for neighbour in firsts[max(at - 1, 0) : at + 1]:  # only these two can overlap: the ranges do not
            batch = self._batches[neighbour]
            if batch.first < ids.stop and ids.start < batch.stop:
                raise ValueError(f"request ids {ids!r} overlap a batch already waiting for its answers")
        calls = self._calls
        # Whichever is shorter is walked: the batch's ids, or the calls in flight.
        for id in ids if len(ids) <= len(calls) else [id for id in calls if id in ids]:
            if id in calls:
                raise ValueError(f"request id {id!r} is already waiting for its answer")
        future: asyncio.Future[list[Response | ProtocolError]] = asyncio.get_running_loop().create_future()
        self._batches[ids.start] = _Batch(future, ids.start, ids.stop, [None] * len(ids), len(ids), raw)
        firsts.insert(at, ids.start)
        return future

    def discard_batch(self, future: asyncio.Future[Any]) -> list[int]:
        """Forget a batch of :meth:`expect_batch` left before its outcomes; give the ids still unanswered."""
        for batch in self._batches.values():
            if batch.future is future:
                self._forget_batch(batch)
                return [batch.first + at for at, outcome in enumerate(batch.outcomes) if outcome is None]
        return []

    @contextmanager
    def expecting(
        self, ids: Iterable[int], *, listener: Listener | None = None, subscription: bool = False
    ) -> Iterator[list[asyncio.Future[Response]]]:
        """Register ``ids`` (one request, or a batch's requests) for the duration of the block.

        Yields their futures, in the order of ``ids``. Must be used with a running event loop.

        Args:
            ids: the request ids.
            listener: gets what is pushed for this call (one id only), until its answer.
            subscription: the call is a subscribe: once it answers a subscription
                id, ``listener`` gets that subscription's events.

        Raises:
            ValueError: an id is already waiting for its answer, or a listener is given for several ids.
        """
        ids = list(ids)
        if (listener is not None or subscription) and len(ids) != 1:
            raise ValueError("a listener or a subscription takes exactly one request id")
        loop = asyncio.get_running_loop()
        group = next(self._groups)
        futures: list[asyncio.Future[Response]] = []
        for id in ids:
            if id in self:
                raise ValueError(f"request id {id!r} is already waiting for its answer")
        leaving_early = False
        try:
            for id in ids:
                future: asyncio.Future[Response] = loop.create_future()
                self._calls[id] = _Call(future, group, listener, subscription)
                futures.append(future)
            yield futures
        except BaseException:
            leaving_early = True  # cancelled, timed out or failed: the caller takes no answer
            raise
        finally:
            for id, future in zip(ids, futures, strict=False):
                call = self._calls.get(id)
                if call is not None and _future_of(call) is future:
                    del self._calls[id]
                    if subscription:
                        self._abandoned.add(id)
                if future.done() and not future.cancelled():
                    # Mark an exception set by fail_all() as seen, in case its waiter was cancelled
                    # at the same moment: asyncio would otherwise log "never retrieved".
                    future.exception()
                if subscription and leaving_early:
                    self._drop_unclaimed(future, listener)

    def forget(self, subscription: Any, listener: Listener | None = None) -> bool:
        """Stop routing a subscription's events (they are dropped from now on); False if it had no listener.

        Args:
            subscription: the subscription id.
            listener: forget it only if this is its listener: after a reconnect the
                same id may name another subscription, on the new connection.
        """
        filed = self._subscriptions.get(subscription)
        if filed is None or (listener is not None and filed is not listener):
            return False
        del self._subscriptions[subscription]
        return True

    def listening(self, subscription: Any) -> bool:
        """Whether a subscription still has a listener (the server has not ended it)."""
        return subscription in self._subscriptions

    def resolve(self, message: Any) -> None:
        """Hand a decoded message (a Response object, a batch's array of them, or a notification) to its callers."""
        if type(message) is dict and "method" not in message:  # an answer: the usual message, first
            self._resolve_one(message)
        elif isinstance(message, list):
            if self._batches and self._whole_batch(message):
                return
            groups: set[int] = set()
            touched: list[_Batch] = []
            for item in message:
                if type(item) is dict and self._batches:
                    key = _key(item.get("id"))
                    batch = self._batch_of(key) if key is not None else None
                    if batch is not None:
                        batch.settle(key, item)
                        if batch not in touched:
                            touched.append(batch)
                        continue
                if _is_notification(item):
                    self._route(item)
                    continue
                group = self._resolve_one(item)
                if group is not None:
                    groups.add(group)
            if groups:
                self._fail_unanswered(groups)
            for batch in touched:
                if batch.left:
                    self._fail_batch_members(batch)
                self._forget_batch(batch)
        elif _is_notification(message):
            self._route(message)
        else:
            self._resolve_one(message)

    def fail_answered(self, id: Any, exc: ProtocolError) -> None:
        """Fail the call (or batch member) whose answer came but cannot be read, with ``exc``; others are untouched."""
        key = _key(id)
        if key is None:
            return
        call = self._calls.pop(key, None)
        if call is not None:
            future = _future_of(call)
            if not future.done():
                future.set_exception(exc)
            return
        batch = self._batch_of(key) if self._batches else None
        if batch is not None:
            batch.settle(key, exc)
            if not batch.left:
                self._forget_batch(batch)

    def fail_all(self, exc: BaseException) -> None:
        """Fail every pending call and subscription with (a copy of) ``exc`` and empty the tables."""
        calls, self._calls = self._calls, {}
        for call in calls.values():
            future = _future_of(call)
            if not future.done():
                # A copy each: one instance raised in many tasks would pile up all their tracebacks.
                future.set_exception(copy.copy(exc))
        batches, self._batches, self._firsts = self._batches, {}, []
        for batch in batches.values():
            if not batch.future.done():
                batch.future.set_exception(copy.copy(exc))
        subscriptions, self._subscriptions = self._subscriptions, {}
        for listener in subscriptions.values():
            listener.fail(copy.copy(exc))
        self._abandoned.clear()  # their answers will never come now

    # -- internals -------------------------------------------------------------

    def _resolve_one(self, obj: Any) -> int | None:
        """Settle the call that ``obj`` answers; return that call's group, or None if none."""
        if type(obj) is dict:
            id = obj.get("id")
            key = id if type(id) is int else _key(id)
        else:
            key = None
        call = self._calls.pop(key, None) if key is not None else None
        if call is None:
            batch = self._batch_of(key) if self._batches else None
            if batch is not None:  # a member answered alone, not in an array
                batch.settle(key, obj)  # type: ignore[arg-type]  # an int: _batch_of() found it
                if not batch.left:
                    self._forget_batch(batch)
                return None
            if key in self._abandoned:
                self._orphaned(key, obj)
            else:
                self._drop(obj)
            return None
        future: asyncio.Future[Response]
        group: int | None
        if type(call) is _Call:
            future, group = call.future, call.group
        else:  # a call of expect(): no group, nothing pushed
            future, group = call, None  # type: ignore[assignment]
        if future.done():  # its waiter is leaving; expecting() cleans up
            if type(call) is _Call and call.subscription:
                self._orphaned(key, obj)
            return group
        try:
            # A success, the usual answer, read here (one call less); anything else as response_from() reads it.
            response = Ok(obj["result"], id) if "result" in obj else response_from(obj)
        except (KeyError, TypeError, AttributeError):
            future.set_exception(
                ProtocolError(f"the answer to request id {key!r} is not a JSON-RPC 2.0 response: {_short(obj)}")
            )
        else:
            if type(call) is _Call and call.subscription and call.listener is not None and isinstance(response, Ok):
                subscription = _key(response.result)
                if subscription is not None:
                    # Filed now, before the reader reads on: the first event may be the very next message.
                    self._subscriptions[subscription] = call.listener
            future.set_result(response)
        return group

    def _drop_unclaimed(self, future: asyncio.Future[Response], listener: Listener | None) -> None:
        """A subscribe answered in the very step its waiter left: nobody will take the id, so end it."""
        if not future.done() or future.cancelled() or future.exception() is not None:
            return
        response = future.result()
        subscription = _key(response.result) if isinstance(response, Ok) else None
        if subscription is None:
            return
        if listener is not None and not self.forget(subscription, listener):
            return  # already ended by the server
        logger.debug("subscribe call abandoned as its answer came; ending subscription %r", subscription)
        if self._on_orphan is not None:
            self._on_orphan(subscription)

    def _orphaned(self, key: Any, obj: Any) -> None:
        """The answer to a subscribe call nobody waits for any more: hand its subscription id to on_orphan."""
        self._abandoned.discard(key)
        subscription = _key(obj.get("result")) if isinstance(obj, dict) else None
        logger.debug("the answer to abandoned subscribe call %r came: %s", key, _short(obj))
        if subscription is not None and self._on_orphan is not None:
            self._on_orphan(subscription)

    def _route(self, obj: dict[str, Any]) -> None:
        """Hand a notification from the server to the listener it names, or drop it."""
        method, params = obj.get("method"), obj.get("params")
        listener: Listener | None = None
        if "id" in obj or not isinstance(params, dict):
            pass  # a request to us (we serve none), or not a push of ours
        elif method in _CALL_PUSH:
            call = self._calls.get(_key(params.get("id")))
            if type(call) is _Call and not call.future.done():
                listener = call.listener
        elif method in _SUBSCRIPTION_PUSH:
            key = _key(params.get("subscription"))
            listener = self._subscriptions.get(key)
            if listener is not None and method == "rpc.unsubscribed":
                del self._subscriptions[key]
        if listener is None:
            logger.debug("dropping a notification nobody listens to: %s", _short(obj))
            return
        listener.push(method, params)  # type: ignore[arg-type]

    def _batch_of(self, key: Any) -> _Batch | None:
        """The batch still waiting for the answer to request id ``key`` (a table key, see _key), if any."""
        if type(key) is not int:  # a string: no id of a batch's
            return None
        firsts = self._firsts
        at = bisect.bisect_right(firsts, key) - 1
        if at < 0:
            return None
        batch = self._batches[firsts[at]]
        return batch if batch.waits_for(key) else None

    def _forget_batch(self, batch: _Batch) -> None:
        del self._batches[batch.first]
        self._firsts.remove(batch.first)

    def _whole_batch(self, message: list[Any]) -> bool:
        """Take an array that answers one whole batch, each id in order, as the outcomes; False if it is not one.

        The usual case, and O(1) in Python: the ids are read by one comprehension and
        compared with the batch's range at C speed; the answers stay as decoded.
        """
        try:
            ids = [item["id"] for item in message]  # type: ignore[index]
        except (TypeError, KeyError, IndexError):
            return False  # a member that is not a Response object, a notification...
        if not ids:
            return False
        first = ids[0]
        # The first must be an int ("id": true equals 1, and is no id of ours); the others, equal to 2 and up, are
        # ints or integral floats, which the general way takes too.
        if type(first) is not int:
            return False
        batch = self._batches.get(first)
        if batch is None or not batch.left == len(batch.outcomes) == len(ids):
            return False
        if ids != list(range(batch.first, batch.stop)):
            return False
        self._forget_batch(batch)
        outcomes = message if batch.raw else [outcome_from(item) for item in message]
        batch.outcomes, batch.left = outcomes, 0
        if not batch.future.done():
            batch.future.set_result(outcomes)
        return True

    def _fail_batch_members(self, batch: _Batch) -> None:
        """The server's array came without answers for some of the batch's members: they fail."""
        for at, outcome in enumerate(batch.outcomes):
            if outcome is None:
                member = batch.first + at
                missing = ProtocolError(f"the server's batch response has no answer for request id {member!r}")
                batch.settle(member, missing)

    def _fail_unanswered(self, groups: set[int]) -> None:
        for id, call in list(self._calls.items()):
            if type(call) is _Call and call.group in groups:
                del self._calls[id]
                if not call.future.done():
                    call.future.set_exception(
                        ProtocolError(f"the server's batch response has no answer for request id {id!r}")
                    )

    def _drop(self, obj: Any) -> None:
        if isinstance(obj, dict) and obj.get("id", 0) is None and isinstance(obj.get("error"), dict):
            error = obj["error"]
            logger.warning(
                "the server could not read a message and no call can be matched to its answer: error %s: %s%s",
                error.get("code"),
                error.get("message"),
                "" if error.get("data") is None else f": {error['data']}",
            )
            if self._on_unmatched_error is not None:
                self._on_unmatched_error(obj)
            return
        logger.debug("dropping a message for no pending call (unknown or late id): %s", _short(obj))


def _is_notification(obj: Any) -> bool:
    # A Response object never has a "method"; whatever has one is the server speaking first.
    return isinstance(obj, dict) and "method" in obj


def _short(obj: Any, limit: int = 200) -> str:
    text = repr(obj)
    return text if len(text) <= limit else text[: limit - 3] + "..."
