"""Batches built call by call: ``async with client.batch() as batch:``, sent as one JSON-RPC array."""

from __future__ import annotations

import asyncio
from types import TracebackType
from typing import Any

from jsonrpcclient import Error, Ok

from .errors import ProtocolError
from .exchange import Exchange
from .messages import Members, check_request, outcome_from, outcome_value, params_from

__all__ = ["Batch", "BatchCall"]


class BatchCall:
    """One call of a :class:`Batch`: its outcome, once the batch is answered."""

    __slots__ = ("_at", "_batch", "method")

    def __init__(self, method: str, batch: Batch, at: int) -> None:
        self.method = method
        self._batch = batch
        self._at = at

    @property
    def done(self) -> bool:
        return self._batch._outcomes is not None

    def result(self) -> Any:
        """The call's result.

        Raises:
            RpcError: the server answered this call with an error.
            ProtocolError: the server did not answer it properly.
            asyncio.InvalidStateError: the batch has not been answered.
        """
        if self._batch._outcomes is None:
            raise asyncio.InvalidStateError(f"the batch holding {self.method!r} has not been answered")
        outcome = self._batch._value(self._at)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


class Batch:
    """Calls and notifications gathered, then sent as one JSON-RPC batch by :meth:`send`.

    Made by :meth:`Client.batch`; in an ``async with`` block it is sent when the
    block ends without an exception. Each call's answer is read when its
    :meth:`BatchCall.result` is asked for (or :meth:`send` gives them all).
    """

    def __init__(self, exchange: Exchange, timeout: float | None = None) -> None:
        self._exchange = exchange
        self._timeout = timeout
        self._members = Members()
        self._calls = 0
        self._outcomes: list[Any] | None = None  # the answers, in the order of the calls, once in
        self._sent = False

    def call(self, method: str, *args: Any, **kwargs: Any) -> BatchCall:
        """Add a call; its :meth:`BatchCall.result` is there once the batch is answered.

        Raises:
            TypeError: params given both by position and by name, or not a list or dict (nothing is added).
        """
        # Checked now, where the mistake is; the batch gives it an id when it is sent.
        params = params_from(args, kwargs) if kwargs else args
        if type(method) is not str:
            check_request(method, params)
        members = self._members
        members.methods.append(method)
        members.params.append(params)
        handle = BatchCall(method, self, self._calls)
        self._calls += 1
        return handle

    def notify(self, method: str, *args: Any, **kwargs: Any) -> None:
        """Add a notification."""
        params = params_from(args, kwargs)
        check_request(method, params)
        self._members.add(method, params, call=False)

    async def send(self) -> list[Any]:
        """Send the batch and wait for its answers; returns them as :meth:`Client.batch_call` does.

        Raises:
            RuntimeError: the batch was already sent.
        """
        await self._send()
        return [self._value(at) for at in range(self._calls)]

    async def _send(self) -> None:
        if self._sent:
            raise RuntimeError("this batch was already sent")
        self._sent = True
        self._outcomes = await self._exchange.send_batch(self._members, self._timeout, raw=True)

    def _value(self, at: int) -> Any:
        """A call's outcome as a value, read from its answer on first asking."""
        assert self._outcomes is not None
        outcome = self._outcomes[at]
        if type(outcome) is dict and "result" in outcome and "id" in outcome:
            return outcome["result"]  # a success as the server sent it: read as outcome_from() reads it
        if isinstance(outcome, ProtocolError):
            return outcome
        if isinstance(outcome, Ok | Error):  # the batch went the general way
            return outcome_value(outcome)
        return outcome_value(outcome_from(outcome))  # the member's answer as the server sent it

    async def __aenter__(self) -> Batch:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            await self._send()
