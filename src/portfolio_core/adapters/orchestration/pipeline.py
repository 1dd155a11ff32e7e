"""The reference Pipeline: steps wired by the context keys they read and write.

Building a pipeline validates it and reports every problem at once, naming the steps:
duplicate step names, two steps writing one key, a required input that no step produces and
that is not a declared pipeline input, a type mismatch between what a step (or a pipeline
input) provides and what a consumer declares in its optional ``input_schema``, and cycles
(``a -> b -> a``). Steps then run in dependency order (declaration order among
independent steps).

Running: a step whose input is missing because its producer failed or was skipped is
skipped with a reason naming that producer; otherwise ``validate_input`` problems give an
error result, and ``execute`` runs (with the step's config). Outputs are checked against the
step's ``output_schema``; a mismatch is an error result. A step may be retried on error
(``retries``), bounded by ``max_runs_per_step`` executions per run. An exception from a step
is recorded as an error result (the step's own contract allows raising only for programming
errors, and those are reported, not swallowed silently: the message names the exception).

Caching: with a Cache (``uses: cache=``), a ``cacheable`` step's ``ok`` outputs are stored
under ``pipeline:<step>:<version>:<sha256 of config and inputs>`` (canonical JSON), and a
later run with the same step version, config and inputs is served from the cache (its name
is in ``PipelineResult.cached``). A step may add an optional ``fingerprint`` string (e.g. a
hash of its constructor arguments) to the key. Inputs, config or outputs that are not
JSON-compatible are simply not cached.

What a step is (`Step`, `FunctionStep` and `step`, `LLMStep`) and how ``use:`` names one
are in ``_steps``; they are importable from here.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

from portfolio_core.adapters.orchestration._steps import (
    STEP_ENTRY_POINT_GROUP as STEP_ENTRY_POINT_GROUP,
)
from portfolio_core.adapters.orchestration._steps import (
    FunctionStep,
    LLMStep,
    Step,
    is_instance,
    register_step,
    resolve_step,
    step,
)
from portfolio_core.ports import (
    LLM,
    Cache,
    InvalidInputError,
    PipelineResult,
    PipelineStep,
    StepResult,
    StepStatus,
)

__all__ = [
    "FunctionStep",
    "LLMStep",
    "MemoryPipeline",
    "MemoryPipelineConfig",
    "Step",
    "StepSpec",
    "register_step",
    "step",
]

_TYPE_NAMES: dict[str, type] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "list": list,
    "dict": dict,
    "any": object,
}


class StepSpec(BaseModel):
    """One step in a manifest: what to build, its name, constructor args and run config."""

    model_config = ConfigDict(extra="forbid")

    use: str
    """``module:Class`` (or ``module:instance``) or a registered step name."""
    name: str | None = None
    args: dict[str, Any] = Field(default_factory=dict)
    config: dict[str, Any] = Field(default_factory=dict)
    retries: int = Field(default=0, ge=0)
    uses: list[Literal["llm"]] = Field(default_factory=list)
    """Adapters of the pipeline passed to the step's constructor by keyword (``llm``)."""


class MemoryPipelineConfig(BaseModel):
    """Manifest config of `MemoryPipeline`."""

    model_config = ConfigDict(extra="forbid")

    inputs: dict[str, str] = Field(default_factory=dict)
    """Pipeline input keys and their types (str, int, float, bool, list, dict, any)."""
    steps: list[StepSpec]
    max_runs_per_step: int = Field(default=3, ge=1)
    cache_ttl: float | None = Field(default=None, gt=0)


def _compatible(provided: type, expected: type) -> bool:
    if expected is object or provided is object:
        return True
    if expected is float and provided is int:
        return True
    p = getattr(provided, "__origin__", provided)
    e = getattr(expected, "__origin__", expected)
    try:
        return issubclass(p, e)
    except TypeError:
        return provided == expected


@dataclass(slots=True)
class _Node:
    step: PipelineStep
    config: Mapping[str, Any]
    retries: int
    deps: set[str] = field(default_factory=set)


