"""The smallest hand-written class that satisfies each port, used as a specification.

The statements at the bottom are checked by mypy (``test_protocols_static``): each minimal
class must be assignable to its port.
"""

from __future__ import annotations

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
from typing import Any, TypeVar

from portfolio_core import ports as p

T = TypeVar("T")
U = TypeVar("U")


class MinimalRouter:
    async def route(
        self, messages: Sequence[p.Message], opts: p.RouteOptions | None = None
    ) -> p.Provider:
        return p.Provider("only", "m")

    async def complete(
        self, messages: Sequence[p.Message], opts: p.RouteOptions | None = None
    ) -> p.Completion:
        return p.Completion("", "m", p.Usage(0, 0))

    async def register_provider(self, provider: p.Provider, llm: p.LLM) -> None:
        return None

    async def health_check(self, name: str) -> p.HealthStatus:
        return p.HealthStatus(name, True)

    async def list_providers(self) -> list[p.Provider]:
        return []

    async def set_strategy(self, strategy: p.RoutingStrategy) -> None:
        return None


class MinimalLLM:
    async def complete(
        self, messages: Sequence[p.Message], opts: p.CompletionOptions | None = None
    ) -> p.Completion:
        return p.Completion("hi", "m", p.Usage(1, 1))

    async def stream(
        self, messages: Sequence[p.Message], opts: p.CompletionOptions | None = None
    ) -> AsyncIterator[p.CompletionChunk]:
        yield p.CompletionChunk("hi", "stop", p.Usage(1, 1))


class MinimalCache:
    def __init__(self) -> None:
        self.items: dict[str, Any] = {}

    async def get(self, key: str) -> Any | None:
        return self.items.get(key)

    async def put(self, key: str, value: Any, ttl: float | None = None) -> None:
        self.items[key] = value

    async def delete(self, key: str) -> bool:
        return self.items.pop(key, None) is not None

    async def clear(self) -> None:
        self.items.clear()

    async def exists(self, key: str) -> bool:
        return key in self.items

    async def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        return {k: self.items[k] for k in keys if k in self.items}

    async def put_many(self, items: Mapping[str, Any], ttl: float | None = None) -> None:
        self.items.update(items)


class MinimalPipeline:
    async def run(self, inputs: Mapping[str, Any]) -> p.PipelineResult:
        return p.PipelineResult(dict(inputs), {})


class MinimalPipelineStep:
    name = "echo"
    version = "1"

    @property
    def required_inputs(self) -> frozenset[str]:
        return frozenset({"text"})

    @property
    def output_schema(self) -> Mapping[str, type]:
        return {"echo": str}

    @property
    def cacheable(self) -> bool:
        return True

    def validate_input(self, context: Mapping[str, Any]) -> list[str]:
        return [] if "text" in context else ["missing input 'text'"]

    async def execute(self, context: Mapping[str, Any], config: Mapping[str, Any]) -> p.StepResult:
        return p.StepResult.ok(echo=str(context["text"]))


class MinimalAgent:
    @property
    def max_iterations(self) -> int:
        return 10

    async def run(self, task: str, opts: p.AgentOptions | None = None) -> p.AgentResult:
        return p.AgentResult(task, (), 1)

    def available_tools(self) -> list[p.ToolSpec]:
        return []

    async def execute_tool(self, call: p.ToolCall) -> p.ToolResult:
        return p.ToolResult(call.id, call.name, "unknown tool", is_error=True)


class MinimalTenant:
    def get_context(self) -> p.TenantContext | None:
        return p.current_tenant()

    def set_context(self, ctx: p.TenantContext) -> Token[p.TenantContext | None]:
        raise p.UnsupportedError("not in the minimal tenant")

    def reset_context(self, token: Token[p.TenantContext | None]) -> None:
        return None

    @contextmanager
    def with_tenant(self, tenant: str | p.TenantContext) -> Iterator[p.TenantContext]:
        with p.tenant_scope(tenant) as ctx:
            yield ctx

    async def check_quota(self, resource: str, cost: int = 1) -> p.QuotaStatus:
        return p.QuotaStatus(p.require_tenant().tenant_id, resource, remaining=0)


class MinimalStream:
    async def stream(
        self, source: str, opts: p.StreamOptions | None = None
    ) -> AsyncIterator[p.StreamMessage]:
        yield p.StreamMessage("1", "hello", source)

    async def write_stream(
        self,
        sink: str,
        items: AsyncIterable[Any] | Iterable[Any],
        opts: p.StreamOptions | None = None,
    ) -> int:
        return 0

    async def transform(
        self,
        source: AsyncIterable[T],
        fn: Callable[[T], Awaitable[U]] | Callable[[T], U],
        opts: p.StreamOptions | None = None,
    ) -> AsyncIterator[U]:
        async for item in source:
            out = fn(item)
            if isinstance(out, Awaitable):
                yield await out
            else:
                yield out

    async def ack(
        self, source: str, message: p.StreamMessage, opts: p.StreamOptions | None = None
    ) -> None:
        raise p.UnsupportedError("no acks", capability=p.StreamCapability.ACKNOWLEDGE)


