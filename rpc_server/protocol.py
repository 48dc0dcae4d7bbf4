"""The JSON-RPC 2.0 wire format: decoding, the request envelope and encoding.

Nothing here does I/O. Messages go in as ``str`` or ``bytes`` and responses come
out as UTF-8 encoded JSON ``bytes``, which the transport sends as text frames.

The envelope check is written by hand rather than run through a JSON Schema
validator: with the ``oneOf`` of ``schemas/request.json`` a compiled validator
took 5.7 µs a request here, more than the whole rest of a ``multiply`` call. A
test checks that :func:`request_error` and the schema file agree.
"""

from __future__ import annotations

import json
import math
from typing import Any

import orjson
from jsonrpcserver.sentinels import NODATA

from . import codes

__all__ = [
    "MAX_DEPTH",
    "NOID",
    "PART_DEPTH",
    "DecodeError",
    "Encoded",
    "TooDeep",
    "decode",
    "decode_error_text",
    "encode",
    "encode_batch",
    "encode_part",
    "error",
    "request_error",
    "success",
]

# The id of a notification. A distinct object, because ``None`` is a valid id.
NOID: Any = object()

DecodeError = orjson.JSONDecodeError

# orjson reads integers beyond 64 bits as floats. Where that would change what
# the caller meant (an id to echo, a number to compute with) the message is
# read again by the standard library, which keeps them exact. Deeper values
# are not looked at: walking every message would cost more than the parse.
_EXACT_FLOATS = 2.0**63


# The deepest nesting read: orjson's own limit. Everything read can be written
# back (see _write_deep), and nothing deeper is written: an answer the server
# itself could not read would break the client that gets it.
MAX_DEPTH = 1024
# A generator's part, gathered, sits in the result's array, in its Response
# object and maybe in a batch's array: three levels less for it.
PART_DEPTH = MAX_DEPTH - 3
# Python refuses to turn longer digit strings into integers (CVE-2020-10735).
MAX_INT_DIGITS = 4300


def _refuse_constant(name: str) -> Any:
    raise DecodeError(f"{name} is not valid JSON", "", 0)


def decode_error_text(exc: DecodeError) -> str:
    """What a caller is told of a message that could not be read: where, when the place is known."""
    return str(exc) if exc.doc else exc.msg


def _sentence(exc: DecodeError) -> DecodeError:
    """orjson's error in our words where its own would be obscure; its position kept."""
    text = str(exc)
    if text.startswith("depth limit exceeded"):
        return DecodeError(f"nested more than {MAX_DEPTH} levels deep", "", 0)
    return exc


def _rounded(obj: Any) -> bool:
    """True if an id or a top-level param of ``obj`` may be an integer orjson rounded."""
    # One loop with no call per request: for a batch of 1,000 the calls cost more than the tests.
    for request in obj if type(obj) is list else (obj,):
        if type(request) is not dict:
            continue
        value = request.get("id")
        if type(value) is float and abs(value) >= _EXACT_FLOATS:
            return True
        params: Any = request.get("params")
        kind = type(params)
        if kind is list or kind is dict:
            for value in params if kind is list else params.values():
                if type(value) is float and abs(value) >= _EXACT_FLOATS:
                    return True
    return False


def decode(message: str | bytes) -> Any:
    """Parse one message.

    Raises:
        DecodeError: it is not JSON (NaN and Infinity included, which JSON lacks).
    """
    try:
        obj = orjson.loads(message)
    except DecodeError as exc:
        if not str(exc).startswith("number is infinity"):
            raise _sentence(exc) from None
        # An integer of over 308 digits, which orjson reads as a float: valid JSON,
        # and what pow() may have answered. Floats that large stay refused.
        return _decode_exactly(message)
    if not _rounded(obj):
        return obj
    return _decode_exactly(message)


class _Refused(ValueError):
    """A number the exact parse refuses, with the sentence the caller gets."""


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        shown = text if len(text) <= 20 else text[:20] + "..."
        raise _Refused(f"the number {shown} is too large for a floating-point number")
    return value


