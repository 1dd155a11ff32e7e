"""Table names the SQL adapters put into statements: plain identifiers only, never quoted
user text (a name is interpolated into SQL, so it is checked, not escaped)."""

from __future__ import annotations

import re

_PLAIN = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}\Z")


def check_identifier(name: str, what: str = "table") -> str:
    """Return ``name`` when it is a plain SQL identifier of at most 63 characters (letters,
    digits, underscore; not starting with a digit); raise `ValueError` naming ``what``."""
    if not _PLAIN.match(name):
        raise ValueError(f"{what} {name!r} is not a plain SQL identifier")
    return name
