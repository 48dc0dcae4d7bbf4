"""The abuse suite's settings: hypothesis profiles, and a check that no test left a traceback in the log.

Profiles (``HYPOTHESIS_PROFILE``): ``ci``, the default, runs a few thousand
examples in all and keeps the folder under a minute; ``long`` runs a hundred
times more, to run by hand before a release::

    HYPOTHESIS_PROFILE=long .venv/bin/pytest tests/abuse -k fuzz
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

# Each fuzz test scales its own count from max_examples (see test_fuzz.py).
settings.register_profile(
    "ci", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.register_profile(
    "long", max_examples=200_000, deadline=None, suppress_health_check=[HealthCheck.too_slow], print_blob=True
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


@pytest.fixture(autouse=True)
def no_traceback_logged(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Every test here also proves that the in-process server logged no exception."""
    caplog.set_level(logging.INFO, logger="rpc_server")
    yield
    failures = [r for r in caplog.get_records("call") if r.exc_info is not None and r.name.startswith("rpc_server")]
    assert not failures, f"a traceback was logged: {failures[0].getMessage()}"
