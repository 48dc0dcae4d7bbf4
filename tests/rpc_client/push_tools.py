"""Tools for a server subprocess (``python -m rpc_server --tools tests.rpc_client.push_tools``) in the CLI tests.

``wait_for_cancel`` prints ``started`` when it runs and, when cancelled, what
cancelled it, so a test can wait on those lines instead of on the clock.
"""

from __future__ import annotations

import asyncio

from rpc_server import Context, Registry

__all__ = ["registry"]

registry = Registry()


@registry.tool
async def wait_for_cancel(ctx: Context) -> None:
    print("started", flush=True)
    try:
        await asyncio.Event().wait()
    except asyncio.CancelledError:
        # Session.cancel() marks the id before cancelling: only rpc.cancel leaves it there.
        how = "rpc.cancel" if ctx.request_id in ctx.session.cancelling else "the connection closing"
        print(f"cancelled by {how}", flush=True)
        raise
