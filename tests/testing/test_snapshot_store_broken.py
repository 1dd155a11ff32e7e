"""The SnapshotStore contract suite catches each deliberately broken memory adapter, on the
clause the bug breaks, and passes the correct one."""

from __future__ import annotations

import pytest

from tests.testing.broken.snapshot_store import VARIANTS, ForgetsEveryOtherSave, LastWriteWins

SUITE = """
import pytest
from portfolio_core.testing.contracts.snapshot_store import SnapshotStoreContract
from tests.testing.broken.snapshot_store import {name} as Variant

class TestVariant(SnapshotStoreContract):
    @pytest.fixture
    def make_adapter(self):
        return Variant
"""

#: the suite's test for each clause a variant targets (running only it keeps this fast)
TEST_OF = {
    "snapshot_store.round_trip": "test_round_trip",
    "snapshot_store.missing": "test_missing",
    "snapshot_store.latest_wins": "test_latest_wins",
    "snapshot_store.concurrent": "test_concurrent_saves",
    "snapshot_store.values": "test_values",
    "snapshot_store.delete": "test_delete",
    "snapshot_store.invalid": "test_invalid",
    "snapshot_store.model": "test_state_machine",
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
    args += ["--kit-max-examples=20"]
    if test is not None:
        args.insert(0, f"test_variant.py::TestVariant::{test}")
    return pytester.runpytest_inprocess(*args)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.__name__)
def test_kit_catches(pytester: pytest.Pytester, variant: type) -> None:
    result = run_suite(pytester, variant.__name__, TEST_OF[variant.clause])  # type: ignore[attr-defined]
    assert result.ret == 1, f"the kit did not catch {variant.__name__}"
    result.stdout.fnmatch_lines([f"*[[]clause {variant.clause}[]]*"])  # type: ignore[attr-defined]


@pytest.mark.parametrize("variant", [LastWriteWins, ForgetsEveryOtherSave])
def test_state_machine_catches(pytester: pytest.Pytester, variant: type) -> None:
    result = run_suite(pytester, variant.__name__, "test_state_machine")
    assert result.ret == 1, f"the state machine did not catch {variant.__name__}"
    result.stdout.fnmatch_lines(["*[[]clause snapshot_store.model[]]*"])


def test_reference_passes(pytester: pytest.Pytester) -> None:
    assert run_suite(pytester, "MemorySnapshotStore", None).ret == 0


def test_every_variant_targets_its_own_clause() -> None:
    assert len({v.clause for v in VARIANTS}) == len(VARIANTS) >= 8
