"""Reading an answer strictly, and comparing it with the specification's; no I/O.

An answer must be a text frame holding exactly one JSON value (RFC 8259: no
NaN or Infinity, no repeated member names). It is then compared as JSON, not
as Python: ``true`` is not ``1``, ``"1"`` is not ``1``, an integer must come
back with every digit, and an Object must have exactly the expected members,
no more. Numbers compare by value (``19`` and ``19.0`` are the same JSON
number). The one latitude is the error object's ``data``, which section 5.1
leaves to the server; it is removed before comparing. A batch's answer is
compared as a set of Response objects, since section 6 lets them come in any
order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

__all__ = ["Deviation", "difference", "matches", "parse", "show"]


class Deviation(AssertionError):
    """The server's answer breaks a rule; the message says which, and how."""


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _no_repeats(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        repeated = sorted({k for k, _ in pairs if sum(1 for other, _ in pairs if other == k) > 1})
        raise ValueError(f"an Object repeats the member(s) {', '.join(map(json.dumps, repeated))}")
    return obj


def parse(frame: str | bytes) -> Any:
    """The JSON value of an answer frame.

    Raises:
        Deviation: a binary frame, or text that is not one JSON value.
    """
    __tracebackhide__ = True
    if not isinstance(frame, str):
        raise Deviation(f"the answer came in a binary frame, not a text frame: {frame[:200]!r}")
    try:
        return json.loads(frame, parse_constant=_no_constant, object_pairs_hook=_no_repeats)
    except ValueError as exc:
        raise Deviation(f"the answer is not JSON ({exc}): {frame[:200]!r}") from None


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a Boolean"
    if isinstance(value, int | float):
        return "a Number"
    if isinstance(value, str):
        return "a String"
    if isinstance(value, list):
        return "an Array"
    return "an Object"


def _without_data(value: Any) -> Any:
    """A Response object (or an Array of them) with the error's optional ``data`` taken out."""
    if isinstance(value, list):
        return [_without_data(v) for v in value]
    if isinstance(value, dict) and isinstance(value.get("error"), dict) and "data" in value["error"]:
        return {**value, "error": {k: v for k, v in value["error"].items() if k != "data"}}
    return value


def _lacks_and_has(where: str, missing: list[str], extra: list[str]) -> str:
    parts = []
    if missing:
        parts.append(f"lacks {', '.join(missing)}")
    if extra:
        parts.append(f"has {', '.join(extra)}, which it must not")
    return f"{where} {' and '.join(parts)}"


def _same(a: Any, b: Any) -> bool:
    return _difference(a, b, "") is None


def _difference(expected: Any, actual: Any, path: str) -> str | None:
    where = path or "the answer"
    if _kind(expected) != _kind(actual):
        return f"{where} is {_kind(actual)} ({show(actual)}), not {_kind(expected)} ({show(expected)})"
    if isinstance(expected, dict):
        missing = [json.dumps(k) for k in expected if k not in actual]
        extra = [json.dumps(k) for k in actual if k not in expected]
        if missing or extra:
            return _lacks_and_has(where, missing, extra)
        for key in expected:
            found = _difference(expected[key], actual[key], f"{path}.{key}" if path else key)
            if found is not None:
                return found
        return None
    if isinstance(expected, list):
        if len(expected) != len(actual):
            return f"{where} has {len(actual)} member(s), not {len(expected)}"
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            found = _difference(e, a, f"{path}[{i}]")
            if found is not None:
                return found
        return None
    if expected != actual:
        return f"{where} is {show(actual)}, not {show(expected)}"
    return None


def _unmatched(expected: Sequence[Any], actual: Sequence[Any]) -> tuple[list[Any], list[Any]]:
    """The members of each list that have no equal in the other, counted as multisets."""
    left = list(actual)
    missing = []
    for member in expected:
        for i, candidate in enumerate(left):
            if _same(member, candidate):
                del left[i]
                break
        else:
            missing.append(member)
    return missing, left


def difference(expected: Any, actual: Any, whole: str = "the batch's answer") -> str | None:
    """What sets ``actual`` (a parsed answer) apart from ``expected``, in a sentence; None when it matches.

    A list ``expected`` is a batch's answer (``whole`` in the sentence): the same members, in any order.
    """
    actual = _without_data(actual)
    if isinstance(expected, list) and isinstance(actual, list):
        missing, extra = _unmatched(expected, actual)
        if not missing and not extra:
            return None
        return _lacks_and_has(whole, [show(m) for m in missing], [show(e) for e in extra])
    return _difference(expected, actual, "")


def matches(accepted: Sequence[Any], actual: Any) -> bool:
    """Whether a parsed answer is one of the accepted ones."""
    return any(difference(expected, actual) is None for expected in accepted)


def show(value: Any) -> str:
    """A value as compact JSON, for messages."""
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
