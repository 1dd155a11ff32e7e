"""What ``portfolio-core describe`` prints: a plan's wiring and where each value came from."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, SecretStr, ValidationError

from portfolio_core.manifest._tree import LMap, find_origin, walk
from portfolio_core.manifest.errors import format_path
from portfolio_core.manifest.wiring import Plan

__all__ = ["describe"]


def _show(value: Any) -> str:
    if isinstance(value, SecretStr):
        return "'**********'"
    if isinstance(value, BaseModel):
        return repr(value)  # pydantic masks SecretStr fields in reprs
    return repr(value)


def _boundary_model(section_name: str, values: dict[str, Any] | None) -> BaseModel | None:
    """The validated telemetry or protection section, to tell which of its values are
    secrets (``None`` when there is none or it does not validate)."""
    from portfolio_core.boundary.config import ProtectionConfig, TelemetryConfig

    model = TelemetryConfig if section_name == "telemetry" else ProtectionConfig
    try:
        return model.model_validate(values) if values is not None else None
    except ValidationError:
        return None


def _is_secret(model: BaseModel | None, path: tuple[str | int, ...]) -> bool:
    """Whether the value at ``path`` (inside the section) is a secret of ``model``."""
    value: Any = model
    for part in path:
        if isinstance(value, BaseModel) and isinstance(part, str):
            value = getattr(value, part, None)
        elif isinstance(value, dict) and part in value:  # noqa: SIM114 (mypy needs two)
            value = value[part]
        elif isinstance(value, list) and isinstance(part, int) and part < len(value):
            value = value[part]
        else:
            return False
    return isinstance(value, SecretStr)


def describe(planned: Plan) -> str:
    """The resolved wiring of ``planned``, entry by entry in start order, with the origin of
    every value (file:line:column, layer, environment variable or default). Secret values
    print as ``'**********'``."""
    tree = planned.composed.tree
    lines = [
        f"files: {' <- '.join(reversed(planned.composed.files))}",
        f"profiles: {', '.join(planned.composed.profiles) or '(none)'}",
        "adapters (in start order):",
    ]
    for name in planned.order:
        entry = planned.entries[name]
        default = ", default" if planned.defaults.get(entry.port.key) == name else ""
        cls = f"{entry.cls.__module__}:{entry.cls.__qualname__}"
        lines.append(f"  {name}  ({entry.port.key}{default})  {entry.adapter} -> {cls}")
        lines.append(f"      defined at {entry.origin.describe()}")
        for keyword, target in entry.uses.items():
            lines.append(f"      uses {keyword} = {target}")
        config = entry.config
        if config is not None:
            for field in type(config).model_fields:
                path: tuple[str | int, ...] = ("adapters", name, "config", field)
                section = tree["adapters"][name].get("config")
                if isinstance(section, LMap) and field in section:
                    origin = find_origin(tree, path)
                    where = origin.describe() if origin else "?"
                else:
                    where = "default"
                value = _show(getattr(config, field))
                lines.append(f"      config.{field} = {value}    # {where}")
        for section_name in ("telemetry", "protection"):
            section = tree["adapters"][name].get(section_name)
            if section is None:
                continue
            model = _boundary_model(section_name, getattr(entry, section_name))
            for path, value in walk(section, ("adapters", name, section_name)):
                origin = find_origin(tree, path)
                where = origin.describe() if origin else "?"
                rel = format_path(path[2:])
                shown = _show(SecretStr("") if _is_secret(model, path[3:]) else value)
                lines.append(f"      {rel} = {shown}    # {where}")
    return "\n".join(lines)