class MinimalEventStore:
    async def append(
        self,
        stream: str,
        events: Sequence[p.NewEvent],
        expected_version: p.ExpectedVersion = p.StreamState.ANY,
    ) -> p.AppendResult:
        return p.AppendResult(stream, len(events), tuple(range(1, len(events) + 1)))

    async def read(
        self,
        stream: str,
        from_version: int = 1,
        limit: int | None = None,
        direction: p.Direction = p.Direction.FORWARDS,
    ) -> list[p.RecordedEvent]:
        raise p.NotFoundError(f"no stream {stream!r}", key=stream)

    async def read_all(
        self, from_position: int = 1, limit: int | None = None
    ) -> list[p.RecordedEvent]:
        return []

    async def query(self, query: p.EventQuery) -> list[p.RecordedEvent]:
        return []

    async def subscribe(
        self,
        handler: p.EventHandler,
        *,
        stream: str | None = None,
        from_position: int = 1,
        filter: p.EventQuery | None = None,
        on_error: p.OnHandlerError = p.OnHandlerError.STOP,
    ) -> p.Subscription:
        raise p.UnsupportedError("no subscriptions", capability=p.EventStoreCapability.SUBSCRIBE)

    async def unsubscribe(self, subscription: p.Subscription) -> None:
        return None


class MinimalConfigStore:
    async def current_version(self) -> int:
        return 0

    async def get(self, key: str, *, version: int | None = None) -> Any:
        raise p.NotFoundError(f"no key {key!r}", key=key)

    async def read(self, prefix: str = "", *, version: int | None = None) -> p.ConfigSnapshot:
        return p.ConfigSnapshot(0, {})

    async def apply(
        self,
        changes: Mapping[str, Any],
        *,
        expected_version: int | None = None,
        author: str = "",
        reason: str = "",
    ) -> int:
        return 1

    async def history(
        self, *, from_version: int = 1, limit: int | None = None
    ) -> list[p.ChangeSet]:
        return []

    async def rollback(
        self,
        to_version: int,
        *,
        prefix: str = "",
        expected_version: int | None = None,
        author: str = "",
        reason: str = "",
    ) -> int:
        raise p.NotFoundError(f"no version {to_version}", key=str(to_version))

    async def watch(
        self, prefix: str = "", *, from_version: int | None = None
    ) -> AsyncIterator[p.ChangeSet]:
        return
        yield


class MinimalJobQueue:
    """Refuses every job (a queue that is always full of nothing)."""

    async def enqueue(self, job: p.NewJob) -> str:
        raise p.UnavailableError("no room")

    async def enqueue_many(self, jobs: Sequence[p.NewJob]) -> list[str]:
        raise p.UnavailableError("no room")

    async def reserve(
        self, queue: str, *, limit: int = 1, lease: float = 30.0, wait: float = 0.0
    ) -> list[p.Reservation]:
        return []

    async def complete(self, reservation: p.Reservation) -> None:
        raise p.ConflictError("not held")

    async def fail(
        self, reservation: p.Reservation, error: str, *, retry_in: float | None = None
    ) -> p.Job:
        raise p.ConflictError("not held")

    async def extend(self, reservation: p.Reservation, lease: float) -> p.Reservation:
        raise p.ConflictError("not held")

    async def release(self, reservation: p.Reservation) -> None:
        raise p.ConflictError("not held")

    async def get(self, job_id: str) -> p.Job:
        raise p.NotFoundError(f"no job {job_id!r}", key=job_id)

    async def list_jobs(self, queue: str, state: p.JobState, *, limit: int = 100) -> list[p.Job]:
        return []

    async def retry(self, job_id: str) -> p.Job:
        raise p.NotFoundError(f"no job {job_id!r}", key=job_id)

    async def cancel(self, job_id: str) -> bool:
        raise p.NotFoundError(f"no job {job_id!r}", key=job_id)

    async def counts(self, queue: str) -> p.JobCounts:
        return p.JobCounts()


class MinimalGenerationEngine:
    def submit(
        self,
        agent_id: str,
        prompt: str | Sequence[int],
        cache: p.AgentBlocks | None = None,
        max_tokens: int = 256,
        *,
        sampling: p.Sampling | None = None,
    ) -> str:
        return "uid-1"

    def step(self) -> list[p.CompletedGeneration]:
        return []

    def abort(self, uid: str) -> bool:
        return False

    def has_unfinished(self) -> bool:
        return False


