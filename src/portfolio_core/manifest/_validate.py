"""Validation of a composed manifest, entry by entry: keys, ports, adapters, addresses,
configs and the optional top-level sections. Cross-entry checks (``uses``, fallbacks, cycles,
defaults) are in `_graph`."""

from __future__ import annotations

import re
from importlib.metadata import EntryPoint
from typing import Any

import pydantic
from pydantic import SecretStr

from portfolio_core.manifest import _boundary
from portfolio_core.manifest._plan import PlannedEntry
from portfolio_core.manifest._resolve import ResolveFailure, resolve_adapter
from portfolio_core.manifest._tree import LList, LMap, find_origin, to_plain
from portfolio_core.manifest.errors import Origin, Problem, did_you_mean, format_path
from portfolio_core.ports.catalogue import PORTS, PortInfo
from portfolio_core.ports.introspection import check_class

__all__ = ["ADDRESS_SCHEMES", "SECTIONS_GROUP", "Validator"]

_ENTRY_KEYS = (
    "port",
    "adapter",
    "address",
    "default",
    "config",
    "uses",
    "telemetry",
    "protection",
)
_TOP_KEYS = ("schema_version", "adapters")
SECTIONS_GROUP = "portfolio_core.manifest.sections"
"""Entry-point group of the optional top-level sections (``portal:``): name -> a pydantic
model (with ``extra='forbid'``) validating the section."""
#: schemes of ``address:``; every scheme but ``local`` chooses the port's ``remote`` adapter
ADDRESS_SCHEMES = ("local", "http", "https", "ws", "wss")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
_PORTS = {p.key: p for p in PORTS}


