"""A password holding URL delimiters never leaks, whole or in pieces, from any adapter that
takes a URL: not from its errors (built directly or through a manifest), nor its repr."""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from portfolio_core.adapters.http.openai_compatible import OpenAICompatibleLLM
from portfolio_core.adapters.redis.cache import RedisCache
from portfolio_core.adapters.redis.stream import RedisStream
from portfolio_core.adapters.redis.tenant import RedisTenant
from portfolio_core.adapters.sql.cache import PostgresCache
from portfolio_core.manifest import ManifestError, load
from portfolio_core.ports import InvalidInputError, Message, PortError

# every piece a URL parser could cut out of these is at least 3 characters long
PASSWORDS = ["Zr9pw@Qx7", "Zr9pw/Qx7", "Zr9pw#Qx7", "Zr9pw?Qx7", "Zr9:pw@Qx7/#?Ab3"]
PIECES = ["Zr9", "Qx7", "Ab3"]

ADAPTERS: dict[str, tuple[Callable[[str], Any], str]] = {
    "redis cache": (lambda url: RedisCache(url), "redis://user:{pw}@127.0.0.1:6379/0"),
    "redis stream": (lambda url: RedisStream(url), "redis://user:{pw}@127.0.0.1:6379/0"),
    "redis tenant": (lambda url: RedisTenant(url), "redis://user:{pw}@127.0.0.1:6379/0"),
    "postgres cache": (
        lambda url: PostgresCache(url),
        "postgresql://postgres:{pw}@127.0.0.1:5432/test",
    ),
}


def assert_no_piece(text: str) -> None:
    for piece in PIECES:
        assert piece not in text, f"a piece of the password leaked: {text!r}"


@pytest.mark.parametrize("password", PASSWORDS)
@pytest.mark.parametrize("adapter", ADAPTERS)
def test_a_url_with_an_unencoded_password_is_refused_without_quoting_it(
    adapter: str, password: str
) -> None:
    make, template = ADAPTERS[adapter]
    with pytest.raises(InvalidInputError) as caught:
        make(template.format(pw=password))
    assert_no_piece(str(caught.value))
    assert caught.value.__cause__ is None
    assert caught.value.__context__ is None or not any(
        piece in str(caught.value.__context__) for piece in PIECES
    )


@pytest.mark.parametrize("adapter", ADAPTERS)
def test_the_percent_encoded_password_is_accepted_and_not_shown(adapter: str) -> None:
    make, template = ADAPTERS[adapter]
    built = make(template.format(pw="Zr9pw%40Qx7%2FAb3"))
    assert_no_piece(repr(built))


async def test_the_llm_base_url_and_key_never_leak_from_errors_or_repr() -> None:
    llm = OpenAICompatibleLLM(
        "http://user:Zr9pw%40Qx7@127.0.0.1:9/v1", "m", api_key="sk-Zr9pw@Qx7/#?Ab3-long", timeout=2
    )
    try:
        with pytest.raises(PortError) as caught:
            await llm.complete([Message("user", "x")])
    finally:
        await llm.aclose()
    assert_no_piece(str(caught.value) + repr(llm))


MANIFEST = """
schema_version: 1
adapters:
  target:
    port: {port}
    adapter: {adapter}
    config: {{url: "{template}"}}
"""


@pytest.mark.parametrize("password", PASSWORDS)
@pytest.mark.parametrize(
    ("port", "adapter", "template"),
    [
        ("cache", "redis", "redis://user:${secret:env:PW}@127.0.0.1:6379/0"),
        ("cache", "postgres", "postgresql://postgres:${secret:env:PW}@127.0.0.1:5432/test"),
        ("stream", "redis", "redis://user:${secret:env:PW}@127.0.0.1:6379/0"),
        ("tenant", "redis", "redis://user:${secret:env:PW}@127.0.0.1:6379/0"),
    ],
)
def test_through_a_manifest_no_piece_of_the_secret_appears(
    tmp_path: Path, password: str, port: str, adapter: str, template: str
) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(textwrap.dedent(MANIFEST.format(port=port, adapter=adapter, template=template)))
    with pytest.raises(ManifestError) as caught:
        load(path, environ={"PW": password})
    assert "build-failed" in caught.value.kinds
    assert_no_piece(str(caught.value))


def test_the_manifest_scrubs_pieces_an_adapter_quotes(tmp_path: Path) -> None:
    """The general fix: whatever an adapter's constructor says, pieces of a secret in the
    config are masked (this fake quotes the password's host-looking piece)."""
    path = tmp_path / "app.yaml"
    path.write_text(
        textwrap.dedent(
            """
            schema_version: 1
            adapters:
              bad:
                port: cache
                adapter: tests.manifest.fakes:PieceQuotingCache
                config: {password: "x:${secret:env:PW}@host"}
            """
        )
    )
    with pytest.raises(ManifestError) as caught:
        load(path, environ={"PW": "Zr9pw@Qx7/#?Ab3"})
    assert_no_piece(str(caught.value))
