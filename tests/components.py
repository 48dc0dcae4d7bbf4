"""Real components the tests start (Redis, nginx, a browser): found, or the test says what to install.

Under ``CI=true`` a missing component fails the test, never skips it: CI must
prove what the tests claim. Elsewhere the test is skipped with the package to
install; ``scripts/test`` installs them when it can (see scripts/_system.sh).
"""

from __future__ import annotations

import os
import shutil

import pytest

__all__ = ["require_command"]


def require_command(command: str, package: str) -> str:
    """The path of ``command``; fails (CI) or skips (elsewhere) the test naming the Debian package when missing."""
    path = shutil.which(command) or next(
        (p for p in (f"/usr/sbin/{command}", f"/usr/bin/{command}") if os.access(p, os.X_OK)), None
    )
    if path is not None:
        return path
    message = f"{command} is not installed: apt-get install {package} (scripts/test does it when run as root)"
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
