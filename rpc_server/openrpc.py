"""The OpenRPC document of a server: what ``rpc.discover`` answers and ``GET /openrpc.json`` serves.

The document follows OpenRPC 1.3.2 (https://spec.open-rpc.org/), the newest
version that the official meta-schema (npm ``@open-rpc/meta-schema`` 1.14)
accepts; the tests validate it against that meta-schema. It is built from
the registry each time it is asked for, so tools added later are in it, and
from nothing else (see :mod:`.describe`). No I/O.

This server's extensions, in ``x-`` members as the specification allows:

- ``x-stream`` on a method: ``{"part": content descriptor}``. A request with
  the member ``"stream": true`` gets each part as an ``rpc.part``
  notification and then the number of parts as its result; without it, the
  result is the parts in one array.
- ``x-progress: true`` on a method: it reports progress as ``rpc.progress``
  notifications to a request with ``"stream": true``.
- ``x-variadic: true`` on a param: the rest of the by-position params, any
  number of them, each fitting its schema (Python's ``*args``).
- ``x-additional-params`` on a method: the schema of params by name beyond
  those listed (Python's ``**kwargs``).
- ``x-topics`` on the document: what ``rpc.subscribe`` offers, each topic
  with its params (as a method's) and the schema of its events.
- ``x-notifications`` on the document: the notifications the server sends.
"""

from __future__ import annotations

import functools
import importlib.metadata
from collections.abc import Callable, Iterable
from typing import Any

from . import schema as schemas
from .describe import Description, Param, Params, describe, params_of, summary
from .registry import Registry
from .session import TOPIC_PREFIX, TopicDirectory
from .topics import Topic

__all__ = ["NOTIFICATIONS", "OPENRPC_VERSION", "document", "method", "package_version", "topic"]

OPENRPC_VERSION = "1.3.2"

_TITLE = "rpc-tools"
_DESCRIPTION = "Python functions served as JSON-RPC 2.0 methods over one WebSocket."


def _param(name: str, schema: dict[str, Any], description: str, required: bool = True) -> dict[str, Any]:
    return {"name": name, "description": description, "required": required, "schema": schema}


# What the server pushes (see session.py and topics.py), for clients that want to read it.
NOTIFICATIONS: list[dict[str, Any]] = [
    {
        "name": "rpc.part",
        "summary": 'One part of a streamed result, to a request sent with "stream": true.',
        "params": [
            _param("id", {"type": ["string", "number", "null"]}, "the id of the request"),
            _param("value", {}, "the part"),
        ],
    },
    {
        "name": "rpc.progress",
        "summary": 'Progress of a call, to a request sent with "stream": true.',
        "params": [
            _param("id", {"type": ["string", "number", "null"]}, "the id of the request"),
            _param("done", {"type": "number"}, "work done so far"),
            _param("total", {"type": ["number", "null"]}, "all the work, when known"),
            _param("message", {"type": ["string", "null"]}, "what is being done"),
        ],
    },
    {
        "name": "rpc.event",
        "summary": "An event of a subscription (see rpc.subscribe and x-topics).",
        "params": [
            _param("subscription", {"type": "string"}, "the subscription's id, as rpc.subscribe answered"),
            _param("topic", {"type": "string"}, "the topic's name"),
            _param("event", {}, "the event"),
            _param("dropped", {"type": "integer", "minimum": 1}, "events lost before this one", required=False),
        ],
    },
    {
        "name": "rpc.unsubscribed",
        "summary": "The server ended a subscription (its source finished or failed).",
        "params": [
            _param("subscription", {"type": "string"}, "the subscription's id"),
            _param("reason", {"type": "string"}, "why"),
        ],
    },
]


@functools.cache
def package_version() -> str:
    """The installed version of rpc-tools."""
    try:
        return importlib.metadata.version("rpc-tools")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "0+unknown"


def _content_descriptor(p: Param) -> dict[str, Any]:
    descriptor: dict[str, Any] = {"name": p.name}
    text = p.schema.get("description")
    if isinstance(text, str) and text:
        descriptor["description"] = text
    descriptor["required"] = p.required
    descriptor["schema"] = p.schema
    if p.variadic:
        descriptor["x-variadic"] = True
    return descriptor


def _params(params: Params, into: dict[str, Any]) -> None:
    into["paramStructure"] = params.structure
    into["params"] = [_content_descriptor(p) for p in params.params]
    if not params.listed:
        into["x-params-schema"] = params.schema  # a shape describe.py cannot list: the whole schema
    elif params.extra is not None:
        into["x-additional-params"] = params.extra


def method(description: Description) -> dict[str, Any]:
    """One OpenRPC method object from a tool's :class:`~.describe.Description`."""
    d = description
    obj: dict[str, Any] = {"name": d.name}
    if d.summary:
        obj["summary"] = d.summary
    if d.description and d.description != d.summary:
        obj["description"] = d.description
    _params(d.params, obj)
    result: dict[str, Any] = {"name": "result", "schema": d.result if d.result is not None else {}}
    if d.stream:
        result["description"] = 'the parts, in one array; with "stream": true, the number of parts pushed'
        obj["x-stream"] = {"part": {"name": "part", "schema": d.part}}
    obj["result"] = result
    if d.progress:
        obj["x-progress"] = True
    if d.errors:
        obj["errors"] = [{"code": code, "message": message} for code, message in d.errors]
    return obj


def topic(t: Topic) -> dict[str, Any]:
    """One entry of ``x-topics``: a topic's params and the schema of its events."""
    text = str(t.schema.get("description", ""))
    obj: dict[str, Any] = {"name": t.name}
    if text:
        obj["summary"] = summary(text)
        if text != obj["summary"]:
            obj["description"] = text
    _params(params_of(t.schema), obj)
    event = schemas.return_schema(t.source) if t.source is not None else None
    obj["event"] = {"name": "event", "schema": event or {}}
    return obj


def document(
    registry: Registry,
    *,
    protocol: Iterable[Any] = (),
    topics: TopicDirectory | None = None,
    url: str | None = None,
    may_call: Callable[[str], bool] | None = None,
    title: str = _TITLE,
    version: str | None = None,
    description: str = _DESCRIPTION,
) -> dict[str, Any]:
    """The OpenRPC document of a server.

    Args:
        registry: the user's tools.
        protocol: the ``rpc.*`` methods' tools, described after the user's.
        topics: listed in ``x-topics``.
        url: the endpoint the client connected to, for ``servers``.
        may_call: when given, only the user's tools it says yes to are listed
            (the ``rpc.*`` methods are everyone's), and the topics it lets
            the caller subscribe to (``topic:NAME``).
        title, version, description: the ``info`` object; version
            defaults to the installed package's.

    The document shares its schemas with the tools' records: treat it as
    read-only, or copy it before changing it.
    """
    tools = [tool for tool in registry.values() if may_call is None or may_call(tool.name)]
    methods = [method(describe(tool)) for tool in [*tools, *protocol]]
    doc: dict[str, Any] = {
        "openrpc": OPENRPC_VERSION,
        "info": {"title": title, "version": version or package_version(), "description": description},
    }
    if url:
        doc["servers"] = [{"name": title, "url": url}]
    doc["methods"] = methods
    if topics is not None:
        doc["x-topics"] = [
            topic(t)
            for name in topics.names()
            if (may_call is None or may_call(TOPIC_PREFIX + name)) and (t := topics.get(name)) is not None
        ]
    doc["x-notifications"] = NOTIFICATIONS
    return doc
