"""Contract suite of the Cache port, with a state machine against a pure reference model.

Factories: ``make_adapter`` returns a factory of fresh, empty caches. The kit passes
``clock=`` when the factory accepts it (TTL clauses that move time are skipped otherwise: an
adapter whose expiry is its server's, like Redis's native TTLs, is checked only for accepting
TTLs and keeping items until then). Clauses on tenant scoping call the factory with
``tenant_scoped=True`` and run only when the adapter declares ``cache.tenant_scoped`` and the
factory accepts that keyword. The bounded-size clause passes ``max_entries=``.

The clauses live in one module per concern (``_values``, ``_removal``, ``_bulk``, ``_ttl``,
``_optional``, ``_faults``, ``_tenancy``, ``_model``), each a mixin; `CacheContract` combines
them. Import it from this package, not from those private modules.
"""

from __future__ import annotations

from portfolio_core.ports.cache import Cache, CacheCapability
from portfolio_core.testing._factories import with_options
from portfolio_core.testing.contracts.cache._bulk import BulkClauses
from portfolio_core.testing.contracts.cache._common import (
    BAD_KEYS,
    BAD_TTLS,
    BAD_VALUES,
    VALUES,
    json_values,
)
from portfolio_core.testing.contracts.cache._faults import FaultClauses
from portfolio_core.testing.contracts.cache._model import CacheMachine, ModelClauses
from portfolio_core.testing.contracts.cache._optional import OptionalClauses
from portfolio_core.testing.contracts.cache._removal import RemovalClauses
from portfolio_core.testing.contracts.cache._tenancy import TenancyClauses, TenantIsolationMachine
from portfolio_core.testing.contracts.cache._ttl import TtlClauses
from portfolio_core.testing.contracts.cache._values import ValueClauses

__all__ = [
    "BAD_KEYS",
    "BAD_TTLS",
    "BAD_VALUES",
    "VALUES",
    "CacheContract",
    "CacheMachine",
    "TenantIsolationMachine",
    "json_values",
    "with_options",
]


class CacheContract(
    ValueClauses,
    RemovalClauses,
    BulkClauses,
    TtlClauses,
    OptionalClauses,
    FaultClauses,
    TenancyClauses,
    ModelClauses,
):
    """The promises of [Cache][portfolio_core.ports.Cache] (see docs/ports/cache.md)."""

    port_key = "cache"
    capability_names = frozenset(c.value for c in CacheCapability)

    async def put_probe(self, adapter: Cache) -> str:
        await adapter.put("kit-probe", {"probe": 1})
        return "kit-probe"

    async def has_probe(self, adapter: Cache, probe: str) -> bool:
        return await adapter.get(probe) == {"probe": 1}
