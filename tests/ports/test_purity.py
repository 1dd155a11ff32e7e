"""The ports layer imports only the standard library."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

PROBE = """
import json, sys
before = set(sys.modules)
from portfolio_core.ports import *  # every port, value object and error
after = set(sys.modules) - before
print(json.dumps(sorted(after)))
"""


def test_importing_ports_loads_no_third_party_module() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], check=True, capture_output=True, text=True
    ).stdout
    loaded = json.loads(out)
    third_party = sorted(
        m
        for m in loaded
        if m.split(".")[0] not in sys.stdlib_module_names and m.split(".")[0] != "portfolio_core"
    )
    assert third_party == [], f"portfolio_core.ports pulled in {third_party}"
    assert "portfolio_core.ports.event_store" in loaded  # the probe really imported the ports


def test_ports_import_no_other_portfolio_core_package() -> None:
    out = subprocess.run(
        [sys.executable, "-c", PROBE], check=True, capture_output=True, text=True
    ).stdout
    ours = {m for m in json.loads(out) if m.startswith("portfolio_core.")}
    assert all(m.startswith("portfolio_core.ports") for m in ours), ours


def test_lazy_exports_match_all_and_resolve() -> None:
    import portfolio_core.ports as ports

    assert sorted(ports.__all__) == sorted(ports._EXPORTS)
    for name in ports.__all__:
        value = getattr(ports, name)
        module = f"portfolio_core.ports.{ports._EXPORTS[name]}"
        assert getattr(sys.modules[module], name) is value, name


def test_unknown_name_is_an_attribute_error() -> None:
    import portfolio_core.ports as ports

    with pytest.raises(AttributeError, match="no attribute 'Nope'"):
        _ = ports.Nope
