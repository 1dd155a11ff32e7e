"""Contract suite of the Router port (async)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portfolio_core.ports.errors import (
    ConflictError,
    InvalidInputError,
    NoHealthyProviderError,
    NotFoundError,
    PortError,
    RateLimitedError,
    UnavailableError,
)
from portfolio_core.ports.llm import (
    Completion,
    CompletionChunk,
    CompletionOptions,
    LLMCapability,
    Message,
    Usage,
)
from portfolio_core.ports.router import (
    HealthStatus,
    Provider,
    RouteOptions,
    Router,
    RouterCapability,
    RoutingStrategy,
)
from portfolio_core.testing.clauses import clause, requires
from portfolio_core.testing.clock import FakeClock
from portfolio_core.testing.loop import LoopRunner, close_adapter, open_adapter
from portfolio_core.testing.machines import property_settings
from portfolio_core.testing.plugin import KitSettings
from portfolio_core.testing.suite import ContractSuite, Factory

__all__ = ["RouterContract", "StaticLLM"]

HELLO = (Message("user", "hello"),)


class StaticLLM:
    """An LLM answering with its name, or raising ``error`` on every call; counts calls."""

    capabilities = frozenset({LLMCapability.OFFLINE.value})

    def __init__(self, name: str, error: PortError | None = None) -> None:
        self.name = name
        self.error = error
        self.calls = 0

    async def complete(
        self, messages: Sequence[Message], opts: CompletionOptions | None = None
    ) -> Completion:
        self.calls += 1
        if self.error is not None:
            raise self.error
        return Completion(f"from {self.name}", self.name, Usage(1, 2), provider=self.name)

    async def stream(
        self, messages: Sequence[Message], opts: CompletionOptions | None = None
    ) -> AsyncIterator[CompletionChunk]:
        completion = await self.complete(messages, opts)
        yield CompletionChunk(completion.text, "stop", completion.usage)


_TAGS = ["code", "chat", "vision"]


@st.composite
def _providers(draw: Any) -> list[Provider]:
    count = draw(st.integers(1, 5))
    found = []
    for i in range(count):
        priced = draw(st.booleans())
        found.append(
            Provider(
                name=f"p{i}",
                model=f"model-{i}",
                tags=frozenset(draw(st.sets(st.sampled_from(_TAGS), max_size=2))),
                context_window=draw(st.sampled_from([8192, 32768])),
                input_price_per_mtok=draw(st.floats(0.1, 30)) if priced else None,
                output_price_per_mtok=draw(st.floats(0.1, 60)) if priced else None,
                group=draw(st.integers(0, 2)),
            )
        )
    return found


class RouterContract(ContractSuite[Router]):
    """The promises of [Router][portfolio_core.ports.Router] (see docs/ports/router.md)."""

    port_key = "router"
    capability_names = frozenset(c.value for c in RouterCapability)

    async def put_probe(self, adapter: Router) -> str:
        await adapter.register_provider(Provider("kit-probe", "m"), StaticLLM("kit-probe"))
        return "kit-probe"

    async def has_probe(self, adapter: Router, probe: str) -> bool:
        return any(p.name == probe for p in await adapter.list_providers())

    @clause(
        "router.route.registered_healthy",
        "route returns a registered, non-excluded provider with the required tags, or raises "
        "NoHealthyProviderError when none qualifies",
    )
    def test_route_property(
        self,
        make_adapter: Factory,
        kit_runner: LoopRunner,
        kit_clock: FakeClock,
        kit_settings: KitSettings,
    ) -> None:
        @property_settings(kit_settings)
        @given(
            providers=_providers(),
            required=st.sets(st.sampled_from(_TAGS), max_size=1),
            exclude=st.sets(st.sampled_from([f"p{i}" for i in range(5)]), max_size=3),
            strategy=st.sampled_from(list(RoutingStrategy)),
        )
        def route_property(
            providers: list[Provider],
            required: set[str],
            exclude: set[str],
            strategy: RoutingStrategy,
        ) -> None:
            kit_runner.run(
                self._check_route(make_adapter, kit_clock, providers, required, exclude, strategy)
            )

        route_property()

    async def _check_route(
        self,
        factory: Factory,
        clock: FakeClock,
        providers: list[Provider],
        required: set[str],
        exclude: set[str],
        strategy: RoutingStrategy,
    ) -> None:
        router: Router = await open_adapter(factory, clock=clock)
        try:
            for p in providers:
                await router.register_provider(p, StaticLLM(p.name))
            await router.set_strategy(strategy)
            qualifying = {
                p.name
                for p in providers
                if p.name not in exclude
                and required <= p.tags
                and (
                    strategy is not RoutingStrategy.COST_OPTIMIZED
                    or p.input_price_per_mtok is not None
                )
            }
            opts = RouteOptions(required_tags=frozenset(required), exclude=frozenset(exclude))
            try:
                chosen = await router.route(list(HELLO), opts)
            except NoHealthyProviderError:
                assert not qualifying, (
                    f"route raised NoHealthyProviderError although {sorted(qualifying)} qualify "
                    f"(strategy {strategy}, required {sorted(required)}, exclude {sorted(exclude)})"
                )
                return
            assert chosen.name in qualifying, (
                f"route returned {chosen.name!r}, which does not qualify; qualifying: "
                f"{sorted(qualifying)} (strategy {strategy}, required {sorted(required)}, "
                f"exclude {sorted(exclude)})"
            )
            assert chosen in providers, "route returned a provider that was never registered"
        finally:
            await close_adapter(router)

    @clause(
        "router.route.empty", "with no provider registered, route raises NoHealthyProviderError"
    )
    async def test_route_without_providers(self, adapter: Router) -> None:
        with pytest.raises(NoHealthyProviderError):
            await adapter.route(list(HELLO))

    @clause("router.complete.provider", "complete names the provider that served it")
    async def test_complete_names_provider(self, adapter: Router) -> None:
        await adapter.register_provider(Provider("a", "model-a"), StaticLLM("a"))
        completion = await adapter.complete(list(HELLO))
        assert completion.provider == "a"
        assert completion.text == "from a"

    @clause(
        "router.complete.fallback",
        "a retryable failure falls back to the next group, and the attempt is counted",
    )
    async def test_complete_falls_back(self, adapter: Router) -> None:
        failing = StaticLLM("a", UnavailableError("down"))
        await adapter.register_provider(Provider("a", "model-a", group=0), failing)
        await adapter.register_provider(Provider("b", "model-b", group=1), StaticLLM("b"))
        completion = await adapter.complete(list(HELLO))
        assert completion.provider == "b"
        assert failing.calls >= 1, "the first group's provider was never tried"

    @clause(
        "router.complete.non_retryable",
        "a non-retryable failure is raised to the caller, not hidden by a fallback",
    )
    async def test_non_retryable_is_raised(self, adapter: Router) -> None:
        spare = StaticLLM("b")
        bad = StaticLLM("a", InvalidInputError("bad request"))
        await adapter.register_provider(Provider("a", "model-a", group=0), bad)
        await adapter.register_provider(Provider("b", "model-b", group=1), spare)
        with pytest.raises(InvalidInputError):
            await adapter.complete(list(HELLO))
        assert spare.calls == 0, "a non-retryable error must not be retried elsewhere"

    @clause("router.register.idempotent", "registering an identical provider again changes nothing")
    async def test_register_idempotent(self, adapter: Router) -> None:
        provider = Provider("a", "model-a", tags=frozenset({"chat"}))
        llm = StaticLLM("a")
        await adapter.register_provider(provider, llm)
        await adapter.register_provider(provider, llm)
        assert [p.name for p in await adapter.list_providers()] == ["a"]

    @clause(
        "router.register.conflict",
        "registering a different provider under an existing name raises ConflictError",
    )
    async def test_register_conflict(self, adapter: Router) -> None:
        await adapter.register_provider(Provider("a", "model-a"), StaticLLM("a"))
        with pytest.raises(ConflictError):
            await adapter.register_provider(Provider("a", "model-other"), StaticLLM("a"))
        assert [p.model for p in await adapter.list_providers()] == ["model-a"]

    @clause("router.list.snapshot", "list_providers is a snapshot in registration order")
    async def test_list_snapshot(self, adapter: Router) -> None:
        for name in ("c", "a", "b"):
            await adapter.register_provider(Provider(name, f"model-{name}"), StaticLLM(name))
        listed = await adapter.list_providers()
        assert [p.name for p in listed] == ["c", "a", "b"]
        await adapter.register_provider(Provider("d", "model-d"), StaticLLM("d"))
        listed.clear()
        assert [p.name for p in await adapter.list_providers()] == ["c", "a", "b", "d"]

    @clause("router.health_check.unknown", "health_check of an unknown name raises NotFoundError")
    async def test_health_check_unknown(self, adapter: Router) -> None:
        with pytest.raises(NotFoundError):
            await adapter.health_check("nobody")

    @clause("router.health_check.known", "health_check of a provider reports on that provider")
    async def test_health_check_known(self, adapter: Router) -> None:
        await adapter.register_provider(Provider("a", "model-a"), StaticLLM("a"))
        status = await adapter.health_check("a")
        assert isinstance(status, HealthStatus)
        assert status.name == "a"

    @clause("router.exclude.respected", "route never returns an excluded provider")
    async def test_exclude(self, adapter: Router) -> None:
        await adapter.register_provider(Provider("a", "model-a"), StaticLLM("a"))
        await adapter.register_provider(Provider("b", "model-b"), StaticLLM("b"))
        for _ in range(4):
            chosen = await adapter.route(list(HELLO), RouteOptions(exclude=frozenset({"a"})))
            assert chosen.name == "b"
        with pytest.raises(NoHealthyProviderError):
            await adapter.route(list(HELLO), RouteOptions(exclude=frozenset({"a", "b"})))

    # -- the decision rules ------------------------------------------------------------------

    async def _register(self, router: Router, *providers: Provider) -> dict[str, StaticLLM]:
        llms = {}
        for provider in providers:
            llms[provider.name] = StaticLLM(provider.name)
            await router.register_provider(provider, llms[provider.name])
        return llms

    @clause(
        "router.route.groups",
        "only the lowest fallback group with an eligible provider competes; FALLBACK picks "
        "the first registered of that group",
    )
    async def test_route_lowest_group_first(self, adapter: Router) -> None:
        await self._register(
            adapter, Provider("a", "m", group=1), Provider("b", "m"), Provider("c", "m")
        )
        await adapter.set_strategy(RoutingStrategy.FALLBACK)

        async def pick(*excluded: str) -> str:
            return (
                await adapter.route(list(HELLO), RouteOptions(exclude=frozenset(excluded)))
            ).name

        assert await pick() == "b", "group 0 comes before group 1, registration order within"
        assert await pick("b") == "c"
        assert await pick("b", "c") == "a", "the next group serves when group 0 has no one"

    @clause(
        "router.strategy.specialist",
        "SPECIALIST picks the provider with the fewest tags beyond the required ones "
        "(ties: registration order)",
    )
    async def test_specialist(self, adapter: Router) -> None:
        await self._register(
            adapter,
            Provider("all", "m", tags=frozenset({"code", "chat", "vision"})),
            Provider("two", "m", tags=frozenset({"code", "chat"})),
            Provider("one", "m", tags=frozenset({"code"})),
            Provider("other", "m", tags=frozenset({"chat"})),
        )
        code = frozenset({"code"})
        opts = RouteOptions(required_tags=code, strategy=RoutingStrategy.SPECIALIST)
        assert (await adapter.route(list(HELLO), opts)).name == "one"
        opts = RouteOptions(
            required_tags=code, strategy=RoutingStrategy.SPECIALIST, exclude=frozenset({"one"})
        )
        assert (await adapter.route(list(HELLO), opts)).name == "two"
        opts = RouteOptions(strategy=RoutingStrategy.SPECIALIST)
        assert (await adapter.route(list(HELLO), opts)).name == "one", (
            "without required tags the provider with fewest tags wins, the first registered "
            "of equals"
        )

    @clause(
        "router.strategy.cost",
        "COST_OPTIMIZED ranks by estimated input tokens x input price + expected output "
        "tokens x output price, and skips providers without both prices",
    )
    async def test_cost_formula(self, adapter: Router) -> None:
        wide = 1_000_000
        await self._register(
            adapter,
            Provider("unpriced", "m", context_window=wide),
            Provider("output-only", "m", context_window=wide, output_price_per_mtok=0.01),
            Provider(
                "cheap-in",
                "m",
                context_window=wide,
                input_price_per_mtok=1,
                output_price_per_mtok=100,
            ),
            Provider(
                "cheap-out",
                "m",
                context_window=wide,
                input_price_per_mtok=100,
                output_price_per_mtok=1,
            ),
        )
        await adapter.set_strategy(RoutingStrategy.COST_OPTIMIZED)
        short = list(HELLO)
        long = [Message("user", "x" * 40_000)]
        chosen = await adapter.route(short, RouteOptions(expected_output_tokens=10_000))
        assert chosen.name == "cheap-out", (
            "a short prompt with 10000 output tokens is cheapest on 'cheap-out', "
            f"not {chosen.name!r}"
        )
        chosen = await adapter.route(long, RouteOptions(expected_output_tokens=1))
        assert chosen.name == "cheap-in", (
            "a 10000-token prompt with 1 output token is cheapest on 'cheap-in', "
            f"not {chosen.name!r}"
        )

    @clause(
        "router.strategy.round_robin",
        "ROUND_ROBIN rotates over the eligible providers of the lowest group: over k x n "
        "decisions each of n providers is chosen k times",
    )
    async def test_round_robin(self, adapter: Router) -> None:
        await self._register(
            adapter,
            Provider("a", "m"),
            Provider("b", "m"),
            Provider("c", "m"),
            Provider("spare", "m", group=1),
        )
        await adapter.set_strategy(RoutingStrategy.ROUND_ROBIN)
        chosen = [(await adapter.route(list(HELLO))).name for _ in range(6)]
        assert sorted(chosen) == ["a", "a", "b", "b", "c", "c"], f"chosen in turn: {chosen}"

    @clause(
        "router.route.context_window",
        "a provider is eligible only when its context window fits the estimated prompt plus "
        "expected_output_tokens",
    )
    async def test_context_window(self, adapter: Router) -> None:
        await self._register(
            adapter, Provider("small", "m", context_window=300), Provider("big", "m")
        )
        await adapter.set_strategy(RoutingStrategy.FALLBACK)
        fits = await adapter.route(list(HELLO), RouteOptions(expected_output_tokens=100))
        assert fits.name == "small"
        over = await adapter.route(list(HELLO), RouteOptions(expected_output_tokens=1_000))
        assert over.name == "big", "the prompt alone fits 'small', but not with the output"

    @clause(
        "router.complete.all_fail",
        "when every eligible provider fails retryably, complete raises NoHealthyProviderError "
        "from the last failure, after trying each once",
    )
    async def test_complete_when_every_provider_fails(self, adapter: Router) -> None:
        down = [StaticLLM(n, UnavailableError(f"{n} down")) for n in ("a", "b", "c")]
        for group, llm in zip((0, 0, 1), down, strict=True):
            await adapter.register_provider(Provider(llm.name, "m", group=group), llm)
        with pytest.raises(NoHealthyProviderError) as info:
            await adapter.complete(list(HELLO))
        assert isinstance(info.value.__cause__, UnavailableError), (
            f"the last provider failure is not the cause: {info.value.__cause__!r}"
        )
        assert [llm.calls for llm in down] == [1, 1, 1], (
            f"calls per provider {[llm.calls for llm in down]}: each must be tried once"
        )

    @clause(
        "router.rate_limit.route_does_not_count",
        "route only decides: it never counts against requests_per_minute; complete does",
    )
    @requires(RouterCapability.RATE_LIMITS)
    async def test_route_does_not_consume_rate(self, adapter: Router) -> None:
        await self._register(
            adapter, Provider("limited", "m", requests_per_minute=1), Provider("spare", "m")
        )
        await adapter.set_strategy(RoutingStrategy.FALLBACK)
        for _ in range(3):
            assert (await adapter.route(list(HELLO))).name == "limited", (
                "route counted against the rate limit"
            )
        assert (await adapter.complete(list(HELLO))).provider == "limited"
        assert (await adapter.route(list(HELLO))).name == "spare", (
            "a sent request did not count against requests_per_minute=1"
        )

    @clause(
        "router.cooldown.start",
        "a provider that fails with a retry_after hint cools down from the failure for that "
        "long, then is eligible again",
    )
    @requires(RouterCapability.COOLDOWN)
    async def test_cooldown_starts_at_failure(self, adapter: Router, clock: FakeClock) -> None:
        limited = StaticLLM("first", RateLimitedError("slow down", retry_after=5))
        await adapter.register_provider(Provider("first", "m"), limited)
        await adapter.register_provider(Provider("second", "m"), StaticLLM("second"))
        await adapter.set_strategy(RoutingStrategy.FALLBACK)
        clock.advance(100)  # the cooldown starts at the failure, not at registration
        assert (await adapter.complete(list(HELLO))).provider == "second"
        limited.error = None
        clock.advance(4.9)
        assert (await adapter.route(list(HELLO))).name == "second", "the cooldown ended early"
        clock.advance(0.2)
        assert (await adapter.route(list(HELLO))).name == "first", (
            "the provider was still cooling after its retry_after had passed"
        )
