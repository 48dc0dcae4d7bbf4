"""The reconnection schedule: exponential growth, a ceiling, and jitter within bounds."""

from __future__ import annotations

import itertools
import random

import pytest

from rpc_client import Backoff


def test_delays_grow_exponentially_up_to_the_maximum_without_jitter():
    """With no jitter the delays double from initial and stay at maximum."""
    delays = list(itertools.islice(Backoff(initial=0.1, maximum=1.0, jitter=0).delays(), 6))
    assert delays == pytest.approx([0.1, 0.2, 0.4, 0.8, 1.0, 1.0])


def test_jittered_delays_stay_within_their_band_and_differ():
    """Each jittered delay lies between (1 - jitter) and 1 times its ceiling, and they are not all equal."""
    backoff = Backoff(initial=1.0, maximum=1.0, jitter=0.5)
    delays = list(itertools.islice(backoff.delays(random.Random(7)), 50))
    assert all(0.5 <= d <= 1.0 for d in delays)
    assert len(set(delays)) > 1


@pytest.mark.parametrize(
    "options", [{"initial": 0}, {"initial": 2, "maximum": 1}, {"factor": 0.5}, {"jitter": 1.5}, {"jitter": -0.1}]
)
def test_values_out_of_range_are_refused(options):
    """A schedule that would not back off, or jitter outside 0..1, raises ValueError."""
    with pytest.raises(ValueError):
        Backoff(**options)