class MinimalCacheStore:
    @property
    def block_size(self) -> int:
        return 16

    def get(self, agent_id: str, tokens: Sequence[int]) -> p.CacheHit | None:
        return None

    def put(self, agent_id: str, blocks: p.AgentBlocks) -> None:
        return None

    def evict(self, agent_id: str) -> bool:
        return False

    def delete(self, agent_id: str) -> bool:
        return False

    def pin(self, agent_id: str) -> None:
        raise p.UnsupportedError("no pinning", capability=p.CacheStoreCapability.PINNING)

    def unpin(self, agent_id: str) -> bool:
        raise p.UnsupportedError("no pinning", capability=p.CacheStoreCapability.PINNING)

    def stats(self) -> p.CacheStoreStats:
        return p.CacheStoreStats()


class MinimalCachePersistence:
    def save(self, agent_id: str, blocks: p.AgentBlocks) -> None:
        return None

    def load(self, agent_id: str, spec_hash: str) -> p.AgentBlocks:
        raise p.NotFoundError(agent_id, key=agent_id)

    def exists(self, agent_id: str) -> bool:
        return False

    def delete(self, agent_id: str) -> bool:
        return False

    def list_cached_agents(self) -> list[str]:
        return []


class MinimalTokenizer:
    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        return list(text.encode())

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        return bytes(i for i in ids if i < 256).decode(errors="replace")

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


class MinimalModelBackend:
    def extract_model_spec(self) -> p.ModelCacheSpec:
        return p.ModelCacheSpec(1, 1, 4, "float32", 257, 128)

    def generate(
        self,
        prompt_tokens: Sequence[int],
        cache: p.AgentBlocks | None = None,
        *,
        max_tokens: int = 64,
        temperature: float = 0.0,
        stop_ids: frozenset[int] = frozenset(),
    ) -> p.Generation:
        return p.Generation((256,), "stop")


class MinimalSnapshotStore:
    async def save(self, snapshot: p.Snapshot) -> bool:
        return True

    async def load(self, stream: str) -> p.Snapshot | None:
        return None

    async def delete(self, stream: str) -> None:
        return None


class MinimalProjectionStore:
    async def claim(self, projection: str, owner: str, ttl: float) -> p.Lease | None:
        return None

    async def release(self, lease: p.Lease) -> None:
        return None

    async def checkpoint(self, projection: str) -> int:
        return 0

    async def commit(
        self, lease: p.Lease, position: int, effect: Callable[[Any], Awaitable[None]] | None = None
    ) -> None:
        return None

    async def reset(self, projection: str) -> None:
        return None


#: (port, minimal class): one row per port of the catalogue.
MINIMAL: dict[type, type] = {
    p.Router: MinimalRouter,
    p.LLM: MinimalLLM,
    p.Cache: MinimalCache,
    p.Pipeline: MinimalPipeline,
    p.PipelineStep: MinimalPipelineStep,
    p.Agent: MinimalAgent,
    p.Tenant: MinimalTenant,
    p.Stream: MinimalStream,
    p.EventStore: MinimalEventStore,
    p.ConfigStore: MinimalConfigStore,
    p.SnapshotStore: MinimalSnapshotStore,
    p.ProjectionStore: MinimalProjectionStore,
    p.JobQueue: MinimalJobQueue,
    p.GenerationEngine: MinimalGenerationEngine,
    p.CacheStore: MinimalCacheStore,
    p.CachePersistence: MinimalCachePersistence,
    p.Tokenizer: MinimalTokenizer,
    p.ModelBackend: MinimalModelBackend,
}

# Static conformance: mypy rejects this module if a minimal class stops matching its port.
_router: p.Router = MinimalRouter()
_llm: p.LLM = MinimalLLM()
_cache: p.Cache = MinimalCache()
_pipeline: p.Pipeline = MinimalPipeline()
_step: p.PipelineStep = MinimalPipelineStep()
_agent: p.Agent = MinimalAgent()
_tenant: p.Tenant = MinimalTenant()
_stream: p.Stream = MinimalStream()
_events: p.EventStore = MinimalEventStore()
_config: p.ConfigStore = MinimalConfigStore()
_snapshots: p.SnapshotStore = MinimalSnapshotStore()
_projections: p.ProjectionStore = MinimalProjectionStore()
_jobs: p.JobQueue = MinimalJobQueue()
_engine: p.GenerationEngine = MinimalGenerationEngine()
_store: p.CacheStore = MinimalCacheStore()
_persistence: p.CachePersistence = MinimalCachePersistence()
_tokenizer: p.Tokenizer = MinimalTokenizer()
_backend: p.ModelBackend = MinimalModelBackend()
