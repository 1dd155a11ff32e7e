"""The ports: small, pure ``typing.Protocol`` contracts that application code depends on.

This package imports only the standard library, and only what you use: each name below is
loaded from its port module on first access (PEP 562), so ``from portfolio_core.ports import
Cache`` does not pay for the EventStore's value objects. Ports whose adapters usually cross a
network are async; ports that compute in process are sync (see docs/decisions/).
"""

from __future__ import annotations

import importlib

TYPE_CHECKING = False  # typing costs ~10 ms to import; the port modules load it when used

if TYPE_CHECKING:
    from portfolio_core.ports.agent import (
        Agent,
        AgentCapability,
        AgentOptions,
        AgentResult,
        ToolResult,
    )
    from portfolio_core.ports.cache import (
        MAX_KEY_LENGTH,
        Cache,
        CacheCapability,
    )
    from portfolio_core.ports.cache_persistence import (
        CachePersistence,
    )
    from portfolio_core.ports.cache_store import (
        CacheHit,
        CacheStore,
        CacheStoreCapability,
        CacheTier,
    )
    from portfolio_core.ports.capabilities import (
        capabilities_of,
        declare,
        require,
        supports,
    )
    from portfolio_core.ports.catalogue import (
        PORTS,
        PortInfo,
        port_by_key,
        port_of,
    )
    from portfolio_core.ports.errors import (
        ConflictError,
        InvalidInputError,
        MaxIterationsExceededError,
        NoHealthyProviderError,
        NotFoundError,
        PoolExhaustedError,
        PortError,
        PortTimeoutError,
        QuotaExceededError,
        RateLimitedError,
        TenantRequiredError,
        UnavailableError,
        UnsupportedError,
        WrongExpectedVersionError,
    )
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
    from portfolio_core.ports.generation_engine import (
        CompletedGeneration,
        FinishReason,
        GenerationEngine,
    )
    from portfolio_core.ports.llm import (
        LLM,
        Completion,
        CompletionChunk,
        CompletionOptions,
        LLMCapability,
        Message,
        Role,
        ToolCall,
        ToolSpec,
        Usage,
        estimate_tokens,
    )
    from portfolio_core.ports.model_backend import (
        AgentBlocks,
        Generation,
        ModelBackend,
        ModelCacheSpec,
    )
    from portfolio_core.ports.pipeline import (
        Pipeline,
        PipelineResult,
        PipelineStep,
        StepResult,
        StepStatus,
    )
    from portfolio_core.ports.router import (
        HealthStatus,
        Provider,
        RouteOptions,
        Router,
        RouterCapability,
        RoutingStrategy,
    )
    from portfolio_core.ports.stream import (
        OnError,
        Stream,
        StreamCapability,
        StreamMessage,
        StreamOptions,
    )
    from portfolio_core.ports.tenant import (
        QuotaStatus,
        Tenant,
        TenantCapability,
        TenantContext,
        current_tenant,
        require_tenant,
        tenant_scope,
    )
    from portfolio_core.ports.tokenizer import (
        Tokenizer,
    )

