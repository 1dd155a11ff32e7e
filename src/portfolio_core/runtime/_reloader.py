"""The `Reloader`: what triggers `Registry.reload` while an application runs."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import structlog

from portfolio_core._tasks import cancel_and_wait
from portfolio_core.manifest.errors import ManifestError
from portfolio_core.ports.config_store import ConfigSnapshot, ConfigStore
from portfolio_core.registry import Registry, ReloadReport

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["ReloadOutcome", "Reloader"]

_log = structlog.get_logger("portfolio_core.runtime")


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """One reload attempt: what triggered it (``file``, ``sighup``, ``admin``, ``config``),
    whether the new wiring is in place (``ok``), what changed (``report``), and for a
    rejected manifest every located problem (``problems``: ``file:line:column: message``;
    the running wiring was kept). ``config_version`` is the configuration version used."""

    trigger: str
    ok: bool
    report: ReloadReport | None
    problems: tuple[str, ...]
    config_version: int | None
    at: float


class Reloader:
    """Reloads a registry built from a manifest when something it depends on changes.

    * ``watch_files``: the manifest and every file it extends are watched (``watchfiles``;
      editors that replace files are handled: the folders are watched);
    * ``sighup``: SIGHUP reloads (where the event loop supports signal handlers);
    * `reload` is the admin hook (``portfolio-core serve`` or any endpoint can call it);
    * ``config_store``: a change to a key the manifest references (``${config:KEY}``) reloads
      with the new configuration; other keys are ignored.

    Each reload rebuilds only the entries whose resolved configuration changed (see
    `Registry.reload`). A manifest that fails validation leaves the running wiring in
    place; the outcome lists every located problem and is logged. Reloads never overlap.
    ``on_reload`` is called with each `ReloadOutcome`; the last ones are kept in
    `outcomes`.
    """

    def __init__(
        self,
        registry: Registry,
        *,
        config_store: ConfigStore | None = None,
        watch_files: bool = True,
        sighup: bool = True,
        debounce: float = 0.1,
        drain_timeout: float = 30.0,
        on_reload: Callable[[ReloadOutcome], Any] | None = None,
    ) -> None:
        if registry.manifest_source is None:
            raise ValueError("a Reloader needs a registry built from a manifest")
        self.registry = registry
        self.config_store = config_store
        self.watch_files = watch_files
        self.sighup = sighup
        self.debounce = debounce
        self.drain_timeout = drain_timeout
        self.on_reload = on_reload
        self.outcomes: deque[ReloadOutcome] = deque(maxlen=50)
        self._tasks: list[asyncio.Task[None]] = []
        self._stop = asyncio.Event()
        self._signal_loop: asyncio.AbstractEventLoop | None = None
        self._lock = asyncio.Lock()

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        """Start watching (files, SIGHUP, configuration) as configured; idempotent."""
        if self._tasks or self._signal_loop is not None:
            return
        loop = asyncio.get_running_loop()
        if self.watch_files:
            self._tasks.append(loop.create_task(self._watch_files()))
        if self.config_store is not None:
            source = self.registry.manifest_source
            config = source.config if source is not None else None
            start = config.version if isinstance(config, ConfigSnapshot) else None
            self._tasks.append(loop.create_task(self._watch_config(self.config_store, start)))
        if self.sighup and hasattr(signal, "SIGHUP"):
            try:
                loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
                self._signal_loop = loop
            except (NotImplementedError, RuntimeError, ValueError):
                _log.warning("sighup_unavailable", detail="no signal handler in this loop")

    async def aclose(self) -> None:
        """Stop watching; idempotent. A reload in progress finishes first."""
        self._stop.set()
        if self._signal_loop is not None:
            with contextlib.suppress(Exception):
                self._signal_loop.remove_signal_handler(signal.SIGHUP)
            self._signal_loop = None
        tasks, self._tasks = self._tasks, []
        await cancel_and_wait(*tasks, drop_errors=True)
        async with self._lock:
            pass

    # -- triggers ---------------------------------------------------------------------------

    async def reload(self, *, trigger: str = "admin") -> ReloadOutcome:
        """Reload now (the admin hook); returns what happened, never raises a manifest's
        problems (they are in the outcome)."""
        return await self._reload(trigger, None)

    def _on_sighup(self) -> None:
        self._tasks.append(asyncio.get_running_loop().create_task(self._sighup()))

    async def _sighup(self) -> None:
        await self._reload("sighup", None)

    def _watched(self) -> tuple[set[Path], set[Path]]:
        source = self.registry.manifest_source
        if source is None:  # checked in __init__; a registry keeps its source
            return set(), set()
        files = {source.path.resolve()}
        plan = getattr(self.registry, "_plan", None)
        composed = getattr(plan, "composed", None)
        for name in getattr(composed, "files", ()) or ():
            with contextlib.suppress(OSError):
                files.add(Path(name).resolve())
        return files, {f.parent for f in files}

    async def _watch_files(self) -> None:
        import watchfiles

        while not self._stop.is_set():
            files, folders = self._watched()
            async for changes in watchfiles.awatch(
                *folders,
                stop_event=self._stop,
                debounce=int(self.debounce * 1000),
                step=20,
                recursive=False,
            ):
                touched = {Path(p).resolve() for _, p in changes}  # noqa: ASYNC240 - a few paths
                if touched & files:
                    await self._reload("file", None)
                    if self._watched() != (files, folders):
                        break  # the manifest extends other files now: watch those

    async def _watch_config(self, store: ConfigStore, start: int | None) -> None:
        backoff = 0.1
        while not self._stop.is_set():
            try:
                async for change_set in store.watch(from_version=start):
                    start = change_set.version
                    if set(change_set.keys()) & self.registry.config_keys:
                        await self._reload("config", await store.read())
                    backoff = 0.1
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store failed: keep the wiring, try again later
                _log.warning("config_watch_failed", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)

    # -- reloading --------------------------------------------------------------------------

    async def _reload(self, trigger: str, config: ConfigSnapshot | None) -> ReloadOutcome:
        async with self._lock:
            version = config.version if config is not None else _version_of(self.registry)
            try:
                report = await self.registry.reload(config=config, drain_timeout=self.drain_timeout)
            except ManifestError as exc:
                outcome = ReloadOutcome(
                    trigger, False, None, _located(exc.problems), version, time.time()
                )
                _log.error("reload_rejected", trigger=trigger, problems=list(outcome.problems))
            except Exception as exc:
                outcome = ReloadOutcome(
                    trigger,
                    False,
                    None,
                    (self.registry.redact(f"{type(exc).__name__}: {exc}"),),
                    version,
                    time.time(),
                )
                _log.error("reload_failed", trigger=trigger, problems=list(outcome.problems))
            else:
                outcome = ReloadOutcome(trigger, True, report, (), version, time.time())
                _log.info(
                    "reloaded",
                    trigger=trigger,
                    rebuilt=list(report.rebuilt),
                    added=list(report.added),
                    removed=list(report.removed),
                    kept=len(report.kept),
                )
            self.outcomes.append(outcome)
        if self.on_reload is not None:
            result = self.on_reload(outcome)
            if asyncio.iscoroutine(result):
                await result
        return outcome


def _version_of(registry: Registry) -> int | None:
    source = registry.manifest_source
    config = source.config if source is not None else None
    return config.version if isinstance(config, ConfigSnapshot) else None


def _located(problems: Iterable[Any]) -> tuple[str, ...]:
    return tuple(str(p) for p in problems)
