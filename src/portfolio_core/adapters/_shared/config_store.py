"""What every ConfigStore adapter shares: validation, schemas, the versioned log index and
the port's behaviour over it (`LogConfigStore`).

Every adapter keeps the whole log of change sets in memory (`ConfigLog`: a local
mirror for the server-backed adapters) and answers reads, history, rollbacks and watches
from it; what differs is only where a change set is committed and how news of other
writers' commits arrives (the three hooks of `LogConfigStore`). A configuration
store holds few keys and few versions, so the mirror is small.
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import json
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from portfolio_core._references import resolve_reference
from portfolio_core.adapters._shared.codec import check_json_value, is_text
from portfolio_core.ports.config_store import (
    DELETE,
    MAX_CONFIG_KEY_LENGTH,
    ChangeSet,
    ConfigChange,
    ConfigSnapshot,
)
from portfolio_core.ports.errors import (
    CorruptDataError,
    InvalidInputError,
    NotFoundError,
    StaleVersionError,
    UnavailableError,
)

__all__ = [
    "DEFAULT_MAX_VALUE_BYTES",
    "ConfigLog",
    "LogConfigStore",
    "Notifier",
    "Schemas",
    "StoredSet",
    "decode_set",
    "decode_version",
    "encode_set",
]

PORT = "ConfigStore"
DEFAULT_MAX_VALUE_BYTES = 1_048_576
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_SCALARS = (str, int, float, bool, type(None))

Change = tuple[str, str | None]
"""One stored change: the key and its value as JSON text (``None``: deleted)."""


class StoredSet(NamedTuple):
    """One version as stored: changes as JSON text, the commit time in microseconds."""

    version: int
    changes: tuple[Change, ...]
    author: str
    reason: str
    at: int
    rollback_of: int | None = None


class Draft(NamedTuple):
    """A version about to be committed, as `apply` or `rollback` asks for it: the changes,
    the version it must follow (``expected``; None: whatever is latest) and its notes."""

    changes: tuple[Change, ...]
    expected: int | None
    author: str
    reason: str
    rollback_of: int | None = None

    def stored(self, version: int, at: int) -> StoredSet:
        """This draft as version ``version``, committed at ``at`` (microseconds)."""
        return StoredSet(version, self.changes, self.author, self.reason, at, self.rollback_of)

    def after(self, current: int, at: int | None = None) -> StoredSet:
        """This draft as the version after ``current``, committed at ``at`` (default: now).

        Raises:
            StaleVersionError: ``expected`` is set and is not ``current``.
        """
        check_expected(self.expected, current)
        return self.stored(current + 1, now_micros() if at is None else at)


def encode_set(stored: StoredSet) -> str:
    """The JSON text of a stored version (the unit every adapter writes)."""
    return _ENCODER.encode(
        {
            "v": stored.version,
            "c": [[k, t] for k, t in stored.changes],
            "a": stored.author,
            "r": stored.reason,
            "at": stored.at,
            "rb": stored.rollback_of,
        }
    )


def decode_set(text: str | bytes) -> StoredSet:
    """The stored version written by `encode_set`; raises ValueError (or KeyError,
    TypeError) for anything else."""
    raw = json.loads(text)
    changes = tuple((str(k), None if t is None else str(t)) for k, t in raw["c"])
    version, at, rollback = raw["v"], raw["at"], raw["rb"]
    if type(version) is not int or version < 1 or type(at) is not int:
        raise ValueError("a stored version has no valid number or time")
    if rollback is not None and type(rollback) is not int:
        raise ValueError("a stored version has an invalid rollback_of")
    return StoredSet(version, changes, str(raw["a"]), str(raw["r"]), at, rollback)


def decode_version(
    text: str | bytes | None, version: int, *, what: str, location: str
) -> StoredSet:
    """The stored version ``version`` from ``text`` (None: the record holds no body).

    Raises:
        CorruptDataError: ``text`` is not a stored version, or one of another number;
            ``what`` names the record (``"config table 't': the row"``), ``location``
            where it lives.
    """
    try:
        stored = None if text is None else decode_set(text)
    except (ValueError, KeyError, TypeError, IndexError):
        stored = None
    if stored is None or stored.version != version:
        raise CorruptDataError(
            f"{what} of version {version} cannot be decoded",
            location=location,
            record=version,
            port=PORT,
        )
    return stored


def now_micros() -> int:
    return time.time_ns() // 1000


def _decode_value(text: str) -> Any:
    return json.loads(text)


# -- validation ------------------------------------------------------------------------------


def validate_key(key: object, field: str = "key") -> str:
    if type(key) is not str:
        raise InvalidInputError(
            f"a config key must be a str, got {type(key).__name__}", field=field, port=PORT
        )
    if not key:
        raise InvalidInputError("a config key must not be empty", field=field, port=PORT)
    _check_text(key, field, "key")
    if len(key) > MAX_CONFIG_KEY_LENGTH:
        raise InvalidInputError(
            f"config key {key[:40]!r}... is longer than {MAX_CONFIG_KEY_LENGTH} characters",
            field=field,
            port=PORT,
        )
    return key


def _check_text(value: str, field: str, what: str) -> None:
    if "\x00" in value:
        raise InvalidInputError(f"the {what} contains U+0000", field=field, port=PORT)
    if not is_text(value):
        raise InvalidInputError(
            f"the {what} holds a lone surrogate, which is not Unicode text", field=field, port=PORT
        )


def validate_prefix(prefix: object) -> str:
    if type(prefix) is not str:
        raise InvalidInputError(
            f"a prefix must be a str, got {type(prefix).__name__}", field="prefix", port=PORT
        )
    _check_text(prefix, "prefix", "prefix")
    return prefix


def validate_version(version: object, field: str = "version") -> int:
    if type(version) is not int or version < 0:
        raise InvalidInputError(
            f"{field} must be an int >= 0, got {version!r}", field=field, port=PORT
        )
    return version


def validate_note(value: object, field: str) -> str:
    if type(value) is not str:
        raise InvalidInputError(
            f"{field} must be a str, got {type(value).__name__}", field=field, port=PORT
        )
    _check_text(value, field, field)
    if len(value) > 4096:
        raise InvalidInputError(f"{field} is longer than 4096 characters", field=field, port=PORT)
    return value


class Schemas:
    """Validators by key prefix; the longest prefix matching a key decides.

    Each validator is a pydantic model class (``model_validate``), any object with
    ``validate_python`` (a ``TypeAdapter``), a plain callable that raises on a bad value, or a
    ``module:attribute`` reference to one of those (resolved once, here).
    """

    def __init__(self, schemas: Mapping[str, object] | None = None) -> None:
        self._by_prefix: dict[str, Callable[[Any], object]] = {}
        for prefix, schema in (schemas or {}).items():
            validate_prefix(prefix)
            target = schema
            if isinstance(schema, str):
                target = resolve_reference(schema, field=f"schemas.{prefix}")
            self._by_prefix[prefix] = _validator_of(target, prefix)
        self._prefixes = sorted(self._by_prefix, key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._by_prefix)

    def check(self, key: str, value: Any) -> None:
        """Raise InvalidInputError (``field`` = the key) when ``value`` is invalid for it."""
        for prefix in self._prefixes:
            if key.startswith(prefix):
                try:
                    self._by_prefix[prefix](value)
                except Exception as exc:
                    raise InvalidInputError(
                        f"invalid value for config key {key!r} (schema of prefix "
                        f"{prefix!r}): {_reason(exc)}",
                        field=key,
                        port=PORT,
                    ) from None
                return


def _validator_of(schema: object, prefix: str) -> Callable[[Any], object]:
    for name in ("model_validate", "validate_python"):
        method = getattr(schema, name, None)
        if callable(method):
            return method  # type: ignore[no-any-return]
    if callable(schema):
        return schema
    raise InvalidInputError(
        f"the schema of prefix {prefix!r} is not a model, a TypeAdapter or a callable",
        field=f"schemas.{prefix}",
        port=PORT,
    )


def _reason(exc: Exception) -> str:
    errors = getattr(exc, "errors", None)
    if callable(errors):
        with contextlib.suppress(Exception):
            parts = []
            for err in errors():
                loc = ".".join(str(p) for p in err.get("loc", ()))
                parts.append(f"{loc}: {err.get('msg')}" if loc else str(err.get("msg")))
            if parts:
                return "; ".join(parts)
    return f"{type(exc).__name__}: {exc}"


def encode_changes(changes: object, schemas: Schemas, max_value_bytes: int) -> tuple[Change, ...]:
    """Validate a batch and encode its values; raises InvalidInputError naming the key."""
    if not isinstance(changes, Mapping):
        raise InvalidInputError(
            f"changes must be a mapping of keys to values, got {type(changes).__name__}",
            field="changes",
            port=PORT,
        )
    if not changes:
        raise InvalidInputError("an empty batch of changes", field="changes", port=PORT)
    out: list[Change] = []
    for key, value in changes.items():
        validate_key(key, key if type(key) is str else "key")
        if value is DELETE:
            out.append((key, None))
            continue
        check_json_value(value, field=key, top=False)
        if schemas:
            schemas.check(key, value)
        text = _ENCODER.encode(value)
        if len(text) > max_value_bytes and len(text.encode()) > max_value_bytes:
            raise InvalidInputError(
                f"the value of config key {key!r} is larger than {max_value_bytes} bytes",
                field=key,
                port=PORT,
            )
        out.append((key, text))
    return tuple(out)


# -- the index -------------------------------------------------------------------------------


@dataclass(slots=True)
class _Current:
    text: str
    value: Any  # decoded once for scalars (immutable, safe to share); None otherwise
    scalar: bool


class ConfigLog:
    """Every version in memory: the current values, each key's history, the change sets.

    Not thread-safe by itself: the adapter serialises ``add`` (reads of ``current`` by key
    are single dict operations and safe alongside it).
    """

    def __init__(self) -> None:
        self.sets: list[StoredSet] = []
        self.current: dict[str, _Current] = {}
        self._versions: dict[str, list[int]] = {}
        self._texts: dict[str, list[str | None]] = {}

    @property
    def version(self) -> int:
        return len(self.sets)

    def add(self, stored: StoredSet) -> None:
        """Add the next version; raises ValueError when it is not the next one."""
        if stored.version != len(self.sets) + 1:
            raise ValueError(f"version {stored.version} does not follow {len(self.sets)}")
        for key, text in stored.changes:
            self._versions.setdefault(key, []).append(stored.version)
            self._texts.setdefault(key, []).append(text)
            if text is None:
                self.current.pop(key, None)
            else:
                value = _decode_value(text)
                scalar = type(value) in _SCALARS
                self.current[key] = _Current(text, value if scalar else None, scalar)
        self.sets.append(stored)

    def following(self, draft: Draft, *, now: int | None = None) -> StoredSet:
        """``draft`` as the next version of this log, timed ``now`` (microseconds since the
        epoch; the wall clock when None) but never before the latest one.

        Raises:
            StaleVersionError: the draft expects another version than the latest.
        """
        at = now_micros() if now is None else now
        return draft.after(self.version, max(at, self.sets[-1].at if self.sets else 0))

    def text_at(self, key: str, version: int) -> str | None:
        if version >= len(self.sets):
            entry = self.current.get(key)
            return None if entry is None else entry.text
        versions = self._versions.get(key)
        if not versions:
            return None
        i = bisect.bisect_right(versions, version)
        return self._texts[key][i - 1] if i else None

    def read(self, prefix: str, version: int) -> dict[str, str]:
        if version >= len(self.sets):
            items: Iterable[tuple[str, str | None]] = (
                (k, e.text) for k, e in self.current.items() if k.startswith(prefix)
            )
        else:
            items = ((k, self.text_at(k, version)) for k in self._versions if k.startswith(prefix))
        return {k: t for k, t in items if t is not None}

    def rollback_changes(self, to_version: int, prefix: str) -> tuple[Change, ...]:
        """The changes that make the keys under ``prefix`` what they were at ``to_version``."""
        then = self.read(prefix, to_version)
        now = self.read(prefix, len(self.sets))
        out: list[Change] = [(k, None) for k in sorted(now) if k not in then]
        out.extend((k, t) for k, t in sorted(then.items()) if now.get(k) != t)
        return tuple(out)


def to_change_set(stored: StoredSet, prefix: str = "") -> ChangeSet | None:
    """The public change set of ``stored`` holding only keys under ``prefix``; ``None`` when
    a prefix is given and the version changed no key under it."""
    changes = tuple(
        ConfigChange(k, None, True) if t is None else ConfigChange(k, _decode_value(t))
        for k, t in stored.changes
        if k.startswith(prefix)
    )
    if prefix and not changes:
        return None
    return ChangeSet(
        stored.version,
        changes,
        stored.author,
        stored.reason,
        datetime.fromtimestamp(stored.at / 1_000_000, UTC),
        stored.rollback_of,
    )


class Notifier:
    """Wakes waiting watchers from any thread or event loop."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiters: set[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = set()

    def register(self) -> asyncio.Event:
        event = asyncio.Event()
        with self._lock:
            self._waiters.add((asyncio.get_running_loop(), event))
        return event

    def unregister(self, event: asyncio.Event) -> None:
        with self._lock:
            self._waiters = {w for w in self._waiters if w[1] is not event}

    def notify(self) -> None:
        if not self._waiters:
            return
        with self._lock:
            waiters = list(self._waiters)
        for loop, event in waiters:
            with contextlib.suppress(RuntimeError):  # that loop is closed
                loop.call_soon_threadsafe(event.set)


