"""The correlation table: request ids to the futures of the calls awaiting them; no I/O.

This is the one place where answers meet their callers. The client draws an id
(:meth:`PendingCalls.next_id`, unique for the table's life, so per connection),
registers it with :meth:`PendingCalls.expecting` while it sends and waits, and
its reader feeds every decoded message to :meth:`PendingCalls.resolve`. Each
future gets jsonrpcclient's ``Ok`` or ``Error`` (errors as values); the caller
decides whether to raise.

- Out of order is the normal case: answers are matched by id, never by position.
- An answer with an unknown id (a late one, after its call timed out or was
  cancelled, or a duplicate) is logged at debug and dropped.
- ``expecting`` removes its ids on the way out, however the caller leaves
  (answer, timeout, cancellation, error): nothing is left behind.
- A batch's members share a group: when the server's batch array arrives
  without an answer for some member, that member fails with
  :class:`ProtocolError` rather than waiting for an answer that cannot come.
- An error whose id is null (the server could not read a request) cannot be
  tied to any call by the specification's rules; it is logged as a warning and
  those calls run into their timeout.
- :meth:`PendingCalls.fail_all` wakes every waiter with one exception, when
  the connection is lost or the client is closed.
"""

from __future__ import annotations

import asyncio
import copy
import itertools
import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeAlias

from jsonrpcclient import Error, Ok, parse

from .errors import ProtocolError

__all__ = ["PendingCalls", "Response"]

logger = logging.getLogger("rpc_client")

Response: TypeAlias = Ok | Error


@dataclass(slots=True)
class _Call:
    future: asyncio.Future[Response]
    group: int


def _key(id: Any) -> Any:
    """The table key for an id from the wire, or None when it cannot be one of ours."""
    # bool is excluded because True == 1 in Python: "id": true must not answer call 1.
    if type(id) is bool or not isinstance(id, (int, float, str)):
        return None
    return id


class PendingCalls:
    """Calls sent and not yet answered, by request id."""

    def __init__(self) -> None:
        # Ids start at 1: some servers (rpc-websockets) take an id of 0 for a notification.
        self._ids = itertools.count(1)
        self._groups = itertools.count(1)
        self._calls: dict[Any, _Call] = {}

    def next_id(self) -> int:
        """A new request id, never given before by this table."""
        return next(self._ids)

    def __len__(self) -> int:
        return len(self._calls)

    def __contains__(self, id: object) -> bool:
        return id in self._calls

    @contextmanager
    def expecting(self, ids: Iterable[int]) -> Iterator[list[asyncio.Future[Response]]]:
        """Register ``ids`` (one request, or a batch's requests) for the duration of the block.

        Yields their futures, in the order of ``ids``. Must be used with a running event loop.

        Raises:
            ValueError: an id is already waiting for its answer.
        """
        ids = list(ids)
        loop = asyncio.get_running_loop()
        group = next(self._groups)
        futures: list[asyncio.Future[Response]] = []
        for id in ids:
            if id in self._calls:
                raise ValueError(f"request id {id!r} is already waiting for its answer")
        try:
            for id in ids:
                future: asyncio.Future[Response] = loop.create_future()
                self._calls[id] = _Call(future, group)
                futures.append(future)
            yield futures
        finally:
            for id, future in zip(ids, futures, strict=False):
                call = self._calls.get(id)
                if call is not None and call.future is future:
                    del self._calls[id]
                if future.done() and not future.cancelled():
                    # Mark an exception set by fail_all() as seen, in case its waiter was cancelled
                    # at the same moment: asyncio would otherwise log "never retrieved".
                    future.exception()

    def resolve(self, message: Any) -> None:
        """Hand a decoded message (a Response object, or a batch's array of them) to its callers."""
        if isinstance(message, list):
            groups: set[int] = set()
            for item in message:
                group = self._resolve_one(item)
                if group is not None:
                    groups.add(group)
            if groups:
                self._fail_unanswered(groups)
        else:
            self._resolve_one(message)

    def fail_all(self, exc: BaseException) -> None:
        """Fail every pending call with (a copy of) ``exc`` and empty the table."""
        calls, self._calls = self._calls, {}
        for call in calls.values():
            if not call.future.done():
                # A copy each: one instance raised in many tasks would pile up all their tracebacks.
                call.future.set_exception(copy.copy(exc))

    # -- internals -------------------------------------------------------------

    def _resolve_one(self, obj: Any) -> int | None:
        """Settle the call that ``obj`` answers; return that call's group, or None if none."""
        key = _key(obj.get("id")) if isinstance(obj, dict) else None
        call = self._calls.pop(key, None) if key is not None else None
        if call is None:
            self._drop(obj)
            return None
        if call.future.done():  # its waiter is leaving; expecting() cleans up
            return call.group
        try:
            response = parse(obj)
        except (KeyError, TypeError, AttributeError):
            call.future.set_exception(
                ProtocolError(f"the answer to request id {key!r} is not a JSON-RPC 2.0 response: {_short(obj)}")
            )
        else:
            call.future.set_result(response)  # type: ignore[arg-type]
        return call.group

    def _fail_unanswered(self, groups: set[int]) -> None:
        for id, call in list(self._calls.items()):
            if call.group in groups:
                del self._calls[id]
                if not call.future.done():
                    call.future.set_exception(
                        ProtocolError(f"the server's batch response has no answer for request id {id!r}")
                    )

    @staticmethod
    def _drop(obj: Any) -> None:
        if isinstance(obj, dict) and obj.get("id", 0) is None and isinstance(obj.get("error"), dict):
            error = obj["error"]
            logger.warning(
                "the server could not read a message and no call can be matched to its answer: error %s: %s%s",
                error.get("code"),
                error.get("message"),
                "" if error.get("data") is None else f": {error['data']}",
            )
            return
        logger.debug("dropping a message for no pending call (unknown or late id): %s", _short(obj))


def _short(obj: Any, limit: int = 200) -> str:
    text = repr(obj)
    return text if len(text) <= limit else text[: limit - 3] + "..."
