"""The page a document's blocks run in: its scratch directory, its server, and what they printed.

Each page (README.md, a docs/*.md) gets a scratch directory and, when a block
first needs one, a server of its own: the built-in tools on a free port, or
whatever a console block started. Examples are written against
``ws://127.0.0.1:8000/ws``, as a reader runs them; the page maps that address to
its server on the way in (:meth:`Page.to_actual`) and back on the way out
(:meth:`Page.to_canonical`).
"""

from __future__ import annotations

import contextlib
import doctest
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sybil import Example

from tests.servers import ThreadedServer

__all__ = [
    "CANONICAL_HOST_PORT",
    "COMMAND_TIMEOUT_S",
    "EXAMPLE_URL",
    "REPO",
    "Page",
    "claim_unshown_output",
    "doc_pages",
    "in_workdir",
    "indent",
    "is_doc_page",
    "mismatch",
    "page_of",
    "setup_page",
    "teardown_page",
]

REPO = Path(__file__).resolve().parents[2]
CANONICAL_HOST_PORT = "127.0.0.1:8000"
PAGE_KEY = "_doc_page"

COMMAND_TIMEOUT_S = 30.0
SERVER_START_TIMEOUT_S = 120.0  # ./scripts/serve may first install into .venv

# "ws://127.0.0.1:8000" or "ws://localhost:8000" in an example's source
EXAMPLE_URL = re.compile(r"ws://(?:127\.0\.0\.1|localhost):8000\b")
# --port N with a port a server could have (--port 70000 is left for the server to refuse)
_PORT_FLAG = re.compile(r"--port(?:\s+|=)([1-9]\d{0,3}|[1-5]\d{4}|6[0-4]\d{3}|65[0-4]\d{2}|655[0-2]\d|6553[0-5])\b")


def is_doc_page(path: Path) -> bool:
    """README.md at the top of the repository, or a page directly in docs/."""
    path = path.resolve()
    return path == REPO / "README.md" or (path.parent == REPO / "docs" and path.suffix == ".md")


def _host_port(url: str) -> str:
    """``127.0.0.1:8000`` of ``ws://127.0.0.1:8000/ws`` (or of a wss:// URL)."""
    return url.split("://", 1)[-1].split("/", 1)[0]


def doc_pages() -> list[Path]:
    """The pages whose blocks run: README.md and docs/*.md."""
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
    return f"expected:\n{indent(want)}\ngot:\n{indent(got)}"


def indent(text: str) -> str:
    return "".join(f"    {line}\n" for line in (text or "(nothing)\n").splitlines())


# -- the page: its scratch directory and its server ------------------------------------


def _started_server() -> ThreadedServer:
    """The page's default server: the built-in tools on a free port."""
    server = ThreadedServer()
    server.start()
    return server


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
        self._default: ThreadedServer | None = None
        self._process: _ServerProcess | None = None
        self._url: str | None = None
        self._canonical = CANONICAL_HOST_PORT
        self.unshown_output: tuple[int, str] | None = None  # (line, text) printed by a python block

    # The page's server and the two spellings of its address.

    def url(self) -> str:
        """The URL of the page's server, starting the default one if none runs yet."""
        if self._url is None:
            self._default = _started_server()
            self._use(self._default.server.url, CANONICAL_HOST_PORT)
        assert self._url is not None
        return self._url

    def _use(self, url: str, canonical: str) -> None:
        self._url, self._canonical = url, canonical

    @property
    def actual_host_port(self) -> str:
        return _host_port(self.url())

    def to_actual(self, text: str) -> str:
        """An example's text, talking to the page's server."""
        text = EXAMPLE_URL.sub(f"ws://{self.actual_host_port}", text)
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
        shown = "".join(server.stdout_lines).replace(_host_port(url[0]), canonical)
        problem = mismatch(expected, shown)
        if problem:
            server.stop()
            return f"{problem}\nthe server's stderr:\n{indent(stderr_path.read_text())}"
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


def page_of(example: Example) -> Page:
    page = example.namespace.get(PAGE_KEY)
    if page is None:  # no setup ran: a document parsed outside pytest
        page = example.namespace[PAGE_KEY] = Page(example.path)
    assert isinstance(page, Page)
    return page


def setup_page(namespace: dict[str, Any]) -> None:
    namespace.pop(PAGE_KEY, None)


def teardown_page(namespace: dict[str, Any]) -> None:
    page = namespace.pop(PAGE_KEY, None)
    if isinstance(page, Page):
        page.close()
        if page.unshown_output is not None:
            line, _ = page.unshown_output
            raise AssertionError(f"{page.path}, line {line}: the block prints, but no ```output block follows it")


def claim_unshown_output(example: Example) -> str | None:
    """The failure left by a python block before this one whose output was never shown."""
    page = page_of(example)
    if page.unshown_output is None:
        return None
    line, text = page.unshown_output
    page.unshown_output = None
    return f"the python block at line {line} printed this, but no ```output block follows it:\n{indent(text)}"


@contextlib.contextmanager
def in_workdir(page: Page) -> Iterator[None]:
    cwd = os.getcwd()
    os.chdir(page.workdir)
    sys.path.insert(0, str(page.workdir))
    try:
        yield
    finally:
        sys.path.remove(str(page.workdir))
        os.chdir(cwd)
