"""The OpenFeature provider: our flags through the SDK's client, with reasons, variants and
error codes, and unknown flags answered with the default, never an exception."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from openfeature import api
from openfeature.evaluation_context import EvaluationContext
from openfeature.exception import ErrorCode
from openfeature.flag_evaluation import Reason

from portfolio_core.adapters.memory.config_store import MemoryConfigStore
from portfolio_core.flags import ConfigStoreProvider, Flags
from tests.flags.definitions import NEW_UI


@pytest.fixture
async def flags() -> AsyncIterator[Flags]:
    store = MemoryConfigStore()
    flags = Flags(store)
    await flags.define("new-ui", NEW_UI)
    await flags.define(
        "limits", {"type": "object", "variants": {"v": {"n": 1}}, "default_variant": "v"}
    )
    await flags.define("ratio", {"type": "number", "variants": {"v": 0.5}, "default_variant": "v"})
    await flags.start()
    api.set_provider(ConfigStoreProvider(flags), domain="config-tests")
    yield flags
    await flags.aclose()
    api.clear_providers()


async def test_the_client_gets_values_variants_and_reasons(flags: Flags) -> None:
    client = api.get_client("config-tests")
    details = client.get_boolean_details(
        "new-ui", False, EvaluationContext("u1", {"tenant": "acme"})
    )
    assert (details.value, details.variant, details.reason) == (True, "on", Reason.TARGETING_MATCH)
    details = client.get_boolean_details("new-ui", True, EvaluationContext("u1", {}))
    assert (details.value, details.reason) == (False, Reason.DEFAULT)
    assert client.get_object_value("limits", {}) == {"n": 1}
    assert client.get_float_value("ratio", 0.0) == 0.5


async def test_an_unknown_flag_returns_the_default_with_flag_not_found(flags: Flags) -> None:
    client = api.get_client("config-tests")
    details = client.get_string_details("nope", "fallback")
    assert details.value == "fallback"
    assert details.reason == Reason.ERROR
    assert details.error_code == ErrorCode.FLAG_NOT_FOUND


async def test_changes_reach_the_client_without_restart(flags: Flags) -> None:
    client = api.get_client("config-tests")
    version = await flags.define("new-ui", {**NEW_UI, "default_variant": "on"})
    await flags.wait_for_version(version)
    assert client.get_boolean_value("new-ui", False, EvaluationContext("u1", {})) is True
