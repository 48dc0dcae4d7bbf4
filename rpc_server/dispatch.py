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

The limits it applies (issue 9; see docs/limits.md): an answer over
``max_response_bytes`` is -32003 (for a batch, the whole array counts, and a
generator's parts stop being gathered as soon as they would not fit, or
would be more than ``max_gathered_parts``); an
async call over ``call_timeout_s`` is cancelled and answered -32002; a call
beyond the session's rate limit is -32005. It counts the async calls it
starts in ``session.started``, so the transport can count calls in flight.
"""

from __future__ import annotations

import asyncio
import functools
import itertools
import logging
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeAlias

import orjson
from jsonrpcserver.exceptions import JsonRpcError
from oslash.either import Left, Right  # type: ignore[import-untyped]

from . import codes, openrpc, protocol
from .config import Limits
from .context import Context
from .errors import NODATA, ToolError
from .logs import bounded
from .methods import protocol_methods
from .registry import RESERVED_PREFIX, Kind, Registry, Tool
from .session import Session

__all__ = ["DEFAULT_MAX_BATCH", "CallObserver", "Dispatcher", "Reply"]

logger = logging.getLogger("rpc_server")

DEFAULT_MAX_BATCH = Limits().max_batch
_CANCEL = "rpc.cancel"  # never rate limited: it only ever frees what the caller holds

# What dispatch() gives back: bytes to send, None for silence, or an awaitable of either.
Reply: TypeAlias = bytes | Awaitable[bytes | None] | None
# What one request becomes: a Response object, None (a notification), or a coroutine of either.
_Outcome: TypeAlias = dict[str, Any] | Coroutine[Any, Any, dict[str, Any] | None] | None

_NOID = protocol.NOID
_clock = time.perf_counter
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
# The envelope's types (protocol.request_error), for the batch's fast path.
_PARAMS_TYPES = frozenset((list, dict))
_ID_TYPES = frozenset((str, int, float, type(None)))


class CallObserver(Protocol):
    """Told of every call as it ends (the metrics, the access log): see :meth:`Dispatcher.observe`."""

    def call(self, request: Any, outcome: dict[str, Any] | None, seconds: float) -> None:
        """``request`` as decoded (any JSON value), its Response object (None: nothing answered), its duration."""

    # An observer may also have ``calls(requests, outcomes, seconds)``: a batch's members at once, member
    # i having taken ``seconds[i]``. It skips the outcomes that are neither a dict nor None: those members
    # are still running, and each is told of through ``call`` when it ends. Without it, ``call`` is called
    # for each member.


def _ignore(request: Any, outcome: dict[str, Any] | None, seconds: float) -> None:
    pass


def _ignore_batch(requests: list[Any], outcomes: list[Any], seconds: list[float]) -> None:
    pass


def _batch_observer(observer: CallObserver) -> Callable[[list[Any], list[Any], list[float]], None]:
    """How ``observer`` is told of a batch's members: its own ``calls`` if it has one, else one ``call`` each."""
    calls = getattr(observer, "calls", None)
    if calls is not None:
        return calls  # type: ignore[no-any-return]
    call = observer.call

    def each(requests: list[Any], outcomes: list[Any], seconds: list[float]) -> None:
        for request, outcome, took in zip(requests, outcomes, seconds, strict=True):
            if outcome is None or type(outcome) is dict:
                call(request, outcome, took)

    return each


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


def _log_failure(tool: Tool, id: Any) -> None:
    # The id is the client's: a log line holds 64 characters of it, not 100 KB.
    request_id = None if id is _NOID else bounded(id)
    # The method and id also as fields, for JSON logs (rpc_server.logs).
    logger.exception(
        "tool %r failed (request id %r)", tool.name, request_id, extra={"method": tool.name, "request_id": request_id}
    )


