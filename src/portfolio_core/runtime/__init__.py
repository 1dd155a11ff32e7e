"""Running an application wired by a manifest: hot reload on file changes, SIGHUP, an admin
call and run-time configuration changes (`Reloader`); the manifest's projections
(`Projections`, configured by `ProjectionsConfig`)."""

from __future__ import annotations

from portfolio_core.runtime._projections import Projections
from portfolio_core.runtime._projections_config import ProjectionConfig, ProjectionsConfig
from portfolio_core.runtime._reloader import Reloader, ReloadOutcome

__all__ = ["ProjectionConfig", "Projections", "ProjectionsConfig", "ReloadOutcome", "Reloader"]
