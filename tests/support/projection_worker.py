"""A child process running a projection until killed (run with ``python -m``).

python -m tests.support.projection_worker sqlite <events.db> <projections.db> <table>
python -m tests.support.projection_worker postgres <url> <events table> <table>
    feeds every event into the read model ``<table>`` (see tests/support/projections.py),
    slowly, printing "applying <position>" as each batch starts
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

from portfolio_core.services.projections import ProjectionRunner
from tests.support.projections import read_model_handler


def open_stores(kind: str, first: str, second: str, table: str) -> tuple[Any, Any]:
    if kind == "sqlite":
        from portfolio_core.adapters.sql.projection_store import SQLiteProjectionStore
        from portfolio_core.adapters.sql.sqlite_event_store import SQLiteEventStore

        return SQLiteEventStore(first), SQLiteProjectionStore(second)
    from portfolio_core.adapters.sql.postgres_event_store import PostgresEventStore
    from portfolio_core.adapters.sql.projection_store import PostgresProjectionStore

    return (
        PostgresEventStore(first, table=second, pool_size=1),
        PostgresProjectionStore(first, table=f"{table}_cp"),
    )


async def main(kind: str, first: str, second: str, table: str) -> None:
    events, store = open_stores(kind, first, second, table)
    await events.start()
    runner = ProjectionRunner(
        events,
        store,
        "kill-test",
        read_model_handler(kind, table, pause=0.2, announce=True),
        batch_size=50,
        lease_ttl=2.0,
        idle_interval=0.1,
    )
    await runner.run_until_caught_up(timeout=120)
    print("caught up", flush=True)
    await asyncio.sleep(3600)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:5]))
