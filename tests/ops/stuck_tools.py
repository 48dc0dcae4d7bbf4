"""Tools whose import never ends in a worker (``RPC_WORKER`` set): a worker that hangs before it listens."""

from __future__ import annotations

import os
import time

from rpc_server import Registry

if os.environ.get("RPC_WORKER"):
    time.sleep(600)  # the supervisor kills it long before

registry = Registry()


@registry.tool
def nothing() -> None:
    """Never served: the workers do not get this far."""
