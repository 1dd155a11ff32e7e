"""YAML parsed into plain containers that remember where every key and value came from.

PyYAML's composer gives each node a start mark; this module keeps those marks as
`Origin` values beside the data, so that every later
step (merge, interpolation, validation) can point back at a file, line and column.
Duplicate keys (which PyYAML silently collapses) and keys YAML reads as booleans or numbers
are reported as problems rather than accepted.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from portfolio_core.manifest.errors import Origin, Problem

__all__ = ["LList", "LMap", "find_origin", "load_yaml_file", "load_yaml_text", "to_plain", "walk"]

_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

MAX_MANIFEST_BYTES = 1024 * 1024
"""Largest manifest file read (a manifest is configuration, not data)."""
MAX_YAML_VALUES = 100_000
"""Most values (mappings, lists and scalars, counting every use of an alias) one file may
expand to: YAML aliases can make a few hundred bytes expand to billions of values."""


class _TooLarge(Exception):
    pass


class LMap(dict[str, Any]):
    """A mapping that remembers the origin of itself, of each key and of each value."""

    __slots__ = ("key_origins", "origin", "value_origins")

    def __init__(self, origin: Origin) -> None:
        super().__init__()
        self.origin = origin
        self.key_origins: dict[str, Origin] = {}
        self.value_origins: dict[str, Origin] = {}

    def set(self, key: str, value: Any, key_origin: Origin, value_origin: Origin) -> None:
        self[key] = value
        self.key_origins[key] = key_origin
        self.value_origins[key] = value_origin

    def remove(self, key: str) -> Any:
        self.key_origins.pop(key, None)
        self.value_origins.pop(key, None)
        return self.pop(key)

    def rename(self, old: str, new: str) -> None:
        """Move ``old`` to ``new`` keeping its origins (used by migrations)."""
        key_origin = self.key_origins.get(old, self.origin)
        value_origin = self.value_origins.get(old, self.origin)
        self.set(new, self.remove(old), key_origin, value_origin)


class LList(list[Any]):
    """A list that remembers the origin of itself and of each item."""

    __slots__ = ("origin", "origins")

    def __init__(self, origin: Origin) -> None:
        super().__init__()
        self.origin = origin
        self.origins: list[Origin] = []


def _origin(node: yaml.Node, source: str, layer: str) -> Origin:
    mark = node.start_mark
    return Origin(source, mark.line + 1, mark.column + 1, layer)


def _refuse_expansion_over(node: yaml.Node, limit: int) -> None:
    """Raise ``_TooLarge`` at the first node whose expansion holds more than ``limit`` values.

    Aliases share their node object, so sizes are counted once per distinct node: an alias
    bomb is refused in time proportional to its text, before anything is built."""
    sizes: dict[int, int] = {}

    def size(current: yaml.Node) -> int:
        key = id(current)
        if key in sizes:
            return sizes[key]
        sizes[key] = 0  # a recursive alias counts nothing here; the builder reports it
        total = 1
        if isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                total += size(key_node) + size(value_node)
        elif isinstance(current, yaml.SequenceNode):
            for item in current.value:
                total += size(item)
        if total > limit:
            raise _TooLarge(current)
        sizes[key] = total
        return total

    size(node)


class _Builder:
    def __init__(self, loader: Any, source: str, layer: str, problems: list[Problem]) -> None:
        self.loader = loader
        self.source = source
        self.layer = layer
        self.problems = problems
        self.active: set[int] = set()
        self.budget = MAX_YAML_VALUES

    def build(self, node: yaml.Node, path: tuple[str | int, ...]) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise _TooLarge(node)
        if id(node) in self.active:
            self.problems.append(
                Problem(
                    "yaml-syntax",
                    "recursive YAML alias",
                    path,
                    _origin(node, self.source, self.layer),
                )
            )
            return None
        if isinstance(node, yaml.ScalarNode):
            return self.loader.construct_object(node, deep=True)
        self.active.add(id(node))
        try:
            if isinstance(node, yaml.SequenceNode):
                return self._sequence(node, path)
            assert isinstance(node, yaml.MappingNode)  # noqa: S101  (scalars are handled above)
            return self._mapping(node, path)
        finally:
            self.active.discard(id(node))

    def _sequence(self, node: yaml.SequenceNode, path: tuple[str | int, ...]) -> LList:
        out = LList(_origin(node, self.source, self.layer))
        for index, item in enumerate(node.value):
            out.append(self.build(item, (*path, index)))
            out.origins.append(_origin(item, self.source, self.layer))
        return out

    def _mapping(self, node: yaml.MappingNode, path: tuple[str | int, ...]) -> LMap:
        out = LMap(_origin(node, self.source, self.layer))
        self.loader.flatten_mapping(node)
        for key_node, value_node in node.value:
            key_origin = _origin(key_node, self.source, self.layer)
            if not isinstance(key_node, yaml.ScalarNode):
                self.problems.append(
                    Problem("invalid-key", "mapping keys must be plain strings", path, key_origin)
                )
                continue
            key = self.loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                self.problems.append(
                    Problem(
                        "invalid-key",
                        f"key {key_node.value!r} is read by YAML as "
                        f"{type(key).__name__}, not a string",
                        path,
                        key_origin,
                        hint=f"quote it: '{key_node.value}'",
                    )
                )
                continue
            if key in out:
                first = out.key_origins[key]
                self.problems.append(
                    Problem(
                        "duplicate-key",
                        f"duplicate key {key!r} (first defined at line {first.line}); "
                        "YAML would silently keep only the last one",
                        (*path, key),
                        key_origin,
                    )
                )
                continue
            value = self.build(value_node, (*path, key))
            out.set(key, value, key_origin, _origin(value_node, self.source, self.layer))
        return out


_INDENTATION_PROBLEMS = (
    "expected <block end>",
    "mapping values are not allowed",
    "could not find expected ':'",
    "did not find expected key",
    "did not find expected '-' indicator",
)


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _syntax_problem(exc: yaml.MarkedYAMLError, text: str, source: str, layer: str) -> Problem:
    """A YAML syntax error located where the problem starts, with a hint for the usual causes.

    * An unclosed ``[`` or ``{`` is reported at the bracket (the parser only notices lines
      later, where it meets something a flow collection cannot hold).
    * A tab in the indentation gets the hint that YAML forbids tabs there.
    * A block that is not indented like its siblings (or a nested block not deeper than its
      key) is reported at its line with both indentations.
    """
    problem_mark, context_mark = exc.problem_mark, exc.context_mark
    lines = text.splitlines()
    detail = " ".join(str(p) for p in (exc.context, exc.problem) if p) or "invalid YAML"
    context = exc.context or ""
    if context_mark is not None and context.startswith("while parsing a flow"):
        opener = "[" if "sequence" in context else "{"
        closer = "]" if opener == "[" else "}"
        where = (
            f" (noticed at line {problem_mark.line + 1}, column {problem_mark.column + 1}: "
            f"{exc.problem})"
            if problem_mark is not None
            else ""
        )
        return Problem(
            "yaml-syntax",
            f"invalid YAML: the {opener!r} opened here is not closed{where}",
            (),
            Origin(source, context_mark.line + 1, context_mark.column + 1, layer),
            hint=f"close it with {closer!r} on the same line, separate items with ','"
            f" or quote a value holding {opener!r}, ':' or ','",
        )
    mark = problem_mark or context_mark
    if mark is None:
        return Problem("yaml-syntax", f"invalid YAML: {detail}", (), Origin(source))
    origin = Origin(source, mark.line + 1, mark.column + 1, layer)
    line = lines[mark.line] if mark.line < len(lines) else ""
    tab_lines = [
        n + 1 for n, candidate in enumerate(lines) if "\t" in candidate[: _indent(candidate) + 1]
    ]
    hint: str | None = None
    if "'\\t'" in detail or "\t" in line[: _indent(line) + 1]:
        tab_line = tab_lines[0] if tab_lines else mark.line + 1
        origin = Origin(source, tab_line, 1, layer)
        hint = "YAML forbids tabs for indentation: indent with spaces"
    elif any(kind in (exc.problem or "") for kind in _INDENTATION_PROBLEMS):
        previous = next(
            (
                n
                for n in range(mark.line - 1, -1, -1)
                if lines[n].strip() and not lines[n].lstrip().startswith("#")
            ),
            None,
        )
        origin = Origin(source, mark.line + 1, _indent(line) + 1, layer)
        if previous is None:
            hint = "check the indentation of this line"
        else:
            hint = (
                f"check the indentation: this line is indented by {_indent(line)} spaces, "
                f"line {previous + 1} by {_indent(lines[previous])}; the keys of one mapping "
                "must line up, and a nested block (such as config:) must be indented deeper "
                "than its key"
            )
    return Problem("yaml-syntax", f"invalid YAML: {detail}", (), origin, hint=hint)


def load_yaml_text(text: str, source: str, problems: list[Problem], layer: str = "file") -> Any:
    """Parse one YAML document; problems are appended, and ``None`` returned on failure."""
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _refuse_expansion_over(node, MAX_YAML_VALUES)
        return _Builder(loader, source, layer, problems).build(node, ())
    except yaml.MarkedYAMLError as exc:
        problems.append(_syntax_problem(exc, text, source, layer))
    except yaml.YAMLError as exc:
        problems.append(Problem("yaml-syntax", f"invalid YAML: {exc}", (), Origin(source)))
    except RecursionError:
        problems.append(Problem("yaml-syntax", "YAML nested too deeply", (), Origin(source)))
    except _TooLarge as exc:
        node = exc.args[0]
        problems.append(
            Problem(
                "yaml-too-large",
                f"the document expands to more than {MAX_YAML_VALUES} values "
                "(aliases that refer to aliases multiply)",
                (),
                _origin(node, source, layer),
                "use fewer nested aliases; a manifest is configuration, not data",
            )
        )
    except (ValueError, TypeError, OverflowError) as exc:  # constructor edge cases
        problems.append(Problem("yaml-syntax", f"invalid YAML value: {exc}", (), Origin(source)))
    finally:
        loader.dispose()
    return None


def read_manifest_text(
    path: Path, display: str, problems: list[Problem], origin: Origin
) -> str | None:
    """The text of ``path`` if it is a readable regular file of at most MAX_MANIFEST_BYTES
    of UTF-8; otherwise a problem located at ``origin`` (naming only the file, never its
    content) and ``None``. Never blocks on a FIFO or a device."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        problems.append(Problem("file-not-found", f"file not found: {display}", (), origin))
        return None
    except (OSError, ValueError) as exc:
        problems.append(
            Problem(
                "file-unreadable", f"cannot read {display}: {exc.__class__.__name__}", (), origin
            )
        )
        return None
    too_large = Problem(
        "file-too-large", f"{display} is larger than {MAX_MANIFEST_BYTES} bytes", (), origin
    )
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            problems.append(
                Problem(
                    "file-unreadable",
                    f"{display} is not a regular file (a device, FIFO or folder)",
                    (),
                    origin,
                )
            )
            return None
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_MANIFEST_BYTES:
            chunk = os.read(fd, MAX_MANIFEST_BYTES + 1 - size)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        if size > MAX_MANIFEST_BYTES:
            problems.append(too_large)
            return None
        return b"".join(chunks).decode("utf-8")
    except UnicodeDecodeError:
        problems.append(
            Problem("file-unreadable", f"cannot read {display}: it is not UTF-8 text", (), origin)
        )
        return None
    except OSError as exc:
        problems.append(
            Problem(
                "file-unreadable", f"cannot read {display}: {exc.__class__.__name__}", (), origin
            )
        )
        return None
    finally:
        os.close(fd)


def load_yaml_file(
    path: Path, display: str, problems: list[Problem], origin: Origin, layer: str = "file"
) -> Any:
    """Read and parse ``path``; an unreadable file is a problem located at ``origin``."""
    text = read_manifest_text(path, display, problems, origin)
    if text is None:
        return None
    return load_yaml_text(text, display, problems, layer)


def find_origin(
    tree: Any, path: Sequence[str | int], *, key: bool = False, root: Origin | None = None
) -> Origin | None:
    """The origin of the value at ``path`` (of its key with ``key=True``); when the path
    does not exist, the origin of the deepest existing ancestor."""
    current = tree
    found = getattr(tree, "origin", root)
    for index, part in enumerate(path):
        last = index == len(path) - 1
        if isinstance(current, LMap) and isinstance(part, str) and part in current:
            found = (current.key_origins if key and last else current.value_origins).get(
                part, found
            )
            current = current[part]
        elif isinstance(current, LList) and isinstance(part, int) and 0 <= part < len(current):
            found = current.origins[part]
            current = current[part]
        else:
            break
    return found


def to_plain(value: Any) -> Any:
    """Strip origins: LMap/LList become dict/list (for dumping or hashing)."""
    if isinstance(value, dict):
        return {k: to_plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [to_plain(v) for v in value]
    return value


def walk(
    value: Any, path: tuple[str | int, ...] = ()
) -> Iterator[tuple[tuple[str | int, ...], Any]]:
    """Every leaf (non-container) with its path, in document order."""
    if isinstance(value, dict):
        if not value:
            yield path, value
        for k, v in value.items():
            yield from walk(v, (*path, k))
    elif isinstance(value, list):
        if not value:
            yield path, value
        for i, v in enumerate(value):
            yield from walk(v, (*path, i))
    else:
        yield path, value
