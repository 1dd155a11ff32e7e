"""What a manifest reports when it is wrong: every problem, located, in one exception.

A `Problem` names where it is (``file:line:column``, or the environment variable or
override that set the value), the YAML path (``adapters.events.config.url``), what is wrong,
and, when one can be guessed, a hint (``did you mean 'sqlite'?``). Loading never stops at
the first problem: `ManifestError` carries all of them.

Secret values are never part of a message: the loader scrubs every resolved secret out of
messages and hints before raising.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from urllib.parse import unquote

__all__ = [
    "ManifestDeprecationWarning",
    "ManifestError",
    "Origin",
    "Problem",
    "did_you_mean",
    "format_path",
]

REDACTED = "**********"


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a value came from.

    ``source`` is a file path (then ``line``/``column`` are 1-based), or a description such
    as ``env PORTFOLIO_CORE__ADAPTERS__CACHE__CONFIG__MAX_ENTRIES`` or ``override`` (then
    ``line`` is 0). ``layer`` is the precedence layer that set it: ``file``, ``extends``,
    ``profile:<name>``, ``env``, ``override`` or ``default``. ``note`` says how the value was
    transformed (``from env DB_HOST``, ``secret env:DB_PASSWORD``).
    """

    source: str
    line: int = 0
    column: int = 0
    layer: str = "file"
    note: str = ""

    @property
    def location(self) -> str:
        """``file:line:column`` for a file, else the source description."""
        if self.line:
            return f"{self.source}:{self.line}:{self.column}"
        return self.source

    def describe(self) -> str:
        """Location plus layer and note, as ``describe`` prints it."""
        parts = [self.location]
        if self.layer not in ("file", "default") and not self.layer.startswith(("env", "override")):
            parts.append(f"[{self.layer}]")
        if self.note:
            parts.append(f"({self.note})")
        return " ".join(parts)

    def with_note(self, note: str) -> Origin:
        return replace(self, note=note)


def format_path(path: Sequence[str | int]) -> str:
    """``("adapters", "events", "config", "url")`` -> ``adapters.events.config.url``;
    list indices print as ``[0]``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out or "<root>"


def did_you_mean(word: str, candidates: Iterable[str]) -> str | None:
    """``did you mean 'x'?`` for the closest candidate, or ``None`` when nothing is close."""
    matches = difflib.get_close_matches(str(word), sorted(set(candidates)), n=1, cutoff=0.6)
    return f"did you mean {matches[0]!r}?" if matches else None


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with a manifest.

    ``kind`` is a stable, matchable code (``unknown-key``, ``missing-env``, ``unknown-adapter``,
    ``adapter-import-failed``, ``invalid-config``, ``dependency-cycle``, ...).
    """

    kind: str
    message: str
    path: tuple[str | int, ...] = ()
    origin: Origin | None = None
    hint: str | None = None

    @property
    def location(self) -> str:
        return self.origin.location if self.origin else "<manifest>"

    @property
    def line(self) -> int:
        return self.origin.line if self.origin else 0

    def __str__(self) -> str:
        text = f"{self.location}: {format_path(self.path)}: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text

    def redacted(self, secrets: Iterable[str]) -> Problem:
        """This problem with every secret, and every fragment of one, masked.

        A fragment is what a parser quotes when a secret holding URL delimiters is
        interpolated into a URL (``Zr9pw`` and ``Qx7`` of ``Zr9pw@Qx7``), its percent-decoded
        form, or any run of 8 of its characters."""
        patterns = secret_fragments(secrets)
        message, hint = self.message, self.hint
        for pattern in patterns:
            message = message.replace(pattern, REDACTED)
            hint = hint.replace(pattern, REDACTED) if hint else hint
        return replace(self, message=message, hint=hint)


_DELIMITERS = re.compile(r"[/#?@:;&=+,\s%\[\]'\"]+")
_MIN_FRAGMENT = 3
_RUN = 8


def secret_fragments(secrets: Iterable[str]) -> list[str]:
    """Every text to mask for ``secrets``, longest first (so a secret is masked whole
    before its fragments)."""
    found: set[str] = set()
    for secret in secrets:
        if not secret:
            continue
        for form in {secret, unquote(secret)}:
            found.add(form)
            found.update(p for p in _DELIMITERS.split(form) if len(p) >= _MIN_FRAGMENT)
            found.update(form[i : i + _RUN] for i in range(len(form) - _RUN + 1))
    return sorted(found, key=len, reverse=True)


def _order(problem: Problem) -> tuple[str, int, int]:
    origin = problem.origin
    return (origin.source, origin.line, origin.column) if origin else ("", 0, 0)


class ManifestError(ValueError):
    """A manifest was rejected; ``problems`` lists every problem found, in file order.

    ``str(error)`` is one line per problem, like a compiler's output::

        app.yaml:12:14: adapters.events.adapter: unknown adapter 'sqlit' for port
        event_store (did you mean 'sqlite'?)
    """

    def __init__(self, problems: Sequence[Problem]) -> None:
        self.problems: tuple[Problem, ...] = tuple(sorted(problems, key=_order))
        count = len(self.problems)
        header = f"manifest rejected: {count} problem{'s' if count != 1 else ''}"
        super().__init__(header + "\n" + "\n".join(f"  {p}" for p in self.problems))

    @property
    def kinds(self) -> list[str]:
        return [p.kind for p in self.problems]


class ManifestDeprecationWarning(DeprecationWarning):
    """A manifest uses an old key or schema version; ``portfolio-core migrate`` updates it."""
