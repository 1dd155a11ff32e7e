"""Credentials, scopes, rate limits, CORS and TLS."""

from __future__ import annotations

import asyncio
import hmac
import ssl
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import trustme
from pydantic import SecretStr

from portfolio_core.adapters.memory.cache import MemoryCache
from portfolio_core.adapters.remote import RemoteCache
from portfolio_core.portal import ApiKey, AuthConfig, CorsConfig, PortalConfig, Scope, TlsConfig
from portfolio_core.portal._security import Security
from portfolio_core.ports import Cache
from portfolio_core.ports.errors import AccessDeniedError, RateLimitedError, UnavailableError
from tests.portal.served import ServedRegistry

ADMIN = "admin-key-0123456789abcdef"
READER = "reader-key-0123456789abcdef"
NARROW = "narrow-key-0123456789abcdef"
LIMITED = "limited-key-0123456789abcdef"

AUTH = AuthConfig(
    keys=[
        ApiKey(name="admin", secret=SecretStr(ADMIN)),
        ApiKey(name="reader", secret=SecretStr(READER), scopes=[Scope(access="read")]),
        ApiKey(
            name="narrow",
            secret=SecretStr(NARROW),
            scopes=[Scope(entries=["notes"], methods=["get", "put"])],
        ),
        ApiKey(name="limited", secret=SecretStr(LIMITED), rate_limit="3/minute"),
    ]
)


@pytest.fixture(scope="module")
def secured() -> Iterator[ServedRegistry]:
    server = ServedRegistry(
        PortalConfig(auth=AUTH, cors=CorsConfig(allow_origins=["https://app.example"]))
    )
    server.add(Cache, MemoryCache, name="notes")
    server.add(Cache, MemoryCache, name="secrets")
    yield server
    server.stop()


def call(
    server: ServedRegistry, path: str, key: str | None, payload: object, header: str = "bearer"
) -> httpx.Response:
    headers = {}
    if key is not None:
        headers = {"authorization": f"Bearer {key}"} if header == "bearer" else {"x-api-key": key}
    return httpx.post(f"{server.base}/v1/entries/{path}", json=payload, headers=headers)


@pytest.mark.parametrize("path", ["notes/get", "no-such-entry/get"])
def test_missing_or_invalid_credentials_are_401_before_anything_else(
    secured: ServedRegistry, path: str
) -> None:
    for key in (None, "not-a-key-0123456789abcdef", "x"):
        response = call(secured, path, key, {"key": "k"})
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"].startswith("Bearer")
        assert response.json()["type"] == "urn:portfolio-core:problem:unauthenticated"
    assert httpx.get(f"{secured.base}/v1/entries").status_code == 401


def test_both_header_forms_are_accepted(secured: ServedRegistry) -> None:
    assert call(secured, "notes/get", ADMIN, {"key": "k"}).status_code == 200
    assert call(secured, "notes/get", ADMIN, {"key": "k"}, header="x-api-key").status_code == 200


def test_scopes_refuse_with_403_without_revealing_which_entries_exist(
    secured: ServedRegistry,
) -> None:
    existing = call(secured, "secrets/get", NARROW, {"key": "k"})
    missing = call(secured, "no-such-entry/get", NARROW, {"key": "k"})
    assert existing.status_code == missing.status_code == 403
    assert existing.json() == missing.json()
    assert call(secured, "notes/delete", NARROW, {"key": "k"}).status_code == 403
    assert call(secured, "notes/put", NARROW, {"key": "k", "value": 1}).status_code == 200
    listed = httpx.get(f"{secured.base}/v1/entries", headers={"authorization": f"Bearer {NARROW}"})
    assert [e["entry"] for e in listed.json()] == ["notes"]
    assert call(secured, "no-such-entry/get", ADMIN, {"key": "k"}).status_code == 404


def test_read_only_keys_cannot_write(secured: ServedRegistry) -> None:
    assert call(secured, "notes/get", READER, {"key": "k"}).status_code == 200
    assert call(secured, "notes/get_many", READER, {"keys": ["k"]}).status_code == 200
    for method, payload in [
        ("put", {"key": "k", "value": 2}),
        ("delete", {"key": "k"}),
        ("clear", {}),
        ("put_many", {"items": {"k": 3}}),
    ]:
        response = call(secured, f"notes/{method}", READER, payload)
        assert response.status_code == 403, method
        assert response.json()["type"] == "urn:portfolio-core:problem:forbidden"


