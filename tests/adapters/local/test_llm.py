"""The local LLM over GenerationEngine + Tokenizer ports, with small engines written here."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

import pytest

from portfolio_core.adapters.local.llm import LocalLLM, LocalLLMConfig, render_chat
from portfolio_core.ports import (
    LLM,
    AgentBlocks,
    CompletedGeneration,
    CompletionOptions,
    FinishReason,
    GenerationEngine,
    InvalidInputError,
    Message,
    ToolSpec,
    UnavailableError,
    UnsupportedError,
)
from portfolio_core.testing.contracts.llm import LLMContract

EOS = 256


class ByteTokenizer:
    def encode(self, text: str, *, add_special_tokens: bool = False) -> list[int]:
        return list(text.encode())

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        return bytes(i for i in ids if i < 256).decode(errors="replace")

    @property
    def eos_token_id(self) -> int:
        return EOS

    @property
    def eos_token_ids(self) -> frozenset[int]:
        return frozenset({EOS})

    @property
    def bos_token_id(self) -> int | None:
        return None

    @property
    def vocab_size(self) -> int:
        return 257


class EchoEngine:
    """Generates the last user line of the prompt back, one token per step, then EOS."""

    def __init__(self) -> None:
        self.pending: dict[str, tuple[list[int], int, list[int]]] = {}
        self.steps = 0
        self.max_batch = 0
        self.aborted: list[str] = []
        self._n = 0

    def submit(
        self,
        agent_id: str,
        prompt: str | Sequence[int],
        cache: AgentBlocks | None = None,
        max_tokens: int = 256,
    ) -> str:
        ids = list(prompt.encode()) if isinstance(prompt, str) else list(prompt)
        text = bytes(ids).decode()
        user = text.split("<|user|>\n")[-1].split("\n")[0]
        self._n += 1
        uid = f"u{self._n}"
        self.pending[uid] = ([*user.encode(), EOS], max_tokens, [])
        return uid

    def step(self) -> list[CompletedGeneration]:
        self.steps += 1
        self.max_batch = max(self.max_batch, len(self.pending))
        done = []
        for uid, (target, limit, out) in list(self.pending.items()):
            out.append(target[len(out)])
            if out[-1] == EOS or len(out) >= limit:
                reason = FinishReason.STOP if out[-1] == EOS else FinishReason.LENGTH
                done.append(CompletedGeneration(uid, "", None, reason, len(out), tuple(out)))
                del self.pending[uid]
        return done

    def abort(self, uid: str) -> bool:
        self.aborted.append(uid)
        return self.pending.pop(uid, None) is not None

    def has_unfinished(self) -> bool:
        return bool(self.pending)


def make() -> tuple[LocalLLM, EchoEngine]:
    engine = EchoEngine()
    assert isinstance(engine, GenerationEngine)
    return LocalLLM(engine=engine, tokenizer=ByteTokenizer()), engine


def test_chat_template() -> None:
    text = render_chat([Message("system", "s"), Message("user", "u")])
    assert text == "<|system|>\ns\n<|user|>\nu\n<|assistant|>\n"


async def test_complete_generates_with_usage() -> None:
    llm, _ = make()
    assert isinstance(llm, LLM)
    c = await llm.complete([Message("system", "be kind"), Message("user", "hello")])
    assert c.text == "hello"
    assert c.finish_reason == "stop"
    assert c.usage.input_tokens == len(
        render_chat([Message("system", "be kind"), Message("user", "hello")])
    )
    assert c.usage.output_tokens == 6  # five bytes and EOS
    await llm.aclose()


async def test_concurrent_requests_are_batched() -> None:
    llm, engine = make()
    words = ["alpha", "beta", "gamma", "delta"]
    results = await asyncio.gather(*(llm.complete([Message("user", w)]) for w in words))
    assert [r.text for r in results] == words
    assert engine.max_batch == 4
    assert engine.steps <= 6  # longest answer plus EOS, not the sum
    await llm.aclose()


async def test_max_tokens_and_stop() -> None:
    llm, _ = make()
    c = await llm.complete([Message("user", "abcdef")], CompletionOptions(max_tokens=3))
    assert (c.text, c.finish_reason, c.usage.output_tokens) == ("abc", "length", 3)
    c = await llm.complete([Message("user", "abcdef")], CompletionOptions(stop=("d",)))
    assert c.text == "abc"
    await llm.aclose()


async def test_cancellation_aborts_the_request() -> None:
    class Endless(EchoEngine):
        def step(self) -> list[CompletedGeneration]:
            self.steps += 1
            return []

    engine = Endless()
    llm = LocalLLM(engine=engine, tokenizer=ByteTokenizer())
    task = asyncio.create_task(llm.complete([Message("user", "x")]))
    for _ in range(5):
        await asyncio.sleep(0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert engine.aborted
    await llm.aclose()


async def test_engine_failure_becomes_unavailable() -> None:
    class Broken(EchoEngine):
        def step(self) -> list[CompletedGeneration]:
            raise RuntimeError("kaput")

    llm = LocalLLM(engine=Broken(), tokenizer=ByteTokenizer())
    with pytest.raises(UnavailableError, match="kaput"):
        await llm.complete([Message("user", "hi")])


async def test_unsupported_and_bad_input() -> None:
    llm, _ = make()
    with pytest.raises(InvalidInputError):
        await llm.complete([])
    with pytest.raises(UnsupportedError):
        await llm.complete([Message("user", "x")], CompletionOptions(tools=(ToolSpec("t", "d"),)))
    with pytest.raises(UnsupportedError):
        _ = [c async for c in llm.stream([Message("user", "x")])]


def test_from_config() -> None:
    llm = LocalLLM.from_config(
        LocalLLMConfig(model="tiny"), engine=EchoEngine(), tokenizer=ByteTokenizer()
    )
    assert llm.model == "tiny"


async def test_end_to_end_over_the_local_engine() -> None:
    from portfolio_core.adapters.local.byte_tokenizer import ByteTokenizer as RealTokenizer
    from portfolio_core.adapters.local.generation_engine import LocalGenerationEngine
    from portfolio_core.adapters.local.numpy_backend import NumpyModelBackend

    tokenizer = RealTokenizer()
    backend = NumpyModelBackend(seed=3)
    engine = LocalGenerationEngine(backend, tokenizer, num_blocks=64)
    llm = LocalLLM(engine=engine, tokenizer=tokenizer, model="tiny")
    questions = [[Message("user", q)] for q in ("hello", "ports and adapters", "hello")]
    opts = CompletionOptions(max_tokens=6)
    together = await asyncio.gather(*(llm.complete(q, opts) for q in questions))
    alone = [await llm.complete(q, opts) for q in questions]
    assert [c.text for c in together] == [c.text for c in alone]  # greedy: batching-invariant
    assert together[0].text == together[2].text
    for c, q in zip(together, questions, strict=True):
        assert c.usage.input_tokens == len(
            tokenizer.encode(render_chat(q), add_special_tokens=True)
        )
        assert 1 <= c.usage.output_tokens <= 6
        assert c.model == "tiny"
    await llm.aclose()


class TestLocalLLMContract(LLMContract):
    @pytest.fixture
    def make_adapter(self) -> Callable[[], LocalLLM]:
        from portfolio_core.adapters.local.byte_tokenizer import ByteTokenizer as RealTokenizer
        from portfolio_core.adapters.local.generation_engine import LocalGenerationEngine
        from portfolio_core.adapters.local.numpy_backend import NumpyModelBackend

        backend = NumpyModelBackend(seed=1)

        def make() -> LocalLLM:
            tokenizer = RealTokenizer()
            engine = LocalGenerationEngine(backend, tokenizer, num_blocks=64)
            return LocalLLM(engine=engine, tokenizer=tokenizer)

        return make


class TestLocalLLMOverATestEngineContract(LLMContract):
    @pytest.fixture
    def make_adapter(self) -> Callable[[], LocalLLM]:
        return lambda: LocalLLM(engine=EchoEngine(), tokenizer=ByteTokenizer())


async def test_streaming_over_the_local_engine_matches_complete() -> None:
    from portfolio_core.adapters.local.byte_tokenizer import ByteTokenizer as RealTokenizer
    from portfolio_core.adapters.local.generation_engine import LocalGenerationEngine
    from portfolio_core.adapters.local.numpy_backend import NumpyModelBackend
    from portfolio_core.ports import LLMCapability, supports

    tokenizer = RealTokenizer()
    engine = LocalGenerationEngine(NumpyModelBackend(seed=3), tokenizer, num_blocks=64)
    llm = LocalLLM(engine=engine, tokenizer=tokenizer)
    assert supports(llm, LLMCapability.STREAMING)
    assert not supports(LocalLLM(engine=EchoEngine(), tokenizer=ByteTokenizer()), "llm.streaming")
    opts = CompletionOptions(max_tokens=12)
    question = [Message("user", "stream me")]
    whole = await llm.complete(question, opts)
    chunks = [c async for c in llm.stream(question, opts)]
    assert "".join(c.text for c in chunks) == whole.text
    assert len(chunks) > 2  # really incremental
    assert chunks[-1].usage == whole.usage
    assert chunks[-1].finish_reason == whole.finish_reason
    assert all(c.finish_reason is None for c in chunks[:-1])
    # stop sequences: never emitted past the cut
    stop = whole.text[3:5] if len(whole.text) >= 5 else None
    if stop:
        cut = await llm.complete(question, CompletionOptions(max_tokens=12, stop=(stop,)))
        streamed = [
            c async for c in llm.stream(question, CompletionOptions(max_tokens=12, stop=(stop,)))
        ]
        assert "".join(c.text for c in streamed) == cut.text
    await llm.aclose()


async def test_stream_after_the_driver_went_idle_does_not_spin() -> None:
    from portfolio_core.adapters.local.byte_tokenizer import ByteTokenizer as RealTokenizer
    from portfolio_core.adapters.local.generation_engine import LocalGenerationEngine
    from portfolio_core.adapters.local.numpy_backend import NumpyModelBackend

    tokenizer = RealTokenizer()
    engine = LocalGenerationEngine(NumpyModelBackend(seed=0), tokenizer, num_blocks=64)
    llm = LocalLLM(engine=engine, tokenizer=tokenizer)
    opts = CompletionOptions(max_tokens=8)
    await asyncio.gather(*(llm.complete([Message("user", q)], opts) for q in "ab"))
    await asyncio.sleep(0)  # let the idle driver finish

    async def collect() -> str:
        return "".join([c.text async for c in llm.stream([Message("user", "a")], opts)])

    streamed = await asyncio.wait_for(collect(), timeout=20)
    assert streamed == (await llm.complete([Message("user", "a")], opts)).text
    await llm.aclose()


async def test_sampling_options_reach_the_engine() -> None:
    from portfolio_core.adapters.local.byte_tokenizer import ByteTokenizer as RealTokenizer
    from portfolio_core.adapters.local.generation_engine import LocalGenerationEngine
    from portfolio_core.adapters.local.numpy_backend import NumpyModelBackend

    tokenizer = RealTokenizer()
    engine = LocalGenerationEngine(NumpyModelBackend(seed=3), tokenizer, num_blocks=64)
    llm = LocalLLM(engine=engine, tokenizer=tokenizer)
    question = [Message("user", "hello")]
    greedy = await llm.complete(question, CompletionOptions(max_tokens=12))
    hot = CompletionOptions(max_tokens=12, temperature=2.0, top_p=0.99, top_k=200, seed=11)
    first = await llm.complete(question, hot)
    again = await llm.complete(question, hot)
    assert first.text == again.text  # the seed makes sampling repeatable
    assert first.text != greedy.text
    still_greedy = await llm.complete(question, CompletionOptions(max_tokens=12, top_k=1))
    assert still_greedy.text == greedy.text
    with pytest.raises(InvalidInputError) as caught:
        await llm.complete(question, CompletionOptions(temperature=1.0, top_p=2.0))
    assert caught.value.field == "top_p"
    await llm.aclose()
