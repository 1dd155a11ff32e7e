"""The conformance kit: prove that an adapter honours its port.

* `ContractSuite` and the per-port suites in `portfolio_core.testing.contracts`
  (subclass one, provide the ``make_adapter`` fixture, run pytest);
* `clause`, `requires`, `requires_absent`, `expect_unsupported` and
  `expected_failure` for writing and opting out of clauses;
* `FakeClock`, `LoopRunner`, `run_concurrently`, `one_winner`,
  `run_in_threads` for time and concurrency; `portfolio_core.testing.machines` for
  hypothesis state machines (needs hypothesis);
* `portfolio_core.testing.doubles`: recording and scripted adapters for application tests;
* `FaultProxy` and `BackgroundFaultProxy` (`portfolio_core.testing.faults`):
  a loopback TCP proxy that cuts, stalls and restores an adapter's connection to its server.
* `portfolio_core.testing.shrinkable.check_shrinkable`: the clauses of the memory budget's
  [Shrinkable][portfolio_core.ports.Shrinkable] protocol, for adapters that release memory.

The pytest plugin (`portfolio_core.testing.plugin`) is registered by entry point and
needs no configuration. Install with ``pip install portfolio-core[testing]``.
"""

from __future__ import annotations

from portfolio_core.testing.clauses import (
    Clause,
    clause,
    clause_of,
    expect_unsupported,
    expected_failure,
    requires,
    requires_absent,
)
from portfolio_core.testing.clock import FakeClock
from portfolio_core.testing.concurrency import one_winner, run_concurrently, run_in_threads
from portfolio_core.testing.faults import BackgroundFaultProxy, FaultProxy
from portfolio_core.testing.loop import LoopRunner, close_adapter, open_adapter
from portfolio_core.testing.suite import ContractSuite, Factory

__all__ = [
    "BackgroundFaultProxy",
    "Clause",
    "ContractSuite",
    "Factory",
    "FakeClock",
    "FaultProxy",
    "LoopRunner",
    "clause",
    "clause_of",
    "close_adapter",
    "expect_unsupported",
    "expected_failure",
    "one_winner",
    "open_adapter",
    "requires",
    "requires_absent",
    "run_concurrently",
    "run_in_threads",
]
