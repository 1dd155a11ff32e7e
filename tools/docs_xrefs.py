#!/usr/bin/env python3
"""Rewrite Sphinx cross-reference roles into the syntax the docs site renders.

The site is built by mkdocs with mkdocstrings, which shows a Sphinx role such as
``:class:`~portfolio_core.ports.errors.InvalidInputError``` as raw text. mkdocstrings
cross-references are Markdown reference links:
``[InvalidInputError][portfolio_core.ports.errors.InvalidInputError]``.

    python3 tools/docs_xrefs.py --check   # list the Sphinx roles left in src/, docs/; exit 1
    python3 tools/docs_xrefs.py           # rewrite them in place

A role becomes a link when its target is an object the site documents (read from the site's
``objects.inv``, built with ``mkdocs build`` unless ``--inventory`` names one); relative
targets (``:meth:`reload```, ``:class:`FakeClock```) are resolved against the module that
contains them, then against the whole inventory when exactly one object has that name (for a
bare name, one module-level object: another module's class member is never guessed). A
target the site does not document (``:class:`LookupError```, a private helper) becomes
inline code, so the text still reads right. ``~`` shows the last component only, as in Sphinx.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import zlib
from collections.abc import Iterable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ROLE = re.compile(r":(?:py:)?(class|func|meth|mod|attr|data|exc|obj|const):`(~?)([^`]+)`")
SCANNED = ("src", "docs")


def files(root: Path = ROOT) -> list[Path]:
    found: list[Path] = []
    for folder in SCANNED:
        found += sorted((root / folder).rglob("*.py")) + sorted((root / folder).rglob("*.md"))
    return found


def remaining(root: Path = ROOT) -> list[str]:
    """``path:line: role`` for every Sphinx role left under src/ and docs/."""
    hits = []
    for path in files(root):
        for number, line in enumerate(path.read_text().splitlines(), 1):
            hits += [
                f"{path.relative_to(root)}:{number}: {m.group(0)}" for m in ROLE.finditer(line)
            ]
    return hits


def read_inventory(path: Path) -> set[str]:
    """The Python object names in a Sphinx ``objects.inv`` (version 2)."""
    data = path.read_bytes()
    body = data.split(b"\n", 4)[4]
    names = set()
    for line in zlib.decompress(body).decode().splitlines():
        name, domain = line.split(" ", 2)[:2]
        if domain.startswith("py:"):
            names.add(name)
    return names


def build_inventory() -> set[str]:
    with tempfile.TemporaryDirectory() as site:
        env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
        mkdocs = Path(sys.executable).parent / "mkdocs"
        subprocess.run(  # noqa: S603 - the project's own docs build
            [str(mkdocs), "build", "--quiet", "--site-dir", site], cwd=ROOT, env=env, check=True
        )
        return read_inventory(Path(site) / "objects.inv")


def module_of(path: Path, root: Path = ROOT) -> str | None:
    try:
        relative = path.relative_to(root / "src")
    except ValueError:
        return None
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def resolve(target: str, module: str | None, known: set[str]) -> str | None:
    """The documented object ``target`` names, or ``None``."""
    if target in known:
        return target
    candidates: Iterable[str] = ()
    if module is not None:
        scope = module
        while scope:  # the module, then its packages
            if f"{scope}.{target}" in known:
                return f"{scope}.{target}"
            scope = scope.rpartition(".")[0]
        # a method or attribute of a class in this module: ``:meth:`reload```
        candidates = [n for n in known if n.startswith(module + ".") and n.endswith("." + target)]
        if len(candidates) == 1:
            return candidates[0]
    candidates = [n for n in known if n.endswith("." + target)]
    if "." not in target:
        # a bare name elsewhere is a module-level object (a class, a function), never some
        # other class's member: ``:meth:`error``` of a class whose methods the site does not
        # list must not become a link to an unrelated ``Subscription.error``
        candidates = [n for n in candidates if not _is_member(n)]
    return candidates[0] if len(candidates) == 1 else None


def _is_member(name: str) -> bool:
    """Whether ``name`` is a member of a class (its owner is capitalised, modules are not)."""
    owner = name.rpartition(".")[0].rpartition(".")[2]
    return owner[:1].isupper()


def rewrite_text(text: str, module: str | None, known: set[str]) -> str:
    def replace(match: re.Match[str]) -> str:
        _kind, short, target = match.groups()
        target = target.strip()
        shown = target.rpartition(".")[2] if short else target
        found = resolve(target, module, known)
        if found is None:
            return f"`{shown}`"
        return f"[{shown}][{found}]"

    return ROLE.sub(replace, text)


def _wrap(line: str, limit: int) -> list[str]:
    """Split a docstring or comment line made longer than ``limit`` by a rewrite, at its last
    space that fits, continuing with the same indentation (two more after a bullet, and
    ``# `` for a comment). A line with no such space is kept whole."""
    out = []
    indent = line[: len(line) - len(line.lstrip())]
    body = line.lstrip()
    if body.startswith("# "):
        prefix = indent + "# "
    elif body.startswith(("* ", "- ")):
        prefix = indent + "  "
    else:
        prefix = indent
    while len(line) > limit:
        cut = line.rfind(" ", len(prefix) + 1, limit + 1)
        if cut <= len(prefix.rstrip()):
            break
        out.append(line[:cut].rstrip())
        line = prefix + line[cut + 1 :]
    out.append(line)
    return out


def rewrite_file(path: Path, known: set[str], root: Path = ROOT, limit: int = 100) -> str:
    """The text of ``path`` with its roles rewritten; Python lines the rewrite made longer
    than ``limit`` are wrapped."""
    module = module_of(path, root)
    lines = []
    for line in path.read_text().splitlines(keepends=True):
        new = rewrite_text(line, module, known)
        if new != line and path.suffix == ".py" and len(new.rstrip("\n")) > limit:
            ending = "\n" if new.endswith("\n") else ""
            new = "\n".join(_wrap(new.rstrip("\n"), limit)) + ending
        lines.append(new)
    return "".join(lines)


def rewrite(known: set[str], root: Path = ROOT) -> int:
    changed = 0
    for path in files(root):
        text = path.read_text()
        new = rewrite_file(path, known, root)
        if new != text:
            path.write_text(new)
            changed += 1
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only list the roles left; exit 1")
    parser.add_argument("--inventory", type=Path, help="a built site's objects.inv")
    args = parser.parse_args(argv)
    if args.check:
        hits = remaining()
        for hit in hits:
            print(hit)
        if hits:
            print(
                f"{len(hits)} Sphinx roles render raw on the docs site; "
                "run python3 tools/docs_xrefs.py to rewrite them",
                file=sys.stderr,
            )
        return 1 if hits else 0
    known = read_inventory(args.inventory) if args.inventory else build_inventory()
    print(f"rewrote {rewrite(known)} files; {len(remaining())} roles left")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
