"""EventStore in one append-only log file, for a single process on one machine.

Log format: an 8-byte magic header, then one record per appended batch::

    u32 little-endian payload length | u32 CRC-32 of the payload | payload (UTF-8 JSON)

A batch is one record written with one ``write`` call, so it is stored whole or not at all.
On open the log is scanned and every record's length and checksum verified:

* a *torn tail* -- an incomplete last record, the trace of a crash in the middle of a write
  that was therefore never acknowledged -- is truncated away (``recovered_bytes`` says how
  much);
* any other damage (a bad checksum in the middle or in a complete last record, a record that
  does not continue the log) is never "repaired" by deleting data: opening raises
  [CorruptDataError][portfolio_core.ports.CorruptDataError] naming the byte offset and the ordinal
  of
  the first damaged record, and the file is left exactly as it was. ``portfolio-core recover
  PATH`` (see `portfolio_core.adapters.file.recovery.salvage_event_log`) then writes a
  new log with every record it can verify, keeping the damaged one.

Memory stays bounded, whatever the size of the log: an index database beside the log
(`FileEventStore.index_path`, the log's name + ``.index``, SQLite) says where each event is
-- per tenant its position, stream, version, id, type and time, and the byte offset of the
record holding its body -- and reads fetch the bodies from the log (``pread``), verifying
each record's checksum again. Only bounded caches stay in memory: recently decoded records
(`READ_CACHE_BYTES` of payload, filled by small reads only) and recent streams' versions.
The log is the truth and the index is derived from it: the index records how much of the log
it covers and a digest of that part; on open the store checks it, catches it up from the
log's tail (appends commit the index every few hundred records or every second, so a crash
leaves it a little behind), and rebuilds it from the log when it is missing, unreadable or
describes another log (a salvaged copy put in place, a log that lost a tail the index kept).
Deleting the index is always safe. Opening still reads the whole log once, sequentially, to
verify every checksum (it decodes only the records the index does not cover).

An append is acknowledged after the record is written and, with ``fsync="always"`` (the
default), flushed to stable storage.

The file is locked (``flock``) while open: a second process gets UnavailableError.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import mmap
import os
import sqlite3
import threading
import time
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO, ClassVar, Literal

from cachetools import LRUCache
from pydantic import BaseModel, Field

from portfolio_core.adapters._shared.configurable import Configurable
from portfolio_core.adapters._shared.event_store.index import (
    IndexedRow,
    rows_to_events,
)
from portfolio_core.adapters._shared.event_store.partition import (
    EventStoreOptions,
    PartitionedEventStore,
)
from portfolio_core.adapters._shared.event_store.rules import matches
from portfolio_core.adapters._shared.event_store.validation import (
    DEFAULT_MAX_EVENT_BYTES,
    EncodedEvent,
    encode_batch,
    validate_expected,
    validate_position,
    validate_query,
    validate_read_args,
    validate_stream,
)
from portfolio_core.adapters.file._event_records import PAYLOAD_START as _PAYLOAD_START
from portfolio_core.adapters.file._event_records import decode_record as _decode_record
from portfolio_core.adapters.file._event_records import encode_record as _encode_record
from portfolio_core.adapters.file._framing import (
    DECODE_ERRORS,
    HEADER,
    RecordFormat,
    close_log,
    scan_frames,
)
from portfolio_core.adapters.file._log_index import Locator, LogIndex
from portfolio_core.ports.capabilities import declare
from portfolio_core.ports.errors import CorruptDataError, UnavailableError
from portfolio_core.ports.event_store import (
    AppendResult,
    Direction,
    EventQuery,
    EventStoreCapability,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
    StreamState,
)

__all__ = ["FileEventStore", "FileEventStoreConfig"]

MAGIC = b"PCEVLOG1"
FsyncPolicy = Literal["always", "interval", "never"]


class FileEventStoreConfig(EventStoreOptions):
    """Configuration of `FileEventStore` (``file`` in a manifest): the log's path and its
    fsync policy, besides the fields every event store has."""

    path: str
    fsync: FsyncPolicy = "always"
    fsync_interval: float = Field(1.0, gt=0)


_FORMAT = RecordFormat(_PAYLOAD_START, _decode_record)
_QUERY_PAGE = 512  # candidate events fetched per step of a query
_NO_INDEX = "the event log's index failed and was closed; reopen the store to rebuild it"
READ_CACHE_BYTES = 256 << 10
"""Budget of the decoded-record cache (the payload bytes of the records it holds)."""
CACHED_READ_RECORDS = 8
"""Reads that load more records than this from the log (scans: pages of the global log,
queries, long streams) do not put them in the decoded-record cache, so that a scan does not
push out the records of the small reads that come back to them."""
READ_SPAN_BYTES = 1 << 20
"""Most bytes of adjacent records a read fetches from the log with one ``pread`` (a record
larger than this is read on its own)."""


class FileEventStore(PartitionedEventStore, Configurable):
    """Durable single-process event store in an append-only, checksummed log file.

    ``fsync``: ``always`` flushes every append to disk before acknowledging it (survives
    power loss); ``interval`` at most every ``fsync_interval`` seconds; ``never`` leaves it to
    the OS (survives a process crash, not a power loss). Appends run on one worker thread, so
    the event loop never waits for a write or an fsync; reads run on the calling thread when
    no append holds the store, else on a worker thread. ``wall_clock``
    (``time.time`` by default) stamps ``recorded_at``; stamps never go back.
    """

    config_model: ClassVar[type[BaseModel]] = FileEventStoreConfig
    capabilities = declare(
        EventStoreCapability.SUBSCRIBE,
        EventStoreCapability.QUERY,
        EventStoreCapability.PERSISTENT,
        EventStoreCapability.GAPLESS,
        EventStoreCapability.TENANT_SCOPED,
    )

    def __init__(
        self,
        path: str | Path,
        *,
        fsync: FsyncPolicy = "always",
        fsync_interval: float = 1.0,
        tenant_scoped: bool = False,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        subscription_batch: int = 256,
        poll_interval: float = 1.0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(
            tenant_scoped=tenant_scoped,
            max_event_bytes=max_event_bytes,
            subscription_batch=subscription_batch,
            poll_interval=poll_interval,
        )
        self.path = Path(path)
        self._wall_clock = wall_clock
        self.fsync = fsync
        self.fsync_interval = fsync_interval
        self._lock = threading.Lock()
        self._log_index: LogIndex | None = None
        self._records: LRUCache[int, tuple[int, list[IndexedRow]]] = LRUCache(
            READ_CACHE_BYTES, getsizeof=lambda entry: entry[0]
        )
        self._digest = 0
        self._fd: int | None = None
        self._size = 0
        self._last_sync = 0.0
        self._executor: ThreadPoolExecutor | None = None
        self.recovered_bytes = 0
        """Bytes of torn tail (an interrupted, unacknowledged write) cut when last opened."""

    def __repr__(self) -> str:
        return f"FileEventStore(path={str(self.path)!r}, fsync={self.fsync!r})"

    @property
    def index_path(self) -> Path:
        """The on-disk index beside the log (the log's name + ``.index``): derived from the
        log, rebuilt from it whenever missing, unreadable or stale."""
        return self.path.with_name(self.path.name + ".index")

    # -- opening and recovery ------------------------------------------------------------

    def _damaged(self, offset: int, ordinal: int, problem: str) -> CorruptDataError:
        return CorruptDataError(
            f"event log {str(self.path)!r} is damaged: record {ordinal} at byte offset "
            f"{offset} {problem}. The file was left unchanged; "
            f"'portfolio-core recover {self.path}' writes a new log with every record "
            "it can verify",
            location=str(self.path),
            offset=offset,
            record=ordinal,
            port="EventStore",
        )

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        index: LogIndex | None = None
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UnavailableError(
                    f"event log {str(self.path)!r} is open in another process", port="EventStore"
                ) from None
            size = os.fstat(fd).st_size
            head = os.pread(fd, len(MAGIC), 0)
            if head != MAGIC:
                if MAGIC.startswith(head):  # empty, or a torn header: nothing acknowledged
                    os.ftruncate(fd, 0)
                    os.write(fd, MAGIC)
                    os.fsync(fd)
                    size = len(MAGIC)
                else:
                    with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as data:
                        intact = _FORMAT.next_record(data, 0) is not None
                    if intact:
                        raise self._damaged(0, 0, "is not the event log's header")
                    raise UnavailableError(
                        f"{str(self.path)!r} is not an event log", port="EventStore"
                    )
            index = LogIndex(self.index_path)
            try:
                good = self._replay(fd, size, index)
            except sqlite3.DatabaseError:
                index.reset()  # a damaged index database: rebuild it from the log
                good = self._replay(fd, size, index)
            if good < size:
                self.recovered_bytes = size - good
                os.ftruncate(fd, good)
                os.fsync(fd)
            self._size = good
        except BaseException:
            try:
                if index is not None:
                    index.close()
            finally:
                os.close(fd)
            raise
        self._fd = fd
        self._log_index = index

    def _replay(self, fd: int, size: int, index: LogIndex) -> int:
        """Verify every record's length and checksum, index the records the index does not
        cover yet, and return where the log ends once a torn tail is cut off.

        Raises CorruptDataError (leaving the log untouched) for any damage other than a torn
        tail."""
        covered, digest = index.coverage()
        with os.fdopen(os.dup(fd), "rb", buffering=1 << 20) as f:
            offset, ordinal, running = len(MAGIC), 0, 0
            if covered > offset:
                for at, header, payload in scan_frames(f, offset, size):
                    ordinal += 1
                    running = zlib.crc32(header, running)
                    offset = at + len(header) + len(payload)
                    if offset >= covered:
                        break
                if offset != covered or running != digest:
                    if offset < covered and not self._torn(fd, size, offset):
                        raise self._damaged(
                            offset, ordinal + 1, "fails its checksum or cannot be decoded"
                        )
                    # the index does not describe this log (or more than is left of it)
                    index.reset()
                    offset, ordinal, running = len(MAGIC), 0, 0
            try:
                offset, ordinal, running = self._catch_up(f, index, offset, ordinal, running, size)
            except BaseException:
                index.rollback()
                raise
            index.commit()
        if offset < size and not self._torn(fd, size, offset):
            raise self._damaged(offset, ordinal + 1, "fails its checksum or cannot be decoded")
        self._digest = running
        return offset

    def _catch_up(
        self, f: BinaryIO, index: LogIndex, offset: int, ordinal: int, running: int, size: int
    ) -> tuple[int, int, int]:
        """Index the records from ``offset``; return where the intact records end, how many
        there are, and the digest of the log up to there."""
        for at, header, payload in scan_frames(f, offset, size):
            try:
                tenant, rows = _decode_record(payload)
            except DECODE_ERRORS:
                break
            running = zlib.crc32(header, running)
            framed = len(header) + len(payload)
            try:
                index.add(tenant, rows, at, framed, running)
            except ValueError as exc:
                raise self._damaged(at, ordinal + 1, f"does not continue the log ({exc})") from None
            ordinal += 1
            offset = at + framed
            index.commit_due()
        return offset, ordinal, running

    def _resync(self, fd: int, index: LogIndex) -> None:
        """After a failed index write or commit (which may have rolled back every record
        since the last commit): catch the index up with the log again. When that fails too,
        the index is closed, so that every later call raises UnavailableError until the
        store is reopened (which catches it up from the log); this raises UnavailableError."""
        problem = ""
        try:
            index.rollback()
            covered, digest = index.coverage()
            with os.fdopen(os.dup(fd), "rb", buffering=1 << 20) as f:
                start = max(covered, len(MAGIC))  # 0: the index covers nothing yet
                offset, _, running = self._catch_up(f, index, start, 0, digest, self._size)
            index.commit()
            if (offset, running) != (self._size, self._digest):
                problem = "it does not reach the end of the log"
        except (OSError, sqlite3.Error, CorruptDataError) as exc:
            problem = str(exc)
        if problem:
            self._log_index = None
            with contextlib.suppress(sqlite3.Error):
                index.close()
            raise UnavailableError(
                f"the event log's index could not be caught up with the log ({problem}); "
                "the log is intact: reopen the store to rebuild the index",
                port="EventStore",
            )

    @staticmethod
    def _torn(fd: int, size: int, offset: int) -> bool:
        """Whether the bytes from ``offset`` to ``size`` are a torn tail (mapped, not read:
        the log may be large)."""
        with mmap.mmap(fd, size, access=mmap.ACCESS_READ) as data:
            return _FORMAT.is_torn_tail(data, offset)

    async def start(self) -> None:
        """Open (or create) the log, cut a torn tail, rebuild the index; idempotent.

        Raises CorruptDataError when the log is damaged anywhere but in a torn tail (the
        file is left unchanged), UnavailableError when it cannot be opened or locked."""
        if self._executor is not None:
            return
        executor = ThreadPoolExecutor(1, thread_name_prefix="pc-file-events")
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._open)
        except (OSError, sqlite3.Error) as exc:
            executor.shutdown(wait=False)
            raise UnavailableError(f"cannot open event log: {exc}", port="EventStore") from exc
        except BaseException:
            executor.shutdown(wait=False)
            raise
        self._executor = executor

    # -- writing -----------------------------------------------------------------------

    def _append_sync(
        self, tenant: str, stream: str, batch: list[EncodedEvent], expected: ExpectedVersion
    ) -> AppendResult:
        with self._lock:
            fd = self._fd
            if fd is None:
                raise UnavailableError("event store is closed", port="EventStore")
            index = self._log_index
            if index is None:
                raise UnavailableError(_NO_INDEX, port="EventStore")
            try:
                planned = index.plan(tenant, stream, batch, expected, self._wall_clock)
            except sqlite3.Error as exc:
                raise self._index_failed(index, exc) from exc
            if isinstance(planned, tuple):
                return AppendResult(stream, planned[0], planned[1])
            record = _encode_record(tenant, planned)
            digest = zlib.crc32(record[: HEADER.size], self._digest)
            try:
                written = os.write(fd, record)
                if written != len(record):
                    raise OSError(f"short write: {written} of {len(record)} bytes")
                now = time.monotonic()
                if self.fsync == "always" or (
                    self.fsync == "interval" and now - self._last_sync >= self.fsync_interval
                ):
                    os.fsync(fd)
                    self._last_sync = now
                index.add(tenant, planned, self._size, len(record), digest)
            except (OSError, sqlite3.Error, ValueError) as exc:
                # nothing was acknowledged: the log goes back to before the append, and the
                # index to the log (its open transaction may hold part of the record)
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, self._size)
                with contextlib.suppress(UnavailableError):
                    self._resync(fd, index)
                raise UnavailableError(f"event log write failed: {exc}", port="EventStore") from exc
            self._size += len(record)
            self._digest = digest
            try:
                index.commit_due()
            except sqlite3.Error:
                self._resync(fd, index)
        return AppendResult(stream, planned[-1].version, tuple(r.position for r in planned))

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = StreamState.ANY,
    ) -> AppendResult:
        expected = validate_expected(expected_version)
        batch = encode_batch(stream, events, self.max_event_bytes)
        tenant = self._tenant()
        if self._executor is None:
            await self.start()
        assert self._executor is not None  # noqa: S101  (start() sets it)
        result = await asyncio.get_running_loop().run_in_executor(
            self._executor, self._append_sync, tenant, stream, batch, expected
        )
        self._wakeup.notify()
        return result

    # -- reading (the index says where, the log holds the bodies) ---------------------------

    async def _ready(self) -> None:
        if self._executor is None:
            await self.start()

    def _opened(self) -> tuple[int, LogIndex]:
        fd, index = self._fd, self._log_index
        if fd is None:
            raise UnavailableError("event store is closed", port="EventStore")
        if index is None:
            raise UnavailableError(_NO_INDEX, port="EventStore")
        return fd, index

    def _bodies(self, fd: int, located: Sequence[Locator]) -> list[IndexedRow]:
        """The stored rows at ``located``, each record read from the log once (or found in
        the decoded-record cache) and its checksum verified again. Records missing from the
        cache that lie back to back in the log (a page of the global log, a stream appended
        in one go) are read with one ``pread`` per run of at most `READ_SPAN_BYTES`."""
        cache = self._records
        # this call's records: a record's events are usually read together
        seen: dict[int, list[IndexedRow]] = {}
        missing: dict[int, Locator] = {}
        for loc in located:
            record = loc.record
            if record in seen or record in missing:
                continue
            cached = cache.get(record)
            if cached is None:
                missing[record] = loc
            else:
                seen[record] = cached[1]
        if missing:
            cache_them = len(missing) <= CACHED_READ_RECORDS
            self._load_records(fd, [missing[r] for r in sorted(missing)], seen, cache_them)
        return [seen[loc.record][loc.slot] for loc in located]

    def _load_records(
        self,
        fd: int,
        wanted: Sequence[Locator],
        into: dict[int, list[IndexedRow]],
        cache_them: bool,
    ) -> None:
        """Read, verify and decode the records of ``wanted`` (sorted by offset, one locator
        per record) into ``into``, adjacent ones with one read; also into the decoded-record
        cache when ``cache_them``."""
        i, n = 0, len(wanted)
        while i < n:
            first = wanted[i]
            end = first.record + first.size
            j = i + 1
            while j < n:
                nxt = wanted[j]
                if nxt.record != end or nxt.record + nxt.size - first.record > READ_SPAN_BYTES:
                    break
                end += nxt.size
                j += 1
            data = os.pread(fd, end - first.record, first.record)
            for loc in wanted[i:j]:
                into[loc.record] = rows = self._decoded(data, loc.record - first.record, loc)
                if cache_them and loc.size <= READ_CACHE_BYTES:
                    self._records[loc.record] = (loc.size, rows)
            i = j

    def _decoded(self, data: bytes, offset: int, loc: Locator) -> list[IndexedRow]:
        """The rows of the record ``loc`` found at ``offset`` of ``data`` (read from the log
        at ``loc.record - offset``); CorruptDataError when it fails its checksum or
        cannot be decoded."""
        found = _FORMAT.record_at(data, offset)
        if found is None or found[1] != offset + loc.size:
            raise CorruptDataError(
                f"event log {str(self.path)!r} is damaged: the record at byte offset "
                f"{loc.record} changed since the log was opened (it fails its checksum or "
                f"cannot be decoded); 'portfolio-core recover {self.path}' writes a new log "
                "with every record it can verify",
                location=str(self.path),
                offset=loc.record,
                port="EventStore",
            )
        return found[0][1]

    def _index_failed(self, index: LogIndex, exc: sqlite3.Error) -> UnavailableError:
        """The error for a failed index operation (the caller holds the lock). A damaged
        index database is closed and removed -- it is derived from the log, which is intact
        -- so that reopening the store rebuilds it."""
        code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
        if code not in (sqlite3.SQLITE_CORRUPT, sqlite3.SQLITE_NOTADB):
            return UnavailableError(f"event log index failed: {exc}", port="EventStore")
        self._log_index = None
        with contextlib.suppress(sqlite3.Error, OSError):
            index.discard()
        return UnavailableError(
            f"the event log's index {str(self.index_path)!r} is damaged ({exc}); it was "
            "removed, and reopening the store rebuilds it from the log, which is intact",
            port="EventStore",
        )

    def _rows(self, locate: Callable[[LogIndex], list[Locator]]) -> list[IndexedRow]:
        """The rows ``locate`` finds in the index, with their bodies; the caller holds the
        lock."""
        fd, index = self._opened()
        try:
            located = locate(index)
        except sqlite3.Error as exc:
            raise self._index_failed(index, exc) from exc
        return self._bodies(fd, located)

    def _rows_locked(self, locate: Callable[[LogIndex], list[Locator]]) -> list[IndexedRow]:
        with self._lock:
            return self._rows(locate)

    async def _fetch(self, locate: Callable[[LogIndex], list[Locator]]) -> list[RecordedEvent]:
        """Run a read on this thread when the store is idle (a read of the index and of the
        log's pages, which are usually cached), on a worker thread when an append holds the
        store (it may be waiting for the disk)."""
        if self._lock.acquire(blocking=False):
            try:
                rows = self._rows(locate)
            finally:
                self._lock.release()
        else:
            rows = await asyncio.to_thread(self._rows_locked, locate)
        return rows_to_events(rows)

    async def read(
        self,
        stream: str,
        from_version: int = 1,
        limit: int | None = None,
        direction: Direction = Direction.FORWARDS,
    ) -> list[RecordedEvent]:
        validate_stream(stream)
        validate_read_args(from_version, limit)
        backwards = Direction(direction) is Direction.BACKWARDS
        tenant = self._tenant()
        await self._ready()
        return await self._fetch(
            lambda index: index.read(tenant, stream, from_version, limit, backwards)
        )

    async def read_all(
        self, from_position: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        validate_position(from_position, limit)
        tenant = self._tenant()
        await self._ready()
        return await self._fetch(lambda index: index.read_all(tenant, from_position, limit))

    def _query_sync(self, tenant: str, query: EventQuery) -> list[RecordedEvent]:
        """Page through the index's candidates (type, stream, id and time filtered there),
        decoding one page at a time, until the query's limit is reached."""
        out: list[RecordedEvent] = []
        if query.limit == 0:
            return out
        low, high = query.from_position, query.before_position
        while True:
            with self._lock:
                fd, index = self._opened()
                try:
                    located = index.candidates(tenant, query, low, high, _QUERY_PAGE)
                except sqlite3.Error as exc:
                    raise self._index_failed(index, exc) from exc
                rows = self._bodies(fd, located)
            for event in rows_to_events(rows):
                if matches(event, query):
                    out.append(event)
                    if query.limit is not None and len(out) >= query.limit:
                        return out
            if len(located) < _QUERY_PAGE:
                return out
            if query.backwards:
                high = located[-1].position
            else:
                low = located[-1].position + 1

    async def query(self, query: EventQuery) -> list[RecordedEvent]:
        validate_query(query)
        tenant = self._tenant()
        await self._ready()
        return await asyncio.to_thread(self._query_sync, tenant, query)

    async def ping(self) -> None:
        if self._fd is None:
            raise UnavailableError("event log is not open", port="EventStore")

    async def aclose(self) -> None:
        """Stop subscriptions, commit and close the index, fsync and close the log (releasing
        its lock); idempotent."""
        await self._subscriptions.close_all()
        executor, self._executor = self._executor, None
        with self._lock:
            fd, self._fd = self._fd, None
            index, self._log_index = self._log_index, None
            self._records.clear()
        try:
            if index is not None:
                index.close()
        finally:
            try:
                close_log(fd, self.fsync)
            finally:
                if executor is not None:
                    executor.shutdown(wait=True)
