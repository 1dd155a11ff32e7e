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

Every call is recorded as ``Call(method, args, kwargs)``: ``args`` as the caller passed them
positionally, ``kwargs`` every other parameter of the port's signature by name (with its
default when omitted). A call that does not fit the port's signature raises ``TypeError``.

The doubles are generated from the ports' protocols: a recording double has every member of
its port, and a scripted double answers every port method it does not implement by hand from
its script. (Type checkers see generated members as ``Any``.)

``ScriptedLLM(["first answer", "second", UnavailableError("down")])`` is the richest: texts
become completions with word-count usage, and it streams word by word.

Example::

    cache = RecordingCache(MemoryCache())
    await greet(cache, "Ada")
    assert cache.calls_to("put") == [Call("put", ("greeting:Ada", "Hello, Ada!"), {"ttl": 60})]

    llm = ScriptedLLM(["Paris"])
    assert (await llm.complete([Message("user", "Capital of France?")])).text == "Paris"
"""

from portfolio_core.testing.doubles._core import Call, computed
from portfolio_core.testing.doubles._recording import (
    RecordingAgent,
    RecordingCache,
    RecordingCachePersistence,
    RecordingCacheStore,
    RecordingConfigStore,
    RecordingEventStore,
    RecordingGenerationEngine,
    RecordingJobQueue,
    RecordingLLM,
    RecordingModelBackend,
    RecordingPipeline,
    RecordingPipelineStep,
    RecordingProjectionStore,
    RecordingRouter,
    RecordingSnapshotStore,
    RecordingStream,
    RecordingTenant,
    RecordingTokenizer,
)
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
    "Call",
    "RecordingAgent",
    "RecordingCache",
    "RecordingCachePersistence",
    "RecordingCacheStore",
    "RecordingConfigStore",
    "RecordingEventStore",
    "RecordingJobQueue",
    "RecordingProjectionStore",
    "RecordingSnapshotStore",
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
    "ScriptedConfigStore",
    "ScriptedEventStore",
    "ScriptedJobQueue",
    "ScriptedProjectionStore",
    "ScriptedSnapshotStore",
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
