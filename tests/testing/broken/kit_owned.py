"""Deliberately broken variants of the small adapters of the ports whose suites the kit owns.

Each variant has one bug and names, in ``clause``, the clause the kit must report broken;
``suite`` names the contract suite that must catch it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

import numpy as np

from portfolio_core import ports as p
from portfolio_core.adapters.orchestration.router import MemoryRouter
from tests.testing import adapters as ok

# -- Tokenizer ---------------------------------------------------------------------------------


class TokenizerDropsNonAscii(ok.ByteTokenizer):
    suite = "tokenizer"
    clause = "tokenizer.round_trip"

    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        return [i for i in super().encode(text, add_special_tokens=add_special_tokens) if i < 128]


class TokenizerForgesEos(ok.ByteTokenizer):
    suite = "tokenizer"
    clause = "tokenizer.special.not_forged"

    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        if text == "<|eos|>":
            return [self.EOS]
        return super().encode(text, add_special_tokens=add_special_tokens)


class TokenizerDecodesAnyId(ok.ByteTokenizer):
    suite = "tokenizer"
    clause = "tokenizer.decode.rejects_out_of_vocab"

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        return super().decode([i for i in ids if 0 <= i < self.vocab_size])


class TokenizerIgnoresBos(ok.ByteTokenizer):
    suite = "tokenizer"
    clause = "tokenizer.bos.prepended"

    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        return super().encode(text)


# -- LLM ---------------------------------------------------------------------------------------


class LLMWithoutUsage(ok.EchoLLM):
    suite = "llm"
    clause = "llm.complete.usage"

    async def complete(
        self, messages: Sequence[p.Message], opts: p.CompletionOptions | None = None
    ) -> p.Completion:
        done = await super().complete(messages, opts)
        return p.Completion(done.text, done.model, p.Usage(0, 0), done.finish_reason)


class LLMIgnoresMaxTokens(ok.EchoLLM):
    suite = "llm"
    clause = "llm.complete.max_tokens"

    async def complete(
        self, messages: Sequence[p.Message], opts: p.CompletionOptions | None = None
    ) -> p.Completion:
        opts = opts or p.CompletionOptions()
        done = await super().complete(
            messages, p.CompletionOptions(max_tokens=256, temperature=opts.temperature)
        )
        return p.Completion(done.text, done.model, p.Usage(done.usage.input_tokens, 3), "stop")


class LLMAcceptsEmptyConversation(ok.EchoLLM):
    suite = "llm"
    clause = "llm.complete.empty_rejected"

    async def complete(
        self, messages: Sequence[p.Message], opts: p.CompletionOptions | None = None
    ) -> p.Completion:
        if not messages:
            return p.Completion("", "echo", p.Usage(0, 0))
        return await super().complete(messages, opts)


class LLMStreamLosesLastChunk(ok.EchoLLM):
    suite = "llm"
    clause = "llm.stream.concatenates"

    async def stream(
        self, messages: Sequence[p.Message], opts: p.CompletionOptions | None = None
    ) -> AsyncIterator[p.CompletionChunk]:
        done = await self.complete(messages, opts)
        yield p.CompletionChunk(done.text[:-1], done.finish_reason, done.usage)


class LLMStreamWithoutFinalChunk(ok.EchoLLM):
    suite = "llm"
    clause = "llm.stream.final_chunk"

    async def stream(
        self, messages: Sequence[p.Message], opts: p.CompletionOptions | None = None
    ) -> AsyncIterator[p.CompletionChunk]:
        done = await self.complete(messages, opts)
        yield p.CompletionChunk(done.text)


class LLMStreamsSilentlyWithoutCapability(ok.EchoLLM):
    """Does not declare streaming, yet streams instead of raising UnsupportedError."""

    suite = "llm"
    clause = "llm.stream.unsupported"
    capabilities = p.declare(p.LLMCapability.OFFLINE)


class LLMIgnoresStop(ok.EchoLLM):
    """Never passes the stop sequences on: the text runs past them."""

    suite = "llm"
    clause = "llm.complete.stop"

    def _answer(
        self, messages: Sequence[p.Message], opts: p.CompletionOptions | None
    ) -> p.Completion:
        opts = opts or p.CompletionOptions()
        return super()._answer(messages, dataclasses.replace(opts, stop=()))


class LLMStreamDropsToolCalls(ok.EchoLLM):
    """Calls the offered tool, but its stream ends with finish_reason 'tool_calls' and no
    calls (the pieces were never assembled)."""

    suite = "llm"
    clause = "llm.stream.tool_calls"
    capabilities = p.declare(
        p.LLMCapability.STREAMING, p.LLMCapability.OFFLINE, p.LLMCapability.TOOLS
    )

    def _answer(
        self, messages: Sequence[p.Message], opts: p.CompletionOptions | None
    ) -> p.Completion:
        opts = opts or p.CompletionOptions()
        if not opts.tools:
            return super()._answer(messages, opts)
        call = p.ToolCall("call_0", opts.tools[0].name, {"word": "port"})
        return p.Completion("", "echo", p.Usage(3, 4), "tool_calls", (call,))

    async def stream(
        self, messages: Sequence[p.Message], opts: p.CompletionOptions | None = None
    ) -> AsyncIterator[p.CompletionChunk]:
        done = self._answer(messages, opts)
        yield p.CompletionChunk(done.text, done.finish_reason, done.usage)


class LLMAcceptsAnyNucleus(ok.EchoLLM):
    """Never checks top_p or top_k: an impossible nucleus is silently used."""

    suite = "llm"
    clause = "llm.options.invalid"

    def _answer(
        self, messages: Sequence[p.Message], opts: p.CompletionOptions | None
    ) -> p.Completion:
        opts = opts or p.CompletionOptions()
        return super()._answer(messages, dataclasses.replace(opts, top_p=1.0, top_k=0))


class LLMSaysLengthWhenDone(ok.EchoLLM):
    """Reports 'length' for every completion, whether or not max_tokens was reached."""

    suite = "llm"
    clause = "llm.finish.length"

    def _answer(
        self, messages: Sequence[p.Message], opts: p.CompletionOptions | None
    ) -> p.Completion:
        return dataclasses.replace(super()._answer(messages, opts), finish_reason="length")


# -- Router ------------------------------------------------------------------------------------


class RouterIgnoresExclude(ok.SimpleRouter):
    suite = "router"
    clause = "router.exclude.respected"

    def _candidates(self, opts: p.RouteOptions) -> list[p.Provider]:
        return super()._candidates(
            p.RouteOptions(required_tags=opts.required_tags, strategy=opts.strategy)
        )


class RouterIgnoresTags(ok.SimpleRouter):
    suite = "router"
    clause = "router.route.registered_healthy"

    def _candidates(self, opts: p.RouteOptions) -> list[p.Provider]:
        return super()._candidates(p.RouteOptions(exclude=opts.exclude, strategy=opts.strategy))


class RouterOverwritesOnConflict(ok.SimpleRouter):
    suite = "router"
    clause = "router.register.conflict"

    async def register_provider(self, provider: p.Provider, llm: p.LLM) -> None:
        self.providers[provider.name] = (provider, llm)


class RouterRetriesNonRetryable(ok.SimpleRouter):
    suite = "router"
    clause = "router.complete.non_retryable"

    async def complete(
        self, messages: Sequence[p.Message], opts: p.RouteOptions | None = None
    ) -> p.Completion:
        last: Exception | None = None
        for provider, llm in sorted(self.providers.values(), key=lambda x: x[0].group):
            try:
                done = await llm.complete(messages)
            except p.PortError as exc:
                last = exc
                continue
            return p.Completion(done.text, done.model, done.usage, provider=provider.name)
        raise p.UnavailableError(f"all failed: {last}")


class RouterListIsLive(ok.SimpleRouter):
    suite = "router"
    clause = "router.list.snapshot"

    def __init__(self) -> None:
        super().__init__()
        self.order: list[p.Provider] = []

    async def register_provider(self, provider: p.Provider, llm: p.LLM) -> None:
        await super().register_provider(provider, llm)
        if provider not in self.order:
            self.order.append(provider)

    async def list_providers(self) -> list[p.Provider]:
        return self.order


class RouterIgnoresGroups(ok.SimpleRouter):
    """Ranks every eligible provider together, fallback groups ignored."""

    suite = "router"
    clause = "router.route.groups"

    def _candidates(
        self, opts: p.RouteOptions, tokens: int = 0, *, turn: bool = False
    ) -> list[p.Provider]:
        return [
            prov
            for prov, _ in self.providers.values()
            if prov.name not in opts.exclude and opts.required_tags <= prov.tags
        ]


class RouterSpecialistPicksMostTags(ok.SimpleRouter):
    """Reads 'specialist' as the provider that can do the most."""

    suite = "router"
    clause = "router.strategy.specialist"

    def _candidates(
        self, opts: p.RouteOptions, tokens: int = 0, *, turn: bool = False
    ) -> list[p.Provider]:
        found = super()._candidates(opts, tokens, turn=turn)
        if (opts.strategy or self.strategy) == "specialist":
            found.sort(key=lambda x: -len(x.tags))
        return found


class RouterCostIgnoresOutput(ok.SimpleRouter):
    """Prices a request by its input alone."""

    suite = "router"
    clause = "router.strategy.cost"

    def _candidates(
        self, opts: p.RouteOptions, tokens: int = 0, *, turn: bool = False
    ) -> list[p.Provider]:
        found = super()._candidates(opts, tokens, turn=turn)
        if (opts.strategy or self.strategy) == "cost_optimized":
            found.sort(key=lambda x: x.input_price_per_mtok or 0)
        return found


class RouterRoundRobinStuck(ok.SimpleRouter):
    """Never advances its turn."""

    suite = "router"
    clause = "router.strategy.round_robin"

    def _candidates(
        self, opts: p.RouteOptions, tokens: int = 0, *, turn: bool = False
    ) -> list[p.Provider]:
        return super()._candidates(opts, tokens, turn=False)


class RouterFitsPromptAlone(ok.SimpleRouter):
    """Checks the context window against the prompt only, not the expected output."""

    suite = "router"
    clause = "router.route.context_window"

    def _candidates(
        self, opts: p.RouteOptions, tokens: int = 0, *, turn: bool = False
    ) -> list[p.Provider]:
        loose = dataclasses.replace(opts, expected_output_tokens=0)
        return super()._candidates(loose, tokens, turn=turn)


class RouterAllFailedIsUnavailable(ok.SimpleRouter):
    """When every provider failed, raises a plain UnavailableError without the cause."""

    suite = "router"
    clause = "router.complete.all_fail"

    async def complete(
        self, messages: Sequence[p.Message], opts: p.RouteOptions | None = None
    ) -> p.Completion:
        try:
            return await super().complete(messages, opts)
        except p.NoHealthyProviderError:
            raise p.UnavailableError("every provider failed") from None


class RouterRouteCountsAgainstRate(MemoryRouter):
    """route() records a request, as if deciding were sending."""

    suite = "router"
    clause = "router.rate_limit.route_does_not_count"

    async def route(
        self, messages: Sequence[p.Message], opts: p.RouteOptions | None = None
    ) -> p.Provider:
        chosen = await super().route(messages, opts)
        self._states[chosen.name].recent_requests.append(self._clock())
        return chosen


class RouterCooldownIgnoresHint(MemoryRouter):
    """Cools every failed provider for its configured 30 s, whatever retry_after says."""

    suite = "router"
    clause = "router.cooldown.start"

    def _record_failure(self, state: Any, exc: p.PortError, start: float) -> None:
        super()._record_failure(state, exc, start)
        state.cooldown_until = max(state.cooldown_until, self._clock() + 30)


# -- Agent -------------------------------------------------------------------------------------


class AgentRaisesOnUnknownTool(ok.LoopAgent):
    suite = "agent"
    clause = "agent.execute_tool.unknown"

    async def execute_tool(self, call: p.ToolCall) -> p.ToolResult:
        if call.name != "add":
            raise p.NotFoundError(f"no tool {call.name}")
        return await super().execute_tool(call)


class AgentIgnoresIterationBound(ok.LoopAgent):
    suite = "agent"
    clause = "agent.run.max_iterations"

    async def run(self, task: str, opts: p.AgentOptions | None = None) -> p.AgentResult:
        return await super().run(task, p.AgentOptions(max_iterations=self.max_iterations + 2))


# -- Pipeline ----------------------------------------------------------------------------------


class StepAcceptsAnyContext(ok.UpperStep):
    suite = "pipeline_step"
    clause = "pipeline_step.validate.missing_inputs"

    def validate_input(self, context: Any) -> list[str]:
        return []


class StepWritesUndeclaredOutput(ok.UpperStep):
    suite = "pipeline_step"
    clause = "pipeline_step.execute.schema"

    async def execute(self, context: Any, config: Any) -> p.StepResult:
        return p.StepResult.ok(upper=str(context["text"]).upper(), extra=1)


# -- ModelBackend ------------------------------------------------------------------------------


class BackendAcceptsForeignCache(ok.ToyBackend):
    suite = "model_backend"
    clause = "model_backend.cache.foreign_rejected"

    def generate(self, prompt_tokens: Sequence[int], cache: Any = None, **kw: Any) -> p.Generation:
        return super().generate(prompt_tokens, None, **kw)


class BackendOverrunsMaxTokens(ok.ToyBackend):
    suite = "model_backend"
    clause = "model_backend.generate.bounds"

    def generate(self, prompt_tokens: Sequence[int], cache: Any = None, **kw: Any) -> p.Generation:
        kw["max_tokens"] = kw.get("max_tokens", 64) + 1
        return super().generate(prompt_tokens, cache, **kw)


class BackendMutatesCache(ok.ToyBackend):
    suite = "model_backend"
    clause = "model_backend.cache.not_mutated"

    def generate(self, prompt_tokens: Sequence[int], cache: Any = None, **kw: Any) -> p.Generation:
        if cache is not None:
            for array in cache.keys:
                np.add(array, 1, out=array)
        return super().generate(prompt_tokens, cache, **kw)


# -- GenerationEngine --------------------------------------------------------------------------


class EngineReturnsFinishedTwice(ok.ToyEngine):
    suite = "generation_engine"
    clause = "generation_engine.finish.exactly_once"
    replay: ClassVar[list[p.CompletedGeneration]] = []

    def step(self) -> list[p.CompletedGeneration]:
        done = super().step()
        again, self.replay[:] = list(self.replay), done
        return done + again


class EngineAbortIsNoop(ok.ToyEngine):
    suite = "generation_engine"
    clause = "generation_engine.abort"

    def abort(self, uid: str) -> bool:
        return uid in self.running


# -- CachePersistence --------------------------------------------------------------------------


class PersistenceIgnoresSpecHash(ok.DirPersistence):
    suite = "cache_persistence"
    clause = "cache_persistence.load.foreign_model"

    def load(self, agent_id: str, spec_hash: str) -> p.AgentBlocks:
        path = self._path(agent_id)
        if path.exists():
            with np.load(path) as data:
                spec_hash = str(data["spec"])
        return super().load(agent_id, spec_hash)


class PersistenceDeleteIsNoop(ok.DirPersistence):
    suite = "cache_persistence"
    clause = "cache_persistence.delete.idempotent"

    def delete(self, agent_id: str) -> bool:
        return self.exists(agent_id)


class PersistenceListUnsorted(ok.DirPersistence):
    suite = "cache_persistence"
    clause = "cache_persistence.list.sorted"

    def list_cached_agents(self) -> list[str]:
        return sorted(super().list_cached_agents(), reverse=True)


class PersistenceLosesOldestOnSave(ok.DirPersistence):
    """Keeps only the most recent agent (a 'cache' of one), so earlier saves vanish."""

    suite = "cache_persistence"
    clause = "cache_persistence.model"

    def save(self, agent_id: str, blocks: p.AgentBlocks) -> None:
        for other in self.list_cached_agents():
            if other != agent_id:
                super().delete(other)
        super().save(agent_id, blocks)


VARIANTS: list[type] = [
    obj
    for obj in list(globals().values())
    if isinstance(obj, type) and obj.__module__ == __name__ and hasattr(obj, "clause")
]
