"""A memory budget for the process: measure, and shrink caches in order under pressure.

The manifest's top-level ``memory:`` section (`MemoryConfig`) sets a budget; a registry
built from it registers every adapter that is [Shrinkable][portfolio_core.ports.Shrinkable]
with a `MemoryBudget` and runs its check every ``check_every`` seconds in a thread of its
own. A check reads the memory in use (the process's resident set through ``psutil``, or
the cgroup v2 ``memory.current``); over the budget, it asks the components to release the
excess -- down to ``target`` of the budget -- in [ReleaseOrder][portfolio_core.ports.ReleaseOrder]:
the engine's prefix cache, then CacheStore tiers (spilled to the cold tier, pinned entries
never), then Cache entries (least recently used first). The last check shows in the
registry's health (degraded with a reason) and as OpenTelemetry metrics.
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import structlog
from pydantic import (
    BaseModel,
    ByteSize,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)
from pydantic import ValidationError as PydanticValidationError

from portfolio_core._observables import observe
from portfolio_core.ports.shrinkable import Shrinkable

__all__ = [
    "CgroupMemory",
    "MemoryBudget",
    "MemoryConfig",
    "MemoryReading",
    "MemorySource",
    "MemoryStatus",
    "ProcessMemory",
    "Registration",
    "Release",
    "cgroup_of_process",
    "shrinkable_components",
]

_log = structlog.get_logger("portfolio_core.services.memory")
_SIZE = TypeAdapter(ByteSize)
_PERCENT = re.compile(r"\s*(\d+(?:\.\d+)?)\s*%\s*\Z")
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*\Z")
_CGROUP_ROOT = Path("/sys/fs/cgroup")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


# -- readings ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemoryReading:
    """Memory in use (bytes) and, when the source has one, its hard limit (bytes)."""

    used: int
    limit: int | None = None


class MemorySource(Protocol):
    """Where a budget reads the memory in use (`ProcessMemory`, `CgroupMemory`, or any
    callable object returning a `MemoryReading`, e.g. a test's)."""

    def __call__(self) -> MemoryReading: ...


class ProcessMemory:
    """The resident set size of this process (``psutil``: the ``memory`` extra)."""

    def __init__(self) -> None:
        try:
            import psutil
        except ImportError as exc:  # the extra is checked when the manifest is validated
            raise ImportError(
                "measuring the process's memory needs psutil: pip install 'portfolio-core[memory]'"
            ) from exc
        self._process = psutil.Process()

    def __call__(self) -> MemoryReading:
        return MemoryReading(int(self._process.memory_info().rss))

    def __repr__(self) -> str:
        return "ProcessMemory()"


class CgroupMemory:
    """The cgroup v2 directory's ``memory.current`` and ``memory.max`` (``max``: no limit).

    Raises ``FileNotFoundError`` naming the file when ``directory`` has no
    ``memory.current`` (not a cgroup v2 directory, or the memory controller is off), and
    ``ValueError`` when a file does not hold a number.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)
        current = self.directory / "memory.current"
        if not current.is_file():
            raise FileNotFoundError(
                f"{current} does not exist: not a cgroup v2 directory with the memory controller"
            )

    def __call__(self) -> MemoryReading:
        used = _read_number(self.directory / "memory.current")
        limit_file = self.directory / "memory.max"
        limit = _read_number(limit_file) if limit_file.is_file() else None
        return MemoryReading(0 if used is None else used, limit)

    def __repr__(self) -> str:
        return f"CgroupMemory({str(self.directory)!r})"


def _read_number(path: Path) -> int | None:
    text = path.read_text().strip()
    if text == "max":
        return None
    try:
        return int(text)
    except ValueError:
        raise ValueError(f"{path} holds {text[:40]!r}, not a number of bytes") from None


def cgroup_of_process(
    proc_cgroup: str | Path = "/proc/self/cgroup", root: str | Path = _CGROUP_ROOT
) -> Path | None:
    """This process's cgroup v2 directory (from ``/proc/self/cgroup``'s ``0::`` line), or
    None when there is none with a ``memory.current`` (cgroup v1, not Linux)."""
    try:
        lines = Path(proc_cgroup).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            directory = Path(root) / line[3:].strip().lstrip("/")
            if (directory / "memory.current").is_file():
                return directory
    return None


# -- configuration -------------------------------------------------------------------------


class MemoryConfig(BaseModel):
    """The manifest's ``memory:`` section.

    ``budget`` is a size (``512MiB``, ``2GB``, ``1_000_000`` bytes) or a percentage of the
    cgroup's ``memory.max`` (``80%``; the default is ``90%``, for a process under a cgroup v2
    memory limit); ``check_every`` is seconds (``1``, ``500ms``,
    ``2s``, ``1m``, ``1h``); ``measure`` is ``rss`` (this process, through ``psutil``) or
    ``cgroup`` (``memory.current`` of this process's cgroup, or of ``cgroup``); over the
    budget, a check releases memory until the reading is back to ``target`` (a fraction)
    of it.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    budget: int | str = "90%"
    check_every: float = Field(1.0, gt=0)
    measure: Literal["rss", "cgroup"] = "rss"
    target: float = Field(0.9, gt=0, le=1)
    cgroup: Path | None = None
    """The cgroup v2 directory to read (default: this process's)."""

    @field_validator("budget", mode="before")
    @classmethod
    def _budget(cls, value: object) -> int | str:
        if isinstance(value, str):
            percent = _PERCENT.match(value)
            if percent is not None:
                share = float(percent.group(1))
                if not 0 < share <= 100:
                    raise ValueError(f"a budget of {value!r} is not a percentage in (0, 100]")
                return f"{share:g}%"
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError(
                f"budget must be a size such as 512MiB or a percentage such as 80%, "
                f"not {type(value).__name__}"
            )
        if (isinstance(value, str) and value.strip().startswith("-")) or (
            not isinstance(value, str) and value <= 0
        ):
            raise ValueError(f"budget must be positive, not {value!r}")
        try:
            size = int(_SIZE.validate_python(value))
        except PydanticValidationError:
            raise ValueError(
                f"budget {value!r} is not a size (512MiB, 2GB, 1000000) nor a percentage of "
                "the cgroup's memory.max (80%)"
            ) from None
        if size <= 0:
            raise ValueError(f"budget must be positive, not {value!r}")
        return size

    @field_validator("check_every", mode="before")
    @classmethod
    def _seconds(cls, value: object) -> object:
        if isinstance(value, str):
            found = _DURATION.match(value)
            if found is None:
                raise ValueError(f"check_every {value!r} is not a duration (1, 500ms, 2s, 1m, 1h)")
            number = float(found.group(1))
            return number * _UNITS[found.group(2)]
        return value

    @model_validator(mode="after")
    def _measurable(self) -> MemoryConfig:
        try:
            self.check_environment()
        except (ImportError, OSError, ValueError) as exc:
            raise ValueError(str(exc)) from None
        return self

    def source(self) -> MemorySource:
        """The reading this section asks for. Raises ``ImportError`` (no psutil),
        ``FileNotFoundError`` (no cgroup v2 directory) or ``ValueError`` (a percentage
        budget without a cgroup limit) with what to do."""
        if self.measure == "rss":
            source: MemorySource = ProcessMemory()
            if isinstance(self.budget, str):
                self._cgroup()  # a percentage needs the cgroup's limit
            return source
        return self._cgroup()

    def _cgroup(self) -> CgroupMemory:
        directory = self.cgroup if self.cgroup is not None else cgroup_of_process()
        if directory is None:
            raise FileNotFoundError(
                "no cgroup v2 memory controller for this process: give the budget in bytes "
                "(budget: 512MiB) and measure: rss, or set memory.cgroup to a cgroup v2 "
                "directory"
            )
        return CgroupMemory(directory)

    def budget_bytes(self, limit: int | None) -> int:
        """The budget in bytes; a percentage is of ``limit`` (the cgroup's ``memory.max``).
        Raises ``ValueError`` for a percentage without a limit."""
        if isinstance(self.budget, int):
            return self.budget
        if limit is None:
            raise ValueError(
                f"a budget of {self.budget} needs a cgroup memory.max; this cgroup has no "
                "limit (max): give the budget in bytes"
            )
        return int(limit * float(self.budget[:-1]) / 100)

    def check_environment(self) -> None:
        """Fail now, with what to do, when this machine cannot measure as configured."""
        source = self.source()
        if isinstance(self.budget, str):
            cgroup = source if isinstance(source, CgroupMemory) else self._cgroup()
            self.budget_bytes(cgroup().limit)


# -- the budget ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Release:
    """What one component released during one check."""

    name: str
    asked: int
    freed: int


@dataclass(frozen=True, slots=True)
class MemoryStatus:
    """The last check of a `MemoryBudget`.

    ``pressure`` is true when the reading was over the budget; ``released`` lists what each
    component freed then; ``after`` is the reading taken after releasing (None when nothing
    was released). ``reason`` says it in a sentence (empty when not under pressure).
    """

    used: int
    budget: int
    pressure: bool
    released: tuple[Release, ...] = ()
    after: int | None = None
    checked_at: float = 0.0

    @property
    def still_over(self) -> bool:
        """Whether the memory in use stayed over the budget after releasing."""
        return self.pressure and (self.after if self.after is not None else self.used) > (
            self.budget
        )

    @property
    def reason(self) -> str:
        if not self.pressure:
            return ""
        freed = sum(r.freed for r in self.released)
        text = (
            f"memory pressure: {_mib(self.used)} in use, over the budget of "
            f"{_mib(self.budget)}; released {_mib(freed)}"
        )
        if self.released:
            text += " (" + ", ".join(f"{r.name} {_mib(r.freed)}" for r in self.released) + ")"
        if self.still_over:
            text += "; still over the budget"
        return text


def _mib(n: int) -> str:
    """``n`` bytes for people: B, KiB, MiB or GiB, one decimal."""
    if n < 2**10:
        return f"{n} B"
    if n < 2**20:
        return f"{n / 2**10:.1f} KiB"
    if n < 2**30:
        return f"{n / 2**20:.1f} MiB"
    return f"{n / 2**30:.1f} GiB"


@dataclass
class Registration:
    """A component registered with a `MemoryBudget`: its name, the component, its place
    in the release order, and what it released so far (bytes, calls, calls that raised)."""

    name: str
    target: Shrinkable
    order: int
    released_total: int = 0
    releases: int = 0
    failures: int = 0


@dataclass
class _Counters:
    checks: int = 0
    pressured: int = 0
    last: MemoryStatus | None = None
    errors: list[str] = field(default_factory=list)


class MemoryBudget:
    """Keeps the process under a memory budget by shrinking registered components.

    ``MemoryBudget(budget_bytes, source, components=[("kv", store), ...])``. Guarantees:

    * components are asked in ascending ``release_order``, ties in the order given, each
      for what is still over ``target * budget`` after the ones before it; a check stops
      asking once enough was freed;
    * a component that raises while releasing is logged and skipped: a check never raises
      because of one (the others are still asked);
    * `check` and `status` are thread-safe (checks run one at a time); `start` runs
      `check` every ``check_every`` seconds in a daemon thread until `stop`.

    ``budget`` is bytes, or a callable mapping the reading's limit to bytes (a percentage
    of a cgroup limit).
    """

    def __init__(
        self,
        budget: int | Callable[[int | None], int],
        source: MemorySource,
        components: Iterable[tuple[str, Shrinkable]] = (),
        *,
        check_every: float = 1.0,
        target: float = 0.9,
        clock: Callable[[], float] = time.time,
        meter_provider: Any = None,
        on_pressure: Callable[[MemoryStatus], None] | None = None,
    ) -> None:
        if not 0 < target <= 1:
            raise ValueError(f"target must be in (0, 1], not {target!r}")
        if check_every <= 0:
            raise ValueError(f"check_every must be positive, not {check_every!r}")
        self._budget = budget
        self.config: MemoryConfig | None = None
        """The manifest section this budget was made from (`from_config`), else None."""
        self.source = source
        self.check_every = check_every
        self.target = target
        self._clock = clock
        self._lock = threading.Lock()
        #: one check at a time (the thread's and a health call's would both release)
        self._checking = threading.Lock()
        self._components: list[Registration] = []
        self._counters = _Counters()
        self._thread: threading.Thread | None = None
        self._stopping = threading.Event()
        self.on_pressure = on_pressure
        """Called (in the checking thread) with the status when pressure starts and whenever a
        check released something; what it raises is logged and dropped."""
        self.replace_components(components)
        self._register_metrics(meter_provider)

    @classmethod
    def from_config(
        cls, config: MemoryConfig, components: Iterable[tuple[str, Shrinkable]] = ()
    ) -> MemoryBudget:
        """A budget as the manifest's ``memory:`` section says (see `MemoryConfig.source`
        for what it raises)."""
        budget: int | Callable[[int | None], int] = config.budget_bytes
        if isinstance(config.budget, int):
            budget = config.budget
        elif config.measure == "rss":  # a percentage of the cgroup limit, read each check
            cgroup = config._cgroup()

            def budget(_limit: int | None) -> int:
                return config.budget_bytes(cgroup().limit)

        made = cls(
            budget,
            config.source(),
            components,
            check_every=config.check_every,
            target=config.target,
        )
        made.config = config
        return made

    def __repr__(self) -> str:
        names = ", ".join(c.name for c in self.components_in_order())
        return f"MemoryBudget(source={self.source!r}, order=[{names}])"

    # -- components ------------------------------------------------------------------------

    def replace_components(self, components: Iterable[tuple[str, Shrinkable]]) -> None:
        """Register ``components`` (name, component) instead of the current ones, keeping
        the figures of names registered before. Raises ``TypeError`` for one that is not
        Shrinkable."""
        fresh: list[Registration] = []
        with self._lock:
            known = {c.name: c for c in self._components}
            for name, target in components:
                if not isinstance(target, Shrinkable):
                    raise TypeError(f"{name!r} is not Shrinkable (release_order, release, ...)")
                order = int(target.release_order)
                old = known.get(name)
                item = Registration(name, target, order)
                if old is not None and old.target is target:
                    item = old
                fresh.append(item)
            self._components = fresh

    def components_in_order(self) -> list[Registration]:
        """The registered components in the order they are asked to release."""
        with self._lock:
            return sorted(self._components, key=lambda c: c.order)  # stable: ties keep order

    @property
    def order(self) -> list[str]:
        """Names of the components in release order."""
        return [c.name for c in self.components_in_order()]

    # -- checking --------------------------------------------------------------------------

    def budget_bytes(self, reading: MemoryReading) -> int:
        budget = self._budget
        return budget if isinstance(budget, int) else budget(reading.limit)

    def check(self) -> MemoryStatus:
        """Read the memory in use; over the budget, release down to the target. Returns
        (and keeps, for `status`) what it saw and did. Checks run one at a time."""
        with self._checking:
            return self._check()

    def _check(self) -> MemoryStatus:
        with self._lock:
            components = sorted(self._components, key=lambda c: c.order)
        reading = self.source()
        budget = self.budget_bytes(reading)
        pressure = reading.used > budget
        released: list[Release] = []
        after: int | None = None
        if pressure:
            wanted = reading.used - int(budget * self.target)
            for component in components:
                if wanted <= 0:
                    break
                freed = self._release(component, wanted)
                released.append(Release(component.name, wanted, freed))
                wanted -= freed
            if any(r.freed for r in released):
                after = self.source().used
        status = MemoryStatus(
            reading.used, budget, pressure, tuple(released), after, checked_at=self._clock()
        )
        with self._lock:
            before = self._counters.last
            self._counters.checks += 1
            self._counters.pressured += int(pressure)
            self._counters.last = status
        # once when pressure starts, then whenever something was released
        if pressure and (before is None or not before.pressure or after is not None):
            _log.warning(
                "memory.pressure",
                used=reading.used,
                budget=budget,
                released={r.name: r.freed for r in released},
                after=after,
            )
            if self.on_pressure is not None:
                try:
                    self.on_pressure(status)
                except Exception as exc:
                    _log.error("memory.on_pressure_failed", error=f"{type(exc).__name__}: {exc}")
        return status

    def _release(self, component: Registration, nbytes: int) -> int:
        try:
            freed = int(component.target.release(nbytes))
        except Exception as exc:
            component.failures += 1
            _log.error(
                "memory.release_failed",
                component=component.name,
                error=f"{type(exc).__name__}: {exc}",
            )
            return 0
        freed = max(0, freed)
        component.released_total += freed
        component.releases += 1
        return freed

    def status(self) -> MemoryStatus | None:
        """The last check's status (None before the first check)."""
        with self._lock:
            return self._counters.last

    @property
    def checks(self) -> int:
        """Checks run so far."""
        return self._counters.checks

    # -- the thread ------------------------------------------------------------------------

    def start(self) -> None:
        """Check at once, then every ``check_every`` seconds, in a daemon thread of its own
        (idempotent)."""
        if self._thread is not None:
            return
        self._stopping.clear()
        thread = threading.Thread(target=self._run, name="portfolio-memory-budget", daemon=True)
        self._thread = thread
        thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the checks (idempotent); waits up to ``timeout`` seconds for a check under
        way to finish."""
        thread, self._thread = self._thread, None
        self._stopping.set()
        if thread is not None:
            thread.join(timeout)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _run(self) -> None:
        while True:
            self._safe_check()
            if self._stopping.wait(self.check_every):
                return

    def _safe_check(self) -> None:
        try:
            self.check()
        except Exception as exc:  # a reading that failed: logged, tried again next time
            _log.error("memory.check_failed", error=f"{type(exc).__name__}: {exc}")

    # -- telemetry -------------------------------------------------------------------------

    def _register_metrics(self, meter_provider: Any) -> None:
        from opentelemetry import metrics

        provider = meter_provider or metrics.get_meter_provider()
        meter = "portfolio_core.services"
        observe(
            provider,
            meter,
            "gauge",
            "portfolio.memory.used",
            self._observe_used,
            unit="By",
            description="memory in use at the memory budget's last check",
        )
        observe(
            provider,
            meter,
            "gauge",
            "portfolio.memory.budget",
            self._observe_budget,
            unit="By",
            description="the memory budget",
        )
        observe(
            provider,
            meter,
            "gauge",
            "portfolio.memory.pressure",
            self._observe_pressure,
            unit="1",
            description="1 when the last check was over the memory budget, else 0",
        )
        observe(
            provider,
            meter,
            "gauge",
            "portfolio.memory.resident",
            self._observe_resident,
            unit="By",
            description="bytes a shrinkable component holds in what it can release",
        )
        observe(
            provider,
            meter,
            "counter",
            "portfolio.memory.released",
            self._observe_released,
            unit="By",
            description="bytes a shrinkable component released under memory pressure",
        )

    def _observe_last_check(self, reading: Callable[[MemoryStatus], int]) -> Iterator[Any]:
        """``reading`` of the last check as one observation (nothing before a check)."""
        from opentelemetry.metrics import Observation

        last = self.status()
        if last is not None:
            yield Observation(reading(last))

    # bound methods, not closures: the shared instruments hold their callbacks weakly
    def _observe_used(self, _options: Any) -> Iterator[Any]:
        return self._observe_last_check(lambda s: s.used)

    def _observe_budget(self, _options: Any) -> Iterator[Any]:
        return self._observe_last_check(lambda s: s.budget)

    def _observe_pressure(self, _options: Any) -> Iterator[Any]:
        return self._observe_last_check(lambda s: int(s.pressure))

    def _observe_resident(self, _options: Any) -> Any:
        from opentelemetry.metrics import Observation

        for component in self.components_in_order():
            with contextlib.suppress(Exception):
                resident = int(component.target.resident_bytes())
                yield Observation(resident, {"portfolio.adapter": component.name})

    def _observe_released(self, _options: Any) -> Any:
        from opentelemetry.metrics import Observation

        for component in self.components_in_order():
            yield Observation(component.released_total, {"portfolio.adapter": component.name})


def shrinkable_components(items: Sequence[tuple[str, object]]) -> list[tuple[str, Shrinkable]]:
    """The ``(name, instance)`` pairs whose instance is Shrinkable, each instance once (an
    entry addressed ``local://`` shares its target's instance)."""
    seen: set[int] = set()
    found: list[tuple[str, Shrinkable]] = []
    for name, instance in items:
        if isinstance(instance, Shrinkable) and id(instance) not in seen:
            seen.add(id(instance))
            found.append((name, instance))
    return found
