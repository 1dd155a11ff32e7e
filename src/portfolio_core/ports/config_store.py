"""ConfigStore: versioned run-time configuration, changed atomically, watched by every process.

Contract
--------
Keys, values and versions
  * A key is a non-empty string of Unicode text (no U+0000, no lone surrogate) of at most
    [MAX_CONFIG_KEY_LENGTH][portfolio_core.ports.config_store.MAX_CONFIG_KEY_LENGTH] characters;
    dots name a hierarchy by convention
    (``app.timeout``), and a *prefix* selects every key that starts with it ("" selects all).
    A prefix is text under the same rules (it may be empty); any other prefix, and a
    ``version``, ``from_version``, ``limit`` or ``expected_version`` that is not a
    non-negative int, raises [InvalidInputError][portfolio_core.ports.errors.InvalidInputError].
  * A value is JSON: ``None``, bool, int, finite float, str, lists and str-keyed dicts of
    those, at most ``MAX_VALUE_DEPTH`` containers deep (the stored-value rule of
    `portfolio_core.ports.values`; tuples, sets and non-str keys are refused rather than
    silently converted), and at most the adapter's ``max_value_bytes`` encoded.
  * The store has one version: 0 when nothing was ever applied, then 1, 2, 3, ... -- every
    successful [ConfigStore.apply][portfolio_core.ports.config_store.ConfigStore.apply] or
    [ConfigStore.rollback][portfolio_core.ports.config_store.ConfigStore.rollback] makes exactly one
    new
    version, one more than the last. Versions are never reused and history is never
    rewritten.

Reading
  * ``get(key)`` returns the value at the current version, ``get(key, version=v)`` the value
    it had at version ``v``; a key that has no value there raises
    [NotFoundError][portfolio_core.ports.errors.NotFoundError]. ``read(prefix, version=...)``
    returns
    a [ConfigSnapshot][portfolio_core.ports.config_store.ConfigSnapshot]: every key under the prefix
    with its value, and the version read.
    A version above the current one raises NotFoundError; a negative or non-int version
    raises [InvalidInputError][portfolio_core.ports.errors.InvalidInputError].
  * Reads are snapshots: changing a returned value, or any returned collection (a snapshot's
    values, the ``history`` list, a change set's values), does not change the store. A
    process reads its own writes: after ``apply`` returns version ``v``, its reads see at
    least ``v``.

Writing
  * ``apply(changes, expected_version=...)`` applies a batch atomically -- every change is
    stored, or none -- and returns the new version. ``changes`` maps keys to new values;
    the value [DELETE][portfolio_core.ports.config_store.DELETE] removes the key. With
    ``expected_version`` the batch is applied
    only if that is still the current version; otherwise
    [StaleVersionError][portfolio_core.ports.errors.StaleVersionError] (a ConflictError, with the
    actual
    version) is raised and nothing is written. Of several concurrent applies with the same
    expected version exactly one succeeds.
  * ``author`` and ``reason`` are kept with the version (who and why) and the store records
    when (UTC): the adapter's wall clock at the commit, never earlier than the previous
    version's time (a clock set back does not make history run backwards). Bad input -- an
    empty batch, a bad key or value, an author or reason that is not text -- raises
    InvalidInputError naming the key (``field``) and writes nothing.
  * Schemas: an adapter may be given a schema per key prefix (pydantic models in a manifest).
    A value under a prefix that its schema (the longest matching prefix) rejects raises
    InvalidInputError whose ``field`` is the key and whose message says why, before anything
    is applied. Deleting a key is never refused by a schema.
  * ``history(from_version, limit)`` returns the
    [ChangeSet][portfolio_core.ports.config_store.ChangeSet] of each version from
    ``from_version`` on, in version order: what changed, who, when, why.
  * ``rollback(to_version, prefix=...)`` makes a new version whose values (of every key
    under ``prefix``) are exactly those of ``to_version``: keys added since are deleted, keys
    changed since get their old value back. The change set records ``rollback_of``. A
    version that never existed raises NotFoundError and writes nothing; ``expected_version``
    works as for ``apply``. Values restored by a rollback are not checked against schemas
    again (they were checked when first applied).

Watching
  * ``watch(prefix, from_version=v)`` is an async iterator of the change sets after version
    ``v`` that touch a key under ``prefix`` (each holding only those keys), delivered in
    version order, every one exactly once: none is skipped, none reordered -- also when the
    adapter's connection to its server drops and comes back while watching (it resumes
    from the last version it delivered). ``from_version=None`` starts from the version
    current when iteration starts. Change sets are delivered until the iterator is closed
    (``aclose()``) or the store is closed; a store closed under a watcher ends the
    iteration.
  * Two processes using a shared adapter (capability ``SHARED``) see each other's changes,
    in reads and in watches.

Failures
  * A backend that cannot be reached raises
    [UnavailableError][portfolio_core.ports.errors.UnavailableError] (never a driver's own
    connection error), and an ``apply`` or ``rollback`` that raised it wrote nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, ItemsView, Iterator, KeysView, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

if TYPE_CHECKING:
    from datetime import datetime

__all__ = [
    "DELETE",
    "MAX_CONFIG_KEY_LENGTH",
    "ChangeSet",
    "ConfigChange",
    "ConfigSnapshot",
    "ConfigStore",
    "ConfigStoreCapability",
    "ConfigValues",
]

MAX_CONFIG_KEY_LENGTH: Final = 512
"""The longest key (in characters) a ConfigStore accepts."""


class ConfigStoreCapability(StrEnum):
    PERSISTENT = "config_store.persistent"
    """Changes survive a restart of the process."""
    SHARED = "config_store.shared"
    """Several processes apply, read and watch the same store and see each other's changes."""
    SCHEMAS = "config_store.schemas"
    """The adapter accepts ``schemas=`` (prefix -> model) and refuses invalid values."""


