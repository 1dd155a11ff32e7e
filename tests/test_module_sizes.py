"""No module in src/ is over ~700 lines unless its docstring says why it must stay one unit:
a newcomer should find things from file names alone (issue 14)."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"
LIMIT = 700
#: the words a long module's docstring uses to say why it is not split
REASON = "one unit"


def oversized(root: Path, limit: int = LIMIT) -> list[str]:
    """``path: N lines`` for every module under ``root`` longer than ``limit`` lines whose
    docstring does not say why it must stay one unit."""
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text()
        lines = len(text.splitlines())
        if lines <= limit:
            continue
        docstring = ast.get_docstring(ast.parse(text, str(path))) or ""
        if REASON not in docstring.lower():
            found.append(f"{path.relative_to(root)}: {lines} lines")
    return found


def test_no_source_module_is_over_the_limit_without_saying_why() -> None:
    assert oversized(SRC) == []


def test_a_long_module_passes_only_when_its_docstring_says_why(tmp_path: Path) -> None:
    body = "x = 1\n" * (LIMIT + 1)
    (tmp_path / "short.py").write_text('"""Short."""\n' + "x = 1\n" * (LIMIT - 1))
    (tmp_path / "long.py").write_text('"""A long module."""\n' + body)
    (tmp_path / "kept.py").write_text(
        '"""A long module.\n\nKept as one unit: its states share one lock."""\n' + body
    )
    assert oversized(tmp_path) == [f"long.py: {LIMIT + 2} lines"]
