"""wrap() and boundary_problems(): the API the registry calls."""

from __future__ import annotations

import pytest

from portfolio_core.boundary import boundary_of, boundary_problems, unwrap, wrap
from portfolio_core.ports import (
    LLM,
    PORTS,
    Agent,
    Cache,
    CacheCapability,
    Message,
    Tokenizer,
    declare,
    port_by_key,
    supports,
)
from tests.ports.minimal_adapters import MinimalAgent, MinimalCache, MinimalLLM, MinimalTokenizer


def test_unconfigured_adapter_is_returned_as_is() -> None:
    cache = MinimalCache()
    out = wrap(
        cache,
        port=port_by_key("cache"),
        name="c",
        adapter_type="memory",
        telemetry=None,
        protection=None,
    )
    assert out is cache
    assert boundary_of(out) is None
    assert unwrap(out) is cache


def test_empty_protection_alone_is_zero_overhead() -> None:
    cache = MinimalCache()
    port = port_by_key("cache")
    assert (
        wrap(cache, port=port, name="c", adapter_type="m", telemetry=None, protection={}) is cache
    )


@pytest.mark.parametrize("port", PORTS, ids=lambda p: p.key)
def test_problems_of_valid_sections_are_empty(port: object) -> None:
    assert boundary_problems(port, {"spans": True}, {"retry": {"attempts": 2}}) == []  # type: ignore[arg-type]


def test_problems_list_every_error_with_its_path() -> None:
    problems = boundary_problems(
        port_by_key("cache"),
        {"spans": "often", "colour": 1},
        {
            "retry": {"attempts": 0},
            "rate_limit": {"limit": "lots"},
            "circuit_breaker": {"storage": "ftp://x"},
            "bogus": True,
        },
    )
    paths = {path for path, _ in problems}
    assert ("telemetry", "spans") in paths
    assert ("telemetry", "colour") in paths
    assert ("protection", "retry", "attempts") in paths
    assert ("protection", "rate_limit", "limit") in paths
    assert ("protection", "circuit_breaker", "storage") in paths
    assert ("protection", "bogus") in paths
    message = dict(problems)[("protection", "rate_limit", "limit")]
    assert "'lots'" in message


def test_lease_needs_fixed_window() -> None:
    problems = boundary_problems(
        port_by_key("cache"),
        None,
        {"rate_limit": {"limit": "5/second", "strategy": "moving_window", "lease": 4}},
    )
    assert [p for p, _ in problems] == [("protection", "rate_limit", "lease")]


def test_storage_secret_is_not_in_problems_or_repr() -> None:
    problems = boundary_problems(
        port_by_key("cache"),
        None,
        {"rate_limit": {"limit": "5/second", "storage": "ftp://user:hunter2@host"}},
    )
    assert problems
    assert all("hunter2" not in message for _, message in problems)


async def test_proxy_satisfies_port_and_forwards_capabilities() -> None:
    class Declared(MinimalCache):
        capabilities = declare(CacheCapability.TTL)

        def extra(self) -> str:
            return "forwarded"

    cache = Declared()
    proxy = wrap(
        cache, port=port_by_key("cache"), name="c", adapter_type="m", telemetry={}, protection=None
    )
    assert proxy is not cache
    assert isinstance(proxy, Cache)
    assert supports(proxy, CacheCapability.TTL)
    assert proxy.extra() == "forwarded"  # type: ignore[attr-defined]
    await proxy.put("k", 1)
    assert await proxy.get("k") == 1
    handle = boundary_of(proxy)
    assert handle is not None
    assert handle.stats["get"].calls == 1
    assert unwrap(proxy) is cache


async def test_llm_proxy_streams_and_counts() -> None:
    llm = wrap(
        MinimalLLM(),
        port=port_by_key("llm"),
        name="l",
        adapter_type="m",
        telemetry={},
        protection=None,
    )
    assert isinstance(llm, LLM)
    chunks = [c async for c in llm.stream([Message("user", "hi")])]
    assert "".join(c.text for c in chunks) == "hi"
    assert boundary_of(llm).stats["stream"].calls == 1  # type: ignore[union-attr]


