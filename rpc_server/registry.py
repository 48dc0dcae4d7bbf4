"""The tools a server serves, and how users add theirs.

A :class:`Registry` maps method names to :class:`Tool` records. Each tool's
params schema is compiled when it is added, never per call. A plain dict of
functions, such as jsonrpcserver's ``global_methods``, can be served as it is.

How a tool runs depends on its kind:

- ``async def``: a task on the event loop, so slow tools do not hold up others;
- plain ``def``: inline, in the read loop. A thread hop costs more than the
  whole ``multiply`` call (about 60 µs here against under 10 µs), so cheap
  tools must not pay for one;
- plain ``def`` declared ``blocking=True``: in the loop's thread pool, for tools
  that wait on I/O or burn CPU and would otherwise stall every connection;
- ``async def`` generator: a task, its parts collected into a list, or pushed
  one by one to a caller that asked for a stream (see :mod:`.session`).

A tool that declares a parameter of type :class:`~.session.Context` gets one,
by name; that parameter is not part of its params.

What clients are told of a tool (OpenRPC, MCP: see :mod:`.describe`) comes
from the same record: the params schema, the docstring, the result's schema
(the return annotation unless ``result=`` gives one) and the application
error codes the tool declares (``errors=``), which no signature can show.
"""

from __future__ import annotations

import enum
import inspect
import weakref
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, overload

from . import codes
from . import schema as schemas
from .errors import ToolDefinitionError

__all__ = ["RESERVED_PREFIX", "ErrorCodes", "Kind", "Registry", "Tool"]

# What a tool declares it may answer: codes, or codes with their messages.
ErrorCodes = Iterable[int] | Mapping[int, str]

RESERVED_PREFIX = "rpc."


class Kind(enum.Enum):
    """How a tool is run; see the module docstring."""

    SYNC = "sync"
    ASYNC = "async"
    BLOCKING = "blocking"
    STREAM = "stream"


@dataclass(slots=True, frozen=True)
class Tool:
    """One served method: the function, how to run it, and its compiled params check."""

    name: str
    fn: Callable[..., Any]
    kind: Kind
    schema: dict[str, Any]
    validate: schemas.Validator = field(repr=False, compare=False)
    context: str | None = None  # the name of the parameter that takes a Context
    # The result's JSON Schema when given; else clients read it off the return annotation.
    result: dict[str, Any] | None = field(default=None, compare=False)
    # The application errors it may answer, (code, message) in code order.
    errors: tuple[tuple[int, str], ...] = ()
    inline: bool = field(init=False, repr=False, compare=False)  # a plain call with nothing to add: the hot path
    # The schema's quick check (see schema.compile_params), when it has one: params it accepts are valid.
    accepts: Callable[[Any], bool] | None = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "inline", self.kind is Kind.SYNC and self.context is None)
        object.__setattr__(self, "accepts", getattr(self.validate, "accepts", None))

    @property
    def description(self) -> str:
        return str(self.schema.get("description", ""))


def _is_async(fn: Callable[..., Any]) -> bool:
    # A callable object with an ``async def __call__`` is async too.
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(type(fn).__call__)


def _error_codes(name: str, errors: ErrorCodes) -> tuple[tuple[int, str], ...]:
    pairs = errors.items() if isinstance(errors, Mapping) else ((code, None) for code in errors)
    declared: dict[int, str] = {}
    for code, message in pairs:
        if type(code) is not int:
            raise ToolDefinitionError(f"{name!r}: an error code is an integer, not {code!r}")
        message = message if message is not None else codes.MESSAGES.get(code)
        if not isinstance(message, str) or not message:
            raise ToolDefinitionError(f"{name!r}: give error {code} its message, as errors={{{code}: 'what it means'}}")
        declared[code] = message
    return tuple(sorted(declared.items()))


