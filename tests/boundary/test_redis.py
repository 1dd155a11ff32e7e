"""Protection state shared through the real Redis server (fixture ``redis_url``)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portfolio_core.boundary import BreakerStorageError, CircuitOpenError, boundary_of, wrap
from portfolio_core.boundary.breaker import Breaker, make_storage
from portfolio_core.ports import UnavailableError, port_by_key
from tests.boundary.test_protection import ScriptedCache, _closed_port

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
    else:
        with pytest.raises(BreakerStorageError):
            breaker.admit()


def test_breaker_storage_unreachable_at_wiring_fails_at_load() -> None:
    with pytest.raises(UnavailableError):
        make_storage(f"redis://127.0.0.1:{_closed_port()}/0", "x", True)
