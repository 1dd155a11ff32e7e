"""Router: choose which LLM provider serves a request, and fall back when one fails.

Contract
--------
* ``route`` returns a registered [Provider][portfolio_core.ports.router.Provider] that is, at the
  moment of the decision,
  *eligible*: not excluded by ``RouteOptions.exclude``, carrying every ``required_tags``,
  healthy, not cooling down, within its rate limit, and whose ``context_window`` fits the
  estimated prompt ([estimate_tokens][portfolio_core.ports.llm.estimate_tokens]) *plus*
  ``expected_output_tokens``; under ``COST_OPTIMIZED`` it must also have both prices.
  When none is eligible it raises
  [NoHealthyProviderError][portfolio_core.ports.errors.NoHealthyProviderError] carrying
  ``retry_after``
  (seconds until the first cooling provider is usable again).
* Ranking: only the lowest fallback ``group`` that has an eligible provider competes; within
  it the strategy picks. ``FALLBACK``: the first registered. ``ROUND_ROBIN``: in turn, so
  that over ``k x n`` decisions each of ``n`` eligible providers is chosen ``k`` times.
  ``SPECIALIST``: the provider with the fewest tags beyond the required ones (the most
  specialised; ties go to the first registered). ``COST_OPTIMIZED``: the cheapest by
  estimated input tokens x ``input_price_per_mtok`` + ``expected_output_tokens`` x
  ``output_price_per_mtok`` (ties: first registered).
* ``route`` only decides: it never counts against ``requests_per_minute``; a request counts
  when ``complete`` (or a streaming view) sends it.
* ``complete`` routes, calls the provider's LLM, and on a retryable failure retries within
  the provider's group excluding providers that already failed, then moves to the next
  fallback group. Every attempt is counted in that provider's health. A non-retryable error
  is raised at once. When every eligible provider has failed, ``complete`` raises
  ``NoHealthyProviderError`` whose ``__cause__`` is the last provider's error.
* Cooldown (capability ``COOLDOWN``): a provider that fails with an error carrying
  ``retry_after`` cools down for that long (an adapter may cap it) starting at the failure;
  other failures cool it for the adapter's configured time. It is eligible again once the
  cooldown has passed.
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
