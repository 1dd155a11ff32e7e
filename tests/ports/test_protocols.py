"""Every port is satisfied by a minimal hand-written class, statically and at run time,
and is not satisfied by a class missing any one of its members."""

from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from portfolio_core import ports as p
from tests.ports import minimal_adapters
from tests.ports.minimal_adapters import MINIMAL

mypy_api = pytest.importorskip("mypy.api")

ROOT = Path(__file__).resolve().parents[2]


def members(protocol: type) -> set[str]:
    names = {n for n in vars(protocol) if not n.startswith("_")}
    names |= set(getattr(protocol, "__annotations__", {}))
    return names


def test_catalogue_covers_every_port_once() -> None:
    assert {info.protocol for info in p.PORTS} == set(MINIMAL)
    assert len({info.key for info in p.PORTS}) == len(p.PORTS)
    assert len(p.PORTS) >= 13


@pytest.mark.parametrize("protocol", list(MINIMAL), ids=lambda t: t.__name__)
def test_minimal_class_satisfies_port_at_run_time(protocol: type) -> None:
    assert isinstance(MINIMAL[protocol](), protocol)


@pytest.mark.parametrize(
    ("protocol", "member"),
    [(proto, m) for proto in MINIMAL for m in sorted(members(proto))],
    ids=lambda v: v.__name__ if isinstance(v, type) else v,
)
def test_class_missing_a_member_does_not_satisfy_port(protocol: type, member: str) -> None:
    minimal = MINIMAL[protocol]
    body = {k: v for k, v in vars(minimal).items() if k != member and not k.startswith("__")}
    crippled = type(f"{minimal.__name__}Without_{member}", (), body)
    assert not isinstance(crippled(), protocol)


def _run_mypy(path: Path) -> tuple[str, int]:
    out, err, status = mypy_api.run(
        ["--strict", "--no-incremental", "--config-file", str(ROOT / "pyproject.toml"), str(path)]
    )
    return out + err, status


def test_minimal_classes_satisfy_ports_statically() -> None:
    out, status = _run_mypy(Path(minimal_adapters.__file__))
    assert status == 0, out


def test_classes_missing_a_member_are_rejected_statically(tmp_path: Path) -> None:
    """Drop each method from each minimal class in turn: mypy must reject every assignment."""
    tree = ast.parse(Path(minimal_adapters.__file__).read_text())
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    first_class = next(i for i, n in enumerate(tree.body) if isinstance(n, ast.ClassDef))
    lines = [ast.unparse(n) for n in tree.body[:first_class]]
    expected: list[int] = []
    for protocol, minimal in MINIMAL.items():
        node = classes[minimal.__name__]
        methods = [
            f
            for f in node.body
            if isinstance(f, ast.FunctionDef | ast.AsyncFunctionDef) and not f.name.startswith("__")
        ]
        for method in methods:
            kept = [s for s in node.body if s is not method]
            crippled = ast.ClassDef(
                name=f"{minimal.__name__}Without_{method.name}",
                bases=[],
                keywords=[],
                body=kept or [ast.Pass()],
                decorator_list=[],
                type_params=[],
            )
            lines.append(ast.unparse(ast.fix_missing_locations(crippled)))
            lines.append(f"_x_{len(expected)}: p.{protocol.__name__} = {crippled.name}()")
            expected.append(len("\n".join(lines).splitlines()))
    path = tmp_path / "crippled.py"
    path.write_text("\n".join(lines) + "\n")
    out, status = _run_mypy(path)
    assert status == 1, out
    flagged = {int(line.split(":")[1]) for line in out.splitlines() if ": error:" in line}
    missing = [n for n in expected if n not in flagged]
    assert not missing, textwrap.shorten(f"lines not rejected: {missing}\n{out}", 4000)
