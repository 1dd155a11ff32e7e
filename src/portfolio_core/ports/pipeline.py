"""Pipeline: named steps that read a shared context and add their outputs to it.

Contract
--------
* A step declares ``required_inputs`` (context keys it reads) and ``output_schema`` (keys it
  writes, with their Python types). A pipeline is validated when built: every required input
  is produced by an earlier step or supplied as a pipeline input, types agree, and the step
  graph has no cycle; otherwise [InvalidInputError][portfolio_core.ports.errors.InvalidInputError]
  names the steps involved. A step may also declare an optional ``input_schema`` attribute
  (``Mapping[str, type]``) giving the types it expects for some inputs; pipelines use it
  to report type mismatches when they are built.
* ``validate_input`` returns the list of problems with a context (empty when valid); it never
  raises for bad input.
* ``execute`` returns a [StepResult][portfolio_core.ports.pipeline.StepResult] with status ``ok``
  (and outputs matching the
  schema), ``error`` (with a message) or ``skip`` (with a reason); it raises only for
  programming errors. A ``cacheable`` step's result depends only on its inputs, its
  ``version`` and its config, so a pipeline may serve it from a Cache.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

__all__ = ["Pipeline", "PipelineResult", "PipelineStep", "StepResult", "StepStatus"]


class StepStatus(StrEnum):
    OK = "ok"
    ERROR = "error"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class StepResult:
    """The outcome of one step. Build it with ``StepResult.ok(**outputs)``,
    ``StepResult.error(message)`` or ``StepResult.skip(reason)``."""

    status: StepStatus
    outputs: Mapping[str, Any] = field(default_factory=dict)
    message: str = ""

    @classmethod
    def ok(cls, **outputs: Any) -> StepResult:
        return cls(StepStatus.OK, dict(outputs))

    @classmethod
    def error(cls, message: str) -> StepResult:
        return cls(StepStatus.ERROR, {}, message)

    @classmethod
    def skip(cls, reason: str) -> StepResult:
        return cls(StepStatus.SKIP, {}, reason)


@dataclass(frozen=True, slots=True)
class PipelineResult:
    """A finished pipeline run: final context, each step's result, which came from cache."""

    context: Mapping[str, Any]
    steps: Mapping[str, StepResult]
    cached: frozenset[str] = frozenset()

    @property
    def ok(self) -> bool:
        return all(r.status is not StepStatus.ERROR for r in self.steps.values())


@runtime_checkable
class PipelineStep(Protocol):
    """One step of a pipeline (``execute`` is async, the rest is static description)."""

    name: str
    version: str

    @property
    def required_inputs(self) -> frozenset[str]:
        """Context keys this step reads."""
        ...

    @property
    def output_schema(self) -> Mapping[str, type]:
        """Context keys this step writes and their types."""
        ...

    @property
    def cacheable(self) -> bool:
        """Whether the result is a pure function of inputs, version and config."""
        ...

    def validate_input(self, context: Mapping[str, Any]) -> list[str]:
        """Problems with ``context`` for this step; empty when it may run."""
        ...

    async def execute(self, context: Mapping[str, Any], config: Mapping[str, Any]) -> StepResult:
        """Run the step; see the module docstring."""
        ...


@runtime_checkable
class Pipeline(Protocol):
    """A validated sequence (or graph) of steps."""

    async def run(self, inputs: Mapping[str, Any]) -> PipelineResult:
        """Run every step in order; a step's error stops the steps that depend on it."""
        ...
