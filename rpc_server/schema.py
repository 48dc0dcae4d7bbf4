"""JSON Schema for tool params: loaded from ``schemas/``, or derived from a signature.

A params schema describes the whole ``params`` member in draft-07 form: an
``if``/``then``/``else`` on its type, with the by-position form under ``then``
and the by-name form under ``else``. Compiled once per tool with
fastjsonschema, it checks arity, names and types, so the dispatcher can call
``fn(*params)`` or ``fn(**params)`` without ``inspect`` on the hot path. Its
failures are rewritten into sentences that name the parameter.
"""

from __future__ import annotations

import functools
import inspect
import json
import re
import types
import typing
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Callable, Mapping, Sequence
from importlib import resources
from typing import Any

import fastjsonschema

from .context import Context
from .errors import InvalidParamsError, ToolDefinitionError

__all__ = ["DRAFT", "Validator", "compile_params", "from_signature", "load", "return_schema"]

DRAFT = "http://json-schema.org/draft-07/schema#"

# Checks params and returns them, floats with integral values made ints where
# the schema says integer (JSON Schema counts 2.0 as an integer; Python does not).
Validator = Callable[[Any], Any]

_JSON_TYPES = {
    dict: "an object",
    list: "an array",
    str: "a string",
    bool: "a boolean",
    type(None): "null",
    int: "a number",
    float: "a number",
}
_ARTICLES = {
    "object": "an object",
    "array": "an array",
    "string": "a string",
    "boolean": "a boolean",
    "null": "null",
    "number": "a number",
    "integer": "an integer",
}
_BOUNDS = {
    "minimum": "at least",
    "maximum": "at most",
    "exclusiveMinimum": "more than",
    "exclusiveMaximum": "less than",
}
_NAME = re.compile(r"^params(?:\[(\d+)\]|\.([^.\[]+))?(.*)$")
# A docstring's list of parameters: Google style ("Args:" then "name (type): text")
# or Sphinx style (":param name: text").
_ARGS_HEADING = re.compile(r"^\s*(?:Args|Arguments|Parameters|Params):\s*$")
_ARG_LINE = re.compile(r"^(\s*)\*{0,2}(\w+)(?:\s*\([^)]*\))?\s*:\s*(.*)$")
_SPHINX_PARAM = re.compile(r"^\s*:param\s+(?:[^:]*\s)?(\w+)\s*:\s*(.*)$")


def load(name: str) -> dict[str, Any]:
    """Read ``schemas/<name>`` from the installed package data (``rpc_server.schemas``)."""
    return json.loads(resources.files("rpc_server.schemas").joinpath(name).read_text("utf-8"))


def _type_schema(tp: Any) -> dict[str, Any]:
    """The JSON Schema of one type hint; ``{}`` (anything) where JSON has no equivalent."""
    if tp is inspect.Parameter.empty or tp is Any:
        return {}
    if tp is None or tp is type(None):
        return {"type": "null"}
    if tp is bool:
        return {"type": "boolean"}
    if tp is int:
        return {"type": "integer"}
    if tp is float:
        return {"type": "number"}
    if tp is str:
        return {"type": "string"}
    origin = typing.get_origin(tp) or tp
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        alternatives = [_type_schema(a) for a in args]
        if any(a == {} for a in alternatives):
            return {}
        if {int, float} <= set(args):
            alternatives = [a for a in alternatives if a != {"type": "integer"}]
        return alternatives[0] if len(alternatives) == 1 else {"anyOf": alternatives}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if isinstance(origin, type):
        if issubclass(origin, (str, bytes)):
            return {}
        if issubclass(origin, tuple):
            if len(args) == 2 and args[1] is Ellipsis:
                return {"type": "array", "items": _type_schema(args[0])}
            if args:
                return {
                    "type": "array",
                    "items": [_type_schema(a) for a in args],
                    "minItems": len(args),
                    "additionalItems": False,
                }
            return {"type": "array"}
        if issubclass(origin, (list, Sequence)) and not issubclass(origin, Mapping):
            return {"type": "array", "items": _type_schema(args[0])} if args else {"type": "array"}
        if issubclass(origin, (dict, Mapping)):
            if len(args) == 2:
                return {"type": "object", "additionalProperties": _type_schema(args[1])}
            return {"type": "object"}
    return {}


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    target: Any = fn
    if isinstance(fn, functools.partial):
        target = fn.func
    elif not (inspect.isroutine(fn) or inspect.isclass(fn)):
        target = type(fn).__call__  # a callable object: its hints are on __call__
    try:
        return typing.get_type_hints(target)
    except Exception as exc:
        raise ToolDefinitionError(f"cannot read the type hints of {fn!r}: {exc}") from exc


