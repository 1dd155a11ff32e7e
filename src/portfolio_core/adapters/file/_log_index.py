"""The file event store's on-disk index (`LogIndex`): a SQLite database beside the log that
says, per tenant, where each event sits (position, stream, version, id, type, time) and in
which log record its body is, so that the store keeps no event in memory.

The log stays the truth; the index is derived from it and may always be thrown away and
rebuilt. It records how much of the log it covers (``log_end``) and a digest of that part
(the CRC-32 chained over every covered record's header, which holds the record's own CRC), so
that on open the store can tell an index that belongs to the log's first ``log_end`` bytes
from a stale one (a log replaced by a salvaged copy, a log that lost a tail the index kept).

Not thread-safe: the store calls it under its own lock.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

from cachetools import LRUCache

from portfolio_core.adapters._shared.event_store.index import IndexedRow
from portfolio_core.adapters._shared.event_store.rules import check_expected, idempotent_replay
from portfolio_core.adapters._shared.event_store.validation import PORT, EncodedEvent
from portfolio_core.ports.errors import NotFoundError
from portfolio_core.ports.event_store import EventQuery, ExpectedVersion

FORMAT = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS partitions (
    tenant TEXT PRIMARY KEY, head INTEGER NOT NULL, last_time INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    tenant TEXT NOT NULL,
    position INTEGER NOT NULL,
    stream TEXT NOT NULL,
    version INTEGER NOT NULL,
    id TEXT NOT NULL,
    type TEXT NOT NULL,
    recorded_at INTEGER NOT NULL,
    record INTEGER NOT NULL,
    size INTEGER NOT NULL,
    slot INTEGER NOT NULL,
    PRIMARY KEY (tenant, position)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS events_stream ON events (tenant, stream, version);
CREATE UNIQUE INDEX IF NOT EXISTS events_id ON events (tenant, id);
"""
_INSERT = "INSERT INTO events VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
_SET_HEAD = "INSERT OR REPLACE INTO partitions VALUES (?, ?, ?)"
_SET_COVERAGE = (
    "UPDATE meta SET value = CASE key WHEN 'log_end' THEN ?1 ELSE ?2 END "
    "WHERE key IN ('log_end', 'digest')"
)
COMMIT_EVERY = 256
"""Records indexed per transaction, at most (the log is the durable copy)."""
COMMIT_AFTER = 1.0
"""Seconds after which an append commits the index's open transaction."""
_VERSION = "SELECT max(version) FROM events WHERE tenant = ? AND stream = ?"
_MAX_INT = (1 << 63) - 1
VERSIONS_CACHED = 4096
"""Streams whose current version the index keeps in memory (least recently used go)."""
_READ = "SELECT position, record, size, slot FROM events WHERE tenant = ? AND stream = ? AND "
_READ_FORWARDS = _READ + "version >= ? ORDER BY version LIMIT ?"
_READ_BACKWARDS = _READ + "version <= ? ORDER BY version DESC LIMIT ?"
# driven by the id index (a plain "id IN (...)" would scan the tenant's whole log)
_BY_ID = (
    "SELECT e.id, e.stream, e.version, e.position FROM json_each(?2) AS j "
    "CROSS JOIN events AS e ON e.tenant = ?1 AND e.id = j.value"
)
_CANDIDATES = """
SELECT position, record, size, slot FROM events
WHERE tenant = ?1 AND position >= ?2 AND (?3 IS NULL OR position < ?3)
AND (?4 IS NULL OR type IN (SELECT value FROM json_each(?4)))
AND (?5 IS NULL OR stream IN (SELECT value FROM json_each(?5)))
AND (?6 IS NULL OR id IN (SELECT value FROM json_each(?6)))
AND (?7 IS NULL OR recorded_at >= ?7) AND (?8 IS NULL OR recorded_at <= ?8)
ORDER BY position """
_CANDIDATES_FORWARDS = _CANDIDATES + "LIMIT ?9"
_CANDIDATES_BACKWARDS = _CANDIDATES + "DESC LIMIT ?9"
# a query for ids: those events, found through the id index, whatever the size of the log
_CANDIDATES_BY_ID = """
SELECT e.position, e.record, e.size, e.slot FROM json_each(?6) AS j CROSS JOIN events AS e
ON e.tenant = ?1 AND e.id = j.value
WHERE e.position >= ?2 AND (?3 IS NULL OR e.position < ?3)
AND (?4 IS NULL OR e.type IN (SELECT value FROM json_each(?4)))
AND (?5 IS NULL OR e.stream IN (SELECT value FROM json_each(?5)))
AND (?7 IS NULL OR e.recorded_at >= ?7) AND (?8 IS NULL OR e.recorded_at <= ?8)
ORDER BY e.position """


