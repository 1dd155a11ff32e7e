"""``call_at(address, method, ...)``: call one method of an addressed entry, wiring nothing."""

from __future__ import annotations

import inspect
from typing import Any

from portfolio_core.adapters.remote._address import parse_address
from portfolio_core.adapters.remote._generate import remote_adapter_class
from portfolio_core.adapters.remote._http import HttpTransport
from portfolio_core.ports.catalogue import port_by_key
from portfolio_core.ports.errors import InvalidInputError, NotFoundError
from portfolio_core.wire import API_PREFIX, CallKind, methods_of

__all__ = ["call_at"]


async def call_at(
    address: str,
    method: str,
    /,
    *args: Any,
    registry: Any = None,
    api_key: str | None = None,
    timeout: float = 30.0,
    **kwargs: Any,
) -> Any:
    """Call ``method`` of the entry at ``address`` with ``args``/``kwargs`` and return its
    result (for an iterating method: the list of every item).

    ``address`` is ``local://<port>/<entry>`` (an entry of ``registry``, any object with the
    registry's ``get(port, name)``), or ``http(s)://`` / ``ws(s)://host:port/<entry>`` (a
    served entry: its port is asked from the portal). Raises the port's errors as a wired
    adapter would; an unknown scheme or a subscription method raises InvalidInputError.
    """
    if address.startswith("local://"):
        port_key, _, entry = address[len("local://") :].partition("/")
        if registry is None:
            raise InvalidInputError("a local:// address needs registry=", field="registry")
        try:
            port = port_by_key(port_key)
        except KeyError:
            raise InvalidInputError(
                f"unknown port {port_key!r} in {address!r}", field="address"
            ) from None
        target = registry.get(port.protocol, entry)
        port_key = port.key
    else:
        parsed = parse_address(address)
        probe = HttpTransport(
            headers={"authorization": f"Bearer {api_key}"} if api_key else {},
            timeout=timeout,
            connect_timeout=min(timeout, 5.0),
            pool_size=1,
            ssl_context=parsed.secure,
        )
        try:
            described = await probe.get(f"{parsed.base}{API_PREFIX}/{parsed.entry}")
        finally:
            await probe.close()
        port_key = str(described.get("port"))
        target = remote_adapter_class(port_key)(address, api_key=api_key, timeout=timeout)
    spec = methods_of(port_key).get(method)
    if spec is None or not callable(getattr(target, method, None)):
        raise NotFoundError(f"a {port_key} entry has no method {method!r}", key=method)
    if spec.kind in (CallKind.SUBSCRIBE, CallKind.UNSUBSCRIBE):
        raise InvalidInputError(
            f"{method}() keeps a subscription open: wire an adapter instead of call_at",
            field="method",
        )
    try:
        result = getattr(target, method)(*args, **kwargs)
        if inspect.isawaitable(result):
            return await result
        return [item async for item in result]
    finally:
        if target is not None and not address.startswith("local://"):
            await target.aclose()
