"""Clauses: the named promises of a port that each contract test checks.

A contract test is decorated with `clause` (its id and one sentence of the promise);
the kit prefixes every failure of that test with the id, so a report says which promise an
adapter broke, not just which assertion. `requires` and `requires_absent` gate a
test on the adapter's capability declaration.
"""

from __future__ import annotations

import copy
import functools
import inspect
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import pytest

from portfolio_core.ports.errors import UnsupportedError

__all__ = [
    "CLAUSE_ATTR",
    "Clause",
    "clause",
    "clause_of",
    "expect_unsupported",
    "expected_failure",
    "kit_async",
    "requires",
    "requires_absent",
]

P = ParamSpec("P")
R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])

#: attribute a contract test function carries its `Clause` under
CLAUSE_ATTR = "__kit_clause__"
#: attribute marking a function the kit converted from ``async def``
ASYNC_ATTR = "__kit_async__"
#: the fixture that carries the test's LoopRunner
RUNNER_FIXTURE = "kit_runner"

_CLAUSE_ID = re.compile(r"^[a-z][a-z0-9_]*(\.[a-z0-9_]+)+$")


@dataclass(frozen=True, slots=True)
class Clause:
    """One promise of a port: a dotted id (``cache.ttl.expires``) and what it promises."""

    id: str
    text: str

    def __str__(self) -> str:
        return f"{self.id}: {self.text}" if self.text else self.id


def kit_async(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Turn an ``async def`` test into a plain one that runs on the kit's loop.

    The plain function asks pytest for the ``kit_runner`` fixture (added to its signature)
    and runs the coroutine there. Plain functions are returned unchanged. Idempotent.
    """
    if not inspect.iscoroutinefunction(fn) or getattr(fn, ASYNC_ATTR, False):
        return fn
    signature = inspect.signature(fn)
    wants_runner = RUNNER_FIXTURE in signature.parameters

    @functools.wraps(fn)
    def run_on_kit_loop(*args: Any, **kwargs: Any) -> None:
        runner = kwargs[RUNNER_FIXTURE] if wants_runner else kwargs.pop(RUNNER_FIXTURE)
        runner.run(fn(*args, **kwargs))

    params = list(signature.parameters.values())
    if not wants_runner:
        params.append(inspect.Parameter(RUNNER_FIXTURE, inspect.Parameter.KEYWORD_ONLY))
    run_on_kit_loop.__signature__ = signature.replace(  # type: ignore[attr-defined]
        parameters=params, return_annotation=None
    )
    setattr(run_on_kit_loop, ASYNC_ATTR, True)
    return run_on_kit_loop


def clause(clause_id: str, text: str = "") -> Callable[[F], F]:
    """Mark a contract test with the clause it checks.

    ``clause_id`` is dotted and starts with the port key (``cache.ttl.expires``); ``text``
    states the promise in one sentence. ``async def`` tests are run on the kit's own loop.
    """
    if not _CLAUSE_ID.match(clause_id):
        raise ValueError(
            f"clause id {clause_id!r} must be dotted lowercase words, e.g. 'cache.ttl.expires'"
        )

    def decorate(fn: F) -> F:
        wrapped = kit_async(fn)
        setattr(wrapped, CLAUSE_ATTR, Clause(clause_id, text))
        return pytest.mark.kit_clause(clause_id, text)(wrapped)  # type: ignore[no-any-return]

    return decorate


def clause_of(obj: object) -> Clause | None:
    """The clause a test function (or pytest item's function) checks, if any."""
    found = getattr(obj, CLAUSE_ATTR, None)
    return found if isinstance(found, Clause) else None


def requires(*capabilities: str) -> Callable[[F], F]:
    """Run the test only when the adapter declares every one of ``capabilities``.

    Otherwise it is skipped with a reason naming the missing capability.
    """
    names = tuple(str(c) for c in capabilities)

    def decorate(fn: F) -> F:
        return pytest.mark.kit_requires(*names)(fn)  # type: ignore[no-any-return]

    return decorate


def requires_absent(*capabilities: str) -> Callable[[F], F]:
    """Run the test only when the adapter declares none of ``capabilities``.

    Used for the checks that an undeclared feature raises ``UnsupportedError``.
    """
    names = tuple(str(c) for c in capabilities)

    def decorate(fn: F) -> F:
        return pytest.mark.kit_requires_absent(*names)(fn)  # type: ignore[no-any-return]

    return decorate


@contextmanager
def expect_unsupported(capability: str | None = None) -> Iterator[None]:
    """Assert that the block raises
    [UnsupportedError][portfolio_core.testing.clauses.UnsupportedError] (for ``capability`` if
    given).

    An error whose ``capability`` attribute is set must name ``capability``.
    """
    try:
        yield
    except UnsupportedError as exc:
        if capability is not None and exc.capability not in (None, str(capability)):
            raise AssertionError(
                f"UnsupportedError names capability {exc.capability!r}, expected "
                f"{str(capability)!r}"
            ) from exc
        return
    raise AssertionError(
        "an operation whose capability "
        + (f"{str(capability)!r} " if capability else "")
        + "is not declared must raise UnsupportedError, but it returned normally"
    )


def expected_failure(test: F, *, reason: str) -> F:
    """A copy of a contract test marked ``xfail(strict=True, reason=reason)``.

    The only accepted way to opt out of a clause (the tamper guard rejects any other
    override)::

        class TestMyCache(CacheContract):
            test_ttl_expires = expected_failure(
                CacheContract.test_ttl_expires, reason="TTLs are rounded to whole seconds"
            )

    Because the test is strict, the run fails again as soon as the adapter is fixed.
    """
    if not reason.strip():
        raise ValueError("expected_failure needs a reason saying why the clause is not met")
    copied = _copy_function(test)
    return pytest.mark.xfail(strict=True, reason=reason)(copied)  # type: ignore[no-any-return]


def _copy_function(fn: F) -> F:
    import types

    if not isinstance(fn, types.FunctionType):
        raise TypeError(f"expected a test function, got {fn!r}")
    new = types.FunctionType(
        fn.__code__, fn.__globals__, fn.__name__, fn.__defaults__, fn.__closure__
    )
    new.__dict__.update(copy.copy(fn.__dict__))
    new.__dict__["pytestmark"] = list(fn.__dict__.get("pytestmark", []))
    new.__kwdefaults__ = fn.__kwdefaults__
    new.__qualname__ = fn.__qualname__
    new.__doc__ = fn.__doc__
    new.__module__ = fn.__module__
    return new  # type: ignore[return-value]
