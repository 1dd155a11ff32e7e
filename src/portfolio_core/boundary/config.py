"""The ``telemetry:`` and ``protection:`` sections of a manifest entry, as pydantic models.

Both models forbid unknown keys. `boundary_problems` validates both sections at once and
returns every problem with its path relative to the manifest entry, so the manifest loader can
point each one at its YAML line.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from portfolio_core.ports.catalogue import PortInfo

__all__ = [
    "BreakerConfig",
    "BulkheadConfig",
    "CostConfig",
    "FallbackConfig",
    "ModelPrice",
    "OnStorageError",
    "OutboxConfig",
    "OutboxStoreConfig",
    "ProtectionConfig",
    "RateLimitConfig",
    "RateLimitStrategy",
    "RetryConfig",
    "SPANS_ON_BY_DEFAULT",
    "TelemetryConfig",
    "TimeoutConfig",
    "boundary_problems",
    "parse_sections",
]

#: Ports whose calls get a span unless ``telemetry.spans`` says otherwise: they cross a
#: network or run long. Hot in-process ports (cache, tokenizer, cache_store, ...) do not.
SPANS_ON_BY_DEFAULT: frozenset[str] = frozenset(
    {"llm", "router", "agent", "pipeline", "pipeline_step", "event_store"}
)

Path = tuple[str | int, ...]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelPrice(_Model):
    """Prices of one model, in the currency of your choice (usually USD)."""

    input_per_mtok: float = Field(0.0, ge=0)
    output_per_mtok: float = Field(0.0, ge=0)
    per_call: float = Field(0.0, ge=0)
    per_embedding: float = Field(0.0, ge=0)


class CostConfig(_Model):
    """Cost events: tokens, API calls and embeddings, priced by model (``"*"`` matches any)."""

    enabled: bool = True
    prices: dict[str, ModelPrice] = Field(default_factory=dict)


class TelemetryConfig(_Model):
    """What is observed at the boundary of one adapter.

    ``spans`` of ``None`` means the port's default (on for llm, router, agent, pipeline,
    event_store; off for the others). ``max_label_values`` bounds every label whose values come
    from data (error types, model names): values past the bound are reported as ``_other``.
    """

    spans: bool | None = None
    metrics: bool = True
    genai: bool = True
    cost: CostConfig = Field(default_factory=CostConfig)
    max_label_values: int = Field(32, ge=1, le=1000)

    def spans_for(self, port: PortInfo) -> bool:
        return port.key in SPANS_ON_BY_DEFAULT if self.spans is None else self.spans


class RateLimitStrategy(StrEnum):
    FIXED_WINDOW = "fixed_window"
    MOVING_WINDOW = "moving_window"
    SLIDING_WINDOW = "sliding_window"


class OnStorageError(StrEnum):
    """What protection does when its own storage (Redis) cannot be reached."""

    OPEN = "open"
    """Let the call through as if unprotected (availability first); logged and counted."""
    CLOSED = "closed"
    """Refuse the call with ``UnavailableError`` (safety first)."""


def _check_storage(value: SecretStr) -> SecretStr:
    uri = value.get_secret_value()
    scheme, _, rest = uri.partition("://") if "://" in uri else ("", "", "")
    if scheme not in {"memory", "redis", "rediss"}:
        raise ValueError("storage must be a 'memory://', 'redis://' or 'rediss://' URI")
    at = rest.rfind("@")
    if at >= 0 and any(c in rest[:at] for c in "/?#@"):
        # a parser would split the password and quote a piece of it as a host or port
        raise ValueError(
            "the user or password of storage holds '/', '?', '#' or '@': percent-encode them "
            "(%2F, %3F, %23, %40); the URI is not shown because it holds a password"
        )
    return value


class RateLimitConfig(_Model):
    """A rate limit in ``limits`` notation (``"100/second"``, ``"10 per minute"``).

    Keys are per adapter and, with ``per_tenant``, per current tenant. ``lease`` > 1 takes that
    many permits from the storage at once and hands them out locally until the window ends
    (only with ``fixed_window``, where it never exceeds the limit; it may under-admit by up to
    ``lease - 1`` per process and window).
    """

    limit: str
    strategy: RateLimitStrategy = RateLimitStrategy.FIXED_WINDOW
    storage: SecretStr = SecretStr("memory://")
    per_tenant: bool = True
    key_prefix: str = Field("portfolio_core", min_length=1, max_length=100)
    lease: int = Field(1, ge=1, le=10_000)

    @field_validator("limit")
    @classmethod
    def _parse_limit(cls, value: str) -> str:
        from limits import parse

        try:
            parse(value)
        except ValueError as exc:
            raise ValueError(f"not a rate limit: {value!r} (write e.g. '100/second')") from exc
        return value

    _storage = field_validator("storage")(_check_storage)


class BreakerConfig(_Model):
    """A circuit breaker (pybreaker state and storage).

    Opens after ``fail_max`` consecutive failures (errors that are not the caller's fault:
    any exception except non-retryable port errors such as ``InvalidInputError``); after
    ``reset_timeout`` seconds admits one probe; ``success_threshold`` successful probes close
    it. ``storage: redis://...`` shares one breaker between processes under ``name``.
    """

    fail_max: int = Field(5, ge=1)
    reset_timeout: float = Field(30.0, gt=0)
    success_threshold: int = Field(1, ge=1)
    storage: SecretStr = SecretStr("memory://")
    name: str | None = Field(None, min_length=1, max_length=200)

    _storage = field_validator("storage")(_check_storage)


class BulkheadConfig(_Model):
    """At most ``max_concurrent`` calls at once; others wait up to ``max_wait`` seconds (0:
    refused at once) and then get ``UnavailableError``."""

    max_concurrent: int = Field(ge=1)
    max_wait: float = Field(0.0, ge=0)


class TimeoutConfig(_Model):
    """The whole call (retries included) must finish within ``seconds``, else
    ``PortTimeoutError``. Sync ports run the call in a worker thread to enforce it."""

    seconds: float = Field(gt=0)


class RetryConfig(_Model):
    """Retry retryable port errors (the ``retryable`` flag) with exponential backoff.

    Attempt ``n`` (from 1) waits ``min(max_backoff, backoff * multiplier ** (n - 1))``, scaled
    by a random factor in ``[1 - jitter, 1]``; a ``retry_after`` hint on the error is honoured
    when it is longer and within ``max_backoff``.
    """

    attempts: int = Field(3, ge=1, le=100)
    backoff: float = Field(0.05, ge=0)
    multiplier: float = Field(2.0, ge=1)
    max_backoff: float = Field(5.0, ge=0)
    jitter: float = Field(1.0, ge=0, le=1)


class FallbackConfig(_Model):
    """Serve a failed call from another adapter of the same port (named in the manifest).

    Triggered by retryable port errors: unavailable (including an open breaker, a full
    bulkhead and a rate limit) and timeouts.
    """

    adapter: str = Field(min_length=1)


class OutboxStoreConfig(_Model):
    """A JobQueue adapter the outbox records into: an entry-point name of the
    ``portfolio_core.adapters.job_queue`` group and that adapter's configuration."""

    adapter: str = Field(min_length=1)
    config: dict[str, Any] = Field(default_factory=dict)


