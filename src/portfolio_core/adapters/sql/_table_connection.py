"""One PostgreSQL connection for an adapter that keeps one table: the snapshot and
projection stores share it.

`TableConnection` opens the connection on first use (and again after it dropped), creates
the table the first time (under a transaction-scoped advisory lock, so that processes
starting together do not race on the DDL), hands the connection to one call at a time and
turns driver errors into the port's UnavailableError. It serves the event loop that first
used it: psycopg's async connections belong to the loop that opened them, so a call from
another loop raises UnavailableError saying so instead of hanging.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from pydantic import SecretStr

from portfolio_core.ports.errors import UnavailableError

__all__ = ["TableConnection"]


class TableConnection:
    """The connection to ``url`` of the adapter named ``owner`` keeping ``table``.

    ``create`` is the ``CREATE TABLE IF NOT EXISTS ...`` statement run once; ``what`` names
    the store in errors ("snapshot store is closed"); ``port`` is the port they belong to.
    Nothing here quotes the URL: it may hold a password.
    """

    def __init__(
        self, url: SecretStr, *, table: str, create: str, owner: str, what: str, port: str
    ) -> None:
        self._url = url
        self._table = table
        self._create = create
        self._owner = owner
        self._what = what
        self._port = port
        self._conn: Any = None
        self._lock = asyncio.Lock()  # binds to the loop that first waits on it
        self._loop: asyncio.AbstractEventLoop | None = None
        self._created = False
        self.closed = False

    def _own_lock(self) -> asyncio.Lock:
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop = loop
        elif self._loop is not loop:
            raise UnavailableError(
                f"this {self._owner} serves the event loop that first used it; make "
                "one instance per event loop",
                port=self._port,
            )
        return self._lock

    @contextlib.asynccontextmanager
    async def use(self) -> AsyncIterator[Any]:
        """The open connection (autocommit), held by this call alone until the block ends.

        Raises:
            UnavailableError: the store is closed, is used from another event loop, the
                connection dropped (it is closed and opened again by the next call) or
                PostgreSQL failed.
        """
        import psycopg

        async with self._own_lock():
            if self.closed:
                raise UnavailableError(f"{self._what} is closed", port=self._port)
            try:
                if self._conn is None or self._conn.closed:
                    self._conn = await psycopg.AsyncConnection.connect(
                        self._url.get_secret_value(), autocommit=True
                    )
                if not self._created:
                    async with self._conn.transaction():
                        await self._conn.execute(
                            "SELECT pg_advisory_xact_lock(hashtext(%s))",
                            (f"pc-ddl:{self._table}",),
                        )
                        await self._conn.execute(self._create)
                    self._created = True
                yield self._conn
            except psycopg.OperationalError as exc:
                conn, self._conn = self._conn, None
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close()
                raise UnavailableError(
                    f"PostgreSQL connection lost: {type(exc).__name__}", port=self._port
                ) from exc
            except psycopg.Error as exc:
                raise UnavailableError(f"PostgreSQL failed: {exc}", port=self._port) from exc

    async def close(self) -> None:
        """Mark the store closed and close the connection; idempotent."""
        self.closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.close()
