"""Secrets backends: what resolves ``${secret:BACKEND:ref}`` in a manifest.

A backend is any object with ``resolve(ref, *, base_dir) -> str`` that raises
`LookupError` when the secret does not exist (its message must not contain secret
material). Two are built in:

* ``env``: ``${secret:env:DB_PASSWORD}`` reads the environment variable ``DB_PASSWORD``;
* ``file``: ``${secret:file:secrets/db_password}`` reads a file (relative paths are relative
  to the manifest that names them; one trailing newline is stripped) — the shape of Docker
  and Kubernetes mounted secrets.

Others are discovered through the entry-point group ``portfolio_core.secrets``: the entry
point names a class (or factory) called with no arguments, e.g.::

    [project.entry-points."portfolio_core.secrets"]
    vault = "my_package.vault:VaultSecrets"

A resolved secret becomes a `pydantic.SecretStr`, which prints as ``'**********'``:
adapter config models type such fields ``SecretStr`` and call ``get_secret_value()`` only
where the secret is used.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from importlib.metadata import entry_points
from pathlib import Path
from typing import Protocol, runtime_checkable

__all__ = ["ENTRY_POINT_GROUP", "EnvSecrets", "FileSecrets", "SecretsBackend", "load_backend"]

ENTRY_POINT_GROUP = "portfolio_core.secrets"


@runtime_checkable
class SecretsBackend(Protocol):
    """Resolves a secret reference to its value.

    ``resolve`` raises `LookupError` when ``ref`` names no secret; any other
    exception is reported as a failure of the backend. Neither may carry the secret value.
    """

    def resolve(self, ref: str, *, base_dir: Path) -> str: ...


class EnvSecrets:
    """``${secret:env:NAME}``: the environment variable ``NAME`` (empty counts as missing)."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        self._environ = os.environ if environ is None else environ

    def resolve(self, ref: str, *, base_dir: Path) -> str:
        value = self._environ.get(ref)
        if not value:
            raise LookupError(f"environment variable {ref} is not set")
        return value


class FileSecrets:
    """``${secret:file:PATH}``: the contents of a file, one trailing newline stripped."""

    def resolve(self, ref: str, *, base_dir: Path) -> str:
        path = Path(ref)
        if not path.is_absolute():
            path = base_dir / path
        try:
            value = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise LookupError(f"secret file {ref} does not exist") from None
        except OSError as exc:
            raise LookupError(f"secret file {ref} cannot be read ({type(exc).__name__})") from None
        return value[:-1] if value.endswith("\n") else value


def load_backend(name: str, environ: Mapping[str, str] | None = None) -> SecretsBackend:
    """The backend called ``name``: built in, or from the ``portfolio_core.secrets`` group.

    Raises `LookupError` naming the known backends when there is none by that name.
    """
    if name == "env":
        return EnvSecrets(environ)
    if name == "file":
        return FileSecrets()
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == name:
            factory = ep.load()
            backend = factory()
            if not isinstance(backend, SecretsBackend):
                raise LookupError(f"secrets backend {name!r} ({ep.value}) has no resolve()")
            return backend
    raise LookupError(name)


def known_backends() -> list[str]:
    """Names of every secrets backend available: built-ins and installed plugins."""
    return ["env", "file", *sorted({ep.name for ep in entry_points(group=ENTRY_POINT_GROUP)})]
