"""Deliberately broken variants of the memory ConfigStore, one bug each.

Each names in ``clause`` the contract clause its bug must break; tests/testing/
test_config_store_broken.py asserts the ConfigStore contract suite fails on that clause.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

from portfolio_core.adapters._shared.config_store import Draft, now_micros
from portfolio_core.adapters.memory.config_store import MemoryConfigStore
from portfolio_core.ports import ChangeSet, ConfigSnapshot, StaleVersionError

__all__ = ["VARIANTS", "MemoryConfigStore"]


class _Broken(MemoryConfigStore):
    clause: ClassVar[str] = ""


class StaleVersionIgnored(_Broken):
    clause = "config_store.apply.expected_version"

    async def apply(
        self,
        changes: Mapping[str, Any],
        *,
        expected_version: int | None = None,
        author: str = "",
        reason: str = "",
    ) -> int:
        return await super().apply(changes, author=author, reason=reason)


class VersionsJumpByTwo(_Broken):
    clause = "config_store.apply.versions"

    async def current_version(self) -> int:
        return 2 * await super().current_version()


class NonAtomicBatch(_Broken):
    """Applies the keys before the first invalid one, then refuses the batch."""

    clause = "config_store.apply.invalid"

    async def apply(
        self,
        changes: Mapping[str, Any],
        *,
        expected_version: int | None = None,
        author: str = "",
        reason: str = "",
    ) -> int:
        if isinstance(changes, Mapping) and "good" in changes and len(changes) > 1:
            await super().apply({"good": changes["good"]})
        return await super().apply(
            changes, expected_version=expected_version, author=author, reason=reason
        )


class CheckThenWrite(_Broken):
    """Checks the expected version, yields to the loop, then writes: two writers both win."""

    clause = "config_store.apply.concurrent"

    async def _commit(self, draft: Draft) -> int:
        if draft.expected is not None and draft.expected != self._log.version:
            raise StaleVersionError(draft.expected, self._log.version)
        await asyncio.sleep(0)
        return await super()._commit(draft._replace(expected=None))


class ReadsIgnoreVersion(_Broken):
    clause = "config_store.read.at_version"

    async def read(self, prefix: str = "", *, version: int | None = None) -> ConfigSnapshot:
        snap = await super().read(prefix)
        return ConfigSnapshot(snap.version if version is None else version, snap.values)


class PrefixLeaks(_Broken):
    clause = "config_store.read.prefix"

    async def read(self, prefix: str = "", *, version: int | None = None) -> ConfigSnapshot:
        return await super().read(prefix.rstrip("."), version=version)


class SharesStoredValues(_Broken):
    """Hands out one decoded object per key, so a caller's mutation shows in later reads."""

    clause = "config_store.read.snapshot"
    _given: ClassVar[dict[int, dict[str, Any]]] = {}

    async def get(self, key: str, *, version: int | None = None) -> Any:
        cache = self._given.setdefault(id(self), {})
        if key not in cache:
            cache[key] = await super().get(key, version=version)
        return cache[key]


class HistoryForgetsAuthor(_Broken):
    clause = "config_store.history"

    async def history(self, *, from_version: int = 1, limit: int | None = None) -> list[ChangeSet]:
        from dataclasses import replace

        got = await super().history(from_version=from_version, limit=limit)
        return [replace(c, author="") for c in got]


class RollbackOneTooFar(_Broken):
    clause = "config_store.rollback.restores"

    async def rollback(
        self,
        to_version: int,
        *,
        prefix: str = "",
        expected_version: int | None = None,
        author: str = "",
        reason: str = "",
    ) -> int:
        target = to_version + 1 if to_version + 1 <= self._log.version else to_version
        return await super().rollback(
            target, prefix=prefix, expected_version=expected_version, author=author, reason=reason
        )


class RollbackToFutureClamps(_Broken):
    clause = "config_store.rollback.unknown"

    async def rollback(
        self,
        to_version: int,
        *,
        prefix: str = "",
        expected_version: int | None = None,
        author: str = "",
        reason: str = "",
    ) -> int:
        if to_version > self._log.version:
            to_version = self._log.version
        return await super().rollback(
            to_version,
            prefix=prefix,
            expected_version=expected_version,
            author=author,
            reason=reason,
        )


class SchemaIgnored(_Broken):
    clause = "config_store.schema"

    def __init__(self, *, schemas: Mapping[str, object] | None = None, **kw: Any) -> None:
        super().__init__(**kw)


