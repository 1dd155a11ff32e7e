"""The demo's pipeline steps: they say what input is wrong, refuse an empty question, and turn
a failing model or event store into a step error instead of raising."""

from __future__ import annotations

from portfolio_core.demo.steps import Answer, Normalise, Record
from portfolio_core.ports import StepStatus, UnavailableError
from portfolio_core.testing.doubles import ScriptedEventStore, ScriptedLLM


def test_inputs_of_the_wrong_type_are_named() -> None:
    assert Record().validate_input({"question": 1}) == [
        "missing input 'answer'",
        "missing input 'answered_at'",
        "missing input 'events'",
        "missing input 'prompt'",
        "missing input 'provider'",
        "missing input 'run'",
        "input 'question' must be str",
    ]


async def test_an_empty_question_is_a_step_error() -> None:
    result = await Normalise().execute({"question": "   "}, {})
    assert result.status is StepStatus.ERROR
    assert result.message == "the question is empty"


async def test_a_failing_model_is_a_step_error_naming_the_failure() -> None:
    step = Answer(llm=ScriptedLLM([UnavailableError("model down")]), name="answer-fast")
    assert step.name == "answer-fast"
    result = await step.execute({"prompt": "Why?"}, {})
    assert result.status is StepStatus.ERROR
    assert result.message == "UnavailableError: model down"


async def test_a_failing_event_store_is_a_step_error_naming_the_failure() -> None:
    context = {
        "events": ScriptedEventStore(append=[UnavailableError("store down")]),
        "question": "Why?",
        "prompt": "Why?",
        "answer": "Because.",
        "provider": "p",
        "answered_at": "2026-01-01T00:00:00+00:00",
        "run": 1,
    }
    result = await Record().execute(context, {})
    assert result.status is StepStatus.ERROR
    assert result.message == "UnavailableError: store down"
