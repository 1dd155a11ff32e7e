"""Every adapter page under docs/adapters/ says, in one line, what to install for it: the
extras its entry points declare, or nothing beyond the base install."""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs" / "adapters"


def _our_entry_points() -> list[importlib.metadata.EntryPoint]:
    dist = importlib.metadata.distribution("portfolio-core")
    return [ep for ep in dist.entry_points if ep.group.startswith("portfolio_core.adapters.")]


def _module_of(page: Path) -> str:
    """The module a page documents: ``sql/cache.md`` -> ``...sql.cache``; an ``index.md``
    documents its folder's package (``remote/index.md`` -> ``...adapters.remote``)."""
    parts = page.relative_to(DOCS).with_suffix("").parts
    if parts[-1] == "index":
        parts = parts[:-1]
    return ".".join(("portfolio_core.adapters", *parts))


_MODULES = {ep.module for ep in _our_entry_points()}
# the pages documenting an adapter module (a page on recovery tools, say, is not one)
PAGES = sorted(p for p in DOCS.rglob("*.md") if _module_of(p) in _MODULES)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(DOCS)))
def test_the_page_names_the_extras_of_its_adapters(page: Path) -> None:
    lines = [line for line in page.read_text().splitlines() if line.startswith("**Install:**")]
    assert len(lines) == 1, f"{page.name} needs exactly one '**Install:**' line"
    module = _module_of(page)
    declared = {e for ep in _our_entry_points() if ep.module == module for e in ep.extras}
    if declared:
        for extra in sorted(declared):
            assert f"`pip install 'portfolio-core[{extra}]'`" in lines[0], (page.name, extra)
    else:
        assert lines[0] == "**Install:** nothing beyond `pip install portfolio-core`."


def test_every_adapter_entry_point_has_a_page() -> None:
    pages = {_module_of(p) for p in PAGES}
    missing = sorted({ep.module for ep in _our_entry_points()} - pages)
    assert missing == []
