"""The cost of one rate-limit check: this project's token bucket against the ``limits`` package.

``python -m benchmarks.ratelimit`` times, in one process and side by side,
``TokenBucket.take()`` (rpc_server.ratelimit) and ``hit()`` of the ``limits``
package's in-memory strategies, each on one key, as the dispatcher would once
per call. ``limits`` is not a dependency: ``pip install limits`` to compare
(without it only the bucket is timed). Figures are µs per check, the best of
several rounds; the ratio between them is what to read on a shared machine.
"""

from __future__ import annotations

import argparse
import json
import sys
import timeit
from collections.abc import Callable, Sequence

__all__ = ["main"]


def _checks() -> dict[str, Callable[[], object]]:
    from rpc_server.ratelimit import TokenBucket

    bucket = TokenBucket(rate=1e9, burst=10**9)  # never empty: the check, not the refusal, is timed
    checks: dict[str, Callable[[], object]] = {"rpc_server TokenBucket.take": bucket.take}
    try:
        import limits
        from limits.storage import MemoryStorage
        from limits.strategies import (
            FixedWindowRateLimiter,
            MovingWindowRateLimiter,
            SlidingWindowCounterRateLimiter,
        )
    except ImportError:
        print("limits is not installed (pip install limits): timing the bucket only", file=sys.stderr)
        return checks
    item = limits.parse("1000000000/second")
    for cls in (FixedWindowRateLimiter, SlidingWindowCounterRateLimiter, MovingWindowRateLimiter):
        limiter = cls(MemoryStorage())
        checks[f"limits {cls.__name__}.hit"] = lambda limiter=limiter: limiter.hit(item, "connection-1")
    return checks


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.ratelimit", description=__doc__.split("\n")[0])
    parser.add_argument("--number", type=int, default=20_000, help="checks per round (default %(default)s)")
    parser.add_argument("--rounds", type=int, default=7, help="rounds; the best counts (default %(default)s)")
    args = parser.parse_args(argv)
    figures = {}
    for name, check in _checks().items():
        best = min(timeit.repeat(check, number=args.number, repeat=args.rounds))
        figures[name] = round(best / args.number * 1e6, 3)
    print(json.dumps({"us_per_check": figures}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
