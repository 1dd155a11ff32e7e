"""The Cache and Tenant suites catch every deliberately broken memory adapter variant.

Each variant runs only the tests of the clause it targets (found through ``clause_of``), in a
throwaway pytest session, and that clause must fail by name.
"""

from __future__ import annotations

import pytest
from hypothesis import Phase, settings

from portfolio_core.testing import clause_of
from portfolio_core.testing.contracts.cache import CacheContract
from portfolio_core.testing.contracts.tenant import TenantContract
from tests.testing.broken import cache as broken_cache
from tests.testing.broken import tenant as broken_tenant

NO_SHRINK = "portfolio-core-broken-variants"
settings.register_profile(
    NO_SHRINK, parent=settings.get_profile("default"), phases=[Phase.explicit, Phase.generate]
)


def _tests_of(suite: type, clause_id: str) -> list[str]:
    names = []
    for name in dir(suite):
        found = clause_of(getattr(suite, name))
        if name.startswith("test") and found is not None and found.id == clause_id:
            names.append(name)
    assert names, f"no test of {suite.__name__} checks clause {clause_id}"
    return names


def _assert_kit_catches(pytester: pytest.Pytester, module: str, suite: type, variant: type) -> None:
    pytester.makepyfile(
        test_variant=f"""
import pytest
from {suite.__module__} import {suite.__name__} as Suite
from {module} import {variant.__name__} as Variant

class TestVariant(Suite):
    @pytest.fixture
    def make_adapter(self):
        return Variant
"""
    )
    # a variant may narrow the run to one test of its clause (hypothesis shrinking is slow)
    names = getattr(variant, "tests", None) or _tests_of(suite, variant.clause)  # type: ignore[attr-defined]
    selection = " or ".join(names)
    # a caught variant need not be shrunk to a minimal example: skip that (slow) phase
    settings.load_profile(NO_SHRINK)
    try:
        result = pytester.runpytest_inprocess(
            "-p",
            "no:cacheprovider",
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            f"--kit-max-examples={getattr(variant, 'max_examples', 40)}",
            "-k",
            selection,
        )
    finally:
        settings.load_profile("default")
    assert result.ret == 1, f"the kit did not catch {variant.__name__}"
    result.stdout.fnmatch_lines([f"*[[]clause {variant.clause}*"])  # type: ignore[attr-defined]


@pytest.mark.parametrize("variant", broken_cache.VARIANTS, ids=lambda v: v.__name__)
def test_cache_suite_catches(pytester: pytest.Pytester, variant: type) -> None:
    _assert_kit_catches(pytester, broken_cache.__name__, CacheContract, variant)


@pytest.mark.parametrize("variant", broken_tenant.VARIANTS, ids=lambda v: v.__name__)
def test_tenant_suite_catches(pytester: pytest.Pytester, variant: type) -> None:
    _assert_kit_catches(pytester, broken_tenant.__name__, TenantContract, variant)
