"""The default cache codec: strict JSON, so a shared cache never executes what it reads."""

from __future__ import annotations

import json
import math
from typing import Any

from portfolio_core.ports.errors import InvalidInputError

__all__ = ["JsonCodec", "check_json_value"]

_SCALARS = (str, int, bool)
# built once: json.dumps with non-default options builds an encoder on every call
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def check_json_value(value: Any, *, field: str = "value", top: bool = True) -> None:
    """Raise InvalidInputError unless ``value`` is a JSON value the Cache contract accepts.

    Accepted: bool, int, finite float, str, lists and str-keyed dicts of those, and ``None``
    nested inside containers (never at the top level). Tuples, sets, bytes and non-str keys are
    refused rather than silently converted.
    """
    t = type(value)
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
    if t is list:
        for item in value:
            check_json_value(item, field=field, top=False)
        return
    if t is dict:
        for k, item in value.items():
            if type(k) is not str:
                raise InvalidInputError(f"{field} has a non-string dict key {k!r}", field=field)
            check_json_value(item, field=field, top=False)
        return
    raise InvalidInputError(
        f"{field} must be JSON-compatible (None, bool, int, float, str, list, dict); "
        f"got {t.__name__}",
        field=field,
    )


class JsonCodec:
    """UTF-8 JSON. ``encode`` validates strictly (see :func:`check_json_value`)."""

    def encode(self, value: Any) -> bytes:
        check_json_value(value)
        return _ENCODER.encode(value).encode()

    def decode(self, data: bytes) -> Any:
        return json.loads(data)

    def __repr__(self) -> str:
        return "JsonCodec()"
