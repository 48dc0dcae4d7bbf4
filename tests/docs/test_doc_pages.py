"""The documents as a whole: few blocks skipped and each for a reason, links that lead somewhere, a short README."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from rpc_server import codes
from tests.docs.page import REPO, doc_pages

# Blocks that cannot run, across README.md and docs/: raise this only on purpose.
MAX_SKIPPED_BLOCKS = 10
README_MAX_LINES = 250

_SKIP = re.compile(r"^[ \t]*<!--+\s*skip:?\s*(?P<arguments>.*?)\s*--+>", re.MULTILINE)
_LINK = re.compile(r"\]\((?P<target>[^)\s]+)\)")
_FENCE = re.compile(r"^(`{3,}|~{3,}).*?^\1", re.MULTILINE | re.DOTALL)


def _skips() -> list[tuple[Path, str]]:
    return [(page, match["arguments"]) for page in doc_pages() for match in _SKIP.finditer(page.read_text())]


def test_every_skipped_block_is_one_block_with_a_reason_and_they_are_few():
    """Each skip marker covers the next block only and says why; their number stays within the budget."""
    skips = _skips()
    for page, arguments in skips:
        assert re.fullmatch(r'next\s+"[^"]{10,}"', arguments), (
            f'{page.name}: write <!-- skip: next "why it cannot run" -->, not <!-- skip: {arguments} -->'
        )
    assert len(skips) <= MAX_SKIPPED_BLOCKS, [f"{page.name}: {arguments}" for page, arguments in skips]


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = _FENCE.sub("", page.read_text())
    return {_slug(match[1]) for match in re.finditer(r"^#{1,6}\s+(.*)$", text, re.MULTILINE)}


@pytest.mark.parametrize("page", doc_pages(), ids=lambda page: page.name)
def test_relative_links_lead_to_files_and_headings_that_exist(page):
    """A link to a moved page or a renamed heading fails here, not in a reader's browser."""
    broken = []
    for match in _LINK.finditer(_FENCE.sub("", page.read_text())):
        target = match["target"]
        if re.match(r"[a-z]+:", target):
            continue
        path, _, anchor = target.partition("#")
        linked = (page.parent / path).resolve() if path else page
        if not linked.exists():
            broken.append(f"{target}: no such file")
        elif anchor and linked.suffix == ".md" and anchor not in _anchors(linked):
            broken.append(f"{target}: no such heading in {linked.name}")
    assert not broken


@pytest.mark.parametrize("page", doc_pages(), ids=lambda page: page.name)
def test_pages_speak_of_no_issue_numbers(page):
    """An issue number means nothing to a reader: say what changed, or name a version or a commit."""
    found = re.findall(r"\bissues? #?\d+", page.read_text(), re.IGNORECASE)
    assert not found, f"{page.name}: {found}"


def test_the_readme_stays_a_front_page():
    """Detail belongs in docs/; the README says what it is and how to start."""
    lines = (REPO / "README.md").read_text().count("\n")
    assert lines <= README_MAX_LINES, f"README.md has {lines} lines: move the detail to a page in docs/"


def test_ci_runs_the_readmes_test_command():
    """The README's test command is what CI runs, so the two cannot drift apart."""
    ci = (REPO / ".ci" / "run").read_text()
    readme = (REPO / "README.md").read_text()
    assert re.search(r"^\./scripts/test\b", ci, re.MULTILINE)
    assert re.search(r"^\./scripts/test\b", readme, re.MULTILINE)
    assert re.search(r"^\./scripts/serve\b", readme, re.MULTILINE)


def test_the_error_table_has_a_row_for_every_code_with_the_server_s_message() -> None:
    """docs/protocol.md lists every error code: each code of rpc_server.codes has its row, with its message."""
    table = (REPO / "docs" / "protocol.md").read_text().partition("## Error codes")[2]
    rows = {
        int(m["code"]): m["message"] for m in re.finditer(r"^\| (?P<code>-?\d+) \| (?P<message>[^|]+?) \|", table, re.M)
    }
    assert rows == codes.MESSAGES
