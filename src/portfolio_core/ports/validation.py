"""The argument rules the ports share, as checks an adapter author can call.

Every reference adapter applies these same functions, so a hand-written adapter that calls
them refuses exactly what the contract refuses, with the same error:
[InvalidInputError][portfolio_core.ports.errors.InvalidInputError] naming the ``field``, raised
before anything is stored.

* ``check_cache_key``: a Cache key is a non-empty ``str`` of at most ``MAX_KEY_LENGTH``
  (``portfolio_core.ports.cache``) characters, without U+0000 and
  without lone surrogates (it must be Unicode text).
* ``check_ttl``: a time to live is ``None`` (no expiry) or a positive, finite number of
  seconds; ``bool`` is refused although it is an ``int``. Fractions are accepted.
* ``check_json_value``: the stored-value rule of ``portfolio_core.ports.values``: ``None``
  (only inside a container, unless ``allow_none``), bool, int, finite float, str, lists and
  str-keyed dicts of those, at most ``MAX_VALUE_DEPTH`` containers deep; no tuples, sets,
  bytes or non-str keys (JSON would silently turn them into something else) and no string
  that is not Unicode text.

Example, the checks of a ``Cache.put``::

    async def put(self, key: str, value: Any, ttl: float | None = None) -> None:
        check_cache_key(key)
        check_json_value(value)
        seconds = check_ttl(ttl)
        expires = None if seconds is None else self.clock() + seconds
        ...
"""

from __future__ import annotations

import math
from typing import Any

from portfolio_core.ports.cache import MAX_KEY_LENGTH
from portfolio_core.ports.errors import InvalidInputError
from portfolio_core.ports.values import MAX_VALUE_DEPTH

__all__ = ["check_cache_key", "check_json_value", "check_ttl"]

_SCALARS = (int, bool)


def check_cache_key(key: Any) -> str:
    """Return ``key`` when it is a valid Cache key.

    Raises:
        InvalidInputError: (``field="key"``) when ``key`` is not a ``str``, is empty, is
            longer than ``MAX_KEY_LENGTH`` characters, contains U+0000 or a lone surrogate.
    """
    if type(key) is not str or not key or len(key) > MAX_KEY_LENGTH:
        raise InvalidInputError(
            f"cache keys are non-empty strings of at most {MAX_KEY_LENGTH} characters; "
            f"got {type(key).__name__} of length {len(key) if isinstance(key, str) else '-'}",
            field="key",
        )
    if "\x00" in key:
        raise InvalidInputError("cache keys cannot contain the NUL character U+0000", field="key")
    if not key.isascii():
        try:
            key.encode()
        except UnicodeEncodeError:
            raise InvalidInputError(
                "cache keys must be Unicode text; this one holds a lone surrogate", field="key"
            ) from None
    return key


def check_ttl(ttl: Any) -> float | None:
    """Return ``ttl`` as a ``float`` (``None`` stays ``None``: no expiry).

    Raises:
        InvalidInputError: (``field="ttl"``) when ``ttl`` is not ``None`` or a finite
            ``int``/``float`` greater than zero (``True``, ``inf``, ``nan``, ``0``, ``-1`` and
            ``"5"`` are all refused).
    """
    if ttl is None:
        return None
    if isinstance(ttl, bool) or not isinstance(ttl, int | float) or not math.isfinite(ttl):
        raise InvalidInputError(
            f"ttl must be a positive number of seconds, got {ttl!r}", field="ttl"
        )
    if ttl <= 0:
        raise InvalidInputError(f"ttl must be positive, got {ttl!r}", field="ttl")
    return float(ttl)


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
    value: Any,
    *,
    field: str = "value",
    allow_none: bool = False,
    text: bool = True,
    depth: int = 1,
) -> None:
    """Raise unless ``value`` follows the stored-value rule (see the module docstring).

    ``allow_none`` accepts ``None`` at the top level (a Cache refuses it there, so that a
    miss is never ambiguous; event data and configuration values may be ``None``). With
    ``text`` (the default), strings and dict keys holding lone surrogates are refused too.
    ``depth`` is the nesting level of ``value`` itself (1: the top).

    Raises:
        InvalidInputError: (``field=field``) naming what is wrong: the type met, a non-finite
            float, a non-str dict key, a lone surrogate, or nesting deeper than
            ``MAX_VALUE_DEPTH``.
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
        if not allow_none:
            raise InvalidInputError("None cannot be stored in a cache", field=field)
        return
    if t is list or t is dict:
        if depth > MAX_VALUE_DEPTH:
            raise InvalidInputError(
                f"{field} is nested more than {MAX_VALUE_DEPTH} containers deep", field=field
            )
        if t is list:
            for item in value:
                check_json_value(item, field=field, allow_none=True, text=text, depth=depth + 1)
            return
        for k, item in value.items():
            if type(k) is not str:
                raise InvalidInputError(f"{field} has a non-string dict key {k!r}", field=field)
            if text:
                _text(k, field)
            check_json_value(item, field=field, allow_none=True, text=text, depth=depth + 1)
        return
    raise InvalidInputError(
        f"{field} must be JSON-compatible (None, bool, int, float, str, list, dict); "
        f"got {t.__name__}",
        field=field,
    )
