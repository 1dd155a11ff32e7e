"""Contract suite of the LLM port (async)."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from portfolio_core.ports.capabilities import supports
from portfolio_core.ports.errors import InvalidInputError
from portfolio_core.ports.llm import (
    LLM,
    Completion,
    CompletionChunk,
    CompletionOptions,
    LLMCapability,
    Message,
    ToolCall,
    ToolSpec,
)
from portfolio_core.testing.clauses import (
    clause,
    expect_unsupported,
    requires,
    requires_absent,
)
from portfolio_core.testing.suite import ContractSuite

__all__ = ["LLMContract"]

CONVERSATION = (
    Message("system", "You are terse."),
    Message("user", "Say hello."),
)
GREEDY = CompletionOptions(max_tokens=16, temperature=0.0, seed=7)
FINISH_REASONS = {"stop", "length", "tool_calls"}
LOOKUP = ToolSpec(
    "lookup",
    "Look a word up in the dictionary",
    {"type": "object", "properties": {"word": {"type": "string"}}, "required": ["word"]},
)
TOOL_CONVERSATION = (Message("user", "Use the lookup tool to look up the word 'port'."),)


async def _collect(llm: LLM, opts: CompletionOptions | None = None) -> list[CompletionChunk]:
    return [chunk async for chunk in llm.stream(list(CONVERSATION), opts)]


class LLMContract(ContractSuite[LLM]):
    """The promises of [LLM][portfolio_core.ports.LLM] (see docs/ports/llm.md)."""

    port_key = "llm"
    capability_names = frozenset(c.value for c in LLMCapability)

    @clause("llm.complete.usage", "complete returns a completion whose usage is filled in")
    async def test_complete_reports_usage(self, adapter: LLM) -> None:
        completion = await adapter.complete(list(CONVERSATION), GREEDY)
        assert isinstance(completion, Completion)
        assert isinstance(completion.text, str)
        assert completion.usage is not None, "usage must always be filled in"
        assert completion.usage.input_tokens > 0, "a non-empty prompt has input tokens"
        assert completion.usage.output_tokens >= 0
        assert completion.finish_reason in FINISH_REASONS, completion.finish_reason
        assert bool(completion.tool_calls) == (completion.finish_reason == "tool_calls"), (
            "finish_reason is 'tool_calls' exactly when the completion carries tool calls"
        )

    @clause("llm.complete.max_tokens", "a completion never has more output tokens than max_tokens")
    @pytest.mark.parametrize("max_tokens", [1, 4])
    async def test_max_tokens_respected(self, adapter: LLM, max_tokens: int) -> None:
        opts = CompletionOptions(max_tokens=max_tokens, temperature=0.0, seed=7)
        completion = await adapter.complete(list(CONVERSATION), opts)
        assert completion.usage.output_tokens <= max_tokens

    @clause("llm.complete.no_mutation", "complete and stream never mutate the messages passed in")
    async def test_messages_not_mutated(self, adapter: LLM) -> None:
        messages = list(CONVERSATION)
        await adapter.complete(messages, GREEDY)
        assert messages == list(CONVERSATION)

    @clause("llm.complete.empty_rejected", "an empty conversation raises InvalidInputError")
    async def test_empty_conversation_rejected(self, adapter: LLM) -> None:
        with pytest.raises(InvalidInputError):
            await adapter.complete([], GREEDY)

    @clause(
        "llm.options.invalid",
        "bad options (max_tokens < 1, negative temperature, top_p outside (0, 1], negative "
        "top_k) raise InvalidInputError",
    )
    @pytest.mark.parametrize(
        "opts",
        [
            CompletionOptions(max_tokens=0),
            CompletionOptions(max_tokens=-5),
            CompletionOptions(temperature=-1.0),
            CompletionOptions(top_p=0.0),
            CompletionOptions(top_p=1.5),
            CompletionOptions(top_k=-1),
        ],
        ids=["max_tokens=0", "max_tokens<0", "temperature<0", "top_p=0", "top_p>1", "top_k<0"],
    )
    async def test_bad_options_rejected(self, adapter: LLM, opts: CompletionOptions) -> None:
        with pytest.raises(InvalidInputError):
            await adapter.complete(list(CONVERSATION), opts)

    @clause(
        "llm.offline.deterministic",
        "an offline model with temperature 0 and a seed is deterministic",
    )
    @requires(LLMCapability.OFFLINE)
    async def test_offline_greedy_is_deterministic(self, adapter: LLM) -> None:
        first = await adapter.complete(list(CONVERSATION), GREEDY)
        second = await adapter.complete(list(CONVERSATION), GREEDY)
        assert first.text == second.text

    @clause(
        "llm.complete.stop",
        "the text ends before the first stop sequence: it never contains one (whole or streamed)",
    )
    @pytest.mark.parametrize("stop", [(" ",), ("e", "o"), ("\n",)], ids=repr)
    async def test_stop_sequences(self, adapter: LLM, stop: tuple[str, ...]) -> None:
        opts = CompletionOptions(max_tokens=16, temperature=0.0, seed=7, stop=stop)
        texts = [(await adapter.complete(list(CONVERSATION), opts)).text]
        if supports(adapter, LLMCapability.STREAMING):
            texts.append("".join(c.text for c in await _collect(adapter, opts)))
        for text in texts:
            found = [s for s in stop if s in text]
            assert not found, f"with stop={stop!r} the text {text!r} still contains {found!r}"

    @clause(
        "llm.finish.length",
        "finish_reason is 'length' only when the output reached max_tokens",
    )
    @pytest.mark.parametrize("max_tokens", [1, 3, 256])
    async def test_length_means_max_tokens(self, adapter: LLM, max_tokens: int) -> None:
        opts = CompletionOptions(max_tokens=max_tokens, temperature=0.0, seed=7)
        done = await adapter.complete(list(CONVERSATION), opts)
        if done.finish_reason == "length":
            assert done.usage.output_tokens == max_tokens, (
                f"finish_reason 'length' with {done.usage.output_tokens} output tokens of "
                f"max_tokens={max_tokens}"
            )

    @clause("llm.stream.concatenates", "streamed chunk texts concatenate to the completion's text")
    @requires(LLMCapability.STREAMING, LLMCapability.OFFLINE)
    async def test_stream_matches_complete(self, adapter: LLM) -> None:
        whole = await adapter.complete(list(CONVERSATION), GREEDY)
        chunks = await _collect(adapter, GREEDY)
        assert "".join(c.text for c in chunks) == whole.text

    @clause(
        "llm.stream.final_chunk", "only the last chunk carries finish_reason, and it carries usage"
    )
    @requires(LLMCapability.STREAMING)
    async def test_stream_last_chunk(self, adapter: LLM) -> None:
        chunks = await _collect(adapter, GREEDY)
        assert chunks, "a stream yields at least one chunk"
        assert all(isinstance(c, CompletionChunk) for c in chunks)
        last = chunks[-1]
        assert last.finish_reason in FINISH_REASONS, "the last chunk must carry finish_reason"
        assert last.usage is not None, "the last chunk must carry usage"
        assert all(c.finish_reason is None for c in chunks[:-1]), "finish_reason before the end"

    @clause("llm.stream.unsupported", "without streaming support, stream raises UnsupportedError")
    @requires_absent(LLMCapability.STREAMING)
    async def test_stream_unsupported(self, adapter: LLM) -> None:
        with expect_unsupported(LLMCapability.STREAMING):
            await _collect(adapter, GREEDY)

    @clause("llm.tools.unsupported", "without tool support, offering tools raises UnsupportedError")
    @requires_absent(LLMCapability.TOOLS)
    async def test_tools_unsupported(self, adapter: LLM) -> None:
        opts = CompletionOptions(tools=(ToolSpec("lookup", "Look something up"),))
        with expect_unsupported(LLMCapability.TOOLS):
            await adapter.complete(list(CONVERSATION), opts)

    @clause(
        "llm.stream.tool_calls",
        "a stream's tool calls arrive whole on its last chunk only (as complete returns them, "
        "offline); finish_reason is 'tool_calls' exactly when there are some",
    )
    @requires(LLMCapability.STREAMING, LLMCapability.TOOLS)
    async def test_stream_tool_calls_arrive_whole(self, adapter: LLM) -> None:
        opts = CompletionOptions(max_tokens=64, temperature=0.0, seed=7, tools=(LOOKUP,))
        chunks = [c async for c in adapter.stream(list(TOOL_CONVERSATION), opts)]
        assert chunks, "a stream yields at least one chunk"
        assert all(not c.tool_calls for c in chunks[:-1]), "tool calls before the last chunk"
        last = chunks[-1]
        assert bool(last.tool_calls) == (last.finish_reason == "tool_calls"), (
            f"finish_reason {last.finish_reason!r} with {len(last.tool_calls)} tool call(s)"
        )
        for call in last.tool_calls:
            assert isinstance(call, ToolCall), call
            assert call.id, f"a tool call without an id: {call!r}"
            assert call.name, f"a tool call without a name: {call!r}"
            assert isinstance(call.arguments, Mapping), f"arguments not parsed: {call!r}"
        if supports(adapter, LLMCapability.OFFLINE):
            whole = await adapter.complete(list(TOOL_CONVERSATION), opts)
            assert [(c.name, dict(c.arguments)) for c in last.tool_calls] == [
                (c.name, dict(c.arguments)) for c in whole.tool_calls
            ], "the streamed tool calls differ from the completed ones"