def test_sync_port_gets_sync_proxy_and_forwards_properties() -> None:
    tok = wrap(
        MinimalTokenizer(),
        port=port_by_key("tokenizer"),
        name="t",
        adapter_type="m",
        telemetry={},
        protection={"retry": {"attempts": 2}},
    )
    assert isinstance(tok, Tokenizer)
    assert tok.decode(tok.encode("ab")) == "ab"
    assert tok.vocab_size == MinimalTokenizer().vocab_size


def test_agent_property_forwarded() -> None:
    agent = wrap(
        MinimalAgent(),
        port=port_by_key("agent"),
        name="a",
        adapter_type="m",
        telemetry={},
        protection=None,
    )
    assert isinstance(agent, Agent)
    assert agent.max_iterations == MinimalAgent().max_iterations


def test_invalid_configuration_raises_with_every_problem() -> None:
    with pytest.raises(ValueError, match=r"protection\.retry\.attempts.*|telemetry\.spans"):
        wrap(
            MinimalCache(),
            port=port_by_key("cache"),
            name="c",
            adapter_type="m",
            telemetry={"spans": "x"},
            protection={"retry": {"attempts": 0}},
        )


def test_fallback_configured_without_adapter_is_an_error() -> None:
    with pytest.raises(ValueError, match="fallback"):
        wrap(
            MinimalCache(),
            port=port_by_key("cache"),
            name="c",
            adapter_type="m",
            telemetry=None,
            protection={"fallback": {"adapter": "other"}},
        )


def test_proxy_class_is_built_once_per_port_whatever_the_configuration() -> None:
    from portfolio_core.boundary import _proxy

    cache, tokenizer = port_by_key("cache"), port_by_key("tokenizer")
    proxies = [
        wrap(
            MinimalCache(),
            port=cache,
            name=f"c{i}",
            adapter_type="m",
            telemetry={"spans": i % 2 == 0, "max_label_values": 1 + i},
            protection={"retry": {"attempts": 1 + i % 100, "backoff": i / 1000}},
        )
        for i in range(1_000)
    ]
    tokenizers = [
        wrap(
            MinimalTokenizer(),
            port=tokenizer,
            name=f"t{i}",
            adapter_type="m",
            telemetry={"max_label_values": 1 + i},
            protection=None,
        )
        for i in range(10)
    ]
    assert len({type(p) for p in proxies}) == 1
    assert len({type(t) for t in tokenizers}) == 1
    assert type(proxies[0]) is not type(tokenizers[0])
    assert sum(key[0] == "cache" for key in _proxy._CLASSES) == 1
    assert proxies[0].boundary_stats is not proxies[1].boundary_stats  # type: ignore[attr-defined]


def test_wrapping_an_adapter_that_lacks_port_methods_names_them() -> None:
    class HalfCache:
        async def get(self, key: str) -> object:
            return None

        delete = "not callable"

    with pytest.raises(TypeError) as info:
        wrap(
            HalfCache(),
            port=port_by_key("cache"),
            name="half",
            adapter_type="m",
            telemetry={},
            protection=None,
        )
    message = str(info.value)
    assert "HalfCache" in message
    assert "'half'" in message
    for missing in ("put()", "delete()", "clear()", "exists()", "get_many()", "put_many()"):
        assert missing in message
    assert "get()" not in message


def test_a_fallback_that_lacks_port_methods_is_named_too() -> None:
    class NoCache:
        pass

    with pytest.raises(TypeError, match=r"NoCache \(fallback 'c'\).*get\(\)"):
        wrap(
            MinimalCache(),
            port=port_by_key("cache"),
            name="c",
            adapter_type="m",
            telemetry=None,
            protection={"fallback": {"adapter": "other"}},
            fallback=NoCache(),
        )
