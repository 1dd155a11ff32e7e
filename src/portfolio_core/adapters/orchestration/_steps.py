"""What a pipeline step is, for step authors: the `Step` base class, `FunctionStep` and
the `step` decorator, `LLMStep`, and how a manifest's ``use:`` names a step (`resolve_step`:
``module:attr``, an entry point of `STEP_ENTRY_POINT_GROUP`, or a deprecated
`register_step` name). The pipeline that runs steps is in ``pipeline``, which re-exports
these names.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import string
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from portfolio_core._references import entry_point_named, is_reference, resolve_reference
from portfolio_core.ports import (
    LLM,
    CompletionOptions,
    InvalidInputError,
    Message,
    PipelineStep,
    PortError,
    StepResult,
)

__all__ = [
    "STEP_ENTRY_POINT_GROUP",
    "FunctionStep",
    "LLMStep",
    "Step",
    "is_instance",
    "register_step",
    "resolve_step",
    "step",
]

STEP_ENTRY_POINT_GROUP = "portfolio_core.pipeline_steps"


def is_instance(value: Any, expected: type) -> bool:
    """Whether ``value`` has the declared type ``expected`` (an int is a float; a generic
    alias such as ``list[str]`` checks its origin only; ``object`` is any)."""
    if expected is object:
        return True
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return True
    try:
        return isinstance(value, expected)
    except TypeError:  # a generic alias such as list[str]: check the origin only
        origin = getattr(expected, "__origin__", None)
        return origin is None or isinstance(value, origin)


class Step(ABC):
    """A convenient base for pipeline steps: declare the class attributes, write ``run``.

    ``execute`` validates the context first and returns an error result naming the
    problems, so ``run`` only ever sees valid input.

    ``validate_input`` checks that every required input is present and, for keys in
    ``input_schema``, has the declared type.
    """

    name: str = ""
    version: str = "1"
    inputs: ClassVar[frozenset[str]] = frozenset()
    outputs: ClassVar[Mapping[str, type]] = {}
    input_schema: Mapping[str, type] = {}
    is_cacheable: ClassVar[bool] = False

    def __init__(self, name: str | None = None) -> None:
        if name is not None:
            self.name = name
        if not self.name:
            self.name = type(self).__name__

    @property
    def required_inputs(self) -> frozenset[str]:
        return frozenset(self.inputs)

    @property
    def output_schema(self) -> Mapping[str, type]:
        return dict(self.outputs)

    @property
    def cacheable(self) -> bool:
        return self.is_cacheable

    def validate_input(self, context: Mapping[str, Any]) -> list[str]:
        problems = [f"missing input {k!r}" for k in sorted(self.required_inputs - set(context))]
        for key, expected in self.input_schema.items():
            if key in context and not is_instance(context[key], expected):
                problems.append(
                    f"input {key!r} is {type(context[key]).__name__}, expected {expected.__name__}"
                )
        return problems

    async def execute(self, context: Mapping[str, Any], config: Mapping[str, Any]) -> StepResult:
        """Validate ``context`` (problems give an error result), then `run` the step."""
        problems = self.validate_input(context)
        if problems:
            return StepResult.error(f"invalid input for step {self.name!r}: {'; '.join(problems)}")
        return await self.run(context, config)

    @abstractmethod
    async def run(self, context: Mapping[str, Any], config: Mapping[str, Any]) -> StepResult:
        """The step's work, on a validated context; subclasses implement it."""


class FunctionStep(Step):
    """A step made from a function of its inputs (keyword arguments) returning a dict, a
    `StepResult`, or a single value when ``output_schema`` has one key."""

    def __init__(
        self,
        name: str,
        function: Callable[..., Any],
        *,
        outputs: Mapping[str, type],
        inputs: Mapping[str, type] | None = None,
        version: str = "1",
        cacheable: bool = False,
    ) -> None:
        super().__init__(name)
        params = inspect.signature(function).parameters
        self._function = function
        self._takes_config = "config" in params
        declared = dict(inputs) if inputs is not None else {}
        if inputs is None:
            hints = inspect.get_annotations(function, eval_str=True)
            for p in params:
                if p != "config":
                    declared[p] = hints.get(p, object)
        self._inputs = frozenset(declared)
        self.input_schema = {k: v for k, v in declared.items() if v is not object}
        self._outputs = dict(outputs)
        self.version = version
        self._cacheable = cacheable

    @property
    def required_inputs(self) -> frozenset[str]:
        return self._inputs

    @property
    def output_schema(self) -> Mapping[str, type]:
        return dict(self._outputs)

    @property
    def cacheable(self) -> bool:
        return self._cacheable

    async def run(self, context: Mapping[str, Any], config: Mapping[str, Any]) -> StepResult:
        kwargs = {k: context[k] for k in self._inputs}
        if self._takes_config:
            kwargs["config"] = config
        value = self._function(**kwargs)
        if inspect.isawaitable(value):
            value = await value
        if isinstance(value, StepResult):
            return value
        if isinstance(value, Mapping) and set(value) == set(self._outputs):
            return StepResult.ok(**value)
        if len(self._outputs) == 1:
            return StepResult.ok(**{next(iter(self._outputs)): value})
        return StepResult.error(f"step {self.name!r} returned {type(value).__name__}, not a dict")