def _too_deep(id: Any, exc: protocol.TooDeep) -> dict[str, Any]:
    """-32603 for a result nested deeper than any reader here takes (the server's own parser included)."""
    logger.warning("the answer to request id %r is not written: %s", id, exc)
    return protocol.error(codes.INTERNAL_ERROR, str(exc), id)


def _from_error(exc: JsonRpcError, id: Any) -> dict[str, Any]:
    return protocol.error(exc.code, exc.data, id, exc.message)


def _call(tool: Tool, params: Any, session: Session, id: Any, stream: bool) -> Any:
    """Call a tool that is not on the hot path, passing it a Context if it asks for one."""
    extra = {} if tool.context is None else {tool.context: Context(session, None if id is _NOID else id, stream)}
    return tool.fn(*params, **extra) if type(params) is list else tool.fn(**params, **extra)


class _Budget:
    """The bytes and the gathered parts left for the answer of one message: a batch's members share one."""

    __slots__ = ("bytes", "parts")

    def __init__(self, limits: Limits) -> None:
        self.bytes = limits.max_response_bytes
        self.parts = limits.max_gathered_parts


class _TooLarge(Exception):
    """A generator's parts outgrew the answer's budget; the call (or its whole batch) answers -32003.

    Args:
        why: the error's data, saying which limit.
    """


async def _gather(parts: AsyncIterator[Any], session: Session, id: Any, stream: bool, budget: _Budget) -> Any:
    """Run a generator tool: push each part if the caller asked, else gather them into one array.

    The array is written as the parts come, so it holds what the answer will
    (Python objects for small numbers take several times more), and gathering
    stops as soon as the parts would not fit in the answer, or would be too
    many: a part's cost is more in the producing than in its bytes (a batch
    of 1,000 count(10000, 0) gathering 16 MiB took 20 s of CPU).
    """
    try:
        if stream:
            count = 0
            async for part in parts:
                await session.notify("rpc.part", {"id": id, "value": part})
                count += 1
            return count
        out = bytearray(b"[")
        async for part in parts:
            kind = type(part)
            if kind is float or kind is list or kind is dict or kind is tuple:
                bad = _non_finite(part)
                if bad is not None:
                    raise ToolError(codes.NOT_FINITE, data=f"the result would hold {bad!r}")
            try:
                chunk = _dumps(part)
            except TypeError:  # big integers, deep nesting; what JSON cannot carry raises again
                chunk = protocol.encode_part(part)
            budget.bytes -= len(chunk) + 1
            budget.parts -= 1
            if budget.bytes < 0 or budget.parts < 0:
                raise _TooLarge(budget)
            if len(out) > 1:
                out += b","
            out += chunk
        out += b"]"
        return protocol.Encoded(bytes(out))
    finally:
        await parts.aclose()  # type: ignore[attr-defined]