# -- the port over the log ---------------------------------------------------------------------


class LogConfigStore(ABC):
    """The ConfigStore port over a `ConfigLog`; subclasses say where versions are
    committed (`_commit`), how the log catches up with other writers (`_sync`)
    and how a watcher waits for news (`_wait`)."""

    #: whether ``self._log`` is always current (no other writer): reads need no sync
    _local = True

    def __init__(
        self,
        *,
        schemas: Mapping[str, object] | None = None,
        max_value_bytes: int = DEFAULT_MAX_VALUE_BYTES,
    ) -> None:
        self.max_value_bytes = max_value_bytes
        self._schemas = Schemas(schemas)
        self._log = ConfigLog()
        self._lock = threading.Lock()  # serialises changes to self._log
        self._notifier = Notifier()
        self._closed = False

    # -- hooks ------------------------------------------------------------------------------

    async def _ready(self) -> None:  # noqa: B027 - optional hook
        """Open what the adapter needs (called before every operation); idempotent."""

    @abstractmethod
    async def _commit(self, draft: Draft) -> int:
        """Store ``draft`` as one new version atomically (after ``draft.expected`` when
        given, else after the latest); raise StaleVersionError; return the new version once
        it is in ``_log``."""

    async def _sync(self) -> None:  # noqa: B027 - optional hook
        """Bring ``_log`` up to every committed version (server-backed adapters)."""

    async def _wait(self, event: asyncio.Event, after: int) -> None:
        """Return when a version after ``after`` may exist (or the store closes)."""
        await event.wait()

    def _add(self, stored: StoredSet) -> None:
        """Add ``stored`` to the log unless it is already there; wake watchers."""
        with self._lock:
            if stored.version <= self._log.version:
                return
            self._log.add(stored)
        self._notifier.notify()

    def _is_closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise UnavailableError(f"{type(self).__name__} is closed", port=PORT)

    async def _fresh(self) -> ConfigLog:
        self._check_open()
        await self._ready()
        if not self._local:
            await self._sync()
        return self._log

    # -- reading ----------------------------------------------------------------------------

    async def current_version(self) -> int:
        return (await self._fresh()).version

    def _at(self, log: ConfigLog, version: int | None) -> int:
        if version is None:
            return log.version
        validate_version(version)
        if version > log.version:
            raise NotFoundError(
                f"version {version} does not exist (the store is at version {log.version})",
                key=str(version),
                port=PORT,
            )
        return version

    async def get(self, key: str, *, version: int | None = None) -> Any:
        if version is None and self._local:
            entry = self._log.current.get(key)  # the hot path: one dict lookup
            if entry is not None and not self._closed:
                return entry.value if entry.scalar else _decode_value(entry.text)
        validate_key(key)
        log = await self._fresh()
        at = self._at(log, version)
        text = log.text_at(key, at)
        if text is None:
            raise NotFoundError(f"config key {key!r} has no value at version {at}", key=key)
        return _decode_value(text)

    async def read(self, prefix: str = "", *, version: int | None = None) -> ConfigSnapshot:
        validate_prefix(prefix)
        log = await self._fresh()
        at = self._at(log, version)
        return ConfigSnapshot(at, {k: _decode_value(t) for k, t in log.read(prefix, at).items()})

    async def history(self, *, from_version: int = 1, limit: int | None = None) -> list[ChangeSet]:
        validate_version(from_version, "from_version")
        if limit is not None:
            validate_version(limit, "limit")
        log = await self._fresh()
        chosen = log.sets[max(from_version, 1) - 1 :]
        if limit is not None:
            chosen = chosen[:limit]
        return [c for c in map(to_change_set, chosen) if c is not None]  # none is None: no prefix

    # -- writing ----------------------------------------------------------------------------

    async def apply(
        self,
        changes: Mapping[str, Any],
        *,
        expected_version: int | None = None,
        author: str = "",
        reason: str = "",
    ) -> int:
        encoded = encode_changes(changes, self._schemas, self.max_value_bytes)
        if expected_version is not None:
            validate_version(expected_version, "expected_version")
        validate_note(author, "author")
        validate_note(reason, "reason")
        self._check_open()
        await self._ready()
        return await self._commit(Draft(encoded, expected_version, author, reason))

    async def rollback(
        self,
        to_version: int,
        *,
        prefix: str = "",
        expected_version: int | None = None,
        author: str = "",
        reason: str = "",
    ) -> int:
        validate_version(to_version, "to_version")
        validate_prefix(prefix)
        if expected_version is not None:
            validate_version(expected_version, "expected_version")
        validate_note(author, "author")
        validate_note(reason, "reason")
        for _ in range(100):
            log = await self._fresh()
            base = log.version
            if to_version > base:
                raise NotFoundError(
                    f"cannot roll back to version {to_version}: the store is at version {base}",
                    key=str(to_version),
                    port=PORT,
                )
            if expected_version is not None and expected_version != base:
                raise StaleVersionError(expected_version, base)
            changes = log.rollback_changes(to_version, prefix)
            try:
                return await self._commit(Draft(changes, base, author, reason, to_version))
            except StaleVersionError:
                if expected_version is not None:
                    raise
                await self._sync()  # another writer won: recompute from the new version
        raise StaleVersionError(base, self._log.version)

    # -- watching ---------------------------------------------------------------------------

    async def watch(
        self, prefix: str = "", *, from_version: int | None = None
    ) -> AsyncIterator[ChangeSet]:
        validate_prefix(prefix)
        if from_version is not None:
            validate_version(from_version, "from_version")
        log = await self._fresh()
        last = log.version if from_version is None else self._at(log, from_version)
        event = self._notifier.register()
        backoff = 0.05
        try:
            while True:
                event.clear()
                if not self._local:
                    try:
                        await self._sync()
                    except UnavailableError:
                        # the connection dropped: wait, then catch up from `last` (no gap)
                        if self._is_closed():
                            return
                        await asyncio.sleep(backoff)
                        backoff = min(backoff * 2, 1.0)
                        continue
                    backoff = 0.05
                for stored in self._log.sets[last:]:
                    last = stored.version
                    change_set = to_change_set(stored, prefix)
                    if change_set is not None:
                        yield change_set
                if self._is_closed():
                    return
                if self._log.version > last:
                    continue
                await self._wait(event, last)
                if self._is_closed() and self._log.version <= last:
                    return
        finally:
            self._notifier.unregister(event)

    # -- closing ----------------------------------------------------------------------------

    async def _close(self) -> None:  # noqa: B027 - optional hook
        """Release what the adapter holds (after watchers were told to stop)."""

    async def aclose(self) -> None:
        """Stop every watcher and release the store; idempotent."""
        if self._closed:
            return
        self._closed = True
        self._notifier.notify()
        await self._close()


def check_expected(expected: int | None, actual: int) -> None:
    if expected is not None and expected != actual:
        raise StaleVersionError(expected, actual)
