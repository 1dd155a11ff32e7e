"""The OpenAI-compatible endpoint, driven by the real ``openai`` SDK."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import openai
import pytest
from pydantic import SecretStr

from portfolio_core.adapters.http.openai_compatible import OpenAICompatibleLLM
from portfolio_core.adapters.memory.simulated_llm import (
    ScriptedToolCall,
    ScriptedTurn,
    SimulatedLLM,
)
from portfolio_core.portal import ApiKey, AuthConfig, OpenAIConfig, PortalConfig, Scope
from portfolio_core.ports import LLM, CompletionChunk, CompletionOptions, Message, ToolCall
from portfolio_core.testing.doubles import ScriptedLLM
from tests.portal.served import ServedRegistry

KEY = "openai-key-0123456789abcdef"
OTHER = "other-key-0123456789abcdef"
ANSWER = "Hello from the scripted model, streamed in pieces."


@pytest.fixture(scope="module")
def llm_portal() -> Iterator[ServedRegistry]:
    config = PortalConfig(
        auth=AuthConfig(
            keys=[
                ApiKey(name="app", secret=SecretStr(KEY)),
                ApiKey(name="other", secret=SecretStr(OTHER), scopes=[Scope(entries=["tools"])]),
            ]
        ),
        openai=OpenAIConfig(models={"assistant-1": "assistant", "tools-1": "tools"}),
    )
    server = ServedRegistry(config)
    server.add(LLM, lambda: SimulatedLLM([ANSWER], model="scripted-1"), name="assistant")
    turn = ScriptedTurn(tool_calls=[ScriptedToolCall(name="lookup", arguments={"q": "x"}, id="c1")])
    server.add(LLM, lambda: SimulatedLLM([turn]), name="tools")
    yield server
    server.stop()


def client(server: ServedRegistry, key: str = KEY) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{server.base}/v1", api_key=key, max_retries=0)


def test_completion(llm_portal: ServedRegistry) -> None:
    reply = client(llm_portal).chat.completions.create(
        model="assistant-1",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}],
        max_tokens=64,
        temperature=0,
    )
    assert reply.choices[0].message.content == ANSWER
    assert reply.choices[0].finish_reason == "stop"
    assert reply.model == "assistant-1"
    assert reply.usage is not None
    assert reply.usage.prompt_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens


def test_streamed_completion(llm_portal: ServedRegistry) -> None:
    stream = client(llm_portal).chat.completions.create(
        model="assistant-1",
        messages=[{"role": "user", "content": "Hi"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == ANSWER
    assert len([c for c in chunks if c.choices and c.choices[0].delta.content]) > 1
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes[-1] == "stop"
    assert all(f is None for f in finishes[:-1])
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.completion_tokens > 0


def test_tool_calls(llm_portal: ServedRegistry) -> None:
    reply = client(llm_portal).chat.completions.create(
        model="tools-1",
        messages=[{"role": "user", "content": "look it up"}],
        tools=[{"type": "function", "function": {"name": "lookup", "parameters": {}}}],
    )
    choice = reply.choices[0]
    assert choice.finish_reason == "tool_calls"
    assert choice.message.tool_calls is not None
    call = choice.message.tool_calls[0]
    assert (call.id, call.function.name, call.function.arguments) == ("c1", "lookup", '{"q": "x"}')


def test_streamed_tool_calls_reach_the_sdk_and_our_adapter_whole(
    llm_portal: ServedRegistry,
) -> None:
    """The endpoint streams tool calls as OpenAI does (an index, the id and name, the
    arguments as text), so the SDK and our own HTTP adapter both get the whole call."""
    stream = client(llm_portal).chat.completions.create(
        model="tools-1",
        messages=[{"role": "user", "content": "look it up"}],
        tools=[{"type": "function", "function": {"name": "lookup", "parameters": {}}}],
        stream=True,
    )
    pieces = [c.choices[0] for c in stream if c.choices]
    calls = [call for p in pieces for call in p.delta.tool_calls or ()]
    assert [(c.index, c.id, c.function.name) for c in calls] == [(0, "c1", "lookup")]
    assert calls[0].function.arguments == '{"q": "x"}'
    assert pieces[-1].finish_reason == "tool_calls"

    async def through_our_adapter() -> CompletionChunk:
        llm = OpenAICompatibleLLM(f"{llm_portal.base}/v1", "tools-1", api_key=KEY)
        try:
            chunks = [c async for c in llm.stream([Message("user", "look it up")])]
        finally:
            await llm.aclose()
        return chunks[-1]

    last = asyncio.run(through_our_adapter())
    assert last.finish_reason == "tool_calls"
    assert last.tool_calls == (ToolCall("c1", "lookup", {"q": "x"}),)


def test_sampling_options_reach_the_model() -> None:
    """top_p, top_k (an extension OpenAI lacks) and seed arrive in CompletionOptions, as our
    HTTP adapter sends them; omitted, they are the port's defaults."""
    config = PortalConfig(auth=AuthConfig(keys=[ApiKey(name="app", secret=SecretStr(KEY))]))
    server = ServedRegistry(config)
    model = ScriptedLLM(default="ok")
    server.add(LLM, lambda: model, name="assistant")

    async def ask(opts: CompletionOptions | None) -> None:
        llm = OpenAICompatibleLLM(f"{server.base}/v1", "assistant", api_key=KEY, send_top_k=True)
        try:
            await llm.complete([Message("user", "Hi")], opts)
        finally:
            await llm.aclose()

    try:
        asyncio.run(ask(CompletionOptions(temperature=0.7, top_p=0.9, top_k=40, seed=3)))
        asyncio.run(ask(None))
    finally:
        server.stop()
    sent, default = (call.kwargs["opts"] for call in model.calls_to("complete"))
    assert (sent.temperature, sent.top_p, sent.top_k, sent.seed) == (0.7, 0.9, 40, 3)
    assert (default.top_p, default.top_k, default.seed) == (1.0, 0, None)


def test_models_lists_what_the_key_may_use(llm_portal: ServedRegistry) -> None:
    assert sorted(m.id for m in client(llm_portal).models.list()) == ["assistant-1", "tools-1"]
    assert [m.id for m in client(llm_portal, OTHER).models.list()] == ["tools-1"]


def test_errors_are_the_sdk_exceptions(llm_portal: ServedRegistry) -> None:
    messages = [{"role": "user", "content": "Hi"}]
    with pytest.raises(openai.NotFoundError):
        client(llm_portal).chat.completions.create(model="nope", messages=messages)  # type: ignore[arg-type]
    with pytest.raises(openai.AuthenticationError):
        client(llm_portal, "wrong-key-0123456789abcdef").chat.completions.create(
            model="assistant-1",
            messages=messages,  # type: ignore[arg-type]
        )
    with pytest.raises(openai.PermissionDeniedError):
        client(llm_portal, OTHER).chat.completions.create(
            model="assistant-1",
            messages=messages,  # type: ignore[arg-type]
        )
    with pytest.raises(openai.BadRequestError) as info:
        client(llm_portal).chat.completions.create(model="assistant-1", messages=[], max_tokens=5)
    assert info.value.status_code == 400
