"""The ConfigStore contract suite catches each deliberately broken memory adapter, on the
clause the bug breaks, and passes the correct one."""

from __future__ import annotations

import pytest

from tests.testing.broken.config_store import (
    VARIANTS,
    RollbackOneTooFar,
    VersionsJumpByTwo,
    WatchSkipsSecond,
)

SUITE = """
import pytest
from portfolio_core.testing.contracts.config_store import ConfigStoreContract
from tests.testing.broken.config_store import {name} as Variant

class TestVariant(ConfigStoreContract):
    watch_timeout = 0.5

    @pytest.fixture
    def make_adapter(self):
        return Variant
"""

#: the suite's test for each clause a variant targets (running only it keeps this fast)
TEST_OF = {
    "config_store.apply.versions": "test_versions",
    "config_store.apply.expected_version": "test_stale_expected_version",
    "config_store.apply.invalid": "test_invalid_batch",
    "config_store.apply.concurrent": "test_concurrent_one_winner",
    "config_store.read.at_version": "test_read_at_version",
    "config_store.read.prefix": "test_read_prefix",
    "config_store.read.snapshot": "test_snapshot",
    "config_store.history": "test_history",
    "config_store.rollback.restores": "test_rollback",
    "config_store.rollback.unknown": "test_rollback_unknown",
    "config_store.schema": "test_schema",
    "config_store.watch.order": "test_watch",
    "config_store.watch.resume": "test_watch_resume",
    "config_store.model": "test_state_machine",
    "config_store.snapshots": "test_returned_collections_are_copies",
    "config_store.history.wall_clock": "test_time_follows_the_wall_clock",
    "config_store.faults.unavailable": "test_backend_unreachable",
    "config_store.arguments.invalid": "test_invalid_arguments",
    "config_store.read.not_found": "test_get_missing",
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
    args += ["--kit-max-examples=10"]
    if test is not None:  # a node id, not -k: "test_watch" would select test_watch_live too
        args.insert(0, f"test_variant.py::TestVariant::{test}")
    else:
        args += ["--kit-max-examples=5"]
    return pytester.runpytest_inprocess(*args)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.__name__)
def test_kit_catches(pytester: pytest.Pytester, variant: type) -> None:
    result = run_suite(pytester, variant.__name__, TEST_OF[variant.clause])  # type: ignore[attr-defined]
    assert result.ret == 1, f"the kit did not catch {variant.__name__}"
    result.stdout.fnmatch_lines([f"*[[]clause {variant.clause}[]]*"])  # type: ignore[attr-defined]


@pytest.mark.parametrize("variant", [VersionsJumpByTwo, RollbackOneTooFar, WatchSkipsSecond])
def test_state_machine_catches(pytester: pytest.Pytester, variant: type) -> None:
    result = run_suite(pytester, variant.__name__, "test_state_machine")
    assert result.ret == 1, f"the state machine did not catch {variant.__name__}"
    result.stdout.fnmatch_lines(["*[[]clause config_store.model[]]*"])


def test_reference_passes(pytester: pytest.Pytester) -> None:
    assert run_suite(pytester, "MemoryConfigStore", None).ret == 0


def test_every_variant_targets_its_own_clause() -> None:
    assert len({v.clause for v in VARIANTS}) == len(VARIANTS) >= 12
