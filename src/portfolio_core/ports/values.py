"""The one rule for JSON values that ports store: Cache values, event data and metadata.

Accepted: ``None`` (inside a container; a Cache refuses it at the top level), bool, int,
finite float, str, lists and str-keyed dicts of those, nested at most
`MAX_VALUE_DEPTH` containers deep. Everything else is refused with
[InvalidInputError][portfolio_core.ports.errors.InvalidInputError] and nothing is stored -- in
particular tuples, sets, bytes and dicts with non-str keys, which JSON would silently turn
into lists and string keys (so that what is read back would not equal what was written),
strings that are not Unicode text (lone surrogates), and deeper nesting (which recursive
encoders and decoders cannot handle).
"""

from __future__ import annotations

__all__ = ["MAX_VALUE_DEPTH"]

MAX_VALUE_DEPTH = 64
"""How many containers (lists and dicts) deep a stored value may be; the top level is 1."""
