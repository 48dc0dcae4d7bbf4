"""JSON-RPC messages for the client: requests as the bytes that go out, answers turned into values; no I/O.

Requests are encoded with ``orjson`` straight from their parts. jsonrpcclient
(whose ``request()`` and ``json.dumps`` were the cost of a call before, issue
13) stays the reference: the tests compare every request built here with
jsonrpcclient's, and every answer read here with its ``parse``; its ``Ok`` and
``Error`` are the values answers become.

Where orjson and the standard library disagree, the standard library's rules
hold: a value orjson refuses (an integer past 64 bits, a non-string key, a
type it passes through) is encoded by ``json`` instead, and NaN and infinity,
which orjson would write as ``null``, are refused as ``json`` with
``allow_nan=False`` refuses them.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import orjson
from jsonrpcclient import Error, Ok

from .errors import ProtocolError, RpcError

__all__ = [
    "Members",
    "NestedTooDeep",
    "Params",
    "Response",
    "batch_messages",
    "batch_pair",
    "cancel_message",
    "check_request",
    "decode",
    "encode",
    "notification_bytes",
    "outcome_from",
    "outcome_value",
    "params_from",
    "request_bytes",
    "response_from",
    "unwrap",
]

# A call's params as JSON-RPC sends them: an array (by position), an object (by name), or none.
Params: TypeAlias = Sequence[Any] | dict[str, Any] | None

# An answer, as a value: jsonrpcclient's Ok(result, id) or Error(code, message, data, id).
Response: TypeAlias = Ok | Error

# allow_nan=False: NaN and Infinity are not JSON, and a server would read them as an error or worse.
_std_dumps = functools.partial(json.dumps, separators=(",", ":"), allow_nan=False, ensure_ascii=False)
# Dataclasses, datetimes and subclasses go to the standard library too, which refuses what it cannot write.
_OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_SUBCLASS
_dumps = orjson.dumps
_loads = orjson.loads
_EncodeError = orjson.JSONEncodeError
_DecodeError = orjson.JSONDecodeError
# 19 digits in a row may be an integer past 64 bits (or a long string of digits: then json is merely slower).
# Found by turning every digit into a 9 and looking for 19 nines: 15 times faster than a regex on a batch's
# answer of 40 kB, where the regex cost twice orjson's parse (issue 13).
_DIGITS_AS_NINES = bytes.maketrans(b"0123456789", b"9" * 10)
_NINETEEN_NINES = b"9" * 19
_PARAMS_TYPES = frozenset((list, tuple, dict))


# How deep the standard library's parser and writer go (Python's recursion limit; orjson stops at 1,024
# to read and 255 to write, and hands over to them): said in errors, not enforced here.
_DEPTH = "about 1,000"


class NestedTooDeep(ValueError):
    """A message from the server nested deeper than the JSON parser reads (review F1).

    What could be found without parsing it is kept, so that the rest of the
    connection goes on: ``ids``, the request ids of the answers too deep to read;
    ``readable``, for a batch's array, its other members, decoded.
    """

    def __init__(self, ids: list[Any], readable: list[Any]) -> None:
        super().__init__(f"the message is nested more than {_DEPTH} levels deep")
        self.ids = ids
        self.readable = readable


def encode(value: Any) -> bytes:
    """A value as JSON, in UTF-8.

    Raises:
        TypeError: it is not JSON (a set, an object...).
        ValueError: it holds NaN or infinity, or a string that is not Unicode text, or it is nested
            more than about 1,000 levels deep.
    """
    try:
        data = _dumps(value, option=_OPTIONS)
    except _EncodeError:
        return _std_encode(value)
    if b"null" in data:
        # orjson writes NaN and infinity as null: the standard library decides (a rare, slower path).
        return _std_encode(value)
    return data


def _std_encode(value: Any) -> bytes:
    try:
        return _std_dumps(value).encode()
    except RecursionError:
        raise ValueError(f"cannot write a value nested more than {_DEPTH} levels deep as JSON") from None


def decode(data: bytes | str) -> Any:
    """A message from the server, decoded.

    Raises:
        NestedTooDeep: it is nested deeper than the parser reads (a ValueError).
        ValueError: it is not JSON (UnicodeDecodeError: not UTF-8).
    """
    try:
        return _parse(data)
    except RecursionError:
        raise _too_deep(data) from None


def _parse(data: bytes | str) -> Any:
    """As :func:`decode`, but a message too deep raises RecursionError."""
    # orjson reads an integer past 64 bits as a float, losing digits: json reads it exactly.
    raw = data.encode("utf-8", "surrogatepass") if type(data) is str else data
    if _NINETEEN_NINES in raw.translate(_DIGITS_AS_NINES):  # type: ignore[union-attr]
        return json.loads(data)
    try:
        return _loads(data)
    except _DecodeError:
        # orjson refuses what json reads (NaN, Infinity): keep json's rules.
        return json.loads(data)


# A JSON string, a bracket or a comma: enough to find a value's members without parsing them.
_TOKENS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{},]')
_MEMBER = re.compile(r'\s*("[^"\\]*(?:\\.[^"\\]*)*")\s*:(.*)\Z', re.DOTALL)
_NO_ID = object()


def _too_deep(data: bytes | str) -> NestedTooDeep:
    """What can be read of a message too deep to parse: the ids it answers, a batch's other members.

    Raises:
        ValueError: it is not JSON after all.
    """
    text = data if type(data) is str else data.decode()  # type: ignore[union-attr]
    found = _top_level(text)
    if found is None or found[0] == "{":
        id = _id_of(text)
        return NestedTooDeep([] if id is _NO_ID else [id], [])
    ids: list[Any] = []
    readable: list[Any] = []
    for member in found[1]:
        try:
            readable.append(_parse(member))
        except RecursionError:
            id = _id_of(member)
            if id is not _NO_ID:
                ids.append(id)
    return NestedTooDeep(ids, readable)


def _top_level(text: str) -> tuple[str, list[str]] | None:
    """The opening bracket of the array or object in ``text``, and its members' texts; None if it is neither.

    With no recursion, however deep the members are (a scan of strings and brackets).
    """
    start = len(text) - len(text.lstrip())
    if text[start : start + 1] not in ("[", "{"):
        return None
    depth = 0
    begin = start
    members: list[str] = []
    for token in _TOKENS.finditer(text, start):
        char = text[token.start()]
        if char in "[{":
            depth += 1
            if depth == 1:
                begin = token.end()
        elif char in "]}":
            depth -= 1
            if depth == 0:
                if text[begin : token.start()].strip():
                    members.append(text[begin : token.start()])
                return text[start], members
        elif char == "," and depth == 1:
            members.append(text[begin : token.start()])
            begin = token.end()
    return None


def _id_of(text: str) -> Any:
    """The ``id`` member of the object in ``text``, found without parsing the rest; _NO_ID if none is found."""
    found = _top_level(text)
    if found is None or found[0] != "{":
        return _NO_ID
    for member in found[1]:
        match = _MEMBER.match(member)
        if match is None:
            continue
        try:
            if json.loads(match[1]) == "id":
                id = json.loads(match[2])
                return id if id is None or type(id) in (int, float, str) else _NO_ID
        except (ValueError, RecursionError):
            return _NO_ID
    return _NO_ID


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


def check_request(method: str, params: Params) -> None:
    """Check that a request can carry ``method`` and ``params``.

    Raises:
        TypeError: the method is not a string, or the params not a list, tuple, dict or None.
    """
    if not isinstance(method, str):
        raise TypeError(f"method must be a string, not {type(method).__name__}")
    if params is not None and not isinstance(params, (list, tuple, dict)):
        raise TypeError(f"params must be a list, a tuple, a dict or None, not {type(params).__name__}")


def request_object(method: str, params: Params, id: int | None, stream: bool = False) -> dict[str, Any]:
    """A Request object as jsonrpcclient builds it (no ``params`` when empty); a notification when ``id`` is None.

    Args:
        stream: add the extra member ``"stream": true``, which opts in to server push.

    Raises:
        TypeError: the method is not a string, or the params not a list, tuple, dict or None.
    """
    check_request(method, params)
    message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
    if params:
        message["params"] = params
    if id is not None:
        message["id"] = id
    if stream:
        message["stream"] = True
    return message


def request_bytes(method: str, params: Params, id: int, stream: bool = False) -> bytes:
    """A request, encoded (see :func:`request_object`).

    Raises:
        TypeError, ValueError: as :func:`request_object` and :func:`encode`.
    """
    if stream or type(method) is not str or (params is not None and type(params) not in _PARAMS_TYPES):
        return encode(request_object(method, params, id, stream))
    # The usual call, built here as request_object() builds it (two calls less; the tests compare them).
    if params:
        return encode({"jsonrpc": "2.0", "method": method, "params": params, "id": id})
    return encode({"jsonrpc": "2.0", "method": method, "id": id})


@dataclass(slots=True)
class Members:
    """A batch's members, each checked when added (:func:`check_request`), kept side by side.

    Lists rather than an object per member: with a thousand members, each object
    more is a thousand more for the garbage collector to walk (issue 13).
    """

    methods: list[str] = field(default_factory=list)
    params: list[Params] = field(default_factory=list)
    notifications: set[int] = field(default_factory=set)  # the positions of the notifications

    def __len__(self) -> int:
        return len(self.methods)

    @property
    def calls(self) -> int:
        """How many members are calls (they take an id, and get an answer)."""
        return len(self.methods) - len(self.notifications)

    def add(self, method: str, params: Params, call: bool = True) -> int:
        """Add a member; its position."""
        at = len(self.methods)
        self.methods.append(method)
        self.params.append(params)
        if not call:
            self.notifications.add(at)
        return at


def batch_messages(members: Members, ids: range) -> list[dict[str, Any]]:
    """A batch's Request objects, as :func:`request_object` builds each, its calls numbered from ``ids``.

    Args:
        members: the batch's members; a notification takes no id.
        ids: as many ids as there are calls.
    """
    methods, params = members.methods, members.params
    if not members.notifications:  # calls only: one comprehension, most of a batch's cost (issue 13)
        if all(params):
            return [
                {"jsonrpc": "2.0", "method": method, "params": p, "id": id}
                for method, p, id in zip(methods, params, ids, strict=True)
            ]
        return [
            {"jsonrpc": "2.0", "method": method, "params": p, "id": id}
            if p
            else {"jsonrpc": "2.0", "method": method, "id": id}
            for method, p, id in zip(methods, params, ids, strict=True)
        ]
    numbers = iter(ids)
    messages = []
    for at, (method, p) in enumerate(zip(methods, params, strict=True)):
        message: dict[str, Any] = {"jsonrpc": "2.0", "method": method}
        if p:
            message["params"] = p
        if at not in members.notifications:
            message["id"] = next(numbers)
        messages.append(message)
    return messages


def notification_bytes(method: str, params: Params) -> bytes:
    """A notification (no id), encoded.

    Raises:
        TypeError, ValueError: as :func:`request_bytes`.
    """
    return encode(request_object(method, params, None))


def cancel_message(ids: Sequence[int]) -> bytes:
    """The ``rpc.cancel`` notification for one request id, or a batch of them for several, encoded."""
    notes = [request_object("rpc.cancel", {"id": id}, None) for id in ids]
    return encode(notes[0] if len(notes) == 1 else notes)


def response_from(obj: dict[str, Any]) -> Response:
    """An answer as a value, read as jsonrpcclient's ``parse`` reads it.

    Raises:
        KeyError, TypeError, AttributeError: it is not a Response object.
    """
    if "result" in obj:
        return Ok(obj["result"], obj["id"])
    error = obj["error"]
    return Error(error["code"], error["message"], error.get("data"), obj["id"])


def outcome_from(obj: Any) -> Response | ProtocolError:
    """A batch member's answer (a decoded Response object) as its outcome: ``Ok``, ``Error``, or the ProtocolError."""
    try:
        return response_from(obj)
    except (KeyError, TypeError, AttributeError):
        id = obj.get("id") if isinstance(obj, dict) else None
        text = repr(obj)
        short = text if len(text) <= 200 else text[:197] + "..."
        return ProtocolError(f"the answer to request id {id!r} is not a JSON-RPC 2.0 response: {short}")


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
    if type(response) is Ok:
        return response[0]
    if isinstance(response, Ok):
        return response.result
    raise RpcError(response.code, response.message, response.data)
