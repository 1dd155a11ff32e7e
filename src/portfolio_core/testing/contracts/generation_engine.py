"""Contract suite of the GenerationEngine port (sync).

Prompts are short strings; the factory returns an engine with its model and tokenizer.
"""

from __future__ import annotations

import pytest

from portfolio_core.ports.errors import InvalidInputError
from portfolio_core.ports.generation_engine import (
    CompletedGeneration,
    FinishReason,
    GenerationEngine,
)
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.suite import ContractSuite

__all__ = ["GenerationEngineContract", "drain"]

#: a bound on steps, so a broken engine fails instead of spinning
MAX_STEPS = 5_000
PROMPTS = ["hello there", "the quick brown fox", "a", "numbers 1 2 3"]


def drain(engine: GenerationEngine) -> list[CompletedGeneration]:
    """Step until nothing is unfinished (at most ``MAX_STEPS`` steps); all that finished."""
    done: list[CompletedGeneration] = []
    for _ in range(MAX_STEPS):
        if not engine.has_unfinished():
            return done
        done.extend(engine.step())
    raise AssertionError(f"the engine still had unfinished requests after {MAX_STEPS} steps")


class GenerationEngineContract(ContractSuite[GenerationEngine]):
    """The promises of [GenerationEngine][portfolio_core.ports.GenerationEngine]."""

    port_key = "generation_engine"

    @clause("generation_engine.submit.lazy", "submit returns a uid at once and runs nothing")
    def test_submit_is_lazy(self, adapter: GenerationEngine) -> None:
        assert not adapter.has_unfinished()
        uid = adapter.submit("agent-1", "hello", max_tokens=4)
        assert isinstance(uid, str)
        assert uid
        assert adapter.has_unfinished()

    @clause(
        "generation_engine.finish.exactly_once",
        "every submitted uid finishes exactly once, within max_tokens",
    )
    def test_every_uid_finishes_once(self, adapter: GenerationEngine) -> None:
        uids = [adapter.submit(f"agent-{i}", p, max_tokens=3 + i) for i, p in enumerate(PROMPTS)]
        assert len(set(uids)) == len(uids), f"duplicate uids {uids}"
        done = drain(adapter)
        assert sorted(g.uid for g in done) == sorted(uids)
        limits = {uid: 3 + i for i, uid in enumerate(uids)}
        for generation in done:
            assert generation.finish_reason in set(FinishReason)
            assert 0 <= generation.token_count <= limits[generation.uid]
            if generation.tokens:
                assert len(generation.tokens) == generation.token_count
        assert adapter.step() == [], "a finished request was returned again"

    @clause(
        "generation_engine.batch.independent",
        "greedy outputs do not depend on what else is in the batch",
    )
    def test_batch_independence(self, adapter: GenerationEngine) -> None:
        alone = {}
        for prompt in PROMPTS[:3]:
            uid = adapter.submit("solo", prompt, max_tokens=6)
            (result,) = drain(adapter)
            assert result.uid == uid
            alone[prompt] = result.text
        uids = {adapter.submit(f"a{i}", p, max_tokens=6): p for i, p in enumerate(PROMPTS[:3])}
        together = {uids[g.uid]: g.text for g in drain(adapter)}
        assert together == alone

    @clause(
        "generation_engine.abort",
        "abort of a pending uid finishes it with finish_reason abort; of anything else, False",
    )
    def test_abort(self, adapter: GenerationEngine) -> None:
        keep = adapter.submit("a", "keep going", max_tokens=4)
        stop = adapter.submit("b", "stop me", max_tokens=50)
        assert adapter.abort(stop) is True
        assert adapter.abort("no-such-uid") is False
        done = {g.uid: g for g in drain(adapter)}
        assert set(done) == {keep, stop}
        assert done[stop].finish_reason == FinishReason.ABORT
        assert adapter.abort(stop) is False, "abort of a finished uid must return False"

    @clause(
        "generation_engine.input.invalid",
        "an empty prompt or max_tokens < 1 raises InvalidInputError",
    )
    def test_invalid_input(self, adapter: GenerationEngine) -> None:
        with pytest.raises(InvalidInputError):
            adapter.submit("a", "", max_tokens=4)
        with pytest.raises(InvalidInputError):
            adapter.submit("a", [], max_tokens=4)
        with pytest.raises(InvalidInputError):
            adapter.submit("a", "hello", max_tokens=0)
        assert not adapter.has_unfinished(), "a refused submit left a request behind"
