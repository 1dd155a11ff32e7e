"""Feature flags evaluated in process from flags kept current by watching a ConfigStore."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import threading
import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from opentelemetry import metrics
from opentelemetry.metrics import CallbackOptions, Observation
from pydantic import ValidationError

from portfolio_core._observables import observe
from portfolio_core._tasks import cancel_and_wait
from portfolio_core.boundary.stats import BoundedLabels
from portfolio_core.flags._definition import FlagDefinition
from portfolio_core.ports.config_store import ChangeSet, ConfigStore
from portfolio_core.ports.errors import InvalidInputError
from portfolio_core.ports.tenant import current_tenant

__all__ = [
    "DEFAULT",
    "DISABLED",
    "ERROR",
    "SPLIT",
    "TARGETING_MATCH",
    "Evaluation",
    "FlagContext",
    "Flags",
]

# Reasons and error codes: OpenFeature's names, so the provider passes them on unchanged.
TARGETING_MATCH: Final = "TARGETING_MATCH"
SPLIT: Final = "SPLIT"
DEFAULT: Final = "DEFAULT"
DISABLED: Final = "DISABLED"
ERROR: Final = "ERROR"
FLAG_NOT_FOUND: Final = "FLAG_NOT_FOUND"
PARSE_ERROR: Final = "PARSE_ERROR"
TYPE_MISMATCH: Final = "TYPE_MISMATCH"

METRIC = "portfolio_core.flags.evaluations"
_BUCKETS = 10_000  # rollout resolution: 0.01 %


@dataclass(frozen=True, slots=True)
class FlagContext:
    """Who a flag is evaluated for: ``targeting_key`` (a stable user or request id: the
    rollout hash uses it), ``tenant`` (default: the current tenant of
    [portfolio_core.ports.tenant][portfolio_core.ports.tenant]) and any other ``attributes``."""

    targeting_key: str | None = None
    tenant: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)


_EMPTY = FlagContext()


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The result of one evaluation: the value, the variant served (``None`` when the
    caller's default was returned), why (``reason``), and for ``ERROR`` the error code and
    message."""

    value: Any
    variant: str | None
    reason: str
    error_code: str | None = None
    error_message: str | None = None


class _Outcome:
    """One way a flag can resolve, precompiled, with its evaluation count."""

    __slots__ = ("details", "hits", "reason", "value", "variant")

    def __init__(self, value: Any, variant: str | None, reason: str) -> None:
        self.value = value
        self.variant = variant
        self.reason = reason
        self.hits = 0
        self.details: Any = None  # what a provider built for it once (immutable values only)


class _Rule:
    __slots__ = ("attributes", "outcome", "tenants", "threshold")

    def __init__(
        self,
        tenants: frozenset[str] | None,
        attributes: tuple[tuple[str, frozenset[Any]], ...],
        threshold: int,
        outcome: _Outcome,
    ) -> None:
        self.tenants = tenants
        self.attributes = attributes
        self.threshold = threshold  # buckets below it are in; _BUCKETS: everyone
        self.outcome = outcome


class _Flag:
    __slots__ = ("default", "disabled", "enabled", "key", "kind", "rules", "salt")

    def __init__(self, key: str, definition: FlagDefinition) -> None:
        self.key = key
        self.kind = definition.type
        self.enabled = definition.enabled
        self.salt = f"{definition.salt if definition.salt is not None else key}:".encode()
        variants = definition.variants
        name = definition.default_variant
        self.default = _Outcome(variants[name], name, DEFAULT)
        self.disabled = _Outcome(None, None, DISABLED)
        self.rules = tuple(
            _Rule(
                None if rule.when.tenant is None else frozenset(rule.when.tenant),
                tuple(
                    (attr, frozenset(_hashable(v) for v in values))
                    for attr, values in rule.when.attributes.items()
                ),
                round(rule.percentage * _BUCKETS / 100),
                _Outcome(
                    variants[rule.variant],
                    rule.variant,
                    TARGETING_MATCH if rule.percentage >= 100 else SPLIT,
                    # rollouts hash the salt and the targeting key with CRC-32: stable across
                    # processes and versions (Python's hash() is randomised per process)
                ),
            )
            for rule in definition.rules
        )

    def outcomes(self) -> Iterable[_Outcome]:
        yield self.default
        yield self.disabled
        for rule in self.rules:
            yield rule.outcome


