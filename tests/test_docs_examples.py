"""Every ```python block in docs/ runs (blocks under a ``<!-- not-run -->`` line are skipped)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
BLOCK = re.compile(r"(<!-- not-run -->\s*)?```python\n(.*?)```", re.S)


def _blocks() -> list[tuple[str, str]]:
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        for i, match in enumerate(BLOCK.finditer(page.read_text())):
            if not match.group(1):
                found.append((f"{page.relative_to(DOCS)}#{i}", match.group(2)))
    return found


@pytest.mark.parametrize(("where", "code"), _blocks(), ids=[w for w, _ in _blocks()])
def test_docs_example_runs(where: str, code: str) -> None:
    try:
        exec(compile(code, where, "exec"), {"__name__": "__docs__"})
    except Exception as exc:
        pytest.fail(f"the example in docs/{where} raised {type(exc).__name__}: {exc}")
