"""The error hierarchy: specific, matchable, carrying what a caller needs to react."""

from __future__ import annotations

import pytest

from portfolio_core import ports as p


def test_every_error_is_a_port_error() -> None:
    for name in p.errors.__all__:
        assert issubclass(getattr(p.errors, name), p.PortError), name


def test_wrong_expected_version_is_a_conflict_with_details() -> None:
    err = p.WrongExpectedVersionError("orders-1", 3, 5)
    assert isinstance(err, p.ConflictError)
    assert (err.stream, err.expected, err.actual) == ("orders-1", 3, 5)
    assert "expected 3, actual 5" in str(err)


def test_rate_limited_carries_retry_after_and_is_retryable() -> None:
    err = p.RateLimitedError("slow down", retry_after=1.5)
    assert isinstance(err, p.UnavailableError)
    assert err.retry_after == 1.5
    assert err.retryable


@pytest.mark.parametrize(
    ("error", "builtin"),
    [
        (p.InvalidInputError("bad"), ValueError),
        (p.NotFoundError("gone"), LookupError),
        (p.PortTimeoutError("late", timeout=1.0), TimeoutError),
        (p.UnsupportedError("no"), NotImplementedError),
    ],
)
def test_errors_also_match_the_builtin_a_caller_would_expect(
    error: Exception, builtin: type
) -> None:
    assert isinstance(error, builtin)


def test_only_transient_errors_are_retryable() -> None:
    assert p.UnavailableError("down").retryable
    assert p.PortTimeoutError("late").retryable
    assert not p.InvalidInputError("bad").retryable
    assert not p.WrongExpectedVersionError("s", 1, 2).retryable
    assert not p.QuotaExceededError("spent", tenant="a", resource="tokens").retryable


def test_capability_declaration_is_read_one_way() -> None:
    class Declares:
        capabilities = p.declare(p.CacheCapability.TTL, [p.CacheCapability.SHARED])

    class Silent:
        pass

    assert p.capabilities_of(Declares()) == {"cache.ttl", "cache.shared"}
    assert p.supports(Declares, "cache.ttl")
    assert p.capabilities_of(Silent()) == frozenset()
    with pytest.raises(p.UnsupportedError) as info:
        p.require(Silent(), p.CacheCapability.TTL, "put with ttl")
    assert info.value.capability == "cache.ttl"
