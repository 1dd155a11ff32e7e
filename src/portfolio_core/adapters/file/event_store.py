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

The in-memory index (streams, ids, positions, and the encoded events themselves) is rebuilt
from the log, so reads never touch the disk. An append is acknowledged after the record is
written and, with ``fsync="always"`` (the default), flushed to stable storage.

The file is locked (``flock``) while open: a second process gets UnavailableError.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import struct
import threading
import time
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from portfolio_core.adapters._shared.event_store.index import (
    EventIndex,
    IndexedRow,
    query_rows,
    row_to_event,
)
from portfolio_core.adapters._shared.event_store.subscriptions import (
    SubscriptionSet,
    Wakeup,
)
from portfolio_core.adapters._shared.event_store.validation import (
    DEFAULT_MAX_EVENT_BYTES,
    EncodedEvent,
    encode_batch,
    validate_expected,
    validate_position,
    validate_query,
    validate_read_args,
    validate_stream,
    validate_subscribe,
)
from portfolio_core.ports.capabilities import declare
from portfolio_core.ports.errors import CorruptDataError, UnavailableError
from portfolio_core.ports.event_store import (
    AppendResult,
    Direction,
    EventHandler,
    EventQuery,
    EventStoreCapability,
    ExpectedVersion,
    NewEvent,
    OnHandlerError,
    RecordedEvent,
    StreamState,
    Subscription,
)
from portfolio_core.ports.tenant import require_tenant

__all__ = ["FileEventStore", "FileEventStoreConfig"]

MAGIC = b"PCEVLOG1"
HEADER = struct.Struct("<II")
FsyncPolicy = Literal["always", "interval", "never"]


class FileEventStoreConfig(BaseModel):
    """Configuration of `FileEventStore` (``file`` in a manifest)."""

    model_config = ConfigDict(extra="forbid")

    path: str
    fsync: FsyncPolicy = "always"
    fsync_interval: float = Field(1.0, gt=0)
    tenant_scoped: bool = False
    max_event_bytes: int = Field(DEFAULT_MAX_EVENT_BYTES, gt=0)
    subscription_batch: int = Field(256, gt=0)
    poll_interval: float = Field(1.0, gt=0)


def _encode_record(tenant: str, rows: Sequence[IndexedRow]) -> bytes:
    first = rows[0]
    payload = json.dumps(
        {
            "t": tenant,
            "s": first.stream,
            "v": first.version,
            "p": first.position,
            "at": first.recorded_at,
            "e": [
                [
                    r.event.id,
                    r.event.type,
                    r.event.data,
                    r.event.metadata,
                    r.event.correlation_id,
                    r.event.causation_id,
                ]
                for r in rows
            ],
        },
        ensure_ascii=False,
        separators=(",", ":"),
    ).encode()
    return HEADER.pack(len(payload), zlib.crc32(payload)) + payload


def _decode_record(payload: bytes) -> tuple[str, list[IndexedRow]]:
    rec: dict[str, Any] = json.loads(payload)
    stream, version, position, at = rec["s"], rec["v"], rec["p"], rec["at"]
    rows = [
        IndexedRow(EncodedEvent(*e), stream, version + k, position + k, at)
        for k, e in enumerate(rec["e"])
    ]
    if not rows:
        raise ValueError("a record holds no event")
    return rec["t"], rows


# Every payload starts with this (json.dumps keeps the dict's order): a cheap filter when
# looking for the next intact record after a damaged one.
_PAYLOAD_START = b'{"t":'
_DECODE_ERRORS = (ValueError, KeyError, TypeError, IndexError)


def _record_at(data: bytes, offset: int) -> tuple[str, list[IndexedRow], int] | None:
    """``(tenant, rows, end)`` of the whole, checksummed, decodable record at ``offset``."""
    if offset + HEADER.size > len(data):
        return None
    length, crc = HEADER.unpack_from(data, offset)
    start = offset + HEADER.size
    if length == 0 or start + length > len(data):
        return None
    payload = data[start : start + length]
    if zlib.crc32(payload) != crc:
        return None
    try:
        tenant, rows = _decode_record(payload)
    except _DECODE_ERRORS:
        return None
    return tenant, rows, start + length


