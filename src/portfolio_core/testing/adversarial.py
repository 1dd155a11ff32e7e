"""Ids chosen to break the way adapters turn tenant ids, namespaces and keys into names.

Adapters derive file names, key prefixes and folder names from ids; an encoding that is not
injective lets two tenants share data. These ids collide under the usual shortcuts: one
escape per code point (``"\\U000e0001"`` against ``"\\ue000" + "1"``), case folding on
case-insensitive file systems (``"A"`` against ``"a"``), path separators and dot names,
separators of key prefixes (``":"``), and escape characters written literally (``"%41"``).
"""

from __future__ import annotations

from hypothesis import strategies as st

__all__ = ["ADVERSARIAL_IDS", "adversarial_ids"]

ADVERSARIAL_IDS: tuple[str, ...] = (
    "a",
    "A",
    "aA",
    "Aa",
    ".",
    "..",
    "...",
    "./a",
    "a/b",
    "a/../b",
    "b",
    "a\\b",
    "a:b",
    "a:",
    ":a",
    "a%3Ab",
    "a%3ab",
    "%41",
    "%",
    "~",
    "a~b",
    "*",
    "a*",
    "[a]",
    " ",
    "  ",
    "\t",
    "_",
    "-",
    "t",
    "u",
    "\U000e0001",
    "\ue000" + "1",  # the same folder as the one above under one escape per code point
    "\ue000",
    "\U0001f600",
    "é",
    "e\u0301",
    "ß",
    "SS",
    "ss",
    "ǅ",
    "ǆ",
    "K",
    "\u212a",  # KELVIN SIGN, which some file systems fold to "k"
    "k",
    "CON",
    "con",
    "x" * 200,
    "x" * 199 + "y",
    "X" * 200,
)
"""Fixed ids that collide with each other under a non-injective name encoding."""


def adversarial_ids() -> st.SearchStrategy[str]:
    """Non-empty ids: the fixed ones above, or any text of every code point (astral ones
    included) except U+0000 and lone surrogates, which adapters may refuse as invalid."""
    return st.sampled_from(ADVERSARIAL_IDS) | st.text(
        st.characters(exclude_categories=["Cs"], exclude_characters="\x00"),
        min_size=1,
        max_size=8,
    )
