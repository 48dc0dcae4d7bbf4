"""Runs the fenced blocks of README.md and docs/*.md: the kinds of block, and the page each runs in.

Sybil parses the Markdown, turns each fenced block into a pytest item (in document
order, one namespace per page) and handles ``<!-- skip: next "reason" -->``. This
module gives each block its evaluator, by the block's info string; the conventions
are written for doc authors in docs/development.md, "Documentation whose examples run".

Every page gets a scratch directory and, when a block first needs one, a server
of its own (the built-in tools on a free port). Examples are written against
``ws://127.0.0.1:8000/ws``, as a reader runs them; the harness maps that address
to the page's server on the way in, and back on the way out.
"""

from __future__ import annotations

import asyncio
import contextlib
import doctest
import importlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sybil import Document, Example, Region, Sybil
from sybil.evaluators.python import pad
from sybil.parsers.markdown import SkipParser
from sybil.parsers.markdown.lexers import RawFencedCodeBlockLexer
from websockets.sync.client import connect as ws_connect

from rpc_server import RpcServer

__all__ = [
    "CANONICAL_HOST_PORT",
    "DOC_PAGES",
    "REPO",
    "Page",
    "fenced_blocks",
    "is_doc_page",
    "make_sybil",
    "mismatch",
    "parse_console",
    "parse_wire",
]

REPO = Path(__file__).resolve().parents[2]
DOC_PAGES = ("README.md", "docs/*.md")
CANONICAL_HOST_PORT = "127.0.0.1:8000"
PAGE_KEY = "_doc_page"

COMMAND_TIMEOUT_S = 30.0
SERVER_START_TIMEOUT_S = 120.0  # ./scripts/serve may first install into .venv
FRAME_TIMEOUT_S = 15.0
SKIPPED_FRAMES_LIMIT = 200

# "ws://127.0.0.1:8000" or "ws://localhost:8000" in an example's source
_EXAMPLE_URL = re.compile(r"ws://(?:127\.0\.0\.1|localhost):8000\b")
_INFO = re.compile(r"(?P<info>[^\n]*)$\n", re.MULTILINE)
_SERVER_COMMAND = re.compile(
    r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)*"  # RPC_MAX_BATCH=2 ...
    r"(?:\./scripts/serve|(?:\.venv/bin/)?python3? -m rpc_server|(?:\.venv/bin/)?rpc-server)(?:\s|$)"
)
# --port N with a port a server could have (--port 70000 is left for the server to refuse)
_PORT_FLAG = re.compile(r"--port(?:\s+|=)([1-9]\d{0,3}|[1-5]\d{4}|6[0-4]\d{3}|65[0-4]\d{2}|655[0-2]\d|6553[0-5])\b")


def is_doc_page(path: Path) -> bool:
    """README.md at the top of the repository, or a page directly in docs/."""
    path = path.resolve()
    return path == REPO / "README.md" or (path.parent == REPO / "docs" and path.suffix == ".md")


def doc_pages() -> list[Path]:
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


# -- comparing what was shown with what happened ---------------------------------------


def _normalise(text: str) -> str:
    lines = [line.rstrip() for line in text.replace("\r\n", "\n").split("\n")]
    while lines and not lines[-1]:
        lines.pop()
    return "\n".join(lines) + "\n" if lines else ""


def mismatch(expected: str, actual: str) -> str | None:
    """None when ``actual`` is what ``expected`` shows (``...`` matches anything); else both, to read."""
    want, got = _normalise(expected), _normalise(actual)
    if doctest.OutputChecker().check_output(want, got, doctest.ELLIPSIS):
        return None
    return f"expected:\n{_indent(want)}\ngot:\n{_indent(got)}"


def _indent(text: str) -> str:
    return "".join(f"    {line}\n" for line in (text or "(nothing)\n").splitlines())


# -- the page: its scratch directory and its server ------------------------------------


