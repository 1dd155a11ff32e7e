"""``portfolio-core describe FILE``: the resolved wiring and where each value came from.

Secrets print as ``'**********'``. Nothing is built or started.
"""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import BaseModel, SecretStr

from portfolio_core.manifest._commands import add_manifest_arguments, overrides_of, report
from portfolio_core.manifest._tree import LMap, find_origin, walk
from portfolio_core.manifest.errors import ManifestError, format_path
from portfolio_core.manifest.wiring import Plan, plan


def configure(parser: argparse.ArgumentParser) -> None:
    add_manifest_arguments(parser)


def _show(value: Any) -> str:
    if isinstance(value, SecretStr):
        return "'**********'"
    if isinstance(value, BaseModel):
        return repr(value)  # pydantic masks SecretStr fields in reprs
    return repr(value)


def render(planned: Plan) -> str:
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
            for path, value in walk(section, ("adapters", name, section_name)):
                origin = find_origin(tree, path)
                where = origin.describe() if origin else "?"
                rel = format_path(path[2:])
                lines.append(f"      {rel} = {_show(value)}    # {where}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    try:
        planned = plan(args.file, profile=args.profile, overrides=overrides_of(args))
    except ManifestError as exc:
        return report(exc)
    print(render(planned))
    return 0
