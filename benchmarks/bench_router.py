"""Router benchmarks against LiteLLM's Router, offline, in the same run.

1. Decision time: choosing one of 10 providers per request — our ``MemoryRouter.route``
   (round robin) against LiteLLM's ``Router.async_get_available_deployment`` choosing among
   10 deployments of one model group (its default simple-shuffle strategy). Goal: ours at
   least 3x faster.
2. Fallback overhead: the latency a fallback adds after a provider failure — a completion
   whose first provider fails and whose fallback answers, minus a completion answered by
   the first provider directly. Both routers use in-process mocked providers (our scripted
   LLM; LiteLLM's ``mock_response``), so only routing and error handling is measured.
   Goal: less added latency than LiteLLM.

Run: ``python benchmarks/bench_router.py`` (needs the ``bench`` extra). LiteLLM is told to
use its bundled cost map and to send no telemetry; no request leaves the machine.
``PORTFOLIO_CORE_BENCH_SMOKE=1`` runs tiny counts (the CI smoke mode; figures mean nothing).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
os.environ.setdefault("LITELLM_TELEMETRY", "False")

from portfolio_core.adapters.memory.simulated_llm import SimulatedLLM
from portfolio_core.adapters.orchestration.router import MemoryRouter
from portfolio_core.ports import Message, Provider, RouteOptions

SMOKE = os.environ.get("PORTFOLIO_CORE_BENCH_SMOKE") == "1"
PROVIDERS = 10
ROUNDS = 2 if SMOKE else 7
SCALE = 0.02 if SMOKE else 1.0


def calls(n: int) -> int:
    """``n`` calls per round, or a handful in smoke mode."""
    return max(2, int(n * SCALE))


MESSAGES = [Message("system", "You are terse."), Message("user", "What is the capital of France?")]
DICT_MESSAGES = [{"role": m.role, "content": m.content} for m in MESSAGES]


def line(
    benchmark: str, ours: float, peer: float, unit: str, goal: str, ratio: float, met: bool
) -> None:
    print(
        json.dumps(
            {
                "benchmark": benchmark,
                "ours": round(ours, 3),
                "peer": round(peer, 3),
                "unit": unit,
                "ratio": round(ratio, 2),
                "goal": goal,
                "met": met,
            }
        )
    )


async def per_call_us(fn: Callable[[], Awaitable[Any]], n: int) -> float:
    """Median over ROUNDS of the mean microseconds per call in a round of ``n`` calls."""
    for _ in range(min(n, 50)):
        await fn()
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(n):
            await fn()
        samples.append((time.perf_counter() - start) / n * 1e6)
    return statistics.median(samples)


def ours_router() -> MemoryRouter:
    router = MemoryRouter("round_robin")
    for i in range(PROVIDERS):
        router.add_provider(
            Provider(
                f"p{i}", f"model-{i}", input_price_per_mtok=1.0 + i, output_price_per_mtok=2.0
            ),
            SimulatedLLM(["ok"]),
        )
    return router


def litellm_router(model_list: list[dict[str, Any]], **kwargs: Any) -> Any:
    import litellm
    from litellm import Router

    litellm.telemetry = False
    litellm.suppress_debug_info = True
    return Router(model_list=model_list, **kwargs)


def litellm_deployments() -> list[dict[str, Any]]:
    return [
        {
            "model_name": "chat",
            "litellm_params": {
                "model": f"openai/model-{i}",
                "api_key": "not-used",
                "api_base": "http://127.0.0.1:9/v1",
            },
        }
        for i in range(PROVIDERS)
    ]


async def bench_decision() -> None:
    ours = ours_router()
    peer = litellm_router(litellm_deployments())

    async def ours_once() -> Any:
        return await ours.route(MESSAGES)

    async def peer_once() -> Any:
        return await peer.async_get_available_deployment(
            model="chat", request_kwargs={}, messages=DICT_MESSAGES
        )

    assert (await peer_once())["litellm_params"]["model"].startswith("openai/model-")
    ours_us = await per_call_us(ours_once, calls(2000))
    peer_us = await per_call_us(peer_once, calls(300))
    print(f"# decision among {PROVIDERS}: ours {ours_us:.2f} us, litellm {peer_us:.2f} us")
    ratio = peer_us / ours_us
    line(
        "router decision time, 10 providers",
        ours_us,
        peer_us,
        "us/request",
        ">= 3x faster than LiteLLM Router",
        ratio,
        ratio >= 3.0,
    )


async def bench_fallback() -> None:
    ours = MemoryRouter("fallback", num_retries=0)
    ours.add_provider(Provider("broken", "m-a"), SimulatedLLM(fail_every=1))
    ours.add_provider(Provider("backup", "m-b", group=1), SimulatedLLM(["ok"]))
    direct = MemoryRouter("fallback")
    direct.add_provider(Provider("backup", "m-b"), SimulatedLLM(["ok"]))
    opts = RouteOptions()

    async def ours_fallback() -> Any:
        c = await ours.complete(MESSAGES, opts)
        assert c.provider == "backup"
        return c

    async def ours_direct() -> Any:
        return await direct.complete(MESSAGES, opts)

    base = {"api_key": "not-used", "api_base": "http://127.0.0.1:9/v1"}
    peer = litellm_router(
        [
            {
                "model_name": "broken",
                "litellm_params": {"model": "openai/a", **base, "mock_response": Exception("down")},
            },
            {
                "model_name": "backup",
                "litellm_params": {"model": "openai/b", **base, "mock_response": "ok"},
            },
        ],
        fallbacks=[{"broken": ["backup"]}],
        num_retries=0,
    )

    async def peer_fallback() -> Any:
        r = await peer.acompletion(model="broken", messages=DICT_MESSAGES)
        assert r.choices[0].message.content == "ok"
        return r

    async def peer_direct() -> Any:
        return await peer.acompletion(model="backup", messages=DICT_MESSAGES)

    ours_added, ours_fb = await added_us(ours_fallback, ours_direct, calls(1000))
    peer_added, peer_fb = await added_us(peer_fallback, peer_direct, calls(100) if SMOKE else 20)
    print(
        f"# one fallback: ours {ours_fb:.1f} us per request ({ours_added:.1f} us added), "
        f"litellm {peer_fb:.1f} us per request ({peer_added:.1f} us added)"
    )
    ratio = peer_added / max(ours_added, 0.1)
    line(
        "added latency of a fallback after a provider failure",
        ours_added,
        peer_added,
        "us/request",
        "less added latency than LiteLLM Router",
        ratio,
        ratio > 1.0,
    )


async def added_us(
    fallback: Callable[[], Awaitable[Any]], direct: Callable[[], Awaitable[Any]], n: int
) -> tuple[float, float]:
    """Median over interleaved rounds of (fallback - direct) us/request, and fallback's own."""
    for _ in range(min(n, 20)):
        await fallback()
        await direct()
    diffs, totals = [], []
    for _ in range(ROUNDS * 2):
        start = time.perf_counter()
        for _ in range(n):
            await fallback()
        with_fb = (time.perf_counter() - start) / n * 1e6
        start = time.perf_counter()
        for _ in range(n):
            await direct()
        without = (time.perf_counter() - start) / n * 1e6
        diffs.append(with_fb - without)
        totals.append(with_fb)
    return max(statistics.median(diffs), 0.0), statistics.median(totals)


async def main() -> None:
    await bench_decision()
    await bench_fallback()


if __name__ == "__main__":
    asyncio.run(main())
