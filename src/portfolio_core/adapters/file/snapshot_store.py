"""SnapshotStore in a directory: one file per stream, replaced atomically.

Each snapshot is written to a temporary file, flushed to disk and renamed over the stream's
file (named by the SHA-256 of the stream name), so a crash leaves the old snapshot or the
new one, never half of one. Saves of one directory are serialised by an exclusive
``flock`` on its lock file, so several processes on the machine may share it and the
higher version always wins.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from portfolio_core.adapters._shared.configurable import Configurable
from portfolio_core.adapters._shared.snapshots import (
    DEFAULT_MAX_SNAPSHOT_BYTES,
    PORT,
    decode_snapshot,
    encode_snapshot,
    validate_stream,
)
from portfolio_core.ports.capabilities import declare
from portfolio_core.ports.errors import CorruptDataError, UnavailableError
from portfolio_core.ports.snapshot_store import Snapshot, SnapshotStoreCapability

__all__ = ["FileSnapshotStore", "FileSnapshotStoreConfig"]


class FileSnapshotStoreConfig(BaseModel):
    """Configuration of `FileSnapshotStore` (``file`` in a manifest)."""

    model_config = ConfigDict(extra="forbid")

    path: str
    fsync: bool = True
    max_snapshot_bytes: int = Field(DEFAULT_MAX_SNAPSHOT_BYTES, gt=0)


class FileSnapshotStore(Configurable):
    """Snapshots as files in the directory ``path`` (created if missing).

    ``fsync=False`` skips flushing to disk (faster; a power cut may lose the latest
    snapshots, which only costs a longer replay).
    """

    config_model: ClassVar[type[BaseModel]] = FileSnapshotStoreConfig
    capabilities = declare(SnapshotStoreCapability.PERSISTENT, SnapshotStoreCapability.SHARED)

    def __init__(
        self,
        path: str | Path,
        *,
        fsync: bool = True,
        max_snapshot_bytes: int = DEFAULT_MAX_SNAPSHOT_BYTES,
    ) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.max_snapshot_bytes = max_snapshot_bytes
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"FileSnapshotStore(path={str(self.path)!r})"

    def _file(self, stream: str) -> Path:
        return self.path / (hashlib.sha256(stream.encode()).hexdigest() + ".json")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock:
            self.path.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX)
                yield
            finally:
                os.close(fd)

    def _read(self, stream: str) -> Snapshot | None:
        file = self._file(stream)
        try:
            body = file.read_bytes()
        except FileNotFoundError:
            return None
        return decode_snapshot(stream, body, str(file))

    def _save(self, stream: str, version: int, body: str) -> bool:
        with self._locked():
            try:
                stored = self._read(stream)
            except CorruptDataError:
                stored = None  # a snapshot is a cache: a damaged one is replaced
            if stored is not None and stored.version > version:
                return False
            file = self._file(stream)
            temp = file.with_suffix(f".{os.getpid()}.tmp")
            with open(temp, "wb") as out:
                out.write(body.encode())
                if self.fsync:
                    out.flush()
                    os.fsync(out.fileno())
            os.replace(temp, file)
            if self.fsync:
                dir_fd = os.open(self.path, os.O_RDONLY)
                try:
                    os.fsync(dir_fd)
                finally:
                    os.close(dir_fd)
            return True

    def _delete(self, stream: str) -> None:
        with self._locked():
            self._file(stream).unlink(missing_ok=True)

    async def save(self, snapshot: Snapshot) -> bool:
        encoded = encode_snapshot(snapshot, self.max_snapshot_bytes)
        try:
            return await asyncio.to_thread(self._save, *encoded)
        except OSError as exc:
            raise UnavailableError(f"cannot write the snapshot: {exc}", port=PORT) from exc

    async def load(self, stream: str) -> Snapshot | None:
        validate_stream(stream)
        try:
            return await asyncio.to_thread(self._read, stream)
        except OSError as exc:
            raise UnavailableError(f"cannot read the snapshot: {exc}", port=PORT) from exc

    async def delete(self, stream: str) -> None:
        validate_stream(stream)
        try:
            await asyncio.to_thread(self._delete, stream)
        except OSError as exc:
            raise UnavailableError(f"cannot delete the snapshot: {exc}", port=PORT) from exc