def context_parameter(fn: Callable[..., Any]) -> str | None:
    """The name of ``fn``'s parameter annotated :class:`~.session.Context`, if any.

    Raises:
        ToolDefinitionError: it stands where positional params would bind to it.
    """
    hints = _hints(fn)
    found: str | None = None
    for p in inspect.signature(fn).parameters.values():
        if hints.get(p.name) is Context:
            if p.kind is p.POSITIONAL_ONLY:
                raise ToolDefinitionError(f"{fn!r}: the Context parameter {p.name!r} cannot be positional-only")
            found = p.name
        elif found is not None and p.kind in (p.POSITIONAL_OR_KEYWORD, p.VAR_POSITIONAL):
            raise ToolDefinitionError(
                f"{fn!r}: put the Context parameter {found!r} after the positional parameters (or make it keyword-only)"
            )
    return found


def from_signature(fn: Callable[..., Any], description: str | None = None) -> dict[str, Any]:
    """Derive a params schema from ``fn``'s signature and type hints.

    Raises:
        ToolDefinitionError: the hints cannot be resolved.
    """
    hints = _hints(fn)
    context = context_parameter(fn)
    doc = description if description is not None else inspect.getdoc(fn)
    described = _param_descriptions(inspect.getdoc(fn) or "")
    by_type = {name: _type_schema(hint) for name, hint in hints.items()}
    annotated = _annotated_keywords(fn, by_type)
    items: list[dict[str, Any]] = []
    min_items = 0
    extra_items: Any = False
    properties: dict[str, Any] = {}
    required: list[str] = []
    extra_properties: Any = False
    by_position_possible = True
    for p in inspect.signature(fn).parameters.values():
        if p.name == context:
            continue
        schema = _type_schema(hints.get(p.name, p.annotation))
        if p.name in described:
            schema["description"] = described[p.name]
        schema.update(annotated.get(p.name, {}))
        required_here = p.default is inspect.Parameter.empty
        if not required_here:
            schema.update(_default(p.default))
        if p.kind is p.VAR_POSITIONAL:
            extra_items = {"title": p.name, **schema}
        elif p.kind is p.VAR_KEYWORD:
            extra_properties = schema
        else:
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD):
                items.append({"title": p.name, **schema})
                if required_here:
                    min_items = len(items)
            elif required_here:
                by_position_possible = False
            if p.kind is not p.POSITIONAL_ONLY:
                properties[p.name] = schema
                if required_here:
                    required.append(p.name)
    by_position: dict[str, Any] = {
        "type": "array",
        "items": items,
        "minItems": min_items,
        "additionalItems": extra_items,
    }
    if not by_position_possible:
        by_position = {"not": {"type": "array"}, "description": "takes its params by name"}
    by_name: dict[str, Any] = {"type": "object", "properties": properties, "additionalProperties": extra_properties}
    if required:
        by_name["required"] = required
    schema = {
        "$schema": DRAFT,
        "title": getattr(fn, "__name__", "tool"),
        "if": {"type": "array"},
        "then": by_position,
        "else": by_name,
    }
    if doc:
        schema["description"] = doc
    return schema


def _default(value: Any) -> dict[str, Any]:
    """``{"default": value}`` as JSON has it, or nothing when JSON cannot say it (an object, NaN)."""
    try:
        return {"default": json.loads(json.dumps(value, allow_nan=False))}
    except (TypeError, ValueError, RecursionError):
        return {}


def _param_descriptions(doc: str) -> dict[str, str]:
    """Each parameter's text from a docstring's ``Args:`` section or its ``:param x:`` lines.

    It may hold names that are not parameters (a ``Returns:`` line after
    ``:param`` lines); only the parameters' names are looked up.
    """
    found: dict[str, str] = {}
    indent: int | None = None  # of the entries of the Args section we are in, if any
    last: str | None = None
    for line in doc.splitlines():
        sphinx = _SPHINX_PARAM.match(line)
        if sphinx:
            last, indent = sphinx[1], len(line) - len(line.lstrip())
            found[last] = sphinx[2].strip()
            continue
        if _ARGS_HEADING.match(line):
            indent, last = -1, None
            continue
        if not line.strip():
            continue
        depth = len(line) - len(line.lstrip())
        entry = _ARG_LINE.match(line) if indent is not None else None
        if entry and (indent == -1 or depth == indent):
            indent, last = depth, entry[2]
            found[last] = entry[3].strip()
        elif last is not None and indent is not None and depth > indent:
            found[last] = f"{found[last]} {line.strip()}".strip()  # a continuation line
        else:
            indent = last = None  # the section is over
    return {name: text for name, text in found.items() if text}


