"""The packages depend downward only: no module imports, even for type checking, one that imports it back."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def imports_within(package: str) -> dict[str, set[str]]:
    """Module name -> the modules of the same package it imports (``TYPE_CHECKING`` blocks included)."""
    graph: dict[str, set[str]] = {}
    for path in sorted((ROOT / package).glob("*.py")):
        name = path.stem
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                if node.module:
                    found.add(node.module.split(".")[0])
                else:
                    found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(f"{package}."):
                found.add(node.module.split(".")[1])
        graph[name] = {m for m in found if (ROOT / package / f"{m}.py").exists()} - {name}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the graph, as the modules along it, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state:
                cycle = visit(nxt)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start)
            if cycle:
                return cycle
    return None


def test_find_cycle_finds_one_and_only_one() -> None:
    """The checker itself: a circle is reported along its modules, a tree is not."""
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("package", ["rpc_server", "rpc_client"])
def test_the_package_has_no_import_cycle(package: str) -> None:
    """Each module imports only modules below it (__init__ and __main__, the top, aside)."""
    graph = imports_within(package)
    graph.pop("__init__", None)
    graph.pop("__main__", None)
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])
