"""The adapters the documentation and the examples teach with pass the conformance kit.

A reader copies them; an example that breaks the contract teaches the bug. Every adapter
class defined in a ```python block under ``docs/`` or in ``examples/`` runs the whole suite
of the port it fits (found by ``tests.support.doc_adapters``), as a third-party author's
adapter would. The only exceptions say so to the reader, in their own docstring: the
port pages' shape sketches and the stand-ins of a demonstration ("it does not pass the
conformance kit").
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from portfolio_core.testing.contracts import suite_for
from tests.support.doc_adapters import DocAdapter, docs_adapters, examples_adapters

FOUND = docs_adapters() + examples_adapters()
NOT_AN_ADAPTER_TO_COPY = "it does not pass the conformance kit"


def _says_it_does_not_pass(adapter: DocAdapter) -> bool:
    return NOT_AN_ADAPTER_TO_COPY in " ".join((adapter.cls.__doc__ or "").split())


ADAPTERS = [a for a in FOUND if not _says_it_does_not_pass(a)]


def test_the_documented_adapters_are_found_and_the_taught_ones_are_checked() -> None:
    checked = {(a.where.split("#")[0], a.cls.__name__) for a in ADAPTERS}
    for expected in [
        ("examples/hello_port.py", "DictCache"),
        ("docs/ports/cache.md", "MinimalCache"),
        ("docs/registry.md", "DictCache"),
        ("docs/boundary/index.md", "DictCache"),
        ("docs/ports/job_queue.md", "ListJobQueue"),
        ("docs/ports/config_store.md", "ListConfigStore"),
        ("docs/testing/index.md", "BytesTokenizer"),
        ("docs/ports/tenant.md", "MinimalTenant"),
        ("docs/ports/tokenizer.md", "MinimalTokenizer"),
        ("docs/ports/pipeline.md", "MinimalPipelineStep"),
        ("docs/ports/llm.md", "MinimalLLM"),
        ("docs/ports/cache_persistence.md", "DictCachePersistence"),
        ("docs/ports/model_backend.md", "RunningSumBackend"),
    ]:
        assert expected in checked, sorted(checked)


def test_an_exempt_class_is_a_sketch_or_a_stand_in_not_an_example_to_copy() -> None:
    for adapter in FOUND:
        if _says_it_does_not_pass(adapter):
            assert adapter.where.startswith("docs/"), adapter.id
            doc = adapter.cls.__doc__ or ""
            assert doc.startswith(("The shape of the port only", "A stand-in")), adapter.id


def _bind(adapter: DocAdapter) -> type:
    def make_adapter(self: object) -> Callable[..., Any]:
        return adapter.cls

    return type(
        f"Test_{adapter.id}",
        (suite_for(adapter.port),),
        {"make_adapter": pytest.fixture(make_adapter), "__module__": __name__},
    )


for _adapter in ADAPTERS:
    globals()[f"Test_{_adapter.id}"] = _bind(_adapter)
