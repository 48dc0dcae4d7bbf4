"""The command line: ``python -m rpc_client`` and ``rpc-client``.

``main(argv)`` holds all of it and returns the exit status, so tests call it
directly; ``__main__.py`` only calls it.

A single call asks for progress reports (``"stream": true``) unless ``--json``
or ``--no-progress`` says otherwise, and shows them on stderr: a tqdm bar on
a terminal, else one line per report. Ctrl-C cancels the main task, so the
call in flight is cancelled on the server (``rpc.cancel``) before the
connection closes, and the exit status is 130.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import math
import os
import re
import ssl
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TextIO

from jsonrpcclient import Error, Ok

from . import describe
from .client import DEFAULT_CONNECT_TIMEOUT, DEFAULT_TIMEOUT, Client
from .credentials import check_token
from .errors import (
    AuthenticationError,
    CallTimeout,
    ConnectError,
    InvalidURL,
    ProtocolError,
    RpcConnectionError,
    RpcError,
)
from .messages import Params, Response
from .progress import ProgressDisplay
from .url import check_url

__all__ = [
    "DEFAULT_URL",
    "EXIT_AUTHENTICATION",
    "EXIT_BROKEN_PIPE",
    "EXIT_CONNECTION",
    "EXIT_INTERRUPTED",
    "EXIT_OK",
    "EXIT_RPC_ERROR",
    "EXIT_TIMEOUT",
    "EXIT_USAGE",
    "UsageError",
    "build_parser",
    "main",
    "parse_params",
    "parse_value",
    "read_batch",
]

INVALID_REQUEST = -32600  # the spec's code; a server refusing a member of the request answers it

DEFAULT_URL = "ws://127.0.0.1:8000/ws"

EXIT_OK = 0
EXIT_RPC_ERROR = 1  # the server answered with an error (or with something that is not JSON-RPC)
EXIT_USAGE = 2  # argparse's own status for bad usage
EXIT_CONNECTION = 3  # no connection: refused, unreachable, or lost before the answer
EXIT_TIMEOUT = 4
EXIT_AUTHENTICATION = 5  # the server refused the credential (HTTP 401) or the connection (403)
EXIT_INTERRUPTED = 130  # the shell's status for a process ended by SIGINT
EXIT_BROKEN_PIPE = 141  # and for one ended by SIGPIPE: the reader of stdout went away

PROG = "rpc-client"
MODULE_PROG = "python -m rpc_client"

EPILOG = """\
examples:
  %(prog)s multiply 3 4                     prints 12
  %(prog)s subtract minuend=42 subtrahend=23
  %(prog)s sleep 1 '"done"' --timeout 0.5   a JSON string; exits 4 on the timeout
  %(prog)s --json divide 1 0                the whole response object
  %(prog)s --notify multiply 3 4            no id, no answer
  %(prog)s --batch calls.jsonl              one output line per call, in order
  echo '[{"method": "add", "params": [1, 2]}]' | %(prog)s --batch -
  %(prog)s --demo                           several calls at once, printed as they come back
  %(prog)s --stream count 5                 prints 1 to 5, one line each, as they come
  %(prog)s long_task 3                      a progress bar on stderr, then the result
  %(prog)s long_task 3 2>progress.log       not a terminal: lines like 'progress 3/10: step 3 of 10'
  %(prog)s --subscribe clock                one JSON line per tick, until Ctrl-C
  %(prog)s --subscribe clock interval=0.5 --max 3
  %(prog)s --list                           the server's methods and topics
  %(prog)s --describe divide                params, result, errors and an example
  RPC_TOKEN=... %(prog)s multiply 3 4       with a credential (API key or JWT)
  %(prog)s --url wss://host:8443/ws --cafile ca.pem --token-file token.txt multiply 3 4

Each param is read as JSON when it is JSON (3, 2.5, true, null, [1,2], '"3"'),
else as a string; name=value params are sent by name. Put -- before params
that begin with '-' and are not numbers. A --batch file holds JSON lines, or
one JSON array, of {"method": ..., "params": ...} objects. With --subscribe,
METHOD is the topic and the params are the topic's.

A single call asks the server for progress reports ("stream": true), shown on
stderr; --json and --no-progress send a plain JSON-RPC 2.0 request instead (for
servers that refuse unknown members). Ctrl-C during a call cancels it on the
server (rpc.cancel) and exits 130.

A credential (--token, RPC_TOKEN, --token-file) goes as 'Authorization: Bearer
TOKEN' on the opening request; prefer RPC_TOKEN or --token-file, which other
users cannot read from the process list.

