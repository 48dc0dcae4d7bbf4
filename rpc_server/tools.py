"""The built-in tools: the seed's ``operations.py``, grown.

Their params schemas live in ``schemas/tools/<name>.json``, so type checks
(numbers only: ``multiply("ab", 3)`` would be ``"ababab"`` in Python) happen
before a tool runs; a result schema richer than the return annotation, in
``schemas/results/<name>.json``. Results are checked here: integers stay integers up to
:data:`MAX_INT_BITS`, floats must be finite and real.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable
from typing import Any

from . import codes, schema
from .context import Context
from .errors import ToolError
from .registry import Registry

__all__ = [
    "MAX_INT_BITS",
    "MAX_SLEEP",
    "add",
    "builtin_tools",
    "count",
    "divide",
    "long_task",
    "multiply",
    "pow_",
    "sleep",
    "subtract",
    "sum_",
]

Number = int | float

# 4096 bits is about 1233 decimal digits: far past any float, yet cheap to
# compute and well under Python's 4300-digit limit on int-to-text conversion.
MAX_INT_BITS = 4096
MAX_SLEEP = 10.0


def _checked(x: Any) -> Number:
    """Refuse results that JSON cannot carry faithfully."""
    if type(x) is int:
        if x.bit_length() > MAX_INT_BITS:
            raise ToolError(codes.RESULT_TOO_LARGE, data=f"the result has more than {MAX_INT_BITS} bits")
        return x
    if type(x) is float and math.isfinite(x):
        return x
    what = "a complex number" if type(x) is complex else repr(x)
    raise ToolError(codes.NOT_FINITE, data=f"the result would be {what}")


def add(a: Number, b: Number) -> Number:
    return _checked(a + b)


def subtract(minuend: Number, subtrahend: Number) -> Number:
    return _checked(minuend - subtrahend)


def multiply(a: Number, b: Number) -> Number:
    return _checked(a * b)


def divide(dividend: Number, divisor: Number) -> Number:
    if divisor == 0:
        raise ToolError(codes.DIVISION_BY_ZERO, data="divisor is 0")
    if type(dividend) is int and type(divisor) is int:
        quotient, remainder = divmod(dividend, divisor)
        if remainder == 0:
            return quotient
    try:
        return _checked(dividend / divisor)
    except OverflowError:
        raise ToolError(codes.RESULT_TOO_LARGE, data="the quotient is beyond the range of a float") from None


def pow_(base: Number, exponent: Number) -> Number:
    if type(base) is int and type(exponent) is int and exponent > 0 and abs(base) > 1:
        # Refuse before computing: pow(10, 10**9) would hold the loop for minutes.
        if (abs(base).bit_length() - 1) * exponent > MAX_INT_BITS:
            raise ToolError(codes.RESULT_TOO_LARGE, data=f"the result has more than {MAX_INT_BITS} bits")
    if base == 0 and exponent < 0:
        raise ToolError(codes.DIVISION_BY_ZERO, data="0 cannot be raised to a negative power")
    try:
        return _checked(base**exponent)
    except OverflowError:
        raise ToolError(codes.RESULT_TOO_LARGE, data="the result is beyond the range of a float") from None


def sum_(*numbers: Number) -> Number:
    return _checked(sum(numbers))


async def sleep(seconds: float, value: Any = None) -> Any:
    await asyncio.sleep(seconds)
    return value


async def count(n: int, interval: float = 0.1) -> AsyncIterator[int]:
    """Stream the numbers 1 to n, one every ``interval`` seconds."""
    for i in range(1, n + 1):
        if i > 1:
            await asyncio.sleep(interval)
        yield i


LONG_TASK_STEPS = 10


async def long_task(seconds: float, ctx: Context) -> dict[str, Any]:
    """Work for ``seconds`` in ten steps, reporting progress after each."""
    for step in range(1, LONG_TASK_STEPS + 1):
        await asyncio.sleep(seconds / LONG_TASK_STEPS)
        await ctx.report(step, LONG_TASK_STEPS, f"step {step} of {LONG_TASK_STEPS}")
    return {"steps": LONG_TASK_STEPS, "seconds": seconds}


_BUILTINS: dict[str, Callable[..., Any]] = {
    "add": add,
    "subtract": subtract,
    "multiply": multiply,
    "divide": divide,
    "pow": pow_,
    "sum": sum_,
    "sleep": sleep,
    "count": count,
    "long_task": long_task,
}


# The application errors each may answer, for clients that list them (OpenRPC).
_ARITHMETIC_ERRORS = (codes.RESULT_TOO_LARGE, codes.NOT_FINITE)
_ERRORS: dict[str, tuple[int, ...]] = {
    "add": _ARITHMETIC_ERRORS,
    "subtract": _ARITHMETIC_ERRORS,
    "multiply": _ARITHMETIC_ERRORS,
    "divide": (codes.DIVISION_BY_ZERO, *_ARITHMETIC_ERRORS),
    "pow": (codes.DIVISION_BY_ZERO, *_ARITHMETIC_ERRORS),
    "sum": _ARITHMETIC_ERRORS,
}
_RESULTS = frozenset(("long_task",))


def builtin_tools() -> Registry:
    """A new registry holding the built-in tools, their schemas compiled."""
    registry = Registry()
    for name, fn in _BUILTINS.items():
        registry.add(
            fn,
            name=name,
            schema=schema.load(f"tools/{name}.json"),
            result=schema.load(f"results/{name}.json") if name in _RESULTS else None,
            errors=_ERRORS.get(name, ()),
        )
    return registry