# Constraints of annotated_types (Ge(0), Interval(...), MaxLen(3)) and of pydantic's Field(ge=0, ...),
# by attribute name, and the JSON Schema keyword each becomes ("length": by the schema's type).
_CONSTRAINTS = {
    "gt": "exclusiveMinimum",
    "ge": "minimum",
    "lt": "exclusiveMaximum",
    "le": "maximum",
    "multiple_of": "multipleOf",
    "min_length": "min-length",
    "max_length": "max-length",
    "pattern": "pattern",
}
_LENGTHS = {"string": "Length", "array": "Items", "object": "Properties"}


def _annotated_keywords(fn: Callable[..., Any], schemas: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """What ``Annotated[type, ...]`` hints add to each parameter's schema: a description and constraints.

    A description is a plain string or a ``description`` attribute (pydantic's
    ``Field``); constraints are the attributes in :data:`_CONSTRAINTS`, of
    the metadata itself or of its parts (``Field(...).metadata``,
    ``annotated_types.Interval``), so that the derived schema checks them.

    Args:
        schemas: each parameter's schema from its type, to tell a string's length from an array's.
    """
    target = fn.func if isinstance(fn, functools.partial) else fn
    if not (inspect.isroutine(target) or inspect.isclass(target)):
        target = type(target).__call__
    try:
        hints = typing.get_type_hints(target, include_extras=True)
    except Exception:
        return {}  # _hints, which the schema needs, says why
    found: dict[str, dict[str, Any]] = {}
    for name, hint in hints.items():
        if typing.get_origin(hint) is not typing.Annotated:
            continue
        keywords: dict[str, Any] = {}
        kind = schemas.get(name, {}).get("type")
        for extra in hint.__metadata__:
            text = extra if isinstance(extra, str) else getattr(extra, "description", None)
            if isinstance(text, str) and text:
                keywords["description"] = text
            for part in _parts(extra):
                for attribute, keyword in _CONSTRAINTS.items():
                    value = getattr(part, attribute, None)
                    if isinstance(value, bool) or not isinstance(value, int | float | str):
                        continue
                    if keyword.endswith("-length"):
                        if kind not in _LENGTHS:
                            continue
                        keyword = keyword[:3] + _LENGTHS[kind]
                    keywords[keyword] = value
        if keywords:
            found[name] = keywords
    return found


def _parts(extra: Any) -> list[Any]:
    """An Annotated extra and what it groups: pydantic's ``Field(...).metadata``, ``Interval``'s bounds."""
    if isinstance(extra, str):
        return []
    parts = [extra]
    metadata = getattr(extra, "metadata", None)
    if isinstance(metadata, list):
        parts += metadata
    elif getattr(extra, "__is_annotated_types_grouped_metadata__", False):
        parts += list(extra)
    return parts


_ASYNC_ITERATORS = (AsyncIterator, AsyncGenerator, AsyncIterable)


def return_schema(fn: Callable[..., Any]) -> dict[str, Any] | None:
    """The JSON Schema of what ``fn`` returns, from its return annotation; None when unknown.

    For an async generator, the schema of each part it yields.
    """
    try:
        hint = _hints(fn).get("return", inspect.Parameter.empty)
    except ToolDefinitionError:
        return None
    if inspect.isasyncgenfunction(fn) and typing.get_origin(hint) in _ASYNC_ITERATORS:
        hint = typing.get_args(hint)[0] if typing.get_args(hint) else Any
    schema = _type_schema(hint)
    return schema or None


def _positional_names(schema: dict[str, Any]) -> list[str]:
    items = schema.get("then", {}).get("items", [])
    return [item.get("title", str(i)) for i, item in enumerate(items)] if isinstance(items, list) else []


def _varargs_name(schema: dict[str, Any]) -> str | None:
    then = schema.get("then", {})
    extra = then.get("additionalItems", then.get("items") if isinstance(then.get("items"), dict) else False)
    if extra is False:
        return None
    return extra.get("title", "params") if isinstance(extra, dict) else "params"


def _got(value: Any) -> str:
    return _JSON_TYPES.get(type(value), type(value).__name__)


class _Explainer:
    """Turns fastjsonschema's failures into sentences that name the parameter."""

    __slots__ = ("names", "varargs")

    def __init__(self, schema: dict[str, Any]) -> None:
        self.names = _positional_names(schema)
        self.varargs = _varargs_name(schema)

    def who(self, name: str) -> str:
        m = _NAME.match(name or "")
        if m is None:
            return name
        index, key, rest = m.groups()
        if index is not None:
            i = int(index)
            if i < len(self.names):
                return f"parameter {self.names[i] + rest!r}"
            if self.varargs is not None:
                return f"parameter {f'{self.varargs}[{i - len(self.names)}]' + rest!r}"
            return f"parameter {i + 1}{rest}"
        if key is not None:
            return f"parameter {key + rest!r}"
        return "params" + rest

    def explain(self, exc: fastjsonschema.JsonSchemaValueException, params: Any) -> str:
        rule, value, name = exc.rule, exc.value, exc.name or "params"
        definition = exc.definition if isinstance(exc.definition, dict) else {}
        top = name == "params"
        if rule == "type":
            wanted = definition.get("type")
            wanted_list = wanted if isinstance(wanted, list) else [wanted]
            if top:
                return "params must be an array or an object"
            wanted_text = " or ".join(_ARTICLES.get(str(w), str(w)) for w in wanted_list)
            return f"{self.who(name)} must be {wanted_text}, got {_got(value)}"
        if top and rule == "required" and isinstance(value, dict):
            missing = [r for r in definition.get("required", []) if r not in value]
            return f"missing required parameter {', '.join(map(repr, missing))}"
        if top and rule == "additionalProperties" and isinstance(value, dict):
            known = definition.get("properties", {})
            extra = [k for k in value if k not in known]
            return f"unexpected parameter {', '.join(map(repr, extra))}"
        if top and rule == "minItems" and isinstance(value, list):
            n = len(value)
            if n < len(self.names):
                return f"missing required parameter {self.names[n]!r}"
        if top and rule in ("maxItems", "additionalItems", "items") and isinstance(value, list):
            most = len(self.names)
            if most == 0:
                return f"takes no positional params, got {len(value)}"
            return f"takes at most {most} positional param{'' if most == 1 else 's'}, got {len(value)}"
        if rule in _BOUNDS:
            bound = _BOUNDS[rule]
            return f"{self.who(name)} must be {bound} {definition.get(rule)}, got {value!r}"
        if top and rule == "not":
            return "params must be given by name"
        message = exc.message
        if message.startswith(name):
            return self.who(name) + message[len(name) :]
        return message


def _integer_slots(schema: dict[str, Any]) -> tuple[frozenset[int], int | None, frozenset[str]]:
    """Where the schema wants integers: positions, the first position of an
    integer ``*args`` (or None), and names."""

    def is_integer(sub: Any) -> bool:
        return isinstance(sub, dict) and sub.get("type") == "integer"

    then, else_ = schema.get("then", {}), schema.get("else", {})
    items = then.get("items", [])
    if isinstance(items, dict):
        return frozenset(), 0 if is_integer(items) else None, frozenset()
    positions = frozenset(i for i, sub in enumerate(items) if is_integer(sub))
    rest = len(items) if is_integer(then.get("additionalItems")) else None
    names = frozenset(k for k, sub in else_.get("properties", {}).items() if is_integer(sub))
    return positions, rest, names


_SIMPLE_TYPES = {"number": "_NUMBER", "integer": "_INT", "string": "_STR", "boolean": "_BOOL"}
_PLAIN_KEYWORDS = {"type", "title", "description"}


def _simple_type(sub: Any) -> str | None:
    """The fast check's name for ``sub`` ('' for anything), or None if it is not that simple."""
    if not isinstance(sub, dict) or not set(sub) <= _PLAIN_KEYWORDS:
        return None
    if "type" not in sub:
        return ""
    return _SIMPLE_TYPES.get(sub["type"]) if isinstance(sub["type"], str) else None


def _fast_path(schema: dict[str, Any]) -> Callable[[Any], bool] | None:
    """A check that accepts the common valid params of a simple schema in a few type tests.

    Params it accepts are valid; params it refuses go to the full validator,
    which decides, and explains. It exists for the hot path: fastjsonschema's
    validator for ``multiply`` took 0.7 µs, this takes about 0.15 µs. Only
    schemas whose params are all required and typed by plain JSON types get one.
    """
    then, else_ = schema.get("then"), schema.get("else")
    if set(schema) - {"$schema", "$id", "title", "description", "if", "then", "else"}:
        return None
    if schema.get("if") != {"type": "array"} or not isinstance(then, dict) or not isinstance(else_, dict):
        return None
    if then.get("type") != "array" or else_.get("type") != "object":
        return None
    items = then.get("items")
    if not isinstance(items, list) or then.get("additionalItems") is not False:
        return None
    if set(then) - {"type", "items", "minItems", "additionalItems"} or then.get("minItems", 0) != len(items):
        return None
    by_position = [_simple_type(item) for item in items]
    properties = else_.get("properties", {})
    if set(else_) - {"type", "properties", "required", "additionalProperties"} or else_.get("additionalProperties"):
        return None
    if sorted(else_.get("required", [])) != sorted(properties):
        return None
    by_name = {name: _simple_type(sub) for name, sub in properties.items()}
    if None in by_position or None in by_name.values():
        return None
    positional = [f"type(p[{i}]) in {kind}" for i, kind in enumerate(by_position) if kind]
    named = [f"type(p.get({name!r})) in {kind}" if kind else f"{name!r} in p" for name, kind in by_name.items()]
    source = (
        "def fast(p):\n"
        "    t = type(p)\n"
        f"    if t is list:\n        return {' and '.join([f'len(p) == {len(items)}', *positional])}\n"
        f"    if t is dict:\n        return {' and '.join([f'len(p) == {len(by_name)}', *named])}\n"
        "    return False\n"
    )
    namespace: dict[str, Any] = {
        "_NUMBER": frozenset((int, float)),
        "_INT": frozenset((int,)),
        "_STR": frozenset((str,)),
        "_BOOL": frozenset((bool,)),
    }
    exec(source, namespace)  # the source is built above from type names and repr()s only
    return namespace["fast"]  # type: ignore[no-any-return]


def compile_params(schema: dict[str, Any], title: str = "params") -> Validator:
    """Compile a params schema into a :data:`Validator` that raises :class:`InvalidParamsError`.

    Raises:
        ToolDefinitionError: the schema is not valid JSON Schema.
    """
    try:
        check = fastjsonschema.compile(schema, use_default=False, detailed_exceptions=True)
    except fastjsonschema.JsonSchemaDefinitionException as exc:
        raise ToolDefinitionError(f"the params schema of {title!r} does not compile: {exc}") from exc
    explainer = _Explainer(schema)
    failure = fastjsonschema.JsonSchemaValueException
    positions, rest, names = _integer_slots(schema)
    quick = _fast_path(schema)
    fast = quick or (lambda params: False)

    def invalid(exc: fastjsonschema.JsonSchemaValueException, params: Any) -> InvalidParamsError:
        # fastjsonschema names the root "data"; ours is the params member.
        if exc.name is not None and exc.name.startswith("data"):
            exc.name = "params" + exc.name[4:]
            exc.message = "params" + exc.message[4:]
        return InvalidParamsError(explainer.explain(exc, params))

    converts = bool(positions or names or rest is not None)

    def integral(params: Any) -> Any:
        """Valid params, with the floats that stand where integers are wanted made ints."""
        if type(params) is list:
            if any(type(v) is float for v in params):
                return [
                    int(v) if type(v) is float and (i in positions or (rest is not None and i >= rest)) else v
                    for i, v in enumerate(params)
                ]
        elif any(type(v) is float for v in params.values()):
            return {k: int(v) if type(v) is float and k in names else v for k, v in params.items()}
        return params

    def validate(params: Any) -> Any:
        if fast(params):  # it accepts only true ints where integers are wanted
            return params
        try:
            check(params)
        except failure as exc:
            raise invalid(exc, params) from None
        return integral(params) if converts else params

    # The dispatcher calls the quick check itself, saving a frame on the hot path.
    validate.accepts = quick  # type: ignore[attr-defined]
    return validate
