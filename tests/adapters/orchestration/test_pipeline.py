"""The reference pipeline: validation at build, ok/error/skip, caching, run caps."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from portfolio_core.adapters.orchestration.pipeline import (
    MemoryPipeline,
    MemoryPipelineConfig,
    Step,
    register_step,
    step,
)
from portfolio_core.ports import InvalidInputError, Pipeline, PipelineStep, StepResult, StepStatus
from portfolio_core.testing.contracts.pipeline import PipelineContract, PipelineStepContract
from tests.ports.minimal_adapters import MinimalCache

RUNS: dict[str, int] = {}


def _split(text: str) -> list[str]:
    RUNS["split"] = RUNS.get("split", 0) + 1
    return text.split()


def _count(words: list) -> int:  # type: ignore[type-arg]
    return len(words)


split = step(outputs={"words": list}, name="split", cacheable=True)(_split)
count = step(outputs={"count": int}, name="count")(_count)


with pytest.deprecated_call(match="register_step is deprecated"):

    @register_step("shout")
    class Shout(Step):
        inputs: ClassVar[frozenset[str]] = frozenset({"text"})
        outputs: ClassVar[Mapping[str, type]] = {"loud": str}
        is_cacheable: ClassVar[bool] = True

        def __init__(self, name: str | None = None, suffix: str = "!") -> None:
            super().__init__(name)
            self.suffix = suffix

        async def run(self, context: Mapping[str, Any], config: Mapping[str, Any]) -> StepResult:
            return StepResult.ok(
                loud=context["text"].upper() + self.suffix * config.get("times", 1)
            )


async def test_runs_in_dependency_order() -> None:
    pipe = MemoryPipeline([count, split], inputs={"text": str})
    assert isinstance(pipe, Pipeline)
    assert isinstance(split, PipelineStep)
    assert pipe.steps == ["split", "count"]
    result = await pipe.run({"text": "a b c"})
    assert result.ok
    assert result.context["count"] == 3
    assert result.steps["count"].status is StepStatus.OK


def test_validation_reports_every_problem_with_names() -> None:
    @step(outputs={"b": int})
    def a(x: int) -> int:
        return x

    @step(outputs={"x": int})
    def b(b: int) -> int:
        return b

    @step(outputs={"y": int})
    def c(nowhere: int) -> int:
        return nowhere

    @step(outputs={"z": int})
    def d(text: int) -> int:
        return text

    with pytest.raises(InvalidInputError) as info:
        MemoryPipeline([a, b, c, d], inputs={"text": str})
    msg = str(info.value)
    assert "cycle: a -> b -> a" in msg or "cycle: b -> a -> b" in msg
    assert "step 'c' requires 'nowhere'" in msg
    assert "type mismatch for 'text'" in msg
    assert "step 'd' expects int" in msg


def test_duplicate_names_and_writers() -> None:
    @step(outputs={"words": list}, name="split")
    def other(text: str) -> list[str]:
        return []

    with pytest.raises(InvalidInputError, match="two steps are named 'split'"):
        MemoryPipeline([split, other], inputs=["text"])

    @step(outputs={"words": list})
    def words2(text: str) -> list[str]:
        return []

    with pytest.raises(InvalidInputError, match="both write 'words'"):
        MemoryPipeline([split, words2], inputs=["text"])


async def test_error_skips_dependents_and_independent_steps_still_run() -> None:
    @step(outputs={"words": list})
    def broken(text: str) -> list[str]:
        raise RuntimeError("boom")

    @step(outputs={"n": int})
    def independent(text: str) -> int:
        return len(text)

    pipe = MemoryPipeline([broken, count, independent], inputs={"text": str})
    result = await pipe.run({"text": "a b"})
    assert not result.ok
    assert result.steps["broken"].status is StepStatus.ERROR
    assert "RuntimeError: boom" in result.steps["broken"].message
    assert result.steps["count"].status is StepStatus.SKIP
    assert "'broken' error" in result.steps["count"].message
    assert result.context["n"] == 3


async def test_skip_result_and_output_schema_checked() -> None:
    @step(outputs={"words": list})
    def maybe(text: str) -> StepResult:
        return StepResult.skip("empty") if not text else StepResult.ok(words=[text])

    @step(outputs={"n": int})
    def liar(text: str) -> str:
        return "not an int"

    pipe = MemoryPipeline([maybe, count, liar], inputs={"text": str})
    result = await pipe.run({"text": ""})
    assert result.steps["maybe"].status is StepStatus.SKIP
    assert result.steps["count"].status is StepStatus.SKIP
    assert "output 'n' is str" in result.steps["liar"].message


async def test_bad_pipeline_inputs_are_rejected() -> None:
    pipe = MemoryPipeline([split], inputs={"text": str})
    with pytest.raises(InvalidInputError, match="missing pipeline inputs"):
        await pipe.run({})
    with pytest.raises(InvalidInputError, match="'text' is int"):
        await pipe.run({"text": 3})


async def test_cacheable_steps_are_served_from_the_cache() -> None:
    cache = MinimalCache()
    RUNS.clear()
    pipe = MemoryPipeline([split, count], inputs={"text": str}, cache=cache)
    first = await pipe.run({"text": "x y"})
    second = await pipe.run({"text": "x y"})
    assert first.cached == frozenset()
    assert second.cached == frozenset({"split"})
    assert second.context == first.context
    assert RUNS["split"] == 1
    await pipe.run({"text": "x y z"})
    assert RUNS["split"] == 2
    (key,) = [k for k in cache.items if k.startswith("pipeline:split:1:")][:1]
    assert len(key) < 100
    # a new config or version gives a new key
    loud1 = MemoryPipeline([Shout()], inputs=["text"], cache=cache, configs={"Shout": {"times": 1}})
    loud2 = MemoryPipeline([Shout()], inputs=["text"], cache=cache, configs={"Shout": {"times": 2}})
    assert (await loud1.run({"text": "a"})).context["loud"] == "A!"
    assert (await loud2.run({"text": "a"})).context["loud"] == "A!!"


async def test_retries_are_capped_by_max_runs_per_step() -> None:
    calls = {"n": 0}

    @step(outputs={"v": int})
    def flaky(text: str) -> StepResult:
        calls["n"] += 1
        return StepResult.error("try again") if calls["n"] < 3 else StepResult.ok(v=1)

    pipe = MemoryPipeline([flaky], inputs=["text"], retries={"flaky": 5}, max_runs_per_step=2)
    result = await pipe.run({"text": ""})
    assert calls["n"] == 2
    assert "max_runs_per_step=2" in result.steps["flaky"].message
    calls["n"] = 0
    pipe = MemoryPipeline([flaky], inputs=["text"], retries={"flaky": 5}, max_runs_per_step=5)
    assert (await pipe.run({"text": ""})).ok
    assert calls["n"] == 3


async def test_from_config_by_path_and_registered_name() -> None:
    cfg = MemoryPipelineConfig.model_validate(
        {
            "inputs": {"text": "str"},
            "steps": [
                {"use": f"{__name__}:split"},
                {"use": f"{__name__}:count"},
                {"use": "shout", "name": "loud", "args": {"suffix": "?"}, "config": {"times": 2}},
            ],
        }
    )
    cache = MinimalCache()
    pipe = MemoryPipeline.from_config(cfg, cache=cache)
    result = await pipe.run({"text": "hi there"})
    assert result.context["count"] == 2
    assert result.context["loud"] == "HI THERE??"
    with pytest.raises(InvalidInputError, match="no pipeline step registered"):
        MemoryPipeline.from_config(
            MemoryPipelineConfig.model_validate({"steps": [{"use": "nope"}]})
        )
    for bad, why in (
        ("no_such_module_anywhere:Step", "no module named"),
        (f"{__name__}:NoSuchStep", "has no attribute"),
        (f"{__name__}:", "is not 'module:attribute'"),
    ):
        with pytest.raises(InvalidInputError, match=why) as info:
            MemoryPipeline.from_config(
                MemoryPipelineConfig.model_validate({"steps": [{"use": bad}]})
            )
        assert info.value.field == "use"


async def test_steps_are_named_like_adapters_by_reference_to_a_class_or_an_instance() -> None:
    cfg = MemoryPipelineConfig.model_validate(
        {
            "inputs": {"text": "str"},
            "steps": [
                {"use": f"{__name__}:split"},  # an instance
                {"use": f"{__name__}:Shout", "name": "loud"},  # a class
            ],
        }
    )
    result = await MemoryPipeline.from_config(cfg).run({"text": "a b"})
    assert result.context["words"] == ["a", "b"]
    assert result.context["loud"] == "A B!"
    with pytest.raises(InvalidInputError, match="unknown input types"):
        MemoryPipeline.from_config(
            MemoryPipelineConfig.model_validate({"inputs": {"t": "blob"}, "steps": []})
        )


def _graph_step(i: int, reads: set[int]) -> Step:
    class G(Step):
        inputs: ClassVar[frozenset[str]] = frozenset(f"k{j}" for j in reads)
        outputs: ClassVar[Mapping[str, type]] = {f"k{i}": int}

        async def run(self, context: Mapping[str, Any], config: Mapping[str, Any]) -> StepResult:
            return StepResult.ok(**{f"k{i}": 1 + sum(context[k] for k in self.inputs)})

    return G(f"s{i}")


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_random_dags_build_in_dependency_order_and_back_edges_are_cycles(
    data: st.DataObject,
) -> None:
    n = data.draw(st.integers(2, 7))
    reads = [
        data.draw(st.sets(st.integers(0, i - 1), max_size=3)) if i else set() for i in range(n)
    ]
    perm = data.draw(st.permutations(range(n)))
    pipe = MemoryPipeline([_graph_step(i, reads[i]) for i in perm])
    position = {name: k for k, name in enumerate(pipe.steps)}
    for i in range(n):
        for j in reads[i]:
            assert position[f"s{j}"] < position[f"s{i}"]
    result = asyncio.run(pipe.run({}))
    assert result.ok
    # make step 0 read step j's output: a cycle exactly when j already depends on step 0
    j = data.draw(st.integers(1, n - 1))
    reads[0] = {j}
    steps = [_graph_step(i, reads[i]) for i in range(n)]
    if _reaches(reads, j):
        with pytest.raises(InvalidInputError, match="cycle: "):
            MemoryPipeline(steps)
    else:
        MemoryPipeline(steps)


def _reaches(reads: list[set[int]], j: int) -> bool:
    """Whether step j (transitively) reads step 0's output."""
    seen, todo = set(), [j]
    while todo:
        k = todo.pop()
        if k == 0:
            return True
        if k not in seen:
            seen.add(k)
            todo.extend(reads[k])
    return False