class _ThreadServer:
    """The page's default server: the built-in tools on a free port, on a loop in a thread of its own."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, name="docs server", daemon=True)
        self.server = RpcServer(host="127.0.0.1", port=0)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self.server.start(), self.loop).result(timeout=30)

    def stop(self) -> None:
        async def close() -> None:
            self.server.close()
            await self.server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=30)
        self.loop.close()


@dataclass
class _ServerProcess:
    """A server that a console block started; it runs until the page ends or another replaces it."""

    proc: subprocess.Popen[str]
    stderr_path: Path
    stdout_lines: list[str] = field(default_factory=list)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class Page:
    """What the blocks of one page share: a scratch directory, the page's server, output not yet shown."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.workdir = Path(tempfile.mkdtemp(prefix="rpc-docs-"))
        # A reader runs the commands from a checkout: give the scratch directory its .venv and scripts.
        for name in (".venv", "scripts"):
            if (REPO / name).exists():
                (self.workdir / name).symlink_to(REPO / name)
        self._default: _ThreadServer | None = None
        self._process: _ServerProcess | None = None
        self._url: str | None = None
        self._canonical = CANONICAL_HOST_PORT
        self.unshown_output: tuple[int, str] | None = None  # (line, text) printed by a python block

    # The page's server and the two spellings of its address.

    def url(self) -> str:
        """The URL of the page's server, starting the default one if none runs yet."""
        if self._url is None:
            self._default = _ThreadServer()
            self._use(self._default.server.url, CANONICAL_HOST_PORT)
        assert self._url is not None
        return self._url

    def _use(self, url: str, canonical: str) -> None:
        self._url, self._canonical = url, canonical

    @property
    def actual_host_port(self) -> str:
        return self.url().removeprefix("ws://").split("/", 1)[0]

    def to_actual(self, text: str) -> str:
        """An example's text, talking to the page's server."""
        text = _EXAMPLE_URL.sub(f"ws://{self.actual_host_port}", text)
        return text.replace(self._canonical, self.actual_host_port)

    def to_canonical(self, text: str) -> str:
        """What the page's server said, with its address as the example writes it."""
        if self._url is None:
            return text
        return text.replace(self.actual_host_port, self._canonical)

    def command_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("RPC_")}
        env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
        env["RPC_URL"] = self.url()
        env["COLUMNS"] = "80"  # argparse and pytest fit their output to the terminal's width
        env.pop("PYTHONPATH", None)
        return env

    def start_server(self, command: str, expected: str) -> str | None:
        """Run a console block's server command; on success it becomes the page's server."""
        port = _PORT_FLAG.search(command)
        canonical = f"127.0.0.1:{port.group(1) if port else 8000}"
        command = _PORT_FLAG.sub("--port 0", command)
        env = self.command_env()
        env["RPC_PORT"] = "0"
        stderr_path = self.workdir / f".server-{len(os.listdir(self.workdir))}.stderr"
        with stderr_path.open("w") as stderr:
            proc = subprocess.Popen(
                ["bash", "-c", command],
                cwd=self.workdir,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=stderr,
                text=True,
                start_new_session=True,
            )
        server = _ServerProcess(proc, stderr_path)
        listening = threading.Event()
        url: list[str] = []

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                server.stdout_lines.append(line)
                if not url and line.startswith("listening on "):
                    url.append(line.removeprefix("listening on ").strip())
                    listening.set()
            listening.set()  # it exited (or closed stdout) without listening

        threading.Thread(target=read, name="docs server stdout", daemon=True).start()
        if not listening.wait(SERVER_START_TIMEOUT_S):
            server.stop()
            return f"{command!r} printed no 'listening on' line within {SERVER_START_TIMEOUT_S:g} s"
        if not url:
            proc.wait(timeout=COMMAND_TIMEOUT_S)
            output = "".join(server.stdout_lines) + stderr_path.read_text()
            return mismatch(expected, self.to_canonical(output))
        shown = "".join(server.stdout_lines).replace(url[0].removeprefix("ws://").split("/", 1)[0], canonical)
        problem = mismatch(expected, shown)
        if problem:
            server.stop()
            return f"{problem}\nthe server's stderr:\n{_indent(stderr_path.read_text())}"
        if self._process is not None:
            self._process.stop()
        self._process = server
        self._use(url[0], canonical)
        return None

    def close(self) -> None:
        try:
            if self._process is not None:
                self._process.stop()
            if self._default is not None:
                self._default.stop()
        finally:
            for name, module in list(sys.modules.items()):
                if str(getattr(module, "__file__", None) or "").startswith(str(self.workdir)):
                    del sys.modules[name]
            shutil.rmtree(self.workdir, ignore_errors=True)


def _page(example: Example) -> Page:
    page = example.namespace.get(PAGE_KEY)
    if page is None:  # no setup ran: a document parsed outside pytest
        page = example.namespace[PAGE_KEY] = Page(example.path)
    assert isinstance(page, Page)
    return page


