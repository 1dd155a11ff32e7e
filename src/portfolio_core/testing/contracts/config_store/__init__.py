"""Contract suite of the ConfigStore port (async, stateful), with its state machine.

Every test states one clause of
[portfolio_core.ports.config_store][portfolio_core.ports.config_store]. The state machine
(`ConfigStoreMachine`) drives the adapter beside a pure model written from the port's
docstring: a list of whole states, one per version, nothing borrowed from an adapter.

The clauses live in one module per concern (``_apply``, ``_read``, ``_history``, ``_schemas``,
``_watch``, ``_faults``, ``_model``), each a mixin; `ConfigStoreContract` combines them. Import
it from this package, not from those private modules.
"""

from __future__ import annotations

from portfolio_core.ports.config_store import ConfigStore, ConfigStoreCapability
from portfolio_core.testing.contracts.config_store._apply import ApplyClauses
from portfolio_core.testing.contracts.config_store._common import WAIT, KitLimits
from portfolio_core.testing.contracts.config_store._faults import FaultClauses
from portfolio_core.testing.contracts.config_store._history import HistoryClauses
from portfolio_core.testing.contracts.config_store._model import ConfigStoreMachine, ModelClauses
from portfolio_core.testing.contracts.config_store._read import ReadClauses
from portfolio_core.testing.contracts.config_store._schemas import SchemaClauses
from portfolio_core.testing.contracts.config_store._watch import WatchClauses

__all__ = ["ConfigStoreContract", "ConfigStoreMachine", "KitLimits"]


class ConfigStoreContract(
    ApplyClauses,
    ReadClauses,
    HistoryClauses,
    SchemaClauses,
    WatchClauses,
    FaultClauses,
    ModelClauses,
):
    """The promises of [ConfigStore][portfolio_core.ports.ConfigStore]
    (docs/ports/config_store.md)."""

    port_key = "config_store"
    capability_names = frozenset(c.value for c in ConfigStoreCapability)
    #: seconds a watcher may take to deliver a change set before the clause fails
    watch_timeout: float = WAIT

    async def put_probe(self, adapter: ConfigStore) -> str:
        await adapter.apply({"kit.probe": 1})
        return "kit.probe"

    async def has_probe(self, adapter: ConfigStore, probe: str) -> bool:
        return await adapter.current_version() > 0
