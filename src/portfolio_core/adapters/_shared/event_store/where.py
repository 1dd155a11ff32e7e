"""Conditions on nested JSON paths (``EventQuery.where``): validation and the reference
matcher. The SQL adapters translate the same checked conditions into SQL."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from portfolio_core.adapters._shared.codec import is_text
from portfolio_core.ports.errors import InvalidInputError
from portfolio_core.ports.event_store import MAX_WHERE_IN, RecordedEvent, Where, WhereOp

__all__ = ["MAX_PATH_KEYS", "Condition", "check_where", "condition_holds"]

PORT = "EventStore"
MAX_PATH_KEYS = 16
_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
_ORDERED = frozenset({WhereOp.LT, WhereOp.LE, WhereOp.GT, WhereOp.GE})


class Condition(NamedTuple):
    """A checked condition: the column (``data`` or ``metadata``), the keys below it, the
    operator and its value(s) (a tuple of scalars for ``in``)."""

    column: str
    keys: tuple[str, ...]
    op: WhereOp
    value: Any


def _bad(message: str) -> InvalidInputError:
    return InvalidInputError(f"query where: {message}", field="where", port=PORT)


def _scalar(value: object) -> bool:
    if value is None or isinstance(value, (bool, int, str)):
        return not isinstance(value, str) or ("\x00" not in value and is_text(value))
    return isinstance(value, float) and math.isfinite(value)


def check_where(where: object) -> tuple[Condition, ...]:
    """The checked conditions of ``where``, or InvalidInputError naming the problem."""
    if not isinstance(where, (tuple, list)):
        raise _bad(f"must be a tuple of Where, got {type(where).__name__}")
    out: list[Condition] = []
    for item in where:
        if not isinstance(item, Where):
            raise _bad(f"expected a Where, got {type(item).__name__}")
        if not isinstance(item.path, str):
            raise _bad("a path must be a str")
        column, *keys = item.path.split(".")
        if column not in ("data", "metadata") or not keys:
            raise _bad(f"path {item.path!r} must start with 'data.' or 'metadata.'")
        if len(keys) > MAX_PATH_KEYS or not all(_KEY.match(k) for k in keys):
            raise _bad(
                f"path {item.path!r}: keys are 1-64 of A-Z a-z 0-9 _ -, at most "
                f"{MAX_PATH_KEYS} of them"
            )
        try:
            op = WhereOp(item.op)
        except ValueError:
            raise _bad(f"unknown operator {item.op!r}") from None
        value = item.value
        if op is WhereOp.EXISTS:
            if value is not None:
                raise _bad("'exists' takes no value")
        elif op is WhereOp.IN:
            if not isinstance(value, (list, tuple)) or not 0 < len(value) <= MAX_WHERE_IN:
                raise _bad(f"'in' takes a list of 1 to {MAX_WHERE_IN} scalars")
            if not all(_scalar(v) for v in value):
                raise _bad("'in' values must be str, int, finite float, bool or None")
            value = tuple(value)
        elif op in _ORDERED:
            if (
                isinstance(value, bool)
                or not (
                    isinstance(value, (int, str))
                    or (isinstance(value, float) and math.isfinite(value))
                )
                or not _scalar(value)
            ):
                raise _bad(f"{op.value!r} compares with a number or a str, got {value!r}")
        elif not _scalar(value):
            raise _bad(f"{op.value!r} compares with a scalar, got {type(value).__name__}")
        out.append(Condition(column, tuple(keys), op, value))
    return tuple(out)


_MISSING = object()


def _resolve(root: Mapping[str, Any], keys: Sequence[str]) -> Any:
    value: Any = root
    for key in keys:
        if not isinstance(value, Mapping) or key not in value:
            return _MISSING
        value = value[key]
    return value


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "str"
    return "container"


def _equal(stored: Any, want: Any) -> bool:
    kind = _kind(want)
    return _kind(stored) == kind and (kind == "null" or stored == want)


def condition_holds(event: RecordedEvent, condition: Condition) -> bool:
    """Whether ``event`` satisfies ``condition`` (the reference semantics)."""
    root = event.data if condition.column == "data" else event.metadata
    stored = _resolve(root, condition.keys)
    if stored is _MISSING:
        return False
    op, want = condition.op, condition.value
    if op is WhereOp.EXISTS:
        return True
    if op is WhereOp.EQ:
        return _equal(stored, want)
    if op is WhereOp.NE:
        return not _equal(stored, want)
    if op is WhereOp.IN:
        return any(_equal(stored, w) for w in want)
    if _kind(stored) != _kind(want):
        return False
    if op is WhereOp.LT:
        return bool(stored < want)
    if op is WhereOp.LE:
        return bool(stored <= want)
    if op is WhereOp.GT:
        return bool(stored > want)
    return bool(stored >= want)
