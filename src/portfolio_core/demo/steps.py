"""The demo pipeline's steps, named in the demo manifest as ``module:Class``.

``Normalise`` -> ``Answer`` -> ``Record``: the question is tidied into a prompt, the prompt is
answered by an LLM (the router, through the manifest's ``assistant`` entry; cacheable, so
the pipeline serves repeated prompts from its Cache), and the question and its answer are
appended to the EventStore passed in as the pipeline input ``events``. Each step
implements the PipelineStep port directly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from portfolio_core.ports import (
    LLM,
    CompletionOptions,
    EventStore,
    Message,
    NewEvent,
    PortError,
    StepResult,
)

__all__ = ["Answer", "Normalise", "Record"]


class _Step:
    name = ""
    version = "1"
    inputs: ClassVar[Mapping[str, type]] = {}
    outputs: ClassVar[Mapping[str, type]] = {}
    is_cacheable = False

    @property
    def required_inputs(self) -> frozenset[str]:
        return frozenset(self.inputs)

    @property
    def input_schema(self) -> Mapping[str, type]:
        return {k: v for k, v in self.inputs.items() if v is not object}

    @property
    def output_schema(self) -> Mapping[str, type]:
        return dict(self.outputs)

    @property
    def cacheable(self) -> bool:
        return self.is_cacheable

    def validate_input(self, context: Mapping[str, Any]) -> list[str]:
        problems = [f"missing input {k!r}" for k in sorted(self.required_inputs - set(context))]
        for key, expected in self.input_schema.items():
            if key in context and not isinstance(context[key], expected):
                problems.append(f"input {key!r} must be {expected.__name__}")
        return problems


class Normalise(_Step):
    """Collapse whitespace and end the question with a question mark."""

    name = "normalise"
    inputs: ClassVar[Mapping[str, type]] = {"question": str}
    outputs: ClassVar[Mapping[str, type]] = {"prompt": str}

    async def execute(self, context: Mapping[str, Any], config: Mapping[str, Any]) -> StepResult:
        text = " ".join(str(context["question"]).split())
        if not text:
            return StepResult.error("the question is empty")
        if not text.endswith("?"):
            text += "?"
        return StepResult.ok(prompt=text[0].upper() + text[1:])


class Answer(_Step):
    """Ask the LLM; cacheable, keyed by the prompt (and this step's settings)."""

    name = "answer"
    version = "1"
    inputs: ClassVar[Mapping[str, type]] = {"prompt": str}
    outputs: ClassVar[Mapping[str, type]] = {"answer": str, "provider": str, "answered_at": str}
    is_cacheable = True

    def __init__(self, *, llm: LLM, max_tokens: int = 24, name: str | None = None) -> None:
        self._llm = llm
        self.max_tokens = max_tokens
        if name:
            self.name = name
        self.fingerprint = f"max_tokens={max_tokens}"

    async def execute(self, context: Mapping[str, Any], config: Mapping[str, Any]) -> StepResult:
        messages = [
            Message("system", "Answer in one short sentence."),
            Message("user", str(context["prompt"])),
        ]
        try:
            completion = await self._llm.complete(
                messages, CompletionOptions(max_tokens=self.max_tokens)
            )
        except PortError as exc:
            return StepResult.error(f"{type(exc).__name__}: {exc}")
        return StepResult.ok(
            answer=completion.text,
            provider=completion.provider or completion.model,
            answered_at=datetime.now(UTC).isoformat(timespec="seconds"),
        )


class Record(_Step):
    """Append ``QuestionAsked`` and ``AnswerGiven`` to the question's stream."""

    name = "record"
    inputs: ClassVar[Mapping[str, type]] = {
        "question": str,
        "prompt": str,
        "answer": str,
        "provider": str,
        "answered_at": str,
        "run": int,
        "events": object,
    }
    outputs: ClassVar[Mapping[str, type]] = {"stream": str, "recorded": int}

    async def execute(self, context: Mapping[str, Any], config: Mapping[str, Any]) -> StepResult:
        store: EventStore = context["events"]
        prompt = str(context["prompt"])
        stream = "question-" + hashlib.sha256(prompt.encode()).hexdigest()[:12]
        run = int(context["run"])
        events = [
            NewEvent("QuestionAsked", {"text": context["question"], "prompt": prompt, "run": run}),
            NewEvent(
                "AnswerGiven",
                {
                    "prompt": prompt,
                    "answer": context["answer"],
                    "provider": context["provider"],
                    "answered_at": context["answered_at"],
                    "run": run,
                },
            ),
        ]
        try:
            await store.append(stream, events)
        except PortError as exc:
            return StepResult.error(f"{type(exc).__name__}: {exc}")
        return StepResult.ok(stream=stream, recorded=len(events))
