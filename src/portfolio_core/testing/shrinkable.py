"""The clauses every [Shrinkable][portfolio_core.ports.Shrinkable] keeps, as one check.

``check_shrinkable(component, fill)`` runs them on a component and a function that gives it
something to hold; an adapter author calls it from a test. It checks the shape of the
contract, not what a release costs: each adapter's own tests say what goes first.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from portfolio_core.ports.shrinkable import ReleaseOrder, Shrinkable

__all__ = ["check_shrinkable"]

_ALL = 2**62


def check_shrinkable(component: object, fill: Callable[[], None]) -> None:
    """Assert the Shrinkable contract on ``component``; ``fill()`` makes it hold memory it
    may release (nothing pinned). Raises ``AssertionError`` naming the broken clause.

    Clauses: it is Shrinkable with an int ``release_order`` within the documented range;
    ``resident_bytes`` is a non-negative int, positive once filled; ``release`` returns a
    non-negative int, ``release(0)`` no more than is held (it may drop what was dead
    already, such as expired entries), and never makes ``resident_bytes`` grow; after
    releasing everything, a second release frees nothing; ``release`` and
    ``resident_bytes`` called from another thread while ``fill`` runs do not raise.
    """
    assert isinstance(component, Shrinkable), "not Shrinkable (release_order, release, ...)"
    order = component.release_order
    assert isinstance(order, int), f"release_order is {type(order).__name__}, not an int"
    assert ReleaseOrder.PREFIX_CACHE <= order <= ReleaseOrder.CACHE_ENTRIES, (
        f"release_order {order} is outside the documented range"
    )
    empty = component.resident_bytes()
    assert isinstance(empty, int), "resident_bytes() must return an int"
    assert empty >= 0, "resident_bytes() is negative"
    fill()
    held = component.resident_bytes()
    assert held > 0, "resident_bytes() is 0 after fill(): nothing to release"
    none = component.release(0)
    assert isinstance(none, int), "release() must return an int"
    assert 0 <= none <= held, f"release(0) freed {none} of {held} bytes held"
    held = component.resident_bytes()
    some = component.release(1)
    assert some >= 0, "release() returned a negative number"
    after = component.resident_bytes()
    assert after <= held, "release() made resident_bytes() grow"
    component.release(_ALL)
    assert component.resident_bytes() <= after, "release() made resident_bytes() grow"
    assert component.release(_ALL) == 0, "a second release of everything freed more"

    failures: list[BaseException] = []
    stop = threading.Event()

    def pressure() -> None:
        try:
            while not stop.is_set():
                component.release(_ALL)
                component.resident_bytes()
        except BaseException as exc:  # reported below
            failures.append(exc)

    thread = threading.Thread(target=pressure)
    thread.start()
    try:
        fill()
    finally:
        stop.set()
        thread.join()
    assert not failures, f"release() from another thread raised {failures[0]!r}"
