"""The seam to ``portfolio_core.boundary``: problems of ``telemetry:``/``protection:``
sections, and wrapping an adapter in its boundary proxy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from portfolio_core import boundary
from portfolio_core.ports.catalogue import PortInfo

__all__ = ["boundary_problems", "wrap"]


def boundary_problems(
    port: PortInfo, telemetry: Mapping[str, Any] | None, protection: Mapping[str, Any] | None
) -> list[tuple[tuple[str | int, ...], str]]:
    """What is wrong with the sections, as (path relative to the entry, message)."""
    if telemetry is None and protection is None:
        return []
    return boundary.boundary_problems(port, telemetry, protection)


def wrap(
    adapter: object,
    *,
    port: PortInfo,
    name: str,
    adapter_type: str,
    telemetry: Mapping[str, Any] | None,
    protection: Mapping[str, Any] | None,
    fallback: object | None = None,
) -> object:
    """The adapter itself when neither section is configured, else the boundary proxy."""
    if telemetry is None and protection is None:
        return adapter
    return boundary.wrap(
        adapter,
        port=port,
        name=name,
        adapter_type=adapter_type,
        telemetry=telemetry,
        protection=protection,
        fallback=fallback,
    )