def make_tool(
    fn: Callable[..., Any],
    *,
    name: str | None = None,
    blocking: bool = False,
    schema: dict[str, Any] | None = None,
    description: str | None = None,
    result: dict[str, Any] | None = None,
    errors: ErrorCodes = (),
) -> Tool:
    """Build a :class:`Tool` from a function, deriving its params schema when none is given.

    Raises:
        ToolDefinitionError: ``fn`` is not callable, its schema does not
            compile, or an error code has no message.
    """
    if not callable(fn):
        raise ToolDefinitionError(f"a tool must be callable, not {fn!r}")
    name = name or getattr(fn, "__name__", None)
    if not name:
        raise ToolDefinitionError(f"give {fn!r} a name")
    is_stream = inspect.isasyncgenfunction(fn)
    is_async = _is_async(fn)
    if blocking and (is_async or is_stream):
        raise ToolDefinitionError(f"{name!r}: blocking=True is for plain functions; an async tool runs on the loop")
    context = schemas.context_parameter(fn)
    if schema is None:
        schema = schemas.from_signature(fn, description)
    elif description is not None:
        schema = {**schema, "description": description}
    kind = Kind.STREAM if is_stream else Kind.ASYNC if is_async else Kind.BLOCKING if blocking else Kind.SYNC
    validate = schemas.compile_params(schema, name)
    return Tool(name, fn, kind, schema, validate, context, result, _error_codes(name, errors))


