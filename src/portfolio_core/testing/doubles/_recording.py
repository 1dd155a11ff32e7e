"""The recording doubles: every port member is generated from the port's protocol (see
`_Recording`); only the stand-alone target is
chosen here."""

from __future__ import annotations

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
from portfolio_core.testing.doubles._core import _Recording
from portfolio_core.testing.doubles._scripted_events import (
    ScriptedConfigStore,
    ScriptedEventStore,
    ScriptedJobQueue,
    ScriptedProjectionStore,
    ScriptedSnapshotStore,
    ScriptedStream,
)
from portfolio_core.testing.doubles._scripted_inference import (
    ScriptedCachePersistence,
    ScriptedCacheStore,
    ScriptedGenerationEngine,
    ScriptedModelBackend,
    ScriptedTokenizer,
)
from portfolio_core.testing.doubles._scripted_llm import (
    ScriptedAgent,
    ScriptedCache,
    ScriptedLLM,
    ScriptedPipeline,
    ScriptedPipelineStep,
    ScriptedRouter,
    ScriptedTenant,
)

__all__ = [
    "RecordingAgent",
    "RecordingCache",
    "RecordingCachePersistence",
    "RecordingCacheStore",
    "RecordingConfigStore",
    "RecordingProjectionStore",
    "RecordingSnapshotStore",
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
]


def _answering_ok() -> ScriptedLLM:
    return ScriptedLLM(default="ok")


class RecordingLLM(_Recording[LLM], port=LLM, stand_alone=_answering_ok):
    """Records calls to an LLM (stand-alone: a ``ScriptedLLM`` answering ``"ok"``)."""


class RecordingRouter(_Recording[Router], port=Router, stand_alone=ScriptedRouter):
    """Records calls to a router (stand-alone: a ``ScriptedRouter``)."""


class RecordingCache(_Recording[Cache], port=Cache, stand_alone=ScriptedCache):
    """Records calls to a cache (stand-alone: a ``ScriptedCache``)."""


class RecordingPipelineStep(
    _Recording[PipelineStep], port=PipelineStep, stand_alone=ScriptedPipelineStep
):
    """Records ``validate_input`` and ``execute`` calls of a step (describing it unchanged)."""


class RecordingPipeline(_Recording[Pipeline], port=Pipeline, stand_alone=ScriptedPipeline):
    """Records ``run`` calls of a pipeline."""


class RecordingAgent(_Recording[Agent], port=Agent, stand_alone=ScriptedAgent):
    """Records calls to an agent."""


class RecordingTenant(_Recording[Tenant], port=Tenant, stand_alone=ScriptedTenant):
    """Records calls to a tenant port."""


class RecordingStream(_Recording[Stream], port=Stream, stand_alone=ScriptedStream):
    """Records calls to a stream adapter."""


class RecordingEventStore(_Recording[EventStore], port=EventStore, stand_alone=ScriptedEventStore):
    """Records calls to an event store."""


class RecordingConfigStore(
    _Recording[ConfigStore], port=ConfigStore, stand_alone=ScriptedConfigStore
):
    """Records calls to a config store."""


class RecordingSnapshotStore(
    _Recording[SnapshotStore], port=SnapshotStore, stand_alone=ScriptedSnapshotStore
):
    """Records calls to a snapshot store."""


class RecordingProjectionStore(
    _Recording[ProjectionStore], port=ProjectionStore, stand_alone=ScriptedProjectionStore
):
    """Records calls to a projection store."""


class RecordingJobQueue(_Recording[JobQueue], port=JobQueue, stand_alone=ScriptedJobQueue):
    """Records calls to a job queue."""


class RecordingTokenizer(_Recording[Tokenizer], port=Tokenizer, stand_alone=ScriptedTokenizer):
    """Records ``encode``/``decode`` calls of a tokenizer."""


class RecordingModelBackend(
    _Recording[ModelBackend], port=ModelBackend, stand_alone=ScriptedModelBackend
):
    """Records calls to a model backend."""


class RecordingGenerationEngine(
    _Recording[GenerationEngine], port=GenerationEngine, stand_alone=ScriptedGenerationEngine
):
    """Records calls to a generation engine."""


class RecordingCacheStore(_Recording[CacheStore], port=CacheStore, stand_alone=ScriptedCacheStore):
    """Records calls to a KV cache store."""


class RecordingCachePersistence(
    _Recording[CachePersistence], port=CachePersistence, stand_alone=ScriptedCachePersistence
):
    """Records calls to cache persistence."""
