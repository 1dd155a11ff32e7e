"""Hostile manifests are refused quickly, with a located ManifestError, and never echo the
content of a file they reach: alias bombs, huge files, diamonds of extends, paths outside the
manifest's folder, devices, FIFOs and NUL characters."""

from __future__ import annotations

import os
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import pytest

from portfolio_core.manifest import ManifestError, plan
from portfolio_core.manifest._compose import EXTENDS_ROOTS_ENV
from portfolio_core.manifest._tree import MAX_MANIFEST_BYTES

Write = Callable[[str, str], Path]
F = "tests.manifest.fakes"
VALID = f"""
schema_version: 1
adapters:
  cache: {{port: cache, adapter: "{F}:DictCache"}}
"""


def rejected(path: Path | str, **environ: str) -> ManifestError:
    with pytest.raises(ManifestError) as caught:
        plan(path, environ=environ)
    return caught.value


ALIAS_BOMB = """\
schema_version: 1
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
"""


def test_an_alias_bomb_is_refused_fast_and_small(write: Write) -> None:
    path = write("bomb.yaml", ALIAS_BOMB)
    assert len(ALIAS_BOMB) < 400
    tracemalloc.start()
    started = time.monotonic()
    try:
        error = rejected(path)
    finally:
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
    assert time.monotonic() - started < 5
    assert peak < 200 * 1024 * 1024
    (problem,) = [p for p in error.problems if p.kind == "yaml-too-large"]
    assert problem.origin.source.endswith("bomb.yaml")
    assert problem.line > 1


def test_a_file_larger_than_the_limit_is_refused_unread(write: Write) -> None:
    path = write("big.yaml", "schema_version: 1\n# " + "x" * MAX_MANIFEST_BYTES + "\n")
    assert rejected(path).kinds == ["file-too-large"]


def test_a_diamond_of_extends_reads_each_file_once(write: Write, tmp_path: Path) -> None:
    # 20 layers, each extending both files of the layer below: 2**20 paths to the base
    write("l0a.yaml", "adapters: {}\n")
    write("l0b.yaml", "adapters: {}\n")
    for level in range(1, 20):
        for side in "ab":
            write(f"l{level}{side}.yaml", f"extends: [l{level - 1}a.yaml, l{level - 1}b.yaml]\n")
    top = write("top.yaml", VALID + "extends: [l19a.yaml, l19b.yaml]\n")
    started = time.monotonic()
    planned = plan(top, environ={})
    assert time.monotonic() - started < 5
    assert "cache" in planned.entries


def test_a_diamond_base_contributes_once_at_its_first_place(write: Write) -> None:
    write("base.yaml", "adapters: {cache: {config: {max_entries: 1}}}\n")
    write("left.yaml", "extends: base.yaml\nadapters: {cache: {config: {max_entries: 2}}}\n")
    write("right.yaml", "extends: base.yaml\n")
    top = write("top.yaml", VALID + "extends: [left.yaml, right.yaml]\n")
    planned = plan(top, environ={})
    assert planned.entries["cache"].config.max_entries == 2


def test_extends_outside_the_manifest_folder_is_refused_without_reading_it(
    tmp_path: Path, write: Write
) -> None:
    secret = tmp_path / "elsewhere" / "secret.yaml"
    secret.parent.mkdir()
    secret.write_text("root: $6$hash-of-the-root-password\n")
    top = write("app/top.yaml", VALID + f"extends: {secret}\n")
    error = rejected(top)
    assert "invalid-extends" in error.kinds
    assert "hash-of-the-root-password" not in str(error)
    (problem,) = [p for p in error.problems if p.kind == "invalid-extends"]
    assert problem.line == 4
    relative = write("app/rel.yaml", VALID + "extends: ../elsewhere/secret.yaml\n")
    assert "invalid-extends" in rejected(relative).kinds
    # explicitly allowed: read (and its unknown key reported by name only)
    allowed = rejected(top, **{EXTENDS_ROOTS_ENV: str(secret.parent)})
    assert "invalid-extends" not in allowed.kinds
    assert "hash-of-the-root-password" not in str(allowed)


@pytest.mark.parametrize("target", ["/dev/zero", "/dev/null", "/etc/shadow", "/etc/passwd"])
def test_system_files_are_refused(write: Write, target: str) -> None:
    top = write("top.yaml", VALID + f"extends: {target}\n")
    error = rejected(top)
    assert "invalid-extends" in error.kinds
    assert "root:" not in str(error)


def test_devices_fifos_and_folders_are_not_read_even_when_allowed(
    tmp_path: Path, write: Write
) -> None:
    fifo = tmp_path / "pipe.yaml"
    os.mkfifo(fifo)
    (tmp_path / "folder.yaml").mkdir()
    for target in (str(fifo), "folder.yaml", "/dev/zero"):
        top = write("top.yaml", VALID + f"extends: {target}\n")
        started = time.monotonic()
        error = rejected(top, **{EXTENDS_ROOTS_ENV: "/dev"})
        assert time.monotonic() - started < 5
        assert "file-unreadable" in error.kinds, target
    assert "file-unreadable" in rejected(fifo).kinds


def test_a_nul_in_a_path_is_a_located_problem(write: Write) -> None:
    top = write("top.yaml", VALID + 'extends: "base\\0.yaml"\n')
    (problem,) = [p for p in rejected(top).problems if p.kind == "invalid-extends"]
    assert problem.line == 4
    assert rejected("top\x00.yaml").kinds == ["file-unreadable"]


def test_a_file_that_is_not_utf8_is_refused_by_name(write: Write, tmp_path: Path) -> None:
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"schema_version: 1\nname: caf\xe9\n")
    error = rejected(path)
    assert error.kinds == ["file-unreadable"]
    assert "caf" not in str(error)


def test_a_file_name_the_system_refuses_is_named_with_the_reason(tmp_path: Path) -> None:
    error = rejected(tmp_path / ("x" * 300 + ".yaml"))
    assert error.kinds == ["file-unreadable"]
    assert "cannot read" in str(error)
    assert str(error).endswith("OSError")
