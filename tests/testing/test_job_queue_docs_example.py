"""The example adapter on the JobQueue port's page passes the whole contract suite."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from portfolio_core.testing.contracts.job_queue import JobQueueContract

PAGE = Path(__file__).resolve().parents[2] / "docs" / "ports" / "job_queue.md"


def _example() -> type:
    text = PAGE.read_text().split("## Implementing it", 1)[1]
    code = re.search(r"```python\n(.*?)```", text, re.S)
    assert code is not None, "the page lost its example adapter"
    namespace: dict[str, Any] = {"__name__": "job_queue_docs_example"}
    exec(compile(code.group(1), str(PAGE), "exec"), namespace)
    return namespace["ListJobQueue"]  # type: ignore[no-any-return]


ListJobQueue = _example()


class TestDocsExampleJobQueue(JobQueueContract):
    @pytest.fixture
    def make_adapter(self) -> Callable[..., Any]:
        def make(*, clock: Callable[[], float]) -> Any:
            return ListJobQueue(clock=clock)

        return make
