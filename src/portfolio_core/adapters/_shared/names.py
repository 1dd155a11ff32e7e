"""One encoding of tenant ids, namespaces and keys into file and folder names.

Every file adapter derives names through `file_name`, so that two different ids never
share a file or folder, on any file system this library supports:

* lowercase ASCII letters, digits, ``-`` and ``_`` stand for themselves;
* every other character -- upper case letters included, and ``.``, ``/``, ``\\``, ``:``,
  ``%``, ``~`` -- is written as the ``%XX`` escapes (upper-case hex) of its UTF-8 bytes, a
  fixed-width code that cannot be read two ways (unlike one escape per code point);
* a name whose encoding would exceed `MAX_NAME` characters keeps a readable prefix
  followed by ``~`` and the SHA-256 of the id (``~`` never appears in the short form).

The result is injective even when the file system ignores case (upper-case letters are
escaped and the only letters a short name holds besides escapes are lowercase), never ``.``
or ``..``, never hidden (no leading dot), and at most `MAX_NAME` characters. Empty
names and names that are not Unicode text (lone surrogates) are refused.
"""

from __future__ import annotations

import hashlib

from portfolio_core.ports.errors import InvalidInputError

__all__ = ["MAX_NAME", "file_name", "name_of"]

MAX_NAME = 120
_PLAIN = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_")
_DIGEST = 64


def file_name(name: str, *, what: str = "name") -> str:
    """The file-system-safe, injective name of ``name`` (see the module docstring)."""
    if not isinstance(name, str) or not name:
        raise InvalidInputError(f"{what} must be a non-empty string", field=what)
    try:
        raw = name.encode()
    except UnicodeEncodeError:
        raise InvalidInputError(
            f"{what} contains a lone surrogate, which is not Unicode text", field=what
        ) from None
    out = "".join(c if c in _PLAIN else "".join(f"%{b:02X}" for b in c.encode()) for c in name)
    if len(out) <= MAX_NAME:
        return out
    return out[: MAX_NAME - _DIGEST - 1] + "~" + hashlib.sha256(raw).hexdigest()


def name_of(encoded: str) -> str | None:
    """The id a short `file_name` stands for; ``None`` for a hashed (long) name or a
    name this encoding does not produce."""
    if "~" in encoded:
        return None
    out = bytearray()
    i = 0
    while i < len(encoded):
        c = encoded[i]
        if c == "%":
            try:
                out.append(int(encoded[i + 1 : i + 3], 16))
            except ValueError:
                return None
            i += 3
        elif c in _PLAIN:
            out += c.encode()
            i += 1
        else:
            return None
    try:
        decoded = out.decode()
    except UnicodeDecodeError:
        return None
    return decoded if decoded and file_name(decoded) == encoded else None
