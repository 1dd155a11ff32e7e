"""Helpers shared by test modules. Test modules import helpers from here (or use fixtures
from a ``conftest.py``), never from another test module."""
