"""Arguments whose values JSON cannot carry as they are, and how they cross the wire.

A `WireForm` gives such an argument a JSON shape: the caller encodes the port's value
into it (refusing what cannot be sent, naming the field at fault), the server validates the
shape like any argument and decodes it back into the port's value before the adapter is
called. Forms are listed per ``(port, method, argument)`` in `FORMS`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import ConfigDict
from typing_extensions import TypedDict

from portfolio_core.ports.config_store import DELETE
from portfolio_core.ports.errors import InvalidInputError
from portfolio_core.wire._codec import Encoder, _bad, _check_text, check_json

__all__ = ["FORMS", "WireChange", "WireForm"]


@dataclass(frozen=True, slots=True)
class WireForm:
    """The JSON shape of one argument: ``hint`` (what the server validates), ``encode``
    (caller: the port's value to that shape, or InvalidInputError) and ``decode`` (server:
    the validated shape back to the port's value, or InvalidInputError)."""

    hint: Any
    encode: Encoder
    decode: Callable[[Any], Any]


class WireChange(TypedDict, total=False):
    """One key of a ConfigStore batch on the wire: ``{"value": v}`` sets the key,
    ``{"delete": true}`` removes it (the port's `DELETE`)."""

    value: Any
    delete: Literal[True]


WireChange.__pydantic_config__ = ConfigDict(extra="forbid")  # type: ignore[attr-defined]


def _encode_changes(changes: Any, field: str) -> dict[str, WireChange]:
    if not isinstance(changes, Mapping):
        raise _bad(field, f"a {type(changes).__name__} where a mapping is expected")
    out: dict[str, WireChange] = {}
    for key, value in changes.items():
        if type(key) is not str:
            raise _bad(field, f"a non-string key {key!r}")
        _check_text(key, key)
        out[key] = {"delete": True} if value is DELETE else {"value": check_json(value, key)}
    return out


def _decode_changes(wire: Mapping[str, WireChange]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, change in wire.items():
        if ("value" in change) == ("delete" in change):
            raise InvalidInputError(
                f"{key}: a change holds either a value or delete: true", field=key
            )
        out[key] = DELETE if "delete" in change else change["value"]
    return out


FORMS: dict[tuple[str, str, str], WireForm] = {
    ("config_store", "apply", "changes"): WireForm(
        dict[str, WireChange], _encode_changes, _decode_changes
    ),
}
