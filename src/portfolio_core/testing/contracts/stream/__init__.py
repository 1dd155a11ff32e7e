"""Contract suite of the Stream port (async; docs/ports/stream.md).

Clauses that need consumer groups are gated on ``StreamCapability.ACKNOWLEDGE``; the tenant
isolation property needs ``TENANT_SCOPED`` *and* a factory accepting ``tenant_scoped=``
(it is called with ``tenant_scoped=True``); ``claim_after`` under a controlled clock needs a
factory accepting ``clock=``. Timeouts are real (a few tens of milliseconds): they are the
behaviour under test, never a way to order work.

The clauses live in one module per concern (``_read_write``, ``_transform``, ``_backpressure``,
``_groups``, ``_tenancy``, ``_faults``, ``_model``), each a mixin; `StreamContract` combines
them. Import it from this package, not from those private modules.
"""

from __future__ import annotations

from portfolio_core.ports.stream import Stream, StreamCapability
from portfolio_core.testing.contracts.stream._backpressure import BackpressureClauses
from portfolio_core.testing.contracts.stream._common import drain, take
from portfolio_core.testing.contracts.stream._faults import FaultClauses
from portfolio_core.testing.contracts.stream._groups import GroupClauses
from portfolio_core.testing.contracts.stream._model import ModelClauses, StreamMachine
from portfolio_core.testing.contracts.stream._read_write import ReadWriteClauses
from portfolio_core.testing.contracts.stream._tenancy import TenancyClauses, TenantIsolationMachine
from portfolio_core.testing.contracts.stream._transform import TransformClauses

__all__ = ["StreamContract", "StreamMachine", "TenantIsolationMachine", "drain", "take"]


class StreamContract(
    ReadWriteClauses,
    TransformClauses,
    BackpressureClauses,
    GroupClauses,
    TenancyClauses,
    FaultClauses,
    ModelClauses,
):
    """The promises of [Stream][portfolio_core.ports.Stream] (see docs/ports/stream.md)."""

    port_key = "stream"
    capability_names = frozenset(c.value for c in StreamCapability)

    async def put_probe(self, adapter: Stream) -> str:
        await adapter.write_stream("kit-probe", ["probe"])
        return "kit-probe"

    async def has_probe(self, adapter: Stream, probe: str) -> bool:
        return bool(await drain(adapter, probe))
