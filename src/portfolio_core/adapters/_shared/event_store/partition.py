"""What an event store adapter class shares beyond its storage: the configuration fields
every store has (`EventStoreOptions`), and the tenant partition with the subscriptions that
read through the store's own ``query`` (`PartitionedEventStore`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod

from pydantic import BaseModel, ConfigDict, Field

from portfolio_core.adapters._shared.event_store.subscriptions import SubscriptionSet, Wakeup
from portfolio_core.adapters._shared.event_store.validation import (
    DEFAULT_MAX_EVENT_BYTES,
    validate_subscribe,
)
from portfolio_core.ports.event_store import (
    EventHandler,
    EventQuery,
    OnHandlerError,
    RecordedEvent,
    Subscription,
)
from portfolio_core.ports.tenant import require_tenant

__all__ = ["EventStoreOptions", "PartitionedEventStore"]


class EventStoreOptions(BaseModel):
    """The configuration fields of every event store: a store's own config model adds its
    storage's fields to these. Unknown fields are refused (``extra="forbid"``)."""

    model_config = ConfigDict(extra="forbid")

    tenant_scoped: bool = False
    max_event_bytes: int = Field(DEFAULT_MAX_EVENT_BYTES, gt=0)
    subscription_batch: int = Field(256, gt=0)
    poll_interval: float = Field(1.0, gt=0)


class PartitionedEventStore(ABC):
    """The tenant partition and the subscriptions of an event store.

    A store is partitioned by tenant when ``tenant_scoped``: `_tenant` is then the current
    tenant's id and raises `TenantRequiredError` outside a tenant scope; it is
    ``""`` (the whole store) otherwise. Subscriptions poll the store's own `query` after
    their checkpoint and are woken by `_wakeup`, which the store notifies after each
    append; `subscribe` checks its arguments and the tenant before it starts anything, so a
    bad call fails here and not in the background task.
    """

    tenant_scoped: bool
    max_event_bytes: int

    def __init__(
        self,
        *,
        tenant_scoped: bool,
        max_event_bytes: int,
        subscription_batch: int,
        poll_interval: float,
    ) -> None:
        self.tenant_scoped = tenant_scoped
        self.max_event_bytes = max_event_bytes
        self._wakeup = Wakeup()
        self._subscriptions = SubscriptionSet(
            self._wakeup, poll_interval=poll_interval, batch_size=subscription_batch
        )

    def _tenant(self) -> str:
        return require_tenant().tenant_id if self.tenant_scoped else ""

    @abstractmethod
    async def query(self, query: EventQuery) -> list[RecordedEvent]:
        """Events matching every filter of ``query``, in position order."""

    async def subscribe(
        self,
        handler: EventHandler,
        *,
        stream: str | None = None,
        from_position: int = 1,
        filter: EventQuery | None = None,
        on_error: OnHandlerError = OnHandlerError.STOP,
    ) -> Subscription:
        validate_subscribe(stream, filter, from_position)
        self._tenant()  # fail closed now, not in the background task
        return self._subscriptions.open(
            self.query,
            handler,
            stream=stream,
            from_position=from_position,
            filter=filter,
            on_error=on_error,
        )

    async def unsubscribe(self, subscription: Subscription) -> None:
        await self._subscriptions.close(subscription)
