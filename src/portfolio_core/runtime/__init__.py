"""Running an application wired by a manifest: hot reload on file changes, SIGHUP, an admin
call and run-time configuration changes (`Reloader`)."""

from __future__ import annotations

from portfolio_core.runtime._reloader import Reloader, ReloadOutcome

__all__ = ["ReloadOutcome", "Reloader"]
