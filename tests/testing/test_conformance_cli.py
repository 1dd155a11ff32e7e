"""``portfolio-core conformance`` prints a per-clause report and exits 0/1/2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


class _Result:
    def __init__(self, done: subprocess.CompletedProcess[str]) -> None:
        self.status = done.returncode
        self.out = done.stdout
        self.err = done.stderr


def cli(*args: str) -> _Result:
    done = subprocess.run(
        [sys.executable, "-m", "portfolio_core.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    return _Result(done)


def test_passing_adapter_exits_zero() -> None:
    result = cli("conformance", "--port", "tokenizer", "tests.testing.adapters:ByteTokenizer")
    out = result.out
    assert result.status == 0, out + result.err
    assert "adapter: tests.testing.adapters.ByteTokenizer" in out
    assert "PASSED   tokenizer.round_trip" in out
    assert "SKIPPED  kit.factory.independent - tokenizer port keeps no state" in out


def test_broken_adapter_exits_one_naming_the_clause() -> None:
    result = cli(
        "conformance",
        "--port",
        "tokenizer",
        "tests.testing.broken.kit_owned:TokenizerForgesEos",
        "--max-examples",
        "5",
    )
    out = result.out
    assert result.status == 1
    first = out.splitlines()[3]
    assert first.startswith("  FAILED   tokenizer.special.not_forged - ")
    assert "produced special ids" in first


def test_json_report() -> None:
    import json

    result = cli(
        "conformance", "--port", "llm", "tests.testing.adapters:EchoLLM", "--json", "-k", "usage"
    )
    rows = [json.loads(line) for line in result.out.splitlines()]
    assert result.status == 0
    assert {"clause": "llm.complete.usage", "outcome": "passed"}.items() <= rows[0].items()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--port", "tokenizer", "no_such_module:X"], "cannot import 'no_such_module'"),
        (["--port", "tokenizer", "tests.testing.adapters"], "not of the form module:attribute"),
        (["--port", "tokenizer", "tests.testing.adapters:Nope"], "has no attribute 'Nope'"),
    ],
)
def test_bad_arguments_exit_two(args: list[str], message: str) -> None:
    result = cli("conformance", *args)
    assert result.status == 2
    assert message in result.err


def test_an_adapter_of_another_port_is_one_clear_error_naming_the_port_it_fits() -> None:
    result = cli("conformance", "--port", "cache", "tests.testing.adapters:ByteTokenizer")
    assert result.status == 2, result.out + result.err
    assert result.out == ""
    (line,) = result.err.splitlines()
    assert line.startswith(
        "portfolio-core conformance: ByteTokenizer does not implement Cache: missing clear()"
    )
    assert line.endswith("; it fits --port tokenizer")


def test_a_factory_that_raises_is_one_clear_error() -> None:
    result = cli("conformance", "--port", "cache", "tests.testing.adapters:unreachable_database")
    assert result.status == 2, result.out + result.err
    assert result.out == ""
    assert result.err.splitlines() == [
        "portfolio-core conformance: the factory tests.testing.adapters:unreachable_database "
        "raised ConnectionRefusedError: cannot reach the database at 127.0.0.1:1 (it must "
        "return a fresh, empty adapter when called with no arguments)"
    ]
