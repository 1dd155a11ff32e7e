"""Which optional extra a feature needs, and whether it is installed.

Read from the installed distribution's metadata, so it holds for third-party adapter
packages as for ours:

* an adapter entry point names the extras it needs after its object reference, in the
  standard entry-point syntax ``module:Class [extra]`` (``importlib.metadata`` exposes them
  as ``EntryPoint.extras``); ``missing_extras`` says which of them are not satisfied, so
  ``portfolio-core check`` rejects a manifest whose adapter cannot run here instead of letting
  it fail at start;
* a failed import names a module; ``extra_providing`` finds the smallest extra of a
  distribution that requires the package of that name, for a hint when nothing was declared.

An extra is satisfied when every requirement it lists (for this platform) is installed in a
version its specifier accepts and, when the requirement's import name is its distribution
name (``psycopg``, ``redis``, ``sqlalchemy``), that module imports: ``psycopg`` installed
without a libpq or a binary build is reported here, not at the first query.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import re
from collections.abc import Iterable
from functools import cache

from packaging.requirements import InvalidRequirement, Requirement

__all__ = [
    "DISTRIBUTION",
    "extra_providing",
    "install_command",
    "missing_extras",
    "unsatisfied",
]

#: the distribution of this library
DISTRIBUTION = "portfolio-core"


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "_", name).lower()


@cache
def _extras_of(distribution: str) -> dict[str, tuple[Requirement, ...]]:
    """extra -> its requirements that apply to this platform; empty when not installed."""
    try:
        requires = importlib.metadata.distribution(distribution).requires or []
    except importlib.metadata.PackageNotFoundError:
        return {}
    try:
        declared = importlib.metadata.metadata(distribution).get_all("Provides-Extra") or []
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - found just above
        declared = []
    extras: dict[str, list[Requirement]] = {_normalise(e): [] for e in declared}
    for line in requires:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.marker is None:
            continue
        for extra in extras:
            if requirement.marker.evaluate({"extra": extra}) and not _applies_without_extra(
                requirement
            ):
                extras[extra].append(requirement)
    return {extra: tuple(reqs) for extra, reqs in extras.items()}


def _applies_without_extra(requirement: Requirement) -> bool:
    marker = requirement.marker
    return marker is not None and marker.evaluate({"extra": "__none__"})


def _display(requirement: Requirement) -> str:
    extras = f"[{','.join(sorted(requirement.extras))}]" if requirement.extras else ""
    return f"{requirement.name}{extras}{requirement.specifier}"


def _problem(requirement: Requirement) -> str | None:
    """Why ``requirement`` is not usable here, or ``None`` when it is."""
    try:
        version = importlib.metadata.version(requirement.name)
    except importlib.metadata.PackageNotFoundError:
        return _display(requirement)
    if not requirement.specifier.contains(version, prereleases=True):
        return f"{_display(requirement)} ({version} is installed)"
    module = _normalise(requirement.name)
    try:
        if importlib.util.find_spec(module) is None:
            return None  # imported under another name: the metadata is all we can check
        importlib.import_module(module)
    except ImportError as exc:
        return f"{_display(requirement)} (installed, but 'import {module}' fails: {exc})"
    return None


def unsatisfied(extra: str, distribution: str = DISTRIBUTION) -> list[str]:
    """The requirements of ``distribution[extra]`` that are missing, too old or fail to
    import, as written in its metadata (``psycopg>=3.2``) with the reason when it is not
    plain absence. Empty when the extra is satisfied or when the distribution (or the extra)
    is unknown: only what is known to be wrong is reported."""
    requirements = _extras_of(distribution).get(_normalise(extra), ())
    return [problem for r in requirements if (problem := _problem(r)) is not None]


def missing_extras(extras: Iterable[str], distribution: str = DISTRIBUTION) -> dict[str, list[str]]:
    """For each of ``extras`` that is not satisfied, the requirements it lacks."""
    missing: dict[str, list[str]] = {}
    for extra in extras:
        lacking = unsatisfied(extra, distribution)
        if lacking:
            missing[extra] = lacking
    return missing


def extra_providing(module: str, distribution: str = DISTRIBUTION) -> str | None:
    """The smallest extra of ``distribution`` requiring the package that provides the
    importable ``module`` (``psycopg``, ``opentelemetry.sdk.trace``), or ``None``.

    Distribution and module names are compared normalised (``prometheus-client`` provides
    ``prometheus_client``, ``opentelemetry-sdk`` provides ``opentelemetry.sdk``). Ties go to
    the alphabetically first extra."""
    parts = module.split(".")
    candidates = [_normalise(".".join(parts[:n])) for n in range(len(parts), 0, -1)]
    extras = _extras_of(distribution)
    for candidate in candidates:
        providing = [
            (len(reqs), extra)
            for extra, reqs in extras.items()
            if any(_normalise(r.name) == candidate for r in reqs)
        ]
        if providing:
            return min(providing)[1]
    return None


def install_command(extras: Iterable[str], distribution: str = DISTRIBUTION) -> str:
    """``pip install 'portfolio-core[sql,testing]'``."""
    return f"pip install '{distribution}[{','.join(extras)}]'"
