"""Table names the SQL adapters put into statements: plain identifiers only, never quoted
user text (a name is interpolated into SQL, so it is checked, not escaped)."""

from __future__ import annotations

import re
from typing import Any

from portfolio_core.ports.errors import InvalidInputError

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}\Z")


def check_identifier(name: Any, what: str = "table", *, field: str = "table") -> str:
    """Return ``name`` when it is a plain SQL identifier of at most 63 characters (letters,
    digits, underscore; not starting with a digit).

    Raises:
        InvalidInputError: (``field=field``, a `ValueError` too) naming ``what`` for anything
            else, a value that is not a ``str`` included.
    """
    if type(name) is not str or not _PLAIN.match(name):
        raise InvalidInputError(
            f"{what} {name!r} is not a plain SQL identifier (at most 63 letters, digits and "
            "underscores, not starting with a digit)",
            field=field,
        )
    return name
