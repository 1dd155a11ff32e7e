"""The reference router: filters, strategies, retries, fallbacks, cooldowns, health."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portfolio_core.adapters.memory.simulated_llm import SimulatedLLM
from portfolio_core.adapters.orchestration.router import MemoryRouter, MemoryRouterConfig
from portfolio_core.ports import (
    Completion,
    ConflictError,
    InvalidInputError,
    Message,
    NoHealthyProviderError,
    NotFoundError,
    Provider,
    RouteOptions,
    Router,
    RoutingStrategy,
    Usage,
)
from portfolio_core.testing.contracts.router import RouterContract

HI = [Message("user", "hello")]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(strategy: str = "fallback", **kw: object) -> tuple[MemoryRouter, Clock]:
    clock = Clock()
    return MemoryRouter(strategy, clock=clock, **kw), clock  # type: ignore[arg-type]


async def test_is_a_router_and_registration_is_idempotent() -> None:
    router, _ = make()
    assert isinstance(router, Router)
    llm = SimulatedLLM()
    await router.register_provider(Provider("a", "m"), llm)
    await router.register_provider(Provider("a", "m"), llm)
    with pytest.raises(ConflictError):
        await router.register_provider(Provider("a", "other"), llm)
    snapshot = await router.list_providers()
    router.add_provider(Provider("b", "m"), llm)
    assert [p.name for p in snapshot] == ["a"]


async def test_fallback_prefers_registration_order_then_lower_group() -> None:
    router, _ = make()
    router.add_provider(Provider("late", "m", group=1), SimulatedLLM())
    router.add_provider(Provider("first", "m"), SimulatedLLM())
    router.add_provider(Provider("second", "m"), SimulatedLLM())
    assert (await router.route(HI)).name == "first"


async def test_round_robin_rotates_within_the_group() -> None:
    router, _ = make("round_robin")
    for n in "abc":
        router.add_provider(Provider(n, "m"), SimulatedLLM())
    names = [(await router.route(HI)).name for _ in range(6)]
    assert names == ["a", "b", "c", "a", "b", "c"]


async def test_specialist_picks_the_most_specialised_tagged_provider() -> None:
    router, _ = make("specialist")
    router.add_provider(
        Provider("general", "m", frozenset({"code", "chat", "math"})), SimulatedLLM()
    )
    router.add_provider(Provider("coder", "m", frozenset({"code"})), SimulatedLLM())
    router.add_provider(Provider("chat", "m", frozenset({"chat"})), SimulatedLLM())
    opts = RouteOptions(required_tags=frozenset({"code"}))
    assert (await router.route(HI, opts)).name == "coder"
    with pytest.raises(NoHealthyProviderError):
        await router.route(HI, RouteOptions(required_tags=frozenset({"vision"})))


async def test_cost_optimized_ranks_by_estimated_cost_and_drops_unpriced() -> None:
    router, _ = make("cost_optimized")
    router.add_provider(Provider("free", "m"), SimulatedLLM())  # no price: excluded
    router.add_provider(
        Provider("cheap_in", "m", input_price_per_mtok=0.1, output_price_per_mtok=10),
        SimulatedLLM(),
    )
    router.add_provider(
        Provider("cheap_out", "m", input_price_per_mtok=5, output_price_per_mtok=1), SimulatedLLM()
    )
    long_prompt = [Message("user", "x" * 20_000)]  # ~5k input tokens
    assert (
        await router.route(long_prompt, RouteOptions(expected_output_tokens=10))
    ).name == "cheap_in"
    assert (await router.route(HI, RouteOptions(expected_output_tokens=4000))).name == "cheap_out"


async def test_strategy_switch_at_run_time_and_per_request() -> None:
    router, _ = make()
    for n in "ab":
        router.add_provider(Provider(n, "m"), SimulatedLLM())
    assert [(await router.route(HI)).name for _ in range(2)] == ["a", "a"]
    await router.set_strategy("round_robin")
    assert [(await router.route(HI)).name for _ in range(2)] == ["a", "b"]
    fb = RouteOptions(strategy=RoutingStrategy.FALLBACK)
    assert (await router.route(HI, fb)).name == "a"
    with pytest.raises(InvalidInputError):
        await router.set_strategy("nope")


async def test_context_window_and_exclusions_filter() -> None:
    router, _ = make()
    router.add_provider(Provider("small", "m", context_window=100), SimulatedLLM())
    router.add_provider(Provider("big", "m", context_window=100_000), SimulatedLLM())
    assert (await router.route(HI, RouteOptions(expected_output_tokens=10))).name == "small"
    assert (await router.route([Message("user", "y" * 2000)])).name == "big"
    assert (await router.route(HI, RouteOptions(exclude=frozenset({"small"})))).name == "big"


async def test_rate_limit_per_minute_with_retry_after() -> None:
    router, clock = make()
    router.add_provider(Provider("a", "m", requests_per_minute=2), SimulatedLLM())
    await router.complete(HI)
    clock.now += 10
    await router.complete(HI)
    with pytest.raises(NoHealthyProviderError) as info:
        await router.route(HI)
    assert info.value.retry_after == pytest.approx(50.0)
    clock.now += 50.5
    assert (await router.route(HI)).name == "a"


async def test_failure_retries_in_group_then_falls_back_and_cools_down() -> None:
    router, clock = make(cooldown_seconds=30)
    bad1 = SimulatedLLM(fail_every=1)
    bad2 = SimulatedLLM(fail_every=1)
    good = SimulatedLLM(["from backup"])
    router.add_provider(Provider("bad1", "m"), bad1)
    router.add_provider(Provider("bad2", "m"), bad2)
    router.add_provider(Provider("backup", "m", group=1), good)
    c = await router.complete(HI)
    assert (c.text, c.provider) == ("from backup", "backup")
    assert (bad1.calls, bad2.calls) == (1, 1)  # each failed provider tried once
    stats = {s.name: s for s in router.stats()}
    assert stats["bad1"].failures == 1
    assert stats["bad1"].cooling_for == pytest.approx(30)
    # cooling providers are skipped: the next request goes straight to the backup
    await router.complete(HI)
    assert (bad1.calls, bad2.calls) == (1, 1)
    clock.now += 31
    assert (await router.route(HI)).name == "bad1"


async def test_num_retries_bounds_attempts_per_group() -> None:
    router, _ = make(num_retries=0)
    bads = [SimulatedLLM(fail_every=1) for _ in range(3)]
    for i, llm in enumerate(bads):
        router.add_provider(Provider(f"bad{i}", "m"), llm)
    router.add_provider(Provider("backup", "m", group=1), SimulatedLLM())
    assert (await router.complete(HI)).provider == "backup"
    assert [b.calls for b in bads] == [1, 0, 0]


async def test_retry_after_is_honoured_for_429() -> None:
    router, clock = make(cooldown_seconds=30)
    router.add_provider(
        Provider("limited", "m"), SimulatedLLM(fail_every=1, fail_with="429", retry_after=5)
    )
    router.add_provider(Provider("other", "m"), SimulatedLLM())
    assert (await router.complete(HI)).provider == "other"
    assert {s.name: s.cooling_for for s in router.stats()}["limited"] == pytest.approx(5)
    clock.now += 5.1
    assert (await router.route(HI)).name == "limited"


@pytest.mark.parametrize(
    ("retry_after", "cooling_for"),
    [
        (float("inf"), 300.0),  # capped at max_retry_after
        (2_300_000_000.0, 300.0),  # "retry in the year 2099": capped too
        (1e308, 300.0),
        (float("nan"), 30.0),  # not a number: no hint, the router's own cooldown
        (-5.0, 0.0),  # in the past: usable again at once
        (42.0, 42.0),  # an ordinary hint is honoured
    ],
)
async def test_retry_after_is_capped_so_no_hint_disables_a_provider_for_good(
    retry_after: float, cooling_for: float
) -> None:
    router, clock = make(cooldown_seconds=30)
    router.add_provider(
        Provider("limited", "m"),
        SimulatedLLM(fail_every=2, fail_with="429", retry_after=retry_after),
    )
    router.add_provider(Provider("other", "m"), SimulatedLLM())
    assert (await router.complete(HI)).provider == "limited"  # call 1 succeeds
    assert (await router.complete(HI)).provider == "other"  # call 2: 429, falls over
    assert {s.name: s.cooling_for for s in router.stats()}["limited"] == pytest.approx(cooling_for)
    clock.now += cooling_for + 0.1
    assert (await router.route(HI)).name == "limited"


def test_max_retry_after_is_configurable_and_must_be_finite() -> None:
    cfg = MemoryRouterConfig.model_validate({"max_retry_after": 60})
    assert MemoryRouter.from_config(cfg, llms={}).max_retry_after == 60
    for bad in (-1.0, float("inf"), float("nan")):
        with pytest.raises(InvalidInputError, match="max_retry_after"):
            MemoryRouter(max_retry_after=bad)


async def test_allowed_fails_delays_cooldown_for_5xx() -> None:
    router, _ = make(allowed_fails=1)
    flaky = SimulatedLLM(fail_every=1)
    router.add_provider(Provider("flaky", "m"), flaky)
    router.add_provider(Provider("ok", "m"), SimulatedLLM())
    await router.complete(HI)
    assert (await router.route(HI)).name == "flaky"  # one failure tolerated
    await router.complete(HI)
    assert (await router.route(HI)).name == "ok"


async def test_single_provider_groups_are_exempt_from_cooldown_by_default() -> None:
    router, _ = make()
    flaky = SimulatedLLM(fail_every=2)
    router.add_provider(Provider("solo", "m"), flaky)
    router.add_provider(Provider("backup", "m", group=1), SimulatedLLM(["b"]))
    assert (await router.complete(HI)).provider == "solo"
    assert (await router.complete(HI)).provider == "backup"
    assert (await router.route(HI)).name == "solo"  # not cooled
    strict, _ = make(cooldown_single_provider_groups=True)
    strict.add_provider(Provider("solo", "m"), SimulatedLLM(fail_every=1))
    strict.add_provider(Provider("backup", "m", group=1), SimulatedLLM())
    await strict.complete(HI)
    assert (await strict.route(HI)).name == "backup"


async def test_no_healthy_provider_carries_retry_after_and_cause() -> None:
    router, _ = make(cooldown_seconds=12, cooldown_single_provider_groups=True)
    router.add_provider(Provider("a", "m"), SimulatedLLM(fail_every=1))
    with pytest.raises(NoHealthyProviderError) as info:
        await router.complete(HI)
    assert info.value.retry_after == pytest.approx(12)
    assert info.value.__cause__ is not None
    with pytest.raises(NoHealthyProviderError) as again:
        await router.route(HI)
    assert again.value.retry_after == pytest.approx(12)


async def test_no_fallbacks_stays_in_the_first_group() -> None:
    router, _ = make(fallbacks=False)
    router.add_provider(Provider("a", "m"), SimulatedLLM(fail_every=1))
    router.add_provider(Provider("b", "m", group=1), SimulatedLLM())
    with pytest.raises(NoHealthyProviderError):
        await router.complete(HI)


async def test_bad_input_is_raised_without_retry_and_counted() -> None:
    router, _ = make()
    router.add_provider(Provider("a", "m"), SimulatedLLM())
    with pytest.raises(InvalidInputError):
        await router.complete(
            HI,
            RouteOptions(
                completion=__import__("portfolio_core.ports", fromlist=["x"]).CompletionOptions(
                    max_tokens=0
                )
            ),
        )
    assert router.stats()[0].attempts == 1


async def test_model_of_the_provider_is_sent() -> None:
    router, _ = make()
    router.add_provider(Provider("a", "model-x"), SimulatedLLM())
    assert (await router.complete(HI)).model == "model-x"


async def test_health_checks_mark_unhealthy_and_ignore_transient() -> None:
    router, _ = make()
    down = SimulatedLLM()
    limited = SimulatedLLM(fail_with="429")
    router.add_provider(Provider("down", "m"), down)
    router.add_provider(Provider("limited", "m"), limited)
    router.add_provider(Provider("up", "m"), SimulatedLLM())
    down.down = True
    limited.down = True
    assert not (await router.health_check("down")).healthy
    status = await router.health_check("limited")
    assert status.healthy
    assert "transient" in status.detail
    assert (await router.route(HI)).name == "limited"
    limited.down = False
    await router.health_check("limited")
    down.down = False
    assert (await router.health_check("down")).healthy
    with pytest.raises(NotFoundError):
        await router.health_check("nope")


async def test_health_check_without_ping_uses_a_tiny_completion() -> None:
    class NoPing:
        calls = 0

        async def complete(self, messages: object, opts: object = None) -> object:
            NoPing.calls += 1
            raise __import__("portfolio_core.ports", fromlist=["x"]).UnavailableError("down")

        def stream(self, messages: object, opts: object = None) -> object:
            raise NotImplementedError

    router, _ = make()
    router.add_provider(Provider("np", "m"), NoPing())  # type: ignore[arg-type]
    assert not (await router.health_check("np")).healthy
    assert NoPing.calls == 1


async def test_background_health_checks_start_and_stop() -> None:
    router = MemoryRouter(health_check_interval=0.01)
    llm = SimulatedLLM()
    router.add_provider(Provider("a", "m"), llm)
    llm.down = True
    await router.start()
    await router.start()
    for _ in range(200):
        if not router.stats()[0].healthy:
            break
        await asyncio.sleep(0.01)
    assert not router.stats()[0].healthy
    await router.aclose()
    await router.aclose()
    llm.down = False
    await asyncio.sleep(0.03)
    assert not router.stats()[0].healthy  # no more checks after aclose


def test_from_config_wires_providers_in_order() -> None:
    cfg = MemoryRouterConfig.model_validate(
        {
            "strategy": "cost_optimized",
            "providers": {
                "fast": {
                    "model": "f-1",
                    "tags": ["chat"],
                    "input_price_per_mtok": 1,
                    "output_price_per_mtok": 2,
                    "rpm": 60,
                    "context_window": 4096,
                },
                "flaky": {"group": 1},
            },
        }
    )
    router = MemoryRouter.from_config(cfg, llms={"fast": SimulatedLLM(), "flaky": SimulatedLLM()})
    providers = asyncio.run(router.list_providers())
    assert [p.name for p in providers] == ["fast", "flaky"]
    assert providers[0] == Provider("fast", "f-1", frozenset({"chat"}), 4096, 1, 2, 0, 60)
    assert providers[1].model == "flaky"
    assert providers[1].group == 1
    assert router.strategy is RoutingStrategy.COST_OPTIMIZED
    with pytest.raises(InvalidInputError):
        MemoryRouter.from_config(
            MemoryRouterConfig.model_validate({"providers": {"ghost": {}}}), llms={}
        )


async def test_router_as_llm_completes_and_streams_with_fallback() -> None:
    from portfolio_core.adapters.orchestration.agent import MemoryAgent
    from portfolio_core.ports import LLM, CompletionOptions

    router, _ = make()
    router.add_provider(Provider("down", "m"), SimulatedLLM(["x"], fail_every=1))
    router.add_provider(Provider("up", "m"), SimulatedLLM(["streamed answer"], chunk_size=4))
    llm = router.as_llm()
    assert isinstance(llm, LLM)
    c = await llm.complete(HI, CompletionOptions(max_tokens=1))
    assert (c.text, c.provider) == ("streamed", "up")
    router2, _ = make()
    router2.add_provider(Provider("down", "m"), SimulatedLLM(["x"], fail_every=1))
    router2.add_provider(Provider("up", "m"), SimulatedLLM(["streamed answer"], chunk_size=4))
    chunks = [ch async for ch in router2.as_llm().stream(HI)]
    assert "".join(ch.text for ch in chunks) == "streamed answer"
    assert {s.name: s.failures for s in router2.stats()} == {"down": 1, "up": 0}
    agent = MemoryAgent(router.as_llm())
    assert (await agent.run("hi")).output == "streamed answer"


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2),  # group
            st.sets(st.sampled_from(["a", "b", "c"]), max_size=2),  # tags
            st.sampled_from([50, 8192]),  # context window
            st.booleans(),  # cooling
            st.booleans(),  # healthy
            st.one_of(st.none(), st.floats(0.1, 10)),  # price
        ),
        min_size=1,
        max_size=6,
    ),
    st.sampled_from(list(RoutingStrategy)),
    st.sets(st.sampled_from(["a", "b", "c"]), max_size=1),
    st.sets(st.integers(0, 5), max_size=2),
)
def test_route_only_returns_eligible_providers_of_the_lowest_group(
    specs: list[tuple[int, set[str], int, bool, bool, float | None]],
    strategy: RoutingStrategy,
    required: set[str],
    excluded_idx: set[int],
) -> None:
    router, clock = make(strategy.value)
    eligible = []
    for i, (group, tags, window, cooling, healthy, price) in enumerate(specs):
        name = f"p{i}"
        router.add_provider(
            Provider(name, "m", frozenset(tags), window, price, price, group), SimulatedLLM()
        )
        state = router._states[name]
        state.healthy = healthy
        if cooling:
            state.cooldown_until = clock.now + 5
        ok = (
            i not in excluded_idx
            and required <= tags
            and window >= 300
            and not cooling
            and healthy
            and (strategy is not RoutingStrategy.COST_OPTIMIZED or price is not None)
        )
        if ok:
            eligible.append((group, name))
    opts = RouteOptions(
        required_tags=frozenset(required),
        exclude=frozenset(f"p{i}" for i in excluded_idx),
        expected_output_tokens=256,
    )
    try:
        chosen = asyncio.run(router.route(HI, opts))
    except NoHealthyProviderError as exc:
        retry_after = exc.retry_after
        chosen = None
    if chosen is None:
        assert not eligible
        assert retry_after is None or any(spec[3] for spec in specs)
        return
    assert eligible
    lowest = min(g for g, _ in eligible)
    assert (chosen.group, chosen.name) in eligible
    assert chosen.group == lowest


async def test_rate_limit_holds_under_concurrent_requests() -> None:
    router, _ = make()
    slow = SimulatedLLM(["limited"], latency=0.01)
    router.add_provider(Provider("limited", "m", requests_per_minute=3), slow)
    router.add_provider(Provider("spill", "m", group=1), SimulatedLLM(["spill"]))
    answers = await asyncio.gather(*(router.complete(HI) for _ in range(5)))
    assert sorted(a.provider or "" for a in answers) == ["limited"] * 3 + ["spill"] * 2
    assert slow.calls == 3


class TestMemoryRouterContract(RouterContract):
    @pytest.fixture
    def make_adapter(self) -> Callable[..., MemoryRouter]:
        def make(clock: Callable[[], float] | None = None) -> MemoryRouter:
            return MemoryRouter(clock=clock or Clock())

        return make


async def test_stats_report_latency_percentiles() -> None:
    router, clock = make()

    class Timed:
        def __init__(self) -> None:
            self.n = 0

        async def complete(self, messages: object, opts: object = None) -> object:
            self.n += 1
            clock.now += 0.010 * self.n  # 10 ms, 20 ms, ... 100 ms
            return Completion("ok", "m", Usage(1, 1))

        def stream(self, messages: object, opts: object = None) -> object:
            raise NotImplementedError

    router.add_provider(Provider("t", "m"), Timed())  # type: ignore[arg-type]
    for _ in range(10):
        await router.complete(HI)
    (stats,) = router.stats()
    assert stats.attempts == 10
    assert stats.p50_latency_ms == pytest.approx(60.0)
    assert stats.p95_latency_ms == pytest.approx(100.0)
    assert stats.mean_latency_ms == pytest.approx(55.0)
