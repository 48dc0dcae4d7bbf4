"""A server's OpenRPC document as text for a terminal: ``--list`` and ``--describe METHOD``.

Pure: a document (what ``rpc.discover`` answers) in, text out. It reads
OpenRPC 1.x and this project's ``x-`` extensions (``x-stream``,
``x-progress``, ``x-variadic``, ``x-topics``), and shows what it does not
know as ``any``. The example command it writes runs as printed.
"""

from __future__ import annotations

import json
import re
import shlex
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["describe_method", "example_command", "find_method", "list_methods", "render", "type_text"]

PROTOCOL_PREFIX = "rpc."
_SUMMARY_WIDTH = 60
_PROGRAM = "python -m rpc_client"
SUBSCRIBE = "rpc.subscribe"
# A docstring's list of params, which the params table shows already, and reST's literal quotes.
_ARGS_SECTION = re.compile(r"(?m)^([ \t]*)(?:Args|Arguments|Parameters|Params):[ \t]*\n(?:\1[ \t]+\S.*\n?|[ \t]*\n)*")
_LITERAL = re.compile(r"``([^`]+)``")


def type_text(schema: Any) -> str:
    """A JSON Schema as a short type: ``number``, ``integer | null``, ``array of number``, ``any``."""
    if not isinstance(schema, Mapping):
        return "any" if schema in (True, None) else "nothing"
    if "enum" in schema and isinstance(schema["enum"], list):
        return " | ".join(json.dumps(v) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    kind = schema.get("type")
    if isinstance(kind, list):
        return " | ".join(map(str, kind))
    if kind == "array":
        items = schema.get("items")
        if isinstance(items, Mapping) and items:
            return f"array of {type_text(items)}"
        if isinstance(items, list):
            return "[" + ", ".join(type_text(i) for i in items) + "]"
        return "array"
    if kind == "object" and isinstance(schema.get("properties"), Mapping) and schema["properties"]:
        fields = ", ".join(f"{name}: {type_text(sub)}" for name, sub in schema["properties"].items())
        return f"{{{fields}}}"
    if isinstance(kind, str):
        return kind
    for combinator in ("anyOf", "oneOf"):
        if isinstance(schema.get(combinator), list):
            return " | ".join(type_text(s) for s in schema[combinator])
    if "$ref" in schema:
        return str(schema["$ref"])
    return "any"


def _params(method: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [p for p in method.get("params", []) if isinstance(p, Mapping) and "name" in p]


def _signature(method: Mapping[str, Any]) -> str:
    parts = []
    for p in _params(method):
        schema = p.get("schema", {})
        if p.get("x-variadic"):
            parts.append(f"*{p['name']}: {type_text(schema)}")
        elif p.get("required"):
            parts.append(f"{p['name']}: {type_text(schema)}")
        else:
            default = (
                f" = {json.dumps(schema['default'])}" if isinstance(schema, Mapping) and "default" in schema else ""
            )
            parts.append(f"[{p['name']}: {type_text(schema)}{default}]")
    return ", ".join(parts)


def _one_line(text: str, width: int = _SUMMARY_WIDTH) -> str:
    line = " ".join(text.split())
    if len(line) <= width:
        return line
    cut = line[: width - 1]
    return (cut.rsplit(" ", 1)[0] if " " in cut else cut).rstrip(",;:") + "…"


def _table(rows: Sequence[tuple[str, ...]]) -> list[str]:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return [
        "  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[-1]]).rstrip() for row in rows
    ]


def list_methods(document: Mapping[str, Any], *, protocol: bool = False) -> str:
    """A table of the methods: name, params with their types, and a one-line description; then the topics.

    Args:
        protocol: include the ``rpc.*`` methods too.
    """
    methods = [m for m in document.get("methods", []) if isinstance(m, Mapping) and "name" in m]
    if not protocol:
        methods = [m for m in methods if not str(m["name"]).startswith(PROTOCOL_PREFIX)]
    lines: list[str] = []
    if methods:
        rows = [("METHOD", "PARAMS", "DESCRIPTION")]
        rows += [(str(m["name"]), _signature(m), _one_line(str(m.get("summary", "")))) for m in methods]
        lines += _table(rows)
    else:
        lines.append("(no methods you may call)")
    topics = [t for t in document.get("x-topics", []) if isinstance(t, Mapping) and "name" in t]
    if topics:
        rows = [("TOPIC", "PARAMS", "DESCRIPTION")]
        rows += [(str(t["name"]), _signature(t), _one_line(str(t.get("summary", "")))) for t in topics]
        lines += ["", *_table(rows)]
    return "\n".join(lines) + "\n"


def find_method(document: Mapping[str, Any], name: str) -> Mapping[str, Any] | None:
    """The method object named ``name``, else the topic of that name (from ``x-topics``), else None."""
    for entry in [*document.get("methods", []), *document.get("x-topics", [])]:
        if isinstance(entry, Mapping) and entry.get("name") == name:
            return entry
    return None


def _is_topic(document: Mapping[str, Any], entry: Mapping[str, Any]) -> bool:
    return any(entry is t for t in document.get("x-topics", []))


def _example_value(schema: Any) -> Any:
    """A value that fits ``schema``, for an example: its default, else something plain of its type."""
    if not isinstance(schema, Mapping):
        return 1
    if "default" in schema and schema["default"] is not None:
        return schema["default"]
    if isinstance(schema.get("enum"), list) and schema["enum"]:
        return schema["enum"][0]
    kind = schema.get("type")
    kind = next((k for k in kind if k != "null"), "null") if isinstance(kind, list) else kind
    if kind in ("number", "integer"):
        low, high = schema.get("minimum"), schema.get("maximum")
        value = 1 if low is None else max(low, 1) if high is None or high >= 1 else low
        return int(value) if kind == "integer" else value
    if kind == "string":
        return "text"
    if kind == "boolean":
        return True
    if kind == "array":
        return []
    if kind == "object":
        return {}
    if kind == "null":
        return None
    if isinstance(schema.get("anyOf"), list) and schema["anyOf"]:
        return _example_value(schema["anyOf"][0])
    return 1


def _word(value: Any) -> str:
    # The CLI reads a param as JSON when it parses, else as a string: a plain word stays a word.
    if isinstance(value, str):
        try:
            json.loads(value)
        except ValueError:
            return value
    return json.dumps(value)


def example_command(method: Mapping[str, Any], url: str | None = None, *, topic: bool = False) -> str:
    """A command line that calls ``method`` (or subscribes to the topic) with example values for its required params."""
    words = [_PROGRAM]
    if url:
        words += ["--url", url]
    if topic:
        words += ["--subscribe"]
    elif method.get("x-stream"):
        words.append("--stream")
    words.append(str(method["name"]))
    by_name = method.get("paramStructure") == "by-name"
    for p in _params(method):
        schema = p.get("schema", {})
        if p.get("x-variadic"):
            words += [_word(v) for v in (1, 2, 3)] if type_text(schema) in ("number", "integer", "any") else []
            break
        if not p.get("required"):
            if by_name:
                continue
            break  # by position, optional params can only be left off at the end
        value = _word(_example_value(schema))
        words.append(f"{p['name']}={value}" if by_name else value)
    return " ".join(shlex.quote(w) if w != _PROGRAM else w for w in words)


def _prose(description: str) -> str:
    """A docstring for a terminal: without its ``Args:`` section, literals in single backquotes."""
    return _LITERAL.sub(r"`\1`", _ARGS_SECTION.sub("", description.strip() + "\n")).strip()


def _example(document: Mapping[str, Any], method: Mapping[str, Any], url: str | None, topic: bool) -> str:
    if method.get("name") == SUBSCRIBE:  # "rpc.subscribe NAME" prints only an id: --subscribe shows the events
        topics = [t for t in document.get("x-topics", []) if isinstance(t, Mapping) and "name" in t]
        return example_command(topics[0], url, topic=True) if topics else "(this server offers you no topic)"
    return example_command(method, url, topic=topic)


def _wrap(text: str, indent: str = "  ") -> list[str]:
    """The text indented, its own line breaks kept (a docstring's Args: list), long lines wrapped."""
    out: list[str] = []
    for line in text.strip().splitlines():
        more = indent + line[: len(line) - len(line.lstrip())]
        out += textwrap.wrap(line.strip(), 88, initial_indent=more, subsequent_indent=more) or [""]
    return out


def describe_method(document: Mapping[str, Any], name: str, url: str | None = None) -> str:
    """One method (or topic) in full: description, params (type, required, default), result, errors, an example.

    Raises:
        KeyError: the document has no method or topic of that name.
    """
    method = find_method(document, name)
    if method is None:
        raise KeyError(name)
    topic = _is_topic(document, method)
    lines = [f"{method['name']} (a topic: subscribe to it)" if topic else str(method["name"])]
    description = _prose(str(method.get("description") or method.get("summary") or ""))
    if description:
        lines += _wrap(description)
    structure = {"by-position": "by position", "by-name": "by name"}.get(
        str(method.get("paramStructure", "either")), "by position or by name"
    )
    params = _params(method)
    lines += ["", f"params ({structure}):" if params else "params: none"]
    if params:
        rows = []
        for p in params:
            schema = p.get("schema", {})
            kind = type_text(schema)
            if p.get("x-variadic"):
                kind, need = f"{kind}...", "any number"
            else:
                need = "required" if p.get("required") else "optional"
            if not p.get("required") and isinstance(schema, Mapping) and "default" in schema:
                need += f", default {json.dumps(schema['default'])}"
            text = str(p.get("description") or (schema.get("description", "") if isinstance(schema, Mapping) else ""))
            text = _LITERAL.sub(r"`\1`", text)
            rows.append((f"  {p['name']}", kind, need, text))
        lines += _table(rows)
    event = method.get("event")
    if topic and isinstance(event, Mapping):
        lines += ["", f"each event: {type_text(event.get('schema', {}))}"]
    result = method.get("result")
    if isinstance(result, Mapping):
        lines += ["", f"result: {type_text(result.get('schema', {}))}"]
        if result.get("description"):
            lines += _wrap(str(result["description"]))
    stream = method.get("x-stream")
    if isinstance(stream, Mapping):
        part = stream.get("part", {})
        part_type = type_text(part.get("schema", {}) if isinstance(part, Mapping) else {})
        lines.append(f"streams: each part {part_type} (use --stream to see them as they come)")
    if method.get("x-progress"):
        lines.append("reports progress (shown on stderr)")
    errors = [e for e in method.get("errors", []) if isinstance(e, Mapping)]
    if errors:
        lines += ["", "errors:", *_table([(f"  {e.get('code')}", str(e.get("message", ""))) for e in errors])]
    lines += ["", "example:", f"  {_example(document, method, url, topic)}"]
    return "\n".join(lines) + "\n"


def render(document: Mapping[str, Any], method: str | None = None, url: str | None = None) -> str:
    """What ``--list`` (no ``method``) or ``--describe METHOD`` prints.

    Raises:
        KeyError: ``method`` is neither a method nor a topic of the document.
    """
    return list_methods(document) if method is None else describe_method(document, method, url)