#: exported name -> port module that defines it
_EXPORTS: dict[str, str] = {
    "Agent": "agent",
    "AgentBlocks": "model_backend",
    "AgentCapability": "agent",
    "AgentOptions": "agent",
    "AgentResult": "agent",
    "AppendResult": "event_store",
    "Cache": "cache",
    "CacheCapability": "cache",
    "CacheHit": "cache_store",
    "CachePersistence": "cache_persistence",
    "CacheStore": "cache_store",
    "CacheStoreCapability": "cache_store",
    "CacheTier": "cache_store",
    "CompletedGeneration": "generation_engine",
    "Completion": "llm",
    "CompletionChunk": "llm",
    "CompletionOptions": "llm",
    "ConflictError": "errors",
    "Direction": "event_store",
    "EventHandler": "event_store",
    "EventQuery": "event_store",
    "EventStore": "event_store",
    "EventStoreCapability": "event_store",
    "ExpectedVersion": "event_store",
    "FinishReason": "generation_engine",
    "Generation": "model_backend",
    "GenerationEngine": "generation_engine",
    "HealthStatus": "router",
    "InvalidInputError": "errors",
    "LLM": "llm",
    "LLMCapability": "llm",
    "MAX_KEY_LENGTH": "cache",
    "MaxIterationsExceededError": "errors",
    "Message": "llm",
    "ModelBackend": "model_backend",
    "ModelCacheSpec": "model_backend",
    "NewEvent": "event_store",
    "NoHealthyProviderError": "errors",
    "NotFoundError": "errors",
    "OnError": "stream",
    "OnHandlerError": "event_store",
    "PORTS": "catalogue",
    "Pipeline": "pipeline",
    "PipelineResult": "pipeline",
    "PipelineStep": "pipeline",
    "PoolExhaustedError": "errors",
    "PortError": "errors",
    "PortInfo": "catalogue",
    "PortTimeoutError": "errors",
    "Provider": "router",
    "QuotaExceededError": "errors",
    "QuotaStatus": "tenant",
    "RateLimitedError": "errors",
    "RecordedEvent": "event_store",
    "Role": "llm",
    "RouteOptions": "router",
    "Router": "router",
    "RouterCapability": "router",
    "RoutingStrategy": "router",
    "StepResult": "pipeline",
    "StepStatus": "pipeline",
    "Stream": "stream",
    "StreamCapability": "stream",
    "StreamMessage": "stream",
    "StreamOptions": "stream",
    "StreamState": "event_store",
    "Subscription": "event_store",
    "Tenant": "tenant",
    "TenantCapability": "tenant",
    "TenantContext": "tenant",
    "TenantRequiredError": "errors",
    "Tokenizer": "tokenizer",
    "ToolCall": "llm",
    "ToolResult": "agent",
    "ToolSpec": "llm",
    "UnavailableError": "errors",
    "UnsupportedError": "errors",
    "Usage": "llm",
    "WrongExpectedVersionError": "errors",
    "capabilities_of": "capabilities",
    "current_tenant": "tenant",
    "declare": "capabilities",
    "estimate_tokens": "llm",
    "port_by_key": "catalogue",
    "port_of": "catalogue",
    "require": "capabilities",
    "require_tenant": "tenant",
    "supports": "capabilities",
    "tenant_scope": "tenant",
}

__all__ = [
    "Agent",
    "AgentBlocks",
    "AgentCapability",
    "AgentOptions",
    "AgentResult",
    "AppendResult",
    "Cache",
    "CacheCapability",
    "CacheHit",
    "CachePersistence",
    "CacheStore",
    "CacheStoreCapability",
    "CacheTier",
    "CompletedGeneration",
    "Completion",
    "CompletionChunk",
    "CompletionOptions",
    "ConflictError",
    "Direction",
    "EventHandler",
    "EventQuery",
    "EventStore",
    "EventStoreCapability",
    "ExpectedVersion",
    "FinishReason",
    "Generation",
    "GenerationEngine",
    "HealthStatus",
    "InvalidInputError",
    "LLM",
    "LLMCapability",
    "MAX_KEY_LENGTH",
    "MaxIterationsExceededError",
    "Message",
    "ModelBackend",
    "ModelCacheSpec",
    "NewEvent",
    "NoHealthyProviderError",
    "NotFoundError",
    "OnError",
    "OnHandlerError",
    "PORTS",
    "Pipeline",
    "PipelineResult",
    "PipelineStep",
    "PoolExhaustedError",
    "PortError",
    "PortInfo",
    "PortTimeoutError",
    "Provider",
    "QuotaExceededError",
    "QuotaStatus",
    "RateLimitedError",
    "RecordedEvent",
    "Role",
    "RouteOptions",
    "Router",
    "RouterCapability",
    "RoutingStrategy",
    "StepResult",
    "StepStatus",
    "Stream",
    "StreamCapability",
    "StreamMessage",
    "StreamOptions",
    "StreamState",
    "Subscription",
    "Tenant",
    "TenantCapability",
    "TenantContext",
    "TenantRequiredError",
    "Tokenizer",
    "ToolCall",
    "ToolResult",
    "ToolSpec",
    "UnavailableError",
    "UnsupportedError",
    "Usage",
    "WrongExpectedVersionError",
    "capabilities_of",
    "current_tenant",
    "declare",
    "estimate_tokens",
    "port_by_key",
    "port_of",
    "require",
    "require_tenant",
    "supports",
    "tenant_scope",
]


def __getattr__(name: str) -> object:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'portfolio_core.ports' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"portfolio_core.ports.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
