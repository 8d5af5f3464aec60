"""The shape of storage/ that a reader relies on: parts without import circles, small modules,
a documented contract, and dependencies that point inward."""

from __future__ import annotations

import ast
import inspect
from collections.abc import Iterator
from pathlib import Path
from typing import Protocol

import pytest

import storage.contract as contract

ROOT = Path(__file__).resolve().parents[2]
STORAGE = ROOT / "storage"
MAX_LINES = 400


def modules(package: Path) -> dict[str, Path]:
    """Every module under a package, by dotted name."""
    found = {}
    for path in sorted(package.rglob("*.py")):
        parts = path.relative_to(ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def imports(path: Path, name: str) -> Iterator[str]:
    """The modules a file imports at run time (imports under TYPE_CHECKING are left out)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base
            yield from (f"{base}.{alias.name}" for alias in node.names)


def storage_graph() -> dict[str, set[str]]:
    """Import edges between modules of storage/ (a module's own parent packages left out: Python
    runs them first whatever the module imports, so they are no design circle)."""
    known = modules(STORAGE)
    graph = {}
    for name, path in known.items():
        named = set(imports(path, name))
        # `from pkg import module` imports the module; `pkg` counts only when a name of it is used
        edges = {m for m in named if m in known and not any(n.startswith(m + ".") and n in known
                                                             for n in named if n != m)}  # fmt: skip
        graph[name] = {m for m in edges if m != name and not name.startswith(m + ".")}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import circle, if there is any (depth-first search)."""
    state: dict[str, int] = {}
    trail: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        trail.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return [*trail[trail.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        trail.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_circle_and_nothing_else() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_storage_has_no_import_circle() -> None:
    graph = storage_graph()
    assert "storage.contract" in graph and "storage.models" in graph["storage.transfer"]
    assert find_cycle(graph) is None


def test_storage_imports_nothing_from_the_web_or_service_layer() -> None:
    for name, path in modules(STORAGE).items():
        outward = [m for m in imports(path, name) if m.split(".")[0] in {"app", "flask"}]
        assert outward == [], f"{name} imports {outward}"


@pytest.mark.parametrize("name", sorted(modules(STORAGE)))
def test_storage_modules_stay_small(name: str) -> None:
    lines = len(modules(STORAGE)[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines; split it by contract part"


def contract_parts() -> list[type]:
    """The protocols the unit of work is composed of."""
    return [
        cls for cls in contract.UnitOfWork.__mro__
        if cls not in (contract.UnitOfWork, Protocol, object, *Protocol.__mro__)
        and cls.__module__.startswith("storage.contract.")
    ]  # fmt: skip


def test_the_unit_of_work_is_composed_of_small_documented_parts() -> None:
    parts = contract_parts()
    assert len(parts) >= 8
    for part in parts:
        methods = [n for n, v in vars(part).items() if inspect.isfunction(v) and n[0] != "_"]
        assert 0 < len(methods) <= 12, f"{part.__name__} has {len(methods)} methods"
        assert part.__doc__, f"{part.__name__} has no docstring"
        for method in methods:
            doc = inspect.getdoc(getattr(part, method))
            assert doc and len(doc) > 10, f"{part.__name__}.{method} states no guarantee"


def test_every_method_of_the_unit_of_work_belongs_to_exactly_one_part() -> None:
    owners: dict[str, list[str]] = {}
    for part in contract_parts():
        for n, v in vars(part).items():
            if inspect.isfunction(v) and n[0] != "_":
                owners.setdefault(n, []).append(part.__name__)
    shared = {n: o for n, o in owners.items() if len(o) > 1}
    assert shared == {}
    assert {"post_entry", "search_transactions", "insert_frame", "claim_job"} <= set(owners)