class _Delete:
    """The type of [DELETE][portfolio_core.ports.config_store.DELETE] (one instance)."""

    _instance: _Delete | None = None

    def __new__(cls) -> _Delete:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "DELETE"

    def __reduce__(self) -> str:
        return "DELETE"


DELETE: Final = _Delete()
"""The value that removes a key in
[ConfigStore.apply][portfolio_core.ports.config_store.ConfigStore.apply]."""


@dataclass(frozen=True, slots=True)
class ConfigChange:
    """One key's change in a version: its new value, or ``deleted``."""

    key: str
    value: Any = None
    deleted: bool = False


@dataclass(frozen=True, slots=True)
class ChangeSet:
    """One version: what changed, who applied it (``author``), why (``reason``), when (UTC).

    ``rollback_of`` is the version a rollback restored (``None`` for an ordinary apply).
    """

    version: int
    changes: tuple[ConfigChange, ...]
    author: str
    reason: str
    at: datetime
    rollback_of: int | None = None

    def keys(self) -> list[str]:
        """The keys this version changed, in the order they were given."""
        return [c.key for c in self.changes]

    def updates(self) -> dict[str, Any]:
        """``key -> value`` for every changed key,
        [DELETE][portfolio_core.ports.config_store.DELETE] for deleted ones."""
        return {c.key: DELETE if c.deleted else c.value for c in self.changes}


@dataclass(frozen=True, slots=True)
class ConfigSnapshot:
    """The values of the keys under a prefix at one version. Reads like a mapping
    (``snapshot["key"]``, ``dict(snapshot)``, ``len``, ``in``, ``items()``)."""

    version: int
    values: Mapping[str, Any] = field(default_factory=dict)

    def __getitem__(self, key: str) -> Any:
        return self.values[key]

    def __contains__(self, key: object) -> bool:
        return key in self.values

    def __iter__(self) -> Iterator[str]:
        return iter(self.values)

    def __len__(self) -> int:
        return len(self.values)

    def keys(self) -> KeysView[str]:
        return self.values.keys()

    def items(self) -> ItemsView[str, Any]:
        return self.values.items()


@runtime_checkable
class ConfigStore(Protocol):
    """Async versioned configuration store; see the module docstring for every clause."""

    async def current_version(self) -> int:
        """The version the store is at (0 before the first apply)."""
        ...

    async def get(self, key: str, *, version: int | None = None) -> Any:
        """The value of ``key`` at ``version`` (default: current); NotFoundError if none."""
        ...

    async def read(self, prefix: str = "", *, version: int | None = None) -> ConfigSnapshot:
        """Every key under ``prefix`` with its value at ``version`` (default: current)."""
        ...

    async def apply(
        self,
        changes: Mapping[str, Any],
        *,
        expected_version: int | None = None,
        author: str = "",
        reason: str = "",
    ) -> int:
        """Apply ``changes`` atomically (``DELETE`` removes a key); return the new version."""
        ...

    async def history(self, *, from_version: int = 1, limit: int | None = None) -> list[ChangeSet]:
        """The change sets of versions ``>= from_version``, in version order."""
        ...

    async def rollback(
        self,
        to_version: int,
        *,
        prefix: str = "",
        expected_version: int | None = None,
        author: str = "",
        reason: str = "",
    ) -> int:
        """Make a new version whose keys under ``prefix`` are as at ``to_version``."""
        ...

    def watch(
        self, prefix: str = "", *, from_version: int | None = None
    ) -> AsyncIterator[ChangeSet]:
        """Change sets after ``from_version`` touching ``prefix``, in version order."""
        ...


ConfigValues = Mapping[str, Any] | ConfigSnapshot
"""Run-time configuration a manifest's ``${config:KEY}`` references read: a snapshot of a
ConfigStore, or any mapping."""
