"""Source modules never raise ``NotImplementedError`` as a placeholder: a step each subclass
must supply is an ``@abstractmethod`` (the class cannot be built without it, so the gap shows
at construction, not on first use), and an operation an adapter does not offer raises the
port's ``UnsupportedError``."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "portfolio_core"


def _raises_not_implemented(node: ast.AST) -> bool:
    if not isinstance(node, ast.Raise) or node.exc is None:
        return False
    exc = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
    return isinstance(exc, ast.Name) and exc.id == "NotImplementedError"


def test_no_source_module_raises_not_implemented_error() -> None:
    offences = [
        f"{path.relative_to(SRC.parent)}:{node.lineno}"
        for path in sorted(SRC.rglob("*.py"))
        for node in ast.walk(ast.parse(path.read_text(), str(path)))
        if _raises_not_implemented(node)
    ]
    assert offences == []


def test_the_check_finds_a_placeholder_raise() -> None:
    source = (
        "def f():\n    raise NotImplementedError\ndef g():\n    raise NotImplementedError('x')\n"
    )
    tree = ast.parse(source)
    assert sum(_raises_not_implemented(node) for node in ast.walk(tree)) == 2