def step(
    *,
    outputs: Mapping[str, type],
    name: str | None = None,
    version: str = "1",
    cacheable: bool = False,
) -> Callable[[Callable[..., Any]], FunctionStep]:
    """Decorator: ``@step(outputs={"words": int})`` turns a function into a FunctionStep."""

    def wrap(fn: Callable[..., Any]) -> FunctionStep:
        return FunctionStep(
            name or fn.__name__, fn, outputs=outputs, version=version, cacheable=cacheable
        )

    return wrap


class LLMStep(Step):
    """A step that fills a prompt template from the context and asks an LLM.

    ``prompt`` is a ``str.format`` template; its placeholders are the step's required
    inputs. The answer's text is written to ``output``. A port error from the LLM becomes an
    error result. Cacheable by default (meaningful at temperature 0); the prompt, system
    prompt and token limit are part of the cache key through `fingerprint`.
    """

    def __init__(
        self,
        name: str | None = None,
        *,
        llm: LLM,
        prompt: str,
        output: str = "answer",
        system: str | None = None,
        max_tokens: int = 256,
        cacheable: bool = True,
        version: str = "1",
    ) -> None:
        super().__init__(name or "llm")
        fields = {f for _, f, _, _ in string.Formatter().parse(prompt) if f}
        if any(not f.isidentifier() for f in fields):
            raise InvalidInputError(f"prompt placeholders must be plain names: {sorted(fields)}")
        self._llm = llm
        self.prompt = prompt
        self.output = output
        self.system = system
        self.max_tokens = max_tokens
        self._inputs = frozenset(fields)
        self._cacheable = cacheable
        self.version = version
        self.fingerprint = hashlib.sha256(
            json.dumps([prompt, system, max_tokens, output]).encode()
        ).hexdigest()[:16]

    @property
    def required_inputs(self) -> frozenset[str]:
        return self._inputs

    @property
    def output_schema(self) -> Mapping[str, type]:
        return {self.output: str}

    @property
    def cacheable(self) -> bool:
        return self._cacheable

    async def run(self, context: Mapping[str, Any], config: Mapping[str, Any]) -> StepResult:
        text = self.prompt.format(**{k: context[k] for k in self._inputs})
        messages = [Message("user", text)]
        if self.system:
            messages.insert(0, Message("system", self.system))
        try:
            completion = await self._llm.complete(
                messages, CompletionOptions(max_tokens=self.max_tokens)
            )
        except PortError as exc:
            return StepResult.error(f"{type(exc).__name__}: {exc}")
        return StepResult.ok(**{self.output: completion.text})


# Names registered with the deprecated ``register_step``; entry points and ``module:attr``
# references are the supported ways to name a step (the same as for adapters).
_DEPRECATED_NAMES: dict[str, Callable[..., PipelineStep]] = {}


def register_step(name: str) -> Callable[[type[Step]], type[Step]]:
    """Deprecated: name the step class by ``module:Class`` in manifests, or publish it as an
    entry point in the group ``portfolio_core.pipeline_steps``.

    Still makes the class nameable by ``name`` in this process (with a
    ``DeprecationWarning``); it will be removed in a later release.
    """
    warnings.warn(
        "register_step is deprecated: name the step as 'module:Class' or publish it as an "
        f"entry point in the group {STEP_ENTRY_POINT_GROUP!r}",
        DeprecationWarning,
        stacklevel=2,
    )

    def wrap(cls: type[Step]) -> type[Step]:
        _DEPRECATED_NAMES[name] = cls
        return cls

    return wrap


def resolve_step(use: str) -> object:
    """What a step spec's ``use`` names: a ``module:attr`` reference (resolved like an
    adapter's) or the name of an entry point in ``portfolio_core.pipeline_steps``."""
    if is_reference(use):
        return resolve_reference(use, field="use")
    ep = entry_point_named(STEP_ENTRY_POINT_GROUP, use)
    if ep is not None:
        loaded: object = ep.load()
        return loaded
    if use in _DEPRECATED_NAMES:
        return _DEPRECATED_NAMES[use]
    raise InvalidInputError(
        f"no pipeline step registered as {use!r}: name it as 'module:Class' or install an "
        "entry point "
        f"in the group {STEP_ENTRY_POINT_GROUP!r}",
        field="use",
    )
