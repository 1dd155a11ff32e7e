"""CacheStore prefix lookup for a 4,096-token prompt, same run, medians of repeats.

(c) ``MemoryCacheStore.get(agent, prompt)`` where ``prompt`` is a 4,096-token list (as a
    tokenizer returns it) and the agent's stored entry covers its first 4,000 tokens (the
    conversation so far), among 256 agents that share a 1,024-token system prompt. A second
    row times a prompt that diverges from the entry at token 2,500 (the hit is trimmed to
    whole blocks). A third row passes the prompt as an int64 NumPy array (what an array-based
    tokenizer pipeline yields): the store then compares its bytes without first reading
    Python int objects into machine integers. The peer gets the same prompt as a list.

The peer, measured in the same run on the same entries, is the baseline such stores
replace: a naive linear scan over every stored entry (agent id, tokens, blocks), comparing
token prefixes one token at a time in Python and keeping the longest block-granular match
for the agent. It is not a published library -- there is no off-the-shelf peer for this
lookup -- so read the ratio as "how much the per-agent index and C-level comparison buy",
not as a comparison with another project. Both return the same match (checked).

The JSON lines carry median wall-clock times; the table also prints median CPU time and the
best repeat, which on a machine shared with other work show the uncontended cost.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Sequence

import numpy as np

from portfolio_core.adapters.memory.cache_store import MemoryCacheStore
from portfolio_core.ports import AgentBlocks

#: the CI smoke mode: tiny counts that prove the benchmark still runs (figures mean nothing)
SMOKE = os.environ.get("PORTFOLIO_CORE_BENCH_SMOKE") == "1"
AGENTS = 256
SYSTEM = 1024
STORED = 4000
PROMPT = 4096
DIVERGE_AT = 2500
BLOCK = 16
LOOKUPS = 20 if SMOKE else 2000
REPEATS = 2 if SMOKE else 7
GOAL_US = 50.0


def conversation(agent: int, length: int) -> list[int]:
    system = [(7 * p) % 50_000 for p in range(SYSTEM)]
    own = [(agent * 7919 + 31 * p) % 50_000 for p in range(SYSTEM, length)]
    return system + own


def blocks_for(agent_id: str, tokens: Sequence[int]) -> AgentBlocks:
    n = len(tokens)
    kv = np.zeros((1, n, 2), dtype=np.float16)  # tiny tensors: the lookup is what is timed
    return AgentBlocks(agent_id, tuple(tokens), (kv,), (kv,), "bench")


def linear_scan_get(
    entries: list[tuple[str, tuple[int, ...], AgentBlocks]], agent_id: str, prompt: list[int]
) -> int:
    best = 0
    for owner, tokens, _blocks in entries:
        if owner != agent_id:
            continue
        common = 0
        for a, b in zip(tokens, prompt, strict=False):
            if a != b:
                break
            common += 1
        matched = common if common == len(tokens) else (common // BLOCK) * BLOCK
        best = max(best, matched)
    return best


def per_call_us(fn: Callable[[], object], calls: int) -> tuple[float, float, float]:
    """Median over REPEATS of wall and CPU microseconds per call, and the best wall time."""
    walls, cpus = [], []
    for _ in range(REPEATS):
        w0, c0 = time.perf_counter(), time.process_time()
        for _ in range(calls):
            fn()
        walls.append((time.perf_counter() - w0) / calls * 1e6)
        cpus.append((time.process_time() - c0) / calls * 1e6)
    return statistics.median(walls), statistics.median(cpus), min(walls)


def main() -> None:
    store = MemoryCacheStore(block_size=BLOCK)
    entries: list[tuple[str, tuple[int, ...], AgentBlocks]] = []
    for i in range(AGENTS):
        agent = f"agent-{i}"
        blocks = blocks_for(agent, conversation(i, STORED))
        store.put(agent, blocks)
        entries.append((agent, blocks.tokens, blocks))
    target = "agent-200"
    prompts = {
        "whole entry (conversation continues)": conversation(200, PROMPT),
        "diverging at token 2,500 (trimmed)": [
            *conversation(200, PROMPT)[:DIVERGE_AT],
            1,
            *conversation(200, PROMPT)[DIVERGE_AT + 1 :],
        ],
    }
    prompts["whole entry, prompt as an int64 array"] = np.asarray(
        conversation(200, PROMPT), dtype=np.int64
    )
    rows = []
    print("median wall us per lookup (median CPU us, best wall us)")
    print(f"{'case':40} {'ours':>8} {'(cpu':>7} {'best)':>7} {'peer':>8} {'(cpu':>7} {'best)':>7}")
    for case, prompt in prompts.items():
        hit = store.get(target, prompt)
        assert hit is not None
        listed = prompt.tolist() if isinstance(prompt, np.ndarray) else prompt
        assert hit.matched_tokens == linear_scan_get(entries, target, listed)
        ours, ours_cpu, ours_best = per_call_us(lambda p=prompt: store.get(target, p), LOOKUPS)
        peer, peer_cpu, peer_best = per_call_us(
            lambda p=listed: linear_scan_get(entries, target, p), 50
        )
        print(
            f"{case:40} {ours:8.1f} {ours_cpu:7.1f} {ours_best:7.1f} "
            f"{peer:8.1f} {peer_cpu:7.1f} {peer_best:7.1f}"
        )
        rows.append(
            {
                "benchmark": f"cache_store prefix lookup, 4,096-token prompt, {case}",
                "ours": round(ours, 2),
                "peer": round(peer, 2),
                "unit": "us per lookup",
                "ratio": round(peer / ours, 1),
                "goal": f"under {GOAL_US:g} us per lookup",
                "met": ours < GOAL_US,
            }
        )
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
