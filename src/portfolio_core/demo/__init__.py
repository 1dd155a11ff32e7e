"""The end-to-end demo behind ``portfolio-core demo``.

The application is wired entirely from its manifest (``manifest.yaml`` next to this package
when installed, ``examples/demo/manifest.yaml`` in the repository): this package imports
ports, the manifest and the registry, never an adapter. `.steps`, `.tools` and
`.llms` hold the application's own pipeline steps, agent tools and LLM adapters, which
the manifest names by ``module:attribute``.
"""

from __future__ import annotations

__all__: list[str] = []
