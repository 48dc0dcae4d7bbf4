"""Delays between reconnection attempts: exponential backoff with jitter; no I/O.

The n-th delay (from 0) is drawn uniformly from ``[(1 - jitter) * d, d]`` where
``d = min(maximum, initial * factor ** n)``. The jitter keeps many clients that
lost the same server from coming back at the same instant.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = ["Backoff"]


@dataclass(frozen=True, slots=True)
class Backoff:
    """The reconnection schedule.

    Args:
        initial: the first delay's ceiling, in seconds.
        maximum: no delay is longer.
        factor: how much the ceiling grows after each failed attempt.
        jitter: the share of each delay that is random, from 0 (none) to 1 (all of it).

    Raises:
        ValueError: a value out of range.
    """

    initial: float = 0.05
    maximum: float = 5.0
    factor: float = 2.0
    jitter: float = 0.5

    def __post_init__(self) -> None:
        if not 0 < self.initial <= self.maximum:
            raise ValueError("need 0 < initial <= maximum")
        if self.factor < 1:
            raise ValueError("factor must be at least 1")
        if not 0 <= self.jitter <= 1:
            raise ValueError("jitter must be from 0 to 1")

    def delays(self, rng: random.Random | None = None) -> Iterator[float]:
        """An endless series of delays, one per attempt."""
        uniform = (rng or random).uniform
        ceiling = self.initial
        while True:
            yield uniform((1 - self.jitter) * ceiling, ceiling)
            ceiling = min(self.maximum, ceiling * self.factor)
