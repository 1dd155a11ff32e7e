"""Contract suite of the EventStore port (async, stateful), with its state machine.

Every test states one clause of
[portfolio_core.ports.event_store][portfolio_core.ports.event_store]. The state machine
(`EventStoreMachine`) drives the adapter beside a pure model written from the port's
docstring: plain lists of ``(stream, id, type, data)``, nothing borrowed from an adapter.

The clauses live in one module per concern (``_append``, ``_read``, ``_query``,
``_subscriptions``, ``_faults``, ``_tenancy``, ``_model``), each a mixin; `EventStoreContract`
combines them. Import it from this package, not from those private modules.
"""

from __future__ import annotations

from portfolio_core.ports.event_store import EventStore, EventStoreCapability, NewEvent
from portfolio_core.testing.contracts.event_store._append import AppendClauses
from portfolio_core.testing.contracts.event_store._faults import FaultClauses
from portfolio_core.testing.contracts.event_store._model import EventStoreMachine, ModelClauses
from portfolio_core.testing.contracts.event_store._query import QueryClauses
from portfolio_core.testing.contracts.event_store._read import ReadClauses
from portfolio_core.testing.contracts.event_store._subscriptions import SubscriptionClauses
from portfolio_core.testing.contracts.event_store._tenancy import TenancyClauses

__all__ = ["EventStoreContract", "EventStoreMachine"]


class EventStoreContract(
    AppendClauses,
    ReadClauses,
    QueryClauses,
    SubscriptionClauses,
    FaultClauses,
    TenancyClauses,
    ModelClauses,
):
    """The promises of [EventStore][portfolio_core.ports.EventStore] (docs/ports/event_store.md)."""

    port_key = "event_store"
    capability_names = frozenset(c.value for c in EventStoreCapability)

    async def put_probe(self, adapter: EventStore) -> str:
        await adapter.append("kit-probe", [NewEvent("Probe")])
        return "kit-probe"

    async def has_probe(self, adapter: EventStore, probe: str) -> bool:
        return bool(await adapter.read_all())