def _next_record(data: bytes, after: int) -> int | None:
    """Offset of the first intact record starting after ``after``, if any."""
    probe = after + HEADER.size
    while True:
        found = data.find(_PAYLOAD_START, probe)
        if found < 0:
            return None
        offset = found - HEADER.size
        if offset > after and _record_at(data, offset) is not None:
            return offset
        probe = found + 1


def _is_torn_tail(data: bytes, offset: int) -> bool:
    """Whether the bytes from ``offset`` (where the first bad record starts) are the trace of
    an interrupted write, which was never acknowledged: no intact record follows, and the
    tail is shorter than a header, or a header announcing more bytes than the file has
    (unless those bytes are the whole record with a damaged length field), or all zeros
    (space the file system allocated but never wrote)."""
    if _next_record(data, offset) is not None:
        return False
    end = len(data)
    if offset + HEADER.size > end:
        return True
    length, crc = HEADER.unpack_from(data, offset)
    start = offset + HEADER.size
    if start + length > end:
        return bool(zlib.crc32(data[start:]) != crc)
    return not data[offset:].strip(b"\x00")


class FileEventStore:
    """Durable single-process event store in an append-only, checksummed log file.

    ``fsync``: ``always`` flushes every append to disk before acknowledging it (survives
    power loss); ``interval`` at most every ``fsync_interval`` seconds; ``never`` leaves it to
    the OS (survives a process crash, not a power loss). Appends run on one worker thread, so
    the event loop never waits for the disk.
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
    ) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.fsync_interval = fsync_interval
        self.tenant_scoped = tenant_scoped
        self.max_event_bytes = max_event_bytes
        self._lock = threading.Lock()
        self._index = EventIndex()
        self._wakeup = Wakeup()
        self._subscriptions = SubscriptionSet(
            self._wakeup, poll_interval=poll_interval, batch_size=subscription_batch
        )
        self._fd: int | None = None
        self._size = 0
        self._last_sync = 0.0
        self._executor: ThreadPoolExecutor | None = None
        self.recovered_bytes = 0
        """Bytes of torn tail (an interrupted, unacknowledged write) cut when last opened."""

    @classmethod
    def from_config(cls, config: FileEventStoreConfig) -> Self:
        return cls(**config.model_dump())

    def __repr__(self) -> str:
        return f"FileEventStore(path={str(self.path)!r}, fsync={self.fsync!r})"

    # -- opening and recovery ------------------------------------------------------------

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UnavailableError(
                    f"event log {str(self.path)!r} is open in another process", port="EventStore"
                ) from None
            with os.fdopen(os.dup(fd), "rb") as f:
                data = f.read()
            if not data:
                os.write(fd, MAGIC)
                os.fsync(fd)
                data = MAGIC
            elif not data.startswith(MAGIC):
                if len(data) < len(MAGIC) and MAGIC.startswith(data):
                    os.ftruncate(fd, 0)
                    os.write(fd, MAGIC)
                    os.fsync(fd)
                    data = MAGIC
                elif _next_record(data, 0) is not None:
                    raise CorruptDataError(
                        f"event log {str(self.path)!r} is damaged: its header (byte offset 0) "
                        "is not the event log's. The file was left unchanged; "
                        f"'portfolio-core recover {self.path}' writes a new log with every "
                        "record it can verify",
                        location=str(self.path),
                        offset=0,
                        record=0,
                        port="EventStore",
                    )
                else:
                    raise UnavailableError(
                        f"{str(self.path)!r} is not an event log", port="EventStore"
                    )
            good = self._replay(data)
            if good < len(data):
                self.recovered_bytes = len(data) - good
                os.ftruncate(fd, good)
                os.fsync(fd)
            self._size = good
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def _replay(self, data: bytes) -> int:
        """Index every record; return where the log ends once a torn tail is cut off.

        Raises CorruptDataError (leaving the file and the index untouched) for any damage
        other than a torn tail."""
        index = EventIndex()
        offset = len(MAGIC)
        ordinal = 0
        end = len(data)
        problem = ""
        while offset < end:
            ordinal += 1
            found = _record_at(data, offset)
            if found is None:
                if _is_torn_tail(data, offset):
                    break
                problem = "fails its checksum or cannot be decoded"
            else:
                tenant, rows, after = found
                try:
                    index.add(tenant, rows)
                except ValueError as exc:
                    problem = f"does not continue the log ({exc})"
                else:
                    offset = after
                    continue
            raise CorruptDataError(
                f"event log {str(self.path)!r} is damaged: record {ordinal} at byte offset "
                f"{offset} {problem}. The file was left unchanged; "
                f"'portfolio-core recover {self.path}' writes a new log with every record "
                "it can verify",
                location=str(self.path),
                offset=offset,
                record=ordinal,
                port="EventStore",
            )
        self._index = index
        return offset

    async def start(self) -> None:
        """Open (or create) the log, cut a torn tail, rebuild the index; idempotent.

        Raises CorruptDataError when the log is damaged anywhere but in a torn tail (the
        file is left unchanged), UnavailableError when it cannot be opened or locked."""
        if self._executor is not None:
            return
        executor = ThreadPoolExecutor(1, thread_name_prefix="pc-file-events")
        try:
            await asyncio.get_running_loop().run_in_executor(executor, self._open)
        except OSError as exc:
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
            planned = self._index.plan(tenant, stream, batch, expected)
            if isinstance(planned, tuple):
                return AppendResult(stream, planned[0], planned[1])
            record = _encode_record(tenant, planned)
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
            except OSError as exc:
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, self._size)
                raise UnavailableError(f"event log write failed: {exc}", port="EventStore") from exc
            self._size += len(record)
            self._index.add(tenant, planned)
        return AppendResult(stream, planned[-1].version, tuple(r.position for r in planned))

    def _tenant(self) -> str:
        return require_tenant().tenant_id if self.tenant_scoped else ""

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

    # -- reading (from the index, never the disk) ------------------------------------------

    async def _ready(self) -> None:
        if self._executor is None:
            await self.start()

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
        with self._lock:
            rows = self._index.read(tenant, stream, from_version, limit, backwards)
        return [row_to_event(r) for r in rows]

    async def read_all(
        self, from_position: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        validate_position(from_position, limit)
        tenant = self._tenant()
        await self._ready()
        with self._lock:
            rows = self._index.read_all(tenant, from_position, limit)
        return [row_to_event(r) for r in rows]

    async def query(self, query: EventQuery) -> list[RecordedEvent]:
        validate_query(query)
        tenant = self._tenant()
        await self._ready()
        with self._lock:
            rows = self._index.read_all(tenant, query.from_position, None)
        return query_rows(rows, query)

    async def subscribe(
        self,
        handler: EventHandler,
        *,
        stream: str | None = None,
        from_position: int = 1,
        filter: EventQuery | None = None,
        on_error: OnHandlerError = OnHandlerError.STOP,
    ) -> Subscription:
        validate_subscribe(stream, filter, from_position)
        self._tenant()
        return self._subscriptions.open(
            self.query,
            handler,
            stream=stream,
            from_position=from_position,
            filter=filter,
            on_error=on_error,
        )

    async def unsubscribe(self, subscription: Subscription) -> None:
        await self._subscriptions.close(subscription)

    async def ping(self) -> None:
        if self._fd is None:
            raise UnavailableError("event log is not open", port="EventStore")

    async def aclose(self) -> None:
        """Stop subscriptions, fsync and close the log (releasing its lock); idempotent."""
        await self._subscriptions.close_all()
        executor, self._executor = self._executor, None
        with self._lock:
            fd, self._fd = self._fd, None
        if fd is not None:
            try:
                if self.fsync != "never":
                    os.fsync(fd)
            finally:
                os.close(fd)
        if executor is not None:
            executor.shutdown(wait=True)
