"""The EventStore contract suite catches each deliberately broken memory adapter, on the
clause the bug breaks, and passes the correct one."""

from __future__ import annotations

import pytest

from tests.testing.broken.event_store import (
    VARIANTS,
    DuplicateOnRetry,
    ExpectedVersionIgnored,
    LostEventInBatch,
    WhereSkipsNestedPaths,
)

SUITE = """
import pytest
from portfolio_core.testing.contracts.event_store import EventStoreContract
from tests.testing.broken.event_store import {name} as Variant

class TestVariant(EventStoreContract):
    @pytest.fixture
    def make_adapter(self):
        return Variant
"""


#: the suite's test for each clause a variant targets (running only it keeps this fast)
TEST_OF = {
    "event_store.append.expected_version": "test_wrong_expected_version",
    "event_store.read_all.order": "test_read_all",
    "event_store.append.result": "test_append_result",
    "event_store.append.invalid": "test_invalid_input",
    "event_store.append.idempotent": "test_idempotent_retry",
    "event_store.append.id_conflict": "test_id_reused_elsewhere",
    "event_store.read.snapshot": "test_read_snapshot",
    "event_store.read.not_found": "test_read_unknown",
    "event_store.read.range": "test_read_range",
    "event_store.query.filters": "test_query and not where",
    "event_store.query.where": "test_query_where and not invalid",
    "event_store.query.where_invalid": "test_query_where_invalid",
    "event_store.query.ids_and_pages": "test_query_ids_and_pages",
    "event_store.subscribe.catch_up_live": "test_subscribe",
    "event_store.subscribe.on_error": "test_handler_errors",
    "event_store.read_all.gapless": "test_gapless",
    "event_store.model": "test_state_machine",
    "event_store.append.idempotent_not_tail": "test_idempotent_retry_not_at_tail",
    "event_store.append.size_bytes": "test_event_size_in_utf8_bytes",
    "event_store.snapshot.all": "test_read_all_and_query_snapshots",
    "event_store.query.and": "test_query_filters_combine_with_and",
    "event_store.query.numbers": "test_query_numeric_equality",
    "event_store.subscribe.retry_exhausted": "test_retry_exhausted",
    "event_store.subscribe.timeout": "test_wait_until_timeout",
    "event_store.subscribe.during_catch_up": "test_events_committed_during_catch_up",
    "event_store.tenant.fail_closed": "test_tenant_fail_closed",
    "event_store.tenant.isolation": "test_tenant_isolation",
    "event_store.tenant.adversarial": "test_tenant_and_stream_separators",
    "event_store.tenant.subscription": "test_tenant_subscription",
    "event_store.faults.unavailable": "test_backend_unreachable",
    "event_store.recorded_at.wall_clock": "test_recorded_at_follows_the_wall_clock",
    "event_store.query.time_controlled": "test_query_time_with_controlled_clock",
    "event_store.args.invalid": "test_malformed_arguments",
}


#: no shrinking in these throwaway runs: finding the failure is the proof, and fast
CONFTEST = """
from hypothesis import Phase, settings

settings.register_profile("broken", phases=[Phase.explicit, Phase.reuse, Phase.generate])
settings.load_profile("broken")
"""


def run_suite(pytester: pytest.Pytester, variant: type, test: str) -> pytest.RunResult:
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_variant=SUITE.format(name=variant.__name__))
    return pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        "--kit-max-examples=20",
        "-k",
        test,
    )


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.__name__)
def test_kit_catches(pytester: pytest.Pytester, variant: type) -> None:
    result = run_suite(pytester, variant, TEST_OF[variant.clause])
    assert result.ret == 1, f"the kit did not catch {variant.__name__}"
    result.stdout.fnmatch_lines([f"*[[]clause {variant.clause}[]]*"])


@pytest.mark.parametrize(
    "variant", [ExpectedVersionIgnored, DuplicateOnRetry, LostEventInBatch, WhereSkipsNestedPaths]
)
def test_state_machine_catches(pytester: pytest.Pytester, variant: type) -> None:
    result = run_suite(pytester, variant, "test_state_machine")
    assert result.ret == 1, f"the state machine did not catch {variant.__name__}"
    result.stdout.fnmatch_lines(["*[[]clause event_store.model[]]*"])


def test_reference_passes(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_variant=SUITE.format(name="MemoryEventStore"))
    assert (
        pytester.runpytest_inprocess(
            "-p",
            "no:cacheprovider",
            "-o",
            "asyncio_default_fixture_loop_scope=function",
            "--kit-max-examples=5",
        ).ret
        == 0
    )


def test_at_least_ten_variants() -> None:
    assert len(VARIANTS) >= 10
    assert len({v.clause for v in VARIANTS}) >= 10
