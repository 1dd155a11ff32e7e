"""A module that fails to import: the loader must show this cause."""

import a_module_that_is_not_installed  # noqa: F401
