"""A registry with a ``memory:`` section: its Shrinkable adapters are registered with a
memory budget that shrinks them in the documented order under pressure, without an error
and without losing a pinned entry; pressure shows in health. The section is validated with
located errors."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from portfolio_core.boundary.timeline import default_timeline
from portfolio_core.manifest import ManifestError, plan
from portfolio_core.ports import AgentBlocks, Cache, CacheStore, CacheTier, GenerationEngine
from portfolio_core.registry import Registry
from portfolio_core.services.memory import MemoryReading
from tests.support.cli import run_cli

pytest.importorskip("numpy")
pytest.importorskip("safetensors")

MiB = 2**20
PROMPT = "a system prompt every agent shares, long enough to fill several blocks " * 2


def manifest(tmp_path: Path, memory: str) -> Path:
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir(exist_ok=True)
    (cgroup / "memory.current").write_text(f"{10 * MiB}\n")
    (cgroup / "memory.max").write_text("max\n")
    path = tmp_path / "manifest.yaml"
    path.write_text(
        textwrap.dedent(
            f"""\
            schema_version: 1
            adapters:
              cache:
                port: cache
                adapter: memory
              tok:
                port: tokenizer
                adapter: byte
              model:
                port: model_backend
                adapter: numpy
                config: {{d_model: 128, n_heads: 4, n_kv_heads: 4, seed: 2}}
              engine:
                port: generation_engine
                adapter: local
                config: {{num_blocks: 32}}
                uses: {{backend: model, tokenizer: tok}}
              cold:
                port: cache_persistence
                adapter: file
                config: {{directory: {str(tmp_path / "cold")!r}, fsync: false}}
              kv:
                port: cache_store
                adapter: memory
                uses: {{persistence: cold}}
            """
        )
        + textwrap.dedent(memory).replace("CGROUP", repr(str(cgroup)))
    )
    return path


SECTION = """\
    memory:
      budget: 64MiB
      check_every: 1h
      measure: cgroup
      cgroup: CGROUP
    """


async def fill(registry: Registry) -> dict[str, AgentBlocks]:
    """Run three agents through the engine (their prefixes stay cached in free blocks),
    keep their KV in the store (the first pinned) and cache 30 values of 10 kB."""
    engine = registry.get(GenerationEngine)
    store = registry.get(CacheStore)
    kept: dict[str, AgentBlocks] = {}
    for agent in ("pinned", "b", "c"):
        uid = engine.submit(agent, PROMPT + agent, max_tokens=4)
        done = []
        while not done:
            done = [g for g in engine.step() if g.uid == uid]
        assert done[0].blocks is not None
        kept[agent] = done[0].blocks
        store.put(agent, done[0].blocks)
    store.pin("pinned")
    cache = registry.get(Cache)
    for i in range(30):
        await cache.put(f"k{i}", "v" * 10_000)
    return kept


def resident(registry: Registry) -> dict[str, int]:
    budget = registry.memory_budget
    assert budget is not None
    return {c.name: c.target.resident_bytes() for c in budget.components_in_order()}


async def test_shrinkable_adapters_are_registered_in_release_order(tmp_path: Path) -> None:
    async with Registry.from_manifest(manifest(tmp_path, SECTION)) as registry:
        budget = registry.memory_budget
        assert budget is not None
        # manifest order is cache, ..., engine, ..., kv: released engine, kv, cache
        assert budget.order == ["engine", "kv", "cache"]
        assert budget.running
    assert not budget.running, "closing the registry stops the checks"


async def test_filling_past_the_budget_shrinks_in_order_without_error_or_lost_pins(
    tmp_path: Path,
) -> None:
    async with Registry.from_manifest(manifest(tmp_path, SECTION)) as registry:
        kept = await fill(registry)
        held = resident(registry)
        assert all(held.values()), held
        base = 40 * MiB
        budget = registry.memory_budget
        assert budget is not None
        # what RSS would be: a base plus what the components hold
        budget.source = lambda: MemoryReading(base + sum(resident(registry).values()))
        # a byte more than the engine's prefix cache holds must go: the engine gives all it
        # has, the store the rest (its oldest unpinned entry), the cache nothing
        store = registry.get(CacheStore)
        over = held["engine"] + 1
        budget.target = 1.0
        budget._budget = base + sum(held.values()) - over

        status = budget.check()

        assert status.pressure
        assert [r.name for r in status.released] == ["engine", "kv"]
        after = resident(registry)
        assert after["engine"] == 0
        assert after["kv"] < held["kv"]
        assert after["cache"] == held["cache"], "the cache is released last: untouched"
        assert store.tier_of("pinned") is CacheTier.HOT
        assert store.pinned("pinned") == 1
        assert store.tier_of("b") is CacheTier.COLD, "the oldest unpinned entry spilled"
        assert not status.still_over
        assert budget.check().pressure is False
        for agent, blocks in kept.items():  # no entry was lost: each is found again
            hit = store.get(agent, blocks.tokens)
            assert hit is not None
            assert hit.matched_tokens == len(blocks.tokens)

        report = await registry.health()
        assert report.healthy
        assert report.status == "healthy"


async def test_pressure_shows_in_health_with_a_reason(tmp_path: Path) -> None:
    path = manifest(tmp_path, SECTION)
    async with Registry.from_manifest(path) as registry:
        report = await registry.health()
        assert report.memory is not None
        assert report.status == "healthy"
        (tmp_path / "cgroup" / "memory.current").write_text(f"{100 * MiB}\n")
        budget = registry.memory_budget
        assert budget is not None
        budget.check()
        report = await registry.health()
        assert report.healthy, "every entry is still healthy"
        assert report.status == "degraded"
        assert report.memory is not None
        assert "memory pressure: 100.0 MiB in use, over the budget of 64.0 MiB" in (
            report.memory.reason
        )
        assert report.memory.reason.endswith("still over the budget")
        events = [e for e in default_timeline().latest() if e.kind == "memory"]
        assert events, "pressure is on the timeline (the operator console's feed)"
        assert events[-1].severity == "error"
        assert events[-1].title == report.memory.reason


async def test_without_a_section_there_is_no_budget(tmp_path: Path) -> None:
    async with Registry.from_manifest(manifest(tmp_path, "")) as registry:
        assert registry.memory_budget is None
        report = await registry.health()
        assert report.memory is None
        assert report.status == "healthy"


async def test_reload_with_the_same_section_keeps_the_budget(tmp_path: Path) -> None:
    path = manifest(tmp_path, SECTION)
    async with Registry.from_manifest(path) as registry:
        first = registry.memory_budget
        text = path.read_text()  # the cache entry gets a config: it is rebuilt
        text = text.replace(
            "adapter: memory\n  tok:", "adapter: memory\n    config: {max_entries: 5}\n  tok:"
        )
        path.write_text(text)
        report = await registry.reload()
        assert "cache" in report.rebuilt
        assert registry.memory_budget is first
        assert first is not None
        assert first.running
        new_cache = registry.get(Cache)
        assert any(r.target is new_cache for r in first.components_in_order())


async def test_reload_follows_the_section(tmp_path: Path) -> None:
    path = manifest(tmp_path, SECTION)
    async with Registry.from_manifest(path) as registry:
        first = registry.memory_budget
        assert first is not None
        path.write_text(path.read_text().replace("budget: 64MiB", "budget: 32MiB"))
        await registry.reload()
        second = registry.memory_budget
        assert second is not None
        assert second is not first
        assert not first.running
        assert second.running
        assert second.budget_bytes(MemoryReading(0)) == 32 * MiB
        assert second.order == ["engine", "kv", "cache"]
        path.write_text(path.read_text().split("memory:")[0])
        await registry.reload()
        assert registry.memory_budget is None
        assert not second.running


@pytest.mark.parametrize(
    ("section", "line", "message"),
    [
        ("memory:\n  budget: lots\n", 27, "budget 'lots' is not a size (512MiB"),
        ("memory:\n  budget: -1GiB\n", 27, "budget must be positive, not '-1GiB'"),
        ("memory:\n  budget: 1GiB\n  check_every: often\n", 28, "'often' is not a duration"),
        ("memory:\n  budget: 1GiB\n  every: 1s\n", 28, "unknown key 'every' in memory"),
        (
            "memory:\n  measure: cgroup\n  cgroup: CGROUP\n",  # its memory.max is "max"
            27,
            "a budget of 90% needs a cgroup memory.max; this cgroup has no limit (max)",
        ),
    ],
)
def test_bad_sections_are_located_errors(
    tmp_path: Path, section: str, line: int, message: str
) -> None:
    path = manifest(tmp_path, section)
    with pytest.raises(ManifestError) as caught:
        plan(path)
    text = str(caught.value)
    assert message in text, text
    assert f"manifest.yaml:{line}:" in text, text


def test_the_health_command_prints_the_pressure(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    cgroup = tmp_path / "cgroup"
    cgroup.mkdir()
    (cgroup / "memory.current").write_text(f"{300 * MiB}\n")
    (cgroup / "memory.max").write_text(f"{400 * MiB}\n")
    path.write_text(
        "schema_version: 1\n"
        "adapters:\n"
        "  cache: {port: cache, adapter: memory}\n"
        "memory:\n"
        "  budget: 50%\n"
        "  measure: cgroup\n"
        f"  cgroup: {str(cgroup)!r}\n"
    )
    done = run_cli("health", str(path), timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "(memory)" in done.stdout
    assert "300.0 MiB in use, over the budget of 200.0 MiB" in done.stdout
    assert "overall: degraded" in done.stdout


def test_measuring_rss_without_psutil_is_refused_at_load_with_the_extra(tmp_path: Path) -> None:
    path = tmp_path / "m.yaml"
    path.write_text(
        "schema_version: 1\n"
        "adapters:\n"
        "  cache: {port: cache, adapter: memory}\n"
        "memory:\n"
        "  budget: 1GiB\n"
    )
    done = run_cli("check", str(path), without=["psutil"], timeout=120)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "m.yaml:5:3: memory: Value error, measuring the process's memory needs psutil: " in (
        done.stderr
    )
    assert "pip install 'portfolio-core[memory]'" in done.stderr
    assert "Traceback" not in done.stderr


async def test_an_empty_section_takes_90_percent_of_the_cgroup_limit(tmp_path: Path) -> None:
    path = manifest(tmp_path, "memory: {measure: cgroup, cgroup: CGROUP}\n")
    (tmp_path / "cgroup" / "memory.max").write_text(f"{200 * MiB}\n")
    async with Registry.from_manifest(path) as registry:
        budget = registry.memory_budget
        assert budget is not None
        assert budget.check().budget == 180 * MiB
