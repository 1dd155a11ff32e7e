"""A PostgreSQL or Redis URL that cannot work is refused when the manifest is checked -- a
located ManifestError from ``portfolio-core check``, not a failure later in ``start()`` --
and ``repr()`` of every such adapter is safe: it never raises and never shows a password."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from portfolio_core.adapters.redis.cache import RedisCache
from portfolio_core.adapters.redis.config_store import RedisConfigStore
from portfolio_core.adapters.redis.job_queue import RedisJobQueue
from portfolio_core.adapters.redis.stream import RedisStream
from portfolio_core.adapters.redis.tenant import RedisTenant
from portfolio_core.adapters.sql.cache import PostgresCache
from portfolio_core.adapters.sql.config_store import PostgresConfigStore
from portfolio_core.adapters.sql.postgres_event_store import PostgresEventStore
from portfolio_core.adapters.sql.postgres_job_queue import PostgresJobQueue
from portfolio_core.manifest import ManifestError, load
from tests.support.cli import run_cli

POSTGRES = [
    ("event_store", "postgres"),
    ("cache", "postgres"),
    ("config_store", "postgres"),
    ("job_queue", "postgres"),
]
REDIS = [
    ("cache", "redis"),
    ("config_store", "redis"),
    ("job_queue", "redis"),
    ("stream", "redis"),
    ("tenant", "redis"),
]
BAD_POSTGRES = {
    "not a URL": "host=127.0.0.1 dbname=test",
    "another scheme": "mysql://app@127.0.0.1:3306/app",
    "a port that is not a number": "postgresql://app@127.0.0.1:5x32/app",
    "an unencoded password": "postgresql://app:Zr9pw@Qx7@127.0.0.1:5432/app",
    "a bad query": "postgresql://app@127.0.0.1:5432/app?sslmode",
}
BAD_REDIS = {
    "not a URL": "127.0.0.1:6379",
    "another scheme": "http://127.0.0.1:6379/0",
    "a port that is not a number": "redis://127.0.0.1:63x9/0",
    "an unencoded password": "redis://app:Zr9pw@Qx7@127.0.0.1:6379/0",
    "a database that is not a number": "redis://127.0.0.1:6379/zero",
}
CASES = [(p, a, why, url) for p, a in POSTGRES for why, url in BAD_POSTGRES.items()] + [
    (p, a, why, url) for p, a in REDIS for why, url in BAD_REDIS.items()
]

MANIFEST = """\
schema_version: 1
adapters:
  fine:
    port: cache
    adapter: memory
  target:
    port: {port}
    adapter: {adapter}
    config:
      url: "{url}"
"""


@pytest.mark.parametrize(
    ("port", "adapter", "why", "url"), CASES, ids=[f"{p}-{a}-{w}" for p, a, w, _ in CASES]
)
def test_a_bad_url_is_a_located_manifest_error(
    tmp_path: Path, port: str, adapter: str, why: str, url: str
) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(MANIFEST.format(port=port, adapter=adapter, url=url))
    with pytest.raises(ManifestError) as caught:
        load(path)
    message = str(caught.value)
    assert "build-failed" in caught.value.kinds
    assert "app.yaml:6:" in message, f"not located at the entry: {message}"
    assert "InvalidInputError" in message
    for piece in ("Zr9", "Qx7"):
        assert piece not in message, f"a piece of the password leaked: {message}"


@pytest.mark.parametrize(
    ("adapter", "url"),
    [("postgres", BAD_POSTGRES["another scheme"]), ("redis", BAD_REDIS["another scheme"])],
)
def test_portfolio_core_check_refuses_the_manifest(tmp_path: Path, adapter: str, url: str) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(MANIFEST.format(port="job_queue", adapter=adapter, url=url))
    done = run_cli("check", str(path), timeout=120)
    assert done.returncode != 0, done.stdout
    output = done.stdout + done.stderr
    assert "app.yaml:6:" in output
    assert "Traceback" not in output


ODD_URLS = {
    "postgres": [
        "postgresql://app:Zr9pw%40Qx7@127.0.0.1:5432/app?sslmode=disable",
        "postgres://app:Zr9pw%2FQx7@[::1]:5432/app",
        "postgresql:///app?host=/var/run/postgresql",
    ],
    "redis": [
        "redis://app:Zr9pw%40Qx7@127.0.0.1:6379/3",
        "rediss://:Zr9pw%2FQx7@[::1]:6380",
        "unix:///var/run/redis.sock?db=2",
    ],
}
MAKERS: dict[str, Callable[[Any], Any]] = {
    "postgres event store": lambda url: PostgresEventStore(url),
    "postgres cache": lambda url: PostgresCache(url),
    "postgres config store": lambda url: PostgresConfigStore(url),
    "postgres job queue": lambda url: PostgresJobQueue(url),
    "redis cache": lambda url: RedisCache(url),
    "redis config store": lambda url: RedisConfigStore(url),
    "redis job queue": lambda url: RedisJobQueue(url),
    "redis stream": lambda url: RedisStream(url),
    "redis tenant": lambda url: RedisTenant(url),
}


@pytest.mark.parametrize("index", range(3))
@pytest.mark.parametrize("make", MAKERS)
def test_repr_never_raises_nor_shows_the_password(make: str, index: int) -> None:
    url = ODD_URLS[make.split()[0]][index]
    adapter = MAKERS[make](url)
    text = repr(adapter)
    assert type(adapter).__name__ in text
    assert "Zr9" not in text
    assert "Qx7" not in text


@pytest.mark.parametrize("make", [m for m in MAKERS if m.startswith("postgres")])
def test_repr_of_an_adapter_given_a_secret_str(make: str) -> None:
    text = repr(MAKERS[make](SecretStr("postgresql://app:Zr9pw%40Qx7@127.0.0.1:5432/app")))
    assert "Zr9" not in text
    assert "Qx7" not in text