class Validator:
    """Checks a composed manifest tree entry by entry; every problem is appended to
    ``problems`` (located at its YAML path), nothing is raised."""

    def __init__(self, tree: LMap, problems: list[Problem]) -> None:
        self.tree = tree
        self.problems = problems
        self.eps: dict[str, dict[str, list[EntryPoint]]] = {}

    def origin(self, path: tuple[str | int, ...], *, key: bool = False) -> Origin | None:
        return find_origin(self.tree, path, key=key)

    def add(
        self,
        kind: str,
        message: str,
        path: tuple[str | int, ...],
        *,
        key: bool = False,
        hint: str | None = None,
    ) -> None:
        self.problems.append(Problem(kind, message, path, self.origin(path, key=key), hint))

    def unknown_keys(
        self, mapping: LMap, allowed: tuple[str, ...], path: tuple[str | int, ...], what: str
    ) -> None:
        for key in mapping:
            if key not in allowed:
                self.add(
                    "unknown-key",
                    f"unknown key {key!r} in {what}",
                    (*path, key),
                    key=True,
                    hint=did_you_mean(key, allowed) or f"allowed: {', '.join(allowed)}",
                )

    def sections(self) -> dict[str, pydantic.BaseModel]:
        """Validate every optional top-level section present (``portal:``)."""
        found: dict[str, pydantic.BaseModel] = {}
        models = _section_models()
        for name, model in models.items():
            value = self.tree.get(name)
            if value is None:
                continue
            if not isinstance(value, LMap):
                self.add("invalid-type", f"{name} must be a mapping", (name,))
                continue
            validated = self.model(model, value, (name,))
            if validated is not None:
                found[name] = validated
        return found

    def entries(self) -> dict[str, PlannedEntry]:
        self.unknown_keys(self.tree, (*_TOP_KEYS, *_section_models()), (), "the manifest")
        adapters = self.tree.get("adapters")
        if adapters is None:
            return {}
        if not isinstance(adapters, LMap):
            self.add(
                "invalid-type",
                "adapters must be a mapping of entry names to entries",
                ("adapters",),
            )
            return {}
        planned: dict[str, PlannedEntry] = {}
        for name, entry in adapters.items():
            result = self.entry(name, entry)
            if result is not None:
                planned[name] = result
        return planned

    def entry(self, name: str, entry: Any) -> PlannedEntry | None:
        path: tuple[str | int, ...] = ("adapters", name)
        if not _NAME.match(name):
            self.add("invalid-name", f"entry name {name!r} must be an identifier", path, key=True)
        if not isinstance(entry, LMap):
            self.add(
                "invalid-type", "an adapter entry must be a mapping with port and adapter", path
            )
            return None
        if name in _ENTRY_KEYS:
            self.add(
                "misplaced-key",
                f"{name!r} is a key of an adapter entry, not the name of one",
                path,
                key=True,
                hint=f"check the indentation: indent {name}: under its entry, deeper than "
                "the entry's name",
            )
            return None
        if "config" in entry and entry["config"] is None:
            # an empty `config:` followed by its keys at the entry's level: mis-indented
            found = self.origin((*path, "config"), key=True)
            line = found.line if found is not None else "?"
            for key in entry:
                if key not in _ENTRY_KEYS:
                    self.add(
                        "unknown-key",
                        f"unknown key {key!r} in adapter entry {name!r}",
                        (*path, key),
                        key=True,
                        hint=f"check the indentation: config: (line {line}) is empty; indent "
                        f"{key}: deeper than config: to make it part of it",
                    )
        else:
            self.unknown_keys(entry, _ENTRY_KEYS, path, f"adapter entry {name!r}")
        ok = True
        address = entry.get("address")
        if address is not None and "adapter" in entry:
            self.add(
                "conflicting-keys",
                "an entry names either an adapter or an address, not both",
                (*path, "address"),
                key=True,
            )
            ok = False
        for required in ("port", "adapter") if address is None else ("port", "address"):
            if required not in entry:
                self.add("missing-key", f"missing required key {required!r}", path)
                ok = False
            elif not isinstance(entry[required], str) or not entry[required]:
                self.add(
                    "invalid-type", f"{required} must be a non-empty string", (*path, required)
                )
                ok = False
        port: PortInfo | None = None
        if ok:
            port = _PORTS.get(entry["port"])
            if port is None:
                self.add(
                    "unknown-port",
                    f"unknown port {entry['port']!r}",
                    (*path, "port"),
                    hint=did_you_mean(entry["port"], _PORTS) or f"ports: {', '.join(_PORTS)}",
                )
        default = self.boolean(entry.get("default", False), (*path, "default"))
        config = entry.get("config")
        if config is None:
            config = LMap(entry.origin)
        elif not isinstance(config, LMap):
            self.add("invalid-type", "config must be a mapping", (*path, "config"))
            config = None
        uses = self.uses(entry.get("uses"), (*path, "uses"))
        sections: dict[str, dict[str, Any] | None] = {}
        for section in ("telemetry", "protection"):
            value = entry.get(section)
            if value is not None and not isinstance(value, LMap):
                self.add("invalid-type", f"{section} must be a mapping", (*path, section))
                value = None
            sections[section] = to_plain(value) if value else None
        if port is None or not ok:
            return None
        adapter_ref: str = entry["adapter"] if address is None else "remote"
        if address is not None:
            target = self.address(address, port, (*path, "address"))
            if target is None:
                return None
            if target.startswith("local://"):
                return self.alias(name, entry, port, target, path, uses, sections)
            if config is not None:
                config.set(
                    "address",
                    address,
                    entry.key_origins.get("address", entry.origin),
                    entry.value_origins.get("address", entry.origin),
                )
        cls = resolve_adapter(port, adapter_ref, self.eps)
        if isinstance(cls, ResolveFailure):
            self.add(cls.kind, cls.message, (*path, "adapter"), hint=cls.hint)
            return None
        for message in check_class(cls, port.protocol):
            self.add("port-mismatch", message, (*path, "adapter"))
        model = self.config_model(cls, path)
        if model is None or config is None or uses is None:
            return None
        validated = self.config(model, config, path)
        fallback = self.fallback(sections["protection"], path)
        for rel, message in _boundary.boundary_problems(
            port, sections["telemetry"], sections["protection"]
        ):
            self.add("invalid-boundary", message, (*path, *rel))
        return PlannedEntry(
            name=name,
            port=port,
            adapter=adapter_ref,
            cls=cls,
            config=validated,
            uses=uses,
            default=bool(default),
            telemetry=sections["telemetry"],
            protection=sections["protection"],
            fallback=fallback,
            origin=self.origin(path, key=True) or entry.origin,
        )

    def address(self, value: str, port: PortInfo, path: tuple[str | int, ...]) -> str | None:
        """Check an entry's ``address``: its scheme, and for ``local://`` its port."""
        scheme, sep, rest = value.partition("://")
        if not sep or scheme.lower() not in ADDRESS_SCHEMES:
            self.add(
                "unknown-scheme",
                f"unknown address scheme {scheme!r} in {value!r}"
                if sep
                else f"{value!r} is not an address (scheme://...)",
                path,
                hint=(did_you_mean(scheme.lower(), ADDRESS_SCHEMES) if sep else None)
                or f"schemes: {', '.join(s + '://' for s in ADDRESS_SCHEMES)}",
            )
            return None
        if scheme.lower() == "local":
            target_port, _, target = rest.partition("/")
            if target_port != port.key or not _NAME.match(target):
                self.add(
                    "invalid-address",
                    f"a local address is local://{port.key}/<entry> for a {port.key} entry, "
                    f"not {value!r}",
                    path,
                )
                return None
            return f"local://{target}"
        if not port.is_async:
            self.add(
                "invalid-address",
                f"{port.key} is a synchronous, in-process port: it is not reached by address "
                "(only async ports are served by a portal)",
                path,
            )
            return None
        return value

    def alias(
        self,
        name: str,
        entry: LMap,
        port: PortInfo,
        target: str,
        path: tuple[str | int, ...],
        uses: dict[str, str | list[str]] | None,
        sections: dict[str, dict[str, Any] | None],
    ) -> PlannedEntry | None:
        """An entry addressed ``local://``: another name for an entry of this manifest."""
        for key in ("config", "uses", "telemetry", "protection"):
            if key in entry:
                self.add(
                    "invalid-address",
                    f"an entry addressed local:// is another name for {target[8:]!r}: it has "
                    f"no {key} of its own",
                    (*path, key),
                    key=True,
                )
        default = self.boolean(entry.get("default", False), (*path, "default"))
        return PlannedEntry(
            name=name,
            port=port,
            adapter=f"local://{port.key}/{target[8:]}",
            cls=type(None),  # set from the target once every entry is known
            config=None,
            uses={},
            default=bool(default),
            telemetry=None,
            protection=None,
            fallback=None,
            origin=self.origin(path, key=True) or entry.origin,
            alias=target[8:],
        )

    def model(
        self, model: type[pydantic.BaseModel], tree: LMap, path: tuple[str | int, ...]
    ) -> pydantic.BaseModel | None:
        """Validate ``tree`` against ``model``, each problem located at its key."""
        try:
            return model.model_validate(to_plain(tree))
        except pydantic.ValidationError as exc:
            for error in exc.errors(include_url=False, include_input=False):
                loc = tuple(error["loc"])
                full = (*path, *loc)
                if error["type"] == "extra_forbidden":
                    self.add(
                        "unknown-key",
                        f"unknown key {loc[-1]!r} in {format_path(full[:-1])}",
                        full,
                        key=True,
                    )
                elif error["type"] == "missing":
                    self.add("missing-key", f"missing required key {loc[-1]!r}", full)
                else:
                    where = full
                    while where and find_origin(self.tree, where) is None:
                        where = where[:-1]
                    self.add("invalid-config", error["msg"], where or path)
            return None

    def boolean(self, value: Any, path: tuple[str | int, ...]) -> bool | None:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        self.add("invalid-type", f"must be true or false, not {value!r}", path)
        return None

    def uses(self, value: Any, path: tuple[str | int, ...]) -> dict[str, str | list[str]] | None:
        if value is None:
            return {}
        if not isinstance(value, LMap):
            self.add("invalid-type", "uses must map keyword names to entry names", path)
            return None
        out: dict[str, str | list[str]] = {}
        for keyword, target in value.items():
            if isinstance(target, str) and target:
                out[keyword] = target
            elif isinstance(target, LList) and all(isinstance(t, str) and t for t in target):
                out[keyword] = list(target)
            else:
                self.add(
                    "invalid-type",
                    "a uses value is an entry name or a list of entry names",
                    (*path, keyword),
                )
                return None
        return out

    def fallback(
        self, protection: dict[str, Any] | None, path: tuple[str | int, ...]
    ) -> str | None:
        if not protection or "fallback" not in protection:
            return None
        value = protection["fallback"]
        if isinstance(value, str):
            return value
        if isinstance(value, dict) and isinstance(value.get("adapter"), str):
            return str(value["adapter"])
        return None  # the boundary reports the malformed section

    def config_model(
        self, cls: type, path: tuple[str | int, ...]
    ) -> type[pydantic.BaseModel] | None:
        model = getattr(cls, "config_model", None)
        if not (isinstance(model, type) and issubclass(model, pydantic.BaseModel)):
            self.add(
                "not-an-adapter",
                f"{cls.__module__}.{cls.__qualname__} has no config_model "
                "(a pydantic model): it does not follow the adapter contract",
                (*path, "adapter"),
                hint="see docs/manifest.md, 'Writing an adapter'",
            )
            return None
        if model.model_config.get("extra") != "forbid":
            self.add(
                "not-an-adapter",
                f"{cls.__qualname__}.config_model ({model.__qualname__}) must set "
                "model_config = ConfigDict(extra='forbid'): otherwise a misspelt key is "
                "silently ignored",
                (*path, "adapter"),
            )
            return None
        if not callable(getattr(cls, "from_config", None)):
            self.add(
                "not-an-adapter",
                f"{cls.__qualname__} has no from_config classmethod",
                (*path, "adapter"),
            )
            return None
        return model

    def config(
        self, model: type[pydantic.BaseModel], config: LMap, path: tuple[str | int, ...]
    ) -> pydantic.BaseModel | None:
        try:
            return model.model_validate(to_plain(config))
        except pydantic.ValidationError as exc:
            fields = list(model.model_fields)
            for error in exc.errors(include_url=False, include_input=False):
                loc = tuple(error["loc"])
                full = (*path, "config", *loc)
                kind = error["type"]
                hint = None
                if kind == "extra_forbidden":
                    message = f"unknown key {loc[-1]!r} for {model.__qualname__}"
                    hint = did_you_mean(str(loc[-1]), fields) if len(loc) == 1 else None
                    self.add(
                        "unknown-key",
                        message,
                        full,
                        key=True,
                        hint=hint or f"allowed: {', '.join(fields)}",
                    )
                    continue
                if kind == "missing":
                    self.add("missing-key", f"missing required key {loc[-1]!r}", full)
                    continue
                if _value_at(config, loc) is not None and isinstance(
                    _value_at(config, loc), SecretStr
                ):
                    hint = "this value is a secret: type the field pydantic.SecretStr"
                self.add("invalid-config", error["msg"], full, hint=hint)
            return None
        except Exception as exc:  # a model validator raising something else
            self.add("invalid-config", f"{type(exc).__name__}: {exc}", (*path, "config"))
            return None


_SECTION_MODELS: dict[str, type[pydantic.BaseModel]] | None = None


def _section_models() -> dict[str, type[pydantic.BaseModel]]:
    """The optional top-level sections installed (entry points of `SECTIONS_GROUP`);
    a section whose package is not installed (its import fails) is left out."""
    global _SECTION_MODELS
    if _SECTION_MODELS is None:
        from importlib.metadata import entry_points

        found: dict[str, type[pydantic.BaseModel]] = {}
        for ep in entry_points(group=SECTIONS_GROUP):
            try:
                model = ep.load()
            except Exception:  # noqa: S112  (its extra is not installed: the key stays unknown)
                continue
            if isinstance(model, type) and issubclass(model, pydantic.BaseModel):
                found[ep.name] = model
        _SECTION_MODELS = found
    return _SECTION_MODELS


def _value_at(tree: Any, loc: tuple[Any, ...]) -> Any:
    for part in loc:
        if (isinstance(tree, dict) and part in tree) or (
            isinstance(tree, list) and isinstance(part, int) and 0 <= part < len(tree)
        ):
            tree = tree[part]
        else:
            return None
    return tree
