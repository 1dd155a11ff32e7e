"""Protection state shared through the real Redis server (fixture ``redis_url``)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portfolio_core.boundary import BreakerStorageError, CircuitOpenError, boundary_of, wrap
from portfolio_core.boundary.breaker import Breaker, make_storage
from portfolio_core.cli import main
from portfolio_core.ports import UnavailableError, port_by_key
from portfolio_core.registry import Registry
from tests.boundary.test_protection import OPEN_UNTIL, ScriptedCache, _closed_port

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def cleanup(redis_url: str, unique_name: str) -> Iterator[str]:
    import redis

    yield unique_name
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(f"*{unique_name}*"))
    if keys:
        client.delete(*keys)
    client.close()


@pytest.mark.parametrize(
    ("lease", "strategy"), [(1, "moving_window"), (1, "fixed_window"), (5, "fixed_window")]
)
def test_two_processes_never_exceed_the_shared_limit(
    redis_url: str, cleanup: str, lease: int, strategy: str
) -> None:
    key = f"{cleanup}:{lease}:{strategy}"
    cmd = [
        sys.executable,
        str(ROOT / "tests/boundary/_limiter_worker.py"),
        redis_url,
        key,
        "30",
        str(lease),
        strategy,
    ]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(2)]
    counts = []
    for proc in procs:
        out, _ = proc.communicate(timeout=60)
        assert proc.returncode == 0
        counts.append(int(out.strip()))
    assert sum(counts) <= 20
    assert sum(counts) >= 20 - 2 * (lease - 1)
    assert all(c > 0 for c in counts) or sum(counts) == 20


async def test_breaker_shared_by_name_through_redis(redis_url: str, cleanup: str) -> None:
    protection: dict[str, Any] = {
        "circuit_breaker": {"fail_max": 1, "storage": redis_url, "name": cleanup}
    }
    a = wrap(
        ScriptedCache(errors=[UnavailableError("down")]),
        port=port_by_key("cache"),
        name="a",
        adapter_type="t",
        telemetry=None,
        protection=protection,
    )
    b_cache = ScriptedCache()
    b = wrap(
        b_cache,
        port=port_by_key("cache"),
        name="b",
        adapter_type="t",
        telemetry=None,
        protection=protection,
    )
    with pytest.raises(UnavailableError, match="down"):
        await a.get("k")
    with pytest.raises(CircuitOpenError):
        await b.get("k")
    assert b_cache.calls == 0
    assert boundary_of(b).breaker.state == "open"  # type: ignore[union-attr]


def _cut_off(breaker: Breaker) -> None:
    """Stop access to Redis: point the storage's client at a closed port."""
    client = breaker._storage._redis  # type: ignore[attr-defined]
    pool = client.connection_pool
    pool.connection_kwargs["port"] = _closed_port()
    pool.reset()
    assert client.connection_pool is pool


@pytest.mark.parametrize("fail_open", [True, False])
def test_breaker_storage_down_policy(redis_url: str, cleanup: str, fail_open: bool) -> None:
    breaker = Breaker(
        cleanup,
        fail_max=1,
        storage=make_storage(redis_url, cleanup, fail_open),
        fail_open_on_storage_error=fail_open,
    )
    assert breaker.admit() is False
    _cut_off(breaker)
    import redis

    with pytest.raises(redis.ConnectionError):
        breaker._storage._redis.ping()  # type: ignore[attr-defined]
    if fail_open:
        assert breaker.admit() is False
        assert breaker.health() == (True, "")
    else:
        with pytest.raises(BreakerStorageError):
            breaker.admit()
        assert breaker.health() == (
            False,
            "circuit breaker storage unavailable; calls refused (fail closed)",
        )


def test_breaker_storage_unreachable_at_wiring_fails_at_load() -> None:
    with pytest.raises(UnavailableError):
        make_storage(f"redis://127.0.0.1:{_closed_port()}/0", "x", True)


def _shared_breaker_app(tmp_path: Path, redis_url: str, name: str) -> tuple[Path, Any]:
    """A manifest whose ``shared`` entry uses the breaker ``name`` kept in Redis, and a
    wrapped adapter on the same breaker standing in for another process."""
    breaker = {"fail_max": 1, "reset_timeout": 600, "storage": redis_url, "name": name}
    path = tmp_path / "app.yaml"
    path.write_text(
        "schema_version: 1\n"
        "adapters:\n"
        "  shared:\n"
        "    port: cache\n"
        "    adapter: tests.manifest.fakes:DictCache\n"
        f"    protection: {{circuit_breaker: {json.dumps(breaker)}}}\n"
        "  plain: {port: cache, adapter: 'tests.manifest.fakes:DictCache'}\n"
    )
    other = wrap(
        ScriptedCache(errors=[UnavailableError("down")]),
        port=port_by_key("cache"),
        name="other",
        adapter_type="t",
        telemetry=None,
        protection={"circuit_breaker": breaker},
    )
    return path, other


async def test_registry_health_reads_the_breaker_shared_through_redis(
    redis_url: str, cleanup: str, tmp_path: Path
) -> None:
    path, other = _shared_breaker_app(tmp_path, redis_url, cleanup)
    shared = boundary_of(other).breaker  # type: ignore[union-attr]
    assert shared is not None
    async with Registry.from_manifest(path, environ={}) as registry:
        assert (await registry.health()).healthy
        with pytest.raises(UnavailableError, match="down"):
            await other.get("k")  # another process's call opens the shared breaker
        report = await registry.health()
        entry = report.entries["shared"]
        assert not entry.healthy  # though its ping succeeds
        assert OPEN_UNTIL.fullmatch(entry.detail), entry.detail
        assert report.status == "degraded"

        shared.pybreaker.half_open()  # the other process is probing
        entry = (await registry.health()).entries["shared"]
        assert entry.healthy
        assert entry.detail.startswith("circuit breaker half-open; probing")

        shared.close()
        report = await registry.health()
        assert report.entries["shared"].detail == "ok"
        assert report.status == "healthy"


def test_health_command_reads_the_breaker_shared_through_redis(
    redis_url: str, cleanup: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path, other = _shared_breaker_app(tmp_path, redis_url, cleanup)
    shared = boundary_of(other).breaker  # type: ignore[union-attr]
    assert shared is not None
    shared.open()
    assert main(["health", str(path)]) == 1
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("shared"))
    assert "UNHEALTHY" in line
    assert "circuit breaker open; calls refused until" in line
    assert "overall: degraded" in out
    shared.close()
    assert main(["health", str(path)]) == 0
    assert "overall: healthy" in capsys.readouterr().out


@pytest.mark.parametrize("fail_open", [True, False])
def test_a_down_storage_logs_one_warning_per_interval_not_a_traceback_per_call(
    redis_url: str, cleanup: str, fail_open: bool, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from structlog.testing import capture_logs

    breaker = Breaker(
        cleanup,
        fail_max=3,
        storage=make_storage(redis_url, cleanup, fail_open),
        fail_open_on_storage_error=fail_open,
    )
    _cut_off(breaker)
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs:
        for _ in range(23):
            try:
                if breaker.admit():
                    breaker.on_failure(RuntimeError("call failed"), probe=False)
            except BreakerStorageError:
                pass
    warnings = [e for e in logs if e["event"] == "breaker storage unavailable"]
    assert len(warnings) == 1, warnings
    assert warnings[0]["log_level"] == "warning"
    assert warnings[0]["breaker"] == cleanup
    assert all(r.exc_info is None for r in caplog.records), "a traceback was logged"
    assert not [r for r in caplog.records if r.name == "pybreaker"]