class OutboxConfig(_Model):
    """Record failed writes and replay them later (see docs/boundary/outbox.md).

    A call of one of ``methods`` that fails with a retryable port error (unavailable, an
    open breaker, a timeout) after the other protections is recorded durably -- in the SQLite
    file ``path`` unless ``store`` names another JobQueue adapter -- and the caller gets
    ``OutboxAcceptedError`` (``on_pending: raise``) or a ``Pending`` value (``return``).
    A relay replays recorded calls in order when the adapter is healthy again. ``key`` names
    the argument whose value orders calls (default: each method's first argument): once a
    key has a recorded call, later calls with that key are recorded too, behind it. At
    ``backlog_limit`` recorded calls, new failures are not recorded: they raise
    ``OutboxFullError`` (retryable) with the original error as cause.
    """

    methods: list[str] = Field(min_length=1)
    key: str | None = Field(None, min_length=1)
    on_pending: Literal["raise", "return"] = "raise"
    path: str = Field("portfolio-outbox.db", min_length=1)
    store: OutboxStoreConfig | None = None
    queue: str | None = Field(None, min_length=1, max_length=128)
    backlog_limit: int = Field(10_000, ge=1)
    relay_interval: float = Field(1.0, gt=0)
    max_relay_interval: float = Field(30.0, gt=0)