class Locator(NamedTuple):
    """Where an event's body is: the log record (byte offset and framed size) and its slot
    among the record's events."""

    position: int
    record: int
    size: int
    slot: int


class LogIndex:
    """The index database at ``path`` (created when missing; recreated when unreadable or
    of another format)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn = self._connect()
        self._heads: dict[str, tuple[int, int]] = {}
        self._versions: LRUCache[tuple[str, str], int] = LRUCache(VERSIONS_CACHED)
        self._pending, self._committed = 0, time.monotonic()
        self._changed: set[str] = set()
        self._covered: tuple[int, int] = (0, 0)
        try:
            self._load()
        except sqlite3.DatabaseError:  # damaged beyond its header: start an empty one
            self.reset()

    def _connect(self) -> sqlite3.Connection:
        for attempt in range(2):
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            try:
                conn.execute("PRAGMA journal_mode=WAL")
                # The log is the durable copy; the index may lose its last transactions in a
                # power loss (it is then caught up from the log), never be damaged.
                conn.execute("PRAGMA synchronous=NORMAL")
                conn.executescript(_SCHEMA)
                found = conn.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
                if found is None:
                    conn.executemany(
                        "INSERT INTO meta VALUES (?, ?)",
                        (("format", FORMAT), ("log_end", 0), ("digest", 0)),
                    )
                elif found[0] != FORMAT:
                    raise sqlite3.DatabaseError(f"index format {found[0]}, not {FORMAT}")
                return conn
            except sqlite3.DatabaseError:
                conn.close()
                if attempt:
                    raise
                self._remove_files()
        raise AssertionError("unreachable")  # pragma: no cover

    def _remove_files(self) -> None:
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                Path(f"{self.path}{suffix}").unlink()

    def _load(self) -> None:
        """Read the committed state (heads, coverage) back; forget the cached versions."""
        self._versions.clear()
        self._changed.clear()
        self._pending = 0
        self._heads = {
            t: (h, at) for t, h, at in self._conn.execute("SELECT * FROM partitions").fetchall()
        }
        meta = dict(self._conn.execute("SELECT key, value FROM meta").fetchall())
        self._covered = (int(meta.get("log_end", 0)), int(meta.get("digest", 0)))

    def reset(self) -> None:
        """Throw the index away and start an empty one."""
        self._conn.close()
        self._remove_files()
        self._conn = self._connect()
        self._load()

    def discard(self) -> None:
        """Close without committing and delete the database (it is rebuilt from the log)."""
        try:
            self._conn.close()
        finally:
            self._remove_files()

    def close(self) -> None:
        """Commit and close."""
        try:
            self.commit()
        finally:
            self._conn.close()

    def coverage(self) -> tuple[int, int]:
        """``(log_end, digest)``: how many bytes of the log the index covers (0: none)."""
        return self._covered

    # -- writing ----------------------------------------------------------------------------

    def plan(
        self,
        tenant: str,
        stream: str,
        batch: Sequence[EncodedEvent],
        expected: ExpectedVersion,
        wall_clock: Callable[[], float] = time.time,
    ) -> list[IndexedRow] | tuple[int, tuple[int, ...]]:
        """The rows an append would add, or the original result of an exact retry (ids are
        looked up in the whole log). Raises WrongExpectedVersionError / ConflictError."""
        conn = self._conn
        found = conn.execute(_BY_ID, (tenant, json.dumps([e.id for e in batch]))).fetchall()
        if found:
            by_id = {i: (s, v, p) for i, s, v, p in found}
            replay = idempotent_replay(stream, batch, expected, [by_id.get(e.id) for e in batch])
            if replay is not None:
                return replay
        current = self._versions.get((tenant, stream))
        if current is None:
            current = conn.execute(_VERSION, (tenant, stream)).fetchone()[0] or 0
            self._versions[(tenant, stream)] = current
        check_expected(stream, expected, current)
        head, last_time = self._heads.get(tenant, (0, 0))
        now = max(int(wall_clock() * 1_000_000), last_time)
        return [
            IndexedRow(e, stream, current + k + 1, head + k + 1, now) for k, e in enumerate(batch)
        ]

    def add(
        self, tenant: str, rows: Sequence[IndexedRow], record: int, size: int, digest: int
    ) -> None:
        """Index the rows of the log record at byte ``record`` (``size`` bytes framed), the
        log then being covered up to ``record + size`` with ``digest``. Not committed yet:
        `commit` (or `commit_due`) does that, many records at once; an index that lost
        uncommitted records is caught up from the log when next opened.

        Raises ValueError when the rows do not continue the tenant's log (a position that
        does not follow, or a stream version or event id already indexed), and whatever
        SQLite raises; after either, part of the record may be in the open transaction:
        the caller must `rollback`."""
        head, last_time = self._heads.get(tenant, (0, 0))
        for k, row in enumerate(rows):
            if row.position != head + k + 1:
                raise ValueError(f"position {row.position} does not follow {head + k}")
        conn = self._conn
        if not conn.in_transaction:
            conn.execute("BEGIN")
        try:
            conn.executemany(
                _INSERT,
                [
                    (
                        tenant,
                        r.position,
                        r.stream,
                        r.version,
                        r.event.id,
                        r.event.type,
                        r.recorded_at,
                        record,
                        size,
                        k,
                    )
                    for k, r in enumerate(rows)
                ],
            )
        except sqlite3.IntegrityError as exc:
            raise ValueError(f"a version or event id is already stored ({exc})") from None
        top = rows[-1]
        self._heads[tenant] = (top.position, max(last_time, max(r.recorded_at for r in rows)))
        self._versions[(tenant, top.stream)] = top.version
        self._changed.add(tenant)
        self._covered = (record + size, digest)
        self._pending += 1

    def commit(self) -> None:
        """Commit what was added, with the heads and the coverage it leaves."""
        conn = self._conn
        if conn.in_transaction:
            conn.executemany(_SET_HEAD, [(t, *self._heads[t]) for t in self._changed])
            conn.execute(_SET_COVERAGE, self._covered)
            conn.execute("COMMIT")
        self._changed.clear()
        self._pending, self._committed = 0, time.monotonic()

    def commit_due(self) -> None:
        """Commit when enough records or time went by since the last commit."""
        if self._pending >= COMMIT_EVERY or time.monotonic() - self._committed >= COMMIT_AFTER:
            self.commit()

    def rollback(self) -> None:
        """Undo everything since the last commit (the in-memory state too)."""
        if self._conn.in_transaction:
            self._conn.execute("ROLLBACK")
        self._load()

    # -- reading ------------------------------------------------------------------------------

    def read(
        self, tenant: str, stream: str, from_version: int, limit: int | None, backwards: bool
    ) -> list[Locator]:
        """Locators of a stream's events (NotFoundError when it has none)."""
        if not backwards:
            sql, bound = _READ_FORWARDS, max(from_version, 1)
        else:
            sql, bound = _READ_BACKWARDS, from_version or _MAX_INT
        found = self._conn.execute(
            sql, (tenant, stream, bound, -1 if limit is None else limit)
        ).fetchall()
        if not found and not self.has_stream(tenant, stream):
            raise NotFoundError(f"no stream {stream!r}", key=stream, port=PORT)
        return [Locator(*row) for row in found]

    def has_stream(self, tenant: str, stream: str) -> bool:
        return (
            self._conn.execute(
                "SELECT 1 FROM events WHERE tenant = ? AND stream = ? LIMIT 1", (tenant, stream)
            ).fetchone()
            is not None
        )

    def read_all(self, tenant: str, from_position: int, limit: int | None) -> list[Locator]:
        found = self._conn.execute(
            "SELECT position, record, size, slot FROM events WHERE tenant = ? AND position >= ? "
            "ORDER BY position LIMIT ?",
            (tenant, from_position, -1 if limit is None else limit),
        ).fetchall()
        return [Locator(*row) for row in found]

    def candidates(
        self, tenant: str, query: EventQuery, low: int, high: int | None, page: int
    ) -> list[Locator]:
        """Up to ``page`` locators with ``low <= position < high`` that may match ``query``
        (its type, stream, id and time filters applied here; the rest by the caller), in
        the query's direction."""

        def listed(values: frozenset[str]) -> str | None:
            return json.dumps(sorted(values)) if values else None

        # recorded_at is whole microseconds; these bounds are a microsecond looser than the
        # query's, which the caller then applies exactly
        since = None if query.since is None else int(query.since.timestamp() * 1e6) - 1
        until = None if query.until is None else int(query.until.timestamp() * 1e6) + 1
        if query.ids:
            sql = _CANDIDATES_BY_ID + ("DESC LIMIT ?9" if query.backwards else "LIMIT ?9")
        else:
            sql = _CANDIDATES_BACKWARDS if query.backwards else _CANDIDATES_FORWARDS
        found = self._conn.execute(
            sql,
            (
                tenant,
                low,
                high,
                listed(query.types),
                listed(query.streams),
                listed(query.ids),
                since,
                until,
                page,
            ),
        ).fetchall()
        return [Locator(*row) for row in found]