class _Malformed:
    """A stored flag that is not a valid definition (a store without the flags' schema)."""

    __slots__ = ("key", "message")

    def __init__(self, key: str, message: str) -> None:
        self.key = key
        self.message = message


def _hashable(value: Any) -> Any:
    # JSON: 1 and True are different values; keep them apart in the sets
    return (bool, value) if type(value) is bool else value


_MISSING = object()


def resolve(
    flag: _Flag, target: str | None, tenant: str | None, attrs: Mapping[str, Any]
) -> _Outcome:
    """The outcome of ``flag`` for a targeting key, tenant and attributes (no counting)."""
    if not flag.enabled:
        return flag.disabled
    for rule in flag.rules:
        tenants = rule.tenants
        if tenants is not None:
            if tenant is None:
                current = current_tenant()
                tenant = current.tenant_id if current is not None else ""
            if tenant not in tenants:
                continue
        if rule.attributes:
            matched = True
            for name, allowed in rule.attributes:
                value = attrs.get(name, _MISSING)
                try:
                    if (value if value.__class__ is not bool else (bool, value)) not in allowed:
                        matched = False
                        break
                except TypeError:  # an unhashable value (a list) equals no listed scalar
                    matched = False
                    break
            if not matched:
                continue
        if rule.threshold < _BUCKETS and (
            target is None or zlib.crc32(flag.salt + target.encode()) % _BUCKETS >= rule.threshold
        ):
            continue
        return rule.outcome
    return flag.default


def _compile(key: str, value: Any) -> _Flag | _Malformed:
    try:
        return _Flag(key, FlagDefinition.model_validate(value))
    except ValidationError as exc:
        return _Malformed(key, _explain(exc))


def _explain(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ()))
        parts.append(f"{loc}: {err['msg']}" if loc else str(err["msg"]))
    return "; ".join(parts)


