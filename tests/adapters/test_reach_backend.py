"""The fault hook of the in-process adapters: an unreachable backend (OSError) becomes the
port's retryable UnavailableError naming what and when; nothing else is translated."""

from __future__ import annotations

import pytest

from portfolio_core.adapters._shared.backend import reach_backend
from portfolio_core.ports.errors import UnavailableError


def test_the_hook_is_called_with_the_operation() -> None:
    seen: list[str] = []
    reach_backend(seen.append, "append", what="event store", port="event_store")
    assert seen == ["append"]


def test_an_unreachable_backend_is_unavailable_error_naming_what_and_operation() -> None:
    def unreachable(operation: str) -> None:
        raise ConnectionRefusedError("refused")

    with pytest.raises(UnavailableError) as caught:
        reach_backend(unreachable, "reserve", what="job queue", port="JobQueue")
    assert str(caught.value).startswith("the job queue backend is unreachable (reserve): refused")
    assert caught.value.port == "JobQueue"
    assert isinstance(caught.value.__cause__, ConnectionRefusedError)


def test_other_errors_of_the_hook_pass_through_unchanged() -> None:
    def broken(operation: str) -> None:
        raise ValueError("not a backend fault")

    with pytest.raises(ValueError, match="not a backend fault"):
        reach_backend(broken, "get", what="cache", port="cache")
