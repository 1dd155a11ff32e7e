"""Model management: which GenerationEngine serves generations; hot swaps drain first."""

from __future__ import annotations

import inspect
import itertools
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from portfolio_core.ports.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    PortTimeoutError,
    UnavailableError,
    UnsupportedError,
)
from portfolio_core.ports.generation_engine import CompletedGeneration, GenerationEngine
from portfolio_core.ports.model_backend import AgentBlocks
from portfolio_core.ports.shrinkable import ReleaseOrder, Shrinkable

__all__ = ["ModelInfo", "ModelService"]

EngineFactory = Callable[[], GenerationEngine]


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """A registered model: its name, the spec hash of its caches (when known), whether loaded."""

    name: str
    spec_hash: str | None
    loaded: bool


@dataclass(slots=True)
class _Loaded:
    name: str
    engine: GenerationEngine
    epoch: int


class ModelService:
    """Loads one model at a time and runs requests on it.

    Models are registered by name with a factory building their engine (``register``).
    ``load(name)`` builds the new engine first, then **drains** the current one -- steps it
    until every in-flight request has finished, keeping their results for their callers --
    closes it and switches; no request is lost or sent to a half-swapped model. ``unload``
    drains and closes. Requests (``submit``/``wait``) are serialised on one lock, which is
    also how concurrent callers share the engine's batch: whoever holds the lock steps the
    engine for everyone. ``max_drain_steps`` bounds every drain and wait (PortTimeoutError).

    It is [Shrinkable][portfolio_core.ports.Shrinkable] on behalf of the loaded engine (at
    the engine's place, ``ReleaseOrder.PREFIX_CACHE``): register the service with a memory
    budget and whichever model is loaded gives back its prefix cache under pressure.
    `resident_bytes` and `release` pass through to the loaded engine when that engine is
    Shrinkable and report 0 otherwise (no model loaded, or an engine that cannot shrink).
    """

    release_order: ClassVar[int] = ReleaseOrder.PREFIX_CACHE

    def __init__(self, *, max_drain_steps: int = 1_000_000) -> None:
        self._factories: dict[str, tuple[EngineFactory, str | None]] = {}
        self._current: _Loaded | None = None
        self._done: dict[str, CompletedGeneration] = {}
        self._pending: set[str] = set()
        self._epochs = itertools.count(1)
        self._lock = threading.RLock()
        self._max_steps = max_drain_steps

    def register(self, name: str, factory: EngineFactory, *, spec_hash: str | None = None) -> None:
        """Make a model loadable by name; ConflictError if the name is taken."""
        if not name:
            raise InvalidInputError("a model needs a name", field="name")
        with self._lock:
            if name in self._factories:
                raise ConflictError(f"model {name!r} is already registered")
            self._factories[name] = (factory, spec_hash)

    def list(self) -> list[ModelInfo]:
        with self._lock:
            current = self._current.name if self._current else None
            return [
                ModelInfo(name, spec, name == current)
                for name, (_, spec) in sorted(self._factories.items())
            ]

    def current(self) -> str | None:
        """The loaded model's name, or None."""
        with self._lock:
            return self._current.name if self._current else None

    def current_spec_hash(self) -> str | None:
        with self._lock:
            if self._current is None:
                return None
            return self._factories[self._current.name][1]

    def load(self, name: str) -> None:
        """Switch to ``name`` (a no-op if it is loaded), draining the current model first."""
        with self._lock:
            if name not in self._factories:
                raise NotFoundError(f"no model {name!r}", key=name)
            if self._current is not None and self._current.name == name:
                return
            factory = self._factories[name][0]
        engine = factory()  # may be slow: built before taking the engines out of service
        with self._lock:
            self._retire()
            self._current = _Loaded(name, engine, next(self._epochs))

    def unload(self) -> bool:
        """Drain and close the current model; whether one was loaded."""
        with self._lock:
            if self._current is None:
                return False
            self._retire()
            return True

    # -- memory ---------------------------------------------------------------------------

    def resident_bytes(self) -> int:
        """What the loaded engine could give back (0 with none loaded or one that cannot)."""
        engine = self._shrinkable_engine()
        return engine.resident_bytes() if engine is not None else 0

    def release(self, nbytes: int) -> int:
        """Ask the loaded engine to give back ``nbytes``; the bytes it freed (0 with none
        loaded or one that cannot). Safe from any thread: it does not wait for a step."""
        engine = self._shrinkable_engine()
        return engine.release(nbytes) if engine is not None else 0

    def _shrinkable_engine(self) -> Shrinkable | None:
        # read without the service's lock, which a step holds for a whole batched forward:
        # a memory budget's thread must not wait on it. A Shrinkable engine is safe to ask
        # from any thread, and one retired meanwhile (closed) frees nothing.
        loaded = self._current
        if loaded is None or not isinstance(loaded.engine, Shrinkable):
            return None
        return loaded.engine

    # -- requests -------------------------------------------------------------------------

    def submit(
        self,
        agent_id: str,
        prompt: Sequence[int],
        cache: AgentBlocks | None,
        max_tokens: int,
        temperature: float,
    ) -> str:
        """Queue a request on the current model; returns a ticket for `wait`."""
        with self._lock:
            loaded = self._require()
            submit = loaded.engine.submit
            if temperature != 0.0:
                if "temperature" not in inspect.signature(submit).parameters:
                    raise UnsupportedError(
                        f"the engine of model {loaded.name!r} decodes greedily only",
                        capability="temperature",
                    )
                uid = submit(  # type: ignore[call-arg]  # checked just above
                    agent_id, list(prompt), cache, max_tokens, temperature=temperature
                )
            else:
                uid = submit(agent_id, list(prompt), cache, max_tokens)
            ticket = f"{loaded.epoch}:{uid}"
            self._pending.add(ticket)
            return ticket

    def wait(self, ticket: str) -> CompletedGeneration:
        """Step the engine until the ticket's request finishes; its result."""
        for _ in range(self._max_steps):
            with self._lock:
                if ticket in self._done:
                    return self._done.pop(ticket)
                if ticket not in self._pending:
                    raise NotFoundError(f"no pending request {ticket!r}", key=ticket)
                self._step()
        raise PortTimeoutError(f"request {ticket} did not finish in {self._max_steps} steps")

    def abort(self, ticket: str) -> bool:
        with self._lock:
            loaded = self._current
            epoch, _, uid = ticket.partition(":")
            if loaded is None or str(loaded.epoch) != epoch or ticket not in self._pending:
                return False
            return loaded.engine.abort(uid)

    def _require(self) -> _Loaded:
        if self._current is None:
            raise UnavailableError("no model is loaded")
        return self._current

    def _step(self) -> None:
        loaded = self._require()
        for done in loaded.engine.step():
            ticket = f"{loaded.epoch}:{done.uid}"
            self._pending.discard(ticket)
            self._done[ticket] = done

    def _retire(self) -> None:
        """Drain the current engine (every in-flight request finishes), close it, forget it."""
        loaded = self._current
        if loaded is None:
            return
        for _ in range(self._max_steps):
            if not loaded.engine.has_unfinished():
                break
            self._step()
        else:
            raise PortTimeoutError(f"model {loaded.name!r} did not drain")
        close = getattr(loaded.engine, "close", None)
        if callable(close):
            close()
        self._current = None
