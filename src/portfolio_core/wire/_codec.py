"""JSON on the wire: the caller's type-directed encoder, the server's validators, and the
tenant carried with each call.

The caller encodes each argument by its declared type and refuses, before anything is sent,
what JSON cannot carry faithfully: values that are not JSON (tuples, sets, bytes, non-string
keys, NaN and infinities where the port says "JSON value"), strings that are not Unicode text
(lone surrogates) and objects of the wrong type. The refusal is the port's
[InvalidInputError][portfolio_core.ports.errors.InvalidInputError], naming the argument or the value
object's field at fault, as a local adapter would. Everything else is checked by the server,
which validates each request with a pydantic ``TypeAdapter`` built once per method.
"""

from __future__ import annotations

import collections.abc
import contextlib
import dataclasses
import enum
import json
import math
import typing
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import cache
from typing import TYPE_CHECKING, Any, NotRequired, Union

import pydantic
import pydantic_core
from typing_extensions import TypedDict

from portfolio_core.ports.errors import InvalidInputError
from portfolio_core.ports.tenant import TenantContext
from portfolio_core.ports.values import MAX_VALUE_DEPTH

if TYPE_CHECKING:
    from portfolio_core.wire._methods import MethodSpec

__all__ = [
    "Encoder",
    "arguments_validator",
    "check_json",
    "decode_tenant",
    "dumps",
    "encode_tenant",
    "encoder_for",
    "loads",
    "result_validator",
]

Encoder = Callable[[Any, str], Any]
"""Turns a value into plain JSON data (``field`` names it in errors), or raises
InvalidInputError."""

_SCALARS = (str, int, float, bool, type(None))


def _bad(field: str, what: str) -> InvalidInputError:
    return InvalidInputError(f"{field}: {what} cannot be sent as JSON", field=field)


def _check_text(value: str, field: str) -> str:
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise InvalidInputError(
                f"{field}: a string holding a lone surrogate is not Unicode text", field=field
            ) from None
    return value


def check_json(value: Any, field: str, depth: int = 0) -> Any:
    """Return ``value`` when it is strictly JSON (dicts with string keys, lists, strings,
    finite numbers, booleans, ``None``) nested at most ``MAX_VALUE_DEPTH`` containers deep
    (the ports' value rule), else raise InvalidInputError naming ``field``."""
    kind = type(value)
    if kind is str:
        return _check_text(value, field)
    if kind is int or kind is bool or value is None:
        return value
    if kind is float:
        if math.isfinite(value):
            return value
        raise _bad(field, repr(value))
    if kind is list or kind is dict:
        depth += 1
        if depth > MAX_VALUE_DEPTH:
            raise InvalidInputError(
                f"{field}: nested deeper than {MAX_VALUE_DEPTH} lists and dicts", field=field
            )
        if kind is list:
            for item in value:
                check_json(item, field, depth)
            return value
        for key, item in value.items():
            if type(key) is not str:
                raise _bad(field, f"a non-string key {key!r}")
            _check_text(key, field)
            check_json(item, field, depth)
        return value
    raise _bad(field, f"a {kind.__name__}")


def _plain_copy(value: Any, field: str, depth: int = 0) -> Any:
    """Like `check_json` but accepting any Mapping and copying to plain dicts."""
    if isinstance(value, Mapping) or type(value) is list:
        depth += 1
        if depth > MAX_VALUE_DEPTH:
            raise InvalidInputError(
                f"{field}: nested deeper than {MAX_VALUE_DEPTH} lists and dicts", field=field
            )
        if isinstance(value, Mapping):
            return {_check_key(k, field): _plain_copy(v, field, depth) for k, v in value.items()}
        return [_plain_copy(v, field, depth) for v in value]
    return check_json(value, field, depth)


def _check_key(key: Any, field: str) -> str:
    if type(key) is not str:
        raise _bad(field, f"a non-string key {key!r}")
    return _check_text(key, field)


def _union_args(hint: Any) -> tuple[Any, ...]:
    origin = typing.get_origin(hint)
    if origin is Union or type(hint).__name__ == "UnionType":
        return typing.get_args(hint)
    return ()


