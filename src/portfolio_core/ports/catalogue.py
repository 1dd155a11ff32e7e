"""The list of ports: name, protocol, whether it is async, and a one-line summary.

The registry, the manifest loader, the CLI and the conformance kit all read this list, so a
port is added in exactly one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from portfolio_core.ports.agent import Agent
from portfolio_core.ports.cache import Cache
from portfolio_core.ports.cache_persistence import CachePersistence
from portfolio_core.ports.cache_store import CacheStore
from portfolio_core.ports.config_store import ConfigStore
from portfolio_core.ports.event_store import EventStore
from portfolio_core.ports.generation_engine import GenerationEngine
from portfolio_core.ports.job_queue import JobQueue
from portfolio_core.ports.llm import LLM
from portfolio_core.ports.model_backend import ModelBackend
from portfolio_core.ports.pipeline import Pipeline, PipelineStep
from portfolio_core.ports.projection_store import ProjectionStore
from portfolio_core.ports.router import Router
from portfolio_core.ports.snapshot_store import SnapshotStore
from portfolio_core.ports.stream import Stream
from portfolio_core.ports.tenant import Tenant
from portfolio_core.ports.tokenizer import Tokenizer

__all__ = ["PORTS", "PortInfo", "port_by_key", "port_of"]


@dataclass(frozen=True, slots=True)
class PortInfo:
    """What the rest of the library needs to know about one port.

    ``key`` is the snake_case name used in manifests (``event_store``) and in the adapter
    entry-point group ``portfolio_core.adapters.<key>``.
    """

    key: str
    protocol: type
    summary: str
    is_async: bool

    @property
    def name(self) -> str:
        return self.protocol.__name__

    @property
    def entry_point_group(self) -> str:
        return f"portfolio_core.adapters.{self.key}"


PORTS: tuple[PortInfo, ...] = (
    PortInfo(
        "router",
        Router,
        "Choose an LLM provider per request; fallbacks, cooldowns, strategies.",
        True,
    ),
    PortInfo("llm", LLM, "Complete or stream a conversation, reporting token usage.", True),
    PortInfo("cache", Cache, "Key-value cache with per-item TTL and bulk get/put.", True),
    PortInfo(
        "pipeline", Pipeline, "Run validated steps over a shared context, caching pure ones.", True
    ),
    PortInfo(
        "pipeline_step", PipelineStep, "One pipeline step: inputs, output schema, execute.", True
    ),
    PortInfo(
        "agent", Agent, "Run a task with a model that calls typed tools, bounded in turns.", True
    ),
    PortInfo("tenant", Tenant, "Current tenant in a context variable; per-tenant quotas.", True),
    PortInfo(
        "stream", Stream, "Async message streams with backpressure, acks and error policy.", True
    ),
    PortInfo(
        "event_store",
        EventStore,
        "Append-only event streams: expected versions, global log, subscriptions.",
        True,
    ),
    PortInfo(
        "snapshot_store",
        SnapshotStore,
        "Latest aggregate state per event stream; the higher version always wins.",
        True,
    ),
    PortInfo(
        "projection_store",
        ProjectionStore,
        "Projection checkpoints and leases; effects committed with the checkpoint.",
        True,
    ),
    PortInfo(
        "config_store",
        ConfigStore,
        "Versioned run-time configuration: atomic batches, history, rollback, watches.",
        True,
    ),
    PortInfo(
        "job_queue",
        JobQueue,
        "Background jobs: leases, retries with backoff, dead letters, unique keys.",
        True,
    ),
    PortInfo(
        "generation_engine",
        GenerationEngine,
        "Continuous batching of generations over a KV block pool.",
        False,
    ),
    PortInfo(
        "cache_store", CacheStore, "Per-agent KV caches with prefix matching and tiers.", False
    ),
    PortInfo(
        "cache_persistence",
        CachePersistence,
        "KV caches saved atomically to disk, checked against the model.",
        False,
    ),
    PortInfo(
        "tokenizer",
        Tokenizer,
        "Text to token ids and back; special tokens never forged by input.",
        False,
    ),
    PortInfo(
        "model_backend",
        ModelBackend,
        "A decoder-only model that generates tokens with a KV cache.",
        False,
    ),
)

_BY_KEY = {p.key: p for p in PORTS}
_BY_PROTOCOL = {p.protocol: p for p in PORTS}


def port_by_key(key: str) -> PortInfo:
    """The port registered under ``key``; raises KeyError for an unknown key."""
    return _BY_KEY[key]


def port_of(protocol: type) -> PortInfo:
    """The port whose protocol is ``protocol``; raises KeyError otherwise."""
    return _BY_PROTOCOL[protocol]
