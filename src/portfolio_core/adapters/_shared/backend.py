"""Where an in-process adapter stands in for a networked backend (`reach_backend`)."""

from __future__ import annotations

from collections.abc import Callable

from portfolio_core.ports.errors import UnavailableError

__all__ = ["reach_backend"]


def reach_backend(
    faults: Callable[[str], None] | None, operation: str, *, what: str, port: str
) -> None:
    """Call the fault hook ``faults`` (None: nothing to do) where a networked ``what`` would
    reach its server for ``operation``, before anything is read or changed.

    Raises:
        UnavailableError: the hook raised `OSError` (an unreachable backend); the message
            names ``what`` and ``operation``, and the OSError is its cause. Anything else
            the hook raises passes through unchanged.
    """
    if faults is None:
        return
    try:
        faults(operation)
    except OSError as exc:
        raise UnavailableError(
            f"the {what} backend is unreachable ({operation}): {exc}", port=port
        ) from exc
