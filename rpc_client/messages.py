"""JSON-RPC messages for the client: requests built with jsonrpcclient, answers turned into values; no I/O."""

from __future__ import annotations

import functools
import json
from collections.abc import Sequence
from typing import Any, TypeAlias

from jsonrpcclient import Error, Ok, notification, request

from .errors import ProtocolError, RpcError
from .pending import Response

__all__ = [
    "Params",
    "batch_pair",
    "cancel_message",
    "dumps",
    "message",
    "outcome_value",
    "params_from",
    "streamed_message",
    "unwrap",
]

# A call's params as JSON-RPC sends them: an array (by position), an object (by name), or none.
Params: TypeAlias = Sequence[Any] | dict[str, Any] | None

# allow_nan=False: NaN and Infinity are not JSON, and a server would read them as an error or worse.
dumps = functools.partial(json.dumps, separators=(",", ":"), allow_nan=False, ensure_ascii=False)


def params_from(args: tuple[Any, ...], kwargs: dict[str, Any]) -> Params:
    """The params of ``call(method, *args, **kwargs)``: the args, or the kwargs.

    Raises:
        TypeError: both were given.
    """
    if args and kwargs:
        raise TypeError(
            "give params by position or by name, not both: a JSON-RPC 2.0 request carries an array or an object"
        )
    return kwargs or args


def batch_pair(call: Any) -> tuple[str, Params]:
    """One ``(method, params)`` item of a batch, checked.

    Raises:
        TypeError: it is not a pair.
    """
    try:
        method, params = call
    except (TypeError, ValueError):
        raise TypeError(f"each call of a batch is a (method, params) pair, not {call!r}") from None
    return method, params


def message(method: str, params: Params, id: int | None) -> dict[str, Any]:
    """A Request object, built by jsonrpcclient; a notification when ``id`` is None.

    Raises:
        TypeError: the method is not a string, or the params not a list, tuple, dict or None.
    """
    if not isinstance(method, str):
        raise TypeError(f"method must be a string, not {type(method).__name__}")
    if params is not None and not isinstance(params, (list, tuple, dict)):
        raise TypeError(f"params must be a list, a tuple, a dict or None, not {type(params).__name__}")
    if id is None:
        return notification(method, params)  # type: ignore[arg-type]
    return request(method, params, id=id)  # type: ignore[arg-type]


def streamed_message(method: str, params: Params, id: int) -> dict[str, Any]:
    """A Request object that opts in to server push with the extra member ``"stream": true``.

    Raises:
        TypeError: as :func:`message`.
    """
    return {**message(method, params, id), "stream": True}


def cancel_message(ids: Sequence[int]) -> dict[str, Any] | list[dict[str, Any]]:
    """The ``rpc.cancel`` notification for one request id, or a batch of them for several."""
    notes = [message("rpc.cancel", {"id": id}, None) for id in ids]
    return notes[0] if len(notes) == 1 else notes


def outcome_value(outcome: Response | ProtocolError) -> Any:
    """A batch member's outcome as a value: its result, or the RpcError or ProtocolError it failed with."""
    if isinstance(outcome, Ok):
        return outcome.result
    if isinstance(outcome, Error):
        return RpcError(outcome.code, outcome.message, outcome.data)
    return outcome


def unwrap(response: Response) -> Any:
    """The result of an answer.

    Raises:
        RpcError: the answer is an error.
    """
    if isinstance(response, Ok):
        return response.result
    raise RpcError(response.code, response.message, response.data)
