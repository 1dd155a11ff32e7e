"""Test doubles for application tests: recording and scripted adapters for every port.

* ``Recording<Port>(target=None)`` wraps any adapter of the port (or, stand-alone, the port's
  scripted double) and records every call in ``.calls`` for assertions; results and errors
  pass through unchanged, and the target's capability declaration is forwarded.
* ``Scripted<Port>(**answers)`` returns canned answers per method, in order: a value is
  returned, an exception instance is raised, ``computed(fn)`` calls ``fn(*args, **kwargs)``.
  When a method's answers run out it repeats its last answer if ``repeat=True`` was given,
  else falls back to a neutral default (``None``, ``False``, empty) where the port has one,
  and otherwise fails the test with ``AssertionError`` naming the unscripted call. Scripted
  doubles record their calls too.

``ScriptedLLM(["first answer", "second", UnavailableError("down")])`` is the richest: texts
become completions with word-count usage, and it streams word by word.

Example::

    cache = RecordingCache(MemoryCache())
    await greet(cache, "Ada")
    assert cache.calls_to("put") == [Call("put", ("greeting:Ada", "Hello, Ada!"), {"ttl": 60})]

    llm = ScriptedLLM(["Paris"])
    assert (await llm.complete([Message("user", "Capital of France?")])).text == "Paris"
"""

from __future__ import annotations

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
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar, cast

from portfolio_core.ports.agent import Agent, AgentCapability, AgentOptions, AgentResult, ToolResult
from portfolio_core.ports.cache import Cache, CacheCapability
from portfolio_core.ports.cache_persistence import CachePersistence
from portfolio_core.ports.cache_store import (
    CacheHit,
    CacheStore,
    CacheStoreCapability,
    CacheStoreStats,
)
from portfolio_core.ports.capabilities import capabilities_of
from portfolio_core.ports.errors import InvalidInputError, NotFoundError, UnsupportedError
from portfolio_core.ports.event_store import (
    AppendResult,
    Direction,
    EventHandler,
    EventQuery,
    EventStore,
    EventStoreCapability,
    ExpectedVersion,
    NewEvent,
    OnHandlerError,
    RecordedEvent,
    StreamState,
    Subscription,
)
from portfolio_core.ports.generation_engine import CompletedGeneration, GenerationEngine
from portfolio_core.ports.job_queue import Job, JobCounts, JobQueue, JobState, NewJob, Reservation
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
from portfolio_core.ports.model_backend import AgentBlocks, Generation, ModelBackend, ModelCacheSpec
from portfolio_core.ports.pipeline import Pipeline, PipelineResult, PipelineStep, StepResult
from portfolio_core.ports.router import (
    HealthStatus,
    Provider,
    RouteOptions,
    Router,
    RouterCapability,
    RoutingStrategy,
)
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

__all__ = [
    "Call",
    "RecordingAgent",
    "RecordingCache",
    "RecordingCachePersistence",
    "RecordingCacheStore",
    "RecordingEventStore",
    "RecordingJobQueue",
    "RecordingGenerationEngine",
    "RecordingLLM",
    "RecordingModelBackend",
    "RecordingPipeline",
    "RecordingPipelineStep",
    "RecordingRouter",
    "RecordingStream",
    "RecordingTenant",
    "RecordingTokenizer",
    "ScriptedAgent",
    "ScriptedCache",
    "ScriptedCachePersistence",
    "ScriptedCacheStore",
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
    "computed",
]

T = TypeVar("T")
P = TypeVar("P")
_NO_DEFAULT = object()


@dataclass(frozen=True, slots=True)
class Call:
    """One recorded call: method name, positional and keyword arguments."""

    method: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class computed:
    """A scripted answer computed from the call's arguments."""

    fn: Callable[..., Any]


class _Calls:
    """The call log every double keeps."""

    def __init__(self) -> None:
        self.calls: list[Call] = []

    def _log(self, method: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]) -> None:
        self.calls.append(Call(method, args, dict(kwargs)))

    def calls_to(self, method: str) -> list[Call]:
        """The recorded calls of ``method``, in order."""
        return [c for c in self.calls if c.method == method]

    def called(self, method: str) -> bool:
        """Whether ``method`` was called at least once."""
        return any(c.method == method for c in self.calls)

    def reset_calls(self) -> None:
        """Forget the calls recorded so far."""
        self.calls.clear()


