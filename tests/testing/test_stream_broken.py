"""The Stream contract suite catches each deliberately broken memory stream, by the clause
the bug breaks.

To keep this fast, each run selects the suite's tests of the targeted clause (the whole suite
would also fail, but some bugs make other clauses wait out their bounds).
"""

from __future__ import annotations

import pytest

from portfolio_core.testing import clause_of
from portfolio_core.testing.contracts.stream import StreamContract
from tests.testing.broken import stream as broken


def clause_tests(clause_id: str) -> list[str]:
    names = []
    for name in dir(StreamContract):
        found = clause_of(getattr(StreamContract, name))
        if found is not None and found.id == clause_id:
            names.append(name)
    assert names, f"no test of clause {clause_id}"
    return names


@pytest.mark.parametrize("variant", broken.VARIANTS, ids=lambda v: v.__name__)
def test_kit_catches(pytester: pytest.Pytester, variant: type[broken.Broken]) -> None:
    pytester.makepyfile(
        test_variant=f"""
import pytest
from portfolio_core.testing.contracts.stream import StreamContract
from tests.testing.broken.stream import {variant.__name__} as Variant

class TestVariant(StreamContract):
    @pytest.fixture
    def make_adapter(self):
        return Variant
"""
    )
    result = pytester.runpytest_inprocess(
        "-p",
        "no:cacheprovider",
        "-o",
        "asyncio_default_fixture_loop_scope=function",
        "--kit-max-examples=10",
        "--kit-steps=15",
        "-q",
        "-k",
        " or ".join(clause_tests(variant.clause)),
    )
    assert result.ret == 1, f"the kit did not catch {variant.__name__}"
    result.stdout.fnmatch_lines([f"*[[]clause {variant.clause}*"])
