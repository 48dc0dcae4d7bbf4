"""Runs the fenced blocks of README.md and docs/*.md: each block gets an evaluator by its info string.

Sybil parses the Markdown, turns each fenced block into a pytest item (in document
order, one namespace per page) and handles ``<!-- skip: next "reason" -->``. This
module picks each block's evaluator; the conventions are written for doc authors
in docs/development.md, "Documentation whose examples run". The page the blocks
share is :mod:`.page`; ``console`` and ``wire`` blocks are :mod:`.console` and
:mod:`.wire`; blocks checked against the source tree are :mod:`.checks`.
"""

from __future__ import annotations

import contextlib
import io
import re
from collections.abc import Callable, Iterator

from sybil import Document, Example, Region, Sybil
from sybil.evaluators.python import pad
from sybil.parsers.markdown import SkipParser
from sybil.parsers.markdown.lexers import RawFencedCodeBlockLexer

from .checks import evaluate_classes, evaluate_filemap, evaluate_mermaid
from .console import evaluate_console
from .page import (
    EXAMPLE_URL,
    REPO,
    claim_unshown_output,
    in_workdir,
    mismatch,
    page_of,
    setup_page,
    teardown_page,
)
from .wire import evaluate_wire

__all__ = ["evaluator_for", "fenced_blocks", "make_sybil"]

DOC_PAGES = ("README.md", "docs/*.md")
_INFO = re.compile(r"(?P<info>[^\n]*)$\n", re.MULTILINE)


def evaluate_python(example: Example) -> str | None:
    problem = claim_unshown_output(example)
    if problem:
        return problem
    page = page_of(example)
    source = str(example.parsed)
    if EXAMPLE_URL.search(source):
        source = page.to_actual(source)
    code = compile(pad(source, example.line + example.parsed.line_offset), example.path, "exec", dont_inherit=True)
    printed = io.StringIO()
    with in_workdir(page), contextlib.redirect_stdout(printed):
        exec(code, example.namespace)
    example.namespace.pop("__builtins__", None)
    if printed.getvalue():
        page.unshown_output = (example.line, printed.getvalue())
    return None


def evaluate_output(example: Example) -> str | None:
    page = page_of(example)
    if page.unshown_output is None:
        return "an ```output block must follow a ```python block that prints"
    _, text = page.unshown_output
    page.unshown_output = None
    return mismatch(str(example.parsed), page.to_canonical(text))


def evaluate_file(path: str) -> Callable[[Example], str | None]:
    def write(example: Example) -> str | None:
        page = page_of(example)
        target = (page.workdir / path).resolve()
        if not target.is_relative_to(page.workdir.resolve()):
            return f"file={path} is outside the page's scratch directory"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(str(example.parsed))
        if target.suffix == ".py":
            compile(pad(str(example.parsed), example.line + example.parsed.line_offset), example.path, "exec")
        return None

    return write


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
        setup=setup_page,
        teardown=teardown_page,
        name="docs",
    )
