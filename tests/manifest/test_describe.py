"""``describe`` shows each entry's references and every value of its telemetry and protection
sections, each with the place it was written."""

from __future__ import annotations

from pathlib import Path

from portfolio_core.manifest import describe, plan

F = "tests.manifest.fakes"


def test_describe_lists_references_and_boundary_sections_with_their_origins(
    tmp_path: Path,
) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(
        "schema_version: 1\n"
        "adapters:\n"
        f"  a: {{port: cache, adapter: '{F}:MultiCache', uses: {{members: [x]}}}}\n"
        "  x:\n"
        "    port: cache\n"
        f"    adapter: '{F}:DictCache'\n"
        "    telemetry: {metrics: false, cost: {prices: {'*': {per_call: 0.5}}}}\n"
        "    protection:\n"
        "      retry: {attempts: 4}\n"
        "      rate_limit: {limit: 10/second, storage: 'redis://:hunter2@127.0.0.1:6379/0'}\n"
        "      outbox: {methods: [put], path: outbox.db}\n"
    )
    text = describe(plan(path, environ={}))
    lines = [line.strip() for line in text.splitlines()]
    assert "uses members = ['x']" in lines
    assert f"telemetry.metrics = False    # {path}:7:26" in lines
    assert f"protection.retry.attempts = 4    # {path}:9:25" in lines
    assert f"protection.rate_limit.limit = '10/second'    # {path}:10:27" in lines
    assert "protection.rate_limit.storage = '**********'" in text
    assert f"protection.outbox.methods[0] = 'put'    # {path}:11:26" in lines
    assert f"telemetry.cost.prices.*.per_call = 0.5    # {path}:7:65" in lines


def test_describe_masks_the_secrets_of_boundary_sections(tmp_path: Path) -> None:
    path = tmp_path / "app.yaml"
    path.write_text(
        "schema_version: 1\n"
        "adapters:\n"
        f"  x: {{port: cache, adapter: '{F}:DictCache',\n"
        "      protection: {circuit_breaker: {storage: 'redis://:hunter2@127.0.0.1:6379/0'}}}\n"
    )
    text = describe(plan(path, environ={}))
    assert "hunter2" not in text
    assert "protection.circuit_breaker.storage = '**********'" in text
