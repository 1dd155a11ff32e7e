"""Deprecated import path: use `portfolio_core.adapters.sql.sqlite_event_store` and
`portfolio_core.adapters.sql.postgres_event_store`.

The SQL event stores live in one module per adapter; this module re-exports both with a
``DeprecationWarning`` and will be removed in a later release. Manifests are unaffected:
the adapter names ``sqlite`` and ``postgres`` resolve to the new modules.
"""

import warnings

from portfolio_core.adapters.sql.postgres_event_store import (
    PostgresEventStore,
    PostgresEventStoreConfig,
)
from portfolio_core.adapters.sql.sqlite_event_store import (
    SQLiteEventStore,
    SQLiteEventStoreConfig,
)

__all__ = [
    "PostgresEventStore",
    "PostgresEventStoreConfig",
    "SQLiteEventStore",
    "SQLiteEventStoreConfig",
]

warnings.warn(
    "portfolio_core.adapters.sql.event_store moved to "
    "portfolio_core.adapters.sql.sqlite_event_store and "
    "portfolio_core.adapters.sql.postgres_event_store",
    DeprecationWarning,
    stacklevel=2,
)
