"""The scripted LLM: answers, usage, streaming, failure patterns."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from portfolio_core.adapters.memory.simulated_llm import (
    ScriptedTurn,
    SimulatedLLM,
    SimulatedLLMConfig,
)
from portfolio_core.ports import (
    LLM,
    CompletionOptions,
    InvalidInputError,
    Message,
    PortTimeoutError,
    RateLimitedError,
    UnavailableError,
)
from portfolio_core.testing.contracts.llm import LLMContract

HI = [Message("user", "hello there")]


async def test_serves_responses_in_turn_then_repeats_the_last() -> None:
    llm = SimulatedLLM(["one", "two"])
    assert isinstance(llm, LLM)
    texts = [(await llm.complete(HI)).text for _ in range(3)]
    assert texts == ["one", "two", "two"]


async def test_cycle_and_echo() -> None:
    cyc = SimulatedLLM(["a", "b"], cycle=True)
    assert [(await cyc.complete(HI)).text for _ in range(3)] == ["a", "b", "a"]
    echo = SimulatedLLM(echo=True)
    assert (await echo.complete(HI)).text == "hello there"


async def test_usage_is_always_reported() -> None:
    c = await SimulatedLLM(["four words right here"]).complete(HI)
    assert c.usage.input_tokens > 0
    assert c.usage.output_tokens == 4
    assert c.finish_reason == "stop"


async def test_function_script_and_tool_calls() -> None:
    def script(messages: object) -> ScriptedTurn:
        return ScriptedTurn.model_validate({"tool_calls": [{"name": "add", "arguments": {"a": 1}}]})

    c = await SimulatedLLM(script).complete(HI)
    assert c.finish_reason == "tool_calls"
    assert c.tool_calls[0].name == "add"
    assert dict(c.tool_calls[0].arguments) == {"a": 1}


async def test_max_tokens_and_stop() -> None:
    llm = SimulatedLLM(["a b c d e"])
    c = await llm.complete(HI, CompletionOptions(max_tokens=2))
    assert (c.text, c.finish_reason, c.usage.output_tokens) == ("a b", "length", 2)
    c = await llm.complete(HI, CompletionOptions(stop=(" c",)))
    assert c.text == "a b"


async def test_stream_concatenates_to_complete() -> None:
    llm = SimulatedLLM(["the quick brown fox jumps"], chunk_size=3)
    chunks = [c async for c in llm.stream(HI)]
    assert "".join(c.text for c in chunks) == "the quick brown fox jumps"
    assert chunks[-1].usage is not None
    assert chunks[-1].finish_reason == "stop"
    assert all(c.usage is None for c in chunks[:-1])


@pytest.mark.parametrize(
    ("kind", "error"),
    [("429", RateLimitedError), ("500", UnavailableError), ("timeout", PortTimeoutError)],
)
async def test_fail_every_nth_call(kind: str, error: type[Exception]) -> None:
    llm = SimulatedLLM(["ok"], fail_every=3, fail_with=kind, retry_after=2.5)  # type: ignore[arg-type]
    await llm.complete(HI)
    await llm.complete(HI)
    with pytest.raises(error) as info:
        await llm.complete(HI)
    if kind == "429":
        assert info.value.retry_after == 2.5  # type: ignore[attr-defined]
    await llm.complete(HI)
    assert (llm.calls, llm.failures) == (4, 1)


async def test_seeded_failures_are_reproducible() -> None:
    async def pattern(seed: int) -> list[bool]:
        llm = SimulatedLLM(["ok"], fail_probability=0.5, seed=seed)
        out = []
        for _ in range(20):
            try:
                await llm.complete(HI)
                out.append(True)
            except UnavailableError:
                out.append(False)
        return out

    first = await pattern(7)
    assert first == await pattern(7)
    assert 0 < first.count(False) < 20


async def test_latency_uses_the_injected_sleep() -> None:
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    await SimulatedLLM(latency=0.25, sleep=sleep).complete(HI)
    assert slept == [0.25]


async def test_down_fails_calls_and_ping() -> None:
    llm = SimulatedLLM()
    await llm.ping()
    llm.down = True
    with pytest.raises(UnavailableError):
        await llm.ping()
    with pytest.raises(UnavailableError):
        await llm.complete(HI)


async def test_bad_input() -> None:
    with pytest.raises(InvalidInputError):
        await SimulatedLLM().complete([])
    with pytest.raises(InvalidInputError):
        SimulatedLLM(fail_every=0)


def test_from_config() -> None:
    cfg = SimulatedLLMConfig.model_validate(
        {"responses": ["x", {"text": "", "tool_calls": [{"name": "t"}]}], "fail_every": 2}
    )
    llm = SimulatedLLM.from_config(cfg)
    assert llm.fail_every == 2
    assert "calls=0" in repr(llm)


class TestSimulatedLLMContract(LLMContract):
    @pytest.fixture
    def make_adapter(self) -> type[SimulatedLLM]:
        return SimulatedLLM


class TestEchoingSimulatedLLMContract(LLMContract):
    @pytest.fixture
    def make_adapter(self) -> Callable[[], SimulatedLLM]:
        return lambda: SimulatedLLM(echo=True, chunk_size=2)
