"""The seam to ``portfolio_core.boundary``: problems of ``telemetry:``/``protection:``
sections, and wrapping an adapter in its boundary proxy."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any, cast

from portfolio_core.ports.catalogue import PortInfo

__all__ = ["boundary_problems", "wrap"]

Problems = list[tuple[tuple[str | int, ...], str]]


def _api(name: str) -> Callable[..., Any] | None:
    module = importlib.import_module("portfolio_core.boundary")
    return cast("Callable[..., Any] | None", getattr(module, name, None))


def boundary_problems(
    port: PortInfo, telemetry: Mapping[str, Any] | None, protection: Mapping[str, Any] | None
) -> Problems:
    """What is wrong with the sections, as (path relative to the entry, message)."""
    check = _api("boundary_problems")
    if check is None:
        problems: Problems = []
        for section, value in (("telemetry", telemetry), ("protection", protection)):
            if value:
                problems.append(
                    (
                        (section,),
                        f"{section} needs portfolio_core.boundary, "
                        "which is not available in this installation",
                    )
                )
        return problems
    return cast(Problems, check(port, telemetry, protection))


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
    if not telemetry and not protection:
        return adapter
    wrapper = _api("wrap")
    if wrapper is None:  # boundary_problems already rejected the manifest
        return adapter
    return cast(
        object,
        wrapper(
            adapter,
            port=port,
            name=name,
            adapter_type=adapter_type,
            telemetry=telemetry,
            protection=protection,
            fallback=fallback,
        ),
    )
