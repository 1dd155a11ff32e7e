"""Fixtures shared by the whole suite: real servers (skipped with a reason when absent) and
names that cannot collide between concurrent test runs on one server."""

from __future__ import annotations

import os
import uuid

import pytest

pytest_plugins = ["pytester", "tests.support.manifest"]

POSTGRES_ENV = "PORTFOLIO_CORE_TEST_POSTGRES_URL"
REDIS_ENV = "PORTFOLIO_CORE_TEST_REDIS_URL"


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """URL of a real PostgreSQL server, e.g. ``postgresql://postgres@127.0.0.1:5432/test``."""
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        pytest.skip(f"{POSTGRES_ENV} is not set: PostgreSQL tests need a real server")
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of a real Redis server, e.g. ``redis://127.0.0.1:6379/0``."""
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"{REDIS_ENV} is not set: Redis tests need a real server")
    return url


@pytest.fixture
def unique_name() -> str:
    """A short name (table prefix, key namespace) unique to this test invocation."""
    return f"t{uuid.uuid4().hex[:12]}"