class Flags:
    """Typed feature-flag evaluation over the flags stored under ``prefix`` in a store.

    `start` reads the flags and then watches the store: a change applied anywhere
    (another process too, on a shared store) is served by the next evaluation after it
    arrives, with no restart. Evaluation is synchronous and in process (no I/O) and never
    raises into application code: an unknown flag, a flag of another type or a malformed
    stored flag returns the caller's default with reason ``ERROR`` and an error code
    (``FLAG_NOT_FOUND``, ``TYPE_MISMATCH``, ``PARSE_ERROR``).

    Every evaluation is counted by (flag, variant, reason) and exported through the
    OpenTelemetry instrument ``portfolio_core.flags.evaluations`` (observable counter;
    targeting keys and tenants are never labels; unknown flag names are bounded).
    """

    def __init__(
        self,
        store: ConfigStore,
        *,
        prefix: str = "flags.",
        meter_provider: metrics.MeterProvider | None = None,
    ) -> None:
        self.store = store
        self.prefix = prefix
        self._flags: dict[str, _Flag | _Malformed] = {}
        self._unknown: dict[str, _Outcome] = {}
        self._unknown_labels = BoundedLabels(100)
        self._retired: dict[tuple[str, str, str], int] = {}
        self._lock = threading.Lock()
        self.version = 0
        """The store version the flags were last brought to."""
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None
        provider = meter_provider or metrics.get_meter_provider()
        observe(
            provider,
            "portfolio_core.flags",
            "counter",
            METRIC,
            self._observe,
            unit="1",
            description="Feature flag evaluations by flag, variant and reason",
        )

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Load every flag and keep watching for changes; idempotent."""
        if self._task is not None:
            return
        snapshot = await self.store.read(self.prefix)
        self._replace({k[len(self.prefix) :]: v for k, v in snapshot.items()}, snapshot.version)
        self._task = asyncio.get_running_loop().create_task(self._follow(snapshot.version))

    async def _follow(self, version: int) -> None:
        watcher = self.store.watch(self.prefix, from_version=version)
        try:
            async for change_set in watcher:
                self._apply(change_set)
                async with self._changed:
                    self._changed.notify_all()
        finally:
            with contextlib.suppress(Exception):
                await watcher.aclose()  # type: ignore[attr-defined]

    async def wait_for_version(self, version: int, timeout: float = 10.0) -> None:
        """Wait until the flags reflect store version ``version`` (or a later one)."""
        async with asyncio.timeout(timeout), self._changed:
            await self._changed.wait_for(lambda: self.version >= version)

    async def aclose(self) -> None:
        """Stop watching the store (the flags keep their last values); idempotent."""
        task, self._task = self._task, None
        await cancel_and_wait(task, drop_errors=True)

    def _replace(self, values: Mapping[str, Any], version: int) -> None:
        flags = {key: _compile(key, value) for key, value in values.items()}
        with self._lock:
            for old in self._flags.values():
                self._retire(old)
            self._flags = flags
            self.version = version

    def _apply(self, change_set: ChangeSet) -> None:
        flags = dict(self._flags)
        cut = len(self.prefix)
        for change in change_set.changes:
            key = change.key[cut:]
            old = flags.pop(key, None)
            if old is not None:
                self._retire(old)
            if not change.deleted:
                flags[key] = _compile(key, change.value)
        with self._lock:
            self._flags = flags  # one assignment: evaluations see the old or the new set
            self.version = change_set.version

    def _retire(self, flag: _Flag | _Malformed) -> None:
        if isinstance(flag, _Flag):
            for o in flag.outcomes():
                if o.hits:
                    label = (flag.key, o.variant or "", o.reason)
                    self._retired[label] = self._retired.get(label, 0) + o.hits

    # -- evaluating -------------------------------------------------------------------------

    def evaluate(
        self,
        key: str,
        default: Any,
        context: FlagContext | None = None,
        *,
        kind: str | None = None,
    ) -> Evaluation:
        """The value of flag ``key`` for ``context`` with its variant and reason; never
        raises (errors return ``default`` with reason ``ERROR`` and a code)."""
        flag = self._flags.get(key)
        if not isinstance(flag, _Flag):
            return self._error(key, default, flag)
        if kind is not None and flag.kind != kind:
            self._miss(key).hits += 1
            return Evaluation(
                default,
                None,
                ERROR,
                TYPE_MISMATCH,
                f"flag {key!r} is a {flag.kind} flag, not {kind}",
            )
        ctx = context or _EMPTY
        outcome = resolve(flag, ctx.targeting_key, ctx.tenant, ctx.attributes)
        outcome.hits += 1
        if outcome is flag.disabled:
            return Evaluation(default, None, DISABLED)
        value = outcome.value
        if flag.kind == "object":
            value = copy.deepcopy(value)
        return Evaluation(value, outcome.variant, outcome.reason)

    def _error(self, key: str, default: Any, flag: _Flag | _Malformed | None) -> Evaluation:
        self._miss(key).hits += 1
        if not isinstance(flag, _Malformed):
            return Evaluation(default, None, ERROR, FLAG_NOT_FOUND, f"no flag {key!r}")
        return Evaluation(
            default, None, ERROR, PARSE_ERROR, f"flag {key!r} is malformed: {flag.message}"
        )

    def _miss(self, key: str) -> _Outcome:
        label = self._unknown_labels(key)
        outcome = self._unknown.get(label)
        if outcome is None:
            outcome = self._unknown.setdefault(label, _Outcome(None, None, ERROR))
        return outcome

    def outcome(
        self,
        key: str,
        kind: str,
        target: str | None,
        tenant: str | None,
        attrs: Mapping[str, Any],
    ) -> _Outcome | None:
        """The counted outcome of a well-formed flag of type ``kind``, or ``None`` (then
        `evaluate` says what is wrong). For providers: ``outcome.reason`` is
        ``DISABLED`` when the caller's default is to be served."""
        flag = self._flags.get(key)
        if flag.__class__ is not _Flag or flag.kind != kind:
            return None
        found = resolve(flag, target, tenant, attrs)
        found.hits += 1
        return found

    def _value(self, key: str, default: Any, context: FlagContext | None, kind: str) -> Any:
        flag = self._flags.get(key)
        if flag.__class__ is _Flag and flag.kind == kind:
            ctx = context or _EMPTY
            found = resolve(flag, ctx.targeting_key, ctx.tenant, ctx.attributes)
            found.hits += 1
            if found.reason is DISABLED:
                return default
            return copy.deepcopy(found.value) if kind == "object" else found.value
        return self.evaluate(key, default, context, kind=kind).value

    def boolean(self, key: str, default: bool, context: FlagContext | None = None) -> bool:
        """The value of the boolean flag ``key`` (``default`` on any error)."""
        return bool(self._value(key, default, context, "boolean"))

    def string(self, key: str, default: str, context: FlagContext | None = None) -> str:
        """The value of the string flag ``key`` (``default`` on any error)."""
        return str(self._value(key, default, context, "string"))

    def number(self, key: str, default: float, context: FlagContext | None = None) -> float | int:
        """The value of the number flag ``key`` (``default`` on any error)."""
        value: float | int = self._value(key, default, context, "number")
        return value

    def object(self, key: str, default: Any, context: FlagContext | None = None) -> Any:
        """The value (a copy) of the object flag ``key`` (``default`` on any error)."""
        return self._value(key, default, context, "object")

    # -- defining -----------------------------------------------------------------------------

    async def define(
        self,
        key: str,
        definition: FlagDefinition | Mapping[str, Any],
        *,
        expected_version: int | None = None,
        author: str = "",
        reason: str = "",
    ) -> int:
        """Validate and store a flag; returns the store's new version. A malformed
        definition raises InvalidInputError naming the flag and the reason, and nothing is
        stored."""
        try:
            model = (
                definition
                if isinstance(definition, FlagDefinition)
                else FlagDefinition.model_validate(definition)
            )
        except ValidationError as exc:
            raise InvalidInputError(
                f"flag {key!r} is malformed: {_explain(exc)}", field=self.prefix + key
            ) from None
        return await self.store.apply(
            {self.prefix + key: model.model_dump(mode="json", exclude_defaults=True)},
            expected_version=expected_version,
            author=author,
            reason=reason,
        )

    # -- telemetry ------------------------------------------------------------------------------

    def evaluation_counts(self) -> dict[tuple[str, str, str], int]:
        """Evaluations so far by ``(flag, variant, reason)`` (variant "" when the caller's
        default was returned)."""
        counts = dict(self._retired)
        with self._lock:
            flags = list(self._flags.values())
        for flag in flags:
            if isinstance(flag, _Flag):
                for o in flag.outcomes():
                    if o.hits:
                        label = (flag.key, o.variant or "", o.reason)
                        counts[label] = counts.get(label, 0) + o.hits
        for key, o in list(self._unknown.items()):
            if o.hits:
                counts[(key, "", ERROR)] = counts.get((key, "", ERROR), 0) + o.hits
        return counts

    def _observe(self, _options: CallbackOptions) -> Iterable[Observation]:
        for (flag, variant, reason), count in self.evaluation_counts().items():
            yield Observation(count, {"flag": flag, "variant": variant, "reason": reason})
