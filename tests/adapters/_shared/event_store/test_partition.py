"""The file and memory event stores take their common configuration fields, tenant partition
and subscription endpoints from one place, so the two cannot drift apart."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel, ValidationError

from portfolio_core.adapters._shared.event_store.partition import (
    EventStoreOptions,
    PartitionedEventStore,
)
from portfolio_core.adapters.file.event_store import FileEventStore, FileEventStoreConfig
from portfolio_core.adapters.memory.event_store import MemoryEventStore, MemoryEventStoreConfig
from portfolio_core.ports.event_store import RecordedEvent
from portfolio_core.ports.tenant import TenantRequiredError

CONFIGS: list[tuple[type[BaseModel], dict[str, object]]] = [
    (MemoryEventStoreConfig, {}),
    (FileEventStoreConfig, {"path": "events.log"}),
]


@pytest.mark.parametrize(("model", "required"), CONFIGS)
def test_each_config_has_the_common_fields_with_their_defaults(
    model: type[BaseModel], required: dict[str, object]
) -> None:
    assert issubclass(model, EventStoreOptions)
    common = EventStoreOptions().model_dump()
    assert {k: v for k, v in model(**required).model_dump().items() if k in common} == common


@pytest.mark.parametrize(("model", "required"), CONFIGS)
@pytest.mark.parametrize("field", ["max_event_bytes", "subscription_batch", "poll_interval"])
def test_each_config_refuses_a_non_positive_common_field(
    model: type[BaseModel], required: dict[str, object], field: str
) -> None:
    with pytest.raises(ValidationError, match=field):
        model(**required, **{field: 0})


@pytest.mark.parametrize(("model", "required"), CONFIGS)
def test_each_config_refuses_an_unknown_field(
    model: type[BaseModel], required: dict[str, object]
) -> None:
    with pytest.raises(ValidationError, match="tenant_scope"):
        model(**required, tenant_scope=True)


async def test_both_stores_refuse_a_subscription_without_a_tenant_before_starting_it(
    tmp_path: Path,
) -> None:
    async def handler(event: RecordedEvent) -> None:
        raise AssertionError("never delivered")

    stores: list[MemoryEventStore | FileEventStore] = [
        MemoryEventStore(tenant_scoped=True),
        FileEventStore(tmp_path / "events.log", tenant_scoped=True),
    ]
    for store in stores:
        assert isinstance(store, PartitionedEventStore)
        try:
            with pytest.raises(TenantRequiredError):
                await store.subscribe(handler)
            assert store._subscriptions._subs == {}
        finally:
            await store.aclose()
