"""Logs: plain text or JSON lines, with the context of the connection that caused them, and the access log.

``--log-format json`` writes one JSON object per line on stderr: ``time``
(ISO 8601, UTC), ``level``, ``logger``, ``message``, then whatever context
there is: ``peer``, ``connection``, ``identity`` (once authenticated),
``method`` and ``request_id`` (for a call), ``worker`` (with ``--workers``),
and ``exception`` (a traceback). The connection puts its part of the context
in :data:`CONTEXT` while it runs a message, so every line logged meanwhile,
by the server or by a tool, carries it.

``--access-log`` adds one line per call on the logger ``rpc_server.access``:
peer, identity, method, request id, duration, outcome code, and the size in
bytes of the request and of its answer. Never params, results or
credentials: the line is built from those fields only.

:func:`redacting_logger` is what websockets' protocol objects log through: at
DEBUG they log each request line, header and frame, and it keeps credentials
(query strings, ``Authorization``, cookies) and message contents out.
"""

from __future__ import annotations

import contextvars
import datetime
import logging
import os
import re
import sys
from collections.abc import Callable
from typing import Any

import orjson
from websockets.frames import Frame, Opcode

__all__ = [
    "CONTEXT",
    "FORMATS",
    "MAX_CLIENT_CHARS",
    "UNKNOWN_METHOD",
    "AccessLog",
    "JsonFormatter",
    "RedactingLogger",
    "TextFormatter",
    "bounded",
    "configure",
    "redacting_logger",
]

FORMATS = ("text", "json")

# The context of the connection whose message is being handled: peer, connection, identity.
CONTEXT: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("rpc_log_context", default=None)

# Context a call adds to a record with ``extra=``, in this order.
_CALL_FIELDS = ("method", "request_id")
_WORKER = os.environ.get("RPC_WORKER")
# What the access log names a method the server does not serve (as the metrics do).
UNKNOWN_METHOD = "(unknown)"
# The most of a client's string (a request id, a method name) a log line holds.
MAX_CLIENT_CHARS = 64


def bounded(value: Any) -> Any:
    """A value a client chose (a request id, a method name) as a log line may hold it: short, and no huge number.

    >>> bounded("x" * 100)[-3:], bounded(7), bounded(10**400), bounded([1])
    ('xx…', 7, '(an integer of 1329 bits)', '(a list)')
    """
    kind = type(value)
    if kind is str:
        return value if len(value) <= MAX_CLIENT_CHARS else value[: MAX_CLIENT_CHARS - 1] + "…"
    if value is None or kind is bool or kind is float or (kind is int and value.bit_length() <= 64):
        return value
    if kind is int:  # beyond 4300 digits, even str() of it fails
        return f"(an integer of {value.bit_length()} bits)"
    return f"(a {kind.__name__})"


def _context(record: logging.LogRecord) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    connection = CONTEXT.get()
    if connection:
        fields.update(connection)
    for name in _CALL_FIELDS:
        value = getattr(record, name, None)
        if value is not None:
            fields[name] = bounded(value)
    if _WORKER is not None:
        fields["worker"] = int(_WORKER)
    return fields


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (newlines in a traceback are escaped)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        entry.update(_context(record))
        access = getattr(record, "access", None)
        if access is not None:
            entry.update(access)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


# A value written as it is after ``key=``; any other is written as a JSON string.
_PLAIN = re.compile(r'[^\s"=\[\]\\]+')


def _text(value: Any) -> str:
    """A context value in a text line: as it is when plain, else quoted, so that no client can add a line or a field."""
    text = str(value)
    if _PLAIN.fullmatch(text) and text.isprintable():
        return text
    quoted = orjson.dumps(text).decode()  # escapes quotes, backslashes and C0 controls
    # and what orjson leaves: C1 controls and Unicode's line and paragraph separators.
    return quoted if quoted.isprintable() else "".join(c if c.isprintable() else f"\\u{ord(c):04x}" for c in quoted)


class TextFormatter(logging.Formatter):
    """``TIME LEVEL LOGGER: MESSAGE [key=value ...]``: the context after the message.

    A value that is not one plain word (spaces, quotes, brackets, control
    characters) is written as a JSON string: a client's request id cannot
    forge a line or a field.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        fields = _context(record)
        access = getattr(record, "access", None)
        if access is not None:
            fields.update(access)
        if not fields:
            return text
        head, newline, rest = text.partition("\n")  # a traceback stays below the line
        pairs = " ".join(f"{key}={_text(value)}" for key, value in fields.items())
        return f"{head} [{pairs}]{newline}{rest}"


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """A handler writing to ``sys.stderr`` as it is at each record, not as it was when configured.

    A program (or a test) that swaps ``sys.stderr`` after :func:`configure` would
    otherwise leave the server's logs writing to a stream since closed.
    """

    def __init__(self) -> None:
        logging.Handler.__init__(self)

    @property  # type: ignore[override]
    def stream(self) -> Any:
        return sys.stderr


def configure(level: str, log_format: str = "text") -> None:
    """Send the server's logs to stderr at ``level``, as ``text`` or ``json`` lines."""
    handler = _Stderr()
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level.upper())
    if level.lower() != "debug":
        # websockets logs every connection opened and closed at INFO: noise at this rate.
        logging.getLogger("websockets").setLevel(logging.WARNING)