class ProtectionConfig(_Model):
    """Protection around one adapter, applied in this order: rate limit, circuit breaker,
    bulkhead, timeout, retry, call (fallback wraps all of them)."""

    rate_limit: RateLimitConfig | None = None
    circuit_breaker: BreakerConfig | None = None
    bulkhead: BulkheadConfig | None = None
    timeout: TimeoutConfig | None = None
    retry: RetryConfig | None = None
    fallback: FallbackConfig | None = None
    outbox: OutboxConfig | None = None
    on_storage_error: OnStorageError = OnStorageError.OPEN

    @property
    def is_empty(self) -> bool:
        return not any(
            (
                self.rate_limit,
                self.circuit_breaker,
                self.bulkhead,
                self.timeout,
                self.retry,
                self.fallback,
                self.outbox,
            )
        )


def _problems_of(
    section: str, model: type[_Model], data: object
) -> tuple[_Model | None, list[tuple[Path, str]]]:
    if data is None:
        return None, []
    if not isinstance(data, Mapping):
        return None, [((section,), f"{section} must be a mapping")]
    try:
        return model.model_validate(dict(data)), []
    except ValidationError as exc:
        problems: list[tuple[Path, str]] = []
        for err in exc.errors(include_url=False, include_input=False):
            loc: Path = (section, *err["loc"])
            msg = err["msg"].removeprefix("Value error, ")
            problems.append((loc, msg))
        return None, problems


def parse_sections(
    port: PortInfo,
    telemetry: Mapping[str, Any] | None,
    protection: Mapping[str, Any] | None,
) -> tuple[TelemetryConfig | None, ProtectionConfig | None, list[tuple[Path, str]]]:
    """Validate both sections; returns the models (``None`` when absent or invalid) and
    every problem found."""
    tel, problems = _problems_of("telemetry", TelemetryConfig, telemetry)
    prot, more = _problems_of("protection", ProtectionConfig, protection)
    problems.extend(more)
    assert tel is None or isinstance(tel, TelemetryConfig)  # noqa: S101  (type narrowing)
    assert prot is None or isinstance(prot, ProtectionConfig)  # noqa: S101  (type narrowing)
    if prot is not None and prot.outbox is not None:
        problems.extend(_outbox_problems(port, prot.outbox))
    if prot is not None:
        rl = prot.rate_limit
        if rl is not None and rl.lease > 1 and rl.strategy is not RateLimitStrategy.FIXED_WINDOW:
            problems.append(
                (
                    ("protection", "rate_limit", "lease"),
                    "lease > 1 is exact only with strategy 'fixed_window'",
                )
            )
    return tel, prot, problems


def _outbox_problems(port: PortInfo, outbox: OutboxConfig) -> list[tuple[Path, str]]:
    """Each outbox method must be an ``async def`` method of the port."""
    from portfolio_core.ports.introspection import MemberKind, members_of

    kinds = {member.name: member.kind for member in members_of(port.protocol)}
    problems: list[tuple[Path, str]] = []
    for i, method in enumerate(outbox.methods):
        if kinds.get(method) is not MemberKind.COROUTINE:
            async_methods = sorted(n for n, k in kinds.items() if k is MemberKind.COROUTINE)
            problems.append(
                (
                    ("protection", "outbox", "methods", i),
                    f"{method!r} is not an async method of {port.name} "
                    f"(one of: {', '.join(async_methods)})",
                )
            )
    return problems


def boundary_problems(
    port: PortInfo,
    telemetry: Mapping[str, Any] | None,
    protection: Mapping[str, Any] | None,
) -> list[tuple[tuple[str | int, ...], str]]:
    """Every problem in the two sections, as ``(path, message)``; ``[]`` when both are valid.

    Paths are relative to the manifest entry, e.g. ``("protection", "retry", "attempts")``.
    Nothing is connected to (no Redis round trip): this is a static check.
    """
    return parse_sections(port, telemetry, protection)[2]
