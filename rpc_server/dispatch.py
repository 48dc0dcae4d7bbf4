"""The dispatcher: one JSON-RPC message in, its response out; no I/O.

This is the call/return boundary between the transport and the tools. It
knows nothing of sockets: :meth:`Dispatcher.dispatch` takes the text of one
message and gives back the encoded response, ``None`` when nothing is to be
sent (notifications), or, when an ``async`` tool is involved, an awaitable of
either. The transport awaits that one in a task of its own; a message served
by plain tools costs no task, no gather and no reflection.

Each call runs within the connection's :class:`~.session.Session`: async
calls register there by id so ``rpc.cancel`` can reach them, and tools that
stream or report progress push through it to callers that asked
(``"stream": true``). The ``rpc.*`` methods (:mod:`.methods`) are looked up
after the user's tools, whose names cannot begin with ``rpc.``.

It also answers the seed's message shape, ``{"func": name, "args": [...]}``,
by mapping it onto the same tools (see :meth:`Dispatcher._legacy`).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Coroutine
from typing import Any, TypeAlias

import orjson
from jsonrpcserver.exceptions import JsonRpcError
from oslash.either import Left, Right  # type: ignore[import-untyped]

from . import codes, openrpc, protocol
from .config import Limits
from .context import Context
from .errors import NODATA
from .methods import protocol_methods
from .registry import RESERVED_PREFIX, Kind, Registry, Tool
from .session import Session

__all__ = ["DEFAULT_MAX_BATCH", "Dispatcher", "Reply"]

logger = logging.getLogger("rpc_server")

DEFAULT_MAX_BATCH = Limits().max_batch

# What dispatch() gives back: bytes to send, None for silence, or an awaitable of either.
Reply: TypeAlias = bytes | Awaitable[bytes | None] | None
# What one request becomes: a Response object, None (a notification), or a coroutine of either.
_Outcome: TypeAlias = dict[str, Any] | Coroutine[Any, Any, dict[str, Any] | None] | None

_NOID = protocol.NOID
_dumps = orjson.dumps
_request_error = protocol.request_error
# What writing a result can raise: not JSON (TypeError, ValueError), or nested
# deeper than orjson writes and then than Python's recursion allows.
_UNWRITABLE = (TypeError, ValueError, RecursionError)
# Module globals: an Enum member looked up on its class costs 0.2 µs a call.
_SYNC = Kind.SYNC
_ASYNC = Kind.ASYNC
_STREAM = Kind.STREAM
_EMPTY: list[Any] = []
# Results that need no check before they are written (floats may be NaN; containers may hold one).
_PLAIN = frozenset((int, str, bool, type(None)))


def _non_finite(value: Any) -> float | None:
    """The first NaN or infinity inside a result, or None."""
    stack = [value]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind is float:
            if not math.isfinite(item):
                return item  # type: ignore[no-any-return]
        elif kind is list or kind is tuple:
            stack.extend(item)
        elif kind is dict:
            stack.extend(item.values())
    return None


def _from_error(exc: JsonRpcError, id: Any) -> dict[str, Any]:
    return protocol.error(exc.code, exc.data, id, exc.message)


def _call(tool: Tool, params: Any, session: Session, id: Any, stream: bool) -> Any:
    """Call a tool that is not on the hot path, passing it a Context if it asks for one."""
    extra = {} if tool.context is None else {tool.context: Context(session, None if id is _NOID else id, stream)}
    return tool.fn(*params, **extra) if type(params) is list else tool.fn(**params, **extra)


async def _collect(parts: AsyncIterator[Any], session: Session, id: Any, stream: bool) -> Any:
    """Run a generator tool: push each part if the caller asked, else gather them into a list."""
    try:
        if not stream:
            return [part async for part in parts]
        count = 0
        async for part in parts:
            await session.notify("rpc.part", {"id": id, "value": part})
            count += 1
        return count
    finally:
        await parts.aclose()  # type: ignore[attr-defined]


class Dispatcher:
    """Routes JSON-RPC 2.0 messages to the tools of a :class:`Registry`.

    Args:
        registry: the tools to serve.
        max_batch: the longest batch accepted; a longer one is one -32600 error.
    """

    def __init__(self, registry: Registry, *, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        self.registry = registry
        self.max_batch = max_batch
        self._get = registry.lookup
        self._protocol = protocol_methods(self.describe)
        # For callers with no connection (tests, in-memory use): pushes go nowhere.
        self._detached = Session()

    # -- entry points ------------------------------------------------------

    def dispatch(self, message: str | bytes, session: Session | None = None) -> Reply:
        """Answer one message; see the module docstring for what comes back.

        Args:
            message: the text of one frame.
            session: the connection's state, for push, cancellation and
                subscriptions; a detached one, whose pushes go nowhere, if not given.
        """
        try:
            obj = protocol.decode(message)
        except protocol.DecodeError as exc:
            return protocol.encode(protocol.error(codes.PARSE_ERROR, str(exc)))
        if session is None:
            session = self._detached
        if type(obj) is dict:
            if "func" in obj and "jsonrpc" not in obj:
                return self._legacy(obj, session)
            outcome = self._request(obj, session)
            if type(outcome) is dict:
                try:
                    return _dumps(outcome)
                except TypeError:  # big integers, or a result JSON cannot carry, or nested too deep
                    return self._encode(outcome)
            return self._reply(outcome)
        if type(obj) is list:
            return self._batch(obj, session)
        return protocol.encode(protocol.error(codes.INVALID_REQUEST, _request_error(obj)))

    def describe(self, session: Session | None = None, *, url: str | None = None) -> dict[str, Any]:
        """The OpenRPC document of what ``session``'s caller may call (``rpc.discover``'s answer).

        Args:
            session: whose permissions, topics and endpoint it describes; all
                the tools and no topics when not given.
            url: the endpoint, for ``servers``; the session's when not given.
        """
        session = session if session is not None else self._detached
        return openrpc.document(
            self.registry,
            protocol=self._protocol.values(),
            topics=session.topics,
            url=url if url is not None else session.endpoint,
            may_call=session.permits,
        )

    async def dispatch_async(self, message: str | bytes, session: Session | None = None) -> bytes | None:
        """:meth:`dispatch`, awaited to the end: for tests and in-memory use."""
        reply = self.dispatch(message, session)
        if reply is None or isinstance(reply, bytes):
            return reply
        return await reply

    # -- one request -------------------------------------------------------

    def _find(self, method: str) -> Tool | None:
        """A user's tool, else one of the rpc.* methods (user tools cannot take their names)."""
        tool = self._get(method)
        if tool is None and method.startswith(RESERVED_PREFIX):
            return self._protocol.get(method)  # type: ignore[no-any-return]
        return tool

    def _request(self, obj: Any, session: Session) -> _Outcome:
        problem = _request_error(obj)
        if problem is not None:
            return protocol.error(codes.INVALID_REQUEST, problem)
        id = obj.get("id", _NOID)
        method = obj["method"]
        tool = self._get(method)
        if tool is None:
            tool = self._find(method)  # the rpc.* methods, which check what they touch themselves
            if tool is None:
                return None if id is _NOID else protocol.error(codes.METHOD_NOT_FOUND, method, id)
        elif session.allowed is not None and not session.allowed(method):
            return None if id is _NOID else protocol.error(codes.FORBIDDEN, f"not allowed to call {method!r}", id)
        params = obj.get("params", _EMPTY)
        try:
            accepts = tool.accepts
            if accepts is None or not accepts(params):
                params = tool.validate(params)
            if tool.inline:  # the hot path
                result = tool.fn(*params) if type(params) is list else tool.fn(**params)
                if id is _NOID:
                    return None
                if type(result) in _PLAIN:
                    return {"jsonrpc": "2.0", "result": result, "id": id}
                return self._result(result, id)
            if tool.kind is _SYNC:
                result = _call(tool, params, session, id, False)
                return None if id is _NOID else self._result(result, id)
        except JsonRpcError as exc:
            return None if id is _NOID else _from_error(exc, id)
        except Exception:
            logger.exception("tool %r failed (request id %r)", tool.name, None if id is _NOID else id)
            return None if id is _NOID else protocol.error(codes.INTERNAL_ERROR, id=id)
        if id is not _NOID:
            # Known as running from now, not from when its task first runs, so an
            # rpc.cancel later in the same read or batch finds it.
            session.running[id] = None
        return self._run(tool, params, id, session, obj.get("stream") is True and id is not _NOID)

    async def _run(self, tool: Tool, params: Any, id: Any, session: Session, stream: bool) -> dict[str, Any] | None:
        task = asyncio.current_task()
        if id is not _NOID:
            if id in session.cancelling:  # cancelled before it started (same read, same batch)
                session.cancelling.discard(id)
                session.running.pop(id, None)
                return protocol.error(codes.REQUEST_CANCELLED, id=id)
            session.running[id] = task
        try:
            if tool.kind is _ASYNC:
                result = await _call(tool, params, session, id, stream)
            elif tool.kind is _STREAM:
                result = await _collect(_call(tool, params, session, id, stream), session, id, stream)
            else:
                call = functools.partial(_call, tool, params, session, id, stream)
                result = await asyncio.get_running_loop().run_in_executor(None, call)
        except JsonRpcError as exc:
            return None if id is _NOID else _from_error(exc, id)
        except asyncio.CancelledError:
            if id is _NOID or id not in session.cancelling or task is None:
                raise  # the connection is closing: nothing to answer
            # Cancelled by rpc.cancel: answer, and let the task live to send it.
            task.uncancel()
            return protocol.error(codes.REQUEST_CANCELLED, id=id)
        except Exception:
            logger.exception("tool %r failed (request id %r)", tool.name, None if id is _NOID else id)
            return None if id is _NOID else protocol.error(codes.INTERNAL_ERROR, id=id)
        finally:
            if id is not _NOID and session.running.get(id) is task:
                del session.running[id]
                # Also when the tool swallowed the cancellation: a later call may reuse the id.
                session.cancelling.discard(id)
        return None if id is _NOID else self._result(result, id)

    @staticmethod
    def _result(result: Any, id: Any) -> dict[str, Any]:
        kind = type(result)
        if kind is Right:  # jsonrpcserver's Success(...)
            result = result._value.result
        elif kind is Left:  # jsonrpcserver's Error(...) / InvalidParams(...)
            err = result._error
            return protocol.error(err.code, err.data, id, err.message)
        if kind is float:
            if not math.isfinite(result):
                # orjson would write NaN and infinities as null: a silent wrong answer.
                return protocol.error(codes.NOT_FINITE, f"the result would be {result!r}", id)
        elif kind is list or kind is dict or kind is tuple:
            bad = _non_finite(result)
            if bad is not None:
                return protocol.error(codes.NOT_FINITE, f"the result would hold {bad!r}", id)
        return protocol.success(result, id)

    # -- responses ---------------------------------------------------------

    def _encode(self, response: dict[str, Any]) -> bytes:
        try:
            return protocol.encode(response)
        except _UNWRITABLE:
            id = response.get("id")
            logger.exception("the result for request id %r cannot be written as JSON", id)
            return protocol.encode(protocol.error(codes.INTERNAL_ERROR, id=id))

    def _reply(self, outcome: _Outcome) -> Reply:
        """A request's reply, once its outcome is not a ready Response object."""
        return None if outcome is None else self._reply_later(outcome)  # type: ignore[arg-type]

    async def _reply_later(self, pending: Coroutine[Any, Any, dict[str, Any] | None]) -> bytes | None:
        response = await pending
        return None if response is None else self._encode(response)

    # -- batches -----------------------------------------------------------

    def _batch(self, items: list[Any], session: Session) -> Reply:
        if not items:
            return protocol.encode(protocol.error(codes.INVALID_REQUEST, "an empty batch is not a request"))
        if len(items) > self.max_batch:
            return protocol.encode(
                protocol.error(
                    codes.INVALID_REQUEST,
                    f"a batch may hold at most {self.max_batch} requests; this one holds {len(items)}",
                )
            )
        # Plain tools finish here and now; only async members need tasks.
        outcomes = [self._request(item, session) for item in items]
        if any(o is not None and type(o) is not dict for o in outcomes):
            return self._batch_later(outcomes)
        return self._encode_batch(outcomes)  # type: ignore[arg-type]

    def _encode_batch(self, outcomes: list[dict[str, Any] | None]) -> bytes | None:
        responses = [o for o in outcomes if o is not None]
        if not responses:  # only notifications: nothing is sent (section 6)
            return None
        try:
            # One dumps for the whole array: 1,000 separate ones cost 30 times more,
            # each holding a 4 KB buffer that the allocator trims and faults back in.
            return protocol.encode(responses)
        except _UNWRITABLE:
            return protocol.encode_batch([self._encode(r) for r in responses])

    async def _batch_later(self, outcomes: list[_Outcome]) -> bytes | None:
        pending = {
            i: asyncio.ensure_future(o)  # type: ignore[arg-type]
            for i, o in enumerate(outcomes)
            if o is not None and type(o) is not dict
        }
        try:
            await asyncio.wait(pending.values())
        finally:
            for task in pending.values():
                task.cancel()  # only does something if we are being cancelled ourselves
        for i, task in pending.items():
            outcomes[i] = task.result()
        return self._encode_batch(outcomes)  # type: ignore[arg-type]

    # -- the seed's protocol -----------------------------------------------

    def _legacy(self, obj: dict[str, Any], session: Session) -> Reply:
        """Answer ``{"func": name, "args": [...]}`` as the seed did, through the same tools.

        ``{"result": value}`` on success, ``{"error": "sentence"}`` otherwise; an
        ``id`` member, when present, is echoed so callers can match replies.
        """
        func, args = obj.get("func"), obj.get("args", _EMPTY)
        echo = {"id": obj["id"]} if "id" in obj else {}
        if type(func) is not str:
            return protocol.encode({"error": "func must be a string", **echo})
        if type(args) not in (list, dict):
            return protocol.encode({"error": "args must be an array or an object", **echo})
        if self._find(func) is None:
            return protocol.encode({"error": f"Unknown function {func!r}", **echo})
        outcome = self._request({"jsonrpc": "2.0", "method": func, "params": args, "id": None}, session)
        if type(outcome) is dict:
            return self._legacy_reply(outcome, echo)

        async def later() -> bytes:
            return self._legacy_reply(await outcome, echo)  # type: ignore[misc]

        return later()

    def _legacy_reply(self, response: dict[str, Any], echo: dict[str, Any]) -> bytes:
        if "result" in response:
            try:
                return protocol.encode({"result": response["result"], **echo})
            except _UNWRITABLE:
                logger.exception("the result of a {func, args} call cannot be written as JSON")
                response = protocol.error(codes.INTERNAL_ERROR)
        err = response["error"]
        data = err.get("data", NODATA)
        text = err["message"] if data is NODATA else f"{err['message']}: {data}"
        return protocol.encode({"error": text, **echo})
