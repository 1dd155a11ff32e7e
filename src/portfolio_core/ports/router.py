"""Router: choose which LLM provider serves a request, and fall back when one fails.

Contract
--------
* ``route`` returns a registered [Provider][portfolio_core.ports.router.Provider] that is, at the
  moment of the decision,
  healthy, not cooling down, within its rate limit, and whose context window fits the
  estimated prompt. It never returns a provider excluded by ``RouteOptions.exclude``.
  When none qualifies it raises
  [NoHealthyProviderError][portfolio_core.ports.errors.NoHealthyProviderError]
  carrying ``retry_after`` (seconds until the first cooling provider is usable again).
* ``complete`` routes, calls the provider's LLM, and on a retryable failure retries within
  the provider's group excluding providers that already failed, then moves to the next
  fallback group. Every attempt is counted in that provider's health.
* ``register_provider`` is idempotent for an identical provider; registering a different
  provider under an existing name raises [ConflictError][portfolio_core.ports.errors.ConflictError].
* ``set_strategy`` takes effect for the next decision; decisions already made are unchanged.
* ``list_providers`` returns a snapshot; later registrations do not change it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from portfolio_core.ports.llm import LLM, Completion, CompletionOptions, Message

if TYPE_CHECKING:
    from datetime import datetime

__all__ = [
    "HealthStatus",
    "Provider",
    "RouteOptions",
    "Router",
    "RouterCapability",
    "RoutingStrategy",
]


class RoutingStrategy(StrEnum):
    """How a router ranks the providers that pass its filters."""

    FALLBACK = "fallback"
    ROUND_ROBIN = "round_robin"
    SPECIALIST = "specialist"
    COST_OPTIMIZED = "cost_optimized"


class RouterCapability(StrEnum):
    """Optional parts of the Router port."""

    HEALTH_CHECKS = "router.health_checks"
    COOLDOWN = "router.cooldown"
    RATE_LIMITS = "router.rate_limits"


@dataclass(frozen=True, slots=True)
class Provider:
    """A deployment a router can send requests to.

    Prices are per million tokens; a provider without prices is excluded by the
    ``cost_optimized`` strategy. ``group`` orders fallbacks: groups are tried in ascending
    order, providers within a group are interchangeable.
    """

    name: str
    model: str
    tags: frozenset[str] = field(default_factory=frozenset)
    context_window: int = 8192
    input_price_per_mtok: float | None = None
    output_price_per_mtok: float | None = None
    group: int = 0
    requests_per_minute: int | None = None


@dataclass(frozen=True, slots=True)
class RouteOptions:
    """Per-request routing inputs."""

    required_tags: frozenset[str] = field(default_factory=frozenset)
    expected_output_tokens: int = 256
    exclude: frozenset[str] = field(default_factory=frozenset)
    strategy: RoutingStrategy | None = None
    completion: CompletionOptions | None = None


@dataclass(frozen=True, slots=True)
class HealthStatus:
    """Result of one health check of a provider (or adapter)."""

    name: str
    healthy: bool
    latency_ms: float | None = None
    detail: str = ""
    checked_at: datetime | None = None


@runtime_checkable
class Router(Protocol):
    """Routes requests over registered LLM providers (async port)."""

    async def route(
        self, messages: Sequence[Message], opts: RouteOptions | None = None
    ) -> Provider:
        """Pick a provider for ``messages``; see the module docstring."""
        ...

    async def complete(
        self, messages: Sequence[Message], opts: RouteOptions | None = None
    ) -> Completion:
        """Route and complete with retries and fallbacks; ``Completion.provider`` says who."""
        ...

    async def register_provider(self, provider: Provider, llm: LLM) -> None:
        """Make ``provider`` (served by ``llm``) available for routing."""
        ...

    async def health_check(self, name: str) -> HealthStatus:
        """Check one provider now. Raises NotFoundError for an unknown name."""
        ...

    async def list_providers(self) -> list[Provider]:
        """A snapshot of the registered providers, in registration order."""
        ...

    async def set_strategy(self, strategy: RoutingStrategy) -> None:
        """Switch the ranking strategy for subsequent decisions."""
        ...
