"""Tools for the tests of rpc_server.testing and of the pytest plugin, whose inner suites get a copy of this file."""

from __future__ import annotations

import asyncio

from rpc_server import Context, Registry, Topics

registry = Registry()


@registry.tool
def greet(name: str) -> str:
    return f"Hello, {name}!"


@registry.tool
async def hold(seconds: float) -> str:
    await asyncio.sleep(seconds)
    return "held"


@registry.tool
async def build(steps: int, ctx: Context) -> str:
    for step in range(1, steps + 1):
        await ctx.report(step, steps)
    return "built"


@registry.tool(blocking=True)
def shout(name: str) -> str:
    return name.upper()


other = Registry()


@other.tool
def farewell(name: str) -> str:
    return f"Bye, {name}."


def news() -> Topics:
    """A topic fed by publish() only."""
    topics = Topics()
    topics.add("news")
    return topics