def _integer(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _Refused(f"an integer of {len(text.lstrip('-'))} digits is longer than the {MAX_INT_DIGITS} digits read")
    return int(text)


def _decode_exactly(message: str | bytes) -> Any:
    """The standard library's parse: slower, but integers of any size stay exact.

    Its errors are rewritten into sentences of ours: the standard library's
    own name Python's internals (``sys.set_int_max_str_digits()``).
    """
    try:
        return json.loads(message, parse_constant=_refuse_constant, parse_float=_finite, parse_int=_integer)
    except RecursionError:
        raise DecodeError("nested too deeply to read its large integers exactly", "", 0) from None
    except _Refused as exc:
        raise DecodeError(str(exc), "", 0) from None
    except json.JSONDecodeError as exc:
        raise DecodeError(exc.msg, exc.doc, exc.pos) from None
    except ValueError:  # any other refusal of the standard library: no internals in the answer
        raise DecodeError("not valid JSON", "", 0) from None


# Sets, not tuples: ``type(x) in`` a frozenset is one hash lookup.
_ID_TYPES = frozenset((str, int, float, type(None)))
_PARAMS_TYPES = frozenset((list, dict))
# "stream" is this project's one extension: a caller's opt-in to pushed parts
# and progress (see session.py). Plain JSON-RPC 2.0 clients never send it.
_MEMBERS = frozenset(("jsonrpc", "method", "params", "id", "stream"))
_ABSENT: Any = object()


def request_error(obj: Any) -> str | None:
    """Say why ``obj`` is not a valid JSON-RPC 2.0 Request object, or return None.

    ``bool`` is excluded from the number types on purpose (``type(x) is int``):
    ``true`` is not a valid id.
    """
    if type(obj) is not dict:
        return "a request must be a JSON object"
    if obj.get("jsonrpc") != "2.0":
        return 'jsonrpc must be exactly "2.0"'
    if type(obj.get("method")) is not str:
        return "method must be a string"
    expected = 2
    params = obj.get("params", _ABSENT)
    if params is not _ABSENT:
        if type(params) not in _PARAMS_TYPES:
            return "params must be an array or an object"
        expected = 3
    id = obj.get("id", _ABSENT)
    if id is not _ABSENT:
        if type(id) not in _ID_TYPES:
            return "id must be a string, a number or null"
        expected += 1
    if len(obj) != expected:
        stream = obj.get("stream", _ABSENT)
        if stream is not _ABSENT:
            if type(stream) is not bool:
                return "stream must be true or false"
            expected += 1
        if len(obj) != expected:
            extra = sorted(k for k in obj if k not in _MEMBERS)
            return f"unexpected member {extra[0]!r}"
    return None


def success(result: Any, id: Any) -> dict[str, Any]:
    """The Response object for a result."""
    return {"jsonrpc": "2.0", "result": result, "id": id}


def error(code: int, data: Any = NODATA, id: Any = None, message: str | None = None) -> dict[str, Any]:
    """The Response object for an error; ``data`` is left out when not given."""
    body: dict[str, Any] = {"code": code, "message": message or codes.MESSAGES[code]}
    if data is not NODATA:
        body["data"] = data
    return {"jsonrpc": "2.0", "error": body, "id": id}


class TooDeep(ValueError):
    """A message would be nested deeper than :data:`MAX_DEPTH`, which no JSON reader here takes back."""

    def __init__(self) -> None:
        super().__init__(f"the answer would be nested more than {MAX_DEPTH} levels deep")


class Encoded:
    """A value already written as JSON (a generator's parts, gathered as they came), embedded as it is.

    Held as text rather than as Python objects: a list of 3 million small
    integers takes over 100 MB, the same list written out 18 MB.
    """

    __slots__ = ("json",)

    def __init__(self, json: bytes) -> None:
        self.json = json

    def __repr__(self) -> str:
        return f"Encoded({self.json[:40]!r}{'...' if len(self.json) > 40 else ''})"


def _orjson_default(value: Any) -> Any:
    if type(value) is Encoded:
        return orjson.Fragment(value.json)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _json_default(value: Any) -> Any:
    # The standard library cannot embed raw JSON: read it back (a rare path, see encode()).
    if type(value) is Encoded:
        return json.loads(value.json)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _dumps_fallback(obj: Any, max_depth: int) -> bytes:
    # orjson refuses integers beyond 64 bits, which JSON allows and arithmetic
    # tools produce, and nesting deeper than 254 levels; the standard library
    # writes both, down to Python's recursion limit, and _write_deep the rest.
    try:
        text = json.dumps(obj, separators=(",", ":"), allow_nan=False, ensure_ascii=False, default=_json_default)
    except RecursionError:
        return _write_deep(obj, max_depth).encode()
    # The standard library's bound is the recursion limit (from Python 3.12, the C stack's), not ours.
    # Fewer brackets than the limit cannot nest deeper (brackets in strings only add to the count).
    if text.count("[") + text.count("{") > max_depth and _deeper_than(obj, max_depth):
        raise TooDeep
    return text.encode()


def _deeper_than(obj: Any, max_depth: int) -> bool:
    """Whether ``obj`` holds containers nested more than ``max_depth`` levels; one loop, no recursion."""
    stack = [(obj, 1)] if isinstance(obj, (dict, list, tuple)) else []
    while stack:
        value, depth = stack.pop()
        members = value.values() if isinstance(value, dict) else value
        if depth > max_depth:
            return True
        stack.extend((member, depth + 1) for member in members if isinstance(member, (dict, list, tuple)))
    return False


def _write_deep(obj: Any, max_depth: int = MAX_DEPTH) -> str:
    """JSON text for a value nested too deep for the recursive writers; one loop, no recursion.

    Raises:
        TooDeep: the text would be nested more than ``max_depth`` levels.
        TypeError, ValueError: a value JSON cannot carry.
    """
    out: list[str] = []
    # Each entry: an iterator over a container's members, and the text that closes it.
    stack: list[tuple[Any, str]] = []
    value, first = obj, True
    while True:
        kind = type(value)
        if kind is dict or kind is list or kind is tuple:
            if len(stack) == max_depth:
                raise TooDeep
            if kind is dict:
                out.append("{")
                stack.append((iter(value.items()), "}"))
            else:
                out.append("[")
                stack.append((iter(value), "]"))
            first = True
        elif kind is Encoded:
            out.append(value.json.decode())
        else:
            out.append(json.dumps(value, separators=(",", ":"), allow_nan=False, ensure_ascii=False))
        # The next value to write, closing the containers that are done.
        while stack:
            members, close = stack[-1]
            member = next(members, _ABSENT)
            if member is _ABSENT:
                stack.pop()
                out.append(close)
                first = False
                continue
            if not first:
                out.append(",")
            first = False
            if close == "}":
                key, value = member
                if type(key) is not str:
                    raise TypeError("object keys must be strings")
                out.append(json.dumps(key, ensure_ascii=False) + ":")
            else:
                value = member
            break
        else:
            return "".join(out)


def encode(response: dict[str, Any] | list[dict[str, Any]]) -> bytes:
    """Serialise one Response object, or a batch's array of them.

    orjson writes NaN and infinities as ``null``; the dispatcher refuses
    such results before they get here (see ``dispatch._non_finite``).
    A message is nested at most :data:`MAX_DEPTH` levels deep, an object one
    level less: it may yet be written into a batch's array (:func:`encode_batch`).

    Raises:
        TooDeep: it would be nested deeper than that.
        TypeError, ValueError: a result that JSON cannot carry.
    """
    try:
        return orjson.dumps(response, default=_orjson_default)
    except TypeError:
        return _dumps_fallback(response, MAX_DEPTH if type(response) is list else MAX_DEPTH - 1)


def encode_part(value: Any) -> bytes:
    """A generator's part, to gather into a result's array: nested at most :data:`PART_DEPTH` levels.

    Raises:
        TooDeep: it is nested deeper than that.
        TypeError, ValueError: a value that JSON cannot carry.
    """
    try:
        return orjson.dumps(value, default=_orjson_default)
    except TypeError:
        return _dumps_fallback(value, PART_DEPTH)


def encode_batch(responses: list[bytes]) -> bytes:
    """Join already-encoded Response objects into a batch response array."""
    return b"[" + b",".join(responses) + b"]"