exit status: 0 ok, 1 the server answered with an error, 2 bad usage,
3 cannot connect (or the connection was lost), 4 timeout, 5 the server refused
the credential (or the connection: HTTP 401 or 403), 130 interrupted,
141 the reader of the output went away.
"""

# The calls of --demo: what the seed's client did, plus a slow one sent first to show that
# answers come back as they are ready, not in the order asked.
DEMO: list[tuple[str, str, list[Any]]] = [
    ('sleep(0.2, "slow") =', "sleep", [0.2, "slow"]),
    ("3 * 4 =", "multiply", [3, 4]),
    ("1 + 2 =", "add", [1, 2]),
    ("42 - 23 =", "subtract", [42, 23]),
    ("7 / 2 =", "divide", [7, 2]),
    ("2 ** 10 =", "pow", [2, 10]),
    ("sum(1, 2, 3, 4) =", "sum", [1, 2, 3, 4]),
]

_NAMED = re.compile(r"([A-Za-z_][\w.-]*)=(.*)", re.DOTALL)


class UsageError(Exception):
    """The command line or a --batch file is not usable; the message says why."""


def _env(name: str, default: str) -> str:
    return os.environ.get(name) or default


def invoked_as(argv0: str | None = None) -> str:
    """The program's name as the user typed it: ``python -m rpc_client``, or the console script's name."""
    path = Path(sys.argv[0] if argv0 is None else argv0)
    if path.name == "__main__.py" and path.parent.name == "rpc_client":
        return MODULE_PROG
    if path.name.startswith("rpc-client"):
        return path.name
    return PROG  # called as a function (tests, embedding): the console script's name


# argparse names a type's function in its message ("invalid _seconds value"): these say it in words.
def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, not {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be more than 0, not {text}")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {text}")
    return value


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The argument parser; ``prog`` is how the program names itself in usage and error lines."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Call a JSON-RPC 2.0 method over WebSocket and print its result.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add = parser.add_argument
    add("method", nargs="?", metavar="METHOD", help="the method to call")
    add("params", nargs="*", metavar="PARAM", help="a param: JSON if it parses, else a string; name=value by name")
    add("--url", default=_env("RPC_URL", DEFAULT_URL), help="the server's endpoint (env RPC_URL; default %(default)s)")
    add(
        "--timeout",
        type=_seconds,
        default=DEFAULT_TIMEOUT,
        metavar="SECONDS",
        help="how long the whole command may take, connecting included; with --subscribe, "
        "until subscribed (default %(default)g)",
    )
    add(
        "--connect-timeout",
        type=_seconds,
        metavar="SECONDS",
        help=f"how long connecting may take (default {DEFAULT_CONNECT_TIMEOUT:g}, or --timeout if shorter)",
    )
    add("--notify", action="store_true", help="send a notification: no id, no answer, nothing printed")
    add("--json", action="store_true", help="print the whole response object instead of the result")
    add("--batch", metavar="FILE", help="send the calls in FILE ('-' for stdin) as one batch")
    add("--demo", action="store_true", help="send several calls at once and print each answer as it comes")
    add(
        "--list", action="store_true", help="list the server's methods (rpc.discover): params with types, one line each"
    )
    add("--describe", metavar="METHOD", help="one method's params, types, defaults, result, errors and an example")
    add("--stream", action="store_true", help="print each part of a streamed result (one JSON line each) as it comes")
    add(
        "--subscribe",
        action="store_true",
        help="subscribe to the topic METHOD (params: the topic's) and print each event as a JSON line",
    )
    add("--max", type=_count, metavar="N", help="stop after N parts (--stream) or events (--subscribe)")
    add(
        "--no-progress",
        action="store_true",
        help='send a plain request: no "stream": true, so no progress reports are asked for '
        "(with --stream, which needs it, the reports are not shown)",
    )
    add(
        "--token",
        metavar="TOKEN",
        help="the credential (an API key or a JWT), sent as 'Authorization: Bearer TOKEN' (env RPC_TOKEN, "
        "which, like --token-file, keeps it out of the process list)",
    )
    add("--token-file", metavar="PATH", help="read the credential from PATH (the whole file, spaces around it ignored)")
    add("--cafile", metavar="PATH", help="trust the CA certificates in PATH (PEM) for a wss:// server's certificate")
    add(
        "--loop",
        default="asyncio",
        choices=["asyncio", "uvloop"],
        help="the event loop: uvloop is faster, and needs pip install 'rpc-tools[speed]' (default %(default)s)",
    )
    add(
        "--log-level",
        default="warning",
        choices=["debug", "info", "warning", "error"],
        help="what the client logs to stderr (default %(default)s)",
    )
    return parser


def parse_value(text: str) -> Any:
    """A command-line param: its JSON value when it is JSON, else the text itself.

    Raises:
        UsageError: a number too large for JSON's numbers (a double), such as 1e400.
    """
    try:
        return _loads(text)
    except ValueError:
        return text


def _not_json(name: str) -> Any:
    # json.loads accepts NaN and Infinity, which are not JSON: keep them as strings.
    raise ValueError(name)


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise UsageError(f"the number {text} is out of range: JSON numbers are doubles, at most about 1.8e308")
    return value


def _loads(text: str) -> Any:
    """JSON as a call may carry it: no NaN or Infinity (ValueError), no number past a double's range (UsageError).

    Nor nesting past what the parser reads (UsageError), which would not be sent either.
    """
    try:
        return json.loads(text, parse_constant=_not_json, parse_float=_finite)
    except RecursionError:
        raise UsageError("a JSON value nested more than about 1,000 levels deep cannot be sent") from None


def parse_params(args: Sequence[str]) -> Params:
    """The params of a call from its command-line words.

    Raises:
        UsageError: params given both by position and by name.
    """
    positional: list[Any] = []
    named: dict[str, Any] = {}
    for arg in args:
        value = parse_value(arg)
        match = _NAMED.fullmatch(arg) if value is arg else None
        if match:
            named[match[1]] = parse_value(match[2])
        else:
            positional.append(value)
    if positional and named:
        raise UsageError("give params by position or as name=value, not both")
    return named or positional


def read_batch(source: TextIO, name: str = "the batch") -> list[tuple[str, Params]]:
    """The calls of a --batch file: JSON lines, or one JSON array, of {"method", "params"} objects.

    Raises:
        UsageError: the file is not readable as such; the message names the line.
    """
    text = source.read()
    if text.lstrip().startswith("["):
        try:
            items = _loads(text)
        except ValueError as exc:
            raise UsageError(f"{name}: not a JSON array: {exc}") from None
        entries = [(f"{name}: item {i}", item) for i, item in enumerate(items, 1)]
    else:
        entries = []
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                entries.append((f"{name}, line {number}", _loads(line)))
            except ValueError as exc:
                raise UsageError(f"{name}, line {number}: not JSON: {exc}") from None
            except UsageError as exc:
                raise UsageError(f"{name}, line {number}: {exc}") from None
    calls = [_batch_call(where, item) for where, item in entries]
    if not calls:
        raise UsageError(f"{name} holds no calls")
    return calls


def _batch_call(where: str, item: Any) -> tuple[str, Params]:
    if not isinstance(item, dict) or not isinstance(item.get("method"), str):
        raise UsageError(f'{where}: expected an object with a "method" string, got {json.dumps(item)[:80]}')
    params = item.get("params")
    if params is not None and not isinstance(params, (list, dict)):
        raise UsageError(f"{where}: params must be an array or an object")
    return item["method"], params


# -- output ------------------------------------------------------------------


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)


def _error_line(code: Any, message: Any, data: Any) -> str:
    line = f"error {code}: {message}"
    if data is not None:
        line += f": {data if isinstance(data, str) else _json(data)}"
    return line


def _response_object(response: Response) -> dict[str, Any]:
    if isinstance(response, Ok):
        return {"jsonrpc": "2.0", "result": response.result, "id": response.id}
    error: dict[str, Any] = {"code": response.code, "message": response.message}
    if response.data is not None:
        error["data"] = response.data
    return {"jsonrpc": "2.0", "error": error, "id": response.id}


def _outcome_line(outcome: Response | ProtocolError, as_json: bool) -> str:
    if isinstance(outcome, ProtocolError):
        return f"error: {outcome}"
    if as_json:
        return _json(_response_object(outcome))
    if isinstance(outcome, Error):
        return _error_line(outcome.code, outcome.message, outcome.data)
    return _json(outcome.result)


# -- the runs ----------------------------------------------------------------


async def _one(client: Client, method: str, params: Params, args: argparse.Namespace, refused: Refusals) -> int:
    if args.notify:
        await client.notification(method, params)
        return EXIT_OK
    display = None if args.json or args.no_progress else ProgressDisplay(method)
    try:
        response = await _ask(client, method, params, display, refused)
        invalid = response is None or (isinstance(response, Error) and response.code == INVALID_REQUEST)
        if display is not None and invalid:
            # A server strict about the members of a request refuses "stream": true, with
            # an error tied to our id or (jsonrpcserver's schema) to none. -32600 means it
            # ran nothing, so asking again, plainly, cannot run the call twice.
            response = await _ask(client, method, params, None, refused)
    finally:
        if display is not None:
            display.close()
    if response is None:
        error = refused.last["error"]
        print(_error_line(error.get("code"), error.get("message"), error.get("data")), file=sys.stderr)
        return EXIT_RPC_ERROR
    if args.json:
        print(_json(_response_object(response)))
    elif isinstance(response, Ok):
        print(_json(response.result))
    if isinstance(response, Error):
        if not args.json:
            print(_error_line(response.code, response.message, response.data), file=sys.stderr)
        return EXIT_RPC_ERROR
    return EXIT_OK


class Refusals:
    """Errors with a null id: this run sends one request at a time, so such an error is that request's."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.last: dict[str, Any] = {}

    def __call__(self, error: dict[str, Any]) -> None:
        self.last = error
        self.event.set()


