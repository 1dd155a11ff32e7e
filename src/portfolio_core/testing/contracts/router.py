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
from portfolio_core.testing.clauses import clause
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
