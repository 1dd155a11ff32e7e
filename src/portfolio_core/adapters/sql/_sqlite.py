"""One SQLite connection served by one worker thread: what the small SQLite adapters share.

The config, snapshot and projection stores each keep one connection (autocommit, WAL
journal) that only their own worker thread touches, so a blocking statement never blocks
the event loop and statements of one instance never interleave. `SQLiteFile` is that
pair: it opens the file on the thread (creating its folder and running the adapter's setup
statements), runs functions there, turns driver errors into the port's UnavailableError
and closes the connection on the thread that used it.
"""

from __future__ import annotations

import asyncio
import sqlite3
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, TypeVar

from portfolio_core.adapters.sql._identifiers import check_identifier
from portfolio_core.ports.errors import UnavailableError

__all__ = ["SQLiteFile", "SQLiteTableStore"]

T = TypeVar("T")


class SQLiteFile:
    """The database file at ``path``, used on one worker thread named ``thread_name``.

    ``setup`` holds the statements run once after connecting (pragmas, ``CREATE TABLE IF
    NOT EXISTS ...``); ``what`` names the store in errors ("snapshot store is closed") and
    ``port`` is the port those errors belong to. Not thread-safe by itself: the adapter
    serialises `open` and `close` with its own lock or closed flag.
    """

    def __init__(
        self,
        path: Path,
        *,
        busy_timeout: float,
        setup: Sequence[str],
        thread_name: str,
        what: str,
        port: str,
    ) -> None:
        self.path = path
        self.busy_timeout = busy_timeout
        self._setup = tuple(setup)
        self._thread_name = thread_name
        self._what = what
        self._port = port
        self._conn: sqlite3.Connection | None = None
        self._executor: ThreadPoolExecutor | None = None

    @property
    def started(self) -> bool:
        """Whether the worker thread runs (`open` succeeded and `close` has not run)."""
        return self._executor is not None

    def _connect(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
        )
        try:
            for statement in self._setup:
                conn.execute(statement)
        except BaseException:
            conn.close()
            raise
        self._conn = conn

    async def open(self) -> None:
        """Start the worker thread and open the file on it.

        Raises:
            UnavailableError: the file cannot be opened or set up; the thread is stopped
                again, so a later `open` starts afresh.
        """
        executor = ThreadPoolExecutor(1, thread_name_prefix=self._thread_name)
        self._executor = executor
        try:
            await self.call(self._connect)
        except BaseException:
            self._executor = None
            executor.shutdown(wait=False)
            raise

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` run on the worker thread.

        Raises:
            UnavailableError: the file is not open (never opened, or closed), or SQLite
                failed (the driver's message is kept).
        """
        executor = self._executor
        if executor is None:
            raise UnavailableError(f"{self._what} is closed", port=self._port)
        try:
            return await asyncio.get_running_loop().run_in_executor(executor, fn, *args)
        except sqlite3.Error as exc:
            raise UnavailableError(f"SQLite failed: {exc}", port=self._port) from exc

    def db(self) -> sqlite3.Connection:
        """The connection, for functions running on the worker thread.

        Raises:
            UnavailableError: the file is closed.
        """
        if self._conn is None:
            raise UnavailableError(f"{self._what} is closed", port=self._port)
        return self._conn

    def close(self) -> None:
        """Close the connection on its thread and stop the thread; idempotent."""
        executor, self._executor = self._executor, None
        if executor is not None:
            conn, self._conn = self._conn, None
            if conn is not None:
                executor.submit(conn.close)
            executor.shutdown(wait=True)


class SQLiteTableStore(ABC):
    """Base of the SQLite stores that keep one table in one file (the snapshot and
    projection stores): the file on its worker thread (`SQLiteFile`), ``start``,
    ``aclose`` and the repr.

    A subclass names itself in ``_what`` (errors), its worker thread in ``_thread_name``
    and its port in ``_port``, and lists the statements that set the file up (pragmas and
    ``CREATE TABLE IF NOT EXISTS``) in `_schema`.
    """

    _what: ClassVar[str]
    _thread_name: ClassVar[str]
    _port: ClassVar[str]

    def __init__(self, path: str | Path, *, table: str, busy_timeout: float) -> None:
        self.path = Path(path)
        self.table = check_identifier(table)
        self.busy_timeout = busy_timeout
        self._file = SQLiteFile(
            self.path,
            busy_timeout=busy_timeout,
            setup=self._schema(),
            thread_name=self._thread_name,
            what=self._what,
            port=self._port,
        )
        self._start_lock = asyncio.Lock()
        self._closed = False

    @abstractmethod
    def _schema(self) -> Sequence[str]:
        """The statements run once the file is open."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(path={str(self.path)!r}, table={self.table!r})"

    async def start(self) -> None:
        """Open the database and create the table if missing; idempotent.

        Raises:
            UnavailableError: the store is closed, or the file cannot be opened.
        """
        async with self._start_lock:
            if self._closed:
                raise UnavailableError(f"{self._what} is closed", port=self._port)
            if not self._file.started:
                await self._file.open()

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` on the worker thread, starting the store first if needed."""
        if not self._file.started:
            await self.start()
        return await self._file.call(fn, *args)

    async def aclose(self) -> None:
        """Close the database; idempotent."""
        self._closed = True
        self._file.close()
