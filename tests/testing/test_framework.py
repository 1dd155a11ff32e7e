"""The kit's framework: async tests on its own loop, clause-named failures, the tamper guard,
capability gating and the summary, each run in a throwaway pytest session (pytester)."""

from __future__ import annotations

import textwrap

import pytest

SUITE = """
import asyncio
import pytest
from portfolio_core.ports import UnsupportedError, declare, require
from portfolio_core.testing import (
    ContractSuite, clause, expect_unsupported, requires, requires_absent,
)


class Box:
    capabilities = declare("cache.ttl")

    def __init__(self, clock=None):
        self.items = {}
        self.clock = clock
        self.started = False
        self.closed = 0

    async def start(self):
        asyncio.get_running_loop()
        self.started = True

    async def aclose(self):
        self.closed += 1

    async def put(self, key, value):
        await asyncio.sleep(0)
        self.items[key] = value

    async def get(self, key):
        return self.items.get(key)

    async def fetch(self, key):
        require(self, "cache.fetch", "fetch")


class BoxContract(ContractSuite[Box]):
    kit_contract = True

    def put_probe(self, adapter):
        return adapter.put("probe", 1)

    async def has_probe(self, adapter, probe):
        return await adapter.get("probe") == 1

    @clause("box.put.get", "after put, get returns the value")
    async def test_put_get(self, adapter):
        assert adapter.started
        await adapter.put("k", "v")
        assert await adapter.get("k") == "v"

    @clause("box.ttl.clock", "the factory receives the kit clock")
    async def test_clock(self, adapter, clock):
        assert adapter.clock is clock

    @clause("box.fetch.unsupported", "fetch without the capability raises UnsupportedError")
    @requires_absent("cache.fetch")
    async def test_fetch_unsupported(self, adapter):
        with expect_unsupported("cache.fetch"):
            await adapter.fetch("k")

    @clause("box.fetch.works", "fetch with the capability works")
    @requires("cache.fetch")
    async def test_fetch(self, adapter):
        await adapter.fetch("k")
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(box_suite=SUITE)
    pytester.makeini("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    return pytester


def _run(pytester: pytest.Pytester, body: str, *args: str) -> pytest.RunResult:
    pytester.makepyfile(test_box=textwrap.dedent(body))
    return pytester.runpytest_inprocess("-p", "no:cacheprovider", "-rfs", *args)


GOOD = """
import pytest
from box_suite import Box, BoxContract

class TestBox(BoxContract):
    @pytest.fixture
    def make_adapter(self):
        return Box
"""


def test_async_contract_tests_run_without_an_async_plugin(suite: pytest.Pytester) -> None:
    result = _run(suite, GOOD, "-p", "no:asyncio", "-p", "no:anyio")
    result.assert_outcomes(passed=6, skipped=3)
    result.stdout.fnmatch_lines(
        [
            "*portfolio-core conformance kit*",
            "*adapter: box_suite.Box*",
            "*capabilities: cache.ttl*",
        ]
    )


def test_runs_beside_pytest_asyncio_in_auto_mode(suite: pytest.Pytester) -> None:
    suite.makeini("[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n")
    result = _run(suite, GOOD + "\n\nasync def test_plain_async():\n    assert True\n")
    result.assert_outcomes(passed=7, skipped=3)


def test_skips_name_the_missing_capability(suite: pytest.Pytester) -> None:
    result = _run(suite, GOOD, "-rs", "--kit-report")
    assert result.ret == 0, "a capability skip must not fail the run"
    result.stdout.fnmatch_lines(
        ["*SKIPPED*box.fetch.works - Box does not declare capability 'cache.fetch'*"]
    )


def test_failures_name_the_clause(suite: pytest.Pytester) -> None:
    body = (
        GOOD.replace("return Box", "return Broken")
        + """

class Broken(Box):
    async def get(self, key):
        return None
"""
    )
    result = _run(suite, body)
    result.assert_outcomes(failed=2, passed=4, skipped=3)
    result.stdout.fnmatch_lines(
        [
            "*contract clause broken*",
            "box.put.get: after put, get returns the value",
            "FAILED *test_put_get - [[]clause box.put.get[]] *",
        ]
    )
    assert result.ret == 1


def test_a_bare_assertion_error_is_reported_in_the_clauses_own_words(
    suite: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # the short summary line is not cut
    body = """
import pytest
from box_suite import Box, BoxContract
from portfolio_core.testing import clause


class BareContract(BoxContract):
    @clause("box.bare", "a value put is never lost")
    async def test_bare(self, adapter):
        raise AssertionError


class TestBare(BareContract):
    @pytest.fixture
    def make_adapter(self):
        return Box
"""
    result = _run(suite, body, "-k", "test_bare")
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(
        ["FAILED *test_bare - [[]clause box.bare[]] AssertionError: a value put is never lost"]
    )


def test_factory_sharing_state_fails_independence(suite: pytest.Pytester) -> None:
    body = """
import pytest
from box_suite import Box, BoxContract

SHARED = Box()

class TestShared(BoxContract):
    @pytest.fixture
    def make_adapter(self):
        return lambda: SHARED
"""
    result = _run(suite, body)
    result.stdout.fnmatch_lines(["*[[]clause kit.factory.fresh_instances[]]*"])
    assert result.ret == 1


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("test_put_get = None", "*TestBox deletes the contract test BoxContract.test_put_get*"),
        (
            "async def test_put_get(self, adapter):\n        pass",
            "*TestBox overrides the contract test BoxContract.test_put_get (clause box.put.get)"
            " without pytest.mark.xfail(strict=True, reason=...)*",
        ),
        (
            "@pytest.mark.xfail(reason='flaky')\n    def test_put_get(self, adapter):\n"
            "        pass",
            "*overrides the contract test*without*",
        ),
    ],
)
def test_tamper_guard_fails_the_run(suite: pytest.Pytester, override: str, message: str) -> None:
    result = _run(suite, GOOD + "\n    " + override + "\n")
    result.stdout.fnmatch_lines(["*tamper guard*", message])
    assert result.ret != 0


def test_expected_failure_is_the_honest_opt_out(suite: pytest.Pytester) -> None:
    body = (
        GOOD.replace("return Box", "return Broken")
        + """
    test_put_get = expected_failure(BoxContract.test_put_get, reason="get is broken on purpose")


from portfolio_core.testing import expected_failure

class Broken(Box):
    async def get(self, key):
        return None
"""
    )
    body = "from portfolio_core.testing import expected_failure\n" + body
    result = _run(suite, body)
    result.assert_outcomes(xfailed=1, failed=1, passed=4, skipped=3)


def test_missing_make_adapter_is_explained(suite: pytest.Pytester) -> None:
    result = _run(
        suite, "from box_suite import BoxContract\n\nclass TestNoFactory(BoxContract):\n    pass\n"
    )
    result.stdout.fnmatch_lines(["*TestNoFactory must define the fixture make_adapter*"])
    assert result.ret == 1
