"""Resolve a ``module:attribute`` reference to the object it names.

One resolver for every place that names code in configuration: the manifest (adapter
classes), the pipeline (steps) and the agent (tools, final-answer handlers). Standard library
and ports only, so adapters and the manifest can both use it.

A reference is ``"package.module:attribute"``; the attribute may be dotted
(``"pkg.mod:Class.factory"``). `resolve_reference` imports the module and walks the
attribute path; every failure raises `UnresolvedReference` (an
[InvalidInputError][portfolio_core.ports.errors.InvalidInputError]) whose ``kind`` says why.
"""

from __future__ import annotations

import importlib
import importlib.util
import traceback
from importlib.metadata import EntryPoint, entry_points

from portfolio_core.ports.errors import InvalidInputError

__all__ = [
    "UnresolvedReference",
    "entry_point_named",
    "import_cause",
    "is_reference",
    "resolve_reference",
]


class UnresolvedReference(InvalidInputError):
    """A reference could not be resolved.

    Attributes:
        kind: ``"malformed"`` (not ``module:attribute``), ``"no-module"`` (the module does not
            exist), ``"import-failed"`` (it exists but raised while importing) or
            ``"no-attribute"`` (the module has no such attribute).
        module: the module part, when the reference has one.
        names: for ``"no-attribute"``, the public names the module does have (for hints).
    """

    def __init__(
        self,
        message: str,
        *,
        kind: str,
        module: str | None = None,
        names: tuple[str, ...] = (),
        field: str | None = None,
    ) -> None:
        super().__init__(message, field=field)
        self.kind = kind
        self.module = module
        self.names = names


def is_reference(text: str) -> bool:
    """Whether ``text`` has the ``module:attribute`` form (rather than a registered name)."""
    return ":" in text


def import_cause(exc: BaseException) -> str:
    """``Type: message (at file:line)`` of the innermost frame outside the import machinery."""
    frames = [
        f
        for f in traceback.extract_tb(exc.__traceback__)
        if not f.filename.startswith("<frozen") and "importlib" not in f.filename
    ]
    where = f" (at {frames[-1].filename}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


def resolve_reference(ref: str, *, field: str | None = None) -> object:
    """The object ``ref`` (``module:attribute``) names.

    Raises `UnresolvedReference` (with ``field`` set, when given) when the reference
    is malformed, the module is missing or fails to import, or the attribute is missing.
    """
    module_name, sep, attr = ref.partition(":")
    if not sep or not module_name or not attr:
        raise UnresolvedReference(
            f"{ref!r} is not 'module:attribute'", kind="malformed", field=field
        )
    try:
        spec = importlib.util.find_spec(module_name)
    except ModuleNotFoundError:
        spec = None
    except Exception as exc:  # a parent package raised while importing
        raise UnresolvedReference(
            f"importing {module_name} failed: {import_cause(exc)}",
            kind="import-failed",
            module=module_name,
            field=field,
        ) from exc
    if spec is None:
        raise UnresolvedReference(
            f"no module named {module_name!r} (from {ref!r})",
            kind="no-module",
            module=module_name,
            field=field,
        )
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:
        raise UnresolvedReference(
            f"module {module_name} exists but importing it failed: {import_cause(exc)}",
            kind="import-failed",
            module=module_name,
            field=field,
        ) from exc
    target: object = module
    for part in attr.split("."):
        if not hasattr(target, part):
            names = tuple(n for n in vars(module) if not n.startswith("_"))
            raise UnresolvedReference(
                f"module {module_name} has no attribute {attr!r}",
                kind="no-attribute",
                module=module_name,
                names=names,
                field=field,
            )
        target = getattr(target, part)
    return target


def entry_point_named(group: str, name: str) -> EntryPoint | None:
    """The installed entry point ``name`` of ``group`` (the first one found), or ``None``."""
    for ep in entry_points(group=group, name=name):
        return ep
    return None
