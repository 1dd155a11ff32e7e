"""What every PostgreSQL adapter does with its psycopg connections.

* `connect` opens an async connection within ``connect_timeout`` seconds (TCP,
  handshake and authentication), or raises the port's UnavailableError;
* `stop_listening` cancels a LISTEN task and waits for its end;
* `is_dead` tells, without a round trip, an idle connection whose server went away
  (closed or reset: its socket shows end-of-file), so a pool replaces it before using it;
* `Deadline` bounds a call on one connection: when ``call_timeout`` passes, the
  connection's socket is shut down (the driver's wait ends at once with an error and the
  connection is broken, to be replaced) and the call raises UnavailableError. Cancelling the
  call instead would make the driver send a cancel request and wait for it -- to a server
  that does not answer.

Nothing here quotes a connection URL: it may hold a password.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import select
import socket
from collections.abc import Sequence
from types import TracebackType
from typing import Any, Self

from portfolio_core.adapters._shared.urls import check_url
from portfolio_core.ports.errors import InvalidInputError, UnavailableError

__all__ = [
    "DEFAULT_CALL_TIMEOUT",
    "DEFAULT_CONNECT_TIMEOUT",
    "Deadline",
    "check_postgres_url",
    "connect",
    "create_tables",
    "is_dead",
    "sever",
    "stop_listening",
]

DEFAULT_CONNECT_TIMEOUT = 5.0
"""Seconds to open a connection, by default."""
DEFAULT_CALL_TIMEOUT = 60.0
"""Seconds one call may take end to end, by default (above the 30 s default lock waits)."""


def check_postgres_url(raw: object, *, port: str) -> str:
    """``raw`` if it is a ``postgresql://`` (or ``postgres://``) URL that libpq can parse;
    otherwise InvalidInputError, quoting no part of the URL but its scheme."""
    url = check_url(raw, port=port)
    scheme = url.split("://", 1)[0].lower()
    if scheme not in ("postgresql", "postgres"):
        raise InvalidInputError(
            f"url must be a postgresql:// URL, not {scheme[:20]}://...", field="url", port=port
        )
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:  # pragma: no cover - the postgres extra is missing: start() says so
        return url
    try:
        conninfo_to_dict(url)
    except Exception:
        raise InvalidInputError(
            "url is not a valid PostgreSQL URL (not shown: it may hold a password)",
            field="url",
            port=port,
        ) from None
    return url


async def connect(
    url: str, *, connect_timeout: float, port: str, autocommit: bool = True, **kwargs: Any
) -> Any:
    """An async psycopg connection to ``url`` opened within ``connect_timeout`` seconds;
    UnavailableError (naming only the error's type) otherwise."""
    import psycopg

    try:
        async with asyncio.timeout(connect_timeout):
            return await psycopg.AsyncConnection.connect(
                url,
                autocommit=autocommit,
                # libpq's own bound (whole seconds, at least 2): a backstop to the one above
                connect_timeout=max(2, math.ceil(connect_timeout)),
                **kwargs,
            )
    except TimeoutError:
        raise UnavailableError(
            f"cannot connect to PostgreSQL within {connect_timeout:g} s", port=port
        ) from None
    except psycopg.Error as exc:
        raise UnavailableError(
            f"cannot connect to PostgreSQL: {type(exc).__name__}", port=port
        ) from None


async def create_tables(
    conn: Any, table: str, statements: Sequence[str], *, seconds: float, what: str, port: str
) -> None:
    """Run the DDL ``statements`` on ``conn`` in one transaction, under the advisory lock
    ``pc-ddl:<table>`` (processes starting together do not race on ``CREATE ... IF NOT
    EXISTS``), within ``seconds`` (see `Deadline`).

    Raises:
        UnavailableError: the server did not answer in time or refused a statement
            (``"cannot create <what>: ..."``); ``conn`` is closed first.
    """
    import psycopg

    try:
        async with Deadline(conn, seconds, port=port), conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"pc-ddl:{table}",))
            for statement in statements:
                await conn.execute(statement)
    except UnavailableError:
        await conn.close()
        raise
    except psycopg.Error as exc:
        await conn.close()
        raise UnavailableError(f"cannot create {what}: {exc}", port=port) from exc


def _readable(fd: int) -> bool:
    if fd < 0:
        return True
    if hasattr(select, "poll"):
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLERR | select.POLLHUP)
        return bool(poller.poll(0))
    ready, _, _ = select.select([fd], [], [], 0)  # pragma: no cover - no poll() on Windows
    return bool(ready)


def is_dead(conn: Any) -> bool:
    """Whether ``conn`` (an idle psycopg connection, not listening) can no longer serve.

    Closed or broken connections are dead. Otherwise a readable socket on an idle
    connection means the server closed or reset it: libpq reads the end-of-file and marks
    the connection bad. No round trip, no wait."""
    if conn.closed or conn.broken:
        return True
    try:
        pgconn = conn.pgconn
        if not _readable(pgconn.socket):
            return False
        pgconn.consume_input()
    except Exception:  # the socket is gone, or libpq saw end-of-file or a reset
        return True
    from psycopg.pq import ConnStatus

    return bool(pgconn.status != ConnStatus.OK)


def sever(conn: Any) -> None:
    """Shut down ``conn``'s socket in both directions (whatever waits on it wakes up with an
    error); the file descriptor stays the driver's to close."""
    try:
        fd = conn.pgconn.socket
        duplicate = socket.socket(fileno=os.dup(fd))
    except Exception:  # already closed
        return
    with duplicate, contextlib.suppress(OSError):
        duplicate.shutdown(socket.SHUT_RDWR)


async def stop_listening(task: asyncio.Task[None] | None) -> None:
    """Cancel the listener ``task`` (None: nothing to stop) and wait until it has ended;
    whatever it ends with, the cancellation or an error, is dropped: closing must go on."""
    if task is None:
        return
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError, Exception):
        await task


class Deadline:
    """``async with Deadline(conn, seconds, port=...)``: the body ends within ``seconds``.

    When the time passes, the connection is severed (`sever`) and whatever the body
    then raises is replaced by UnavailableError saying that the server did not answer in
    time. ``conn`` may be None and set later (``deadline.conn = ...``, once a connection is
    taken from a pool): while it is None, the time passing cancels the body instead (a wait
    for a pooled connection, or a connect), with the same UnavailableError. An exit without
    an error is left alone.
    """

    def __init__(self, conn: Any, seconds: float, *, port: str) -> None:
        self.conn = conn
        self.seconds = seconds
        self.port = port
        self.expired = False
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[Any] | None = None
        self._cancelled = False

    def _expire(self) -> None:
        self.expired = True
        if self.conn is not None:
            sever(self.conn)
        elif self._task is not None:
            self._cancelled = True
            self._task.cancel()

    async def __aenter__(self) -> Self:
        self._task = asyncio.current_task()
        self._timer = asyncio.get_running_loop().call_later(self.seconds, self._expire)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._timer is not None:
            self._timer.cancel()
        if self._cancelled and self._task is not None and self._task.uncancel() > 0:
            return  # cancelled from outside too: let that cancellation through
        if self.expired and (
            isinstance(exc, Exception) or (self._cancelled and exc_type is asyncio.CancelledError)
        ):
            raise UnavailableError(
                f"PostgreSQL did not answer within {self.seconds:g} s", port=self.port
            ) from None
