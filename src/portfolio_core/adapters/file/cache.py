"""Cache on the local file system: one file per item, atomic writes, survives restarts.

An entry file is a line ``PCCACHE1 <crc32 of the rest, 8 hex digits>``, a JSON header line
(the key and its expiry) and the encoded value. A file that fails that checksum raises
[CorruptDataError][portfolio_core.ports.CorruptDataError] naming it -- never a miss, never deleted
--
until ``portfolio-core recover DIRECTORY`` moves it aside. Files written before checksums
(starting with ``{``) are still read, unverified.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import tempfile
import time
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field

from portfolio_core.adapters._shared.cache_keys import (
    check_items,
    check_key,
    check_namespace,
    check_ttl,
    scope,
    tenant_ttl,
)
from portfolio_core.adapters._shared.codec import JsonCodec
from portfolio_core.adapters._shared.configurable import Configurable
from portfolio_core.adapters._shared.names import file_name
from portfolio_core.ports.cache import CacheCapability, Codec
from portfolio_core.ports.capabilities import declare
from portfolio_core.ports.errors import CorruptDataError, InvalidInputError, UnavailableError

__all__ = ["DAMAGED_FOLDER", "FileCache", "FileCacheConfig", "entry_status"]

_SUFFIX = ".entry"
_MAGIC = b"PCCACHE1 "
_TMP_PREFIX = ".tmp-"
_TMP_SUFFIX = ".part"
DAMAGED_FOLDER = ".damaged"
"""Where ``portfolio-core recover`` moves damaged entries (beside them; never read)."""


def _is_entry_name(name: str) -> bool:
    stem = name[: -len(_SUFFIX)]
    return name.endswith(_SUFFIX) and len(stem) == 64 and all(c in "0123456789abcdef" for c in stem)


def _pack(head: bytes, blob: bytes) -> bytes:
    body = head + b"\n" + blob
    return _MAGIC + b"%08x\n" % zlib.crc32(body) + body


def _unpack(data: bytes) -> tuple[dict[str, Any], bytes] | None:
    """``(header, payload)`` of an entry file's bytes, ``None`` if they fail verification."""
    if data.startswith(_MAGIC):
        line_end = len(_MAGIC) + 8
        if data[line_end : line_end + 1] != b"\n":
            return None
        try:
            crc = int(data[len(_MAGIC) : line_end], 16)
        except ValueError:
            return None
        body = data[line_end + 1 :]
        if zlib.crc32(body) != crc:
            return None
    elif data.startswith(b"{"):  # written before checksums: readable, not verifiable
        body = data
    else:
        return None
    head, sep, payload = body.partition(b"\n")
    if not sep:
        return None
    try:
        meta = json.loads(head)
    except ValueError:
        return None
    if not isinstance(meta, dict) or not isinstance(meta.get("k"), str):
        return None
    expires = meta.get("e")
    if expires is not None and (isinstance(expires, bool) or not isinstance(expires, int | float)):
        return None
    return meta, payload


def entry_status(path: Path) -> str | None:
    """``"ok"`` or ``"damaged"`` for a cache entry file, ``None`` for any other file."""
    if not _is_entry_name(path.name) or not path.is_file():
        return None
    return "ok" if _unpack(path.read_bytes()) is not None else "damaged"


class FileCacheConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    directory: str
    namespace: str = "default"
    tenant_scoped: bool = False
    default_ttl: float | None = Field(default=None, gt=0)
    stale_write_after: float = Field(default=3600.0, gt=0)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class FileCache(Configurable):
    """Items as files under ``directory/<namespace>/<tenant>/``, one per key.

    The namespace folder's name is the namespace through the injective, case-safe encoding
    every file adapter shares (``default`` stays ``default``; ``My.ns`` becomes
    ``%4Dy%2Ens``), the tenant's is a digest of its id, an entry's a digest of its key. Each
    file holds a checksum line, a JSON header line (the key and its expiry) and the encoded
    value (see the module docstring for damaged files). Writes
    go to a temporary file in the same folder, are flushed to disk and renamed over the old
    file, so a reader (in any process of this machine) sees the old item or the new one,
    never a torn one. Expiry is wall-clock time by default (``clock=time.time``) so it
    survives restarts; expired files are ignored on read and removed by `sweep`,
    as are temporary files of writes interrupted more than ``stale_write_after`` seconds
    ago. Files the cache did not write are ignored. File I/O runs in a worker thread, never
    on the event loop.
    """

    capabilities: ClassVar[frozenset[str]] = declare(
        CacheCapability.TTL,
        CacheCapability.PERSISTENT,
        CacheCapability.ENUMERATE,
        CacheCapability.TENANT_SCOPED,
    )
    config_model: ClassVar[type[BaseModel]] = FileCacheConfig

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        namespace: str = "default",
        tenant_scoped: bool = False,
        default_ttl: float | None = None,
        codec: Codec | None = None,
        clock: Callable[[], float] = time.time,
        stale_write_after: float = 3600.0,
    ) -> None:
        self.directory = Path(directory)
        self.namespace = check_namespace(namespace)
        self._base = self.directory / file_name(self.namespace, what="namespace")
        self.stale_write_after = stale_write_after
        self.tenant_scoped = tenant_scoped
        self.default_ttl = check_ttl(default_ttl)
        self._codec: Codec = codec if codec is not None else JsonCodec()
        self._clock = clock

    def __repr__(self) -> str:
        return f"FileCache(directory={str(self.directory)!r}, namespace={self.namespace!r})"

    async def ping(self) -> None:
        """Raise `UnavailableError` unless the namespace folder can be written."""

        def probe() -> None:
            folder = self._base
            folder.mkdir(parents=True, exist_ok=True)
            if not os.access(folder, os.W_OK):
                raise UnavailableError(
                    f"the cache folder of namespace {self.namespace!r} is read-only"
                )

        await self._io(probe)

    # -- layout ------------------------------------------------------------------------------

    def _folder(self, tenant: str | None) -> Path:
        part = "_" if tenant is None else "t" + _digest(tenant)[:32]
        return self._base / part

    def _path(self, folder: Path, key: str) -> Path:
        return folder / (_digest(key) + _SUFFIX)

    def _ttl(self, ttl: float | None) -> float | None:
        ttl = tenant_ttl(check_ttl(ttl), self.tenant_scoped)
        return ttl if ttl is not None else self.default_ttl

    # -- blocking helpers (run in a worker thread) ------------------------------------------

    def _read(self, path: Path, key: str | None, now: float) -> tuple[str, bytes] | None:
        """(key, payload) of a live item file, or None when missing or expired.

        Raises CorruptDataError for a file that fails verification."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UnavailableError(f"cannot read cache file: {exc.strerror}") from exc
        found = _unpack(data)
        if found is None:
            raise CorruptDataError(
                f"cache entry {str(path)!r} is damaged (it fails its checksum); it was left "
                f"in place: 'portfolio-core recover {self.directory}' moves damaged entries "
                "aside",
                location=str(path),
                port="Cache",
            )
        meta, payload = found
        if key is not None and meta["k"] != key:
            return None
        expires = meta.get("e")
        if expires is not None and expires <= now:
            return None
        return str(meta["k"]), payload

    def _write(self, folder: Path, key: str, blob: bytes, expires: float | None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        head = json.dumps({"k": key, "e": expires}, ensure_ascii=False).encode()
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=_TMP_PREFIX, suffix=_TMP_SUFFIX)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(_pack(head, blob))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self._path(folder, key))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _entries(self, folder: Path) -> Iterator[Path]:
        try:
            yield from (p for p in folder.iterdir() if _is_entry_name(p.name))
        except (FileNotFoundError, NotADirectoryError):
            return

    @staticmethod
    def _unlink(path: Path) -> bool:
        try:
            path.unlink()
        except FileNotFoundError:
            return False
        return True

    async def _io(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args)
        except OSError as exc:
            raise UnavailableError(f"file cache I/O failed: {exc.strerror or exc}") from exc

    # -- the port ----------------------------------------------------------------------------

    async def get(self, key: str) -> Any | None:
        folder = self._folder(scope(self.tenant_scoped))
        key = check_key(key)
        found = await self._io(self._read, self._path(folder, key), key, self._clock())
        return None if found is None else self._codec.decode(found[1])

    async def put(self, key: str, value: Any, ttl: float | None = None) -> None:
        folder = self._folder(scope(self.tenant_scoped))
        key = check_key(key)
        ttl = self._ttl(ttl)
        blob = self._codec.encode(value)
        expires = None if ttl is None else self._clock() + ttl
        await self._io(self._write, folder, key, blob, expires)

    async def delete(self, key: str) -> bool:
        folder = self._folder(scope(self.tenant_scoped))
        key = check_key(key)
        path = self._path(folder, key)
        now = self._clock()

        def work() -> bool:
            try:
                live = self._read(path, key, now) is not None
            except CorruptDataError:
                live = True  # deleting the key is what the caller asked: damaged or not
            return self._unlink(path) and live

        result: bool = await self._io(work)
        return result

    async def clear(self) -> None:
        folder = self._folder(scope(self.tenant_scoped))

        def work() -> None:
            for path in self._entries(folder):
                self._unlink(path)

        await self._io(work)

    async def exists(self, key: str) -> bool:
        folder = self._folder(scope(self.tenant_scoped))
        key = check_key(key)
        found = await self._io(self._read, self._path(folder, key), key, self._clock())
        return found is not None

    async def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        folder = self._folder(scope(self.tenant_scoped))
        if isinstance(keys, str):
            raise InvalidInputError("get_many takes a sequence of keys, not a str", field="keys")
        wanted = [check_key(k) for k in keys]
        now = self._clock()

        def work() -> dict[str, bytes]:
            out: dict[str, bytes] = {}
            for key in wanted:
                found = self._read(self._path(folder, key), key, now)
                if found is not None:
                    out[key] = found[1]
            return out

        raw: dict[str, bytes] = await self._io(work)
        return {k: self._codec.decode(v) for k, v in raw.items()}

    async def put_many(self, items: Mapping[str, Any], ttl: float | None = None) -> None:
        folder = self._folder(scope(self.tenant_scoped))
        check_items(items)
        ttl = self._ttl(ttl)
        blobs = {key: self._codec.encode(value) for key, value in items.items()}
        expires = None if ttl is None else self._clock() + ttl

        def work() -> None:
            for key, blob in blobs.items():
                self._write(folder, key, blob, expires)

        await self._io(work)

    # -- optional parts ------------------------------------------------------------------------

    async def keys(self) -> list[str]:
        folder = self._folder(scope(self.tenant_scoped))
        now = self._clock()

        def work() -> list[str]:
            out = []
            for path in self._entries(folder):
                found = self._read(path, None, now)
                if found is not None:
                    out.append(found[0])
            return out

        result: list[str] = await self._io(work)
        return result

    async def count(self) -> int:
        return len(await self.keys())

    async def sweep(self) -> int:
        """Remove every expired item file of the namespace (all tenants) and every temporary
        file of a write interrupted more than ``stale_write_after`` seconds ago; returns how
        many files were removed. Damaged entries are left in place (see the module
        docstring) and files the cache did not write are ignored."""
        base = self._base
        now = self._clock()
        stale_before = time.time() - self.stale_write_after

        def work() -> int:
            removed = 0
            if not base.is_dir():
                return 0
            for folder in base.iterdir():
                if not folder.is_dir() or folder.name == DAMAGED_FOLDER:
                    continue
                for path in folder.iterdir():
                    name = path.name
                    if name.startswith(_TMP_PREFIX) and name.endswith(_TMP_SUFFIX):
                        with contextlib.suppress(FileNotFoundError):
                            if path.stat().st_mtime < stale_before and self._unlink(path):
                                removed += 1
                        continue
                    if not _is_entry_name(name):
                        continue
                    try:
                        live = self._read(path, None, now) is not None
                    except CorruptDataError:
                        continue
                    if not live and self._unlink(path):
                        removed += 1
            return removed

        result: int = await self._io(work)
        return result
