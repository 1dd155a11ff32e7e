"""Observable instruments shared by every instance that reports under one name.

OpenTelemetry's SDK keeps one instrument per name and meter: creating it again returns the
first one and drops the new callbacks (with a warning), so a second memory budget, outbox,
projection runner, telemetry or flag set in one process would report nothing. `observe`
registers one instrument per (meter provider, meter, kind, name) and adds each instance's
callback to it; the instrument reports what every live callback observes.

Callbacks that are bound methods are held weakly: an instance that is gone stops reporting
and is not kept alive by the instrument.
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

__all__ = ["observe"]

Kind = Literal["counter", "gauge", "up_down_counter"]
Callback = Callable[[Any], Iterable[Any]]

_lock = threading.Lock()
_shared: weakref.WeakKeyDictionary[Any, dict[tuple[str, Kind, str], _Shared]] = (
    weakref.WeakKeyDictionary()
)


class _Shared:
    """The callbacks one instrument reports for."""

    def __init__(self) -> None:
        self.refs: list[Callable[[], Callback | None]] = []

    def add(self, callback: Callback) -> None:
        if hasattr(callback, "__self__") and hasattr(callback, "__func__"):
            self.refs.append(weakref.WeakMethod(callback))
        else:
            self.refs.append(lambda: callback)

    def collect(self, options: Any) -> Iterator[Any]:
        with _lock:
            live = [(ref, ref()) for ref in self.refs]
            self.refs = [ref for ref, callback in live if callback is not None]
        for _ref, callback in live:
            if callback is not None:
                yield from callback(options)


def observe(
    provider: Any,
    meter: str,
    kind: Kind,
    name: str,
    callback: Callback,
    *,
    unit: str = "",
    description: str = "",
) -> None:
    """Report what ``callback`` observes under the observable instrument ``name``.

    The instrument (``kind``: ``counter``, ``gauge`` or ``up_down_counter``) is created on
    the first call for this ``provider`` and ``meter``; later calls add their callback to
    it, so every instance is reported. ``unit`` and ``description`` are the first call's.
    """
    with _lock:
        by_name = _shared.setdefault(provider, {})
        shared = by_name.get((meter, kind, name))
        created = shared is None
        if shared is None:
            shared = by_name[(meter, kind, name)] = _Shared()
        shared.add(callback)
    if created:
        m = provider.get_meter(meter)
        create = {
            "counter": m.create_observable_counter,
            "gauge": m.create_observable_gauge,
            "up_down_counter": m.create_observable_up_down_counter,
        }[kind]
        create(name, callbacks=[shared.collect], unit=unit, description=description)
