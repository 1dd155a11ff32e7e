"""The default cache codec: strict JSON, so a shared cache never executes what it reads."""

from __future__ import annotations

import json
import math
from typing import Any

from portfolio_core.ports.errors import CorruptDataError, InvalidInputError
from portfolio_core.ports.values import MAX_VALUE_DEPTH

__all__ = ["JsonCodec", "check_json_value"]

_SCALARS = (int, bool)
# built once: json.dumps with non-default options builds an encoder on every call
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def _text(value: str, field: str) -> None:
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError:
            raise InvalidInputError(
                f"{field} holds a string with a lone surrogate, which is not Unicode text",
                field=field,
            ) from None


def check_json_value(
    value: Any, *, field: str = "value", top: bool = True, text: bool = True, depth: int = 1
) -> None:
    """Raise InvalidInputError unless ``value`` follows the stored-value rule of
    :mod:`portfolio_core.ports.values`.

    Accepted: bool, int, finite float, str, lists and str-keyed dicts of those, and ``None``
    nested inside containers (never at the top level when ``top``), at most
    ``MAX_VALUE_DEPTH`` containers deep (``depth`` is the level of ``value``). Tuples, sets,
    bytes and non-str keys are refused rather than silently converted; with ``text``,
    strings holding lone surrogates too.
    """
    t = type(value)
    if t is str:
        if text:
            _text(value, field)
        return
    if t in _SCALARS:
        return
    if t is float:
        if not math.isfinite(value):
            raise InvalidInputError(f"{field} must be a finite float, got {value!r}", field=field)
        return
    if value is None:
        if top:
            raise InvalidInputError("None cannot be stored in a cache", field=field)
        return
    if t is list or t is dict:
        if depth > MAX_VALUE_DEPTH:
            raise InvalidInputError(
                f"{field} is nested more than {MAX_VALUE_DEPTH} containers deep", field=field
            )
        if t is list:
            for item in value:
                check_json_value(item, field=field, top=False, text=text, depth=depth + 1)
            return
        for k, item in value.items():
            if type(k) is not str:
                raise InvalidInputError(f"{field} has a non-string dict key {k!r}", field=field)
            if text:
                _text(k, field)
            check_json_value(item, field=field, top=False, text=text, depth=depth + 1)
        return
    raise InvalidInputError(
        f"{field} must be JSON-compatible (None, bool, int, float, str, list, dict); "
        f"got {t.__name__}",
        field=field,
    )


class JsonCodec:
    """UTF-8 JSON. ``encode`` validates strictly (see :func:`check_json_value`); ``decode``
    raises CorruptDataError for bytes that are not such a value."""

    def encode(self, value: Any) -> bytes:
        check_json_value(value)
        return _ENCODER.encode(value).encode()

    def decode(self, data: bytes) -> Any:
        try:
            return json.loads(data)
        except (ValueError, RecursionError) as exc:
            raise CorruptDataError(
                f"a stored cache value is not valid JSON ({type(exc).__name__})", port="Cache"
            ) from None

    def __repr__(self) -> str:
        return "JsonCodec()"
