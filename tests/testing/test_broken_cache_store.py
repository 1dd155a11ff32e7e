"""The CacheStore kit catches every deliberately broken memory CacheStore, on its clause."""

from __future__ import annotations

import pytest

pytest.importorskip("numpy")

from portfolio_core.testing.contracts.cache_store import CacheStoreContract
from tests.testing.broken import cache_store as broken


def clause_tests(clause_id: str) -> list[str]:
    """Names of the suite's tests marked with ``clause_id``."""
    names = []
    for name in dir(CacheStoreContract):
        marks = getattr(getattr(CacheStoreContract, name), "pytestmark", [])
        if name.startswith("test") and any(
            m.name == "kit_clause" and m.args[0] == clause_id for m in marks
        ):
            names.append(name)
    return names


def test_every_variant_targets_a_clause() -> None:
    assert len(broken.VARIANTS) >= 10
    assert all(clause_tests(v.clause) for v in broken.VARIANTS), "a variant names no known clause"


def test_reference_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        test_reference="""
import pytest
from portfolio_core.testing.contracts.cache_store import CacheStoreContract
from tests.testing.broken.cache_store import Base, factory_for

class TestReference(CacheStoreContract):
    @pytest.fixture
    def make_adapter(self):
        return factory_for(Base)
"""
    )
    result = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        "--kit-max-examples=10",
        "-q",
    )
    assert result.ret == 0, result.stdout.str()[-3000:]


@pytest.mark.parametrize("variant", broken.VARIANTS, ids=lambda v: v.__name__)
def test_kit_catches(pytester: pytest.Pytester, variant: type[broken.Base]) -> None:
    pytester.makepyfile(
        test_variant=f"""
import pytest
from portfolio_core.testing.contracts.cache_store import CacheStoreContract
from tests.testing.broken.cache_store import {variant.__name__} as Variant, factory_for

class TestVariant(CacheStoreContract):
    @pytest.fixture
    def make_adapter(self):
        return factory_for(Variant)
"""
    )
    # Only the targeted clause's tests run (the whole suite per variant is too slow for CI);
    # test_reference_passes shows the reference passes them all.
    selected = " or ".join(clause_tests(variant.clause))
    result = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        "-q",
        "-k",
        selected,
    )
    assert result.ret == 1, f"the kit did not catch {variant.__name__}"
    result.stdout.fnmatch_lines([f"*[[]clause {variant.clause}*"])