def _accepts(hint: Any) -> Callable[[Any], bool]:
    """A cheap test of whether a value belongs to one arm of a union."""
    if hint is Any:
        return lambda _v: True
    if hint is None or hint is type(None):
        return lambda v: v is None
    origin = typing.get_origin(hint) or hint
    if origin in (collections.abc.Sequence, list, tuple, collections.abc.Iterable):
        return lambda v: isinstance(v, list | tuple)
    if origin in (frozenset, set, collections.abc.Set):
        return lambda v: isinstance(v, set | frozenset)
    if origin in (dict, collections.abc.Mapping):
        return lambda v: isinstance(v, Mapping)
    if isinstance(origin, type) and issubclass(origin, enum.Enum):
        values = {m.value for m in origin}
        return lambda v: isinstance(v, origin) or (type(v) is str and v in values)
    if origin is int:
        return lambda v: type(v) is int
    if origin is float:
        return lambda v: type(v) in (int, float)
    if isinstance(origin, type):
        return lambda v: isinstance(v, origin)
    return lambda _v: True


@cache
def encoder_for(hint: Any) -> Encoder:
    """The caller's encoder of values declared as ``hint`` (built once per type)."""
    if hint is Any or isinstance(hint, typing.TypeVar):
        return check_json
    arms = _union_args(hint)
    if arms:
        tests = [(_accepts(a), encoder_for(a)) for a in arms]

        def union(value: Any, field: str) -> Any:
            for test, encode in tests:
                if test(value):
                    return encode(value, field)
            raise _bad(field, f"a {type(value).__name__}")

        return union
    if hint is None or hint is type(None):
        return lambda v, f: v if v is None else _raise(_bad(f, f"a {type(v).__name__}"))
    origin = typing.get_origin(hint) or hint
    args = typing.get_args(hint)
    if origin is str:
        return lambda v, f: (
            _check_text(v, f) if type(v) is str else _raise(_bad(f, f"a {type(v).__name__}"))
        )
    if origin is bool:
        return lambda v, f: v if type(v) is bool else _raise(_bad(f, f"a {type(v).__name__}"))
    if origin in (int, float):
        return _number
    if origin is datetime:
        return lambda v, f: (
            v.isoformat() if isinstance(v, datetime) else _raise(_bad(f, f"a {type(v).__name__}"))
        )
    if isinstance(origin, type) and issubclass(origin, enum.Enum):
        return lambda v, f: v.value if isinstance(v, enum.Enum) else v
    if origin in (
        collections.abc.Sequence,
        list,
        tuple,
        frozenset,
        set,
        collections.abc.Set,
        collections.abc.Iterable,
    ):
        item = encoder_for(args[0] if args else Any)

        def sequence(value: Any, field: str) -> Any:
            if isinstance(value, str | bytes) or not isinstance(
                value, list | tuple | set | frozenset
            ):
                raise _bad(field, f"a {type(value).__name__} where a list is expected")
            return [item(v, field) for v in value]

        return sequence
    if origin in (dict, collections.abc.Mapping, collections.abc.MutableMapping):
        value_hint = args[1] if len(args) == 2 else Any
        if value_hint is Any:
            return lambda v, f: (
                _plain_copy(v, f)
                if isinstance(v, Mapping)
                else _raise(_bad(f, f"a {type(v).__name__}"))
            )
        value_encoder = encoder_for(value_hint)

        def mapping(value: Any, field: str) -> Any:
            if not isinstance(value, Mapping):
                raise _bad(field, f"a {type(value).__name__}")
            return {_check_key(k, field): value_encoder(v, field) for k, v in value.items()}

        return mapping
    if isinstance(origin, type) and dataclasses.is_dataclass(origin):
        return _dataclass_encoder(origin)
    return check_json


def _number(value: Any, field: str) -> Any:
    kind = type(value)
    if kind is int or kind is bool:
        return value
    if kind is float:
        if math.isfinite(value):
            return value
        raise _bad(field, repr(value))
    raise _bad(field, f"a {kind.__name__}")


def _raise(exc: Exception) -> Any:
    raise exc


