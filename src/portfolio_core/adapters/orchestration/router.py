"""The reference Router: filter then rank providers, retry within a group, fall back across.

Decision (``route``)
    1. *Filter*: drop providers named in ``RouteOptions.exclude``, lacking a required tag,
       cooling down, marked unhealthy by a health check, at their ``requests_per_minute``
       limit, or whose ``context_window`` is smaller than the estimated input tokens plus
       ``expected_output_tokens``. The ``cost_optimized`` strategy also drops providers
       without both prices.
    2. *Group*: only the lowest fallback ``group`` that still has a provider competes.
    3. *Rank* within that group by the strategy: ``fallback`` (registration order),
       ``round_robin`` (rotating), ``specialist`` (fewest tags beyond the required ones,
       i.e. the most specialised provider), ``cost_optimized`` (estimated input tokens x input
       price + expected output tokens x output price, cheapest first).

``route`` only decides: a request counts against ``requests_per_minute`` when ``complete``
(or the LLM view's ``stream``) sends it.

Completion (``complete``)
    Every attempt is counted in the provider's statistics. A retryable failure (429,
    5xx/unavailable, timeout: a port error whose class is ``retryable``, the boundary's rule)
    cools the provider down — for ``retry_after`` seconds when the error carries a usable
    one (a negative hint counts as 0, and a hint longer than ``max_retry_after``, default
    300 s, counts as ``max_retry_after``, so a provider asking for the year 2099 or ``inf``
    is not disabled for good), else ``cooldown_seconds`` — once it has failed more than
    ``allowed_fails`` times in the last minute (a 429 cools at once), except when it is the
    only provider of its group and ``cooldown_single_provider_groups`` is off. The request is
    then retried within the group (never on a provider that already failed it) up to
    ``num_retries`` times, then moves to the next group. A non-retryable error (bad input) is
    raised at once. When nothing is left, `NoHealthyProviderError` is raised with
    ``retry_after`` (seconds until the first cooling provider is usable) and the last
    provider error as its cause.

Health checks call the provider LLM's ``ping()`` when it has one, else a one-token
completion. A failure marks the provider unhealthy until a check succeeds; transient
results (rate limited / 429, timeout / 408) leave the state unchanged. With
``health_check_interval`` set, ``start()`` runs them in the background and ``aclose()``
stops them.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field

from portfolio_core._tasks import cancel_and_wait
from portfolio_core.boundary.retry import is_retryable, retry_after_hint
from portfolio_core.ports import (
    LLM,
    Completion,
    CompletionChunk,
    CompletionOptions,
    ConflictError,
    HealthStatus,
    InvalidInputError,
    Message,
    NoHealthyProviderError,
    NotFoundError,
    PortError,
    PortTimeoutError,
    Provider,
    RateLimitedError,
    RouteOptions,
    Router,
    RouterCapability,
    RoutingStrategy,
    declare,
    estimate_tokens,
    require,
    supports,
)

__all__ = [
    "MemoryRouter",
    "MemoryRouterConfig",
    "ProviderSettings",
    "ProviderStats",
    "RoutedLLM",
    "RoutedLLMConfig",
]

_MINUTE = 60.0
_LATENCY_WINDOW = 512


class ProviderSettings(BaseModel):
    """Routing settings of one provider in a manifest (keyed by the provider's name)."""

    model_config = ConfigDict(extra="forbid")

    model: str | None = None
    """Model name sent to the LLM; defaults to the provider's name."""
    tags: list[str] = Field(default_factory=list)
    input_price_per_mtok: float | None = Field(default=None, ge=0)
    output_price_per_mtok: float | None = Field(default=None, ge=0)
    group: int = 0
    context_window: int = Field(default=8192, ge=1)
    rpm: int | None = Field(default=None, ge=1)
    """Requests per minute this router sends to the provider at most."""


class MemoryRouterConfig(BaseModel):
    """Manifest config of `MemoryRouter`."""

    model_config = ConfigDict(extra="forbid")

    strategy: RoutingStrategy = RoutingStrategy.FALLBACK
    providers: dict[str, ProviderSettings] = Field(default_factory=dict)
    num_retries: int = Field(default=2, ge=0)
    fallbacks: bool = True
    cooldown_seconds: float = Field(default=30.0, ge=0)
    max_retry_after: float = Field(default=300.0, ge=0)
    """Longest cooldown a provider's ``retry_after`` hint can impose."""
    allowed_fails: int = Field(default=0, ge=0)
    cooldown_single_provider_groups: bool = False
    health_check_interval: float | None = Field(default=None, gt=0)
    health_check_timeout: float = Field(default=5.0, gt=0)
    chars_per_token: float = Field(default=4.0, gt=0)


@dataclass(frozen=True, slots=True)
class ProviderStats:
    """A snapshot of one provider's health as the router sees it.

    Latencies cover every attempt (failed ones included); percentiles are over the last
    512 attempts.
    """

    name: str
    attempts: int
    successes: int
    failures: int
    healthy: bool
    cooling_for: float
    last_error: str
    mean_latency_ms: float | None
    p50_latency_ms: float | None = None
    p95_latency_ms: float | None = None


@dataclass(slots=True)
class _State:
    provider: Provider
    llm: LLM
    index: int
    tags: frozenset[str]
    cooldown_until: float = 0.0
    healthy: bool = True
    attempts: int = 0
    successes: int = 0
    failures: int = 0
    latency_total: float = 0.0
    last_error: str = ""
    recent_failures: deque[float] = field(default_factory=deque)
    recent_requests: deque[float] = field(default_factory=deque)
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=_LATENCY_WINDOW))

    def record_latency(self, seconds: float) -> None:
        self.latency_total += seconds
        self.latencies.append(seconds)

    def percentile_ms(self, q: float) -> float | None:
        if not self.latencies:
            return None
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000.0


