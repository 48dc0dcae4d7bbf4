"""Rate limits: a token bucket per connection, or per identity across its connections.

``--rate-limit CALLS/S`` with ``--rate-burst CALLS``: each call (each member
of a batch) takes one token; tokens come back at the rate, up to the burst.
A call that finds none is answered -32005 "Rate limited", with
``data.retry_after`` the seconds until one is back (see
:meth:`~.dispatch.Dispatcher`). ``rpc.cancel`` is never limited: it only frees
what the caller holds.

Once the handshake has given the connection an identity (authentication),
every connection of that identity draws on one bucket, so opening more
connections buys no more calls; an anonymous connection has its own.

Why not the ``limits`` package (5.8): measured here side by side
(``python -m benchmarks.ratelimit``), one ``hit()`` with its in-memory storage
cost 5 µs (fixed window), 16 µs (sliding window counter) and 25 µs (moving
window), against 0.24 µs for this bucket, on a ``multiply`` whose whole
dispatch costs about 3 µs. ``limits`` is the one to take when the limit must
hold across processes (its Redis storage); within one process this is enough.
"""

from __future__ import annotations

import time

__all__ = ["RateLimiter", "TokenBucket"]

# Past this many identities' buckets, those refilled to the brim (no different
# from new ones) are dropped, so a stream of identities cannot grow the table.
_PRUNE_ABOVE = 1024


class TokenBucket:
    """Up to ``burst`` calls at once, then ``rate`` calls per second.

    >>> bucket = TokenBucket(rate=10.0, burst=2)
    >>> bucket.take(), bucket.take(), bucket.take()
    (True, True, False)
    """

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.tokens = float(burst)
        self.stamp = time.monotonic()

    def _refill(self) -> float:
        now = time.monotonic()
        tokens = self.tokens + (now - self.stamp) * self.rate
        self.stamp = now
        if tokens > self.burst:
            tokens = self.burst
        self.tokens = tokens
        return tokens

    def take(self) -> bool:
        """Spend one call; False when there is none left."""
        if self._refill() >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until the next call would be allowed (rounded up to the millisecond)."""
        missing = 1.0 - self._refill()
        return 0.0 if missing <= 0 else -(-missing * 1000 // self.rate) / 1000

    def full(self) -> bool:
        return self._refill() >= self.burst


class RateLimiter:
    """Hands out buckets: one per identity, shared by its connections; one per anonymous connection.

    Args:
        rate: calls per second; None turns limiting off (:meth:`bucket` gives None).
        burst: calls that may come at once.
    """

    def __init__(self, rate: float | None, burst: int) -> None:
        self.rate = rate
        self.burst = burst
        self._by_identity: dict[str, TokenBucket] = {}

    def bucket(self, identity: str | None) -> TokenBucket | None:
        """The bucket the calls of a connection with this identity draw on."""
        if self.rate is None:
            return None
        if identity is None:
            return TokenBucket(self.rate, self.burst)
        bucket = self._by_identity.get(identity)
        if bucket is None:
            if len(self._by_identity) >= _PRUNE_ABOVE:
                self._by_identity = {key: b for key, b in self._by_identity.items() if not b.full()}
            bucket = self._by_identity[identity] = TokenBucket(self.rate, self.burst)
        return bucket
