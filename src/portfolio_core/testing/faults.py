"""Backend faults the conformance kit injects, as it injects a clock.

An adapter factory that accepts a ``faults`` parameter receives a :class:`FaultInjector`. The
adapter calls it with the name of the operation (``faults("get")``) at the point where it
talks to its backend -- where a real driver would raise when the server is gone -- and lets
whatever it raises take the adapter's ordinary error path. Clauses then arm a fault and check
that the failure reaches the caller as the documented port error (a lost connection as
:class:`~portfolio_core.ports.errors.UnavailableError`, never a bare ``ConnectionError``), that
nothing was half written, and that the adapter works again once the fault clears.

The contract for an adapter taking ``faults``:

* call it before every backend operation (reads and writes), in the task or thread that
  performs the operation, with a short operation name;
* never call it while holding a partial write: a fault raised there must leave the backend
  as it was before the call (as a real backend that is unreachable would).

Factories that do not accept ``faults`` simply do not get the fault clauses (they are
skipped with that reason).
"""

from __future__ import annotations

from collections.abc import Collection

__all__ = ["FaultInjector", "InjectedFault"]


class InjectedFault(ConnectionError):
    """What an armed :class:`FaultInjector` raises by default: the backend is unreachable.

    A :class:`ConnectionError` (so an :class:`OSError`), like the ones drivers raise when a
    server goes away.
    """


_DEFAULT = InjectedFault("the default fault")


class FaultInjector:
    """Raises armed faults when the adapter reaches its backend.

    >>> faults = FaultInjector()
    >>> faults("get")                 # nothing armed: a no-op
    >>> faults.arm(times=1)
    >>> try:
    ...     faults("get")
    ... except InjectedFault:
    ...     print("unreachable")
    unreachable
    >>> faults("get")                 # the fault was used up
    """

    __slots__ = ("_error", "_only", "_remaining", "calls")

    def __init__(self) -> None:
        self._error: BaseException | None = None
        self._only: frozenset[str] | None = None
        self._remaining = 0
        #: every operation the adapter reported, in order (to check the adapter calls it)
        self.calls: list[str] = []

    def arm(
        self,
        error: BaseException | None = None,
        *,
        times: int | None = None,
        operations: Collection[str] | None = None,
    ) -> None:
        """Make the next backend operations fail with ``error`` (default
        :class:`InjectedFault`), ``times`` times (``None``: until :meth:`clear`), only for
        ``operations`` when given."""
        self._error = error if error is not None else _DEFAULT
        self._remaining = -1 if times is None else times
        self._only = frozenset(operations) if operations is not None else None

    def clear(self) -> None:
        """The backend is healthy again."""
        self._error = None
        self._remaining = 0

    @property
    def armed(self) -> bool:
        return self._error is not None and self._remaining != 0

    def __call__(self, operation: str) -> None:
        self.calls.append(operation)
        if not self.armed or (self._only is not None and operation not in self._only):
            return
        if self._remaining > 0:
            self._remaining -= 1
        if self._error is _DEFAULT:
            raise InjectedFault(f"injected fault: the backend is unreachable during {operation}")
        raise self._error  # type: ignore[misc]  # armed, so not None