class _Scripted(_Calls):
    """Canned answers per method; see the module docstring."""

    _defaults: Mapping[str, Any] = {}
    _capabilities: frozenset[str] = frozenset()

    def __init__(
        self,
        *,
        repeat: bool = False,
        capabilities: Iterable[str] | None = None,
        **answers: Iterable[Any],
    ) -> None:
        super().__init__()
        self._repeat = repeat
        self._answers: dict[str, deque[Any]] = {}
        self._last: dict[str, Any] = {}
        self.capabilities = frozenset(
            str(c) for c in (self._capabilities if capabilities is None else capabilities)
        )
        for method, values in answers.items():
            self.script(method, *values)

    def script(self, method: str, *answers: Any) -> None:
        """Queue more answers for ``method``."""
        if not callable(getattr(type(self), method, None)):
            raise AttributeError(f"{type(self).__name__} has no method {method!r} to script")
        self._answers.setdefault(method, deque()).extend(answers)

    def _answer(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self._log(method, args, kwargs)
        queue = self._answers.get(method)
        if queue:
            answer = queue.popleft()
            self._last[method] = answer
        elif self._repeat and method in self._last:
            answer = self._last[method]
        else:
            answer = self._defaults.get(method, _NO_DEFAULT)
            if answer is _NO_DEFAULT:
                shown = ", ".join([*map(repr, args), *(f"{k}={v!r}" for k, v in kwargs.items())])
                raise AssertionError(
                    f"unscripted call {type(self).__name__}.{method}({shown}); script it with "
                    f"{type(self).__name__}({method}=[...]) or .script({method!r}, ...)"
                )
            if callable(answer) and not isinstance(answer, computed):
                answer = answer()  # a factory of a fresh default ({} / [])
        if isinstance(answer, BaseException):
            raise answer
        if isinstance(answer, computed):
            return answer.fn(*args, **kwargs)
        return answer


class _Recording(_Calls, Generic[P]):
    """Forwards to ``target`` and records every call."""

    def __init__(self, target: P) -> None:
        super().__init__()
        self.target = target

    @property
    def capabilities(self) -> frozenset[str]:
        """The wrapped adapter's declaration, forwarded."""
        return capabilities_of(self.target)

    def _sync(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self._log(method, args, kwargs)
        return getattr(self.target, method)(*args, **kwargs)

    async def _async(self, method: str, *args: Any, **kwargs: Any) -> Any:
        self._log(method, args, kwargs)
        return await getattr(self.target, method)(*args, **kwargs)

    async def _iter(self, method: str, *args: Any, **kwargs: Any) -> AsyncIterator[Any]:
        self._log(method, args, kwargs)
        async for item in getattr(self.target, method)(*args, **kwargs):
            yield item

    async def aclose(self) -> None:
        """Close the target (``aclose`` or ``close``) when it has one."""
        from portfolio_core.testing.loop import close_adapter

        await close_adapter(self.target)


# -- LLM ---------------------------------------------------------------------------------------


def _words(text: str) -> int:
    return len(text.split())


class ScriptedLLM(_Calls):
    """An LLM answering from a script of texts, completions or exceptions, in order.

    ``default`` answers once the script is exhausted (otherwise the call fails the test).
    Declares streaming, tools and offline; validates like a real adapter (empty conversation,
    ``max_tokens < 1`` or negative temperature raise ``InvalidInputError``) and truncates a
    scripted text to ``max_tokens`` words (``finish_reason="length"``). Usage counts words.
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
                yield CompletionChunk(text, completion.finish_reason, completion.usage)


class RecordingLLM(_Recording[LLM]):
    """Records calls to an LLM (stand-alone: a ``ScriptedLLM`` answering ``"ok"``)."""

    def __init__(self, target: LLM | None = None) -> None:
        super().__init__(target if target is not None else ScriptedLLM(default="ok"))

    async def complete(
        self, messages: Sequence[Message], opts: CompletionOptions | None = None
    ) -> Completion:
        return cast(Completion, await self._async("complete", messages, opts))

    def stream(
        self, messages: Sequence[Message], opts: CompletionOptions | None = None
    ) -> AsyncIterator[CompletionChunk]:
        return self._iter("stream", messages, opts)


# -- Router ------------------------------------------------------------------------------------


class ScriptedRouter(_Scripted):
    """A router with canned ``route``/``complete``/``health_check`` answers.

    ``register_provider`` and ``list_providers`` work for real (a list); ``route`` defaults to
    the first registered provider.
    """

    _capabilities = frozenset(c.value for c in RouterCapability)
    _defaults: Mapping[str, Any] = {"set_strategy": None}

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


class RecordingRouter(_Recording[Router]):
    """Records calls to a router (stand-alone: a ``ScriptedRouter``)."""

    def __init__(self, target: Router | None = None) -> None:
        super().__init__(target if target is not None else ScriptedRouter())

    async def route(
        self, messages: Sequence[Message], opts: RouteOptions | None = None
    ) -> Provider:
        return cast(Provider, await self._async("route", messages, opts))

    async def complete(
        self, messages: Sequence[Message], opts: RouteOptions | None = None
    ) -> Completion:
        return cast(Completion, await self._async("complete", messages, opts))

    async def register_provider(self, provider: Provider, llm: LLM) -> None:
        await self._async("register_provider", provider, llm)

    async def health_check(self, name: str) -> HealthStatus:
        return cast(HealthStatus, await self._async("health_check", name))

    async def list_providers(self) -> list[Provider]:
        return cast(list[Provider], await self._async("list_providers"))

    async def set_strategy(self, strategy: RoutingStrategy) -> None:
        await self._async("set_strategy", strategy)


# -- Cache -------------------------------------------------------------------------------------


class ScriptedCache(_Scripted):
    """A cache with canned answers; unscripted calls behave like an always-empty cache."""

    _capabilities = frozenset({CacheCapability.TTL.value})
    _defaults: Mapping[str, Any] = {
        "get": None,
        "put": None,
        "delete": False,
        "clear": None,
        "exists": False,
        "get_many": dict,
        "put_many": None,
    }

    async def get(self, key: str) -> Any | None:
        return self._answer("get", key)

    async def put(self, key: str, value: Any, ttl: float | None = None) -> None:
        self._answer("put", key, value, ttl=ttl)

    async def delete(self, key: str) -> bool:
        return bool(self._answer("delete", key))

    async def clear(self) -> None:
        self._answer("clear")

    async def exists(self, key: str) -> bool:
        return bool(self._answer("exists", key))

    async def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        return cast(dict[str, Any], self._answer("get_many", keys))

    async def put_many(self, items: Mapping[str, Any], ttl: float | None = None) -> None:
        self._answer("put_many", items, ttl=ttl)


class RecordingCache(_Recording[Cache]):
    """Records calls to a cache (stand-alone: a ``ScriptedCache``)."""

    def __init__(self, target: Cache | None = None) -> None:
        super().__init__(target if target is not None else ScriptedCache())

    async def get(self, key: str) -> Any | None:
        return await self._async("get", key)

    async def put(self, key: str, value: Any, ttl: float | None = None) -> None:
        await self._async("put", key, value, ttl=ttl)

    async def delete(self, key: str) -> bool:
        return cast(bool, await self._async("delete", key))

    async def clear(self) -> None:
        await self._async("clear")

    async def exists(self, key: str) -> bool:
        return cast(bool, await self._async("exists", key))

    async def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        return cast(dict[str, Any], await self._async("get_many", keys))

    async def put_many(self, items: Mapping[str, Any], ttl: float | None = None) -> None:
        await self._async("put_many", items, ttl=ttl)


# -- Pipeline ----------------------------------------------------------------------------------


class ScriptedPipelineStep(_Scripted):
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

    async def execute(self, context: Mapping[str, Any], config: Mapping[str, Any]) -> StepResult:
        return cast(StepResult, self._answer("execute", context, config))


class RecordingPipelineStep(_Recording[PipelineStep]):
    """Records ``validate_input`` and ``execute`` calls of a step (describing it unchanged)."""

    def __init__(self, target: PipelineStep | None = None) -> None:
        super().__init__(target if target is not None else ScriptedPipelineStep())
        self.name = self.target.name
        self.version = self.target.version

    @property
    def required_inputs(self) -> frozenset[str]:
        return self.target.required_inputs

    @property
    def output_schema(self) -> Mapping[str, type]:
        return self.target.output_schema

    @property
    def cacheable(self) -> bool:
        return self.target.cacheable

    def validate_input(self, context: Mapping[str, Any]) -> list[str]:
        return cast(list[str], self._sync("validate_input", context))

    async def execute(self, context: Mapping[str, Any], config: Mapping[str, Any]) -> StepResult:
        return cast(StepResult, await self._async("execute", context, config))


class ScriptedPipeline(_Scripted):
    """A pipeline with canned ``run`` results (default: the inputs back, no steps)."""

    _defaults: Mapping[str, Any] = {
        "run": computed(lambda inputs: PipelineResult(dict(inputs), {}))
    }

    async def run(self, inputs: Mapping[str, Any]) -> PipelineResult:
        return cast(PipelineResult, self._answer("run", inputs))


class RecordingPipeline(_Recording[Pipeline]):
    """Records ``run`` calls of a pipeline."""

    def __init__(self, target: Pipeline | None = None) -> None:
        super().__init__(target if target is not None else ScriptedPipeline())

    async def run(self, inputs: Mapping[str, Any]) -> PipelineResult:
        return cast(PipelineResult, await self._async("run", inputs))


# -- Agent -------------------------------------------------------------------------------------


class ScriptedAgent(_Scripted):
    """An agent with canned ``run`` results and tool results (unknown tools: error results)."""

    _capabilities = frozenset(c.value for c in AgentCapability)
    _defaults: Mapping[str, Any] = {
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

    async def run(self, task: str, opts: AgentOptions | None = None) -> AgentResult:
        return cast(AgentResult, self._answer("run", task, opts))

    def available_tools(self) -> list[ToolSpec]:
        self._log("available_tools", (), {})
        return list(self._tools)

    async def execute_tool(self, call: Any) -> ToolResult:
        return cast(ToolResult, self._answer("execute_tool", call))


class RecordingAgent(_Recording[Agent]):
    """Records calls to an agent."""

    def __init__(self, target: Agent | None = None) -> None:
        super().__init__(target if target is not None else ScriptedAgent())

    @property
    def max_iterations(self) -> int:
        return self.target.max_iterations

    async def run(self, task: str, opts: AgentOptions | None = None) -> AgentResult:
        return cast(AgentResult, await self._async("run", task, opts))

    def available_tools(self) -> list[ToolSpec]:
        return cast(list[ToolSpec], self._sync("available_tools"))

    async def execute_tool(self, call: Any) -> ToolResult:
        return cast(ToolResult, await self._async("execute_tool", call))


# -- Tenant ------------------------------------------------------------------------------------


class ScriptedTenant(_Scripted):
    """A tenant port over the real context variable with canned ``check_quota`` answers
    (default: unlimited, ``remaining`` 1_000_000)."""

    _capabilities = frozenset({TenantCapability.QUOTAS.value})
    _defaults: Mapping[str, Any] = {
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

    async def check_quota(self, resource: str, cost: int = 1) -> QuotaStatus:
        return cast(QuotaStatus, self._answer("check_quota", resource, cost))


class RecordingTenant(_Recording[Tenant]):
    """Records calls to a tenant port."""

    def __init__(self, target: Tenant | None = None) -> None:
        super().__init__(target if target is not None else ScriptedTenant())

    def get_context(self) -> TenantContext | None:
        return cast(TenantContext | None, self._sync("get_context"))

    def set_context(self, ctx: TenantContext) -> Token[TenantContext | None]:
        return cast(Token[TenantContext | None], self._sync("set_context", ctx))

    def reset_context(self, token: Token[TenantContext | None]) -> None:
        self._sync("reset_context", token)

    def with_tenant(self, tenant: str | TenantContext) -> Any:
        return self._sync("with_tenant", tenant)

    async def check_quota(self, resource: str, cost: int = 1) -> QuotaStatus:
        return cast(QuotaStatus, await self._async("check_quota", resource, cost))


# -- Stream ------------------------------------------------------------------------------------


class ScriptedStream(_Scripted):
    """A stream yielding scripted messages per ``stream`` call (a list each) and counting
    what ``write_stream`` receives (kept in ``.written[sink]``)."""

    _capabilities = frozenset({StreamCapability.ACKNOWLEDGE.value})
    _defaults: Mapping[str, Any] = {"stream": list, "ack": None}

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

    async def ack(
        self, source: str, message: StreamMessage, opts: StreamOptions | None = None
    ) -> None:
        self._answer("ack", source, message, opts)


class RecordingStream(_Recording[Stream]):
    """Records calls to a stream adapter."""

    def __init__(self, target: Stream | None = None) -> None:
        super().__init__(target if target is not None else ScriptedStream())

    def stream(
        self, source: str, opts: StreamOptions | None = None
    ) -> AsyncIterator[StreamMessage]:
        return self._iter("stream", source, opts)

    async def write_stream(
        self,
        sink: str,
        items: AsyncIterable[Any] | Iterable[Any],
        opts: StreamOptions | None = None,
    ) -> int:
        return cast(int, await self._async("write_stream", sink, items, opts))

    def transform(
        self,
        source: AsyncIterable[T],
        fn: Callable[[T], Awaitable[Any]] | Callable[[T], Any],
        opts: StreamOptions | None = None,
    ) -> AsyncIterator[Any]:
        return self._iter("transform", source, fn, opts)

    async def ack(
        self, source: str, message: StreamMessage, opts: StreamOptions | None = None
    ) -> None:
        await self._async("ack", source, message, opts)


# -- EventStore --------------------------------------------------------------------------------


class ScriptedEventStore(_Scripted):
    """An event store with canned answers; unscripted ``append`` numbers the batch from 1,
    reads return nothing."""

    _capabilities = frozenset({EventStoreCapability.QUERY.value})
    _defaults: Mapping[str, Any] = {
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

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = StreamState.ANY,
    ) -> AppendResult:
        return cast(AppendResult, self._answer("append", stream, events, expected_version))

    async def read(
        self,
        stream: str,
        from_version: int = 1,
        limit: int | None = None,
        direction: Direction = Direction.FORWARDS,
    ) -> list[RecordedEvent]:
        return cast(
            list[RecordedEvent], self._answer("read", stream, from_version, limit, direction)
        )

    async def read_all(
        self, from_position: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        return cast(list[RecordedEvent], self._answer("read_all", from_position, limit))

    async def query(self, query: EventQuery) -> list[RecordedEvent]:
        return cast(list[RecordedEvent], self._answer("query", query))

    async def subscribe(
        self,
        handler: EventHandler,
        *,
        stream: str | None = None,
        from_position: int = 1,
        filter: EventQuery | None = None,
        on_error: OnHandlerError = OnHandlerError.STOP,
    ) -> Subscription:
        return cast(
            Subscription,
            self._answer(
                "subscribe",
                handler,
                stream=stream,
                from_position=from_position,
                filter=filter,
                on_error=on_error,
            ),
        )

    async def unsubscribe(self, subscription: Subscription) -> None:
        self._answer("unsubscribe", subscription)


class RecordingEventStore(_Recording[EventStore]):
    """Records calls to an event store."""

    def __init__(self, target: EventStore | None = None) -> None:
        super().__init__(target if target is not None else ScriptedEventStore())

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = StreamState.ANY,
    ) -> AppendResult:
        return cast(AppendResult, await self._async("append", stream, events, expected_version))

    async def read(
        self,
        stream: str,
        from_version: int = 1,
        limit: int | None = None,
        direction: Direction = Direction.FORWARDS,
    ) -> list[RecordedEvent]:
        return cast(
            list[RecordedEvent], await self._async("read", stream, from_version, limit, direction)
        )

    async def read_all(
        self, from_position: int = 1, limit: int | None = None
    ) -> list[RecordedEvent]:
        return cast(list[RecordedEvent], await self._async("read_all", from_position, limit))

    async def query(self, query: EventQuery) -> list[RecordedEvent]:
        return cast(list[RecordedEvent], await self._async("query", query))

    async def subscribe(
        self,
        handler: EventHandler,
        *,
        stream: str | None = None,
        from_position: int = 1,
        filter: EventQuery | None = None,
        on_error: OnHandlerError = OnHandlerError.STOP,
    ) -> Subscription:
        return cast(
            Subscription,
            await self._async(
                "subscribe",
                handler,
                stream=stream,
                from_position=from_position,
                filter=filter,
                on_error=on_error,
            ),
        )

    async def unsubscribe(self, subscription: Subscription) -> None:
        await self._async("unsubscribe", subscription)


class ScriptedJobQueue(_Scripted):
    """A job queue with canned answers; unscripted ``enqueue`` returns ids "1", "2", ...,
    ``reserve`` and ``list_jobs`` return nothing, ``counts`` zeros; finishing a reservation
    succeeds; ``get``, ``fail``, ``retry`` and ``cancel`` must be scripted."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._next_id = 0

    def _new_id(self, job: NewJob) -> str:
        self._next_id += 1
        return str(self._next_id)

    @property
    def _defaults(self) -> Mapping[str, Any]:  # type: ignore[override]
        return {
            "enqueue": computed(self._new_id),
            "enqueue_many": computed(lambda jobs: [self._new_id(j) for j in jobs]),
            "reserve": list,
            "complete": None,
            "extend": computed(lambda reservation, lease: reservation),
            "release": None,
            "list_jobs": list,
            "counts": JobCounts,
        }

    async def enqueue(self, job: NewJob) -> str:
        return cast(str, self._answer("enqueue", job))

    async def enqueue_many(self, jobs: Sequence[NewJob]) -> list[str]:
        return cast(list[str], self._answer("enqueue_many", jobs))

    async def reserve(
        self, queue: str, *, limit: int = 1, lease: float = 30.0, wait: float = 0.0
    ) -> list[Reservation]:
        return cast(
            list[Reservation], self._answer("reserve", queue, limit=limit, lease=lease, wait=wait)
        )

    async def complete(self, reservation: Reservation) -> None:
        self._answer("complete", reservation)

    async def fail(
        self, reservation: Reservation, error: str, *, retry_in: float | None = None
    ) -> Job:
        return cast(Job, self._answer("fail", reservation, error, retry_in=retry_in))

    async def extend(self, reservation: Reservation, lease: float) -> Reservation:
        return cast(Reservation, self._answer("extend", reservation, lease))

    async def release(self, reservation: Reservation) -> None:
        self._answer("release", reservation)

    async def get(self, job_id: str) -> Job:
        return cast(Job, self._answer("get", job_id))

    async def list_jobs(self, queue: str, state: JobState, *, limit: int = 100) -> list[Job]:
        return cast(list[Job], self._answer("list_jobs", queue, state, limit=limit))

    async def retry(self, job_id: str) -> Job:
        return cast(Job, self._answer("retry", job_id))

    async def cancel(self, job_id: str) -> bool:
        return cast(bool, self._answer("cancel", job_id))

    async def counts(self, queue: str) -> JobCounts:
        return cast(JobCounts, self._answer("counts", queue))


class RecordingJobQueue(_Recording[JobQueue]):
    """Records calls to a job queue."""

    def __init__(self, target: JobQueue | None = None) -> None:
        super().__init__(target if target is not None else ScriptedJobQueue())

    async def enqueue(self, job: NewJob) -> str:
        return cast(str, await self._async("enqueue", job))

    async def enqueue_many(self, jobs: Sequence[NewJob]) -> list[str]:
        return cast(list[str], await self._async("enqueue_many", jobs))

    async def reserve(
        self, queue: str, *, limit: int = 1, lease: float = 30.0, wait: float = 0.0
    ) -> list[Reservation]:
        return cast(
            list[Reservation],
            await self._async("reserve", queue, limit=limit, lease=lease, wait=wait),
        )

    async def complete(self, reservation: Reservation) -> None:
        await self._async("complete", reservation)

    async def fail(
        self, reservation: Reservation, error: str, *, retry_in: float | None = None
    ) -> Job:
        return cast(Job, await self._async("fail", reservation, error, retry_in=retry_in))

    async def extend(self, reservation: Reservation, lease: float) -> Reservation:
        return cast(Reservation, await self._async("extend", reservation, lease))

    async def release(self, reservation: Reservation) -> None:
        await self._async("release", reservation)

    async def get(self, job_id: str) -> Job:
        return cast(Job, await self._async("get", job_id))

    async def list_jobs(self, queue: str, state: JobState, *, limit: int = 100) -> list[Job]:
        return cast(list[Job], await self._async("list_jobs", queue, state, limit=limit))

    async def retry(self, job_id: str) -> Job:
        return cast(Job, await self._async("retry", job_id))

    async def cancel(self, job_id: str) -> bool:
        return cast(bool, await self._async("cancel", job_id))

    async def counts(self, queue: str) -> JobCounts:
        return cast(JobCounts, await self._async("counts", queue))


# -- inference ports (sync) --------------------------------------------------------------------


class ScriptedTokenizer(_Scripted):
    """A UTF-8 byte tokenizer (ids 0-255, EOS 256) unless ``encode``/``decode`` are scripted."""

    _defaults: Mapping[str, Any] = {
        "encode": computed(lambda text, add_special_tokens=False: list(text.encode("utf-8"))),
        "decode": computed(
            lambda ids, skip_special_tokens=True: bytes(i for i in ids if i < 256).decode(
                "utf-8", errors="replace"
            )
        ),
    }

    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        return cast(list[int], self._answer("encode", text, add_special_tokens=add_special_tokens))

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        return cast(str, self._answer("decode", ids, skip_special_tokens=skip_special_tokens))

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


class RecordingTokenizer(_Recording[Tokenizer]):
    """Records ``encode``/``decode`` calls of a tokenizer."""

    def __init__(self, target: Tokenizer | None = None) -> None:
        super().__init__(target if target is not None else ScriptedTokenizer())

    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        return cast(list[int], self._sync("encode", text, add_special_tokens=add_special_tokens))

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        return cast(str, self._sync("decode", ids, skip_special_tokens=skip_special_tokens))

    @property
    def eos_token_id(self) -> int:
        return self.target.eos_token_id

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return self.target.eos_token_ids

    @property
    def bos_token_id(self) -> int | None:
        return self.target.bos_token_id

    @property
    def vocab_size(self) -> int:
        return self.target.vocab_size


_SPEC = ModelCacheSpec(
    n_layers=1, n_kv_heads=1, head_dim=4, dtype="float32", vocab_size=257, max_seq_len=512
)


class ScriptedModelBackend(_Scripted):
    """A model backend with a fixed spec and canned generations (default: EOS at once)."""

    _defaults: Mapping[str, Any] = {
        "generate": computed(lambda *a, **k: Generation((256,), "stop"))
    }

    def __init__(self, spec: ModelCacheSpec = _SPEC, **answers: Any) -> None:
        super().__init__(**answers)
        self.spec = spec

    def extract_model_spec(self) -> ModelCacheSpec:
        self._log("extract_model_spec", (), {})
        return self.spec

    def generate(
        self,
        prompt_tokens: Sequence[int],
        cache: AgentBlocks | None = None,
        *,
        max_tokens: int = 64,
        temperature: float = 0.0,
        stop_ids: frozenset[int] = frozenset(),
    ) -> Generation:
        return cast(
            Generation,
            self._answer(
                "generate",
                prompt_tokens,
                cache,
                max_tokens=max_tokens,
                temperature=temperature,
                stop_ids=stop_ids,
            ),
        )


class RecordingModelBackend(_Recording[ModelBackend]):
    """Records calls to a model backend."""

    def __init__(self, target: ModelBackend | None = None) -> None:
        super().__init__(target if target is not None else ScriptedModelBackend())

    def extract_model_spec(self) -> ModelCacheSpec:
        return cast(ModelCacheSpec, self._sync("extract_model_spec"))

    def generate(
        self,
        prompt_tokens: Sequence[int],
        cache: AgentBlocks | None = None,
        *,
        max_tokens: int = 64,
        temperature: float = 0.0,
        stop_ids: frozenset[int] = frozenset(),
    ) -> Generation:
        return cast(
            Generation,
            self._sync(
                "generate",
                prompt_tokens,
                cache,
                max_tokens=max_tokens,
                temperature=temperature,
                stop_ids=stop_ids,
            ),
        )


class ScriptedGenerationEngine(_Scripted):
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


class RecordingGenerationEngine(_Recording[GenerationEngine]):
    """Records calls to a generation engine."""

    def __init__(self, target: GenerationEngine | None = None) -> None:
        super().__init__(target if target is not None else ScriptedGenerationEngine())

    def submit(
        self,
        agent_id: str,
        prompt: str | Sequence[int],
        cache: AgentBlocks | None = None,
        max_tokens: int = 256,
    ) -> str:
        return cast(str, self._sync("submit", agent_id, prompt, cache, max_tokens))

    def step(self) -> list[CompletedGeneration]:
        return cast(list[CompletedGeneration], self._sync("step"))

    def abort(self, uid: str) -> bool:
        return cast(bool, self._sync("abort", uid))

    def has_unfinished(self) -> bool:
        return cast(bool, self._sync("has_unfinished"))


class ScriptedCacheStore(_Scripted):
    """A KV cache store with canned ``get`` hits (default: always a miss)."""

    _capabilities = frozenset({CacheStoreCapability.TIERS.value})
    _defaults: Mapping[str, Any] = {"get": None, "put": None, "evict": False, "delete": False}

    def get(self, agent_id: str, tokens: Sequence[int]) -> CacheHit | None:
        return cast(CacheHit | None, self._answer("get", agent_id, tokens))

    def put(self, agent_id: str, blocks: AgentBlocks) -> None:
        self._answer("put", agent_id, blocks)

    def evict(self, agent_id: str) -> bool:
        return bool(self._answer("evict", agent_id))

    def delete(self, agent_id: str) -> bool:
        return bool(self._answer("delete", agent_id))

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


class RecordingCacheStore(_Recording[CacheStore]):
    """Records calls to a KV cache store."""

    def __init__(self, target: CacheStore | None = None) -> None:
        super().__init__(target if target is not None else ScriptedCacheStore())

    def get(self, agent_id: str, tokens: Sequence[int]) -> CacheHit | None:
        return cast(CacheHit | None, self._sync("get", agent_id, tokens))

    def put(self, agent_id: str, blocks: AgentBlocks) -> None:
        self._sync("put", agent_id, blocks)

    def evict(self, agent_id: str) -> bool:
        return cast(bool, self._sync("evict", agent_id))

    def delete(self, agent_id: str) -> bool:
        return cast(bool, self._sync("delete", agent_id))

    @property
    def block_size(self) -> int:
        return self.target.block_size

    def pin(self, agent_id: str) -> None:
        self._sync("pin", agent_id)

    def unpin(self, agent_id: str) -> bool:
        return cast(bool, self._sync("unpin", agent_id))

    def stats(self) -> CacheStoreStats:
        return cast(CacheStoreStats, self._sync("stats"))


class ScriptedCachePersistence(_Scripted):
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


class RecordingCachePersistence(_Recording[CachePersistence]):
    """Records calls to cache persistence."""

    def __init__(self, target: CachePersistence | None = None) -> None:
        super().__init__(target if target is not None else ScriptedCachePersistence())

    def save(self, agent_id: str, blocks: AgentBlocks) -> None:
        self._sync("save", agent_id, blocks)

    def load(self, agent_id: str, spec_hash: str) -> AgentBlocks:
        return cast(AgentBlocks, self._sync("load", agent_id, spec_hash))

    def exists(self, agent_id: str) -> bool:
        return cast(bool, self._sync("exists", agent_id))

    def delete(self, agent_id: str) -> bool:
        return cast(bool, self._sync("delete", agent_id))

    def list_cached_agents(self) -> list[str]:
        return cast(list[str], self._sync("list_cached_agents"))
