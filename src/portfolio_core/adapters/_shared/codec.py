"""The default cache codec: strict JSON, so a shared cache never executes what it reads."""

from __future__ import annotations

import json
from typing import Any

from portfolio_core.ports.errors import CorruptDataError
from portfolio_core.ports.validation import check_json_value as _check

__all__ = ["JsonCodec", "check_json_value", "is_text"]

# built once: json.dumps with non-default options builds an encoder on every call
_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


def is_text(value: str) -> bool:
    """Whether ``value`` is valid Unicode text, i.e. encodable as UTF-8: no lone surrogate
    (U+D800 to U+DFFF, which ``"\\udc80"`` escapes and ``surrogateescape`` decoding make).
    Constant time for ASCII strings."""
    if value.isascii():
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


def check_json_value(
    value: Any, *, field: str = "value", top: bool = True, text: bool = True, depth: int = 1
) -> None:
    """[check_json_value][portfolio_core.ports.validation.check_json_value], with ``top``:
    ``None`` is refused at the top level (a Cache's rule) unless ``top`` is false."""
    _check(value, field=field, allow_none=not top, text=text, depth=depth)


class JsonCodec:
    """UTF-8 JSON. ``encode`` validates strictly (see
    [check_json_value][portfolio_core.ports.validation.check_json_value]); ``decode``
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
