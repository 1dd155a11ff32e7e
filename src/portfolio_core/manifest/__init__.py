"""YAML manifests: loading, validation, interpolation, secrets and wiring.

``load(path)`` returns the built adapters of a valid manifest (usually through
``Registry.from_manifest``) or raises one `ManifestError` listing every problem with
its ``file:line:column`` and YAML path. See docs/manifest.md for the format.
"""

from __future__ import annotations

from portfolio_core.manifest._compose import PROFILE_ENV
from portfolio_core.manifest._describe import describe
from portfolio_core.manifest._diff import plan_diff
from portfolio_core.manifest._resolve import installed_adapters
from portfolio_core.manifest.errors import (
    ManifestDeprecationWarning,
    ManifestError,
    Origin,
    Problem,
)
from portfolio_core.manifest.migrations import (
    CURRENT_SCHEMA_VERSION,
    migrate_file,
    register_migration,
)
from portfolio_core.manifest.secrets import SecretsBackend
from portfolio_core.manifest.wiring import ManifestSource, Plan, Wiring, build, load, plan

__all__ = [
    "CURRENT_SCHEMA_VERSION",
    "ManifestDeprecationWarning",
    "ManifestError",
    "ManifestSource",
    "Origin",
    "PROFILE_ENV",
    "Plan",
    "Problem",
    "SecretsBackend",
    "Wiring",
    "build",
    "describe",
    "installed_adapters",
    "load",
    "migrate_file",
    "plan",
    "plan_diff",
    "register_migration",
]
