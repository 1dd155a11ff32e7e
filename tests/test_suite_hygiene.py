"""Test modules share helpers through support modules and fixtures, never by importing
another test module (which would run its tests twice and tie unrelated files together)."""

from __future__ import annotations

import ast
from pathlib import Path

TESTS = Path(__file__).resolve().parent


def _is_test_module(dotted: str) -> bool:
    return dotted.split(".")[-1].startswith(("test_", "conftest"))


def test_no_test_module_imports_another_test_module() -> None:
    offences = []
    for path in sorted(TESTS.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                if name.startswith("tests.") and _is_test_module(name):
                    offences.append(f"{path.relative_to(TESTS.parent)}:{node.lineno}: {name}")
    assert offences == []
