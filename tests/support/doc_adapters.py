"""Find every adapter class the documentation and the examples define.

A ```python block of a page under ``docs/`` (not one under a ``<!-- not-run -->`` line, which
is a fragment) is reduced to its definitions (imports, classes, undecorated functions,
assignments of constants and ``TypeVar``s; the statements that run a demonstration are
dropped) and executed;
each ``examples/*.py`` is executed without running its ``__main__`` part. A class defined
there is an adapter of every port whose protocol it fits (``check_class``) and which has a
contract suite, and whose methods are not all abstract (a contract suite or a test class is
not an adapter).
"""

from __future__ import annotations

import ast
import re
import runpy
from dataclasses import dataclass
from pathlib import Path

from portfolio_core.ports.catalogue import PORTS
from portfolio_core.ports.introspection import check_class, members_of
from portfolio_core.testing.contracts import suite_for
from portfolio_core.testing.suite import ContractSuite

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
EXAMPLES = ROOT / "examples"
BLOCK = re.compile(r"(<!-- not-run -->\s*)?```python\n(.*?)```", re.S)
_KEPT = (
    ast.Import,
    ast.ImportFrom,
    ast.ClassDef,
    ast.FunctionDef,
    ast.AsyncFunctionDef,
    ast.Assign,
    ast.AnnAssign,
)


@dataclass(frozen=True)
class DocAdapter:
    """One adapter class found in the docs or the examples, and a port it fits."""

    where: str
    cls: type
    port: str

    @property
    def id(self) -> str:
        return f"{self.where}:{self.cls.__name__}[{self.port}]"


def _is_constant(node: ast.Assign | ast.AnnAssign) -> bool:
    """``T = TypeVar("T")``, ``LIMIT = 3`` or an upper-case module constant such as
    ``EPOCH = datetime(1970, 1, 1, tzinfo=UTC)``: what a class may use, not a demonstration."""
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    if not all(isinstance(target, ast.Name) for target in targets):
        return False
    if all(target.id.isupper() for target in targets if isinstance(target, ast.Name)):
        return True
    value = node.value
    if isinstance(value, ast.Constant):
        return True
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id == "TypeVar"
    )


def _definitions(code: str) -> str:
    tree = ast.parse(code)
    tree.body = [
        node
        for node in tree.body
        if isinstance(node, _KEPT)
        and (not isinstance(node, ast.Assign | ast.AnnAssign) or _is_constant(node))
        # a decorated function registers itself with an object the demonstration made
        and not (isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.decorator_list)
    ]
    return ast.unparse(tree)


def _suites() -> dict[str, type]:
    found: dict[str, type] = {}
    for port in PORTS:
        try:
            found[port.key] = suite_for(port.key)
        except LookupError:
            continue
    return found


def _adapters_in(namespace: dict[str, object], where: str) -> list[DocAdapter]:
    module = namespace["__name__"]
    suites = _suites()
    found = []
    for value in list(namespace.values()):
        if (
            not isinstance(value, type)
            or value.__module__ != module
            or issubclass(value, ContractSuite)
            or value.__name__.startswith("Test")
        ):
            continue
        fits = [p for p in PORTS if p.key in suites and not check_class(value, p.protocol)]
        if not fits:
            continue
        # an Agent has a Pipeline's run(): a class is an adapter of the most specific port
        widest = max(len(members_of(p.protocol)) for p in fits)
        found += [
            DocAdapter(where, value, p.key) for p in fits if len(members_of(p.protocol)) == widest
        ]
    return found


def docs_adapters() -> list[DocAdapter]:
    """Every adapter class defined in a ```python block under ``docs/``."""
    found: list[DocAdapter] = []
    for page in sorted(DOCS.rglob("*.md")):
        relative = page.relative_to(DOCS)
        for i, match in enumerate(BLOCK.finditer(page.read_text())):
            if match.group(1):
                continue
            where = f"docs/{relative}#{i}"
            namespace: dict[str, object] = {"__name__": f"docs_{i}_{page.stem}"}
            exec(compile(_definitions(match.group(2)), where, "exec"), namespace)
            found += _adapters_in(namespace, where)
    return found


def examples_adapters() -> list[DocAdapter]:
    """Every adapter class defined in a module under ``examples/`` (not the third-party
    package, which runs the kit itself)."""
    found: list[DocAdapter] = []
    for path in sorted(EXAMPLES.rglob("*.py")):
        if "third_party_adapter" in path.parts:
            continue
        name = f"examples_{path.stem}"
        namespace = runpy.run_path(str(path), run_name=name)
        found += _adapters_in(namespace, str(path.relative_to(ROOT)))
    return found