class MemoryPipeline:
    """A validated graph of steps; see the module docstring.

    ``inputs`` declares the pipeline's input keys (and their types, ``object`` for any).
    ``configs`` and ``retries`` are per step name.
    """

    config_model: ClassVar[type[BaseModel]] = MemoryPipelineConfig
    capabilities: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        steps: Sequence[PipelineStep],
        *,
        inputs: Mapping[str, type] | Sequence[str] = (),
        configs: Mapping[str, Mapping[str, Any]] | None = None,
        retries: Mapping[str, int] | None = None,
        cache: Cache | None = None,
        cache_ttl: float | None = None,
        max_runs_per_step: int = 3,
    ) -> None:
        if max_runs_per_step < 1:
            raise InvalidInputError("max_runs_per_step must be at least 1")
        self._inputs: dict[str, type] = (
            dict(inputs) if isinstance(inputs, Mapping) else dict.fromkeys(inputs, object)
        )
        self._cache = cache
        self._cache_ttl = cache_ttl
        self.max_runs_per_step = max_runs_per_step
        configs = configs or {}
        retries = retries or {}
        self._nodes: dict[str, _Node] = {}
        problems: list[str] = []
        for s in steps:
            if s.name in self._nodes:
                problems.append(f"two steps are named {s.name!r}")
                continue
            self._nodes[s.name] = _Node(s, dict(configs.get(s.name, {})), retries.get(s.name, 0))
        for name in sorted(set(configs) - set(self._nodes)):
            problems.append(f"config given for unknown step {name!r}")
        problems += self._wire()
        order, cycle_problems = self._order()
        problems += cycle_problems
        if problems:
            raise InvalidInputError(
                "invalid pipeline:\n  - " + "\n  - ".join(problems), field="steps"
            )
        self._order_names = order

    @classmethod
    def from_config(
        cls, config: MemoryPipelineConfig, *, cache: Cache | None = None, llm: LLM | None = None
    ) -> Self:
        """Build from a manifest; steps named by ``module:Class`` or registered name.

        ``cache`` caches cacheable steps; ``llm`` is handed to steps whose spec lists it in
        ``uses`` (e.g. `LLMStep`).
        """
        available: dict[str, object] = {"llm": llm}
        steps: list[PipelineStep] = []
        configs: dict[str, Mapping[str, Any]] = {}
        retries: dict[str, int] = {}
        for spec in config.steps:
            target = resolve_step(spec.use)
            built: object
            injected: dict[str, object] = {}
            for name in spec.uses:
                if available.get(name) is None:
                    raise InvalidInputError(
                        f"step {spec.use!r} uses {name!r}, which the pipeline was not given",
                        field="uses",
                    )
                injected[name] = available[name]
            if isinstance(target, type):
                kwargs = {**spec.args, **injected}
                if spec.name is not None:
                    kwargs.setdefault("name", spec.name)
                built = target(**kwargs)
            elif isinstance(target, PipelineStep) and not spec.args and not injected:
                built = target
            elif callable(target):
                built = target(**spec.args, **injected)
            else:
                built = target
            if not isinstance(built, PipelineStep):
                raise InvalidInputError(f"{spec.use!r} did not build a pipeline step")
            configs[built.name] = spec.config
            retries[built.name] = spec.retries
            steps.append(built)
        unknown = {k: v for k, v in config.inputs.items() if v not in _TYPE_NAMES}
        if unknown:
            raise InvalidInputError(
                f"unknown input types {unknown}; use one of {sorted(_TYPE_NAMES)}",
                field="inputs",
            )
        return cls(
            steps,
            inputs={k: _TYPE_NAMES[v] for k, v in config.inputs.items()},
            configs=configs,
            retries=retries,
            cache=cache,
            cache_ttl=config.cache_ttl,
            max_runs_per_step=config.max_runs_per_step,
        )

    def __repr__(self) -> str:
        return f"MemoryPipeline(steps={self._order_names})"

    @property
    def steps(self) -> list[str]:
        """Step names in execution order."""
        return list(self._order_names)

    # -- validation -----------------------------------------------------------------------

    def _wire(self) -> list[str]:
        problems: list[str] = []
        producers: dict[str, str] = {}
        for name, node in self._nodes.items():
            for key in node.step.output_schema:
                if key in producers:
                    problems.append(f"steps {producers[key]!r} and {name!r} both write {key!r}")
                elif key in self._inputs:
                    problems.append(f"step {name!r} writes {key!r}, which is a pipeline input")
                else:
                    producers[key] = name
        for name, node in self._nodes.items():
            expected_types: Mapping[str, type] = getattr(node.step, "input_schema", {}) or {}
            for key in sorted(node.step.required_inputs):
                if key in producers:
                    producer = producers[key]
                    node.deps.add(producer)
                    provided = self._nodes[producer].step.output_schema[key]
                    source = f"step {producer!r} writes it as"
                elif key in self._inputs:
                    provided = self._inputs[key]
                    source = "the pipeline input is"
                else:
                    problems.append(
                        f"step {name!r} requires {key!r}, which no step writes "
                        "and which is not a pipeline input"
                    )
                    continue
                expected = expected_types.get(key)
                if expected is not None and not _compatible(provided, expected):
                    problems.append(
                        f"type mismatch for {key!r}: {source} "
                        f"{getattr(provided, '__name__', provided)}, step {name!r} expects "
                        f"{getattr(expected, '__name__', expected)}"
                    )
        return problems

    def _order(self) -> tuple[list[str], list[str]]:
        order: list[str] = []
        state: dict[str, int] = {}  # 1 visiting, 2 done
        cycles: list[str] = []

        def visit(name: str, path: list[str]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                loop = [*path[path.index(name) :], name]
                cycles.append("cycle: " + " -> ".join(loop))
                return
            state[name] = 1
            for dep in sorted(self._nodes[name].deps, key=list(self._nodes).index):
                visit(dep, [*path, name])
            state[name] = 2
            order.append(name)

        for name in self._nodes:
            visit(name, [])
        return order, cycles

    # -- running --------------------------------------------------------------------------

    async def run(self, inputs: Mapping[str, Any]) -> PipelineResult:
        """Run every step in dependency order; see the module docstring."""
        missing = sorted(set(self._inputs) - set(inputs))
        if missing:
            raise InvalidInputError(f"missing pipeline inputs: {missing}", field="inputs")
        wrong = [
            f"{k!r} is {type(inputs[k]).__name__}, expected {t.__name__}"
            for k, t in self._inputs.items()
            if not is_instance(inputs[k], t)
        ]
        if wrong:
            raise InvalidInputError(f"bad pipeline inputs: {'; '.join(wrong)}", field="inputs")
        context: dict[str, Any] = dict(inputs)
        results: dict[str, StepResult] = {}
        cached: set[str] = set()
        for name in self._order_names:
            node = self._nodes[name]
            blocked = [d for d in sorted(node.deps) if results[d].status is not StepStatus.OK]
            if blocked:
                why = ", ".join(f"{d!r} {results[d].status.value}" for d in blocked)
                results[name] = StepResult.skip(f"upstream step did not succeed: {why}")
                continue
            result, hit = await self._run_step(node, context)
            results[name] = result
            if hit:
                cached.add(name)
            if result.status is StepStatus.OK:
                context.update(result.outputs)
        return PipelineResult(context, results, frozenset(cached))

    async def _run_step(self, node: _Node, context: Mapping[str, Any]) -> tuple[StepResult, bool]:
        s = node.step
        problems = s.validate_input(context)
        if problems:
            return StepResult.error(f"invalid input: {'; '.join(problems)}"), False
        key = self._cache_key(node, context) if s.cacheable and self._cache else None
        if key is not None and self._cache is not None:
            hit = await self._cache.get(key)
            if isinstance(hit, dict) and not self._output_problems(s, hit):
                return StepResult.ok(**hit), True
        attempts = min(node.retries + 1, self.max_runs_per_step)
        result = StepResult.error("not run")
        for _ in range(attempts):
            result = await self._execute(s, context, node.config)
            if result.status is not StepStatus.ERROR:
                break
        if node.retries + 1 > self.max_runs_per_step and result.status is StepStatus.ERROR:
            result = StepResult.error(
                f"{result.message} (stopped after max_runs_per_step={self.max_runs_per_step})"
            )
        if key is not None and self._cache is not None and result.status is StepStatus.OK:
            try:
                json.dumps(dict(result.outputs))
            except (TypeError, ValueError):
                return result, False
            await self._cache.put(key, dict(result.outputs), self._cache_ttl)
        return result, False

    async def _execute(
        self, s: PipelineStep, context: Mapping[str, Any], config: Mapping[str, Any]
    ) -> StepResult:
        try:
            outcome: object = s.execute(context, config)
            result = await outcome if inspect.isawaitable(outcome) else outcome
        except Exception as exc:
            return StepResult.error(f"step {s.name!r} raised {type(exc).__name__}: {exc}")
        if not isinstance(result, StepResult):
            return StepResult.error(f"step {s.name!r} returned {type(result).__name__}")
        if result.status is StepStatus.OK:
            problems = self._output_problems(s, result.outputs)
            if problems:
                return StepResult.error(f"bad outputs: {'; '.join(problems)}")
        return result

    @staticmethod
    def _output_problems(s: PipelineStep, outputs: Mapping[str, Any]) -> list[str]:
        schema = s.output_schema
        problems = [f"missing output {k!r}" for k in schema if k not in outputs]
        problems += [f"undeclared output {k!r}" for k in outputs if k not in schema]
        for k, t in schema.items():
            if k in outputs and not is_instance(outputs[k], t):
                problems.append(
                    f"output {k!r} is {type(outputs[k]).__name__}, "
                    f"schema says {getattr(t, '__name__', t)}"
                )
        return problems

    @staticmethod
    def _cache_key(node: _Node, context: Mapping[str, Any]) -> str | None:
        s = node.step
        payload = {
            "fingerprint": getattr(s, "fingerprint", None),
            "config": node.config,
            "inputs": {k: context[k] for k in sorted(s.required_inputs)},
        }
        try:
            text = json.dumps(payload, sort_keys=True, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError):
            return None
        digest = hashlib.sha256(text.encode()).hexdigest()[:32]
        return f"pipeline:{s.name}:{s.version}:{digest}"