class Registry(Mapping[str, Tool]):
    """Named tools, added with :meth:`tool` (a decorator) or :meth:`add`.

    >>> registry = Registry()
    >>> @registry.tool
    ... def greet(name: str) -> str:
    ...     return f"Hello, {name}"

    Args:
        tools: tools to start with.
        reserved: allow names beginning with ``rpc.`` (for the protocol's own methods only).
    """

    def __init__(self, tools: Iterable[Tool] = (), *, reserved: bool = False) -> None:
        self._tools: dict[str, Tool] = {}
        self._reserved = reserved
        # Registries that include this one, and whether they replace on a clash:
        # tools added here later reach them too (include() is live).
        # (A list of weak references: a Registry is a Mapping, so it compares by content and has no hash.)
        self._includers: list[tuple[weakref.ref[Registry], bool]] = []
        for tool in tools:
            self._put(tool)

    @classmethod
    def from_methods(cls, methods: Mapping[str, Callable[..., Any]]) -> Registry:
        """A registry serving a jsonrpcserver-style ``{name: function}`` dict unchanged."""
        registry = cls()
        registry.include(methods)
        return registry

    def _check(self, tool: Tool, replace: bool) -> None:
        """Raise if ``tool`` cannot be put here, or in a registry that includes this one."""
        if tool.name.startswith(RESERVED_PREFIX) and not self._reserved:
            raise ToolDefinitionError(f"{tool.name!r}: names beginning with 'rpc.' are reserved for the protocol")
        held = self._tools.get(tool.name)
        if held is not None and not replace and held.fn is not tool.fn:
            raise ToolDefinitionError(
                f"a tool named {tool.name!r} is already registered: rename one, or pass replace=True to replace it"
            )
        for includer, includer_replaces in self._live_includers():
            try:
                includer._check(tool, includer_replaces)
            except ToolDefinitionError:
                # The clash is not here, where the tool is added: say where.
                raise ToolDefinitionError(
                    f"{tool.name!r} is already served by a registry that includes this one: rename it, "
                    "or include this registry there with replace=True"
                ) from None

    def _live_includers(self) -> list[tuple[Registry, bool]]:
        live = [(ref(), replace) for ref, replace in self._includers]
        if any(includer is None for includer, _ in live):
            self._includers = [(ref, replace) for ref, replace in self._includers if ref() is not None]
        return [(includer, replace) for includer, replace in live if includer is not None]

    def _included_by(self, other: Registry) -> bool:
        return any(includer is other or includer._included_by(other) for includer, _ in self._live_includers())

    def _put(self, tool: Tool, *, replace: bool = False) -> Tool:
        self._check(tool, replace)
        self._store(tool)
        return tool

    def _store(self, tool: Tool) -> None:
        held = self._tools.get(tool.name)
        if held is not None and held.fn is tool.fn and held.kind is tool.kind:
            return  # the same function under the same name, included twice: nothing to do
        self._tools[tool.name] = tool
        for includer, _ in self._live_includers():
            includer._store(tool)

    def add(
        self,
        fn: Callable[..., Any],
        *,
        name: str | None = None,
        blocking: bool = False,
        schema: dict[str, Any] | None = None,
        description: str | None = None,
        result: dict[str, Any] | None = None,
        errors: ErrorCodes = (),
        replace: bool = False,
    ) -> Tool:
        """Serve ``fn`` as the method ``name`` (default: the function's name).

        Args:
            blocking: run a plain function in the thread pool instead of inline.
            schema: a params schema (see :mod:`.schema`); derived from the
                signature and type hints when not given.
            description: shown to clients that list tools; default the docstring.
            result: the JSON Schema of the result, for clients; default from
                the return annotation.
            errors: the application error codes the tool may raise (as
                :class:`ToolError`), for clients: ``[1001]`` for codes of
                :mod:`.codes`, ``{4001: "Out of stock"}`` for others.
            replace: replace a tool of the same name instead of refusing.

        Raises:
            ToolDefinitionError: the name is taken or reserved, the schema is
                bad, or an error code has no message.
        """
        tool = make_tool(
            fn, name=name, blocking=blocking, schema=schema, description=description, result=result, errors=errors
        )
        return self._put(tool, replace=replace)

    @overload
    def tool(self, fn: Callable[..., Any], /) -> Callable[..., Any]: ...
    @overload
    def tool(
        self,
        *,
        name: str | None = None,
        blocking: bool = False,
        schema: dict[str, Any] | None = None,
        description: str | None = None,
        result: dict[str, Any] | None = None,
        errors: ErrorCodes = (),
    ) -> Callable[[Callable[..., Any]], Callable[..., Any]]: ...

    def tool(self, fn: Callable[..., Any] | None = None, /, **options: Any) -> Any:  # type: ignore[misc]
        """Decorator form of :meth:`add`; returns the function unchanged."""

        def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
            self.add(f, **options)
            return f

        return decorate(fn) if fn is not None else decorate

    def include(self, other: Registry | Mapping[str, Callable[..., Any]], *, replace: bool = False) -> None:
        """Serve every tool of another registry, or every function of a methods dict, from this one too.

        Including a :class:`Registry` is live: a tool added to ``other`` later
        is served from this registry as well (and refused there if its name is
        taken here). A methods dict is read once, when included.

        Args:
            replace: on a name clash, take ``other``'s tool instead of refusing.

        Raises:
            ToolDefinitionError: a name is taken (and ``replace`` is false) or reserved.
        """
        if other is self or (isinstance(other, Registry) and self._included_by(other)):
            raise ToolDefinitionError("registries cannot include each other in a circle")
        for name, item in other.items():
            if isinstance(item, Tool):
                self._put(item, replace=replace)
            else:
                self.add(item, name=name, replace=replace)
        if isinstance(other, Registry) and all(ref() is not self for ref, _ in other._includers):
            other._includers.append((weakref.ref(self), replace))

    def __getitem__(self, name: str) -> Tool:
        return self._tools[name]

    def get(self, name: str, default: Any = None) -> Any:  # skip Mapping's try/except
        return self._tools.get(name, default)

    @property
    def lookup(self) -> Callable[[str], Tool | None]:
        """``dict.get`` of the live table: a lookup with no Python frame, for the dispatcher."""
        return self._tools.get

    def __iter__(self) -> Iterator[str]:
        return iter(self._tools)

    def __len__(self) -> int:
        return len(self._tools)

    def __repr__(self) -> str:
        return f"Registry({sorted(self._tools)!r})"