class MemoryRouter:
    """An in-process router over registered LLM providers; see the module docstring.

    Construct directly and register providers::

        router = MemoryRouter(strategy="fallback", clock=time.monotonic)
        router.add_provider(Provider("fast", "m-1"), fast_llm)   # or: await register_provider

    or from a manifest, where it ``uses: {llms: [fast, flaky]}`` and the config's
    ``providers`` holds each provider's settings keyed by those names.
    """

    config_model: ClassVar[type[BaseModel]] = MemoryRouterConfig
    capabilities: ClassVar[frozenset[str]] = declare(
        RouterCapability.HEALTH_CHECKS, RouterCapability.COOLDOWN, RouterCapability.RATE_LIMITS
    )

    def __init__(
        self,
        strategy: RoutingStrategy | str = RoutingStrategy.FALLBACK,
        *,
        num_retries: int = 2,
        fallbacks: bool = True,
        cooldown_seconds: float = 30.0,
        max_retry_after: float = 300.0,
        allowed_fails: int = 0,
        cooldown_single_provider_groups: bool = False,
        health_check_interval: float | None = None,
        health_check_timeout: float = 5.0,
        chars_per_token: float = 4.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        try:
            self._strategy = RoutingStrategy(strategy)
        except ValueError as exc:
            raise InvalidInputError(f"unknown routing strategy {strategy!r}") from exc
        if num_retries < 0 or cooldown_seconds < 0 or allowed_fails < 0:
            raise InvalidInputError("num_retries, cooldown_seconds, allowed_fails must be >= 0")
        if not 0 <= max_retry_after < float("inf"):
            raise InvalidInputError(
                "max_retry_after must be a finite number >= 0", field="max_retry_after"
            )
        if health_check_interval is not None and health_check_interval <= 0:
            raise InvalidInputError("health_check_interval must be positive")
        self.num_retries = num_retries
        self.fallbacks = fallbacks
        self.cooldown_seconds = cooldown_seconds
        self.max_retry_after = max_retry_after
        self.allowed_fails = allowed_fails
        self.cooldown_single_provider_groups = cooldown_single_provider_groups
        self.health_check_interval = health_check_interval
        self.health_check_timeout = health_check_timeout
        self.chars_per_token = chars_per_token
        self._clock = clock
        self._states: dict[str, _State] = {}
        self._group_sizes: dict[int, int] = {}
        self._rr: dict[int, int] = {}
        self._health_task: asyncio.Task[None] | None = None

    @classmethod
    def from_config(cls, config: MemoryRouterConfig, *, llms: Mapping[str, LLM]) -> Self:
        """Build from a manifest: ``llms`` maps provider names to LLM adapters, in order."""
        unknown = sorted(set(config.providers) - set(llms))
        if unknown:
            raise InvalidInputError(
                f"router settings name providers that are not in uses.llms: {unknown}",
                field="providers",
            )
        router = cls(**config.model_dump(exclude={"providers"}))
        for name, llm in llms.items():
            s = config.providers.get(name, ProviderSettings())
            provider = Provider(
                name,
                s.model or name,
                frozenset(s.tags),
                s.context_window,
                s.input_price_per_mtok,
                s.output_price_per_mtok,
                s.group,
                s.rpm,
            )
            router.add_provider(provider, llm)
        return router

    def __repr__(self) -> str:
        return f"MemoryRouter(strategy={self._strategy.value!r}, providers={list(self._states)})"

    # -- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        """Start background health checks when an interval is configured. Idempotent."""
        if self.health_check_interval is not None and self._health_task is None:
            self._health_task = asyncio.create_task(self._health_loop())

    async def aclose(self) -> None:
        """Stop background health checks. Idempotent; the router stays usable."""
        task, self._health_task = self._health_task, None
        await cancel_and_wait(task)

    async def _health_loop(self) -> None:
        interval = self.health_check_interval or 1.0
        while True:
            for name in list(self._states):
                await self.health_check(name)
            await asyncio.sleep(interval)

    # -- registration ---------------------------------------------------------------------

    def add_provider(self, provider: Provider, llm: LLM) -> None:
        """Synchronous form of
        [register_provider][portfolio_core.ports.router.Router.register_provider] (same rules)."""
        existing = self._states.get(provider.name)
        if existing is not None:
            if existing.provider == provider and existing.llm is llm:
                return
            raise ConflictError(
                f"a different provider is already registered as {provider.name!r}", port="Router"
            )
        if not provider.name:
            raise InvalidInputError("a provider needs a name", field="name")
        self._states[provider.name] = _State(provider, llm, len(self._states), provider.tags)
        self._group_sizes[provider.group] = self._group_sizes.get(provider.group, 0) + 1

    async def register_provider(self, provider: Provider, llm: LLM) -> None:
        """Register ``provider``; idempotent for the same provider and LLM, else ConflictError."""
        self.add_provider(provider, llm)

    async def list_providers(self) -> list[Provider]:
        """The registered providers in registration order (a snapshot)."""
        return [s.provider for s in self._states.values()]

    async def set_strategy(self, strategy: RoutingStrategy | str) -> None:
        """Switch the strategy for the next decisions."""
        try:
            self._strategy = RoutingStrategy(strategy)
        except ValueError as exc:
            raise InvalidInputError(f"unknown routing strategy {strategy!r}") from exc

    @property
    def strategy(self) -> RoutingStrategy:
        return self._strategy

    def stats(self) -> list[ProviderStats]:
        """Per-provider attempts, outcomes, health and remaining cooldown (a snapshot)."""
        now = self._clock()
        return [
            ProviderStats(
                s.provider.name,
                s.attempts,
                s.successes,
                s.failures,
                s.healthy,
                max(0.0, s.cooldown_until - now),
                s.last_error,
                (s.latency_total / s.attempts * 1000.0) if s.attempts else None,
                s.percentile_ms(0.5),
                s.percentile_ms(0.95),
            )
            for s in self._states.values()
        ]

    # -- routing --------------------------------------------------------------------------

    async def route(
        self, messages: Sequence[Message], opts: RouteOptions | None = None
    ) -> Provider:
        """Pick the provider for ``messages``; raises NoHealthyProviderError when none fits."""
        opts = opts or RouteOptions()
        tokens = estimate_tokens(messages, chars_per_token=self.chars_per_token)
        return self._select(tokens, opts, opts.exclude, None).provider

    def _select(
        self,
        tokens: int,
        opts: RouteOptions,
        exclude: frozenset[str] | set[str],
        skip_groups: set[int] | None,
    ) -> _State:
        now = self._clock()
        strategy = opts.strategy or self._strategy
        need = tokens + opts.expected_output_tokens
        required = opts.required_tags
        priced = strategy is RoutingStrategy.COST_OPTIMIZED
        best_group: int | None = None
        group: list[_State] = []
        retry_after: float | None = None
        for s in self._states.values():
            p = s.provider
            if p.name in exclude or (skip_groups and p.group in skip_groups):
                continue
            if required and not required <= s.tags:
                continue
            if not s.healthy or p.context_window < need:
                continue
            if priced and (p.input_price_per_mtok is None or p.output_price_per_mtok is None):
                continue
            wait = self._wait(s, now)
            if wait > 0:
                retry_after = wait if retry_after is None else min(retry_after, wait)
                continue
            if best_group is None or p.group < best_group:
                best_group, group = p.group, [s]
            elif p.group == best_group:
                group.append(s)
        if not group:
            raise NoHealthyProviderError(
                "no provider can serve this request "
                f"(strategy {strategy.value}, {len(self._states)} registered, "
                f"{len(exclude)} excluded, ~{tokens} input tokens)",
                retry_after=retry_after,
                port="Router",
            )
        if len(group) == 1:
            return group[0]
        if strategy is RoutingStrategy.FALLBACK:
            return group[0]
        if strategy is RoutingStrategy.ROUND_ROBIN:
            assert best_group is not None  # noqa: S101  (set with the group)
            turn = self._rr.get(best_group, 0)
            self._rr[best_group] = turn + 1
            return group[turn % len(group)]
        if strategy is RoutingStrategy.SPECIALIST:
            return min(group, key=lambda s: (len(s.tags - required), s.index))
        out = opts.expected_output_tokens
        return min(
            group,
            key=lambda s: (
                tokens * (s.provider.input_price_per_mtok or 0.0)
                + out * (s.provider.output_price_per_mtok or 0.0),
                s.index,
            ),
        )

    @staticmethod
    def _wait(s: _State, now: float) -> float:
        """Seconds until ``s`` may be used (0 when usable now)."""
        wait = s.cooldown_until - now
        rpm = s.provider.requests_per_minute
        if rpm is not None:
            recent = s.recent_requests
            while recent and recent[0] <= now - _MINUTE:
                recent.popleft()
            if len(recent) >= rpm:
                wait = max(wait, recent[0] + _MINUTE - now)
        return wait

    # -- completion -----------------------------------------------------------------------

    def _plan(
        self, messages: Sequence[Message], opts: RouteOptions
    ) -> tuple[int, CompletionOptions, set[str]]:
        """The request's estimated tokens, the options sent to providers, and the providers
        excluded from the start; InvalidInputError for an empty conversation."""
        if not messages:
            raise InvalidInputError("the conversation is empty", field="messages")
        tokens = estimate_tokens(messages, chars_per_token=self.chars_per_token)
        base = opts.completion or CompletionOptions(max_tokens=opts.expected_output_tokens)
        return tokens, base, set(opts.exclude)

    async def complete(
        self, messages: Sequence[Message], opts: RouteOptions | None = None
    ) -> Completion:
        """Route and complete with retries and fallbacks; see the module docstring."""
        opts = opts or RouteOptions()
        tokens, base, failed = self._plan(messages, opts)
        tries_in_group: dict[int, int] = {}
        done_groups: set[int] = set()
        last_error: PortError | None = None
        for _ in range(len(self._states) + 1):
            try:
                state = self._select(tokens, opts, failed, done_groups)
            except NoHealthyProviderError as exc:
                if last_error is not None:
                    now = self._clock()
                    waits = [
                        w
                        for name in failed
                        if name in self._states and (w := self._wait(self._states[name], now)) > 0
                    ]
                    if exc.retry_after is not None:
                        waits.append(exc.retry_after)
                    raise NoHealthyProviderError(
                        f"every eligible provider failed; last error: {last_error}",
                        retry_after=min(waits) if waits else None,
                        port="Router",
                    ) from last_error
                raise
            provider = state.provider
            call_opts = base if base.model else dataclasses.replace(base, model=provider.model)
            try:
                completion = await self._attempt(state, messages, call_opts)
            except PortError as exc:
                if not is_retryable(exc):
                    raise
                last_error = exc
                failed.add(provider.name)
                group = provider.group
                tries_in_group[group] = tries_in_group.get(group, 0) + 1
                if tries_in_group[group] > self.num_retries:
                    done_groups.add(group)
                if not self.fallbacks:
                    done_groups.update(
                        s.provider.group for s in self._states.values() if s.provider.group != group
                    )
                continue
            return dataclasses.replace(completion, provider=provider.name)
        raise NoHealthyProviderError(  # pragma: no cover - the loop always returns or raises
            "routing did not converge", port="Router"
        )

    async def _attempt(
        self, state: _State, messages: Sequence[Message], opts: CompletionOptions
    ) -> Completion:
        start = self._clock()
        state.attempts += 1
        if state.provider.requests_per_minute is not None:
            state.recent_requests.append(start)
        try:
            completion = await state.llm.complete(messages, opts)
        except PortError as exc:
            if is_retryable(exc):
                self._record_failure(state, exc, start)
            else:
                state.record_latency(self._clock() - start)
                state.last_error = f"{type(exc).__name__}: {exc}"
            raise
        state.record_latency(self._clock() - start)
        state.successes += 1
        return completion

    def _record_failure(self, state: _State, exc: PortError, start: float) -> None:
        now = self._clock()
        state.record_latency(now - start)
        state.failures += 1
        state.last_error = f"{type(exc).__name__}: {exc}"
        recent = state.recent_failures
        recent.append(now)
        while recent and recent[0] <= now - _MINUTE:
            recent.popleft()
        alone = self._group_sizes.get(state.provider.group, 0) <= 1
        if alone and not self.cooldown_single_provider_groups:
            return
        if not isinstance(exc, RateLimitedError) and len(recent) <= self.allowed_fails:
            return
        hint = retry_after_hint(exc)
        seconds = self.cooldown_seconds if hint is None else min(hint, self.max_retry_after)
        state.cooldown_until = max(state.cooldown_until, now + seconds)

    def as_llm(self, opts: RouteOptions | None = None) -> RoutedLLM:
        """This router seen as an LLM (for an agent or pipeline step that wants one).

        ``complete`` routes with ``opts`` (its ``completion`` replaced by the call's
        options); ``stream`` picks a provider the same way and falls back to the next one
        while no chunk has been yielded yet.
        """
        return RoutedLLM(self, opts or RouteOptions())

    async def _stream(
        self, messages: Sequence[Message], opts: RouteOptions
    ) -> AsyncIterator[CompletionChunk]:
        tokens, base, failed = self._plan(messages, opts)
        for name, state in self._states.items():
            if not supports(state.llm, "llm.streaming"):
                failed.add(name)
        last_error: PortError | None = None
        for _ in range(len(self._states) + 1):
            try:
                state = self._select(tokens, opts, failed, None)
            except NoHealthyProviderError as exc:
                if last_error is not None:
                    raise NoHealthyProviderError(
                        f"every eligible provider failed; last error: {last_error}",
                        retry_after=exc.retry_after,
                        port="Router",
                    ) from last_error
                raise
            call_opts = (
                base if base.model else dataclasses.replace(base, model=state.provider.model)
            )
            start = self._clock()
            state.attempts += 1
            if state.provider.requests_per_minute is not None:
                state.recent_requests.append(start)
            started = False
            try:
                async for chunk in state.llm.stream(messages, call_opts):
                    started = True
                    yield chunk
            except PortError as exc:
                if not is_retryable(exc):
                    raise
                self._record_failure(state, exc, start)
                if started:
                    raise
                last_error = exc
                failed.add(state.provider.name)
                continue
            state.record_latency(self._clock() - start)
            state.successes += 1
            return

    # -- health ---------------------------------------------------------------------------

    async def health_check(self, name: str) -> HealthStatus:
        """Check ``name`` now (``ping()`` or a one-token completion); NotFoundError if unknown.

        Rate limiting (429) and timeouts (408) are transient: they are reported but leave the
        provider's health unchanged.
        """
        state = self._states.get(name)
        if state is None:
            raise NotFoundError(f"no provider named {name!r}", key=name, port="Router")
        start = self._clock()
        detail = "ok"
        try:
            async with asyncio.timeout(self.health_check_timeout):
                ping = getattr(state.llm, "ping", None)
                if callable(ping):
                    await ping()
                else:
                    await state.llm.complete(
                        [Message("user", "ping")],
                        CompletionOptions(model=state.provider.model, max_tokens=1),
                    )
            state.healthy = True
        except (RateLimitedError, PortTimeoutError, TimeoutError) as exc:
            detail = f"transient, ignored: {type(exc).__name__}: {exc}"
        except Exception as exc:
            state.healthy = False
            detail = f"{type(exc).__name__}: {exc}"
        latency = (self._clock() - start) * 1000.0
        return HealthStatus(name, state.healthy, latency, detail, datetime.now(UTC))


class RoutedLLMConfig(BaseModel):
    """Manifest config of `RoutedLLM` (``uses: {router: <router entry>}``)."""

    model_config = ConfigDict(extra="forbid")

    strategy: RoutingStrategy | None = None
    required_tags: list[str] = Field(default_factory=list)
    exclude: list[str] = Field(default_factory=list)
    expected_output_tokens: int = Field(default=256, ge=1)


class RoutedLLM:
    """An LLM that routes every call through a Router (see `MemoryRouter.as_llm`).

    Over any Router, ``complete`` calls ``router.complete`` with this adapter's route options
    (the call's CompletionOptions as ``completion``). Streaming needs a `MemoryRouter`
    (it picks the provider and falls back while nothing has been yielded); over another
    router the instance does not declare streaming and ``stream`` raises UnsupportedError.
    In a manifest: ``port: llm``, ``adapter: routed``, ``uses: {router: <entry>}``.
    """

    config_model: ClassVar[type[BaseModel]] = RoutedLLMConfig
    capabilities: frozenset[str] = declare("llm.streaming", "llm.tools")

    def __init__(self, router: Router, opts: RouteOptions | None = None) -> None:
        self._router = router
        self._opts = opts or RouteOptions()
        if not isinstance(router, MemoryRouter):
            self.capabilities = declare("llm.tools")

    @classmethod
    def from_config(cls, config: RoutedLLMConfig, *, router: Router) -> Self:
        """Build from a manifest over the router entry named in ``uses``."""
        return cls(
            router,
            RouteOptions(
                required_tags=frozenset(config.required_tags),
                expected_output_tokens=config.expected_output_tokens,
                exclude=frozenset(config.exclude),
                strategy=config.strategy,
            ),
        )

    def __repr__(self) -> str:
        return f"RoutedLLM({self._router!r})"

    async def complete(
        self, messages: Sequence[Message], opts: CompletionOptions | None = None
    ) -> Completion:
        """Route and complete; ``Completion.provider`` names the provider that answered."""
        route = dataclasses.replace(self._opts, completion=opts or self._opts.completion)
        return await self._router.complete(messages, route)

    async def stream(
        self, messages: Sequence[Message], opts: CompletionOptions | None = None
    ) -> AsyncIterator[CompletionChunk]:
        """Route and stream, falling back while nothing has been yielded."""
        require(self, "llm.streaming", "streaming through a router other than MemoryRouter")
        router = self._router
        assert isinstance(router, MemoryRouter)  # noqa: S101  (required above)
        route = dataclasses.replace(self._opts, completion=opts or self._opts.completion)
        async for chunk in router._stream(messages, route):
            yield chunk
