"""Feature flags over a ConfigStore: typed values, targeting, stable rollouts, reasons and
variants, changes without restart, errors that never reach application code, telemetry."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from portfolio_core.adapters.memory.config_store import MemoryConfigStore
from portfolio_core.flags import (
    DEFAULT,
    DISABLED,
    ERROR,
    SPLIT,
    TARGETING_MATCH,
    FlagContext,
    FlagDefinition,
    Flags,
)
from portfolio_core.ports import InvalidInputError, tenant_scope
from tests.flags.definitions import NEW_UI


@pytest.fixture
async def flags() -> AsyncIterator[Flags]:
    store = MemoryConfigStore(schemas={"flags.": "portfolio_core.flags:FlagDefinition"})
    flags = Flags(store)
    await flags.define("new-ui", NEW_UI)
    await flags.define(
        "theme", {"type": "string", "variants": {"a": "dark", "b": "light"}, "default_variant": "b"}
    )
    await flags.define(
        "limit",
        {
            "type": "number",
            "variants": {"low": 10, "high": 2.5},
            "default_variant": "low",
            "rules": [{"when": {"attributes": {"beta": [True]}}, "variant": "high"}],
        },
    )
    await flags.define(
        "layout", {"type": "object", "variants": {"x": {"cols": [1, 2]}}, "default_variant": "x"}
    )
    await flags.start()
    yield flags
    await flags.aclose()
    await store.aclose()


async def test_every_type_is_served_with_its_variant_and_reason(flags: Flags) -> None:
    assert flags.boolean("new-ui", True) is False
    assert flags.string("theme", "x") == "light"
    assert flags.number("limit", 0) == 10
    assert flags.number("limit", 0, FlagContext(attributes={"beta": True})) == 2.5
    layout = flags.object("layout", {})
    assert layout == {"cols": [1, 2]}
    layout["cols"].append(3)
    assert flags.object("layout", {}) == {"cols": [1, 2]}, "a caller changed the stored flag"
    result = flags.evaluate("new-ui", True, FlagContext(tenant="acme"))
    assert (result.value, result.variant, result.reason) == (True, "on", TARGETING_MATCH)
    result = flags.evaluate("new-ui", True, FlagContext(tenant="other"))
    assert (result.value, result.variant, result.reason) == (False, "off", DEFAULT)


async def test_attribute_one_and_true_are_different_json_values(flags: Flags) -> None:
    assert flags.number("limit", 0, FlagContext(attributes={"beta": 1})) == 10


async def test_tenant_rules_read_the_current_tenant(flags: Flags) -> None:
    with tenant_scope("acme"):
        assert flags.boolean("new-ui", False) is True
    assert flags.boolean("new-ui", False) is False


async def test_rollouts_are_stable_and_only_grow(flags: Flags) -> None:
    users = [f"user-{n}" for n in range(2000)]

    def served(percentage: float) -> set[str]:
        return {
            u
            for u in users
            if flags.evaluate("new-ui", False, FlagContext(u, attributes={"plan": "pro"})).reason
            == SPLIT
        }

    at_50 = served(50)
    assert 850 < len(at_50) < 1150, len(at_50)
    assert served(50) == at_50, "the same users must get the same answer"
    rules = [dict(r) for r in NEW_UI["rules"]]  # type: ignore[call-overload]
    rules[1]["percentage"] = 80
    version = await flags.define("new-ui", {**NEW_UI, "rules": rules})
    await flags.wait_for_version(version)
    at_80 = served(80)
    assert at_50 < at_80, "a user who was in left the rollout when it grew"
    assert 1450 < len(at_80) < 1750, len(at_80)
    no_key = flags.evaluate("new-ui", False, FlagContext(attributes={"plan": "pro"}))
    assert no_key.reason == DEFAULT, "a rollout needs a targeting key"


async def test_changes_are_seen_without_restart(flags: Flags) -> None:
    store = flags.store
    version = await store.apply(
        {"flags.theme": {"type": "string", "variants": {"a": "dark"}, "default_variant": "a"}}
    )
    await flags.wait_for_version(version)
    assert flags.string("theme", "x") == "dark"
    version = await store.apply({"flags.new-ui": {**NEW_UI, "enabled": False}})
    await flags.wait_for_version(version)
    result = flags.evaluate("new-ui", True, FlagContext(tenant="acme"))
    assert (result.value, result.variant, result.reason) == (True, None, DISABLED)
    await store.rollback(version - 1)
    await flags.wait_for_version(version + 1)
    assert flags.boolean("new-ui", False, FlagContext(tenant="acme")) is True


async def test_unknown_flags_and_wrong_types_return_the_default_never_raise(flags: Flags) -> None:
    result = flags.evaluate("nope", "fallback")
    assert (result.value, result.variant, result.reason) == ("fallback", None, ERROR)
    assert result.error_code == "FLAG_NOT_FOUND"
    assert flags.boolean("nope", True) is True
    mismatch = flags.evaluate("theme", 3, kind="number")
    assert (mismatch.value, mismatch.reason, mismatch.error_code) == (3, ERROR, "TYPE_MISMATCH")
    assert flags.number("theme", 7) == 7


@pytest.mark.parametrize(
    ("definition", "reason"),
    [
        ({**NEW_UI, "rules": [{"variant": "maybe"}]}, "not one of"),
        ({**NEW_UI, "default_variant": "gone"}, "default_variant"),
        ({**NEW_UI, "rules": [{"variant": "on", "percentage": 150}]}, "percentage"),
        ({**NEW_UI, "rules": [{"variant": "on", "if": {}}]}, "if"),
        ({**NEW_UI, "variants": {"on": "yes", "off": False}}, "not a boolean"),
        ({"type": "number", "variants": {"t": True}, "default_variant": "t"}, "not a number"),
    ],
)
async def test_a_malformed_flag_is_refused_at_apply_time(
    flags: Flags, definition: dict[str, Any], reason: str
) -> None:
    before = await flags.store.current_version()
    with pytest.raises(InvalidInputError, match=reason) as info:
        await flags.define("new-ui", definition)
    assert info.value.field == "flags.new-ui"
    with pytest.raises(InvalidInputError, match=reason) as info:
        await flags.store.apply({"flags.new-ui": definition})  # the store's schema
    assert info.value.field == "flags.new-ui"
    assert await flags.store.current_version() == before
    assert flags.boolean("new-ui", False, FlagContext(tenant="acme")) is True


async def test_a_malformed_flag_in_a_store_without_the_schema_is_a_parse_error() -> None:
    store = MemoryConfigStore()
    await store.apply({"flags.broken": {"type": "boolean", "variants": {}}})
    flags = Flags(store)
    await flags.start()
    try:
        result = flags.evaluate("broken", True)
        assert (result.value, result.reason, result.error_code) == (True, ERROR, "PARSE_ERROR")
        assert "variants" in (result.error_message or "")
    finally:
        await flags.aclose()


async def test_evaluations_are_counted_by_flag_variant_and_reason_only() -> None:
    reader = InMemoryMetricReader()
    store = MemoryConfigStore()
    flags = Flags(store, meter_provider=MeterProvider(metric_readers=[reader]))
    await flags.define("new-ui", NEW_UI)
    await flags.start()
    try:
        for n in range(5):
            flags.boolean("new-ui", False, FlagContext(f"user-{n}", tenant="acme"))
        flags.boolean("new-ui", False, FlagContext("user-9", tenant="other"))
        flags.boolean("missing", False)
        assert flags.evaluation_counts() == {
            ("new-ui", "on", TARGETING_MATCH): 5,
            ("new-ui", "off", DEFAULT): 1,
            ("missing", "", ERROR): 1,
        }
        data = reader.get_metrics_data()
        points = [
            (dict(p.attributes or {}), p.value)
            for rm in data.resource_metrics
            for sm in rm.scope_metrics
            for m in sm.metrics
            if m.name == "portfolio_core.flags.evaluations"
            for p in m.data.data_points  # type: ignore[union-attr]
        ]
        assert ({"flag": "new-ui", "variant": "on", "reason": TARGETING_MATCH}, 5) in points
        labels = {k for attrs, _ in points for k in attrs}
        assert labels == {"flag", "variant", "reason"}, "no targeting key or tenant as a label"
        version = await flags.define("new-ui", {**NEW_UI, "enabled": False})
        await flags.wait_for_version(version)
        assert flags.evaluation_counts()[("new-ui", "on", TARGETING_MATCH)] == 5, (
            "counts were lost when the flag changed"
        )
    finally:
        await flags.aclose()


def test_the_definition_model_is_the_schema_the_store_uses() -> None:
    assert FlagDefinition.model_validate(NEW_UI).rules[1].percentage == 50


async def test_two_processes_on_a_shared_store_share_flags(tmp_path: Any) -> None:
    from portfolio_core.adapters.sql.config_store import SQLiteConfigStore

    a = SQLiteConfigStore(tmp_path / "f.db", poll_interval=0.05)
    b = SQLiteConfigStore(tmp_path / "f.db", poll_interval=0.05)
    reader = Flags(b)
    await reader.start()
    try:
        version = await Flags(a).define("new-ui", NEW_UI)
        await reader.wait_for_version(version)
        assert reader.boolean("new-ui", False, FlagContext(tenant="acme")) is True
    finally:
        await reader.aclose()
        await a.aclose()
        await b.aclose()
    await asyncio.sleep(0)


async def test_an_unhashable_attribute_matches_nothing_and_raises_nothing(flags: Flags) -> None:
    result = flags.evaluate("new-ui", False, FlagContext("u1", attributes={"plan": ["pro"]}))
    assert (result.value, result.reason) == (False, DEFAULT)