async def _ask(
    client: Client, method: str, params: Params, display: ProgressDisplay | None, refused: Refusals
) -> Response | None:
    """The answer to one request, or None if the server refused it unread (an error with a null id)."""
    refused.event.clear()
    call = asyncio.ensure_future(client.request(method, params, progress=display))
    refusal = asyncio.ensure_future(refused.event.wait())
    try:
        await asyncio.wait({call, refusal}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        refusal.cancel()
        if not call.done():
            call.cancel()
            # Let the call take its cancellation (and queue its rpc.cancel) before we go on,
            # or out: on Ctrl-C the connection closes right after.
            await asyncio.wait({call})
    try:
        return await call
    except asyncio.CancelledError:
        if refused.event.is_set():
            return None
        raise


async def _stream(client: Client, method: str, params: Params, args: argparse.Namespace) -> int:
    display = ProgressDisplay(method)
    received = 0
    try:
        progress = None if args.no_progress else display  # a stream always opts in; --no-progress hides the reports
        stream = (
            client.stream(method, **params, progress=progress)
            if isinstance(params, dict)
            else client.stream(method, *(params or ()), progress=progress)
        )
        async with contextlib.aclosing(stream) as parts:
            async for part in parts:
                display.print(_json(part))
                received += 1
                if args.max is not None and received >= args.max:
                    break  # leaving the stream cancels the rest on the server
    except RpcError as exc:
        print(_error_line(exc.code, exc.message, exc.data), file=sys.stderr)
        return EXIT_RPC_ERROR
    finally:
        display.close()
    return EXIT_OK


async def _subscribe(
    client: Client, topic: str, params: Params, args: argparse.Namespace, subscribed: Callable[[], None]
) -> int:
    taken = 0
    try:
        async with client.subscribe(topic, params or None) as events:
            subscribed()
            async for event in events:
                if args.json:
                    line: dict[str, Any] = {"subscription": event.subscription, "topic": event.topic}
                    line["event"] = event.data
                    if event.dropped:
                        line["dropped"] = event.dropped
                    print(_json(line), flush=True)
                else:
                    if event.dropped:
                        print(f"{args.prog}: {event.dropped} event(s) lost before this one", file=sys.stderr)
                    print(_json(event.data), flush=True)
                taken += 1
                if args.max is not None and taken >= args.max:
                    return EXIT_OK
    except RpcError as exc:
        print(_error_line(exc.code, exc.message, exc.data), file=sys.stderr)
        return EXIT_RPC_ERROR
    print(f"{args.prog}: the server ended the subscription: {events.reason}", file=sys.stderr)
    return EXIT_OK


async def _batch(client: Client, calls: list[tuple[str, Params]], as_json: bool, refused: Refusals) -> int:
    # A server refuses a batch it will not read (too long, say) with one null-id error: race the answers against it.
    refused.event.clear()
    batch = asyncio.ensure_future(client.batch_request(calls))
    refusal = asyncio.ensure_future(refused.event.wait())
    try:
        await asyncio.wait({batch, refusal}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        refusal.cancel()
        if not batch.done():
            batch.cancel()
            await asyncio.wait({batch})
    if batch.cancelled() and refused.event.is_set():
        error = refused.last["error"]
        print(_error_line(error.get("code"), error.get("message"), error.get("data")), file=sys.stderr)
        return EXIT_RPC_ERROR
    status = EXIT_OK
    for outcome in await batch:
        print(_outcome_line(outcome, as_json))
        if not isinstance(outcome, Ok):
            status = EXIT_RPC_ERROR
    return status


async def _discover(client: Client, method: str | None, url: str | None, prog: str) -> int:
    try:
        print(describe.render(await client.discover(), method, url), end="")
    except RpcError as exc:
        print(f"{_error_line(exc.code, exc.message, exc.data)} (does the server offer rpc.discover?)", file=sys.stderr)
        return EXIT_RPC_ERROR
    except KeyError:
        print(f"{prog}: the server has no method or topic {method!r}; --list shows them", file=sys.stderr)
        return EXIT_RPC_ERROR
    return EXIT_OK


async def _demo(client: Client) -> int:
    print(f"connected to {client.url}; sending {len(DEMO)} calls at once")

    async def one(label: str, method: str, params: list[Any]) -> tuple[str, Response]:
        return label, await client.request(method, params)

    status = EXIT_OK
    # Tasks made here, in order, so the calls go out in the order listed.
    tasks = [asyncio.ensure_future(one(*call)) for call in DEMO]
    try:
        for done in asyncio.as_completed(tasks):
            label, response = await done
            if isinstance(response, Ok):
                print(label, _json(response.result), flush=True)
            else:
                print(label, _error_line(response.code, response.message, response.data), flush=True)
                status = EXIT_RPC_ERROR
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
    return status


def _what(args: argparse.Namespace, calls: list[tuple[str, Params]] | None) -> str:
    """The command's work, for a timeout's message."""
    if args.demo:
        return "the demo's calls"
    if calls is not None:
        return f"the batch of {len(calls)}"
    if args.notify:
        return f"notification {args.method!r}"
    if args.subscribe:
        return f"rpc.subscribe to {args.method!r}"
    return repr(args.method)


async def _run(
    args: argparse.Namespace, calls: list[tuple[str, Params]] | None, params: Params, options: dict[str, Any]
) -> int:
    """The command, within --timeout from its start, connecting included; ``options`` go to the Client."""
    refused = Refusals()
    if args.connect_timeout is not None:
        options = {**options, "connect_timeout": args.connect_timeout}
    client = Client(args.url, timeout=args.timeout, on_unmatched_error=refused, **options)
    whole = asyncio.timeout(args.timeout)
    try:
        async with whole:
            await client.connect()
            return await _work(client, args, calls, params, refused, lambda: whole.reschedule(None))
    except TimeoutError:
        if not whole.expired():
            raise
        if not client.connected:
            raise ConnectError(
                f"cannot connect to {args.url}: no WebSocket connection within {args.timeout:g} s"
            ) from None
        raise CallTimeout(f"no answer to {_what(args, calls)} within {args.timeout:g} s ({args.url})") from None
    finally:
        await client.close()


async def _work(
    client: Client,
    args: argparse.Namespace,
    calls: list[tuple[str, Params]] | None,
    params: Params,
    refused: Refusals,
    unbounded: Callable[[], None],
) -> int:
    if args.demo:
        return await _demo(client)
    if args.list or args.describe:
        url = None if args.url == _env("RPC_URL", DEFAULT_URL) else args.url
        return await _discover(client, args.describe, url, args.prog)
    if calls is not None:
        return await _batch(client, calls, args.json, refused)
    if args.stream:
        return await _stream(client, args.method, params, args)
    if args.subscribe:
        return await _subscribe(client, args.method, params, args, unbounded)
    return await _one(client, args.method, params, args, refused)


def _connection_options(args: argparse.Namespace) -> dict[str, Any]:
    """The Client's ``token`` and ``ssl`` from --token, --token-file, RPC_TOKEN and --cafile.

    Raises:
        UsageError: both --token and --token-file, a token that cannot be one, a file
            that cannot be read, or --cafile with a ws:// URL.
    """
    options: dict[str, Any] = {}
    token: str | None
    if args.token is not None and args.token_file is not None:
        raise UsageError("give --token or --token-file, not both")
    if args.token_file is not None:
        try:
            token, where = Path(args.token_file).read_text(encoding="utf-8").strip(), f"--token-file {args.token_file}"
        except (OSError, UnicodeDecodeError) as exc:
            raise UsageError(f"cannot read --token-file {args.token_file}: {_why(exc)}") from None
    elif args.token is not None:
        token, where = args.token, "--token"
    else:
        # Read here, not as the flag's default: --help must not show it.
        token, where = os.environ.get("RPC_TOKEN") or None, "RPC_TOKEN"
    if token is not None:
        try:
            options["token"] = check_token(token, f"the token of {where}")
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    if args.cafile is not None:
        if not args.url.lower().startswith("wss://"):
            raise UsageError(f"--cafile is for wss:// URLs, not {args.url}")
        try:
            options["ssl"] = ssl.create_default_context(cafile=args.cafile)
        except ssl.SSLError:
            raise UsageError(f"--cafile {args.cafile} holds no PEM certificate") from None
        except OSError as exc:
            raise UsageError(f"cannot read --cafile {args.cafile}: {_why(exc)}") from None
    return options


def _why(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) else None) or str(exc)


def _usage(parser: argparse.ArgumentParser, message: str) -> int:
    parser.print_usage(sys.stderr)
    print(f"{parser.prog}: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _runner(name: str) -> Callable[[Coroutine[Any, Any, int]], int]:
    """How to run the command: on asyncio's default loop, or on uvloop's.

    Raises:
        UsageError: uvloop was asked for and is not installed.
    """
    if name != "uvloop":
        return asyncio.run
    try:
        import uvloop
    except ImportError:
        raise UsageError("--loop uvloop needs uvloop: pip install 'rpc-tools[speed]'") from None

    def run(main: Coroutine[Any, Any, int]) -> int:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(main)

    return run


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser(invoked_as())
    prog = parser.prog
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse has already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    args.prog = prog
    modes = sum((args.demo, args.batch is not None, args.method is not None, args.list, args.describe is not None))
    if modes != 1:
        return _usage(
            parser, "give a METHOD to call, or --batch FILE, or --demo, --list or --describe METHOD (one of them)"
        )
    if args.notify and args.method is None:
        return _usage(parser, "--notify needs a METHOD")
    if args.stream and args.subscribe:
        return _usage(parser, "--stream and --subscribe do not go together")
    if (args.stream or args.subscribe) and (args.method is None or args.notify):
        flag = "--stream" if args.stream else "--subscribe"
        return _usage(parser, f"{flag} needs a METHOD (for --subscribe, a topic) and no --notify")
    if args.max is not None and not (args.stream or args.subscribe):
        return _usage(parser, "--max goes with --stream or --subscribe")
    try:
        check_url(args.url)
    except InvalidURL as exc:
        return _usage(parser, f"--url: {exc}")
    calls: list[tuple[str, Params]] | None = None
    params: Params = None
    try:
        options = _connection_options(args)
        run = _runner(args.loop)
        if args.batch == "-":
            calls = read_batch(sys.stdin, "stdin")
        elif args.batch is not None:
            with open(args.batch, encoding="utf-8") as source:
                calls = read_batch(source, args.batch)
        else:
            params = parse_params(args.params)
            if args.stream and isinstance(params, dict) and {"timeout", "progress"} & params.keys():
                raise UsageError("with --stream, params cannot be named timeout or progress: give them by position")
    except UsageError as exc:
        return _usage(parser, str(exc))
    except OSError as exc:
        return _usage(parser, f"cannot read {args.batch}: {exc.strerror or exc}")
    logging.basicConfig(level=args.log_level.upper(), format=f"{prog}: %(message)s")
    try:
        return run(_run(args, calls, params, options))
    except KeyboardInterrupt:
        print(f"{prog}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except AuthenticationError as exc:
        hint = ""
        if exc.status == 401 and "token" not in options:
            hint = "; give a credential with --token, --token-file or RPC_TOKEN"
        print(f"{prog}: {exc}{hint}", file=sys.stderr)
        return EXIT_AUTHENTICATION
    except RpcConnectionError as exc:
        hint = ""
        if isinstance(exc, ConnectError) and exc.refused:
            hint = "; is the server running? Start one with: python -m rpc_server"
        print(f"{prog}: {exc}{hint}", file=sys.stderr)
        return EXIT_CONNECTION
    except CallTimeout as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_TIMEOUT
    except ProtocolError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_RPC_ERROR
    except BrokenPipeError:
        # Whoever read our output has gone (`| head -1`): stop quietly, as Unix tools do.
        _silence_stdout()
        return EXIT_BROKEN_PIPE


def _silence_stdout() -> None:
    # Python flushes stdout again at exit, which would raise once more on the closed pipe.
    try:
        fileno = sys.stdout.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fileno)
    os.close(devnull)
