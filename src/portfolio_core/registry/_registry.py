"""The `Registry`: typed lookup of wired adapters, health and lifecycle.

What it reports is in `_reports`, one generation of its wiring and how that is started and
stopped in `_state`, what a reload keeps in `_reload`.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
import warnings
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Self, TypeVar

from portfolio_core.boundary.timeline import publish
from portfolio_core.manifest import ManifestSource, Plan, Wiring, load
from portfolio_core.ports.capabilities import capabilities_of
from portfolio_core.ports.catalogue import PORTS
from portfolio_core.ports.config_store import ConfigValues
from portfolio_core.ports.errors import NotFoundError
from portfolio_core.ports.introspection import check_class, check_instance
from portfolio_core.registry._handles import Handle
from portfolio_core.registry._reload import kept_entries, publish_reload
from portfolio_core.registry._reports import (
    CallStats,
    EntryHealth,
    EntryInfo,
    HealthReport,
    HealthSink,
    ReloadReport,
)
from portfolio_core.registry._state import (
    EMPTY,
    Item,
    State,
    redact_secrets,
    start_all,
    starting_note,
    state_from_wiring,
    stop_all,
    with_default,
)

if TYPE_CHECKING:
    from portfolio_core.boundary.stats import MethodPerformance, MethodStats
    from portfolio_core.services.memory import MemoryBudget

__all__ = [
    "CallStats",
    "EntryHealth",
    "EntryInfo",
    "HealthReport",
    "HealthSink",
    "Registry",
    "ReloadReport",
    "starting_note",
]

P = TypeVar("P")
_BY_PROTOCOL = {p.protocol: p for p in PORTS}


class Registry:
    """Wired adapters by port and name.

    Guarantees:

    * a registry built from a manifest holds either the whole wiring or nothing: every
      adapter is built and checked before any is handed out; `reload` swaps the new
      wiring in with one assignment and keeps the old one when the new one fails;
    * `get` is a dict lookup (no locking, no checks: conformance was checked at load);
    * `start` starts adapters in dependency order; `aclose` stops them in reverse
      order, every one of them even when some fail (then it raises an ``ExceptionGroup``);
    * a registry holding adapters that is garbage-collected without `aclose` emits a
      ``ResourceWarning``.
    """

    def __init__(self) -> None:
        self._state: State = EMPTY
        self._lookup: Mapping[object, object] = self._state.lookup
        self._source: ManifestSource | None = None
        self._plan: Plan | None = None
        self._handles: dict[str, Handle] | None = None
        self._reload_lock: asyncio.Lock | None = None
        self._marks: dict[str, EntryHealth] = {}
        self._started = False
        self._closed = False
        self._health_sinks: list[HealthSink] = []
        self._budget: MemoryBudget | None = None

    # -- building --------------------------------------------------------------------------

    @classmethod
    def from_manifest(
        cls,
        path: str | os.PathLike[str],
        *,
        profile: str | None = None,
        overrides: Mapping[str, object] | None = None,
        environ: Mapping[str, str] | None = None,
        config: ConfigValues | None = None,
        hot_reload: bool = False,
    ) -> Self:
        """Load, validate and build ``path``; raises ``ManifestError`` listing every problem
        (and then no adapter is left open).

        ``config`` is the run-time configuration ``${config:KEY}`` references read (e.g.
        ``await store.read()``). With ``hot_reload``, `get` returns one stable handle
        per entry that follows `reload` to the new adapter and lets calls in flight on
        a replaced adapter finish before it is closed (at the cost of a wrapper per call);
        without it, ``get`` returns the adapters themselves.
        """
        wiring = load(path, profile=profile, overrides=overrides, environ=environ, config=config)
        registry = cls()
        registry._source = ManifestSource(Path(path), profile, overrides, environ, config)
        registry._plan = wiring.plan
        if hot_reload:
            registry._handles = {}
        registry._swap(state_from_wiring(wiring, registry._handles))
        return registry

    @classmethod
    def from_wiring(cls, wiring: Wiring) -> Self:
        """A registry over already built adapters (see ``portfolio_core.manifest.load``)."""
        registry = cls()
        if wiring.plan is not None:
            registry._source = wiring.plan.source
        registry._plan = wiring.plan
        registry._swap(state_from_wiring(wiring))
        return registry

    def register(
        self,
        name: str,
        adapter: object,
        *,
        port: Callable[..., object],
        default: bool = False,
    ) -> None:
        """Add ``adapter`` by hand under ``name`` for ``port`` (a port protocol).

        The first adapter of a port, or one registered with ``default=True``, is what
        ``get(port)`` returns. Raises ``TypeError`` when the adapter does not satisfy the
        port (same check as a manifest load) and ``ValueError`` when the name is taken.
        """
        info = _BY_PROTOCOL.get(port)  # type: ignore[call-overload]
        if info is None:
            raise TypeError(f"{port!r} is not a port protocol")
        problems = check_class(type(adapter), info.protocol) + check_instance(
            adapter, info.protocol
        )
        if problems:
            raise TypeError("; ".join(problems))
        state = self._state
        if name in state.items:
            raise ValueError(f"an adapter named {name!r} is already registered")
        is_default = default or info.protocol not in state.lookup
        entry = EntryInfo(
            name,
            info,
            type(adapter).__qualname__,
            type(adapter),
            is_default,
            False,
            {},
            "registered by hand",
        )
        items = {**state.items, name: Item(entry, adapter, adapter)}
        lookup = {**state.lookup, (info.protocol, name): adapter}
        if is_default:
            lookup[info.protocol] = adapter
            for other_name, other in state.items.items():
                if other.info.port is info and other.info.default:
                    items[other_name] = Item(
                        with_default(other.info, False), other.instance, other.adapter
                    )
        self._swap(State(lookup, items, (*state.order, name), state.secrets, state.plan))

    def _swap(self, state: State) -> None:
        self._state = state
        self._lookup = state.lookup
        if self._budget is not None or (state.plan is not None and "memory" in state.plan.sections):
            self._follow_memory(state)

    def _follow_memory(self, state: State) -> None:
        """Point the memory budget at this state's Shrinkable adapters (a new budget when
        the ``memory:`` section changed; none without one)."""
        from portfolio_core.registry._memory import follow

        old = self._budget
        items = [(name, item.instance) for name, item in state.items.items()]
        self._budget = follow(old, state.plan, items)
        if self._budget is not old:
            if old is not None:
                old.stop()
            if self._budget is not None and self._started and not self._closed:
                self._budget.start()

    @property
    def memory_budget(self) -> MemoryBudget | None:
        """The memory budget the manifest's ``memory:`` section set up (checking every
        Shrinkable adapter while the registry is started), or None."""
        return self._budget

    # -- lookup ----------------------------------------------------------------------------

    def get(self, port: Callable[..., P], name: str | None = None) -> P:
        """The adapter for ``port`` (its default, or the entry ``name``).

        ``port`` is annotated ``Callable[..., P]`` rather than ``type[P]`` so that mypy
        accepts protocol classes and infers ``P`` (it rejects protocols for ``type[P]``).
        Raises [NotFoundError][portfolio_core.ports.errors.NotFoundError] naming what exists.
        """
        try:
            return self._lookup[port if name is None else (port, name)]  # type: ignore[return-value]
        except KeyError:
            raise self._not_found(port, name) from None

    def _not_found(self, port: object, name: str | None) -> NotFoundError:
        info = _BY_PROTOCOL.get(port)  # type: ignore[call-overload]
        label = getattr(info, "name", repr(port))
        names = [n for n, item in self._state.items.items() if item.info.port is info]
        if name is None and len(names) > 1:
            return NotFoundError(
                f"several {label} adapters are registered ({', '.join(names)}) and none is "
                "the default: name one, or mark one 'default: true'",
                key=label,
            )
        if name is not None:
            other = self._state.items.get(name)
            extra = f"; {name!r} is a {other.info.port.name}" if other else ""
            return NotFoundError(
                f"no {label} adapter named {name!r} (registered: {', '.join(names) or 'none'})"
                + extra,
                key=name,
            )
        return NotFoundError(f"no {label} adapter is registered", key=label)

    def names(self, port: Callable[..., object] | None = None) -> list[str]:
        """Entry names, in dependency order, optionally only those of ``port``."""
        return [
            n
            for n, item in self._state.items.items()
            if port is None or item.info.port.protocol is port
        ]

    def metadata(self, name: str) -> EntryInfo:
        """What is known about entry ``name``; raises NotFoundError."""
        return self._item(name).info

    def capabilities(self, name: str) -> frozenset[str]:
        """The capabilities entry ``name`` declares (read with ``capabilities_of``)."""
        return capabilities_of(self._item(name).instance)

    def find_by_capability(self, port: Callable[..., P], capability: str) -> dict[str, P]:
        """Adapters of ``port`` declaring ``capability``, by entry name, in order."""
        return {
            name: item.adapter  # type: ignore[misc]
            for name, item in self._state.items.items()
            if item.info.port.protocol is port and str(capability) in capabilities_of(item.instance)
        }

    def stats(self, name: str) -> CallStats | None:
        """Calls and errors of entry ``name`` from its boundary proxy, or ``None`` when the
        entry has no telemetry configured (nothing counts calls of a raw adapter)."""
        item = self._item(name)
        if item.adapter is item.instance:
            return None
        per_method = getattr(item.adapter, "boundary_stats", None)
        if not isinstance(per_method, Mapping):
            return None
        calls = sum(int(getattr(m, "calls", 0)) for m in per_method.values())
        errors = sum(
            int(getattr(m, "errors", 0)) + int(getattr(m, "rejected", 0))
            for m in per_method.values()
        )
        return CallStats(calls, errors)

    def performance(self) -> list[MethodPerformance]:
        """p50/p95/p99 latency, calls, errors and error rate per method of every adapter
        whose boundary proxy counts calls (entries with telemetry or protection)."""
        from portfolio_core.boundary import PerformanceMonitor, boundary_of

        stats: list[MethodStats] = []
        for item in self._state.items.values():
            handle = boundary_of(item.adapter)
            if handle is not None:
                stats.extend(handle.stats.values())
        return PerformanceMonitor(stats).report()

    def _item(self, name: str) -> Item:
        try:
            return self._state.items[name]
        except KeyError:
            raise NotFoundError(f"no adapter entry named {name!r}", key=name) from None

    # -- health ----------------------------------------------------------------------------

    def redact(self, text: str) -> str:
        """``text`` with every secret value of the manifest, and every fragment of one,
        masked (for messages about adapters built from it)."""
        from portfolio_core.manifest.errors import secret_fragments

        return redact_secrets(text, frozenset(secret_fragments(self._state.secrets)))

    def report_health_to(self, sink: HealthSink) -> None:
        """Record every result of `health` into ``sink`` too — e.g. the boundary's
        ``HealthAggregator``, which emits health transitions as events and metrics."""
        self._health_sinks.append(sink)

    def mark_unhealthy(self, name: str, reason: str = "marked unhealthy") -> None:
        """Report ``name`` unhealthy (without pinging) until `mark_healthy`."""
        self._item(name)
        self._marks[name] = EntryHealth(name, False, reason, None, True)

    def mark_healthy(self, name: str) -> None:
        """Clear a mark set by `mark_unhealthy`; pings decide again."""
        self._item(name)
        self._marks.pop(name, None)

    async def health(self, *, timeout: float = 2.0) -> HealthReport:
        """Ping every adapter that has ``ping`` concurrently, each bounded by ``timeout``
        seconds. Adapters without ``ping`` count as healthy as far as the ping goes.

        An entry whose boundary circuit breaker is open is unhealthy even when its ping
        succeeds, with a detail saying until when calls are refused; half-open is healthy,
        with a detail saying that calls are being probed (the rule of
        ``portfolio_core.boundary.health.with_breaker``). Reading the breaker never changes
        it. Marks override both. Every sink registered with `report_health_to`
        receives exactly the verdicts returned. Details never contain secret values.

        With a memory budget (the manifest's ``memory:`` section), the report's ``memory``
        is its last check (a first check is run if none was), which makes ``status``
        ``degraded`` while over the budget."""
        from portfolio_core.boundary.health import with_breaker
        from portfolio_core.boundary.outbox import with_outbox

        state = self._state

        async def ping_of(item: Item) -> tuple[bool, str, float | None]:
            ping = getattr(item.instance, "ping", None)
            if not callable(ping):
                return True, "no ping", None
            started = time.perf_counter()
            try:
                result = ping()
                if inspect.isawaitable(result):
                    await asyncio.wait_for(result, timeout)
            except TimeoutError:
                return False, f"ping timed out after {timeout}s", None
            except Exception as exc:
                detail = redact_secrets(f"{type(exc).__name__}: {exc}", state.secrets)
                return False, detail, time.perf_counter() - started
            return True, "ok", time.perf_counter() - started

        async def check(name: str, item: Item) -> EntryHealth:
            if name in self._marks:
                return self._marks[name]
            healthy, detail, latency = await ping_of(item)
            healthy, detail = with_breaker(item.adapter, healthy, detail)
            healthy, detail = with_outbox(item.adapter, healthy, detail)
            return EntryHealth(name, healthy, detail, latency)

        results = await asyncio.gather(*(check(n, i) for n, i in state.items.items()))
        entries = {r.name: r for r in results}
        for sink in self._health_sinks:
            for r in results:
                sink.record(r.name, r.healthy, r.detail, r.latency_s)
        budget = self._budget
        memory = None
        if budget is not None:
            memory = budget.status() or await asyncio.to_thread(budget.check)
        return HealthReport(all(r.healthy for r in results), entries, memory)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start adapters in dependency order. If one fails, those already started are
        stopped (in reverse) and the error is raised, with a note naming the adapter
        (`starting_note`)."""
        await start_all(self._state)
        self._started = True
        if self._budget is not None:
            self._budget.start()

    async def aclose(self) -> None:
        """Stop every adapter in reverse dependency order (``aclose()`` or ``close()``).

        Idempotent. Every adapter is stopped even when some fail; failures are raised
        together as an ``ExceptionGroup`` afterwards.
        """
        if self._closed:
            return
        self._closed = True
        if self._budget is not None:
            self._budget.stop()
        state = self._state
        items = [state.items[n] for n in state.order]
        await stop_all(items, state.secrets, raise_errors=True)

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    @property
    def manifest_source(self) -> ManifestSource | None:
        """What `reload` reads: the manifest, profile, overrides, environment and
        run-time configuration this registry was last built from."""
        return self._source

    @property
    def config_keys(self) -> frozenset[str]:
        """The run-time configuration keys the manifest references (``${config:KEY}``)."""
        return self._plan.composed.config_keys if self._plan is not None else frozenset()

    async def reload(
        self,
        *,
        config: ConfigValues | None = None,
        drain_timeout: float = 30.0,
    ) -> ReloadReport:
        """Re-read the manifest this registry was built from and swap the new wiring in,
        rebuilding only the entries whose resolved configuration changed.

        An entry is kept -- the same instance, connections and boundary proxy -- when its
        adapter, configuration (after interpolation), ``uses``, telemetry, protection and
        fallback are all unchanged and none of its dependencies is rebuilt. The others are
        built (and started, if this registry was started) before the swap; on any failure
        they are closed, the running wiring stays in place and the error is raised (a
        ``ManifestError`` listing every located problem of an invalid manifest). After the
        swap, replaced and removed adapters are closed -- with ``hot_reload``, each once
        the calls in flight on it finished (at most ``drain_timeout`` seconds).

        ``config`` replaces the run-time configuration ``${config:KEY}`` reads (default:
        the one last given). Reloads are serialised. Every reload, successful or not, is
        published to the process's timeline (``portfolio_core.boundary.timeline``): a success
        with what changed in the manifest, a failure with the error (secrets masked).
        """
        if self._source is None:
            raise RuntimeError("reload() needs a registry built from a manifest")
        if self._reload_lock is None:
            self._reload_lock = asyncio.Lock()
        async with self._reload_lock:
            return await self._reload(config, drain_timeout)

    async def _reload(self, config: ConfigValues | None, drain_timeout: float) -> ReloadReport:
        from dataclasses import replace

        from portfolio_core.manifest.wiring import build, plan

        if self._source is None:
            raise RuntimeError("reload() needs a registry built from a manifest")
        source = self._source if config is None else replace(self._source, config=config)
        try:
            planned = plan(
                source.path,
                profile=source.profile,
                overrides=source.overrides,
                environ=source.environ,
                config=source.config,
            )
            old = self._state
            keep, changed = kept_entries(planned, self._plan, old)
            wiring = build(planned, keep=keep)
            new = state_from_wiring(wiring, self._handles)
            if self._started:
                fresh = State(
                    new.lookup,
                    {n: i for n, i in new.items.items() if n in changed},
                    tuple(n for n in new.order if n in changed),
                    new.secrets,
                    new.plan,
                )
                try:
                    await start_all(fresh)
                except BaseException:
                    await stop_all(list(fresh.items.values()), new.secrets, raise_errors=False)
                    raise
        except Exception as exc:
            publish(
                "reload",
                f"reload of {source.path.name} failed: the previous wiring stays",
                severity="error",
                detail=self.redact(f"{type(exc).__name__}: {exc}"),
            )
            raise
        kept_instances = {id(i.instance) for n, i in new.items.items() if n in keep}
        retired_generations: dict[str, Any] = {}
        if self._handles is not None:
            for name in changed:
                handle = self._handles.get(name)
                if handle is not None and name in old.items:
                    retired_generations[name] = handle._pc_retarget(new.items[name].adapter)
            for name in old.items:
                if name not in new.items:
                    gone = self._handles.pop(name, None)
                    if gone is not None:
                        retired_generations[name] = gone._pc_gen
        self._source = source
        self._plan = planned
        self._swap(new)
        retired = [
            old.items[n] for n in old.order if id(old.items[n].instance) not in kept_instances
        ]
        undrained = []
        if self._handles is not None:
            waits = {name: gen.drained(drain_timeout) for name, gen in retired_generations.items()}
            for name, wait in waits.items():
                if not await wait:
                    undrained.append(name)
        await stop_all(retired, old.secrets, raise_errors=False)
        publish_reload(source.path.name, old.plan, new.plan)
        return ReloadReport(
            rebuilt=tuple(n for n in planned.order if n in changed and n in old.items),
            kept=tuple(n for n in planned.order if n in keep),
            added=tuple(n for n in planned.order if n not in old.items),
            removed=tuple(n for n in old.order if n not in planned.entries),
            undrained=tuple(undrained),
        )

    def __del__(self) -> None:
        try:
            if self._closed or not self._state.items:
                return
            if any(
                hasattr(i.instance, a)
                for i in self._state.items.values()
                for a in ("aclose", "close", "start")
            ):
                warnings.warn(
                    f"unclosed Registry with {len(self._state.items)} adapters: "
                    "call 'await registry.aclose()' or use 'async with registry'",
                    ResourceWarning,
                    stacklevel=2,
                    source=self,
                )
        except AttributeError:  # partially initialised
            return

    def __repr__(self) -> str:
        names = ", ".join(self._state.items)
        return f"<Registry [{names}]>"