def _setup(namespace: dict[str, Any]) -> None:
    namespace.pop(PAGE_KEY, None)


def _teardown(namespace: dict[str, Any]) -> None:
    page = namespace.pop(PAGE_KEY, None)
    if isinstance(page, Page):
        page.close()
        if page.unshown_output is not None:
            line, _ = page.unshown_output
            raise AssertionError(f"{page.path}, line {line}: the block prints, but no ```output block follows it")


# -- python, output and file blocks ---------------------------------------------------------


def _claim_output(example: Example) -> str | None:
    """The failure left by a python block before this one whose output was never shown."""
    page = _page(example)
    if page.unshown_output is None:
        return None
    line, text = page.unshown_output
    page.unshown_output = None
    return f"the python block at line {line} printed this, but no ```output block follows it:\n{_indent(text)}"


@contextlib.contextmanager
def _in_workdir(page: Page) -> Iterator[None]:
    cwd = os.getcwd()
    os.chdir(page.workdir)
    sys.path.insert(0, str(page.workdir))
    try:
        yield
    finally:
        sys.path.remove(str(page.workdir))
        os.chdir(cwd)


def evaluate_python(example: Example) -> str | None:
    problem = _claim_output(example)
    if problem:
        return problem
    page = _page(example)
    source = str(example.parsed)
    if _EXAMPLE_URL.search(source):
        source = page.to_actual(source)
    code = compile(pad(source, example.line + example.parsed.line_offset), example.path, "exec", dont_inherit=True)
    printed = io.StringIO()
    with _in_workdir(page), contextlib.redirect_stdout(printed):
        exec(code, example.namespace)
    example.namespace.pop("__builtins__", None)
    if printed.getvalue():
        page.unshown_output = (example.line, printed.getvalue())
    return None


def evaluate_output(example: Example) -> str | None:
    page = _page(example)
    if page.unshown_output is None:
        return "an ```output block must follow a ```python block that prints"
    _, text = page.unshown_output
    page.unshown_output = None
    return mismatch(str(example.parsed), page.to_canonical(text))


def evaluate_file(path: str) -> Callable[[Example], str | None]:
    def write(example: Example) -> str | None:
        page = _page(example)
        target = (page.workdir / path).resolve()
        if not target.is_relative_to(page.workdir.resolve()):
            return f"file={path} is outside the page's scratch directory"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(str(example.parsed))
        if target.suffix == ".py":
            compile(pad(str(example.parsed), example.line + example.parsed.line_offset), example.path, "exec")
        return None

    return write


# -- console blocks -------------------------------------------------------------------------


@dataclass
class Command:
    text: str
    expected: str
    line: int  # within the block, from 0

    @property
    def starts_server(self) -> bool:
        return bool(_SERVER_COMMAND.match(self.text))


def parse_console(source: str) -> list[Command]:
    """``$ command`` lines and the output under each; a trailing ``\\`` continues a command.

    Raises:
        ValueError: text before the first ``$ `` line.
    """
    commands: list[Command] = []
    continuing = False
    for number, line in enumerate(source.splitlines()):
        if continuing:
            commands[-1].text += "\n" + line
        elif line.startswith("$ ") or line == "$":
            commands.append(Command(line[2:], "", number))
        elif not commands:
            raise ValueError(f"line {number + 1} of the block is output with no '$ command' before it: {line!r}")
        else:
            commands[-1].expected += line + "\n"
            continue
        continuing = line.endswith("\\")
    return commands


def _run_shell(page: Page, commands: list[Command]) -> list[str]:
    """Run commands in one bash, in order; the output of each (stdout and stderr together)."""
    sentinel = f"--- end of command {os.urandom(8).hex()} ---"
    script = "exec 2>&1\n" + "".join(
        f"{page.to_actual(c.text)}\n__rc=$?; printf '%s\\n' '{sentinel}'; (exit $__rc)\n" for c in commands
    )
    script_path = page.workdir / ".console.sh"
    script_path.write_text(script)
    proc = subprocess.Popen(
        ["bash", "--noprofile", "--norc", str(script_path)],
        cwd=page.workdir,
        env=page.command_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=COMMAND_TIMEOUT_S * len(commands))
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        out += f"\n(the commands did not finish within {COMMAND_TIMEOUT_S * len(commands):g} s)\n"
    parts = re.split(rf"\n?{re.escape(sentinel)}\n", out)
    # The text after the last sentinel belongs to no command (or, after a timeout, to the one cut short).
    outputs = parts[: len(commands)]
    return outputs + [""] * (len(commands) - len(outputs))


