"""Orchestration adapters: they compose other adapters rather than store anything.

The router (``MemoryRouter``, and ``RoutedLLM``, an LLM that routes every call), the
pipeline (``MemoryPipeline`` and its steps) and the agent (``MemoryAgent``) run in-process
over the LLM, cache and other adapters they are given. Like every adapter they import only
``ports`` (and boundary helpers), and the manifest chooses them by entry point.
"""