async def test_llm_step_in_code_and_from_config() -> None:
    from portfolio_core.adapters.memory.simulated_llm import SimulatedLLM
    from portfolio_core.adapters.orchestration.pipeline import LLMStep

    llm = SimulatedLLM(echo=True)
    summarise = LLMStep("summary", llm=llm, prompt="Summarise: {text}", output="summary")
    cache = MinimalCache()
    pipe = MemoryPipeline([summarise, count, split], inputs={"text": str}, cache=cache)
    first = await pipe.run({"text": "a b"})
    assert first.context["summary"] == "Summarise: a b"
    second = await pipe.run({"text": "a b"})
    assert "summary" in second.cached
    assert llm.calls == 1
    other = LLMStep("summary", llm=llm, prompt="Shorten: {text}", output="summary")
    third = await MemoryPipeline([other], inputs=["text"], cache=cache).run({"text": "a b"})
    assert third.context["summary"] == "Shorten: a b"  # a new prompt is a new cache key

    failing = SimulatedLLM(fail_every=1)
    cfg = MemoryPipelineConfig.model_validate(
        {
            "inputs": {"text": "str"},
            "steps": [
                {
                    "use": "portfolio_core.adapters.orchestration.pipeline:LLMStep",
                    "name": "ask",
                    "uses": ["llm"],
                    "args": {"prompt": "Q: {text}"},
                }
            ],
        }
    )
    result = await MemoryPipeline.from_config(cfg, llm=failing).run({"text": "hi"})
    assert result.steps["ask"].status is StepStatus.ERROR
    assert "UnavailableError" in result.steps["ask"].message
    with pytest.raises(InvalidInputError, match="uses 'llm'"):
        MemoryPipeline.from_config(cfg)


