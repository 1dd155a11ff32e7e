"""The docs site renders cross-references, never raw Sphinx roles: no ``:class:`...``` is left
in src/ or docs/, and ``tools/docs_xrefs.py`` rewrites the ones a change brings in."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_xrefs", ROOT / "tools" / "docs_xrefs.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


xrefs = _tool()
KNOWN = {
    "portfolio_core.ports.errors.InvalidInputError",
    "portfolio_core.registry.Registry",
    "portfolio_core.registry.Registry.reload",
    "portfolio_core.testing.clock.FakeClock",
    "portfolio_core.ports.event_store.Subscription.error",
}


def test_no_sphinx_role_is_left_in_src_or_docs() -> None:
    left = xrefs.remaining()
    assert left == [], "run python3 tools/docs_xrefs.py:\n" + "\n".join(left[:20])


@pytest.mark.parametrize(
    ("text", "module", "expected"),
    [
        (
            "raises :class:`~portfolio_core.ports.errors.InvalidInputError`.",
            None,
            "raises [InvalidInputError][portfolio_core.ports.errors.InvalidInputError].",
        ),
        (
            "see :class:`portfolio_core.registry.Registry`",
            None,
            "see [portfolio_core.registry.Registry][portfolio_core.registry.Registry]",
        ),
        (
            ":meth:`reload`",
            "portfolio_core.registry",
            "[reload][portfolio_core.registry.Registry.reload]",
        ),
        (
            ":meth:`Registry.reload`",
            "portfolio_core.registry",
            "[Registry.reload][portfolio_core.registry.Registry.reload]",
        ),
        (
            ":class:`FakeClock`",
            "portfolio_core.other",
            "[FakeClock][portfolio_core.testing.clock.FakeClock]",
        ),
        (":class:`LookupError`", "portfolio_core.registry", "`LookupError`"),
        (":meth:`error`", "portfolio_core.ports.pipeline", "`error`"),
        (
            ":meth:`Subscription.error`",
            "portfolio_core.ports.pipeline",
            "[Subscription.error][portfolio_core.ports.event_store.Subscription.error]",
        ),
        (":func:`~portfolio_core.nowhere.helper`", None, "`helper`"),
        (":py:data:`DELETE`", None, "`DELETE`"),
    ],
)
def test_a_role_becomes_a_link_to_a_documented_object_or_inline_code(
    text: str, module: str | None, expected: str
) -> None:
    assert xrefs.rewrite_text(text, module, KNOWN) == expected
    assert not xrefs.ROLE.search(expected)


def test_a_python_line_made_too_long_is_wrapped_at_its_indentation(tmp_path: Path) -> None:
    package = tmp_path / "src" / "portfolio_core"
    package.mkdir(parents=True)
    source = package / "m.py"
    line = (
        "    * Bad input raises :class:`~portfolio_core.ports.errors.InvalidInputError` and "
        "stores nothing at all."
    )
    source.write_text(f'"""Doc.\n\n{line}\n"""\n')
    text = xrefs.rewrite_file(source, KNOWN, tmp_path)
    first, second = text.splitlines()[2:4]
    assert first.startswith("    * Bad input raises [InvalidInputError]")
    assert len(second) - len(second.lstrip()) == 6  # under the bullet's text
    assert f"{first} {second.strip()}" == xrefs.rewrite_text(line, None, KNOWN)
    assert all(len(row) <= 100 for row in text.splitlines())


def test_a_bare_member_name_links_only_to_a_member_of_its_own_module() -> None:
    """A link whose text is a bare lowercase name points into the module that holds it, or
    at a module-level function: never at another module's class member (the rewrite once
    linked StepResult's ``error`` to ``Subscription.error``)."""
    import re

    link = re.compile(r"\[`?([a-z_][a-z0-9_]*)`?\]\[(portfolio_core[\w.]*)\]")
    wrong = []
    for path in sorted((ROOT / "src").rglob("*.py")):
        module = xrefs.module_of(path)
        for text, target in link.findall(path.read_text()):
            elsewhere = module is not None and not target.startswith(module + ".")
            if elsewhere and xrefs._is_member(target) and not _implements(module, target):
                wrong.append(f"{path.relative_to(ROOT)}: [{text}][{target}]")
    assert wrong == []


def _implements(module: str, target: str) -> bool:
    """An adapter's docstring may link to the port method it implements."""
    return module.startswith("portfolio_core.adapters.") and target.startswith(
        "portfolio_core.ports."
    )
