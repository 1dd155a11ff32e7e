"""From a composed manifest to built adapters: validate everything, then build in
dependency order. Nothing is handed out unless the whole manifest is valid and every
adapter was built.

`plan` validates (entry by entry in `_validate`, across entries in `_graph`) into a `Plan`
(`_plan`); `build` (`_build`) turns a plan into a `Wiring`; `load` does both. Every name
stays importable from here.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path

from portfolio_core.manifest._build import WiredEntry, Wiring, build
from portfolio_core.manifest._compose import compose
from portfolio_core.manifest._graph import check_graph, choose_defaults
from portfolio_core.manifest._plan import ManifestSource, Plan, PlannedEntry
from portfolio_core.manifest._validate import ADDRESS_SCHEMES, SECTIONS_GROUP, Validator
from portfolio_core.manifest.errors import ManifestDeprecationWarning, ManifestError, Problem
from portfolio_core.ports.config_store import ConfigValues

__all__ = [
    "ADDRESS_SCHEMES",
    "SECTIONS_GROUP",
    "ManifestSource",
    "Plan",
    "PlannedEntry",
    "WiredEntry",
    "Wiring",
    "build",
    "load",
    "plan",
]


def _raise(problems: list[Problem], secrets: set[str] | frozenset[str]) -> None:
    if problems:
        raise ManifestError([p.redacted(secrets) for p in problems])


def plan(
    path: str | os.PathLike[str],
    *,
    profile: str | None = None,
    overrides: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
    config: ConfigValues | None = None,
) -> Plan:
    """Load and validate a manifest without building anything.

    ``config`` is the run-time configuration ``${config:KEY}`` references read. Raises
    `ManifestError` listing every problem. Emits `ManifestDeprecationWarning`
    for each old key a migration rewrote.
    """
    problems: list[Problem] = []
    source = ManifestSource(Path(path), profile, overrides, environ, config)
    composed = compose(
        path,
        profile=profile,
        overrides=overrides,
        environ=environ,
        config=config,
        problems=problems,
    )
    if composed is None:
        _raise(problems, set())
        raise AssertionError("unreachable: compose returned None without a problem")
    for origin, message in composed.deprecations:
        warnings.warn(f"{origin.location}: {message}", ManifestDeprecationWarning, stacklevel=3)
    validator = Validator(composed.tree, problems)
    entries = validator.entries()
    sections = validator.sections()
    order = check_graph(entries, validator)
    defaults = choose_defaults(entries, validator)
    _raise(problems, composed.secret_values)
    return Plan(source, composed, entries, order, defaults, sections)


def load(
    path: str | os.PathLike[str],
    *,
    profile: str | None = None,
    overrides: Mapping[str, object] | None = None,
    environ: Mapping[str, str] | None = None,
    config: ConfigValues | None = None,
) -> Wiring:
    """`plan` then `build`: the adapters of a valid manifest, or
    `ManifestError`."""
    return build(plan(path, profile=profile, overrides=overrides, environ=environ, config=config))
