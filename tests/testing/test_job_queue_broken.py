"""The JobQueue contract suite catches each deliberately broken memory job queue, by the
clause the bug breaks (each run selects the suite's tests of that clause)."""

from __future__ import annotations

import pytest

from portfolio_core.testing import clause_of
from portfolio_core.testing.contracts.job_queue import JobQueueContract
from tests.testing.broken import job_queue as broken


def clause_tests(clause_id: str) -> list[str]:
    names = []
    for name in dir(JobQueueContract):
        found = clause_of(getattr(JobQueueContract, name))
        if found is not None and found.id == clause_id:
            names.append(name)
    assert names, f"no test of clause {clause_id}"
    return names


def test_every_clause_has_a_variant() -> None:
    clauses = {
        found.id
        for name in dir(JobQueueContract)
        if (found := clause_of(getattr(JobQueueContract, name))) is not None
        and found.id.startswith("job_queue.")
    }
    assert clauses == {v.clause for v in broken.VARIANTS}


@pytest.mark.parametrize("variant", broken.VARIANTS, ids=lambda v: v.__name__)
def test_kit_catches(pytester: pytest.Pytester, variant: type[broken.Broken]) -> None:
    pytester.makepyfile(
        test_variant=f"""
import pytest
from portfolio_core.testing.contracts.job_queue import JobQueueContract
from tests.testing.broken.job_queue import {variant.__name__} as Variant

class TestVariant(JobQueueContract):
    @pytest.fixture
    def make_adapter(self):
        def make(*, clock, faults=None):
            return Variant(clock=clock, faults=faults, poll_interval=0.01)
        return make
"""
    )
    result = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        # the state machine finds model-only bugs (a heartbeat counted as an attempt) by
        # chance: give it room; a caught bug stops at its first failing example anyway
        f"--kit-max-examples={150 if variant.clause == 'job_queue.model' else 30}",
        f"--kit-steps={40 if variant.clause == 'job_queue.model' else 20}",
        "-q",
        "-k",
        " or ".join(clause_tests(variant.clause)),
    )
    assert result.ret == 1, f"the kit did not catch {variant.__name__}"
    result.stdout.fnmatch_lines([f"*[[]clause {variant.clause}*"])
