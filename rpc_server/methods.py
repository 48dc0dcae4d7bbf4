"""The protocol's own methods, named ``rpc.*``: cancellation, subscriptions and discovery.

They are tools like any other (schemas derived from their signatures, errors
as values), kept in a registry of their own that users cannot add to.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from . import codes
from .context import Context
from .errors import InvalidParamsError, ToolError
from .registry import Registry, Tool, make_tool
from .session import TOPIC_PREFIX, Session

__all__ = ["protocol_methods"]


def cancel(id: str | int | float | None, ctx: Context) -> bool:
    """Cancel the running call with this request id; it answers -32800.

    Sent as a notification, like LSP's ``$/cancelRequest``; as a request it
    answers whether there was such a call.

    Args:
        id: the id of the request to cancel.
    """
    return ctx.session.cancel(id)


def subscribe(topic: str, params: list[Any] | dict[str, Any] | None = None, *, ctx: Context) -> str:
    """Subscribe to a topic; answers the subscription id that its events carry.

    The caller needs the permission ``topic:NAME`` (-32004 otherwise).

    Args:
        topic: the topic's name (the document's ``x-topics`` lists them).
        params: the topic's params, by position or by name.
    """
    session = ctx.session
    found = session.topics.get(topic) if session.topics is not None else None
    if found is None:
        names = session.topics.names() if session.topics is not None else []
        known = ", ".join(name for name in names if session.permits(TOPIC_PREFIX + name)) or "none"
        raise InvalidParamsError(f"unknown topic {topic!r} (topics: {known})")
    if not session.permits(TOPIC_PREFIX + topic):
        raise ToolError(codes.FORBIDDEN, data=f"not allowed to subscribe to {TOPIC_PREFIX + topic!r}")
    if len(session.subscriptions) >= session.max_subscriptions:
        raise ToolError(
            codes.TOO_MANY_SUBSCRIPTIONS,
            data=f"a connection may hold at most {session.max_subscriptions} subscriptions",
        )
    assert session.topics is not None
    if session.topics.count() >= session.max_subscriptions_total:
        raise ToolError(
            codes.TOO_MANY_SUBSCRIPTIONS,
            data=f"the server holds its limit of {session.max_subscriptions_total} subscriptions; try again later",
        )
    topic_params = params if params is not None else []
    topic_params = found.validate(topic_params)
    return session.topics.subscribe(found, topic_params, session).id


def unsubscribe(subscription: str, ctx: Context) -> bool:
    """End a subscription; false when this connection holds none of that id.

    Its tasks are cancelled here and now, so no event of it is sent after the
    answer; they finish on their own.

    Args:
        subscription: the id that rpc.subscribe answered.
    """
    held = ctx.session.subscriptions.get(subscription)
    if held is None:
        return False
    held.cancel()
    return True


# The schema of rpc.discover's result, as the OpenRPC specification's own example gives it.
OPENRPC_DOCUMENT = {"$ref": "https://meta.open-rpc.org/"}


def _discover(describe: Callable[[Session], dict[str, Any]]) -> Tool:
    def discover(ctx: Context) -> dict[str, Any]:
        """The OpenRPC document of this server: the methods you may call, their params, results and errors."""
        return describe(ctx.session)

    return make_tool(discover, name="rpc.discover", result=OPENRPC_DOCUMENT)


def protocol_methods(describe: Callable[[Session], dict[str, Any]] | None = None) -> Registry:
    """A new registry of the ``rpc.*`` methods.

    Args:
        describe: the OpenRPC document for a session; with it, ``rpc.discover`` answers it.
    """
    tools = [make_tool(fn, name=f"rpc.{fn.__name__}") for fn in (cancel, subscribe, unsubscribe)]
    if describe is not None:
        tools.append(_discover(describe))
    return Registry(tools, reserved=True)
