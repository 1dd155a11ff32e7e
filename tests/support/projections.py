"""A SQL read model for projection tests: one row per handled event, no unique key, so a
repeated effect shows as a duplicate row instead of an error."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Sequence
from typing import Any

from portfolio_core.ports.event_store import RecordedEvent


def read_model_handler(kind: str, table: str, *, pause: float = 0.0, announce: bool = False) -> Any:
    """A handler writing ``(position, n)`` rows into ``table`` on the store's transaction.

    ``pause`` sleeps between the inserts and the end of the effect (so a kill can land mid
    batch); ``announce`` prints ``applying <last position>`` when a batch starts.
    """
    mark = "?" if kind == "sqlite" else "%s"

    async def handle(events: Sequence[RecordedEvent], tx: Any) -> None:
        if announce:
            print(f"applying {events[-1].position}", flush=True)
            sys.stdout.flush()
        await tx.execute(f"CREATE TABLE IF NOT EXISTS {table} (position bigint, n bigint)")
        for event in events:
            await tx.execute(
                f"INSERT INTO {table} (position, n) VALUES ({mark}, {mark})",
                (event.position, event.data["n"]),
            )
            if pause:
                await asyncio.sleep(pause / len(events))

    return handle


async def apply_added(events: Sequence[RecordedEvent], tx: Any) -> None:
    """A manifest's projection handler (``tests.support.projections:apply_added``) for a
    SQLite ProjectionStore: one ``(position, n)`` row per event in the table ``added``."""
    await tx.execute("CREATE TABLE IF NOT EXISTS added (position bigint, n bigint)")
    await tx.executemany(
        "INSERT INTO added (position, n) VALUES (?, ?)",
        [(event.position, event.data["n"]) for event in events],
    )


async def refuse_everything(events: Sequence[RecordedEvent], tx: Any) -> None:
    """A manifest's projection handler that always raises (``on_error`` tests)."""
    raise RuntimeError(f"refusing position {events[0].position}")


NOT_A_FUNCTION = 42
"""A handler reference that names something other than a function."""
