"""The ``worker:`` section of a manifest, validated when the manifest loads."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

__all__ = ["PeriodicConfig", "WorkerConfig"]

_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")


class PeriodicConfig(BaseModel):
    """One periodic job: ``task`` enqueued at each tick of ``cron`` (UTC)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    task: str = Field(min_length=1, max_length=255)
    cron: str = Field(min_length=1)
    payload: Any = None
    queue: str | None = Field(None, min_length=1, max_length=128)
    max_attempts: int = Field(3, ge=1)

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str) -> str:
        try:
            from croniter import croniter
        except ImportError:  # checked again when the worker starts
            return value
        if not croniter.is_valid(value):
            raise ValueError(f"{value!r} is not a cron expression")
        return value


class WorkerConfig(BaseModel):
    """``imports``: modules whose ``@task`` handlers register themselves; ``handlers``: task
    name -> ``package.module:function``; ``periodic``: cron-scheduled jobs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    imports: list[str] = Field(default_factory=list)
    handlers: dict[str, str] = Field(default_factory=dict)
    periodic: list[PeriodicConfig] = Field(default_factory=list)

    @field_validator("handlers")
    @classmethod
    def _paths(cls, value: dict[str, str]) -> dict[str, str]:
        for name, path in value.items():
            if not _PATH.match(path):
                raise ValueError(f"handler {name!r}: {path!r} is not 'package.module:function'")
        return value
