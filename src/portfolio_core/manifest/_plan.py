"""What a valid manifest becomes before anything is built: a `Plan` of `PlannedEntry`
values in dependency order, and the `ManifestSource` it was read from."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic

from portfolio_core.manifest._compose import Composed
from portfolio_core.manifest.errors import Origin
from portfolio_core.ports.catalogue import PortInfo
from portfolio_core.ports.config_store import ConfigValues

__all__ = ["ManifestSource", "Plan", "PlannedEntry"]


@dataclass(frozen=True)
class ManifestSource:
    """What to load: a file, a profile, explicit overrides and the environment to read."""

    path: Path
    profile: str | None = None
    overrides: Mapping[str, object] | None = None
    environ: Mapping[str, str] | None = None
    config: ConfigValues | None = None
    """The run-time configuration ``${config:KEY}`` reads (e.g. a ConfigStore snapshot)."""


@dataclass
class PlannedEntry:
    """One validated entry, not yet built."""

    name: str
    port: PortInfo
    adapter: str
    cls: type
    config: pydantic.BaseModel | None  # None only while a plan is being rejected
    uses: dict[str, str | list[str]]
    default: bool
    telemetry: dict[str, Any] | None
    protection: dict[str, Any] | None
    fallback: str | None
    origin: Origin
    alias: str | None = None
    """For ``address: local://<port>/<entry>``: the entry this one is another name for."""

    def dependencies(self) -> list[str]:
        names: list[str] = [self.alias] if self.alias else []
        for value in self.uses.values():
            names.extend([value] if isinstance(value, str) else value)
        if self.fallback:
            names.append(self.fallback)
        return names


@dataclass
class Plan:
    """A manifest that passed validation: entries in dependency order, defaults per port."""

    source: ManifestSource
    composed: Composed
    entries: dict[str, PlannedEntry]
    order: list[str]
    defaults: dict[str, str]
    sections: dict[str, pydantic.BaseModel] = field(default_factory=dict)
    """The validated optional top-level sections (``portal``), by name."""