class WatchSkipsSecond(_Broken):
    """Drops every second change set a watcher would see."""

    clause = "config_store.watch.order"

    async def watch(
        self, prefix: str = "", *, from_version: int | None = None
    ) -> AsyncIterator[ChangeSet]:
        n = 0
        async for change_set in super().watch(prefix, from_version=from_version):
            n += 1
            if n % 2 == 0:
                continue
            yield change_set


class WatchResumesLate(_Broken):
    """Resumes one version after the one asked for."""

    clause = "config_store.watch.resume"

    async def watch(
        self, prefix: str = "", *, from_version: int | None = None
    ) -> AsyncIterator[ChangeSet]:
        start = None if from_version is None else min(from_version + 1, self._log.version)
        if from_version == 0:
            start = 0
        async for change_set in super().watch(prefix, from_version=start):
            yield change_set


class StaleTimestamps(_Broken):
    """Commits every version with the time of the first one... and mislabels rollbacks."""

    clause = "config_store.model"

    async def _commit(self, draft: Draft) -> int:
        if draft.rollback_of is not None and draft.changes:
            draft = draft._replace(changes=draft.changes[:-1] or draft.changes)  # loses a key
        with self._lock:
            log = self._log
            if draft.expected is not None and draft.expected != log.version:
                raise StaleVersionError(draft.expected, log.version)
            stored = draft.stored(log.version + 1, now_micros())
            log.add(stored)
        self._notifier.notify()
        return stored.version


class SnapshotSharesItsValues(_Broken):
    """Hands every reader of one version the same dict of values (a cache of snapshots)."""

    clause = "config_store.snapshots"

    def __init__(self, **kw: Any) -> None:
        super().__init__(**kw)
        self._snapshots: dict[tuple[str, int], dict[str, Any]] = {}

    async def read(self, prefix: str = "", *, version: int | None = None) -> ConfigSnapshot:
        snap = await super().read(prefix, version=version)
        kept = self._snapshots.setdefault((prefix, snap.version), dict(snap.values))
        return ConfigSnapshot(snap.version, kept)


class TimeGoesBackWithTheClock(_Broken):
    """Stamps each version with its wall clock as is, so history goes back when it does."""

    clause = "config_store.history.wall_clock"

    async def _commit(self, draft: Draft) -> int:
        with self._lock:
            log = self._log
            if draft.expected is not None and draft.expected != log.version:
                raise StaleVersionError(draft.expected, log.version)
            stored = draft.stored(log.version + 1, int(self._wall_clock() * 1_000_000))
            log.add(stored)
        self._notifier.notify()
        return stored.version


class LeaksConnectionErrors(_Broken):
    """Lets the driver's OSError through instead of raising UnavailableError."""

    clause = "config_store.faults.unavailable"

    def _backend(self, operation: str) -> None:
        if self._faults is not None:
            self._faults(operation)


class PrefixUnchecked(_Broken):
    """Reads under any prefix, text or not (a NUL prefix selects nothing, silently)."""

    clause = "config_store.arguments.invalid"

    async def read(self, prefix: Any = "", *, version: int | None = None) -> ConfigSnapshot:
        if not isinstance(prefix, str) or "\x00" in prefix:
            return ConfigSnapshot(await self.current_version(), {})
        return await super().read(prefix, version=version)


class MissingKeyAtPastVersionIsNone(_Broken):
    """Answers None for a key that had no value at a past version, instead of NotFoundError."""

    clause = "config_store.read.not_found"

    async def get(self, key: str, *, version: int | None = None) -> Any:
        if version is not None and version < await self.current_version():
            history = [s for s in await self.history(limit=version) if key in s.updates()]
            if not history:
                return None
        return await super().get(key, version=version)


VARIANTS: list[type[_Broken]] = [
    StaleVersionIgnored,
    VersionsJumpByTwo,
    NonAtomicBatch,
    CheckThenWrite,
    ReadsIgnoreVersion,
    PrefixLeaks,
    SharesStoredValues,
    HistoryForgetsAuthor,
    RollbackOneTooFar,
    RollbackToFutureClamps,
    SchemaIgnored,
    WatchSkipsSecond,
    WatchResumesLate,
    StaleTimestamps,
    SnapshotSharesItsValues,
    TimeGoesBackWithTheClock,
    LeaksConnectionErrors,
    PrefixUnchecked,
    MissingKeyAtPastVersionIsNone,
]
