"""Blocks that describe the code: the file map, exception trees and diagrams, checked against the tree."""

from __future__ import annotations

import importlib
import re
from collections.abc import Callable

from sybil import Example

from .page import REPO

__all__ = ["evaluate_classes", "evaluate_filemap", "evaluate_mermaid"]


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
