"""Interpolation on the parsed tree: ``${VAR}``, ``${VAR:-default}``, ``${VAR:?message}``,
``${secret:BACKEND:ref}``, ``${config:KEY}`` and ``${config:KEY:-default}``; ``$${`` writes a
literal ``${``.

``${config:KEY}`` reads the value of KEY in the run-time configuration the manifest is loaded
with (a ConfigStore snapshot passed as ``config=``): a value that is exactly one reference
takes the stored JSON value as it is (a number stays a number); inside a longer string a
string value is inserted as is and any other value as JSON.

Only string values are interpolated, after parsing, so a value can never inject YAML
structure. A variable that is unset or empty is a located problem for ``${VAR}`` and
``${VAR:?message}`` — never an empty string; ``${VAR:-}`` opts in to an empty default.
A string containing a secret reference becomes a ``SecretStr`` as a whole.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from portfolio_core.manifest import secrets as _secrets
from portfolio_core.manifest._tree import LList, LMap
from portfolio_core.manifest.errors import Origin, Problem, did_you_mean
from portfolio_core.ports.config_store import ConfigValues

__all__ = ["Interpolator"]

_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


class Interpolator:
    """Resolves references in one tree; collects problems and the secret values it saw."""

    def __init__(
        self,
        environ: Mapping[str, str],
        problems: list[Problem],
        config: ConfigValues | None = None,
    ) -> None:
        self.environ = environ
        self.config = config
        self.config_keys: set[str] = set()
        """The config keys the manifest referenced (a change to one may need a reload)."""
        self.problems = problems
        self.secret_values: set[str] = set()
        self._backends: dict[str, _secrets.SecretsBackend | None] = {}
        self.load_failures: dict[str, str] = {}

    def apply(self, tree: Any, path: tuple[str | int, ...] = ()) -> None:
        """Interpolate every string inside ``tree`` in place (LMap/LList values)."""
        if isinstance(tree, LMap):
            for key in list(tree):
                value = tree[key]
                if isinstance(value, str):
                    origin = tree.value_origins.get(key, tree.origin)
                    new, new_origin = self._string(value, (*path, key), origin)
                    tree[key] = new
                    tree.value_origins[key] = new_origin
                else:
                    self.apply(value, (*path, key))
        elif isinstance(tree, LList):
            for index, value in enumerate(tree):
                if isinstance(value, str):
                    new, new_origin = self._string(value, (*path, index), tree.origins[index])
                    tree[index] = new
                    tree.origins[index] = new_origin
                else:
                    self.apply(value, (*path, index))

    def _string(self, text: str, path: tuple[str | int, ...], origin: Origin) -> tuple[Any, Origin]:
        if "$" not in text:
            return text, origin
        if text.startswith("${config:") and text.endswith("}") and text.count("${") == 1:
            found, whole = self._config(text[2:-1], path, origin)
            if not found:
                return text, origin
            return whole, origin.with_note(f"from config {text[9:-1].split(':-')[0]}")
        out: list[str] = []
        notes: list[str] = []
        secret = False
        i = 0
        while i < len(text):
            if text.startswith("$${", i):
                out.append("${")
                i += 3
                continue
            if not text.startswith("${", i):
                out.append(text[i])
                i += 1
                continue
            end = text.find("}", i + 2)
            if end < 0:
                self._problem(
                    "bad-interpolation",
                    "unclosed '${' in value",
                    path,
                    origin,
                    "write '$${' for a literal '${'",
                )
                return text, origin
            body = text[i + 2 : end]
            i = end + 1
            value: str | None
            if body.startswith("config:"):
                found, raw = self._config(body, path, origin)
                if not found:
                    return text, origin
                value = raw if isinstance(raw, str) else json.dumps(raw)
                notes.append("from config " + body[len("config:") :].split(":-")[0])
            elif body.startswith("secret:"):
                value = self._secret(body, path, origin)
                secret = True
                if value:
                    self.secret_values.add(value)  # alone too: errors may quote just it
                notes.append("secret " + body[len("secret:") :])
            else:
                resolved = self._variable(body, path, origin)
                if resolved is None:
                    return text, origin
                value, from_env = resolved
                name = re.split(r":[-?]", body, maxsplit=1)[0]
                notes.append(f"from env {name}" if from_env else f"default, {name} unset")
            if value is None:
                return text, origin
            out.append(value)
        result = "".join(out)
        new_origin = origin.with_note(", ".join(notes)) if notes else origin
        if secret:
            self.secret_values.add(result)
            return SecretStr(result), new_origin
        return result, new_origin

    def _config(self, body: str, path: tuple[str | int, ...], origin: Origin) -> tuple[bool, Any]:
        """``(found, value)`` of ``config:KEY`` or ``config:KEY:-default``."""
        key, _, default = body[len("config:") :].partition(":-")
        has_default = ":-" in body
        if not key:
            self._problem(
                "bad-interpolation",
                f"'${{{body}}}' names no config key",
                path,
                origin,
                "write ${config:KEY} or ${config:KEY:-default}",
            )
            return False, None
        self.config_keys.add(key)
        if self.config is not None and key in self.config:
            return True, self.config[key]
        if has_default:
            return True, default
        if self.config is None:
            self._problem(
                "missing-config",
                f"'${{{body}}}' needs the run-time configuration, and none was given",
                path,
                origin,
                "load the manifest with config=<a ConfigStore snapshot>",
            )
        else:
            version = getattr(self.config, "version", None)
            self._problem(
                "missing-config",
                f"config key {key!r} has no value"
                + (f" at configuration version {version}" if version is not None else ""),
                path,
                origin,
                did_you_mean(key, self.config) or f"set it, or write ${{config:{key}:-default}}",
            )
        return False, None

    def _variable(
        self, body: str, path: tuple[str | int, ...], origin: Origin
    ) -> tuple[str, bool] | None:
        """The value of ``${body}`` and whether the environment supplied it (``False`` when
        the ``:-`` default was used); ``None`` after recording a problem."""
        name, op, arg = body, "", ""
        for candidate in (":-", ":?"):
            if candidate in body:
                name, arg = body.split(candidate, 1)
                op = candidate
                break
        if not _NAME.match(name):
            self._problem(
                "bad-interpolation",
                f"'${{{body}}}' is not a valid reference",
                path,
                origin,
                "use ${VAR}, ${VAR:-default}, ${VAR:?message} or ${secret:BACKEND:ref}",
            )
            return None
        value = self.environ.get(name)
        if value:
            return value, True
        if op == ":-":
            return arg, False
        if op == ":?":
            self._problem(
                "missing-env", f"environment variable {name} is not set: {arg}", path, origin
            )
            return None
        self._problem(
            "missing-env",
            f"environment variable {name} is not set (an unset variable is never an empty string)",
            path,
            origin,
            did_you_mean(name, self.environ) or f"set it, or write ${{{name}:-default}}",
        )
        return None

    def _secret(self, body: str, path: tuple[str | int, ...], origin: Origin) -> str | None:
        parts = body.split(":", 2)
        if len(parts) != 3 or not parts[1] or not parts[2]:
            self._problem(
                "bad-interpolation",
                f"'${{{body}}}' is not a valid secret reference",
                path,
                origin,
                "write ${secret:BACKEND:ref}, e.g. ${secret:env:DB_PASSWORD}",
            )
            return None
        _, backend_name, ref = parts
        backend = self._backend(backend_name)
        if backend is None:
            failure = self.load_failures.get(backend_name)
            if failure is not None:
                self._problem(
                    "secrets-backend-failed",
                    f"secrets backend {backend_name!r} failed to load: {failure}",
                    path,
                    origin,
                )
                return None
            self._problem(
                "unknown-secrets-backend",
                f"no secrets backend named {backend_name!r}",
                path,
                origin,
                did_you_mean(backend_name, _secrets.known_backends())
                or "built-ins: env, file; plugins: entry-point group portfolio_core.secrets",
            )
            return None
        base_dir = Path(origin.source).parent if origin.line else Path.cwd()
        try:
            return backend.resolve(ref, base_dir=base_dir)
        except LookupError as exc:
            self._problem(
                "missing-secret", f"secret {backend_name}:{ref} not found: {exc}", path, origin
            )
        except Exception as exc:  # a plugin failing must still give a located problem
            self._problem(
                "secrets-backend-failed",
                f"secrets backend {backend_name!r} failed: {type(exc).__name__}",
                path,
                origin,
            )
        return None

    def _backend(self, name: str) -> _secrets.SecretsBackend | None:
        """The backend ``name``, or ``None`` when there is none or it failed to load (a
        plugin whose import raises is reported as unknown, with the cause, once)."""
        if name not in self._backends:
            try:
                self._backends[name] = _secrets.load_backend(name, self.environ)
            except LookupError:
                self._backends[name] = None
            except Exception as exc:
                self._backends[name] = None
                self.load_failures[name] = f"{type(exc).__name__}: {exc}"
        return self._backends[name]

    def _problem(
        self,
        kind: str,
        message: str,
        path: tuple[str | int, ...],
        origin: Origin,
        hint: str | None = None,
    ) -> None:
        self.problems.append(Problem(kind, message, path, origin, hint))
