"""A read sees one snapshot of its stream: while appenders create streams, ``read`` of a
stream either raises NotFoundError (not created yet) or returns its events from version 1 --
never ``[]`` for a stream that exists (the rows and the existence check taken at two
different moments)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest

from portfolio_core.adapters.sql.postgres_event_store import PostgresEventStore
from portfolio_core.ports import NewEvent, NotFoundError
from tests.support.postgres import drop_tables

STREAMS = 300
READERS = 3


@pytest.fixture
def table(postgres_url: str, unique_name: str) -> Iterator[str]:
    yield f"{unique_name}_snap"
    drop_tables(postgres_url, [f"{unique_name}_snap"])


async def test_a_read_racing_the_first_append_never_returns_an_empty_list(
    postgres_url: str, table: str
) -> None:
    writer = PostgresEventStore(postgres_url, table=table, pool_size=2)
    readers = [PostgresEventStore(postgres_url, table=table, pool_size=1) for _ in range(READERS)]
    await writer.start()
    for reader in readers:
        await reader.start()
    created = 0
    empty: list[str] = []
    reads = 0

    async def append() -> None:
        nonlocal created
        for i in range(STREAMS):
            await writer.append(f"s{i}", [NewEvent("Created", {"i": i})])
            created = i + 1

    async def read(reader: PostgresEventStore) -> None:
        nonlocal reads
        while created < STREAMS:
            stream = f"s{created}"  # the stream the writer creates next
            reads += 1
            try:
                events = await reader.read(stream, from_version=1)
            except NotFoundError:
                continue
            if not events:
                empty.append(stream)
            else:
                assert events[0].version == 1

    try:
        await asyncio.gather(append(), *(read(r) for r in readers))
    finally:
        await writer.aclose()
        for reader in readers:
            await reader.aclose()
    assert reads > STREAMS, "the readers did not race the writer"
    assert not empty, f"read() returned [] for {len(empty)} existing streams: {empty[:5]}"
