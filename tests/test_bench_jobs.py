"""The job benchmark runs without arq (its own ``bench-arq`` extra, since every arq release
requires redis<6) and then says why its Redis comparison was skipped."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def _bench_jobs() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "bench_jobs", ROOT / "benchmarks" / "bench_jobs.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench_jobs = _bench_jobs()


def test_without_arq_the_redis_comparison_is_skipped_naming_the_extra() -> None:
    reason = bench_jobs._arq_skip_reason("redis://127.0.0.1:6379/0", arq_installed=False)
    assert reason is not None
    assert "arq is not installed" in reason
    assert "portfolio-core[bench-arq]" in reason
    assert "redis<6" in reason


def test_without_a_redis_url_the_redis_comparison_is_skipped_naming_the_variable() -> None:
    reason = bench_jobs._arq_skip_reason(None, arq_installed=True)
    assert reason is not None
    assert "PORTFOLIO_CORE_BENCH_REDIS_URL" in reason


def test_with_a_redis_url_and_arq_the_redis_comparison_runs() -> None:
    assert bench_jobs._arq_skip_reason("redis://127.0.0.1:6379/0", arq_installed=True) is None
