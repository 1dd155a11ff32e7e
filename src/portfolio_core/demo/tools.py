"""The agent's typed tools, named in the demo manifest as ``module:attribute``.

``count_events`` reads the EventStore the running application put in `EVENTS` (a
context variable: tools are plain functions imported by the manifest, so the application
hands them its services at run time instead of at import time).
"""

from __future__ import annotations

import ast
import operator
from collections.abc import Callable
from contextvars import ContextVar
from typing import Literal

from portfolio_core.ports import EventQuery, EventStore, InvalidInputError, UnavailableError

__all__ = ["EVENTS", "calculator", "count_events", "evaluate"]

EVENTS: ContextVar[EventStore] = ContextVar("portfolio_core_demo_events")

_BINARY: dict[type[ast.operator], Callable[[float, float], float]] = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.FloorDiv: operator.floordiv,
    ast.Mod: operator.mod,
    ast.Pow: operator.pow,
}
_MAX_EXPONENT = 64


def evaluate(expression: str) -> float:
    """The value of an arithmetic expression (numbers, + - * / // % **, parentheses).

    Raises ``InvalidInputError`` for anything else (names, calls, huge powers, division by
    zero): the expression is parsed, never executed.
    """
    try:
        tree = ast.parse(expression, mode="eval")
    except SyntaxError as exc:
        raise InvalidInputError(f"not an arithmetic expression: {expression!r}") from exc

    def value(node: ast.AST) -> float:
        constant = node.value if isinstance(node, ast.Constant) else None
        if isinstance(constant, int | float) and not isinstance(constant, bool):
            return float(constant)
        if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub | ast.UAdd):
            inner = value(node.operand)
            return -inner if isinstance(node.op, ast.USub) else inner
        if isinstance(node, ast.BinOp) and type(node.op) in _BINARY:
            left, right = value(node.left), value(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > _MAX_EXPONENT:
                raise InvalidInputError(f"exponent too large in {expression!r}")
            try:
                return _BINARY[type(node.op)](left, right)
            except ZeroDivisionError as exc:
                raise InvalidInputError(f"division by zero in {expression!r}") from exc
        raise InvalidInputError(f"unsupported element in {expression!r}")

    return value(tree.body)


def calculator(expression: str) -> str:
    """Evaluate an arithmetic expression such as '(17 + 25) * 3'."""
    result = evaluate(expression)
    return str(int(result)) if result.is_integer() else f"{result:.6g}"


async def count_events(
    event_type: Literal["QuestionAsked", "AnswerGiven", "AgentAnswered", "DemoRunStarted"],
    provider: str | None = None,
) -> str:
    """Count the events of one type recorded so far (answers optionally by provider)."""
    store = EVENTS.get(None)
    if store is None:
        raise UnavailableError("no event store is available to this tool")
    data = {"provider": provider} if provider else {}
    found = await store.query(EventQuery(types=frozenset({event_type}), data=data))
    suffix = f" from provider {provider!r}" if provider else ""
    plural = "" if len(found) == 1 else "s"
    return f"{len(found)} {event_type} event{plural}{suffix}"
