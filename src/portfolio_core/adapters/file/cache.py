"""Cache on the local file system: one file per item, atomic writes, survives restarts."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar, Self

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
from portfolio_core.ports.cache import CacheCapability, Codec
from portfolio_core.ports.capabilities import declare
from portfolio_core.ports.errors import InvalidInputError, UnavailableError

__all__ = ["FileCache", "FileCacheConfig"]

_SUFFIX = ".entry"


class FileCacheConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    directory: str
    namespace: str = "default"
    tenant_scoped: bool = False
    default_ttl: float | None = Field(default=None, gt=0)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class FileCache:
    """Items as files under ``directory/<namespace>/<tenant>/``, one per key.

    Each file holds a JSON header line (the key and its expiry) and the encoded value. Writes
    go to a temporary file in the same folder, are flushed to disk and renamed over the old
    file, so a reader (in any process of this machine) sees the old item or the new one,
    never a torn one. Expiry is wall-clock time by default (``clock=time.time``) so it
    survives restarts; expired files are ignored on read and removed by :meth:`sweep`.
    File I/O runs in a worker thread, never on the event loop.
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
    ) -> None:
        self.directory = Path(directory)
        self.namespace = check_namespace(namespace)
        self.tenant_scoped = tenant_scoped
        self.default_ttl = check_ttl(default_ttl)
        self._codec: Codec = codec if codec is not None else JsonCodec()
        self._clock = clock

    @classmethod
    def from_config(cls, config: FileCacheConfig) -> Self:
        return cls(
            config.directory,
            namespace=config.namespace,
            tenant_scoped=config.tenant_scoped,
            default_ttl=config.default_ttl,
        )

    def __repr__(self) -> str:
        return f"FileCache(directory={str(self.directory)!r}, namespace={self.namespace!r})"

    async def ping(self) -> None:
        """Raise :class:`UnavailableError` unless the namespace folder can be written."""

        def probe() -> None:
            folder = self.directory / self.namespace
            folder.mkdir(parents=True, exist_ok=True)
            if not os.access(folder, os.W_OK):
                raise UnavailableError(
                    f"the cache folder of namespace {self.namespace!r} is read-only"
                )

        await self._io(probe)

    # -- layout ------------------------------------------------------------------------------

    def _folder(self, tenant: str | None) -> Path:
        part = "_" if tenant is None else "t" + _digest(tenant)[:32]
        return self.directory / self.namespace / part

    def _path(self, folder: Path, key: str) -> Path:
        return folder / (_digest(key) + _SUFFIX)

    def _ttl(self, ttl: float | None) -> float | None:
        ttl = tenant_ttl(check_ttl(ttl), self.tenant_scoped)
        return ttl if ttl is not None else self.default_ttl

    # -- blocking helpers (run in a worker thread) ------------------------------------------

    def _read(self, path: Path, key: str | None, now: float) -> tuple[str, bytes] | None:
        """(key, payload) of a live item file, or None. Corrupt or expired files count as misses."""
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise UnavailableError(f"cannot read cache file: {exc.strerror}") from exc
        head, sep, payload = data.partition(b"\n")
        if not sep:
            return None
        try:
            meta = json.loads(head)
        except ValueError:
            return None
        if key is not None and meta.get("k") != key:
            return None
        expires = meta.get("e")
        if expires is not None and expires <= now:
            return None
        return str(meta.get("k")), payload

    def _write(self, folder: Path, key: str, blob: bytes, expires: float | None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        head = json.dumps({"k": key, "e": expires}, ensure_ascii=False).encode()
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-", suffix=".part")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(head + b"\n" + blob)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self._path(folder, key))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _entries(self, folder: Path) -> Iterator[Path]:
        try:
            yield from (p for p in folder.iterdir() if p.name.endswith(_SUFFIX))
        except FileNotFoundError:
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
            live = self._read(path, key, now) is not None
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
        """Remove every expired item file of the namespace (all tenants); returns how many."""
        base = self.directory / self.namespace
        now = self._clock()

        def work() -> int:
            removed = 0
            if not base.exists():
                return 0
            for folder in base.iterdir():
                for path in self._entries(folder):
                    if self._read(path, None, now) is None and self._unlink(path):
                        removed += 1
            return removed

        result: int = await self._io(work)
        return result
