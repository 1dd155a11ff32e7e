"""Scripted doubles of the LLM application ports: LLM, Router, Cache, Pipeline and
PipelineStep, Agent, Tenant (see the package docstring).

Only what differs from "answer from the script" is written here; every other port method is
generated from the port's protocol by `_Scripted`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import (
    AsyncIterator,
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
from portfolio_core.ports.errors import InvalidInputError
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
from portfolio_core.ports.pipeline import Pipeline, PipelineResult, PipelineStep
from portfolio_core.ports.router import (
    HealthStatus,
    Provider,
    RouteOptions,
    Router,
    RouterCapability,
    RoutingStrategy,
)
from portfolio_core.ports.tenant import (
    QuotaStatus,
    Tenant,
    TenantCapability,
    TenantContext,
    current_tenant,
    tenant_scope,
)
from portfolio_core.testing.doubles._core import _Calls, _Scripted, computed

__all__ = [
    "ScriptedAgent",
    "ScriptedCache",
    "ScriptedLLM",
    "ScriptedPipeline",
    "ScriptedPipelineStep",
    "ScriptedRouter",
    "ScriptedTenant",
]


# -- LLM: hand-written, its defaults (word-count usage, truncation, streaming) matter ----------


def _words(text: str) -> int:
    return len(text.split())


class ScriptedLLM(_Calls):
    """An LLM answering from a script of texts, completions or exceptions, in order.

    ``default`` answers once the script is exhausted (otherwise the call fails the test).
    Declares streaming, tools and offline; validates like a real adapter (an empty
    conversation, or options that ``CompletionOptions.check`` refuses, raise
    ``InvalidInputError``) and truncates a scripted text at the first stop sequence, then to
    ``max_tokens`` words
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
        opts.check()
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
        if not self._scripted("route") and self.providers:
            self._log("route", (messages, opts), {})
            return self.providers[0][0]
        return cast(Provider, self._answer("route", messages, opts))

    async def complete(
        self, messages: Sequence[Message], opts: RouteOptions | None = None
    ) -> Completion:
        if not self._scripted("complete") and self.providers:
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
        if not self._scripted("health_check"):
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
        if self._scripted("validate_input"):
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