class AccessLog:
    """Writes one line per call (a call observer of the dispatcher; see :mod:`.metrics` for the other).

    What the client chose is bounded: a method the server does not serve is
    ``(unknown)``, a request id at most 64 characters.

    Args:
        logger: where the lines go; ``rpc_server.access`` by default.
        known: whether a method name is served (``Dispatcher.serves``); None:
            every name is written, cut to 64 characters.
    """

    def __init__(self, logger: logging.Logger | None = None, known: Callable[[str], bool] | None = None) -> None:
        self.logger = logger if logger is not None else logging.getLogger("rpc_server.access")
        self.known = known

    def call(self, request: Any, outcome: dict[str, Any] | None, seconds: float) -> None:
        method = request.get("method") if type(request) is dict else None
        if type(method) is not str:
            method = None
        elif self.known is not None and not self.known(method):
            method = UNKNOWN_METHOD
        fields: dict[str, Any] = {
            "method": bounded(method),
            "request_id": bounded(request.get("id")) if type(request) is dict else None,
            "duration_ms": round(seconds * 1e3, 3),
            "code": outcome_code(outcome),
        }
        # Sizes only: the request and the answer are measured, never written.
        fields["bytes_in"] = _size(request)
        if outcome is not None:
            fields["bytes_out"] = _size(outcome)
        self.logger.info("call", extra={"access": fields})


def _size(value: Any) -> int | None:
    try:
        return len(orjson.dumps(value))
    except TypeError:  # beyond what orjson writes (big integers): the size is not worth a slower encoder
        return None


def outcome_code(outcome: dict[str, Any] | None) -> str:
    """The outcome of a call, as the metrics and the access log name it: ``ok``, an error code, or ``none``."""
    if outcome is None:
        return "none"  # a notification (or a call cut short by its connection closing): nothing answered
    error = outcome.get("error")
    if error is None:
        return "ok"
    code = error.get("code") if type(error) is dict else None
    return str(code) if type(code) is int else "error"


# -- keeping credentials and message contents out of websockets' debug logs -----------------

# Everything after a '?': the query string, however its names are spelt (percent-encoded ones included).
_QUERY = re.compile(r"\?\S*")
_SECRET_HEADERS = frozenset({"authorization", "proxy-authorization", "cookie", "set-cookie"})
# Frames whose payload is the peers' messages: logged by kind and size only.
_PAYLOAD_FRAMES = frozenset((Opcode.TEXT, Opcode.BINARY, Opcode.CONT))


def _redacted(arg: Any) -> Any:
    if isinstance(arg, str):
        return _QUERY.sub("?[redacted]", arg)
    if isinstance(arg, Frame) and arg.opcode in _PAYLOAD_FRAMES:
        continued = "" if arg.fin else ", continued"
        return f"{arg.opcode.name} [redacted, {len(arg.data)} bytes{continued}]"
    return arg


class RedactingLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger for websockets' protocol objects that writes no credential and no message content.

    At DEBUG, websockets logs each request line (with its query string), each
    header and each frame: this passes them on with every query string (which
    may carry an ``access_token``, whatever the spelling of its name),
    ``Authorization`` and cookie headers, and the payload of data frames (params
    and results) replaced by ``[redacted]``. Close frames, pings and sizes stay.
    """

    def log(self, level: int, msg: Any, *args: Any, **kwargs: Any) -> None:
        if not self.isEnabledFor(level):
            return
        if len(args) == 2 and isinstance(args[0], str) and args[0].lower() in _SECRET_HEADERS:
            args = (args[0], "[redacted]")
        else:
            args = tuple(_redacted(arg) for arg in args)
        if level <= logging.DEBUG and kwargs.get("exc_info"):
            # websockets' "! no valid HTTP request" and the like: the exception quotes the request
            # line, query string included. Its one line is enough at DEBUG, redacted.
            info = kwargs["exc_info"]
            exc = info if isinstance(info, BaseException) else sys.exc_info()[1]
            if exc is not None:
                kwargs["exc_info"] = None
                msg, args = f"{msg}: %s: %s", (*args, type(exc).__name__, _redacted(str(exc)))
        # stacklevel: the record names websockets' line that logged, not this one.
        kwargs["stacklevel"] = kwargs.get("stacklevel", 1) + 1
        self.logger.log(level, msg, *args, **kwargs)


def redacting_logger(name: str = "websockets.server") -> RedactingLogger:
    """The logger ``name``, through a :class:`RedactingLogger`."""
    return RedactingLogger(logging.getLogger(name), {})
