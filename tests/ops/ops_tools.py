"""Tools the operations tests serve with ``--tools tests.ops.ops_tools``: who answered, and publishing."""

from __future__ import annotations

import os
from typing import Any

from rpc_server import Context, Registry

registry = Registry()


@registry.tool
def whoami() -> int:
    """The pid of the process that answered (with workers: which worker)."""
    return os.getpid()


@registry.tool
def announce(topic: str, event: Any, ctx: Context) -> int:
    """Publish ``event`` on ``topic`` from this server; how many local subscribers it reached."""
    return ctx.publish(topic, event)


@registry.tool
def explode(secret: str) -> None:
    """Fails with a traceback, which the server logs; ``secret`` must not appear in any log."""
    raise RuntimeError("the tool broke")
