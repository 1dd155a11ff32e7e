"""Secrets resolve through backends and never appear in reprs, errors, describe or logs."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest
from pydantic import SecretStr

from portfolio_core.manifest import ManifestError, describe, plan
from portfolio_core.registry import Registry

Write = Callable[[str, str], Path]
F = "tests.manifest.fakes"
SECRET = "s3cr3t-p4ssw0rd-value"


class VaultSecrets:
    def resolve(self, ref: str, *, base_dir: Path) -> str:
        if ref == "db":
            return SECRET
        raise LookupError(f"no secret {ref}")


def manifest(write: Write, reference: str) -> Path:
    return write(
        "app.yaml",
        f"""
        schema_version: 1
        adapters:
          a:
            port: cache
            adapter: {F}:DictCache
            config: {{password: "{reference}"}}
        """,
    )


def test_env_secret_is_a_secret_str_redacted_everywhere(
    write: Write, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    path = manifest(write, "${secret:env:DB_PASSWORD}")
    planned = plan(path, environ={"DB_PASSWORD": SECRET})
    config = planned.entries["a"].config
    assert isinstance(config.password, SecretStr)  # type: ignore[union-attr]
    assert config.password.get_secret_value() == SECRET  # type: ignore[union-attr]
    assert SECRET not in repr(config)
    assert SECRET not in str(planned.composed.tree)
    described = describe(planned)
    assert SECRET not in described
    assert "config.password = '**********'" in described
    assert "(secret env:DB_PASSWORD)" in described
    logging.getLogger("test").warning("config: %s %r", config, planned.entries["a"])
    assert SECRET not in caplog.text


def test_file_secret_relative_to_the_manifest(write: Write) -> None:
    write("secrets/db", SECRET + "\n")
    path = manifest(write, "${secret:file:secrets/db}")
    config = plan(path, environ={}).entries["a"].config
    assert config.password.get_secret_value() == SECRET  # type: ignore[union-attr]


def test_secret_embedded_in_a_string_makes_the_whole_string_secret(write: Write) -> None:
    path = write(
        "app.yaml",
        f"schema_version: 1\nadapters:\n  a: {{port: cache, adapter: '{F}:DictCache', "
        "config: {namespace: 'postgresql://u:${secret:env:PW}@h/db'}}\n",
    )
    with pytest.raises(ManifestError) as info:
        plan(path, environ={"PW": SECRET})
    text = str(info.value)
    assert SECRET not in text
    assert "type the field pydantic.SecretStr" in text
    assert info.value.problems[0].line == 3


def test_plugin_backend_by_entry_point(write: Write, entry_points: Callable[..., None]) -> None:
    entry_points("portfolio_core.secrets", "vault", f"{__name__}:VaultSecrets")
    path = manifest(write, "${secret:vault:db}")
    config = plan(path, environ={}).entries["a"].config
    assert config.password.get_secret_value() == SECRET  # type: ignore[union-attr]


def test_missing_secret_and_unknown_backend_are_located(
    write: Write, entry_points: Callable[..., None]
) -> None:
    entry_points("portfolio_core.secrets", "vault", f"{__name__}:VaultSecrets")
    path = manifest(write, "${secret:vault:nope}")
    with pytest.raises(ManifestError) as info:
        plan(path, environ={})
    assert info.value.kinds == ["missing-secret"]
    assert info.value.problems[0].line == 6
    path = manifest(write, "${secret:vaul:db}")
    with pytest.raises(ManifestError) as info:
        plan(path, environ={})
    assert "did you mean 'vault'?" in str(info.value)
    path = manifest(write, "${secret:env:UNSET}")
    with pytest.raises(ManifestError, match="secret env:UNSET not found"):
        plan(path, environ={})


def test_secret_in_a_failing_ping_is_redacted(write: Write) -> None:
    import asyncio

    path = manifest(write, "${secret:env:DB_PASSWORD}")
    registry = Registry.from_manifest(path, environ={"DB_PASSWORD": SECRET})
    assert SECRET not in repr(registry.metadata("a"))
    assert SECRET not in repr(registry._item("a").instance)

    async def bad_ping() -> None:
        raise RuntimeError(f"auth failed for {SECRET}")

    instance = registry._item("a").instance
    instance.ping = bad_ping  # type: ignore[attr-defined]
    report = asyncio.run(registry.health())
    assert not report.healthy
    assert SECRET not in report.entries["a"].detail
    asyncio.run(registry.aclose())


def test_secret_in_telemetry_attributes_is_redacted(write: Write) -> None:
    """The boundary proxy's attributes (port, adapter, method, name) never carry config
    values; a secret in the config stays a SecretStr inside the adapter."""
    path = write(
        "app.yaml",
        f"""
        schema_version: 1
        adapters:
          a:
            port: cache
            adapter: {F}:DictCache
            config: {{password: "${{secret:env:PW}}"}}
            telemetry: {{metrics: true}}
        """,
    )
    import asyncio

    registry = Registry.from_manifest(path, environ={"PW": SECRET})
    proxy = registry._item("a").adapter
    handle = proxy.boundary  # type: ignore[attr-defined]
    assert SECRET not in repr(handle)
    assert SECRET not in repr(proxy)
    for stats in proxy.boundary_stats.values():  # type: ignore[attr-defined]
        assert SECRET not in repr(stats.labels)
        assert SECRET not in stats.adapter
    asyncio.run(registry.aclose())


def test_a_plugin_backend_that_fails_to_import_is_a_located_problem(
    write: Write, entry_points: Callable[..., None]
) -> None:
    entry_points("portfolio_core.secrets", "vault", "tests.manifest.broken_module:X")
    path = manifest(write, "${secret:vault:db}")
    with pytest.raises(ManifestError) as info:
        plan(path, environ={})
    assert info.value.kinds == ["secrets-backend-failed"]
    assert "a_module_that_is_not_installed" in str(info.value)
    assert info.value.problems[0].line == 6
