"""portfolio-core: typed ports and adapters for LLM and event-driven applications.

Import the contracts from `portfolio_core.ports`; wire adapters with
`portfolio_core.manifest`; prove an adapter with `portfolio_core.testing`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
