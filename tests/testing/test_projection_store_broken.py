"""The ProjectionStore contract suite catches each deliberately broken memory adapter, on the
clause the bug breaks, and passes the correct one."""

from __future__ import annotations

import pytest

from tests.testing.broken.projection_store import VARIANTS, SharedLease

SUITE = """
import pytest
from portfolio_core.testing.contracts.projection_store import ProjectionStoreContract
from tests.testing.broken.projection_store import {name} as Variant

class TestVariant(ProjectionStoreContract):
    @pytest.fixture
    def make_adapter(self):
        return Variant
"""

#: the suite's test for each clause a variant targets (running only it keeps this fast)
TEST_OF = {
    "projection_store.effect_first": "test_effect_first",
    "projection_store.runner.checkpoint_after_effect": "test_runner_checkpoint_after_effect",
    "projection_store.runner.no_gaps": "test_runner_no_gaps",
    "projection_store.runner.rebuild_equals_live": "test_runner_rebuild_equals_live",
    "projection_store.forward_only": "test_forward_only",
    "projection_store.reset": "test_reset",
    "projection_store.lease.exclusive": "test_lease_exclusive",
    "projection_store.lease.concurrent": "test_lease_concurrent",
    "projection_store.lease.release": "test_release",
    "projection_store.lease.expiry": "test_expiry",
    "projection_store.lease.duration": "test_lease_duration",
    "projection_store.invalid": "test_invalid",
    "projection_store.model": "test_state_machine",
}

#: no shrinking in these throwaway runs: finding the failure is the proof, and fast
CONFTEST = """
from hypothesis import Phase, settings

settings.register_profile("broken", phases=[Phase.explicit, Phase.reuse, Phase.generate])
settings.load_profile("broken")
"""


def run_suite(pytester: pytest.Pytester, name: str, test: str | None) -> pytest.RunResult:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_variant=SUITE.format(name=name))
    args = ["-p", "no:cacheprovider", "-o", "asyncio_default_fixture_loop_scope=function"]
    args += ["--kit-max-examples=30"]
    if test is not None:
        args.insert(0, f"test_variant.py::TestVariant::{test}")
    return pytester.runpytest_inprocess(*args)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.__name__)
def test_kit_catches(pytester: pytest.Pytester, variant: type) -> None:
    result = run_suite(pytester, variant.__name__, TEST_OF[variant.clause])  # type: ignore[attr-defined]
    assert result.ret == 1, f"the kit did not catch {variant.__name__}"
    result.stdout.fnmatch_lines([f"*[[]clause {variant.clause}[]]*"])  # type: ignore[attr-defined]


# (a lease cut short, HalfTtl, has its own clause: the state machine found it only in some runs)
@pytest.mark.parametrize("variant", [SharedLease])
def test_state_machine_catches(pytester: pytest.Pytester, variant: type) -> None:
    result = run_suite(pytester, variant.__name__, "test_state_machine")
    assert result.ret == 1, f"the state machine did not catch {variant.__name__}"
    result.stdout.fnmatch_lines(["*[[]clause projection_store.model[]]*"])


def test_reference_passes(pytester: pytest.Pytester) -> None:
    assert run_suite(pytester, "MemoryProjectionStore", None).ret == 0


def test_every_variant_targets_its_own_clause() -> None:
    assert len({v.clause for v in VARIANTS}) == len(VARIANTS) >= 12
