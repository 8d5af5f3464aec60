"""docs/reliability.md cites tests as `path::name`: each file and each test it names exists."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "reliability.md"
CITATION = re.compile(r"`(tests/[\w/]+\.py)((?:::\w+)*)`")


def defined(tree: ast.Module | ast.ClassDef, chain: list[str]) -> bool:
    """Whether `chain` (a class, then its method; or a function) is defined in `tree`."""
    if not chain:
        return True
    for node in tree.body:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == chain[0]:
            return len(chain) == 1
        if isinstance(node, ast.ClassDef) and node.name == chain[0]:
            return defined(node, chain[1:])
    return False


def test_every_cited_test_exists() -> None:
    citations = CITATION.findall(DOC.read_text())
    assert len(citations) > 50, "the citations are `tests/<path>.py::<test>`"
    missing = []
    for path, names in citations:
        file = ROOT / path
        if not file.is_file():
            missing.append(path)
            continue
        chain = [n for n in names.split("::") if n]
        if not defined(ast.parse(file.read_text()), chain):
            missing.append(path + names)
    assert not missing, f"docs/reliability.md cites tests that do not exist: {missing}"


def test_every_guarantee_has_a_section() -> None:
    headings = re.findall(r"^## (.+)$", DOC.read_text(), re.M)
    assert headings == [
        "Exactly once",
        "No money created or lost",
        "One SMS per payment",
        "Nothing readable without a key",
        "Authenticated webhooks",
        "Bounded input",
        "Under each fault",
    ]
