"""Contract suites, one module or package per port (``contracts/<port key>``).

Each module defines one ``<Port>Contract(ContractSuite[<Port>])`` with ``port_key`` set.
`suite_for` finds it by port key, so adding a port's suite needs no edit here.
"""

from __future__ import annotations

import importlib

from portfolio_core.testing.suite import ContractSuite

__all__ = ["suite_for"]

#: port keys whose suite lives in another port's module
_MODULE_OF = {"pipeline_step": "pipeline"}


def suite_for(port_key: str) -> type[ContractSuite[object]]:
    """The contract suite class of the port ``port_key``.

    Raises ``LookupError`` when the port is unknown or has no suite yet.
    """
    from portfolio_core.ports.catalogue import port_by_key

    try:
        port_by_key(port_key)
    except KeyError:
        raise LookupError(f"unknown port {port_key!r}") from None
    module_name = f"{__name__}.{_MODULE_OF.get(port_key, port_key)}"
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name != module_name:
            raise
        raise LookupError(f"the port {port_key!r} has no contract suite yet") from None
    for value in vars(module).values():
        if (
            isinstance(value, type)
            and issubclass(value, ContractSuite)
            and value.__dict__.get("port_key") == port_key
            and value.__module__ == module.__name__
        ):
            return value
    raise LookupError(f"{module_name} defines no suite with port_key {port_key!r}")
