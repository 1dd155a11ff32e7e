"""Contract suite of the JobQueue port (async; docs/ports/job_queue.md).

Clauses about time (scheduling, leases, backoff) need a factory accepting ``clock=``: the
kit then moves time with a `FakeClock` instead of sleeping. The wake-up clause uses
real time with a generous bound (an enqueue must end a waiting reserve long before it).

The clauses live in one module per concern (``_enqueue``, ``_reserve``, ``_finish``,
``_leases``, ``_manage``, ``_arguments``, ``_faults``, ``_model``), each a mixin;
`JobQueueContract` combines them. Import it from this package, not from those private modules.
"""

from __future__ import annotations

from portfolio_core.ports.job_queue import JobQueue, JobQueueCapability, NewJob
from portfolio_core.testing.contracts.job_queue._arguments import ArgumentClauses
from portfolio_core.testing.contracts.job_queue._enqueue import EnqueueClauses
from portfolio_core.testing.contracts.job_queue._faults import FaultClauses
from portfolio_core.testing.contracts.job_queue._finish import FinishClauses
from portfolio_core.testing.contracts.job_queue._leases import LeaseClauses
from portfolio_core.testing.contracts.job_queue._manage import ManageClauses
from portfolio_core.testing.contracts.job_queue._model import (
    JobModel,
    JobQueueMachine,
    ModelClauses,
)
from portfolio_core.testing.contracts.job_queue._reserve import ReserveClauses

__all__ = ["JobQueueContract", "JobQueueMachine", "JobModel"]


class JobQueueContract(
    EnqueueClauses,
    ReserveClauses,
    FinishClauses,
    LeaseClauses,
    ManageClauses,
    ArgumentClauses,
    FaultClauses,
    ModelClauses,
):
    """The promises of `JobQueue` (see docs/ports/job_queue.md)."""

    port_key = "job_queue"
    capability_names = frozenset(c.value for c in JobQueueCapability)

    async def put_probe(self, adapter: JobQueue) -> str:
        return await adapter.enqueue(NewJob("kit-probe", queue="kit-probe"))

    async def has_probe(self, adapter: JobQueue, probe: str) -> bool:
        return (await adapter.counts("kit-probe")).available > 0
