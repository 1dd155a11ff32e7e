"""The one way an adapter declares which optional parts of its port it supports.

An adapter class sets a ``capabilities`` class attribute to a frozenset of capability names
(each port module defines its names as a ``StrEnum``, e.g. ``CacheCapability.TTL``). The
registry's ``find_by_capability`` and the conformance kit's skips both read this attribute
through [capabilities_of][portfolio_core.ports.capabilities.capabilities_of]; nothing else is
consulted.

An operation that needs a capability the adapter does not declare raises
[UnsupportedError][portfolio_core.ports.errors.UnsupportedError];
[require][portfolio_core.ports.capabilities.require] does that check.
"""

from __future__ import annotations

from collections.abc import Iterable

from portfolio_core.ports.errors import UnsupportedError

__all__ = ["capabilities_of", "declare", "require", "supports"]


def capabilities_of(adapter: object) -> frozenset[str]:
    """Return the capabilities ``adapter`` (an instance or a class) declares.

    An adapter that declares nothing supports only its port's required methods.
    A proxy (for instance one the boundary wraps around an adapter) may forward its target's
    declaration by defining ``capabilities`` itself.
    """
    declared = getattr(adapter, "capabilities", None)
    if declared is None:
        return frozenset()
    return frozenset(str(c) for c in declared)


def supports(adapter: object, capability: str) -> bool:
    """Whether ``adapter`` declares ``capability``."""
    return str(capability) in capabilities_of(adapter)


def require(adapter: object, capability: str, operation: str) -> None:
    """Raise [UnsupportedError][portfolio_core.ports.capabilities.UnsupportedError] unless
    ``adapter`` declares ``capability``."""
    if not supports(adapter, capability):
        raise UnsupportedError(
            f"{type(adapter).__name__} does not support {operation} "
            f"(capability {str(capability)!r} not declared)",
            capability=str(capability),
        )


def declare(*capabilities: str | Iterable[str]) -> frozenset[str]:
    """Build a ``capabilities`` declaration from names or iterables of names.

    >>> sorted(declare("cache.ttl", ["cache.bulk"]))
    ['cache.bulk', 'cache.ttl']
    """
    names: set[str] = set()
    for item in capabilities:
        if isinstance(item, str):
            names.add(str(item))
        else:
            names.update(str(c) for c in item)
    return frozenset(names)
