"""Port errors cross the wire as RFC 9457 problems and come back as the same classes."""

from __future__ import annotations

import httpx
import pytest

from portfolio_core.adapters.remote import RemoteCache
from portfolio_core.ports import Cache
from portfolio_core.ports.errors import PortError
from tests.portal.faulty import ERRORS, RaisingCache
from tests.portal.served import ServedRegistry


@pytest.fixture(scope="module")
def raising(served: ServedRegistry) -> str:
    return served.add(Cache, RaisingCache)


@pytest.mark.parametrize("scheme", ["http", "ws"])
@pytest.mark.parametrize("key", sorted(ERRORS))
async def test_error_comes_back_as_the_same_class_with_its_fields(
    served: ServedRegistry, raising: str, scheme: str, key: str
) -> None:
    sent = ERRORS[key]
    remote = RemoteCache(served.address(raising, scheme))
    try:
        with pytest.raises(PortError) as info:
            await remote.get(key)
    finally:
        await remote.aclose()
    got = info.value
    assert type(got) is type(sent)
    assert str(got) == str(sent)
    assert got.retryable == sent.retryable
    for name in (
        "key",
        "stream",
        "expected",
        "actual",
        "retry_after",
        "tenant",
        "resource",
        "field",
        "timeout",
        "needed",
        "total",
        "capability",
        "authenticated",
    ):
        if hasattr(sent, name):
            assert getattr(got, name) == getattr(sent, name), name


def test_problem_document_is_rfc9457(served: ServedRegistry, raising: str) -> None:
    response = httpx.post(f"{served.base}/v1/entries/{raising}/get", json={"key": "rate-limited"})
    assert response.status_code == 429
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["retry-after"] == "1"
    body = response.json()
    assert body["type"] == "urn:portfolio-core:problem:rate-limited"
    assert body["status"] == 429
    assert body["title"] == "Rate limited"
    assert body["detail"] == "slow down"
    assert body["retry_after"] == 0.75


def test_unexpected_failure_is_an_opaque_500(served: ServedRegistry, raising: str) -> None:
    response = httpx.post(f"{served.base}/v1/entries/{raising}/get", json={"key": "boom"})
    assert response.status_code == 500
    assert RaisingCache.SECRET not in response.text
    assert "Traceback" not in response.text
    assert "RuntimeError" not in response.text
    assert response.json()["type"] == "urn:portfolio-core:problem:internal"


@pytest.mark.parametrize("scheme", ["http", "ws"])
async def test_unexpected_failure_comes_back_as_a_plain_port_error(
    served: ServedRegistry, raising: str, scheme: str
) -> None:
    remote = RemoteCache(served.address(raising, scheme))
    try:
        with pytest.raises(PortError) as info:
            await remote.get("boom")
    finally:
        await remote.aclose()
    assert type(info.value) is PortError
    assert not info.value.retryable
    assert RaisingCache.SECRET not in str(info.value)
