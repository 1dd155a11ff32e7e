"""Panels: named sources of a small table the operator console shows, live.

A feature that has state worth watching -- a job queue's counts and dead letters, an
outbox's backlog, a projection's lag, the active config version -- registers a panel source
once (usually when its module is imported or its adapter starts). The console calls every
source once per update while someone watches it, and never otherwise::

    from portfolio_core.boundary.panels import Panel, register_panel

    async def queue_counts(registry: object) -> Panel:
        counts = await queue.counts()
        return Panel(
            title="Jobs",
            columns=("state", "jobs"),
            rows=[(state, n) for state, n in counts.items()],
            status="warning" if counts.get("dead", 0) else "ok",
        )

    register_panel("jobs", queue_counts)

A source receives the registry the console shows (to find its entries by port) and returns
a `Panel`, or an awaitable of one. Cells are shown as text (never as HTML). A source
that raises or takes longer than the console's budget is shown as failing, with the error's
type and message; it never stops the console. Nothing here imports more than the standard
library: every layer may register a panel.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = ["Panel", "PanelSource", "register_panel", "registered_panels", "unregister_panel"]

Cell = str | int | float | bool | None


@dataclass(frozen=True, slots=True)
class Panel:
    """What a panel shows: a title, column names and rows of cells, an overall status
    (``ok``, ``warning`` or ``error``; a non-ok panel is flagged) and an optional note."""

    title: str
    columns: Sequence[str] = ()
    rows: Sequence[Sequence[Cell]] = ()
    status: Literal["ok", "warning", "error"] = "ok"
    note: str = ""
    entry: str | None = None
    """The registry entry the panel is about (the console shows it only to callers who may
    see that entry); ``None``: about the process."""


PanelSource = Callable[[object], "Panel | Awaitable[Panel]"]

_LOCK = threading.Lock()
_PANELS: dict[str, PanelSource] = {}


def register_panel(name: str, source: PanelSource) -> None:
    """Register (or replace) the panel ``name``; raises ValueError for an empty name."""
    if not name or not isinstance(name, str):
        raise ValueError("a panel needs a non-empty name")
    with _LOCK:
        _PANELS[name] = source


def unregister_panel(name: str) -> None:
    """Remove the panel ``name`` (no error when there is none)."""
    with _LOCK:
        _PANELS.pop(name, None)


def registered_panels() -> dict[str, PanelSource]:
    """The registered panel sources, by name, in registration order."""
    with _LOCK:
        return dict(_PANELS)
