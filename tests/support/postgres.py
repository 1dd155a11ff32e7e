"""Helpers for tests against the real PostgreSQL server."""

from __future__ import annotations

import asyncio


def drop_tables(url: str, names: list[str]) -> None:
    """Drop the tables ``names`` (each test creates its own, uniquely named)."""

    async def drop() -> None:
        import psycopg

        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
            for name in names:
                await conn.execute(f"DROP TABLE IF EXISTS {name}")

    asyncio.run(drop())
