"""MCP, the Model Context Protocol, over the same tools: one connection's session, no I/O.

A WebSocket client that offers the subprotocol ``mcp`` (as the official SDKs'
WebSocket clients do) is served MCP instead of this server's plain JSON-RPC.
An :class:`McpSession` is that connection's handler: it takes the text of
each message and gives back the text of its answer, as
:meth:`.Dispatcher.dispatch` does, and pushes progress through the
connection's :class:`~.session.Session`. Like plain JSON-RPC callers, an MCP
caller sees and calls only the tools its session permits.

It only translates. A ``tools/call`` becomes a JSON-RPC request to the
:class:`~.dispatch.Dispatcher`, so the arguments meet the same validator,
the tool runs as it always does (inline, task, thread or generator), and
cancellation and progress go through the same session:

- ``initialize`` agrees on a protocol version (:data:`VERSIONS`; a client
  asking for another gets the newest); ``ping`` answers ``{}``;
- ``tools/list`` describes each tool (:mod:`.describe`): ``inputSchema`` is
  always one object, a ``*args`` tool's values one array in it;
  ``outputSchema`` (from 2025-06-18) is the result's schema, a value that is
  not an object wrapped as ``{"result": value}`` as MCP wants objects;
- ``tools/call`` answers ``content`` with one text item holding the result
  as JSON, and ``structuredContent`` when there is an output schema. A
  tool's failure, invalid arguments included, is a result with
  ``isError: true`` (as 2025-11-25 asks, so a model can correct itself); an
  unknown tool is error -32602;
- a call with ``_meta.progressToken`` is sent with ``"stream": true``: the
  tool's ``rpc.progress`` becomes ``notifications/progress``, and each part
  of a streamed tool one progress step whose message is the part as JSON
  (the parts are gathered into the result, which is what a call without a
  token gets too);
- ``notifications/cancelled`` cancels the call (``rpc.cancel``'s way), and
  no answer is sent for it, as MCP asks.

This server sends MCP no requests of its own; responses from the client are
dropped.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeAlias

import orjson

from . import codes, protocol
from .describe import Description, describe
from .dispatch import Dispatcher, Reply
from .errors import ToolError
from .openrpc import package_version
from .registry import RESERVED_PREFIX, Tool
from .session import Send, Session

__all__ = ["LATEST", "SUBPROTOCOL", "VERSIONS", "McpSession"]

logger = logging.getLogger(__name__)

SUBPROTOCOL = "mcp"
VERSIONS = ("2024-11-05", "2025-03-26", "2025-06-18", "2025-11-25")
LATEST = VERSIONS[-1]
_MESSAGES = "2025-03-26"  # progress notifications carry a message from this version on
_STRUCTURED = "2025-06-18"  # titles, outputSchema and structuredContent from this one
_DIALECT_2020_12 = "2025-11-25"  # schemas without $schema are JSON Schema 2020-12 from this one

# What handling one message gives: a response object, None, or an awaitable of either.
_Outcome: TypeAlias = dict[str, Any] | Awaitable[dict[str, Any] | None] | None
_ID_TYPES = (str, int)


@dataclass(slots=True)
class _Call:
    """A tools/call in flight, by the id it has on the dispatcher's side."""

    id: Any  # the client's request id
    token: Any  # its progress token, or None
    parts: list[Any] | None = None  # a streamed tool's parts, gathered when they are pushed
    cancelled: bool = False
    progress: float = 0  # the last progress sent: MCP wants it to grow