class TestMemoryPipelineContract(PipelineContract):
    @pytest.fixture
    def make_adapter(self) -> Callable[[], MemoryPipeline]:
        return lambda: MemoryPipeline(
            [count, split, Shout()], inputs={"text": str}, cache=MinimalCache()
        )

    @pytest.fixture
    def pipeline_inputs(self) -> Mapping[str, Any]:
        return {"text": "ports and adapters"}


class TestFunctionStepContract(PipelineStepContract):
    @pytest.fixture
    def make_adapter(self) -> Callable[[], PipelineStep]:
        return lambda: step(outputs={"words": list}, name="split", cacheable=True)(_split)


class TestFunctionStepWithListInputContract(PipelineStepContract):
    @pytest.fixture
    def make_adapter(self) -> Callable[[], PipelineStep]:
        return lambda: step(outputs={"count": int}, name="count")(_count)

    @pytest.fixture
    def valid_context(self) -> Mapping[str, Any]:
        return {"words": ["a", "b"]}


class TestStepSubclassContract(PipelineStepContract):
    @pytest.fixture
    def make_adapter(self) -> type[Shout]:
        return Shout


class TestLLMStepContract(PipelineStepContract):
    @pytest.fixture
    def make_adapter(self) -> Callable[[], PipelineStep]:
        from portfolio_core.adapters.memory.simulated_llm import SimulatedLLM
        from portfolio_core.adapters.orchestration.pipeline import LLMStep

        return lambda: LLMStep("ask", llm=SimulatedLLM(echo=True), prompt="Q: {text}")


async def test_caching_through_the_memory_cache_adapter() -> None:
    from portfolio_core.adapters.memory.cache import MemoryCache

    cache = MemoryCache()
    RUNS.clear()
    pipe = MemoryPipeline([split, count], inputs={"text": str}, cache=cache, cache_ttl=60)
    await pipe.run({"text": "one two"})
    second = await pipe.run({"text": "one two"})
    assert second.cached == frozenset({"split"})
    assert second.context["words"] == ["one", "two"]
    assert RUNS["split"] == 1
