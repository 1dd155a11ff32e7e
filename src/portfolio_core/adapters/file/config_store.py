"""ConfigStore in one append-only log file, for a single process on one machine.

Log format: an 8-byte magic header, then one record per version::

    u32 little-endian payload length | u32 CRC-32 of the payload | payload (UTF-8 JSON)

(the framing the event log uses too). A version is one record written with one ``write``
call, so a batch is stored whole or not at all. On open the log is scanned and every
record's length, checksum and version number verified, by the event log's rule:

* a *torn tail* -- an incomplete last record, the trace of a crash in the middle of a write
  that was therefore never acknowledged -- is truncated away (``recovered_bytes`` says how
  much);
* any other damage (a bad checksum in the middle or in a complete last record, a record
  whose version does not follow the one before) is never "repaired" by deleting data:
  opening raises [CorruptDataError][portfolio_core.ports.CorruptDataError] naming the byte offset
  and
  the ordinal of the first damaged record, and the file is left exactly as it was.
  ``portfolio-core recover PATH`` (see
  `portfolio_core.adapters.file.recovery.salvage_config_log`) then writes a new log
  with every record it can verify.

Every version is kept in memory too, so reads never touch the disk. An apply is
acknowledged after its record is written and, with ``fsync="always"`` (the default),
flushed to stable storage. The file is locked (``flock``) while open: a second process gets
UnavailableError.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from portfolio_core.adapters._shared.config_store import (
    DEFAULT_MAX_VALUE_BYTES,
    ConfigLog,
    Draft,
    LogConfigStore,
    StoredSet,
    decode_set,
    encode_set,
)
from portfolio_core.adapters._shared.configurable import Configurable
from portfolio_core.adapters.file._framing import RecordFormat, close_log, frame
from portfolio_core.ports.capabilities import declare
from portfolio_core.ports.config_store import ConfigStoreCapability
from portfolio_core.ports.errors import CorruptDataError, UnavailableError

__all__ = ["FileConfigStore", "FileConfigStoreConfig"]

PORT = "ConfigStore"
MAGIC = b"PCCFGLG1"
#: every payload starts with this (encode_set keeps its keys in order): a cheap filter when
#: looking for the next intact record after a damaged one
PAYLOAD_START = b'{"v":'
FsyncPolicy = Literal["always", "interval", "never"]


class FileConfigStoreConfig(BaseModel):
    """Configuration of `FileConfigStore` (``file`` in a manifest)."""

    model_config = ConfigDict(extra="forbid")

    path: str
    fsync: FsyncPolicy = "always"
    fsync_interval: float = Field(1.0, gt=0)
    schemas: dict[str, str] = Field(default_factory=dict)
    max_value_bytes: int = Field(DEFAULT_MAX_VALUE_BYTES, gt=0)


def encode_record(stored: StoredSet) -> bytes:
    """One framed, checksummed record of ``stored``."""
    return frame(encode_set(stored).encode())


_FORMAT = RecordFormat(PAYLOAD_START, decode_set)
#: ``(version, end)`` of the whole, checksummed, decodable record at an offset, or None
record_at = _FORMAT.record_at
#: offset of the first intact record after an offset, or None
next_record = _FORMAT.next_record
#: whether the bytes from an offset are a torn tail (see `RecordFormat.is_torn_tail`)
is_torn_tail = _FORMAT.is_torn_tail


class FileConfigStore(LogConfigStore, Configurable):
    """Durable single-process config store in an append-only, checksummed log file.

    ``fsync``: ``always`` flushes every version to disk before acknowledging it (survives
    power loss); ``interval`` at most every ``fsync_interval`` seconds; ``never`` leaves it
    to the OS (survives a process crash, not a power loss). Writes run on one worker thread,
    so the event loop never waits for the disk. ``wall_clock`` (``time.time`` by default)
    times each version, held at the latest version's time when it steps back.
    """

    config_model: ClassVar[type[BaseModel]] = FileConfigStoreConfig
    capabilities = declare(ConfigStoreCapability.PERSISTENT, ConfigStoreCapability.SCHEMAS)

    def __init__(
        self,
        path: str | Path,
        *,
        fsync: FsyncPolicy = "always",
        fsync_interval: float = 1.0,
        schemas: Mapping[str, object] | None = None,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(schemas=schemas, max_value_bytes=max_value_bytes)
        self._wall_clock = wall_clock
        self.path = Path(path)
        self.fsync = fsync
        self.fsync_interval = fsync_interval
        self._fd: int | None = None
        self._size = 0
        self._last_sync = 0.0
        self._executor: ThreadPoolExecutor | None = None
        self._start_lock = asyncio.Lock()
        self.recovered_bytes = 0
        """Bytes of torn tail (an interrupted, unacknowledged write) cut when last opened."""

    def __repr__(self) -> str:
        return f"FileConfigStore(path={str(self.path)!r}, fsync={self.fsync!r})"

    # -- opening and recovery --------------------------------------------------------------

    def _damaged(self, offset: int, ordinal: int, problem: str) -> CorruptDataError:
        return CorruptDataError(
            f"config log {str(self.path)!r} is damaged: record {ordinal} at byte offset "
            f"{offset} {problem}. The file was left unchanged; 'portfolio-core recover "
            f"{self.path}' writes a new log with every record it can verify",
            location=str(self.path),
            offset=offset,
            record=ordinal,
            port=PORT,
        )

    def _open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise UnavailableError(
                    f"config log {str(self.path)!r} is open in another process", port=PORT
                ) from None
            with os.fdopen(os.dup(fd), "rb") as f:
                data = f.read()
            if len(data) < len(MAGIC) and MAGIC.startswith(data):
                os.ftruncate(fd, 0)  # empty, or a torn header: nothing was ever acknowledged
                os.write(fd, MAGIC)
                os.fsync(fd)
                data = MAGIC
            elif not data.startswith(MAGIC):
                if next_record(data, -1) is not None:
                    raise self._damaged(0, 0, "is not the config log's header")
                raise UnavailableError(f"{str(self.path)!r} is not a config log", port=PORT)
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
        """Index every record; return where the log ends once a torn tail is cut off."""
        log = ConfigLog()
        offset = len(MAGIC)
        ordinal = 0
        while offset < len(data):
            ordinal += 1
            found = record_at(data, offset)
            if found is None:
                if is_torn_tail(data, offset):
                    break
                raise self._damaged(offset, ordinal, "fails its checksum or cannot be decoded")
            stored, after = found
            try:
                log.add(stored)
            except ValueError as exc:
                raise self._damaged(offset, ordinal, f"does not continue the log ({exc})") from None
            offset = after
        self._log = log
        return offset

    async def _ready(self) -> None:
        if self._executor is None:
            await self.start()

    async def start(self) -> None:
        """Open (or create) the log, cut a torn tail, load every version; idempotent.

        Raises CorruptDataError when the log is damaged anywhere but in a torn tail (the
        file is left unchanged), UnavailableError when it cannot be opened or locked."""
        async with self._start_lock:
            if self._executor is not None:
                return
            self._check_open()
            executor = ThreadPoolExecutor(1, thread_name_prefix="pc-file-config")
            try:
                await asyncio.get_running_loop().run_in_executor(executor, self._open)
            except OSError as exc:
                executor.shutdown(wait=False)
                raise UnavailableError(f"cannot open config log: {exc}", port=PORT) from exc
            except BaseException:
                executor.shutdown(wait=False)
                raise
            self._executor = executor

    # -- writing ----------------------------------------------------------------------------

    def _write(self, draft: Draft) -> int:
        with self._lock:
            fd = self._fd
            if fd is None:
                raise UnavailableError("config store is closed", port=PORT)
            stored = self._log.following(draft, now=int(self._wall_clock() * 1_000_000))
            record = encode_record(stored)
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
                raise UnavailableError(f"config log write failed: {exc}", port=PORT) from exc
            self._size += len(record)
            self._log.add(stored)
        self._notifier.notify()
        return stored.version

    async def _commit(self, draft: Draft) -> int:
        executor = self._executor
        if executor is None:
            raise UnavailableError("config store is closed", port=PORT)
        return await asyncio.get_running_loop().run_in_executor(executor, self._write, draft)

    async def ping(self) -> None:
        if self._fd is None:
            raise UnavailableError("config log is not open", port=PORT)

    async def _close(self) -> None:
        executor, self._executor = self._executor, None
        with self._lock:
            fd, self._fd = self._fd, None
        try:
            close_log(fd, self.fsync)
        finally:
            if executor is not None:
                executor.shutdown(wait=True)
