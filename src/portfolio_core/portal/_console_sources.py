"""The console's built-in panels and timeline entries, generated from the registry's ports.

No adapter has code for the console: what is shown is read through the ports themselves,
for every entry of the port, whatever its adapter (ours, a third party's, a remote one):

* every **ConfigStore** entry: a panel of its latest versions (who, when, why, which keys;
  never the values, which may be secrets) and a timeline entry per new version
  (``config.version``), plus one per version that changed feature flags (``flags.change``,
  the keys under ``flags.``, the prefix `Flags` uses by
  default);
* every **JobQueue** entry: a panel of each queue's counts per state (the queues are listed
  when the adapter declares ``job_queue.inspect``) and a timeline entry when a queue's dead
  letters grow (``jobs.dead_letter``, with the newest dead jobs' tasks and last errors);
* every entry with an **outbox** (``protection.outbox``): a panel of its backlog and a
  timeline entry when calls start being recorded, when the backlog drains and when calls
  are dead-lettered (``outbox.backlog``, ``outbox.drained``, ``outbox.dead``).

Sources run inside the console's sampler, so only while a page is open. What they saw last
is kept for the console's lifetime: a page opened later still gets a timeline entry for each
config version and dead letter that came meanwhile (exactly, for config versions, read from
the store's history).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from portfolio_core.boundary import unwrap
from portfolio_core.boundary.outbox import outbox_of
from portfolio_core.boundary.panels import Panel
from portfolio_core.boundary.timeline import Timeline
from portfolio_core.ports.config_store import ChangeSet, ConfigStore
from portfolio_core.ports.job_queue import (
    InspectableJobQueue,
    JobQueue,
    JobQueueCapability,
    JobState,
)
from portfolio_core.registry import Registry, handle_target

__all__ = ["FLAG_PREFIX", "RegistrySources"]

FLAG_PREFIX = "flags."
"""Keys under this prefix are feature flags (the default prefix of ``Flags``)."""
_VERSIONS_SHOWN = 8
_HISTORY_BATCH = 50
_QUEUES_SHOWN = 50
_ERROR_CHARS = 300

Source = Callable[[object], Awaitable[Panel]]


def _cut(text: str, limit: int = _ERROR_CHARS) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


@dataclass
class _ConfigSeen:
    version: int | None = None
    recent: list[ChangeSet] = field(default_factory=list)


@dataclass
class _OutboxSeen:
    pending: int = 0
    dead: int = 0


class RegistrySources:
    """Panel sources for the ConfigStore, JobQueue and outbox entries of a registry; they
    publish what changed to ``timeline``."""

    def __init__(self, timeline: Timeline, redact: Callable[[str], str]) -> None:
        self.timeline = timeline
        self.redact = redact
        self._config: dict[str, _ConfigSeen] = {}
        self._dead: dict[tuple[str, str], int] = {}
        self._sampled_queues: set[str] = set()
        self._outbox: dict[str, _OutboxSeen] = {}

    def sources(self, registry: Registry) -> dict[str, Source]:
        """One source per entry that has something to show, by panel name."""
        out: dict[str, Source] = {}
        for name in registry.names(ConfigStore):
            out[f"config:{name}"] = self._config_source(registry, name)
        for name in registry.names(JobQueue):
            out[f"jobs:{name}"] = self._jobs_source(registry, name)
        for name in registry.names():
            info = registry.metadata(name)
            adapter = handle_target(registry.get(info.port.protocol, name))
            if outbox_of(adapter) is not None:
                out[f"outbox:{name}"] = self._outbox_source(adapter, name)
        return out

    # -- config stores --------------------------------------------------------------------

    def _config_source(self, registry: Registry, name: str) -> Source:
        async def source(_registry: object) -> Panel:
            store = cast(ConfigStore, unwrap(handle_target(registry.get(ConfigStore, name))))
            return await self._config_panel(name, store)

        return source

    async def _config_panel(self, name: str, store: ConfigStore) -> Panel:
        seen = self._config.setdefault(name, _ConfigSeen())
        version = await store.current_version()
        if seen.version is None or version < seen.version:
            start = max(1, version - _VERSIONS_SHOWN + 1)
            seen.recent = (
                await store.history(from_version=start, limit=_VERSIONS_SHOWN) if version else []
            )
        elif version > seen.version:
            fresh: list[ChangeSet] = []
            after = seen.version
            while after < version:
                batch = await store.history(from_version=after + 1, limit=_HISTORY_BATCH)
                if not batch:
                    break
                fresh.extend(batch)
                after = batch[-1].version
            for change in fresh:
                self._publish_version(name, change)
            seen.recent = (seen.recent + fresh)[-_VERSIONS_SHOWN:]
        seen.version = version
        rows = [
            (
                c.version,
                _when(c.at),
                c.author or "—",
                self.redact(c.reason) or "—",
                ", ".join(c.keys()[:20]) + (" …" if len(c.changes) > 20 else ""),
            )
            for c in reversed(seen.recent)
        ]
        return Panel(
            title=f"Config: {name}",
            columns=("version", "when", "by", "why", "keys"),
            rows=rows,
            note=f"version {version}" if version else "no version yet",
            entry=name,
        )

    def _publish_version(self, name: str, change: ChangeSet) -> None:
        keys = change.keys()
        what = (
            f"rollback to version {change.rollback_of}"
            if change.rollback_of is not None
            else ", ".join(keys[:10]) + (" …" if len(keys) > 10 else "")
        )
        data = {
            "version": change.version,
            "keys": keys[:100],
            "author": change.author,
            "reason": self.redact(change.reason),
            "at": change.at.isoformat(),
            "rollback_of": change.rollback_of,
        }
        self.timeline.publish(
            "config.version",
            f"{name}: version {change.version} by {change.author or 'unknown'}: {what}",
            entry=name,
            severity="warning" if change.rollback_of is not None else "info",
            detail=self.redact(change.reason),
            data=data,
        )
        flags = [k[len(FLAG_PREFIX) :] for k in keys if k.startswith(FLAG_PREFIX)]
        if flags:
            deleted = {
                c.key[len(FLAG_PREFIX) :]
                for c in change.changes
                if c.deleted and c.key.startswith(FLAG_PREFIX)
            }
            self.timeline.publish(
                "flags.change",
                f"{name}: flag{'s' if len(flags) > 1 else ''} {', '.join(flags[:10])} changed "
                f"in version {change.version}",
                entry=name,
                detail=self.redact(change.reason),
                data={
                    "version": change.version,
                    "flags": flags[:100],
                    "removed": sorted(deleted)[:100],
                    "author": change.author,
                },
            )

    # -- job queues ---------------------------------------------------------------------------

    def _jobs_source(self, registry: Registry, name: str) -> Source:
        async def source(_registry: object) -> Panel:
            queue = cast(JobQueue, unwrap(handle_target(registry.get(JobQueue, name))))
            listing = JobQueueCapability.INSPECT.value in registry.capabilities(name)
            return await self._jobs_panel(name, queue, listing)

        return source

    async def _jobs_panel(self, name: str, queue: JobQueue, listing: bool) -> Panel:
        columns = ("queue", "scheduled", "available", "running", "completed", "dead", "cancelled")
        if not listing:
            return Panel(
                title=f"Jobs: {name}",
                columns=columns,
                note="this adapter does not list its queues (capability job_queue.inspect)",
                entry=name,
            )
        inspectable: InspectableJobQueue = queue  # type: ignore[assignment]
        names = await inspectable.queues()
        # a queue that appears after the entry's first sample starts from no dead letters;
        # at the first sample, what is there already is the baseline (not news)
        known = name in self._sampled_queues
        self._sampled_queues.add(name)
        rows: list[tuple[Any, ...]] = []
        dead_total = 0
        for queue_name in names[:_QUEUES_SHOWN]:
            counts = await queue.counts(queue_name)
            rows.append(
                (
                    queue_name,
                    counts.scheduled,
                    counts.available,
                    counts.running,
                    counts.completed,
                    counts.dead,
                    counts.cancelled,
                )
            )
            dead_total += counts.dead
            await self._dead_letters(name, queue, queue_name, counts.dead, known)
        note = f"{len(names)} queue{'' if len(names) == 1 else 's'}"
        if len(names) > _QUEUES_SHOWN:
            note += f", the first {_QUEUES_SHOWN} shown"
        return Panel(
            title=f"Jobs: {name}",
            columns=columns,
            rows=rows,
            status="warning" if dead_total else "ok",
            note=note if names else "no jobs",
            entry=name,
        )

    async def _dead_letters(
        self, name: str, queue: JobQueue, queue_name: str, dead: int, known: bool
    ) -> None:
        key = (name, queue_name)
        before = self._dead.get(key, 0 if known else None)
        self._dead[key] = dead
        if before is None or dead <= before:
            return
        new = dead - before
        # dead jobs are listed in enqueue order: the newest are the last (bounded read)
        listed = await queue.list_jobs(queue_name, JobState.DEAD, limit=min(dead, 500))
        latest = listed[-min(new, 5) :]
        jobs = [
            {
                "id": j.id,
                "task": j.task,
                "attempts": j.attempts,
                "last_error": self.redact(_cut(j.last_error or "")),
            }
            for j in latest
        ]
        last = jobs[-1] if jobs else None
        self.timeline.publish(
            "jobs.dead_letter",
            f"{name}/{queue_name}: {new} job{'s' if new > 1 else ''} dead-lettered ({dead} dead)",
            entry=name,
            severity="error",
            detail=f"{last['task']}: {last['last_error']}" if last else "",
            data={"queue": queue_name, "dead": dead, "new": new, "jobs": jobs},
        )

    # -- outboxes ----------------------------------------------------------------------------

    def _outbox_source(self, adapter: object, name: str) -> Source:
        async def source(_registry: object) -> Panel:
            return self._outbox_panel(adapter, name)

        return source

    def _outbox_panel(self, adapter: object, name: str) -> Panel:
        outbox = outbox_of(adapter)
        if outbox is None:  # replaced by a reload since the sources were listed
            return Panel(title=f"Outbox: {name}", note="no outbox", entry=name)
        status = outbox.status()
        seen = self._outbox.setdefault(name, _OutboxSeen())
        if status.pending and not seen.pending:
            self.timeline.publish(
                "outbox.backlog",
                f"{name}: writes are being recorded in the outbox ({status.pending} pending)",
                entry=name,
                severity="warning",
                data={"pending": status.pending, "limit": status.limit},
            )
        elif seen.pending and not status.pending:
            self.timeline.publish(
                "outbox.drained",
                f"{name}: the outbox drained: every recorded call was replayed",
                entry=name,
                data={"pending": 0},
            )
        if status.dead > seen.dead:
            new = status.dead - seen.dead
            self.timeline.publish(
                "outbox.dead",
                f"{name}: {new} recorded call{'s' if new > 1 else ''} refused for good "
                f"({status.dead} dead)",
                entry=name,
                severity="error",
                data={"dead": status.dead, "new": new},
            )
        seen.pending, seen.dead = status.pending, status.dead
        age = "—" if status.oldest_age is None else f"{status.oldest_age:.1f} s"
        return Panel(
            title=f"Outbox: {name}",
            columns=("pending", "dead", "oldest pending", "limit"),
            rows=[(status.pending, status.dead, age, status.limit)],
            status="error" if status.full or status.dead else "warning" if status.pending else "ok",
            note="full: new failures are refused" if status.full else "",
            entry=name,
        )
