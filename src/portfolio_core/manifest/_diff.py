"""What changed between two plans of a manifest (for the reload entry of the timeline).

Values are compared as resolved (after extends, profiles, interpolation and secrets) and
shown as short texts; a secret -- a ``SecretStr`` field or any value that holds a secret the
manifest resolved -- is shown as ``'**********'``, changed or not.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any
from urllib.parse import unquote

from pydantic import BaseModel, SecretStr

from portfolio_core.manifest.wiring import Plan, PlannedEntry

__all__ = ["MAX_CHANGES", "plan_diff"]

MAX_CHANGES = 200
"""Field changes listed at most (the rest are counted)."""
_MASK = "'**********'"
_MAX_VALUE = 200


def _flatten(value: Any, path: str) -> Iterator[tuple[str, Any]]:
    if isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _flatten(getattr(value, name), f"{path}.{name}")
    elif isinstance(value, Mapping):
        if not value:
            yield path, {}
        for key, item in value.items():
            yield from _flatten(item, f"{path}.{key}")
    elif isinstance(value, list | tuple) and any(
        isinstance(v, Mapping | BaseModel | list | tuple) for v in value
    ):
        for i, item in enumerate(value):
            yield from _flatten(item, f"{path}[{i}]")
    else:
        yield path, value


def _fields(entry: PlannedEntry, default: bool) -> dict[str, Any]:
    out: dict[str, Any] = {
        "port": entry.port.key,
        "adapter": entry.adapter,
        "default": default,
    }
    for keyword, target in entry.uses.items():
        out[f"uses.{keyword}"] = target
    if entry.alias:
        out["address"] = entry.alias
    if entry.config is not None:
        out.update(_flatten(entry.config, "config"))
    for section in ("telemetry", "protection"):
        raw = getattr(entry, section)
        if raw is not None:
            out.update(_flatten(raw, section))
    return out


def _secret_value(value: Any) -> Any:
    return value.get_secret_value() if isinstance(value, SecretStr) else value


def plan_diff(old: Plan | None, new: Plan) -> dict[str, Any]:
    """The difference from ``old`` to ``new`` as a JSON-compatible mapping::

        {"files": [...], "added": [{"entry", "port", "adapter", "location"}],
         "removed": [...], "changed": [{"entry", "location",
         "fields": [{"path", "old", "new"}]}], "omitted": 0}

    Never contains a secret value (see the module docstring).
    """
    secrets = set(new.composed.secret_values)
    if old is not None:
        secrets |= old.composed.secret_values
    whole = [s for s in secrets if s] + [unquote(s) for s in secrets if s]

    def show(value: Any) -> str:
        if isinstance(value, SecretStr):
            return _MASK
        text = repr(value)
        for secret in whole:
            if secret in text:
                return _MASK
        return text if len(text) <= _MAX_VALUE else text[: _MAX_VALUE - 1] + "…"

    old_entries = old.entries if old is not None else {}
    added = [
        {
            "entry": name,
            "port": e.port.key,
            "adapter": e.adapter,
            "location": e.origin.location,
        }
        for name, e in new.entries.items()
        if name not in old_entries
    ]
    removed = [
        {"entry": name, "port": e.port.key, "adapter": e.adapter}
        for name, e in old_entries.items()
        if name not in new.entries
    ]
    changed: list[dict[str, Any]] = []
    budget = MAX_CHANGES
    omitted = 0
    for name, entry in new.entries.items():
        before = old_entries.get(name)
        if before is None or old is None:
            continue
        a = _fields(before, old.defaults.get(before.port.key) == name)
        b = _fields(entry, new.defaults.get(entry.port.key) == name)
        fields = []
        for path in [*a, *(p for p in b if p not in a)]:
            va, vb = a.get(path, _ABSENT), b.get(path, _ABSENT)
            if _secret_value(va) == _secret_value(vb):
                continue
            if budget <= 0:
                omitted += 1
                continue
            budget -= 1
            fields.append(
                {
                    "path": path,
                    "old": "(absent)" if va is _ABSENT else show(va),
                    "new": "(absent)" if vb is _ABSENT else show(vb),
                }
            )
        if fields:
            changed.append({"entry": name, "location": entry.origin.location, "fields": fields})
    return {
        "files": list(new.composed.files),
        "added": added,
        "removed": removed,
        "changed": changed,
        "omitted": omitted,
    }


_ABSENT = object()
