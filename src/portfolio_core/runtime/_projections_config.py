"""The ``projections:`` section of a manifest, validated when the manifest loads.

```yaml
projections:
  orders:                                  # the projection's name (its checkpoint's key)
    handler: shop.read_models:apply_orders  # async def apply_orders(events, tx) -> None
    events: events          # the EventStore entry (default: the default one)
    store: checkpoints      # the ProjectionStore entry (default: the default one)
    types: [OrderPlaced, OrderShipped]      # only these event types (default: all)
    stream_prefix: "order-"                 # only streams starting with this (default: all)
    max_healthy_lag: 1000   # health is unhealthy beyond this many positions behind the log
```
"""

from __future__ import annotations

import re
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, RootModel, field_validator, model_validator

from portfolio_core.ports.projection_store import MAX_PROJECTION_NAME

__all__ = ["ProjectionConfig", "ProjectionsConfig"]

_REFERENCE = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class ProjectionConfig(BaseModel):
    """One projection: its handler (``package.module:function``, an
    ``async def handler(events, tx)``), the entries it reads and writes, which events it
    selects and how its runner behaves (the keywords of
    [ProjectionRunner][portfolio_core.services.projections.ProjectionRunner])."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    handler: str
    events: str | None = Field(None, min_length=1)
    store: str | None = Field(None, min_length=1)
    types: list[str] = Field(default_factory=list)
    stream_prefix: str = ""
    batch_size: int = Field(500, ge=1)
    lease_ttl: float = Field(10.0, gt=0)
    idle_interval: float = Field(0.2, gt=0)
    on_error: Literal["stop", "retry"] = "stop"
    retries: int = Field(3, ge=0)
    retry_backoff: float = Field(0.05, ge=0)
    max_healthy_lag: int | None = Field(None, ge=0)

    @field_validator("handler")
    @classmethod
    def _reference(cls, value: str) -> str:
        if not _REFERENCE.match(value):
            raise ValueError(f"{value!r} is not 'package.module:function'")
        return value

    @model_validator(mode="after")
    def _intervals(self) -> Self:
        if self.idle_interval >= self.lease_ttl / 2:
            raise ValueError(
                f"idle_interval ({self.idle_interval}) must be under half of lease_ttl "
                f"({self.lease_ttl}): a runner renews its lease between idle polls"
            )
        return self


class ProjectionsConfig(RootModel[dict[str, ProjectionConfig]]):
    """Projection name -> [ProjectionConfig][portfolio_core.runtime.ProjectionConfig]."""

    model_config = ConfigDict(frozen=True)

    @field_validator("root")
    @classmethod
    def _names(cls, value: dict[str, ProjectionConfig]) -> dict[str, ProjectionConfig]:
        for name in value:
            if not name or len(name) > MAX_PROJECTION_NAME or "\x00" in name:
                raise ValueError(
                    f"projection name {name[:40]!r} must be 1-{MAX_PROJECTION_NAME} characters "
                    "without U+0000"
                )
        return value