class Dispatcher:
    """Routes JSON-RPC 2.0 messages to the tools of a :class:`Registry`.

    Args:
        registry: the tools to serve.
        max_batch: the longest batch accepted; a longer one is one -32600 error
            (``limits.max_batch`` when not given).
        limits: the server's limits; the dispatcher applies ``max_batch``,
            ``max_response_bytes`` and ``call_timeout_s`` (rate limits come
            with each session: :attr:`Session.bucket`).
    """

    def __init__(self, registry: Registry, *, max_batch: int | None = None, limits: Limits | None = None) -> None:
        limits = limits if limits is not None else Limits()
        self.registry = registry
        self.max_batch = max_batch if max_batch is not None else limits.max_batch
        self.limits = limits
        self.max_response = limits.max_response_bytes
        self.call_timeout = limits.call_timeout_s
        self._get = registry.lookup
        self._protocol = protocol_methods(self.describe)
        # For callers with no connection (tests, in-memory use): pushes go nowhere.
        self._detached = Session()
        self._observers: list[CallObserver] = []
        self._observe: Callable[[Any, dict[str, Any] | None, float], None] = _ignore
        self._observe_batch: Callable[[list[Any], list[Any], list[float]], None] = _ignore_batch
        self._timed = False

    def observe(self, observer: CallObserver) -> None:
        """Tell ``observer`` of every request from now on, batch members and ``{func, args}`` calls included.

        Until the first observer, requests are not timed at all: the cost is only paid when asked for.
        """
        self._observers.append(observer)
        if len(self._observers) == 1:
            self._observe = observer.call
        else:
            observers = tuple(self._observers)

            def observe_all(request: Any, outcome: dict[str, Any] | None, seconds: float) -> None:
                for each in observers:
                    each.call(request, outcome, seconds)

            self._observe = observe_all
        batch_observers = tuple(_batch_observer(each) for each in self._observers)
        if len(batch_observers) == 1:
            self._observe_batch = batch_observers[0]
        else:

            def observe_batch(requests: list[Any], outcomes: list[Any], seconds: list[float]) -> None:
                for each in batch_observers:
                    each(requests, outcomes, seconds)

            self._observe_batch = observe_batch
        self._request = self._observed  # type: ignore[method-assign]
        self._timed = True

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
            return protocol.encode(protocol.error(codes.PARSE_ERROR, protocol.decode_error_text(exc)))
        if session is None:
            session = self._detached
        if type(obj) is dict:
            if "func" in obj and "jsonrpc" not in obj:
                return self._legacy(obj, session)
            if self._timed:
                # Timed here rather than through _observed: a call one frame shallower.
                start = _clock()
                outcome = _unobserved(self, obj, session)
                if outcome is None or type(outcome) is dict:
                    self._observe(obj, outcome, _clock() - start)
                else:
                    outcome = self._observed_later(obj, outcome, start)  # type: ignore[arg-type]
            else:
                outcome = self._request(obj, session)
            if type(outcome) is dict:
                try:
                    reply = _dumps(outcome)
                except TypeError:  # big integers, or a result JSON cannot carry, or nested too deep
                    return self._encode(outcome)
                if len(reply) > self.max_response:
                    return self._too_large(outcome, len(reply))
                return reply
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

    def serves(self, method: str) -> bool:
        """Whether ``method`` names a tool or an ``rpc.*`` method here (the metrics bound their labels by it)."""
        return self._find(method) is not None

    def _find(self, method: str) -> Tool | None:
        """A user's tool, else one of the rpc.* methods (user tools cannot take their names)."""
        tool = self._get(method)
        if tool is None and method.startswith(RESERVED_PREFIX):
            return self._protocol.get(method)  # type: ignore[no-any-return]
        return tool

    def _request(self, obj: Any, session: Session, budget: _Budget | None = None) -> _Outcome:
        problem = _request_error(obj)
        if problem is not None:
            return protocol.error(codes.INVALID_REQUEST, problem)
        id = obj.get("id", _NOID)
        method = obj["method"]
        bucket = session.bucket
        # rpc.cancel is tested first: it must not spend a token either (docs/limits.md).
        if bucket is not None and method != _CANCEL and not bucket.take():
            if id is _NOID:
                return None  # a notification over the rate is not run, and nothing is said
            return protocol.error(codes.RATE_LIMITED, {"retry_after": bucket.retry_after()}, id)
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
            _log_failure(tool, id)
            return None if id is _NOID else protocol.error(codes.INTERNAL_ERROR, id=id)
        if id is not _NOID:
            # Known as running from now, not from when its task first runs, so an
            # rpc.cancel later in the same read or batch finds it.
            session.running[id] = None
        session.started += 1
        return self._run(tool, params, id, session, obj.get("stream") is True and id is not _NOID, budget)

    def _observed(self, obj: Any, session: Session, budget: _Budget | None = None) -> _Outcome:
        start = _clock()
        outcome = _unobserved(self, obj, session, budget)
        if outcome is None or type(outcome) is dict:
            self._observe(obj, outcome, _clock() - start)
            return outcome
        return self._observed_later(obj, outcome, start)  # type: ignore[arg-type]

    async def _observed_later(
        self, obj: Any, pending: Coroutine[Any, Any, dict[str, Any] | None], start: float
    ) -> dict[str, Any] | None:
        outcome = None
        try:
            outcome = await pending
        finally:
            self._observe(obj, outcome, _clock() - start)
        return outcome

    async def _run(
        self, tool: Tool, params: Any, id: Any, session: Session, stream: bool, budget: _Budget | None
    ) -> dict[str, Any] | None:
        task = asyncio.current_task()
        # A notification is known by its task: Session.cancel_all() must reach it too.
        key = id if id is not _NOID else task
        if key in session.cancelling or session.cancel_reason is not None:
            # Cancelled before it started (same read, same batch, or a server draining).
            session.cancelling.discard(key)
            if session.running.get(key, task) is None:
                del session.running[key]
            return None if id is _NOID else self._cancelled(session, id)
        session.running[key] = task
        deadline = asyncio.timeout(self.call_timeout)
        try:
            async with deadline:
                if tool.kind is _ASYNC:
                    result = await _call(tool, params, session, id, stream)
                elif tool.kind is _STREAM:
                    gathering = budget if budget is not None else _Budget(self.limits)
                    result = await _gather(_call(tool, params, session, id, stream), session, id, stream, gathering)
                else:
                    call = functools.partial(_call, tool, params, session, id, stream)
                    result = await asyncio.get_running_loop().run_in_executor(None, call)
        except JsonRpcError as exc:
            return None if id is _NOID else _from_error(exc, id)
        except _TooLarge as exc:
            if budget is not None:
                raise  # a batch member: the batch answers for all its members
            return None if id is _NOID else self._too_large_error(id, self._gathered_too_much(exc))
        except protocol.TooDeep as exc:  # a generator's part
            return None if id is _NOID else _too_deep(id, exc)
        except asyncio.CancelledError:
            if key not in session.cancelling or task is None:
                raise  # the connection is closing: nothing to answer
            # Cancelled by rpc.cancel (or a drain's deadline): answer, and let the task live to send it.
            task.uncancel()
            return None if id is _NOID else self._cancelled(session, id)
        except TimeoutError:
            if not deadline.expired():  # the tool's own, not ours
                _log_failure(tool, id)
                return None if id is _NOID else protocol.error(codes.INTERNAL_ERROR, id=id)
            data = f"the call ran longer than {self.call_timeout:g} s and was cancelled"
            return None if id is _NOID else protocol.error(codes.CALL_TIMED_OUT, data, id)
        except Exception:
            _log_failure(tool, id)
            return None if id is _NOID else protocol.error(codes.INTERNAL_ERROR, id=id)
        finally:
            if session.running.get(key) is task:
                del session.running[key]
                # Also when the tool swallowed the cancellation: a later call may reuse the id.
                session.cancelling.discard(key)
        return None if id is _NOID else self._result(result, id)

    @staticmethod
    def _cancelled(session: Session, id: Any) -> dict[str, Any]:
        reason = session.cancel_reason
        return protocol.error(codes.REQUEST_CANCELLED, NODATA if reason is None else reason, id)

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
        """One Response object written, within the answer's size limit."""
        try:
            reply = protocol.encode(response)
        except protocol.TooDeep as exc:
            return protocol.encode(_too_deep(response.get("id"), exc))
        except _UNWRITABLE:
            id = response.get("id")
            logger.exception("the result for request id %r cannot be written as JSON", id)
            return protocol.encode(protocol.error(codes.INTERNAL_ERROR, id=id))
        if len(reply) > self.max_response:
            return self._too_large(response, len(reply))
        return reply

    @staticmethod
    def _too_large_error(id: Any, why: str) -> dict[str, Any]:
        return protocol.error(codes.RESPONSE_TOO_LARGE, why, id)

    def _sized(self, size: int) -> str:
        return f"the answer would be {size:,} bytes; the limit is {self.max_response:,}"

    def _gathered_too_much(self, exc: _TooLarge) -> str:
        (budget,) = exc.args
        if budget.parts < 0:
            limit = self.limits.max_gathered_parts
            return f"the answer would gather more than {limit:,} parts of generators; the limit is {limit:,}"
        return f"the answer would be more than {self.max_response:,} bytes; the limit is {self.max_response:,}"

    def _too_large(self, response: dict[str, Any], size: int) -> bytes:
        return protocol.encode(self._too_large_error(response.get("id"), self._sized(size)))

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
        budget = _Budget(self.limits)
        if session.queued_cancels:
            outcomes = [self._unless_cancelled(item, session, budget) for item in items]
        elif session.bucket is None:
            outcomes = self._members(items, session, budget)
        else:
            outcomes = [self._request(item, session, budget) for item in items]
        for o in outcomes:
            if o is not None and type(o) is not dict:
                return self._batch_later(items, outcomes)
        return self._encode_batch(items, outcomes)  # type: ignore[arg-type]

    def _members(self, items: list[Any], session: Session, budget: _Budget) -> list[_Outcome]:
        """A batch's outcomes, as :meth:`_request` gives them, for a session with no rate limit.

        Issue 13: a batch's members mostly call one method. A member that is a
        well-formed request with an id, for a plain tool the session may call,
        is answered here, its tool looked up and its permission checked once
        per run of members naming the same method; any other member goes
        through :meth:`_request`. tests/rpc_server/test_dispatch_batch.py
        compares the two paths.
        """
        outcomes: list[_Outcome] = []
        append = outcomes.append
        timed = self._timed
        # Timed, the members are observed together once all have run (see observe()), each with its own
        # time: from its start to the next member's, read once a member.
        request = self._request if not timed else self._member_timed_later
        starts: list[float] = []
        started = starts.append
        method: Any = None
        tool = None  # the run's tool, when it is plain and the session may call it
        accepts: Callable[[Any], bool] | None = None
        fn: Callable[..., Any] = _ignore
        for item in items:
            if timed:
                started(_clock())
            if type(item) is dict and len(item) == 4:
                try:  # subscripts, not get(): a third of the loop's cost was the method calls
                    name, params, id, version = item["method"], item["params"], item["id"], item["jsonrpc"]
                except KeyError:
                    append(request(item, session, budget))
                    continue
                if name != method or tool is None:
                    method = name
                    tool = self._plain(name, session)
                    if tool is not None:
                        accepts, fn = tool.accepts, tool.fn
                # With these four members present (so no other), request_error(item) is None
                # exactly when their types are right.
                if tool is not None and version == "2.0" and type(params) in _PARAMS_TYPES and type(id) in _ID_TYPES:
                    try:
                        if accepts is None or not accepts(params):
                            params = tool.validate(params)
                        result = fn(*params) if type(params) is list else fn(**params)
                    except JsonRpcError as exc:
                        append(_from_error(exc, id))
                    except Exception:
                        _log_failure(tool, id)
                        append(protocol.error(codes.INTERNAL_ERROR, id=id))
                    else:
                        if type(result) in _PLAIN:
                            append({"jsonrpc": "2.0", "result": result, "id": id})
                        else:
                            append(self._result(result, id))
                    continue
            append(request(item, session, budget))
        if timed:
            started(_clock())
            self._observe_batch(items, outcomes, [b - a for a, b in itertools.pairwise(starts)])
        return outcomes

    def _member_timed_later(self, item: Any, session: Session, budget: _Budget) -> _Outcome:
        """A member outside the fast path, when timed: observed with the others, or on its own once it has run."""
        outcome = _unobserved(self, item, session, budget)
        if outcome is None or type(outcome) is dict:
            return outcome
        return self._observed_later(item, outcome, _clock())  # type: ignore[arg-type]

    def _plain(self, method: Any, session: Session) -> Tool | None:
        """``method``'s tool if it runs inline and ``session`` may call it, else None."""
        if type(method) is not str:
            return None
        tool = self._get(method)
        if tool is None or not tool.inline or (session.allowed is not None and not session.allowed(method)):
            return None
        return tool

    def _unless_cancelled(self, item: Any, session: Session, budget: _Budget) -> _Outcome:
        """A batch member, or -32800 unrun if rpc.cancel named it while its batch waited to be read."""
        if type(item) is dict and _request_error(item) is None and "id" in item:
            id = item["id"]
            if id in session.queued_cancels:
                session.queued_cancels.discard(id)
                return protocol.error(codes.REQUEST_CANCELLED, id=id)
        return self._request(item, session, budget)

    def _encode_batch(self, items: list[Any], outcomes: list[dict[str, Any] | None]) -> bytes | None:
        responses = [o for o in outcomes if o is not None]
        if not responses:  # only notifications: nothing is sent (section 6)
            return None
        try:
            # One dumps for the whole array: 1,000 separate ones cost 30 times more,
            # each holding a 4 KB buffer that the allocator trims and faults back in.
            reply = protocol.encode(responses)
        except _UNWRITABLE:
            reply = protocol.encode_batch([self._encode(r) for r in responses])
        if len(reply) > self.max_response:
            return self._too_large_batch(items, outcomes, self._sized(len(reply)))
        return reply

    def _too_large_batch(self, items: list[Any], outcomes: list[Any], why: str) -> bytes:
        """The whole batch's answer would be too large: -32003 for each call, errors kept as they are."""
        responses = []
        for item, outcome in zip(items, outcomes, strict=True):
            if type(outcome) is dict:
                responses.append(outcome if "error" in outcome else self._too_large_error(outcome["id"], why))
            elif outcome is not None:  # a call that was running: its request has a valid id, or none
                id = item.get("id", _NOID)
                if id is not _NOID:
                    responses.append(self._too_large_error(id, why))
        return protocol.encode(responses)

    async def _batch_later(self, items: list[Any], outcomes: list[_Outcome]) -> bytes | None:
        pending = {
            i: asyncio.ensure_future(o)  # type: ignore[arg-type]
            for i, o in enumerate(outcomes)
            if o is not None and type(o) is not dict
        }
        try:
            # A member whose parts outgrow the batch's answer ends the wait at once.
            await asyncio.wait(pending.values(), return_when=asyncio.FIRST_EXCEPTION)
        finally:
            for task in pending.values():
                task.cancel()  # only does something if we are being cancelled ourselves, or too large
        for task in pending.values():
            if task.done() and not task.cancelled() and type(exc := task.exception()) is _TooLarge:
                return self._too_large_batch(items, outcomes, self._gathered_too_much(exc))
        for i, task in pending.items():
            outcomes[i] = task.result()
        return self._encode_batch(items, outcomes)  # type: ignore[arg-type]

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
                reply = protocol.encode({"result": response["result"], **echo})
            except protocol.TooDeep as exc:
                response = _too_deep(None, exc)
            except _UNWRITABLE:
                logger.exception("the result of a {func, args} call cannot be written as JSON")
                response = protocol.error(codes.INTERNAL_ERROR)
            else:
                if len(reply) <= self.max_response:
                    return reply
                response = self._too_large_error(None, self._sized(len(reply)))
        err = response["error"]
        return protocol.encode({"error": _sentence(err["message"], err.get("data", NODATA)), **echo})


def _sentence(message: str, data: Any) -> str:
    """An error as the seed's one string: its message, then its data, written as JSON unless it is text."""
    if data is NODATA or data is None:
        return message
    if type(data) is str:
        return f"{message}: {data}"
    try:
        return f"{message}: {protocol.encode_part(data).decode()}"  # a dict's str() would be Python's syntax
    except _UNWRITABLE:
        return message


# The request path without timing, for Dispatcher._observed (the instance's _request replaced).
_unobserved = Dispatcher._request
