"""Entries addressed by URL and the ``portal:`` section, validated with located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from portfolio_core.adapters.remote import RemoteCache, RemoteEventStore
from portfolio_core.manifest import ManifestError, load, plan
from portfolio_core.portal import PortalConfig
from portfolio_core.ports import Cache
from portfolio_core.registry import Registry


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "m.yaml"
    path.write_text(text)
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(ManifestError) as info:
        load(path)
    return [
        f"{p.origin.line if p.origin else 0}:{p.kind}:{p.message}|{p.hint}"
        for p in info.value.problems
    ]


def test_http_and_ws_addresses_choose_the_remote_adapter(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "schema_version: 1\n"
        "adapters:\n"
        "  events:\n"
        "    port: event_store\n"
        "    address: http://127.0.0.1:8123/events\n"
        "    config: {timeout: 2.5, api_key: k}\n"
        "  cache:\n"
        "    port: cache\n"
        "    address: wss://portal.internal:443/api/responses\n",
    )
    wiring = load(path)
    events = wiring.entries["events"].adapter
    cache = wiring.entries["cache"].adapter
    assert isinstance(events, RemoteEventStore)
    assert isinstance(cache, RemoteCache)
    assert str(events.address) == "http://127.0.0.1:8123/events"
    assert events._timeout == 2.5
    assert cache.address.base == "https://portal.internal:443/api"
    assert cache.address.websocket
    assert wiring.entries["events"].plan.adapter == "remote"
    assert "k" not in repr(events)


@pytest.mark.parametrize(
    ("address", "line", "kind", "needle"),
    [
        ("htp://127.0.0.1:8000/events", 5, "unknown-scheme", "did you mean 'http'?"),
        ("wss//127.0.0.1/events", 5, "unknown-scheme", "schemes: local://"),
        ("redis://127.0.0.1/events", 5, "unknown-scheme", "schemes:"),
        ("local://cache/other", 5, "invalid-address", "local://event_store/<entry>"),
        ("http://127.0.0.1:8000/", 6, "invalid-config", "must end with an entry name"),
    ],
)
def test_a_bad_address_is_a_located_problem(
    tmp_path: Path, address: str, line: int, kind: str, needle: str
) -> None:
    path = write(
        tmp_path,
        f"schema_version: 1\nadapters:\n  events:\n    port: event_store\n    address: {address}\n",
    )
    found = problems(path)
    assert len(found) == 1, found
    got_line, got_kind, text = found[0].split(":", 2)
    assert got_kind == kind
    assert needle in text, text
    if kind != "invalid-config":
        assert int(got_line) == line


def test_local_address_is_another_name_for_an_entry(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "schema_version: 1\n"
        "adapters:\n"
        "  responses: {port: cache, adapter: memory, default: true}\n"
        "  cached_answers: {port: cache, address: 'local://cache/responses'}\n",
    )
    registry = Registry.from_wiring(load(path))
    assert registry.get(Cache, "cached_answers") is registry.get(Cache, "responses")
    assert registry.get(Cache) is registry.get(Cache, "responses")
    assert registry.metadata("cached_answers").adapter_type == "local://cache/responses"


def test_local_address_problems(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "schema_version: 1\n"
        "adapters:\n"
        "  responses: {port: cache, adapter: memory}\n"
        "  events: {port: event_store, adapter: memory}\n"
        "  a: {port: cache, address: 'local://cache/respones'}\n"
        "  b: {port: cache, address: 'local://cache/events'}\n"
        "  c: {port: cache, adapter: memory, address: 'local://cache/responses'}\n"
        "  d: {port: cache, address: 'local://cache/responses', config: {max_entries: 3}}\n",
    )
    found = problems(path)
    assert any(f.startswith("5:unknown-entry") and "did you mean 'responses'" in f for f in found)
    assert any(f.startswith("6:invalid-address") and "is a event_store entry" in f for f in found)
    assert any(f.startswith("7:conflicting-keys") for f in found)
    assert any(f.startswith("8:invalid-address") and "no config" in f for f in found)


def test_portal_section_is_validated_with_locations(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "schema_version: 1\n"
        "adapters:\n"
        "  c: {port: cache, adapter: memory}\n"
        "portal:\n"
        "  port: eighty\n"
        "  auth:\n"
        "    keys:\n"
        "      - {name: a, secret: short}\n"
        "      - {name: b, secret: long-enough-secret-value, rate_limit: 'ten per sec'}\n"
        "  limits: {max_body_bytes: 10}\n"
        "  websockets: {}\n",
    )
    found = problems(path)
    assert any(f.startswith("5:invalid-config") for f in found), found
    assert any(f.startswith("8:invalid-config") and "at least 16" in f for f in found), found
    assert any(f.startswith("9:invalid-config") and "not a rate limit" in f for f in found), found
    assert any(f.startswith("10:invalid-config") for f in found), found
    assert any(f.startswith("11:unknown-key") for f in found), found
    assert "short" not in " ".join(found)


def test_portal_section_reaches_the_plan(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "schema_version: 1\n"
        "adapters:\n"
        "  c: {port: cache, adapter: memory}\n"
        "portal:\n"
        "  port: 9123\n"
        "  expose: [c]\n",
    )
    section = plan(path).sections["portal"]
    assert isinstance(section, PortalConfig)
    assert (section.port, section.expose) == (9123, ["c"])


def test_misspelt_section_gets_a_hint(tmp_path: Path) -> None:
    path = write(tmp_path, "schema_version: 1\nadapters: {}\nportl: {port: 1}\n")
    found = problems(path)
    assert found
    assert "did you mean 'portal'" in found[0], found


def test_remote_entry_may_not_be_of_a_port_without_remote_adapter(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "schema_version: 1\n"
        "adapters:\n"
        "  tok: {port: tokenizer, address: 'http://127.0.0.1:1/tok'}\n",
    )
    found = problems(path)
    assert found
    assert found[0].startswith("3:invalid-address"), found
    assert "synchronous" in found[0]
