"""Batches built call by call: ``async with client.batch() as batch:``, sent as one JSON-RPC array."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from .exchange import Entry, Exchange
from .messages import outcome_value, params_from, request_object

__all__ = ["Batch", "BatchCall"]


class BatchCall:
    """One call of a :class:`Batch`: its outcome, once the batch is answered."""

    __slots__ = ("_done", "_outcome", "method")

    def __init__(self, method: str) -> None:
        self.method = method
        self._done = False
        self._outcome: Any = None

    @property
    def done(self) -> bool:
        return self._done

    def result(self) -> Any:
        """The call's result.

        Raises:
            RpcError: the server answered this call with an error.
            ProtocolError: the server did not answer it properly.
            asyncio.InvalidStateError: the batch has not been answered.
        """
        if not self._done:
            raise asyncio.InvalidStateError(f"the batch holding {self.method!r} has not been answered")
        if isinstance(self._outcome, BaseException):
            raise self._outcome
        return self._outcome

    def _settle(self, outcome: Any) -> None:
        self._outcome = outcome
        self._done = True


class Batch:
    """Calls and notifications gathered, then sent as one JSON-RPC batch by :meth:`send`.

    Made by :meth:`Client.batch`; in an ``async with`` block it is sent when the
    block ends without an exception.
    """

    def __init__(self, exchange: Exchange, timeout: float | None = None) -> None:
        self._exchange = exchange
        self._timeout = timeout
        self._entries: list[Entry] = []
        self._calls: list[BatchCall] = []
        self._sent = False

    def call(self, method: str, *args: Any, **kwargs: Any) -> BatchCall:
        """Add a call; its :meth:`BatchCall.result` is there once the batch is answered.

        Raises:
            TypeError: params given both by position and by name.
        """
        params = params_from(args, kwargs)
        request_object(method, params, 0)  # check it now, where the mistake is
        self._entries.append((method, params, True))
        handle = BatchCall(method)
        self._calls.append(handle)
        return handle

    def notify(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Add a notification."""
        params = params_from(args, kwargs)
        request_object(method, params, None)
        self._entries.append((method, params, False))

    async def send(self) -> list[Any]:
        """Send the batch and wait for its answers; returns them as :meth:`Client.batch_call` does.

        Raises:
            RuntimeError: the batch was already sent.
        """
        if self._sent:
            raise RuntimeError("this batch was already sent")
        self._sent = True
        outcomes = await self._exchange.send_batch(self._entries, self._timeout)
        results = [outcome_value(outcome) for outcome in outcomes]
        for handle, outcome in zip(self._calls, results, strict=True):
            handle._settle(outcome)
        return results

    async def __aenter__(self) -> Batch:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            await self.send()
