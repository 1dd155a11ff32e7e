"""Benchmarks must not rot: every ``benchmarks/bench_*.py`` runs to the end in the smoke mode
(``PORTFOLIO_CORE_BENCH_SMOKE=1``: tiny counts, peers included where installed), so a
benchmark broken by a change to a port fails CI instead of waiting for the next person who
measures. The figures of a smoke run mean nothing; only that it finishes cleanly is checked.
A benchmark whose peer (a package of the ``bench`` extra) is not installed is skipped, naming
it; ``python3 dev.py bench`` installs them.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from portfolio_core.manifest.extras import extra_providing, unsatisfied

BENCHMARKS = sorted((Path(__file__).resolve().parents[1] / "benchmarks").glob("bench_*.py"))
SMOKE = "PORTFOLIO_CORE_BENCH_SMOKE"
_MISSING = re.compile(r"ModuleNotFoundError: No module named '([\w.]+)'")
#: what a benchmark prints (on stderr) when a real component it needs is absent
_LACKS_A_COMPONENT = "; nothing measured"


def test_there_are_benchmarks_to_run() -> None:
    assert len(BENCHMARKS) >= 10, [p.name for p in BENCHMARKS]


@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_the_benchmark_has_a_smoke_mode(path: Path) -> None:
    assert f'os.environ.get("{SMOKE}") == "1"' in path.read_text(), (
        f"{path.name} must read {SMOKE}=1 and then run tiny counts"
    )


def _is_a_bench_peer(module: str) -> bool:
    """Whether ``module`` belongs to a package of the ``bench`` extra (not installed here)."""
    if extra_providing(module) == "bench":
        return True
    # an import name unlike its distribution's (hydra from hydra-core)
    lacking = unsatisfied("bench")
    return any(r.split("[")[0].split(">")[0].startswith(module) for r in lacking)


@pytest.mark.timeout(240)
@pytest.mark.parametrize("path", BENCHMARKS, ids=lambda p: p.name)
def test_the_benchmark_runs_to_the_end_in_smoke_mode(path: Path) -> None:
    env = {**os.environ, SMOKE: "1"}
    done = subprocess.run(
        [sys.executable, str(path)],
        cwd=path.parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=230,
        check=False,
    )
    output = f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    missing = _MISSING.search(done.stderr)
    if done.returncode != 0 and missing and _is_a_bench_peer(missing.group(1)):
        pytest.skip(f"its peer {missing.group(1)!r} is not installed (the bench extra)")
    assert done.returncode == 0, f"{path.name} failed:\n{output}"
    assert "Traceback" not in done.stderr, done.stderr[-4000:]
    if not done.stdout.strip() and _LACKS_A_COMPONENT in done.stderr:
        # a benchmark that needs a real component (a headless browser) says so and measures
        # nothing on a machine without it; CI installs the component, a laptop may not have it
        pytest.skip(done.stderr.strip().splitlines()[-1])
    assert done.stdout.strip(), f"{path.name} printed no figures"