def evaluate_console(example: Example) -> str | None:
    problem = _claim_output(example)
    if problem:
        return problem
    page = _page(example)
    commands = parse_console(str(example.parsed))
    group: list[Command] = []

    def run_group() -> str | None:
        if not group:
            return None
        outputs = _run_shell(page, group)
        for command, output in zip(group, outputs, strict=False):
            problem = mismatch(command.expected, page.to_canonical(output))
            if problem:
                return f"$ {command.text}  (line {example.line + 1 + command.line})\n{problem}"
        group.clear()
        return None

    page.url()  # RPC_URL must name a server before the first command
    for command in commands:
        if command.starts_server:
            problem = run_group() or page.start_server(command.text, command.expected)
            if problem:
                return f"$ {command.text}  (line {example.line + 1 + command.line})\n{problem}"
        else:
            group.append(command)
    return run_group()


# -- wire transcripts ------------------------------------------------------------------------


@dataclass
class Frame:
    direction: str  # "send", "expect" or "pass" (let frames pass until the next expected one)
    text: str
    line: int


def parse_wire(source: str) -> list[Frame]:
    """``→ frame`` sent, ``← frame`` expected, ``…`` frames let pass; indented lines continue a frame.

    Raises:
        ValueError: a line that is none of these.
    """
    frames: list[Frame] = []
    for number, line in enumerate(source.splitlines()):
        stripped = line.strip()
        if not stripped:
            continue
        if stripped.startswith("…"):
            frames.append(Frame("pass", stripped, number))
        elif line.startswith("→ "):
            frames.append(Frame("send", line[2:], number))
        elif line.startswith("← "):
            frames.append(Frame("expect", line[2:].strip(), number))
        elif line[0].isspace() and frames and frames[-1].direction != "pass":
            last = frames[-1]
            last.text += ("\n" + line) if last.direction == "send" else stripped
        else:
            raise ValueError(f"line {number + 1} of the block is not '→ frame', '← frame' or '…': {line!r}")
    if frames and frames[-1].direction == "pass":
        raise ValueError("a '…' line must come before the '←' line it waits for")
    return frames


def evaluate_wire(example: Example) -> str | None:
    problem = _claim_output(example)
    if problem:
        return problem
    page = _page(example)
    frames = parse_wire(str(example.parsed))
    probe_id = f"docs-probe-{os.urandom(4).hex()}"
    with ws_connect(page.url(), open_timeout=FRAME_TIMEOUT_S, close_timeout=FRAME_TIMEOUT_S) as ws:
        letting_pass = False
        for frame in frames:
            where = f"line {example.line + 1 + frame.line}"
            if frame.direction == "send":
                ws.send(page.to_actual(frame.text))
            elif frame.direction == "pass":
                letting_pass = True
            else:
                for _ in range(SKIPPED_FRAMES_LIMIT):
                    try:
                        got = ws.recv(timeout=FRAME_TIMEOUT_S)
                    except TimeoutError:
                        return f"{where}: no frame came within {FRAME_TIMEOUT_S:g} s; expected\n{_indent(frame.text)}"
                    problem = mismatch(frame.text, page.to_canonical(str(got)))
                    if problem is None or not letting_pass:
                        break
                if problem:
                    return f"{where}: {problem}"
                letting_pass = False
        # Nothing may be left over: the next frame must answer a request sent now.
        ws.send(json.dumps({"jsonrpc": "2.0", "method": "docs.probe", "id": probe_id}))
        try:
            got = ws.recv(timeout=FRAME_TIMEOUT_S)
        except TimeoutError:
            return "the connection did not answer a last request: is it still open?"
        if probe_id not in str(got):
            return f"a frame came that the transcript does not show:\n{_indent(str(got))}"
    return None


# -- blocks that describe the code: the file map, exception trees, diagrams ----------------------


_MODULE = re.compile(r"\b[A-Za-z_]\w*\.py\b")
_PACKAGES = ("rpc_server", "rpc_client")


