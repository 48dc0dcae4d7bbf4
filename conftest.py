"""Collects README.md and docs/*.md as tests: every fenced block in them runs (tests/docs/).

It sits at the top of the repository because pytest asks only the conftest.py
files above a path how to collect it, and README.md is up here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.docs.blocks import make_sybil
from tests.docs.page import is_doc_page

_collect_doc = make_sybil().pytest()


def pytest_collect_file(file_path: Path, parent: Any) -> Any:
    if is_doc_page(file_path):
        return _collect_doc(file_path, parent)
    return None