async def test_remote_adapter_gets_access_denied(secured: ServedRegistry) -> None:
    for scheme in ("http", "ws"):
        anonymous = RemoteCache(secured.address("notes", scheme))
        reader = RemoteCache(secured.address("notes", scheme), api_key=READER)
        try:
            with pytest.raises(AccessDeniedError) as info:
                await anonymous.get("k")
            assert info.value.authenticated is False
            await reader.get("k")
            with pytest.raises(AccessDeniedError) as info:
                await reader.put("k", 1)
            assert info.value.authenticated is True
            assert not info.value.retryable
            assert READER not in repr(reader)
        finally:
            await anonymous.aclose()
            await reader.aclose()


async def test_per_key_rate_limit_through_the_boundary_limiter(secured: ServedRegistry) -> None:
    for _ in range(3):
        assert call(secured, "notes/get", LIMITED, {"key": "k"}).status_code == 200
    refused = call(secured, "notes/get", LIMITED, {"key": "k"})
    assert refused.status_code == 429
    assert int(refused.headers["retry-after"]) >= 1
    remote = RemoteCache(secured.address("notes"), api_key=LIMITED)
    try:
        with pytest.raises(RateLimitedError) as info:
            await remote.get("k")
        assert info.value.retry_after is not None
        assert info.value.retry_after > 0
    finally:
        await remote.aclose()
    assert call(secured, "notes/get", ADMIN, {"key": "k"}).status_code == 200, "shared budget"


def test_keys_are_compared_in_constant_time_against_every_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls: list[tuple[bytes, bytes]] = []
    real = hmac.compare_digest

    def counting(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    monkeypatch.setattr(hmac, "compare_digest", counting)
    security = Security(AUTH)
    assert security.authenticate(b"Bearer " + ADMIN.encode(), None).name == "admin"
    assert len(calls) == len(AUTH.keys), "stopped comparing at the first match"
    calls.clear()
    with pytest.raises(AccessDeniedError):
        security.authenticate(b"Bearer wrong-key-0123456789abcdef", None)
    assert len(calls) == len(AUTH.keys)


def test_secrets_never_appear_in_config_reprs() -> None:
    text = repr(AUTH) + str(AUTH.model_dump()) + repr(PortalConfig(auth=AUTH))
    for secret in (ADMIN, READER, NARROW, LIMITED):
        assert secret not in text


def test_cors_is_off_by_default_and_configurable(
    secured: ServedRegistry, served: ServedRegistry
) -> None:
    preflight = {
        "origin": "https://app.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
    }
    url = "/v1/entries/notes/get"
    off = httpx.options(f"{served.base}{url}", headers=preflight)
    assert "access-control-allow-origin" not in off.headers
    on = httpx.options(f"{secured.base}{url}", headers=preflight)
    assert on.status_code == 200
    assert on.headers["access-control-allow-origin"] == "https://app.example"
    other = httpx.options(f"{secured.base}{url}", headers={**preflight, "origin": "https://evil"})
    assert other.headers.get("access-control-allow-origin") != "https://evil"


def test_anonymous_portal_refuses_to_listen_beyond_loopback() -> None:
    with pytest.raises(ValueError, match="allow_anonymous"):
        PortalConfig(host="0.0.0.0")
    PortalConfig(host="0.0.0.0", auth=AuthConfig(allow_anonymous=True))
    PortalConfig(host="0.0.0.0", auth=AUTH)


async def test_tls_with_a_certificate_made_in_the_test(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    ca.cert_pem.write_to_path(str(ca_file))
    config = PortalConfig(tls=TlsConfig(certfile=cert_file, keyfile=key_file))
    from portfolio_core.portal._server import uvicorn_options

    options = uvicorn_options(config)
    server = ServedRegistry(
        config,
        ssl={k: v for k, v in options.items() if k.startswith("ssl_")},
    )
    try:
        name = server.add(Cache, MemoryCache)
        assert server.base.startswith("https://")
        for scheme in ("https", "wss"):
            trusted = RemoteCache(server.address(name, scheme), ca_file=str(ca_file))
            untrusted = RemoteCache(server.address(name, scheme))
            try:
                await trusted.put("k", scheme)
                assert await trusted.get("k") == scheme
                with pytest.raises(UnavailableError):
                    await untrusted.get("k")
            finally:
                await trusted.aclose()
                await untrusted.aclose()
        context = ssl.create_default_context(cafile=str(ca_file))
        plain = await asyncio.to_thread(
            httpx.post, f"{server.base}/v1/entries/{name}/get", json={"key": "k"}, verify=context
        )
        assert plain.json() == "wss"
    finally:
        server.stop()
