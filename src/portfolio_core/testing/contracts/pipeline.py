"""Contract suites of the PipelineStep and Pipeline ports.

``PipelineStepContract`` needs only ``make_adapter`` (a factory of the step). A valid context
for ``execute`` is built from ``required_inputs`` with string values; an author whose step
needs other values overrides the optional ``valid_context`` fixture (tests needing it are
skipped, with a reason, when the default does not validate).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portfolio_core.ports.errors import InvalidInputError
from portfolio_core.ports.pipeline import (
    Pipeline,
    PipelineResult,
    PipelineStep,
    StepResult,
    StepStatus,
)
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.loop import LoopRunner
from portfolio_core.testing.machines import property_settings
from portfolio_core.testing.plugin import KitSettings
from portfolio_core.testing.suite import ContractSuite

__all__ = ["PipelineContract", "PipelineStepContract"]

_values = st.one_of(st.text(max_size=10), st.integers(), st.none(), st.booleans())


class PipelineStepContract(ContractSuite[PipelineStep]):
    """The promises of [PipelineStep][portfolio_core.ports.PipelineStep]
    (docs/ports/pipeline.md)."""

    port_key = "pipeline_step"

    @pytest.fixture
    def valid_context(self, adapter: PipelineStep) -> Mapping[str, Any]:
        """Optional override: a context the step accepts (default: a string per input)."""
        return {key: f"sample {key}" for key in adapter.required_inputs}

    def _usable(self, adapter: PipelineStep, context: Mapping[str, Any]) -> Mapping[str, Any]:
        problems = adapter.validate_input(context)
        if problems:
            pytest.skip(
                f"the default context does not satisfy the step ({problems}); override the "
                "valid_context fixture"
            )
        return context

    @clause(
        "pipeline_step.describe",
        "name, version, required_inputs, output_schema and cacheable are well typed",
    )
    def test_description(self, adapter: PipelineStep) -> None:
        assert isinstance(adapter.name, str), "a step's name is a string"
        assert adapter.name, "a step needs a name"
        assert isinstance(adapter.version, str), "a step's version is a string"
        assert adapter.version, "a step needs a version"
        assert isinstance(adapter.required_inputs, frozenset)
        assert all(isinstance(k, str) for k in adapter.required_inputs)
        schema = adapter.output_schema
        assert all(isinstance(k, str) and isinstance(t, type) for k, t in schema.items()), schema
        assert isinstance(adapter.cacheable, bool)

    @clause(
        "pipeline_step.validate.missing_inputs",
        "a context missing any required input is reported by validate_input, which never raises",
    )
    def test_rejects_missing_inputs(
        self, adapter: PipelineStep, valid_context: Mapping[str, Any], kit_settings: KitSettings
    ) -> None:
        required = sorted(adapter.required_inputs)
        if not required:
            pytest.skip("the step requires no inputs")

        @property_settings(kit_settings)
        @given(data=st.data())
        def rejects(data: st.DataObject) -> None:
            missing = data.draw(st.sets(st.sampled_from(required), min_size=1), label="missing")
            extra = data.draw(
                st.dictionaries(
                    st.text(min_size=1, max_size=5).filter(lambda k: k not in required),
                    _values,
                    max_size=3,
                ),
                label="extra",
            )
            context = {k: v for k, v in valid_context.items() if k not in missing} | extra
            problems = adapter.validate_input(context)
            assert isinstance(problems, list)
            assert problems, f"validate_input accepted a context missing {sorted(missing)}"

        rejects()

    @clause(
        "pipeline_step.validate.never_raises",
        "validate_input returns problems for any context, never raises",
    )
    def test_validate_never_raises(self, adapter: PipelineStep, kit_settings: KitSettings) -> None:
        @property_settings(kit_settings)
        @given(context=st.dictionaries(st.text(max_size=8), _values, max_size=5))
        def never_raises(context: dict[str, Any]) -> None:
            problems = adapter.validate_input(context)
            assert isinstance(problems, list)
            assert all(isinstance(p, str) for p in problems)

        never_raises()

    @clause("pipeline_step.validate.valid", "a context with every required input validates")
    def test_valid_context_accepted(
        self, adapter: PipelineStep, valid_context: Mapping[str, Any]
    ) -> None:
        assert adapter.validate_input(valid_context) == []

    @clause(
        "pipeline_step.execute.schema",
        "an ok result has exactly the outputs of output_schema, with their types",
    )
    async def test_execute_outputs_match_schema(
        self, adapter: PipelineStep, valid_context: Mapping[str, Any]
    ) -> None:
        context = self._usable(adapter, valid_context)
        result = await adapter.execute(context, {})
        assert isinstance(result, StepResult)
        if result.status is StepStatus.OK:
            schema = adapter.output_schema
            assert set(result.outputs) == set(schema), (
                f"outputs {sorted(result.outputs)} differ from output_schema {sorted(schema)}"
            )
            for key, kind in schema.items():
                assert isinstance(result.outputs[key], kind), (
                    f"output {key!r} is not a {kind.__name__}"
                )
        else:
            assert result.message, "an error or skip result must say why"

    @clause(
        "pipeline_step.execute.missing_inputs",
        "execute with a missing input returns an error or skip result (or raises "
        "InvalidInputError)",
    )
    async def test_execute_missing_input(
        self, adapter: PipelineStep, valid_context: Mapping[str, Any]
    ) -> None:
        if not adapter.required_inputs:
            pytest.skip("the step requires no inputs")
        missing = sorted(adapter.required_inputs)[0]
        context = {k: v for k, v in valid_context.items() if k != missing}
        try:
            result = await adapter.execute(context, {})
        except InvalidInputError:
            return
        assert result.status in (StepStatus.ERROR, StepStatus.SKIP), (
            f"execute without {missing!r} returned {result.status}"
        )

    @clause("pipeline_step.execute.no_mutation", "execute does not mutate the context it reads")
    async def test_execute_does_not_mutate(
        self, adapter: PipelineStep, valid_context: Mapping[str, Any]
    ) -> None:
        context = dict(self._usable(adapter, valid_context))
        before = dict(context)
        await adapter.execute(context, {})
        assert context == before

    @clause(
        "pipeline_step.cacheable.pure", "a cacheable step gives the same result for the same inputs"
    )
    async def test_cacheable_is_pure(
        self, adapter: PipelineStep, valid_context: Mapping[str, Any]
    ) -> None:
        if not adapter.cacheable:
            pytest.skip("the step is not cacheable")
        context = self._usable(adapter, valid_context)
        first = await adapter.execute(context, {})
        second = await adapter.execute(context, {})
        assert (first.status, dict(first.outputs)) == (second.status, dict(second.outputs))


class PipelineContract(ContractSuite[Pipeline]):
    """The promises of [Pipeline][portfolio_core.ports.Pipeline].

    The factory returns a built pipeline; the optional ``pipeline_inputs`` fixture gives
    inputs it runs on (default: none).
    """

    port_key = "pipeline"

    @pytest.fixture
    def pipeline_inputs(self) -> Mapping[str, Any]:
        """Optional override: inputs the pipeline runs on successfully."""
        return {}

    @clause("pipeline.run.result", "run returns a PipelineResult whose ok agrees with its steps")
    async def test_run_result(self, adapter: Pipeline, pipeline_inputs: Mapping[str, Any]) -> None:
        result = await adapter.run(pipeline_inputs)
        assert isinstance(result, PipelineResult)
        assert all(isinstance(r, StepResult) for r in result.steps.values())
        assert result.cached <= set(result.steps), "cached names steps that did not run"
        assert result.ok == all(r.status is not StepStatus.ERROR for r in result.steps.values())

    @clause(
        "pipeline.run.keeps_inputs",
        "the final context contains the inputs, and run does not mutate them",
    )
    async def test_run_keeps_inputs(
        self, adapter: Pipeline, pipeline_inputs: Mapping[str, Any]
    ) -> None:
        inputs = dict(pipeline_inputs)
        result = await adapter.run(inputs)
        assert inputs == dict(pipeline_inputs), "run mutated its inputs"
        for key, value in inputs.items():
            assert key in result.context
            assert result.context[key] == value

    @clause("pipeline.run.outputs_in_context", "every ok step's outputs are in the final context")
    async def test_outputs_in_context(
        self, adapter: Pipeline, pipeline_inputs: Mapping[str, Any]
    ) -> None:
        result = await adapter.run(pipeline_inputs)
        for name, step in result.steps.items():
            if step.status is StepStatus.OK:
                for key, value in step.outputs.items():
                    assert result.context.get(key) == value, f"output {key!r} of {name} is missing"

    @clause(
        "pipeline.run.missing_inputs",
        "run without its inputs fails (error result or InvalidInputError), never silently ok",
    )
    def test_missing_inputs(
        self, adapter: Pipeline, pipeline_inputs: Mapping[str, Any], kit_runner: LoopRunner
    ) -> None:
        if not pipeline_inputs:
            pytest.skip("the pipeline needs no inputs")
        for missing in pipeline_inputs:
            partial = {k: v for k, v in pipeline_inputs.items() if k != missing}
            try:
                result = kit_runner.run(adapter.run(partial))
            except InvalidInputError:
                continue
            assert not result.ok, f"run without input {missing!r} reported ok"
