"""Generating a port's remote adapter class from its protocol (`remote_adapter_class`): one
method per served member, with the protocol's name and signature, sending one request (or
opening an iteration or a subscription); local members come from ``_local``."""

from __future__ import annotations

import inspect
from typing import Any

from portfolio_core.adapters.remote import _local
from portfolio_core.adapters.remote._adapter import _MISSING, RemoteAdapter
from portfolio_core.ports.catalogue import port_by_key
from portfolio_core.wire import (
    CallKind,
    MethodSpec,
    encoder_for,
    methods_of,
    result_validator,
)

__all__ = ["remote_adapter_class"]


def _parameter_text(signature: inspect.Signature) -> tuple[str, list[str]]:
    """The parameter list of a generated method (defaults replaced by ``_MISSING``) and the
    names of its parameters after ``self``."""
    parts: list[str] = []
    names: list[str] = []
    star = False
    for index, param in enumerate(signature.parameters.values()):
        if index == 0:
            parts.append("self")
            continue
        if param.kind is inspect.Parameter.KEYWORD_ONLY and not star:
            parts.append("*")
            star = True
        default = "" if param.default is inspect.Parameter.empty else "=_MISSING"
        parts.append(f"{param.name}{default}")
        names.append(param.name)
    return ", ".join(parts), names


def _method_source(spec: MethodSpec, signature: inspect.Signature) -> str:
    params, names = _parameter_text(signature)
    args = "{" + ", ".join(f"{n!r}: {n}" for n in names) + "}"

    def args_without(skip: str) -> str:
        return "{" + ", ".join(f"{n!r}: {n}" for n in names if n != skip) + "}"

    name = spec.name
    if spec.kind is CallKind.CALL:
        return (
            f"async def {name}({params}):\n"
            f"    return await self._call(_SPECS[{name!r}], _given({args}))\n"
        )
    if spec.kind is CallKind.ITERATE:
        return (
            f"def {name}({params}):\n    return self._iterate(_SPECS[{name!r}], _given({args}))\n"
        )
    if spec.kind is CallKind.SUBSCRIBE:
        assert spec.subscription is not None  # noqa: S101  (subscribe specs have one)
        handler = spec.subscription.handler
        return (
            f"async def {name}({params}):\n"
            f"    return await self._subscribe(_SPECS[{name!r}], {handler}, "
            f"_given({args_without(handler)}))\n"
        )
    if spec.kind is CallKind.UNSUBSCRIBE:
        first = names[0]
        return f"async def {name}({params}):\n    return await self._unsubscribe({first})\n"
    raise AssertionError(spec.kind)


def _given(args: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in args.items() if v is not _MISSING}


_CLASSES: dict[str, type[RemoteAdapter]] = {}


def remote_adapter_class(port_key: str) -> type[RemoteAdapter]:
    """The remote adapter class of the async port ``port_key`` (built once).

    Raises ``LookupError`` for a port that a remote adapter cannot fully provide: a member
    that neither crosses the wire nor has a local implementation.
    """
    found = _CLASSES.get(port_key)
    if found is not None:
        return found
    port = port_by_key(port_key)
    specs = methods_of(port_key)
    local = _local.LOCAL.get(port_key, {})
    from portfolio_core.ports.introspection import members_of

    missing = [
        name
        for name in (m.name for m in members_of(port.protocol))
        if name not in local and (name not in specs or specs[name].kind is CallKind.LOCAL)
    ]
    if not port.is_async or missing:
        raise LookupError(
            f"no remote adapter for port {port_key!r}: "
            + (f"{', '.join(missing)} cannot be called remotely" if missing else "it is sync")
        )
    namespace: dict[str, Any] = {"_SPECS": specs, "_MISSING": _MISSING, "_given": _given}
    body: dict[str, Any] = {}
    for name, spec in specs.items():
        if spec.kind is CallKind.LOCAL:
            continue
        assert spec.signature is not None  # noqa: S101  (served methods have one)
        source = _method_source(spec, spec.signature)
        # the source is generated from the protocol's own signature, never from input
        exec(compile(source, f"<remote {port_key}.{name}>", "exec"), namespace)  # noqa: S102
        function = namespace[name]
        function.__doc__ = spec.doc
        function.__qualname__ = f"Remote{port.name}.{name}"
        body[name] = function
    body.update(local)
    body["port"] = port
    body["_specs"] = specs
    body["_encoders"] = {
        name: tuple(
            (p.name, p.form.encode if p.form else encoder_for(p.hint), p.materialise)
            for p in spec.params
        )
        for name, spec in specs.items()
    }
    body["_materialised"] = {
        name: tuple(e for e in encoders if e[2]) for name, encoders in body["_encoders"].items()
    }
    body["_result_decoders"] = {
        name: result_validator(spec.result)
        for name, spec in specs.items()
        if spec.kind is CallKind.CALL
    }
    body["__doc__"] = (
        f"The {port.name} port served by a portal, reached by address (generated from the "
        f"protocol; see `RemoteAdapter`)."
    )
    body["__module__"] = "portfolio_core.adapters.remote"
    cls = type(f"Remote{port.name}", (RemoteAdapter,), body)
    _CLASSES[port_key] = cls
    return cls