def _as_2020_12(schema: Any) -> Any:
    """A draft-07 schema in 2020-12's words: tuple ``items`` become ``prefixItems``.

    The rest of what this project writes means the same in both.
    """
    if isinstance(schema, list):
        return [_as_2020_12(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _as_2020_12(v) for k, v in schema.items() if k not in ("items", "additionalItems", "$schema")}
    items = schema.get("items")
    if isinstance(items, list):
        out["prefixItems"] = _as_2020_12(items)
        if "additionalItems" in schema:
            out["items"] = _as_2020_12(schema["additionalItems"])
    elif items is not None:
        out["items"] = _as_2020_12(items)
    return out


def _json_text(value: Any) -> str:
    """Raises: protocol.TooDeep: nested deeper than an answer may be."""
    # The standard library writes integers of any size, which arithmetic tools answer.
    try:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    except RecursionError:  # deeper than Python's recursion allows, not than JSON may be
        return protocol.encode_part(value).decode()


def _encode(response: dict[str, Any] | list[dict[str, Any]]) -> bytes:
    """An answer written, or -32603 in its place for a result nested deeper than any reader here takes."""
    try:
        return protocol.encode(response)
    except protocol.TooDeep as exc:
        if isinstance(response, list):
            return protocol.encode_batch([_encode(r) for r in response])
        logger.warning("the answer to request id %r is not written: %s", response.get("id"), exc)
        return protocol.encode(protocol.error(codes.INTERNAL_ERROR, str(exc), response.get("id")))


def _error_text(error: dict[str, Any]) -> str:
    text = f"Error {error.get('code')}: {error.get('message')}"
    if "data" in error:
        data = error["data"]
        text += f": {data if isinstance(data, str) else _json_text(data)}"
    return text


class McpSession:
    """MCP for one connection; see the module docstring.

    Called as the connection's handler, ``mcp(message, connection_session)``.
    On the first message it takes over the connection session's ``send``:
    pushes from tools are translated, then go out through it. Only the tools
    the session :meth:`~.session.Session.permits` are listed and callable.

    Args:
        dispatcher: runs the calls.
    """

    def __init__(self, dispatcher: Dispatcher) -> None:
        self.dispatcher = dispatcher
        self.session: Session | None = None
        self.version: str | None = None  # agreed at initialize
        self.client_info: dict[str, Any] = {}
        self._out: Send | None = None
        self._ids = itertools.count(1)
        self._calls: dict[Any, _Call] = {}  # by the dispatcher-side id
        self._by_client_id: dict[Any, int] = {}

    def _bind(self, session: Session) -> None:
        self.session, self._out = session, session.send
        session.send = self._pushed

    # -- messages ---------------------------------------------------------------

    def __call__(self, message: str | bytes, session: Session) -> Reply:
        """Answer one message: bytes to send, None for silence, or an awaitable of either."""
        if self.session is not session:
            self._bind(session)
        try:
            obj = protocol.decode(message)
        except protocol.DecodeError as exc:
            return protocol.encode(protocol.error(codes.PARSE_ERROR, str(exc)))
        if type(obj) is list:
            if not obj:
                return protocol.encode(protocol.error(codes.INVALID_REQUEST, "an empty batch is not a request"))
            return self._batch([self._message(item) for item in obj])
        outcome = self._message(obj)
        if outcome is None or isinstance(outcome, dict):
            return None if outcome is None else _encode(outcome)
        return self._later(outcome)

    async def _later(self, outcome: Awaitable[dict[str, Any] | None]) -> bytes | None:
        response = await outcome
        return None if response is None else _encode(response)

    def _batch(self, outcomes: list[_Outcome]) -> Reply:
        async def gather() -> bytes | None:
            # Together, not one after the other: a slow call must not hold up the rest of its batch.
            later = iter(await asyncio.gather(*(o for o in outcomes if o is not None and not isinstance(o, dict))))
            done = [o if o is None or isinstance(o, dict) else next(later) for o in outcomes]
            responses = [r for r in done if r is not None]
            return _encode(responses) if responses else None

        if all(o is None or isinstance(o, dict) for o in outcomes):
            responses = [o for o in outcomes if o is not None]
            return _encode(responses) if responses else None  # type: ignore[arg-type]
        return gather()

    def _message(self, obj: Any) -> _Outcome:
        if type(obj) is not dict or obj.get("jsonrpc") != "2.0":
            return protocol.error(codes.INVALID_REQUEST, 'a message is a JSON object with "jsonrpc": "2.0"')
        method = obj.get("method")
        if "id" not in obj:
            if isinstance(method, str):
                self._notification(method, obj.get("params"))
            return None  # a notification, or a response to a request we never send
        id = obj["id"]
        if type(id) not in _ID_TYPES:
            return protocol.error(codes.INVALID_REQUEST, "an MCP request id is a string or an integer")
        if "method" not in obj and ("result" in obj or "error" in obj):
            return None  # a response: this server sends no requests
        if not isinstance(method, str):
            return protocol.error(codes.INVALID_REQUEST, "method must be a string", id)
        params = obj.get("params", {})
        if not isinstance(params, dict):
            return protocol.error(codes.INVALID_PARAMS, "params must be an object", id)
        if method == "ping":
            return protocol.success({}, id)
        if method == "initialize":
            return self._initialize(id, params)
        if self.version is None:
            return protocol.error(codes.INVALID_REQUEST, "send initialize first", id)
        if method == "tools/list":
            return self._list(id, params)
        if method == "tools/call":
            return self._call(id, params)
        return protocol.error(codes.METHOD_NOT_FOUND, method, id)

    def _notification(self, method: str, params: Any) -> None:
        if method == "notifications/cancelled" and isinstance(params, dict):
            inner = self._by_client_id.get(params.get("requestId"))
            call = self._calls.get(inner) if inner is not None else None
            if call is not None and self.session is not None:
                call.cancelled = True
                self.session.cancel(inner)
        # notifications/initialized, progress, roots: nothing to do

    # -- initialize and tools/list ---------------------------------------------

    def _initialize(self, id: Any, params: dict[str, Any]) -> dict[str, Any]:
        if self.version is not None:
            return protocol.error(codes.INVALID_REQUEST, "initialize was already sent", id)
        asked = params.get("protocolVersion")
        if not isinstance(asked, str):
            return protocol.error(codes.INVALID_PARAMS, "protocolVersion must be a string", id)
        self.version = asked if asked in VERSIONS else LATEST
        info = params.get("clientInfo")
        self.client_info = info if isinstance(info, dict) else {}
        server_info: dict[str, Any] = {"name": "rpc-tools", "version": package_version()}
        if self.version >= _STRUCTURED:
            server_info["title"] = "rpc-tools"
        result = {
            "protocolVersion": self.version,
            "capabilities": {"tools": {"listChanged": False}},
            "serverInfo": server_info,
        }
        return protocol.success(result, id)

    def _tool(self, name: Any) -> tuple[Tool, Description] | None:
        if not isinstance(name, str) or name.startswith(RESERVED_PREFIX):
            return None
        tool = self.dispatcher.registry.get(name)
        if tool is None or self.session is None or not self.session.permits(name):
            return None
        return tool, describe(tool)

    def _schema(self, schema: dict[str, Any]) -> dict[str, Any]:
        """A schema as the agreed version reads it."""
        return _as_2020_12(schema) if self.version is not None and self.version >= _DIALECT_2020_12 else schema

    def _output_schema(self, d: Description) -> dict[str, Any] | None:
        if d.result is None or self.version is None or self.version < _STRUCTURED:
            return None
        if d.result.get("type") == "object":
            return self._schema(d.result)
        return {"type": "object", "properties": {"result": self._schema(d.result)}, "required": ["result"]}

    def _list(self, id: Any, params: dict[str, Any]) -> dict[str, Any]:
        if params.get("cursor") is not None:
            return protocol.error(codes.INVALID_PARAMS, "unknown cursor: the whole list comes in one page", id)
        tools = []
        for name in self.dispatcher.registry:
            found = self._tool(name)
            if found is None:
                continue
            d = found[1]
            entry: dict[str, Any] = {"name": d.name}
            if self.version is not None and self.version >= _STRUCTURED:
                entry["title"] = d.title
            if d.description:
                entry["description"] = d.description
            entry["inputSchema"] = self._schema(d.params.object_schema())
            output = self._output_schema(d)
            if output is not None:
                entry["outputSchema"] = output
            tools.append(entry)
        return protocol.success({"tools": tools}, id)

    # -- tools/call --------------------------------------------------------------

    def _call(self, id: Any, params: dict[str, Any]) -> _Outcome:
        name = params.get("name")
        found = self._tool(name)
        if found is None:
            if isinstance(name, str) and name in self.dispatcher.registry and not name.startswith(RESERVED_PREFIX):
                # Served, but not to this caller: answered as JSON-RPC answers it (-32004), though
                # tools/list leaves it out, so that one credential gets one answer on either protocol.
                return protocol.error(codes.FORBIDDEN, f"not allowed to call {name!r}", id)
            return protocol.error(codes.INVALID_PARAMS, f"Unknown tool: {name!r}", id)
        tool, d = found
        arguments = params.get("arguments", {})
        if arguments is None:
            arguments = {}
        if not isinstance(arguments, dict):
            return protocol.error(codes.INVALID_PARAMS, "arguments must be an object", id)
        meta = params.get("_meta")
        token = meta.get("progressToken") if isinstance(meta, dict) else None
        try:
            call_params = d.params.from_object(arguments)
        except ToolError as exc:  # arguments that cannot be put in place: invalid, as the validator would say
            return self._failed(id, protocol.error(exc.code, exc.data, None, exc.message)["error"])
        inner = next(self._ids)
        call = _Call(id, token, [] if token is not None and d.stream else None)
        request: dict[str, Any] = {"jsonrpc": "2.0", "method": tool.name, "params": call_params, "id": inner}
        if token is not None:
            request["stream"] = True  # progress and parts are pushed, and translated in _pushed
        self._calls[inner] = call
        self._by_client_id[id] = inner
        try:
            reply = self.dispatcher.dispatch(protocol.encode(request), self.session)
        except BaseException:
            self._forget(inner)
            raise
        if reply is None or isinstance(reply, bytes):
            return self._result(inner, d, reply)

        async def later() -> dict[str, Any] | None:
            try:
                answer = await reply  # type: ignore[misc]
            except BaseException:
                self._forget(inner)
                raise
            return self._result(inner, d, answer)

        return later()

    def _forget(self, inner: int) -> _Call | None:
        call = self._calls.pop(inner, None)
        if call is not None and self._by_client_id.get(call.id) == inner:
            del self._by_client_id[call.id]
        return call

    def _result(self, inner: int, d: Description, reply: bytes | None) -> dict[str, Any] | None:
        call = self._forget(inner)
        if call is None or call.cancelled or reply is None:
            return None  # cancelled by the client: MCP sends no answer
        response = protocol.decode(reply)
        if "error" in response:
            error = response["error"]
            if error.get("code") == codes.METHOD_NOT_FOUND:  # the tool went away meanwhile
                return protocol.error(codes.INVALID_PARAMS, f"Unknown tool: {d.name!r}", call.id)
            return self._failed(call.id, error)
        value = response["result"]
        if call.parts is not None:
            value = call.parts  # the parts were pushed one by one; the result is all of them
        try:
            text = _json_text(value)
        except protocol.TooDeep as exc:
            logger.warning("the answer to request id %r is not written: %s", call.id, exc)
            return self._failed(call.id, protocol.error(codes.INTERNAL_ERROR, str(exc))["error"])
        result: dict[str, Any] = {"content": [{"type": "text", "text": text}]}
        output = self._output_schema(d)
        if output is not None:
            result["structuredContent"] = value if d.result and d.result.get("type") == "object" else {"result": value}
        return protocol.success(result, call.id)

    @staticmethod
    def _failed(id: Any, error: dict[str, Any]) -> dict[str, Any]:
        result = {"content": [{"type": "text", "text": _error_text(error)}], "isError": True}
        return protocol.success(result, id)

    # -- pushes from tools --------------------------------------------------------

    async def _pushed(self, message: bytes) -> None:
        """A notification from the dispatcher's side: progress and parts become notifications/progress."""
        note = orjson.loads(message)
        method, params = note.get("method"), note.get("params") or {}
        if method not in ("rpc.progress", "rpc.part"):
            return  # subscriptions are not offered over MCP
        call = self._calls.get(params.get("id"))
        if call is None or call.token is None or call.cancelled:
            return
        out: dict[str, Any] = {"progressToken": call.token}
        text: Any
        if method == "rpc.part":
            if call.parts is not None:
                call.parts.append(params.get("value"))
            call.progress += 1
            out["progress"] = call.progress
            text = _json_text(params.get("value"))
        else:
            out["progress"] = call.progress = params.get("done", call.progress)
            if params.get("total") is not None:
                out["total"] = params["total"]
            text = params.get("message")
        if text is not None and self.version is not None and self.version >= _MESSAGES:
            out["message"] = text
        if self._out is not None:
            await self._out(protocol.encode({"jsonrpc": "2.0", "method": "notifications/progress", "params": out}))
