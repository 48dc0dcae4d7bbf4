"""What a tool looks like from outside: its params one by one, its result, its errors.

Everything here is read from the registry's records: the params schema that
validates calls (see :mod:`.schema`), the docstring, the result's schema (the
return annotation, or one the tool declares) and the error codes the tool
declares. There is no second description to keep in step. :mod:`.openrpc`
writes a :class:`Description` as an OpenRPC method, :mod:`.mcp` as an MCP tool.

A params schema of this project holds a by-position form (under ``then``)
and a by-name form (under ``else``). From the two, :func:`params_of` tells
how a tool takes its params:

- ``either``: both forms name the same params in the same order;
- ``by-position``: only by position (positional-only params, ``*args``): the
  by-name form cannot name them all;
- ``by-name``: only by name (required keyword-only params), or the by-name
  form names more than the by-position form can carry.

Schemas given by hand in another shape (a plain object or array schema) are
read as ``by-name`` or ``by-position``; anything else has no listed params.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import codes
from . import schema as schemas
from .errors import InvalidParamsError
from .registry import RESERVED_PREFIX, Kind, Tool

__all__ = ["BY_NAME", "BY_POSITION", "EITHER", "Description", "Param", "Params", "describe", "params_of", "summary"]

BY_POSITION = "by-position"
BY_NAME = "by-name"
EITHER = "either"

_PARAGRAPH = re.compile(r"\n\s*\n")


@dataclass(slots=True, frozen=True)
class Param:
    """One parameter: its name, the JSON Schema of its value, and whether a call must give it.

    A ``variadic`` one takes the rest of the by-position params, each fitting ``schema``.
    """

    name: str
    schema: dict[str, Any]
    required: bool
    variadic: bool = False


@dataclass(slots=True, frozen=True)
class Params:
    """How a tool takes its params, and which.

    ``extra`` is the schema of params by name beyond those listed (a ``**kwargs``),
    or None when there are none; ``listed`` is False when the schema's shape is
    not one this module can read (then any params go to the tool's validator).
    ``schema`` is the params schema read.
    """

    structure: str
    params: tuple[Param, ...]
    schema: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    extra: dict[str, Any] | None = None
    listed: bool = True

    def object_schema(self) -> dict[str, Any]:
        """All the params as one JSON object, by name; a ``*args`` as an array.

        For callers that can only give an object: MCP's ``arguments``, a form.
        """
        if not self.listed:
            return {"type": "object"}
        properties: dict[str, Any] = {}
        for p in self.params:
            properties[p.name] = {"type": "array", "items": p.schema} if p.variadic else p.schema
        schema: dict[str, Any] = {"type": "object", "properties": properties}
        required = [p.name for p in self.params if p.required]
        if required:
            schema["required"] = required
        schema["additionalProperties"] = self.extra if self.extra is not None else False
        return schema

    def from_object(self, arguments: Mapping[str, Any]) -> list[Any] | dict[str, Any]:
        """The ``params`` of a call whose arguments are given as :meth:`object_schema` describes.

        By name as they are, unless the tool takes its params by position only:
        then in order, a ``*args`` array spread at the end. The tool's validator
        checks what comes out; this only puts the values in their places.

        Raises:
            InvalidParamsError: a name the tool does not take, or a gap that
                by-position params cannot leave.
        """
        if self.structure != BY_POSITION:
            return dict(arguments)
        known = {p.name for p in self.params}
        unknown = [name for name in arguments if name not in known]
        if unknown:
            raise InvalidParamsError(f"unexpected parameter {', '.join(map(repr, unknown))}")
        given = [i for i, p in enumerate(self.params) if p.name in arguments]
        values: list[Any] = []
        for p in self.params[: given[-1] + 1 if given else 0]:
            if p.variadic:
                rest = arguments[p.name]
                if not isinstance(rest, list):
                    raise InvalidParamsError(f"parameter {p.name!r} must be an array")
                values.extend(rest)
            elif p.name in arguments:
                values.append(arguments[p.name])
            elif "default" in p.schema:  # a later param is given: fill the gap as the tool would
                values.append(p.schema["default"])
            else:
                raise InvalidParamsError(
                    f"missing {'required ' if p.required else ''}parameter {p.name!r}: the params go by position"
                )
        return values


@dataclass(slots=True, frozen=True)
class Description:
    """What a client is told about one method.

    ``result`` is the JSON Schema of the result (None when unknown); ``part``,
    for a streamed tool, that of each part pushed to a caller that asked for
    them; ``errors``, the application errors the tool may answer.
    """

    name: str
    title: str
    summary: str
    description: str
    params: Params
    result: dict[str, Any] | None
    part: dict[str, Any] | None
    progress: bool
    errors: tuple[tuple[int, str], ...]

    @property
    def stream(self) -> bool:
        return self.part is not None


def summary(text: str) -> str:
    """The first paragraph of a description, on one line."""
    return " ".join(_PARAGRAPH.split(text.strip(), maxsplit=1)[0].split())


def _title(tool: Tool) -> str:
    title = tool.schema.get("title")
    if isinstance(title, str) and title and title != tool.name:
        return title
    words = tool.name.replace("_", " ").strip()
    return words[:1].upper() + words[1:]


def _without_title(schema: Any) -> dict[str, Any]:
    if schema is True or not isinstance(schema, dict):
        return {}
    return {k: v for k, v in schema.items() if k != "title"}


def _positional(form: dict[str, Any]) -> list[Param] | None:
    """The by-position params, or None when the form refuses an array."""
    if form.get("type") != "array":
        return None
    items = form.get("items", [])
    if isinstance(items, dict):  # every item alike: *args alone
        return [Param(str(items.get("title", "params")), _without_title(items), False, True)]
    if not isinstance(items, list):
        return None
    min_items = form.get("minItems", 0)
    found = [
        Param(str(item.get("title", f"param{i + 1}")), _without_title(item), i < min_items)
        for i, item in enumerate(items)
        if isinstance(item, dict)
    ]
    extra = form.get("additionalItems")
    if extra is True or isinstance(extra, dict):
        name = extra.get("title", "rest") if isinstance(extra, dict) else "rest"
        found.append(Param(str(name), _without_title(extra), False, True))
    return found


def _named(form: dict[str, Any]) -> tuple[list[Param], dict[str, Any] | None] | None:
    """The by-name params and the schema of any others, or None when the form refuses an object."""
    if form.get("type") != "object":
        return None
    required = set(form.get("required", []))
    properties = form.get("properties", {})
    params = [
        Param(name, dict(sub) if isinstance(sub, dict) else {}, name in required) for name, sub in properties.items()
    ]
    extra = form.get("additionalProperties", True)
    return params, (extra if isinstance(extra, dict) else {} if extra is True else None)


def params_of(schema: Mapping[str, Any]) -> Params:
    """How a params schema takes its params; see the module docstring."""
    then, else_ = schema.get("then"), schema.get("else")
    if schema.get("if") == {"type": "array"} and isinstance(then, dict) and isinstance(else_, dict):
        positional, named = _positional(then), _named(else_)
    elif schema.get("type") == "object":
        positional, named = None, _named(dict(schema))
    elif schema.get("type") == "array":
        positional, named = _positional(dict(schema)), None
    else:
        positional = named = None
    if named is None:
        if positional is None:
            return Params(EITHER, (), schema, listed=False)
        return Params(BY_POSITION, tuple(positional), schema)
    by_name, extra = named
    if positional is None:
        return Params(BY_NAME, tuple(by_name), schema, extra)
    names = {p.name: p for p in by_name}
    if any(p.variadic or p.name not in names for p in positional):
        return Params(BY_POSITION, tuple(positional), schema)
    if len(by_name) > len(positional) or extra is not None:
        return Params(BY_NAME, tuple(by_name), schema, extra)
    # The same params either way: the by-name form's schemas (no positional titles), in positional order.
    return Params(EITHER, tuple(names[p.name] for p in positional), schema)


# Descriptions by the id of their (immutable) Tool, which is kept with them so an id
# reused after a tool is gone cannot match: reading a return annotation costs about
# as much as the rest of a document, and rpc.discover may be asked on every connection.
_DESCRIBED: dict[int, tuple[Tool, Description]] = {}
_MAX_DESCRIBED = 4096


def describe(tool: Tool) -> Description:
    """What a client is told about ``tool`` (worked out once per tool)."""
    cached = _DESCRIBED.get(id(tool))
    if cached is not None and cached[0] is tool:
        return cached[1]
    if len(_DESCRIBED) >= _MAX_DESCRIBED:
        _DESCRIBED.clear()  # registries that keep replacing their tools: start again rather than grow
    description = _describe(tool)
    _DESCRIBED[id(tool)] = (tool, description)
    return description


def _describe(tool: Tool) -> Description:
    text = tool.description
    returned = schemas.return_schema(tool.fn)
    part: dict[str, Any] | None = None
    result = tool.result
    if tool.kind is Kind.STREAM:
        part = returned or {}
        if result is None:
            result = {"type": "array", "items": part}
    elif result is None:
        result = returned
    else:
        # Read from a file: where it came from means nothing inside another document.
        result = {k: v for k, v in result.items() if k not in ("$schema", "$id")}
    errors = tool.errors
    if tool.kind is not Kind.SYNC and not tool.name.startswith(RESERVED_PREFIX):
        # It runs as a task, which rpc.cancel (or MCP's notifications/cancelled) can cancel.
        errors = (*errors, (codes.REQUEST_CANCELLED, codes.MESSAGES[codes.REQUEST_CANCELLED]))
    return Description(
        name=tool.name,
        title=_title(tool),
        summary=summary(text),
        description=text,
        params=params_of(tool.schema),
        result=result,
        part=part,
        # A Context lets a tool report progress; the protocol's own methods take one for other reasons.
        progress=tool.context is not None and not tool.name.startswith(RESERVED_PREFIX),
        errors=tuple(sorted(errors)),
    )
