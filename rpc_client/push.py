"""What the server pushes, as values, and where it waits for its reader; no I/O.

The reader task hands each notification for a streamed call or a
subscription to that one's :class:`Inbox` (through :mod:`.pending`), without
waiting; the task that consumes the call or the subscription takes them out,
in order, at its own pace. The wire convention is the server's
(``rpc_server/session.py``): ``rpc.part``, ``rpc.progress``, ``rpc.event``
and ``rpc.unsubscribed``.
"""

from __future__ import annotations

import asyncio
import inspect
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeAlias

from .errors import ProtocolError

__all__ = ["DEFAULT_EVENT_BUFFER", "Event", "Inbox", "Progress", "ProgressCallback", "dropped_count", "report"]

# Events a subscription keeps for a consumer that is slower than the server; past it the oldest go.
DEFAULT_EVENT_BUFFER = 1000

# callback(done, total, message), plain or async.
ProgressCallback: TypeAlias = Callable[[float, float | None, str | None], Awaitable[None] | None]


@dataclass(frozen=True, slots=True)
class Progress:
    """One ``rpc.progress`` report: ``done`` of ``total`` (None when unknown), and what is being done."""

    done: float
    total: float | None = None
    message: str | None = None

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> Progress:
        """The report in a notification's params.

        Raises:
            ProtocolError: ``done`` is not a number.
        """
        done, total, message = params.get("done"), params.get("total"), params.get("message")
        if not isinstance(done, (int, float)) or isinstance(done, bool) or not (total is None or _is_number(total)):
            raise ProtocolError(f"a progress report needs numbers for done and total: {params!r:.200}")
        return cls(done, total, message if message is None else str(message))


@dataclass(frozen=True, slots=True)
class Event:
    """One event of a subscription.

    Attributes:
        data: the event itself, as the server sent it.
        topic: the topic it was published on.
        subscription: the subscription's id.
        dropped: how many events were lost just before this one, because the
            consumer fell behind (on the server's side or on this one's).
    """

    data: Any
    topic: str | None
    subscription: Any
    dropped: int = 0


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


async def report(callback: ProgressCallback | None, progress: Progress) -> None:
    """Call a progress callback, plain or async, with one report."""
    if callback is None:
        return
    outcome = callback(progress.done, progress.total, progress.message)
    if inspect.isawaitable(outcome):
        await outcome


class Inbox:
    """Notifications for one streamed call or one subscription, from the reader to their one consumer.

    A :class:`~rpc_client.pending.Listener`. For a call, :meth:`ends_with` its
    answer's future: :meth:`get` then returns None once that answer is in and
    every notification before it has been taken. With a ``limit`` (for
    subscriptions), a full inbox drops its oldest event and counts it, with
    the events the server had dropped before that one, in the ``"dropped"``
    of the next event taken.

    Args:
        limit: the most notifications kept; None keeps them all (a streamed
            call must lose no part).
    """

    def __init__(self, limit: int | None = None) -> None:
        if limit is not None and limit < 1:
            raise ValueError(f"an inbox must hold at least 1 message, not {limit}")
        self._items: deque[tuple[str, dict[str, Any]]] = deque()
        self._limit = limit
        self._lost = 0
        self._error: BaseException | None = None
        self._final: asyncio.Future[Any] | None = None
        self._waiter: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        return len(self._items)

    def push(self, method: str, params: dict[str, Any]) -> None:
        if self._limit is not None and len(self._items) >= self._limit:
            _, oldest = self._items.popleft()
            self._lost += 1 + dropped_count(oldest)
        self._items.append((method, params))
        self._wake()

    def fail(self, exc: BaseException) -> None:
        self._error = exc
        self._wake()

    def ends_with(self, final: asyncio.Future[Any]) -> None:
        """Tie this inbox to a call's answer (see the class docstring)."""
        self._final = final
        final.add_done_callback(lambda _: self._wake())

    async def get(self) -> tuple[str, dict[str, Any]] | None:
        """The next notification, as ``(method, params)``; None when the call has answered and all are taken.

        Raises:
            RpcConnectionError: the connection is gone and all that came before has been taken.
        """
        while not self._items:
            if self._error is not None:
                raise self._error
            if self._final is not None and self._final.done():
                return None
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await self._waiter
            finally:
                self._waiter = None
        method, params = self._items.popleft()
        if self._lost and method == "rpc.event":
            params = {**params, "dropped": dropped_count(params) + self._lost}
            self._lost = 0
        return method, params

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)


def dropped_count(params: dict[str, Any]) -> int:
    """The ``"dropped"`` of an event's params, 0 when absent or not a count."""
    dropped = params.get("dropped", 0)
    return dropped if type(dropped) is int and dropped > 0 else 0
