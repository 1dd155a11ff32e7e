"""Problem details: every listed error class round-trips with its fields; a problem of an
unknown type becomes the error its HTTP status stands for."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from portfolio_core.ports import (
    AccessDeniedError,
    InvalidInputError,
    MaxIterationsExceededError,
    Message,
    NotFoundError,
    PortError,
    PortTimeoutError,
    RateLimitedError,
    UnavailableError,
)
from portfolio_core.ports.llm import ToolCall
from portfolio_core.wire import (
    PROBLEM_TYPE_PREFIX,
    error_from_problem,
    problem_for,
    problem_types,
)


def test_every_problem_type_has_a_unique_uri_under_the_prefix() -> None:
    uris = [t.uri for t in problem_types()]
    assert len(set(uris)) == len(uris)
    assert all(uri.startswith(PROBLEM_TYPE_PREFIX) for uri in uris)
    assert problem_types()[-1].error is PortError  # the catch-all comes last


def test_an_adapters_own_error_travels_as_its_nearest_listed_base() -> None:
    class DiskFullError(UnavailableError):
        pass

    problem = problem_for(DiskFullError("disk full", retry_after=2.5))
    assert problem["type"] == PROBLEM_TYPE_PREFIX + "unavailable"
    assert problem["retry_after"] == 2.5
    back = error_from_problem(problem)
    assert type(back) is UnavailableError
    assert back.retry_after == 2.5


def test_a_transcript_is_written_as_plain_json_and_restored_as_a_tuple() -> None:
    at = datetime(2026, 1, 2, tzinfo=UTC)
    transcript = (
        Message("user", "hi"),
        {"step": 1, "tools": [ToolCall("c1", "search", {"q": "x"})], "at": at},
    )
    exc = MaxIterationsExceededError("too many", transcript=transcript, iterations=3)
    problem = problem_for(exc)
    user, step = problem["transcript"]
    assert (user["role"], user["content"]) == ("user", "hi")
    assert step == {
        "step": 1,
        "tools": [{"id": "c1", "name": "search", "arguments": {"q": "x"}}],
        "at": str(at),
    }
    back = error_from_problem(problem)
    assert isinstance(back, MaxIterationsExceededError)
    assert back.iterations == 3
    assert isinstance(back.transcript, tuple)
    assert back.transcript == (user, step)


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (401, AccessDeniedError),
        (403, AccessDeniedError),
        (404, NotFoundError),
        (408, PortTimeoutError),
        (504, PortTimeoutError),
        (429, RateLimitedError),
        (502, UnavailableError),
        (503, UnavailableError),
        (400, InvalidInputError),
        (418, InvalidInputError),
        (500, PortError),
    ],
)
def test_an_unknown_problem_type_is_mapped_by_its_status(
    status: int, error: type[PortError]
) -> None:
    back = error_from_problem({"type": "about:blank", "status": status, "detail": "d"})
    assert type(back) is error
    assert back.message == "d"


def test_the_mapping_by_status_keeps_retry_after_and_who_was_refused() -> None:
    limited = error_from_problem({"status": 429, "retry_after": 3})
    assert isinstance(limited, RateLimitedError)
    assert limited.retry_after == 3.0
    assert limited.message == "the server refused the call"
    busy = error_from_problem({"title": "Busy", "retry_after": "soon"}, status=503)
    assert isinstance(busy, UnavailableError)
    assert (busy.message, busy.retry_after) == ("Busy", None)
    forbidden = error_from_problem({"status": 403, "port": "Cache"})
    assert isinstance(forbidden, AccessDeniedError)
    assert (forbidden.authenticated, forbidden.port) == (True, "Cache")
    anonymous = error_from_problem({"status": 401})
    assert isinstance(anonymous, AccessDeniedError)
    assert anonymous.authenticated is False
    assert type(error_from_problem({})) is PortError
