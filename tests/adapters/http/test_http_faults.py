"""The OpenAI-compatible LLM when its server goes away and comes back, through the kit's
fault proxy: a cut fails the call fast with a retryable port error, a stalled server fails it
within the adapter's total deadline, and after the restore the next call succeeds without
restarting the adapter. (Malformed, trickling, oversized and key-echoing servers:
``test_hostile_server.py``.)"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Iterator

import pytest

from portfolio_core.adapters.http.openai_compatible import OpenAICompatibleLLM
from portfolio_core.ports import Message, PortError, PortTimeoutError, UnavailableError
from portfolio_core.testing.faults import BackgroundFaultProxy
from tests.support.llm_server import llm_server

HI = [Message("user", "ping")]
TIMEOUT = 1.0
SLACK = 1.5


@pytest.fixture
def proxied() -> Iterator[tuple[BackgroundFaultProxy, str]]:
    with llm_server() as url, BackgroundFaultProxy(url) as proxy:
        yield proxy, proxy.url(url)


async def _fails_within(call: Awaitable[object], seconds: float) -> PortError:
    started = time.monotonic()
    with pytest.raises(PortError) as caught:
        await asyncio.wait_for(call, seconds + 30)  # a hang fails here, not forever
    elapsed = time.monotonic() - started
    assert caught.value.retryable
    assert elapsed < seconds, f"the call took {elapsed:.1f} s, more than {seconds} s"
    return caught.value


async def test_a_cut_fails_fast_and_the_next_call_after_restore_succeeds(
    proxied: tuple[BackgroundFaultProxy, str],
) -> None:
    proxy, url = proxied
    llm = OpenAICompatibleLLM(url, "m", timeout=TIMEOUT)
    try:
        assert (await llm.complete(HI)).text == "pong"
        proxy.cut()
        for _ in range(3):
            error = await _fails_within(llm.complete(HI), 1.0)
            assert isinstance(error, UnavailableError), repr(error)
        proxy.restore()
        assert (await llm.complete(HI)).text == "pong"  # the very first call after restore
        await llm.ping()
    finally:
        proxy.restore()
        await llm.aclose()


async def test_a_stalled_server_fails_each_call_within_the_deadline(
    proxied: tuple[BackgroundFaultProxy, str],
) -> None:
    proxy, url = proxied
    llm = OpenAICompatibleLLM(url, "m", timeout=TIMEOUT)
    try:
        assert (await llm.complete(HI)).text == "pong"
        proxy.stall()
        for _ in range(2):
            error = await _fails_within(llm.complete(HI), TIMEOUT + SLACK)
            assert isinstance(error, PortTimeoutError | UnavailableError), repr(error)
        proxy.restore()
        assert (await llm.complete(HI)).text == "pong"
    finally:
        proxy.restore()
        await llm.aclose()
