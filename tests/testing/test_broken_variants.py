"""The kit catches bugs: every deliberately broken variant fails the clause it targets.

All variants run in one nested pytest session (fast), collected per variant class.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.testing.broken.kit_owned import VARIANTS

_SUITES = {
    "tokenizer": ("tokenizer", "TokenizerContract"),
    "llm": ("llm", "LLMContract"),
    "router": ("router", "RouterContract"),
    "agent": ("agent", "AgentContract"),
    "pipeline_step": ("pipeline", "PipelineStepContract"),
    "model_backend": ("model_backend", "ModelBackendContract"),
    "generation_engine": ("generation_engine", "GenerationEngineContract"),
    "cache_persistence": ("cache_persistence", "CachePersistenceContract"),
}


def _test_module() -> str:
    lines = ["import itertools", "import pytest", "from tests.testing.broken import kit_owned"]
    for module, cls in _SUITES.values():
        lines.append(f"from portfolio_core.testing.contracts.{module} import {cls}")
    for variant in VARIANTS:
        _, suite = _SUITES[variant.suite]
        name = variant.__name__
        if variant.suite == "cache_persistence":
            body = (
                "    @pytest.fixture\n    def make_adapter(self, tmp_path):\n"
                "        n = itertools.count()\n"
                f"        return lambda: kit_owned.{name}(tmp_path / f's{{next(n)}}')\n"
            )
        else:
            body = (
                "    @pytest.fixture\n    def make_adapter(self):\n"
                f"        return kit_owned.{name}\n"
            )
        lines.append(f"\n\nclass Test{name}({suite}):\n{body}")
    return "\n".join(lines) + "\n"


class _Failures:
    def __init__(self) -> None:
        self.failed: dict[str, set[str]] = {}
        self.passed: dict[str, int] = {}

    def pytest_runtest_logreport(self, report: Any) -> None:
        cls = report.nodeid.split("::")[1]
        clause = dict(report.user_properties).get("kit_clause")
        if report.failed and clause:
            self.failed.setdefault(cls, set()).add(clause)
        elif report.passed and report.when == "call":
            self.passed[cls] = self.passed.get(cls, 0) + 1


@pytest.fixture(scope="module")
def failures(tmp_path_factory: pytest.TempPathFactory) -> _Failures:
    root = tmp_path_factory.mktemp("broken")
    (root / "test_variants.py").write_text(_test_module())
    (root / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
    collector = _Failures()
    pytest.main(
        [
            str(root / "test_variants.py"),
            "-c",
            str(root / "pytest.ini"),
            "--rootdir",
            str(root),
            "-p",
            "no:cacheprovider",
            "-q",
            "--no-header",
            "--tb=no",
            "--kit-max-examples=10",
            "--hypothesis-seed=0",
            "--kit-steps=10",
            "-k",
            "not test_state_machine or LosesOldest",
        ],
        plugins=[collector],
    )
    return collector


def test_there_are_enough_variants() -> None:
    assert len(VARIANTS) >= 20
    assert {v.suite for v in VARIANTS} == set(_SUITES)


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.__name__)
def test_kit_catches_variant(failures: _Failures, variant: type, tmp_path: Path) -> None:
    name = f"Test{variant.__name__}"
    broken = failures.failed.get(name, set())
    assert variant.clause in broken, (
        f"the kit did not report clause {variant.clause} broken for {variant.__name__} "
        f"(clauses it reported: {sorted(broken) or 'none'})"
    )
    assert failures.passed.get(name, 0) > 0, "the variant broke everything, not one clause"
