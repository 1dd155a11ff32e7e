"""The memory budget: the ``memory:`` section's validation, readings from psutil and from a
cgroup v2 directory, the release order under pressure, failures that do not stop a check,
the checking thread, and the metrics."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from portfolio_core.ports.shrinkable import ReleaseOrder, Shrinkable
from portfolio_core.services.memory import (
    CgroupMemory,
    MemoryBudget,
    MemoryConfig,
    MemoryReading,
    ProcessMemory,
    cgroup_of_process,
    shrinkable_components,
)

MiB = 2**20


class Pool:
    """A shrinkable component holding ``held`` bytes; records each request it gets."""

    def __init__(self, held: int, order: int, calls: list[str], name: str) -> None:
        self.held = held
        self.release_order = order
        self.calls = calls
        self.name = name

    def resident_bytes(self) -> int:
        return self.held

    def release(self, nbytes: int) -> int:
        self.calls.append(self.name)
        freed = min(nbytes, self.held)
        self.held -= freed
        return freed


class Meter:
    """A reading that is a base plus what the components still hold (as RSS would be)."""

    def __init__(self, base: int, *pools: Pool, limit: int | None = None) -> None:
        self.base = base
        self.pools = pools
        self.limit = limit

    def __call__(self) -> MemoryReading:
        return MemoryReading(self.base + sum(p.held for p in self.pools), self.limit)


def fake_cgroup(tmp_path: Path, current: str, limit: str | None = "max") -> Path:
    directory = tmp_path / "cgroup"
    directory.mkdir(exist_ok=True)
    (directory / "memory.current").write_text(current + "\n")
    if limit is not None:
        (directory / "memory.max").write_text(limit + "\n")
    return directory


# -- configuration -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [("512MiB", 512 * MiB), ("2GB", 2 * 10**9), ("1 KiB", 1024), (1_000_000, 1_000_000)],
)
def test_budget_sizes_take_units(text: object, expected: int) -> None:
    assert MemoryConfig(budget=text).budget == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("512 potatoes", "is not a size"),
        ("-5MiB", "must be positive"),
        (-1, "must be positive"),
        (0, "must be positive"),
        ("0%", "not a percentage in (0, 100]"),
        ("150%", "not a percentage in (0, 100]"),
        (True, "not bool"),
        ([512], "not list"),
    ],
)
def test_bad_budgets_are_refused_with_what_is_expected(text: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace("]", r"\]")):
        MemoryConfig(budget=text)


@pytest.mark.parametrize(("text", "seconds"), [("500ms", 0.5), ("2s", 2.0), ("1m", 60.0), (3, 3)])
def test_check_every_takes_durations(text: object, seconds: float) -> None:
    assert MemoryConfig(budget="1GiB", check_every=text).check_every == seconds


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("check_every", "soon", "is not a duration"),
        ("check_every", 0, "greater than 0"),
        ("target", 1.5, "less than or equal to 1"),
        ("measure", "vms", "'rss' or 'cgroup'"),
        ("budgets", "1GiB", "Extra inputs are not permitted"),
    ],
)
def test_other_bad_settings_are_refused(field: str, value: object, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        MemoryConfig(**{"budget": "1GiB", field: value})


def test_a_percentage_needs_a_cgroup_with_a_limit(tmp_path: Path) -> None:
    limited = fake_cgroup(tmp_path, "100", "1000000")
    config = MemoryConfig(budget="80%", measure="cgroup", cgroup=limited)
    assert config.budget_bytes(1_000_000) == 800_000
    (limited / "memory.max").write_text("max\n")
    with pytest.raises(ValidationError, match=r"needs a cgroup memory\.max"):
        MemoryConfig(budget="80%", measure="cgroup", cgroup=limited)
    with pytest.raises(ValidationError, match="not a cgroup v2 directory"):
        MemoryConfig(budget="1GiB", measure="cgroup", cgroup=tmp_path / "nowhere")


# -- readings ----------------------------------------------------------------------------


def test_cgroup_reading_comes_from_memory_current_and_max(tmp_path: Path) -> None:
    directory = fake_cgroup(tmp_path, "123456", "max")
    reading = CgroupMemory(directory)()
    assert reading == MemoryReading(123456, None)
    (directory / "memory.max").write_text("2000000\n")
    assert CgroupMemory(directory)() == MemoryReading(123456, 2_000_000)
    (directory / "memory.current").write_text("lots\n")
    with pytest.raises(ValueError, match="holds 'lots', not a number of bytes"):
        CgroupMemory(directory)()


def test_the_process_cgroup_is_found_from_proc_self_cgroup(tmp_path: Path) -> None:
    root = tmp_path / "sys"
    (root / "app" / "worker").mkdir(parents=True)
    (root / "app" / "worker" / "memory.current").write_text("1\n")
    listing = tmp_path / "cgroup"
    listing.write_text("1:name=systemd:/elsewhere\n0::/app/worker\n")
    assert cgroup_of_process(listing, root) == root / "app" / "worker"
    listing.write_text("0::/gone\n")
    assert cgroup_of_process(listing, root) is None
    assert cgroup_of_process(tmp_path / "missing", root) is None


def test_process_memory_reads_this_process_resident_set() -> None:
    psutil = pytest.importorskip("psutil")
    reading = ProcessMemory()()
    assert reading.limit is None
    rss = psutil.Process().memory_info().rss
    assert 0.5 * rss < reading.used < 2 * rss


# -- releasing ---------------------------------------------------------------------------


def test_pressure_releases_in_order_until_back_under_the_target() -> None:
    calls: list[str] = []
    cache = Pool(30 * MiB, ReleaseOrder.CACHE_ENTRIES, calls, "cache")
    store = Pool(20 * MiB, ReleaseOrder.KV_TIER, calls, "store")
    prefix = Pool(10 * MiB, ReleaseOrder.PREFIX_CACHE, calls, "prefix")
    meter = Meter(40 * MiB, cache, store, prefix)
    # given in manifest order; asked in release order
    given = [("cache", cache), ("store", store), ("prefix", prefix)]
    budget = MemoryBudget(100 * MiB, meter, given)
    assert budget.order == ["prefix", "store", "cache"]
    assert budget.check().pressure is False  # 100 MiB in use: at the budget, not over
    cache.held += 15 * MiB  # 115 MiB: over; the target is 90 MiB, so 25 MiB must go
    status = budget.check()
    assert calls == ["prefix", "store"]
    assert [(r.name, r.asked, r.freed) for r in status.released] == [
        ("prefix", 25 * MiB, 10 * MiB),
        ("store", 15 * MiB, 15 * MiB),
    ]
    assert (prefix.held, store.held, cache.held) == (0, 5 * MiB, 45 * MiB)
    assert status.pressure
    assert not status.still_over
    assert status.after == 90 * MiB
    assert "115.0 MiB in use, over the budget of 100.0 MiB; released 25.0 MiB" in status.reason
    assert budget.check().pressure is False


def test_a_failing_component_is_skipped_and_the_next_asked() -> None:
    calls: list[str] = []

    class Broken(Pool):
        def release(self, nbytes: int) -> int:
            calls.append("broken")
            raise RuntimeError("disk full")

    broken = Broken(10 * MiB, ReleaseOrder.PREFIX_CACHE, calls, "broken")
    cache = Pool(50 * MiB, ReleaseOrder.CACHE_ENTRIES, calls, "cache")
    budget = MemoryBudget(50 * MiB, Meter(10 * MiB, broken, cache), [("b", broken), ("c", cache)])
    status = budget.check()
    assert calls == ["broken", "cache"]
    assert [(r.name, r.freed) for r in status.released] == [("b", 0), ("c", 25 * MiB)]


def test_still_over_when_only_pinned_or_nothing_is_left() -> None:
    calls: list[str] = []
    small = Pool(1 * MiB, ReleaseOrder.CACHE_ENTRIES, calls, "small")
    budget = MemoryBudget(10 * MiB, Meter(50 * MiB, small), [("small", small)])
    status = budget.check()
    assert status.still_over
    assert status.reason.endswith("still over the budget")


def test_a_percentage_budget_follows_the_reading_limit() -> None:
    calls: list[str] = []
    pool = Pool(0, ReleaseOrder.CACHE_ENTRIES, calls, "pool")
    config = MemoryConfig.model_construct(budget="50%", target=0.9)
    meter = Meter(60, pool, limit=100)
    budget = MemoryBudget(config.budget_bytes, meter, [("pool", pool)])
    assert budget.check().budget == 50
    assert budget.check().pressure


def test_only_shrinkable_components_are_taken_each_once() -> None:
    calls: list[str] = []
    pool = Pool(1, ReleaseOrder.KV_TIER, calls, "pool")
    assert isinstance(pool, Shrinkable)
    found = shrinkable_components([("a", pool), ("alias", pool), ("b", object())])
    assert found == [("a", pool)]
    with pytest.raises(TypeError, match="'b' is not Shrinkable"):
        MemoryBudget(1, Meter(0), [("b", object())])  # type: ignore[list-item]


def test_the_thread_checks_every_interval_until_stopped() -> None:
    seen = threading.Event()
    readings: list[float] = []

    def reading() -> MemoryReading:
        readings.append(time.monotonic())
        if len(readings) >= 3:
            seen.set()
        return MemoryReading(1)

    budget = MemoryBudget(10, reading, check_every=0.01)
    budget.start()
    budget.start()  # idempotent
    assert seen.wait(5)
    assert budget.running
    budget.stop()
    assert not budget.running
    count = len(readings)
    time.sleep(0.05)
    assert len(readings) == count
    assert budget.checks >= 3


def test_a_failed_reading_is_logged_and_tried_again() -> None:
    attempts: list[int] = []
    done = threading.Event()

    def flaky() -> MemoryReading:
        attempts.append(1)
        if len(attempts) == 1:
            raise OSError("cgroup went away")
        done.set()
        return MemoryReading(1)

    budget = MemoryBudget(10, flaky, check_every=0.01)
    budget.start()
    try:
        assert done.wait(5)
    finally:
        budget.stop()
    status = budget.status()
    assert status is not None
    assert status.pressure is False


def test_metrics_report_use_budget_pressure_and_what_each_component_released() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    calls: list[str] = []
    store = Pool(40 * MiB, ReleaseOrder.KV_TIER, calls, "store")
    budget = MemoryBudget(
        50 * MiB,
        Meter(20 * MiB, store),
        [("kv", store)],
        meter_provider=MeterProvider(metric_readers=[reader]),
    )
    budget.check()  # 60 MiB in use: releases 15 MiB (to 45 MiB)
    points: dict[str, list[Any]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                points[metric.name] = list(metric.data.data_points)
    assert points["portfolio.memory.used"][0].value == 60 * MiB
    assert points["portfolio.memory.budget"][0].value == 50 * MiB
    assert points["portfolio.memory.pressure"][0].value == 1
    released = points["portfolio.memory.released"][0]
    assert (released.attributes["portfolio.adapter"], released.value) == ("kv", 15 * MiB)
    resident = points["portfolio.memory.resident"][0]
    assert resident.value == 25 * MiB


def test_every_budget_in_a_process_reports_what_its_components_released() -> None:
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    budgets = []
    for name in ("kv-a", "kv-b"):
        pool = Pool(40 * MiB, ReleaseOrder.KV_TIER, [], name)
        budgets.append(
            MemoryBudget(50 * MiB, Meter(20 * MiB, pool), [(name, pool)], meter_provider=provider)
        )
    for budget in budgets:
        budget.check()  # 60 MiB in use: each releases 15 MiB
    data = reader.get_metrics_data()
    assert data is not None
    released = {
        p.attributes["portfolio.adapter"]: p.value
        for rm in data.resource_metrics
        for sm in rm.scope_metrics
        for m in sm.metrics
        if m.name == "portfolio.memory.released"
        for p in m.data.data_points
        if p.attributes is not None
    }
    assert released == {"kv-a": 15 * MiB, "kv-b": 15 * MiB}


def test_checks_run_one_at_a_time() -> None:
    inside = threading.Event()
    go_on = threading.Event()
    active: list[int] = []
    overlaps: list[int] = []

    class Slow(Pool):
        def release(self, nbytes: int) -> int:
            active.append(1)
            overlaps.append(len(active))
            inside.set()
            go_on.wait(5)
            active.pop()
            return super().release(nbytes)

    calls: list[str] = []
    slow = Slow(50 * MiB, ReleaseOrder.CACHE_ENTRIES, calls, "slow")
    budget = MemoryBudget(10 * MiB, Meter(20 * MiB, slow), [("slow", slow)])
    first = threading.Thread(target=budget.check)
    first.start()
    assert inside.wait(5)
    second = threading.Thread(target=budget.check)
    second.start()
    time.sleep(0.05)
    go_on.set()
    first.join(5)
    second.join(5)
    assert overlaps == [1, 1]


def test_on_pressure_hears_when_pressure_starts_and_when_something_was_released() -> None:
    calls: list[str] = []
    heard: list[int] = []
    pool = Pool(0, ReleaseOrder.CACHE_ENTRIES, calls, "pool")
    meter = Meter(20, pool)

    def hear(status: Any) -> None:
        heard.append(status.used)
        raise RuntimeError("a listener's error is dropped")

    budget = MemoryBudget(10, meter, [("pool", pool)], on_pressure=hear)
    budget.check()  # pressure starts, nothing to release
    budget.check()  # still over, nothing released: not told again
    pool.held = 5
    budget.check()  # released 5
    meter.base = 0
    pool.held = 0
    budget.check()  # not under pressure
    assert heard == [20, 25]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"target": 0}, "target must be in"), ({"check_every": 0}, "check_every must be positive")],
)
def test_a_budget_refuses_bad_settings(kwargs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MemoryBudget(10, Meter(0), **kwargs)  # type: ignore[arg-type]


def test_replacing_components_keeps_the_figures_of_those_that_stay() -> None:
    calls: list[str] = []
    kept = Pool(10, ReleaseOrder.KV_TIER, calls, "kept")
    budget = MemoryBudget(5, Meter(0, kept), [("kv", kept)], target=1.0)
    budget.check()
    before = budget.components_in_order()[0]
    assert before.released_total == 5
    other = Pool(3, ReleaseOrder.PREFIX_CACHE, calls, "other")
    budget.replace_components([("kv", kept), ("engine", other)])
    assert budget.order == ["engine", "kv"]
    assert budget.components_in_order()[1] is before
    assert "order=[engine, kv]" in repr(budget)


def test_a_percentage_with_rss_takes_the_cgroup_limit_at_each_check(tmp_path: Path) -> None:
    pytest.importorskip("psutil")
    directory = fake_cgroup(tmp_path, "1", str(100 * 2**30))
    budget = MemoryBudget.from_config(MemoryConfig(budget="50%", cgroup=directory))
    assert isinstance(budget.source, ProcessMemory)
    status = budget.check()
    assert status.budget == 50 * 2**30
    assert status.used > 0
    (directory / "memory.max").write_text(f"{2**20}\n")  # the limit shrank: so does the budget
    assert budget.check().budget == 2**19
    assert budget.check().pressure


def test_the_default_budget_is_90_percent_of_the_cgroup_limit(tmp_path: Path) -> None:
    directory = fake_cgroup(tmp_path, str(10 * MiB), str(100 * MiB))
    config = MemoryConfig(measure="cgroup", cgroup=directory)
    assert config.budget == "90%"
    assert MemoryBudget.from_config(config).check().budget == 90 * MiB
    (directory / "memory.max").write_text("max\n")
    with pytest.raises(ValidationError, match=r"a budget of 90% needs a cgroup memory\.max"):
        MemoryConfig(measure="cgroup", cgroup=directory)
