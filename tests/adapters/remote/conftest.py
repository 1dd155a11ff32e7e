from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.portal.served import ServedRegistry


@pytest.fixture(scope="session")
def served() -> Iterator[ServedRegistry]:
    """One portal for the remote contract suites; every factory call adds a fresh entry."""
    server = ServedRegistry()
    yield server
    server.stop()