def evaluate_filemap(example: Example) -> str | None:
    named: dict[str, set[str]] = {}
    directory = ""
    problems = []
    for line in str(example.parsed).splitlines():
        if line and not line[0].isspace():
            directory, _, line = line.partition(" ")
            if not (REPO / directory).is_dir():
                problems.append(f"{directory} is not a directory")
        for module in _MODULE.findall(line):
            named.setdefault(directory, set()).add(module)
            if not (REPO / directory / module).is_file():
                problems.append(f"{directory}{module} does not exist")
    for package in _PACKAGES:
        missing = {p.name for p in (REPO / package).glob("*.py")} - named.get(f"{package}/", set())
        problems += [f"{package}/{name} is not in the map" for name in sorted(missing)]
    return "\n".join(problems) or None


_TREE_LINE = re.compile(r"^(?P<indent>[\s│├└─]*)(?P<name>[A-Za-z_]\w*)")


def evaluate_classes(package: str) -> Callable[[Example], str | None]:
    def check(example: Example) -> str | None:
        module = importlib.import_module(package)
        stack: list[tuple[int, type]] = []
        problems = []
        shown = set()
        for line in str(example.parsed).splitlines():
            match = _TREE_LINE.match(line)
            if not match:
                continue
            depth, name = len(match.group("indent")), match.group("name")
            cls = getattr(module, name, None)
            if not isinstance(cls, type):
                problems.append(f"{package} has no class {name}")
                continue
            shown.add(cls)
            while stack and stack[-1][0] >= depth:
                stack.pop()
            if stack and not issubclass(cls, stack[-1][1]):
                problems.append(f"{name} is not a subclass of {stack[-1][1].__name__}")
            stack.append((depth, cls))
        if shown:
            root = min(shown, key=lambda c: len(c.__mro__))
            exported = {getattr(module, n) for n in getattr(module, "__all__", ())}
            for cls in exported:
                if isinstance(cls, type) and issubclass(cls, root) and cls not in shown:
                    problems.append(f"{cls.__name__} is a {root.__name__} of {package} missing from the tree")
        return "\n".join(problems) or None

    return check


def evaluate_mermaid(example: Example) -> str | None:
    problems = [
        f"the diagram names {module}, which is in none of {', '.join(_PACKAGES)}"
        for module in sorted(set(_MODULE.findall(str(example.parsed))))
        if not any((REPO / package / module).is_file() for package in _PACKAGES)
    ]
    return "\n".join(problems) or None


# -- the parser: every fenced block gets an evaluator, unknown kinds one that fails ------------


def _unknown(info: str) -> Callable[[Example], str | None]:
    def fail(example: Example) -> str | None:
        return (
            f"a block with info string {info!r} is neither run nor marked: use a kind that runs "
            '(see docs/development.md) or put <!-- skip: next "why" --> on the line before it'
        )

    return fail


def evaluator_for(info: str) -> Callable[[Example], str | None]:
    """The evaluator for a fenced block with this info string."""
    words = info.split()
    language = words[0] if words else ""
    options = dict(word.split("=", 1) for word in words[1:] if "=" in word)
    flags = {word for word in words[1:] if "=" not in word}
    if "file" in options and not flags:
        return evaluate_file(options["file"])
    if len(words) == 1:
        simple: dict[str, Callable[[Example], str | None]] = {
            "python": evaluate_python,
            "output": evaluate_output,
            "console": evaluate_console,
            "wire": evaluate_wire,
            "mermaid": evaluate_mermaid,
        }
        if language in simple:
            return simple[language]
    if language == "text" and words[1:] == ["filemap"]:
        return evaluate_filemap
    if language == "text" and len(words) == 2 and "classes" in options:
        return evaluate_classes(options["classes"])
    return _unknown(info)


def fenced_blocks(document: Document) -> Iterator[Region]:
    """Every fenced code block, whatever its info string (none included)."""
    lexer = RawFencedCodeBlockLexer(info_pattern=_INFO)
    yield from lexer(document)


def parse_blocks(document: Document) -> Iterator[Region]:
    for region in fenced_blocks(document):
        info = region.lexemes["info"].strip()
        region.parsed = region.lexemes["source"]
        region.evaluator = evaluator_for(info)
        yield region


def make_sybil() -> Sybil:
    """The Sybil that runs README.md and docs/*.md."""
    return Sybil(
        parsers=[parse_blocks, SkipParser()],
        patterns=list(DOC_PAGES),
        path=str(REPO),
        setup=_setup,
        teardown=_teardown,
        name="docs",
    )
