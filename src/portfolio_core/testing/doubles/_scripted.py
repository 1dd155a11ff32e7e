"""The scripted doubles: canned answers per method (see the package docstring).

Only what differs from "answer from the script" is written here; every other port method is
generated from the port's protocol by `_Scripted`.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import (
    AsyncIterable,
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
    Mapping,
    Sequence,
)
from contextlib import contextmanager
from contextvars import Token
from typing import Any, ClassVar, cast

from portfolio_core.ports.agent import Agent, AgentCapability, AgentResult, ToolResult
from portfolio_core.ports.cache import Cache, CacheCapability
from portfolio_core.ports.cache_persistence import CachePersistence
from portfolio_core.ports.cache_store import CacheStore, CacheStoreCapability, CacheStoreStats
from portfolio_core.ports.config_store import ChangeSet, ConfigSnapshot, ConfigStore
from portfolio_core.ports.errors import InvalidInputError, NotFoundError, UnsupportedError
from portfolio_core.ports.event_store import (
    AppendResult,
    EventStore,
    EventStoreCapability,
    StreamState,
)
from portfolio_core.ports.generation_engine import (
    CompletedGeneration,
    GenerationEngine,
    Sampling,
)
from portfolio_core.ports.job_queue import JobCounts, JobQueue
from portfolio_core.ports.llm import (
    LLM,
    Completion,
    CompletionChunk,
    CompletionOptions,
    LLMCapability,
    Message,
    ToolSpec,
    Usage,
)
from portfolio_core.ports.model_backend import (
    AgentBlocks,
    Generation,
    ModelBackend,
    ModelCacheSpec,
)
from portfolio_core.ports.pipeline import Pipeline, PipelineResult, PipelineStep
from portfolio_core.ports.projection_store import ProjectionStore
from portfolio_core.ports.router import (
    HealthStatus,
    Provider,
    RouteOptions,
    Router,
    RouterCapability,
    RoutingStrategy,
)
from portfolio_core.ports.snapshot_store import SnapshotStore
from portfolio_core.ports.stream import Stream, StreamCapability, StreamMessage, StreamOptions
from portfolio_core.ports.tenant import (
    QuotaStatus,
    Tenant,
    TenantCapability,
    TenantContext,
    current_tenant,
    tenant_scope,
)
from portfolio_core.ports.tokenizer import Tokenizer
from portfolio_core.testing.doubles._core import _Calls, _Scripted, computed

__all__ = [
    "ScriptedAgent",
    "ScriptedCache",
    "ScriptedCachePersistence",
    "ScriptedCacheStore",
    "ScriptedConfigStore",
    "ScriptedProjectionStore",
    "ScriptedSnapshotStore",
    "ScriptedEventStore",
    "ScriptedJobQueue",
    "ScriptedGenerationEngine",
    "ScriptedLLM",
    "ScriptedModelBackend",
    "ScriptedPipeline",
    "ScriptedPipelineStep",
    "ScriptedRouter",
    "ScriptedStream",
    "ScriptedTenant",
    "ScriptedTokenizer",
]


# -- LLM: hand-written, its defaults (word-count usage, truncation, streaming) matter ----------


def _words(text: str) -> int:
    return len(text.split())


class ScriptedLLM(_Calls):
    """An LLM answering from a script of texts, completions or exceptions, in order.

    ``default`` answers once the script is exhausted (otherwise the call fails the test).
    Declares streaming, tools and offline; validates like a real adapter (empty conversation,
    ``max_tokens < 1`` or negative temperature raise ``InvalidInputError``) and truncates a
    scripted text at the first stop sequence, then to ``max_tokens`` words
    (``finish_reason="length"``). Usage counts words.
    """

    capabilities = frozenset(c.value for c in LLMCapability)

    def __init__(
        self,
        responses: Iterable[str | Completion | BaseException] = (),
        *,
        default: str | Completion | None = None,
        model: str = "scripted",
    ) -> None:
        super().__init__()
        self.responses = deque(responses)
        self.default = default
        self.model = model

    def _next(self, messages: Sequence[Message], opts: CompletionOptions | None) -> Completion:
        opts = opts or CompletionOptions()
        if not messages:
            raise InvalidInputError("an empty conversation cannot be completed", field="messages")
        if opts.max_tokens < 1:
            raise InvalidInputError("max_tokens must be at least 1", field="max_tokens")
        if opts.temperature < 0:
            raise InvalidInputError("temperature must not be negative", field="temperature")
        if self.responses:
            answer = self.responses.popleft()
        elif self.default is not None:
            answer = self.default
        else:
            raise AssertionError(
                f"ScriptedLLM ran out of responses at call {len(self.calls)} "
                f"(last message: {messages[-1].content!r})"
            )
        if isinstance(answer, BaseException):
            raise answer
        prompt_tokens = sum(max(_words(m.content), 1) for m in messages)
        if isinstance(answer, Completion):
            return answer
        for stop in opts.stop:  # the port's rule: the text ends before a stop sequence
            answer = answer.split(stop, 1)[0] if stop else answer
        words = answer.split()
        finish = "stop"
        if len(words) > opts.max_tokens:
            words, finish = words[: opts.max_tokens], "length"
            answer = " ".join(words)
        return Completion(
            answer, opts.model or self.model, Usage(prompt_tokens, len(words)), finish
        )

    async def complete(
        self, messages: Sequence[Message], opts: CompletionOptions | None = None
    ) -> Completion:
        self._log("complete", (list(messages),), {"opts": opts})
        return self._next(messages, opts)

    async def stream(
        self, messages: Sequence[Message], opts: CompletionOptions | None = None
    ) -> AsyncIterator[CompletionChunk]:
        self._log("stream", (list(messages),), {"opts": opts})
        completion = self._next(messages, opts)
        pieces = completion.text.split(" ")
        for i, piece in enumerate(pieces):
            text = piece if i == 0 else " " + piece
            if i < len(pieces) - 1:
                yield CompletionChunk(text)
            else:
                yield CompletionChunk(
                    text, completion.finish_reason, completion.usage, completion.tool_calls
                )


# -- Router ------------------------------------------------------------------------------------


class ScriptedRouter(_Scripted, port=Router):
    """A router with canned ``route``/``complete``/``health_check`` answers.

    ``register_provider`` and ``list_providers`` work for real (a list); ``route`` defaults to
    the first registered provider.
    """

    _capabilities = frozenset(c.value for c in RouterCapability)
    _defaults: ClassVar[Mapping[str, Any]] = {"set_strategy": None}

    def __init__(self, **answers: Any) -> None:
        super().__init__(**answers)
        self.providers: list[tuple[Provider, LLM]] = []
        self.strategy = RoutingStrategy.FALLBACK

    async def route(
        self, messages: Sequence[Message], opts: RouteOptions | None = None
    ) -> Provider:
        if not self._answers.get("route") and self.providers:
            self._log("route", (messages, opts), {})
            return self.providers[0][0]
        return cast(Provider, self._answer("route", messages, opts))

    async def complete(
        self, messages: Sequence[Message], opts: RouteOptions | None = None
    ) -> Completion:
        if not self._answers.get("complete") and self.providers:
            self._log("complete", (messages, opts), {})
            provider, llm = self.providers[0]
            done = await llm.complete(messages, opts.completion if opts else None)
            return Completion(
                done.text,
                done.model,
                done.usage,
                done.finish_reason,
                done.tool_calls,
                provider.name,
            )
        return cast(Completion, self._answer("complete", messages, opts))

    async def register_provider(self, provider: Provider, llm: LLM) -> None:
        self._log("register_provider", (provider, llm), {})
        self.providers.append((provider, llm))

    async def health_check(self, name: str) -> HealthStatus:
        if not self._answers.get("health_check"):
            self._log("health_check", (name,), {})
            return HealthStatus(name, True)
        return cast(HealthStatus, self._answer("health_check", name))

    async def list_providers(self) -> list[Provider]:
        self._log("list_providers", (), {})
        return [p for p, _ in self.providers]

    async def set_strategy(self, strategy: RoutingStrategy) -> None:
        self._answer("set_strategy", strategy)
        self.strategy = strategy


# -- Cache -------------------------------------------------------------------------------------


class ScriptedCache(_Scripted, port=Cache):
    """A cache with canned answers; unscripted calls behave like an always-empty cache."""

    _capabilities = frozenset({CacheCapability.TTL.value})
    _defaults: ClassVar[Mapping[str, Any]] = {
        "get": None,
        "put": None,
        "delete": False,
        "clear": None,
        "exists": False,
        "get_many": dict,
        "put_many": None,
    }


# -- Pipeline ----------------------------------------------------------------------------------


class ScriptedPipelineStep(_Scripted, port=PipelineStep):
    """A step with a fixed description and canned ``execute`` results.

    ``validate_input`` reports each missing required input (unless scripted).
    """

    def __init__(
        self,
        name: str = "scripted",
        *,
        required_inputs: Iterable[str] = (),
        output_schema: Mapping[str, type] | None = None,
        cacheable: bool = False,
        version: str = "1",
        **answers: Any,
    ) -> None:
        super().__init__(**answers)
        self.name = name
        self.version = version
        self._required = frozenset(required_inputs)
        self._schema = dict(output_schema or {})
        self._cacheable = cacheable

    @property
    def required_inputs(self) -> frozenset[str]:
        return self._required

    @property
    def output_schema(self) -> Mapping[str, type]:
        return dict(self._schema)

    @property
    def cacheable(self) -> bool:
        return self._cacheable

    def validate_input(self, context: Mapping[str, Any]) -> list[str]:
        if self._answers.get("validate_input"):
            return cast(list[str], self._answer("validate_input", context))
        self._log("validate_input", (context,), {})
        return [f"missing input {k!r}" for k in sorted(self._required - set(context))]


class ScriptedPipeline(_Scripted, port=Pipeline):
    """A pipeline with canned ``run`` results (default: the inputs back, no steps)."""

    _defaults: ClassVar[Mapping[str, Any]] = {
        "run": computed(lambda inputs: PipelineResult(dict(inputs), {}))
    }


# -- Agent -------------------------------------------------------------------------------------


class ScriptedAgent(_Scripted, port=Agent):
    """An agent with canned ``run`` results and tool results (unknown tools: error results)."""

    _capabilities = frozenset(c.value for c in AgentCapability)
    _defaults: ClassVar[Mapping[str, Any]] = {
        "execute_tool": computed(
            lambda call: ToolResult(
                call.id, call.name, f"unknown tool {call.name!r}", is_error=True
            )
        ),
        "run": computed(lambda task, opts=None: AgentResult(task, (Message("user", task),), 1)),
    }

    def __init__(
        self, *, tools: Iterable[ToolSpec] = (), max_iterations: int = 10, **answers: Any
    ) -> None:
        super().__init__(**answers)
        self._tools = list(tools)
        self._max_iterations = max_iterations

    @property
    def max_iterations(self) -> int:
        return self._max_iterations

    def available_tools(self) -> list[ToolSpec]:
        self._log("available_tools", (), {})
        return list(self._tools)


# -- Tenant ------------------------------------------------------------------------------------


class ScriptedTenant(_Scripted, port=Tenant):
    """A tenant port over the real context variable with canned ``check_quota`` answers
    (default: unlimited, ``remaining`` 1_000_000)."""

    _capabilities = frozenset({TenantCapability.QUOTAS.value})
    _defaults: ClassVar[Mapping[str, Any]] = {
        "check_quota": computed(
            lambda resource, cost=1: QuotaStatus(
                (current_tenant() or TenantContext("anonymous")).tenant_id, resource, 1_000_000
            )
        )
    }

    def get_context(self) -> TenantContext | None:
        self._log("get_context", (), {})
        return current_tenant()

    def set_context(self, ctx: TenantContext) -> Token[TenantContext | None]:
        from portfolio_core.ports.tenant import _set

        self._log("set_context", (ctx,), {})
        return _set(ctx)

    def reset_context(self, token: Token[TenantContext | None]) -> None:
        from portfolio_core.ports.tenant import _reset

        self._log("reset_context", (token,), {})
        _reset(token)

    @contextmanager
    def with_tenant(self, tenant: str | TenantContext) -> Iterator[TenantContext]:
        self._log("with_tenant", (tenant,), {})
        with tenant_scope(tenant) as ctx:
            yield ctx


# -- Stream ------------------------------------------------------------------------------------


class ScriptedStream(_Scripted, port=Stream):
    """A stream yielding scripted messages per ``stream`` call (a list each) and counting
    what ``write_stream`` receives (kept in ``.written[sink]``)."""

    _capabilities = frozenset({StreamCapability.ACKNOWLEDGE.value})
    _defaults: ClassVar[Mapping[str, Any]] = {"stream": list, "ack": None}

    def __init__(self, **answers: Any) -> None:
        super().__init__(**answers)
        self.written: dict[str, list[Any]] = {}

    async def stream(
        self, source: str, opts: StreamOptions | None = None
    ) -> AsyncIterator[StreamMessage]:
        for item in cast(Iterable[Any], self._answer("stream", source, opts)):
            yield (
                item
                if isinstance(item, StreamMessage)
                else StreamMessage(str(id(item)), item, source)
            )

    async def write_stream(
        self,
        sink: str,
        items: AsyncIterable[Any] | Iterable[Any],
        opts: StreamOptions | None = None,
    ) -> int:
        self._log("write_stream", (sink, items, opts), {})
        got = self.written.setdefault(sink, [])
        before = len(got)
        if isinstance(items, AsyncIterable):
            got.extend([item async for item in items])
        else:
            got.extend(items)
        return len(got) - before

    async def transform(
        self,
        source: AsyncIterable[Any],
        fn: Callable[[Any], Awaitable[Any]] | Callable[[Any], Any],
        opts: StreamOptions | None = None,
    ) -> AsyncIterator[Any]:
        self._log("transform", (source, fn, opts), {})
        async for item in source:
            out = fn(item)
            yield (await out) if isinstance(out, Awaitable) else out


# -- EventStore --------------------------------------------------------------------------------


class ScriptedEventStore(_Scripted, port=EventStore):
    """An event store with canned answers; unscripted ``append`` numbers the batch from 1,
    reads return nothing."""

    _capabilities = frozenset({EventStoreCapability.QUERY.value})
    _defaults: ClassVar[Mapping[str, Any]] = {
        "append": computed(
            lambda stream, events, expected_version=StreamState.ANY: AppendResult(
                stream, len(events), tuple(range(1, len(events) + 1))
            )
        ),
        "read": list,
        "read_all": list,
        "query": list,
        "unsubscribe": None,
    }


# -- ConfigStore -------------------------------------------------------------------------------


class ScriptedConfigStore(_Scripted, port=ConfigStore):
    """A config store with canned answers; unscripted it is empty at version 0, ``apply``
    returns version 1, ``watch`` yields the scripted change sets of each call (a list each)
    and ``get`` and ``rollback`` must be scripted."""

    _defaults: ClassVar[Mapping[str, Any]] = {
        "current_version": 0,
        "read": computed(lambda prefix="", version=None: ConfigSnapshot(version or 0, {})),
        "apply": 1,
        "history": list,
        "watch": list,
    }

    async def watch(
        self, prefix: str = "", *, from_version: int | None = None
    ) -> AsyncIterator[ChangeSet]:
        for item in cast(
            Iterable[ChangeSet], self._answer("watch", prefix, from_version=from_version)
        ):
            yield item


# -- SnapshotStore and ProjectionStore ---------------------------------------------------------


class ScriptedSnapshotStore(_Scripted, port=SnapshotStore):
    """A snapshot store with canned answers; unscripted it holds nothing (``load`` returns
    None), ``save`` answers True and ``delete`` succeeds."""

    _defaults: ClassVar[Mapping[str, Any]] = {"save": True, "load": None, "delete": None}


class ScriptedProjectionStore(_Scripted, port=ProjectionStore):
    """A projection store with canned answers; unscripted every projection is at
    checkpoint 0, ``claim`` answers None (held elsewhere), and ``commit``, ``release`` and
    ``reset`` succeed without running the effect."""

    _defaults: ClassVar[Mapping[str, Any]] = {
        "claim": None,
        "release": None,
        "checkpoint": 0,
        "commit": None,
        "reset": None,
    }


# -- JobQueue ----------------------------------------------------------------------------------

_job_ids = itertools.count(1)


class ScriptedJobQueue(_Scripted, port=JobQueue):
    """A job queue with canned answers; unscripted ``enqueue`` returns fresh ids ("1", "2",
    ...), ``reserve`` and ``list_jobs`` return nothing, ``counts`` zeros, and finishing a
    reservation succeeds; ``get``, ``fail``, ``retry`` and ``cancel`` must be scripted."""

    _defaults: ClassVar[Mapping[str, Any]] = {
        "enqueue": computed(lambda job: str(next(_job_ids))),
        "enqueue_many": computed(lambda jobs: [str(next(_job_ids)) for _ in jobs]),
        "reserve": list,
        "complete": None,
        "extend": computed(lambda reservation, lease: reservation),
        "release": None,
        "list_jobs": list,
        "counts": JobCounts,
    }


# -- inference ports (sync) --------------------------------------------------------------------


class ScriptedTokenizer(_Scripted, port=Tokenizer):
    """A UTF-8 byte tokenizer (ids 0-255, EOS 256) unless ``encode``/``decode`` are scripted."""

    _defaults: ClassVar[Mapping[str, Any]] = {
        "encode": computed(lambda text, add_special_tokens=False: list(text.encode("utf-8"))),
        "decode": computed(
            lambda ids, skip_special_tokens=True: bytes(i for i in ids if i < 256).decode(
                "utf-8", errors="replace"
            )
        ),
    }

    @property
    def eos_token_id(self) -> int:
        return 256

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return frozenset({256})

    @property
    def bos_token_id(self) -> int | None:
        return None

    @property
    def vocab_size(self) -> int:
        return 257


_SPEC = ModelCacheSpec(
    n_layers=1, n_kv_heads=1, head_dim=4, dtype="float32", vocab_size=257, max_seq_len=512
)


class ScriptedModelBackend(_Scripted, port=ModelBackend):
    """A model backend with a fixed spec and canned generations (default: EOS at once)."""

    _defaults: ClassVar[Mapping[str, Any]] = {
        "generate": computed(lambda *a, **k: Generation((256,), "stop"))
    }

    def __init__(self, spec: ModelCacheSpec = _SPEC, **answers: Any) -> None:
        super().__init__(**answers)
        self.spec = spec

    def extract_model_spec(self) -> ModelCacheSpec:
        self._log("extract_model_spec", (), {})
        return self.spec


class ScriptedGenerationEngine(_Scripted, port=GenerationEngine):
    """An engine whose ``step`` returns scripted lists of completions.

    Unscripted: ``submit`` numbers uids ``uid-1, uid-2, ...`` and the next ``step`` finishes
    every pending request with an empty ``stop`` generation.
    """

    def __init__(self, **answers: Any) -> None:
        super().__init__(**answers)
        self.pending: dict[str, str] = {}
        self._counter = 0

    def submit(
        self,
        agent_id: str,
        prompt: str | Sequence[int],
        cache: AgentBlocks | None = None,
        max_tokens: int = 256,
        *,
        sampling: Sampling | None = None,
    ) -> str:
        if self._answers.get("submit"):
            uid = cast(str, self._answer("submit", agent_id, prompt, cache, max_tokens))
        else:
            self._log("submit", (agent_id, prompt, cache, max_tokens), {})
            self._counter += 1
            uid = f"uid-{self._counter}"
        self.pending[uid] = agent_id
        return uid

    def step(self) -> list[CompletedGeneration]:
        if self._answers.get("step"):
            done = cast(list[CompletedGeneration], self._answer("step"))
        else:
            from portfolio_core.ports.generation_engine import FinishReason

            self._log("step", (), {})
            done = [
                CompletedGeneration(uid, "", None, FinishReason.STOP, 0) for uid in self.pending
            ]
        for generation in done:
            self.pending.pop(generation.uid, None)
        return done

    def abort(self, uid: str) -> bool:
        self._log("abort", (uid,), {})
        return uid in self.pending

    def has_unfinished(self) -> bool:
        self._log("has_unfinished", (), {})
        return bool(self.pending)


class ScriptedCacheStore(_Scripted, port=CacheStore):
    """A KV cache store with canned ``get`` hits (default: always a miss)."""

    _capabilities = frozenset({CacheStoreCapability.TIERS.value})
    _defaults: ClassVar[Mapping[str, Any]] = {
        "get": None,
        "put": None,
        "evict": False,
        "delete": False,
    }

    @property
    def block_size(self) -> int:
        return 16

    def pin(self, agent_id: str) -> None:
        raise UnsupportedError(
            "ScriptedCacheStore has no pinning", capability=CacheStoreCapability.PINNING.value
        )

    def unpin(self, agent_id: str) -> bool:
        raise UnsupportedError(
            "ScriptedCacheStore has no pinning", capability=CacheStoreCapability.PINNING.value
        )

    def stats(self) -> CacheStoreStats:
        return CacheStoreStats()


class ScriptedCachePersistence(_Scripted, port=CachePersistence):
    """Cache persistence over a dict unless scripted: ``load`` of a missing agent raises
    ``NotFoundError``; a foreign ``spec_hash`` raises ``InvalidInputError``."""

    def __init__(self, **answers: Any) -> None:
        super().__init__(**answers)
        self.saved: dict[str, AgentBlocks] = {}

    def save(self, agent_id: str, blocks: AgentBlocks) -> None:
        if self._answers.get("save"):
            self._answer("save", agent_id, blocks)
            return
        self._log("save", (agent_id, blocks), {})
        self.saved[agent_id] = blocks

    def load(self, agent_id: str, spec_hash: str) -> AgentBlocks:
        if self._answers.get("load"):
            return cast(AgentBlocks, self._answer("load", agent_id, spec_hash))
        self._log("load", (agent_id, spec_hash), {})
        if agent_id not in self.saved:
            raise NotFoundError(f"no cache saved for agent {agent_id!r}", key=agent_id)
        blocks = self.saved[agent_id]
        if blocks.spec_hash != spec_hash:
            raise InvalidInputError(
                f"the cache of {agent_id!r} belongs to another model", field="spec_hash"
            )
        return blocks

    def exists(self, agent_id: str) -> bool:
        self._log("exists", (agent_id,), {})
        return agent_id in self.saved

    def delete(self, agent_id: str) -> bool:
        self._log("delete", (agent_id,), {})
        return self.saved.pop(agent_id, None) is not None

    def list_cached_agents(self) -> list[str]:
        self._log("list_cached_agents", (), {})
        return sorted(self.saved)