def _dataclass_encoder(cls: type) -> Encoder:
    # value objects may import names for annotations only (``datetime`` under TYPE_CHECKING)
    hints = typing.get_type_hints(cls, localns={"datetime": datetime})
    fields = [(f.name, encoder_for(hints.get(f.name, Any))) for f in dataclasses.fields(cls)]

    def encode(value: Any, field: str) -> Any:
        if not isinstance(value, cls):
            raise _bad(field, f"a {type(value).__name__} where a {cls.__name__} is expected")
        return {name: enc(getattr(value, name), name) for name, enc in fields}

    return encode


# -- JSON -------------------------------------------------------------------------------------


def _fallback(value: Any) -> Any:
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def dumps(value: Any) -> bytes:
    """JSON bytes of ``value`` (dataclasses, enums, datetimes and mappings included)."""
    return pydantic_core.to_json(value, fallback=_fallback)


def loads(data: bytes | str) -> Any:
    """Parse JSON text; raises ``ValueError`` for malformed input."""
    return pydantic_core.from_json(data)


# -- the server's validators and the caller's result validators --------------------------------


def type_adapter(hint: Any) -> pydantic.TypeAdapter[Any]:
    """A pydantic ``TypeAdapter`` of ``hint`` that resolves the value objects' annotations.

    Port modules import some annotation-only names under ``TYPE_CHECKING`` (``datetime``);
    pydantic resolves forward references in the namespace of the frame that builds the
    adapter, so they are made visible here.
    """
    datetime_ = datetime
    namespace = {"datetime": datetime_}
    adapter: pydantic.TypeAdapter[Any] = pydantic.TypeAdapter(hint)
    with contextlib.suppress(AttributeError, TypeError):  # rebuild() exists from pydantic 2.10
        adapter.rebuild(force=True, _types_namespace=namespace)
    return adapter


@cache
def arguments_validator(spec: MethodSpec) -> pydantic.TypeAdapter[Any]:
    """A strict validator of one request's JSON object of arguments (unknown names refused;
    the server fills in the defaults of absent optional arguments)."""
    fields: dict[str, Any] = {}
    for param in spec.params:
        fields[param.name] = param.hint if param.required else NotRequired[param.hint]
    typed = TypedDict(  # type: ignore[misc]
        f"{spec.port}.{spec.name}", fields
    )
    typed.__pydantic_config__ = pydantic.ConfigDict(extra="forbid")  # type: ignore[attr-defined]
    return type_adapter(typed)


@cache
def result_validator(hint: Any) -> Callable[[Any], Any]:
    """Turns a decoded JSON result back into the declared type (dataclasses, enums, tuples,
    datetimes); plain JSON types pass through untouched."""
    if _plain(hint):
        return _identity
    return type_adapter(hint).validate_python


def _identity(value: Any) -> Any:
    return value


def _plain(hint: Any) -> bool:
    if hint is Any or hint in _SCALARS or hint is None:
        return True
    arms = _union_args(hint)
    if arms:
        return all(_plain(a) for a in arms)
    origin = typing.get_origin(hint)
    if origin in (list, dict):
        return all(_plain(a) for a in typing.get_args(hint))
    return False


# -- tenant ---------------------------------------------------------------------------------


def encode_tenant(ctx: TenantContext) -> str:
    """The tenant context as header-safe (ASCII) JSON text."""
    body: dict[str, Any] = {"tenant_id": ctx.tenant_id}
    if ctx.config:
        body["config"] = _plain_copy(ctx.config, "config")
    return json.dumps(body, ensure_ascii=True, separators=(",", ":"))


def decode_tenant(text: str | bytes) -> TenantContext:
    """The tenant context sent with a call; raises InvalidInputError when malformed."""
    try:
        body = json.loads(text)
    except ValueError:
        raise InvalidInputError("the tenant is not valid JSON", field="tenant") from None
    if not isinstance(body, dict) or not isinstance(body.get("tenant_id"), str):
        raise InvalidInputError("the tenant must be {'tenant_id': str, ...}", field="tenant")
    config = body.get("config", {})
    if not isinstance(config, dict) or set(body) - {"tenant_id", "config"}:
        raise InvalidInputError("the tenant has unknown or malformed fields", field="tenant")
    return TenantContext(body["tenant_id"], config)
