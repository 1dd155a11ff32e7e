"""Recording and scripted doubles: every port has both, they satisfy their ports, and they
record and answer as documented."""

from __future__ import annotations

import pytest

from portfolio_core import ports as p
from portfolio_core.ports.catalogue import PORTS
from portfolio_core.testing import LoopRunner
from portfolio_core.testing import doubles as d
from tests.testing.adapters import ByteTokenizer


@pytest.mark.parametrize("port", PORTS, ids=lambda info: info.key)
def test_every_port_has_recording_and_scripted_doubles(port: p.PortInfo) -> None:
    for kind in ("Recording", "Scripted"):
        double = getattr(d, f"{kind}{port.name}")()
        assert isinstance(double, port.protocol), f"{kind}{port.name} does not satisfy {port.name}"


def test_recording_wraps_and_forwards() -> None:
    tok = d.RecordingTokenizer(ByteTokenizer())
    assert tok.decode(tok.encode("hé")) == "hé"
    assert [c.method for c in tok.calls] == ["encode", "decode"]
    assert tok.calls_to("encode") == [d.Call("encode", ("hé",), {"add_special_tokens": False})]
    assert tok.vocab_size == 258


def test_scripted_answers_in_order_then_defaults() -> None:
    cache = d.ScriptedCache(get=[1, p.UnavailableError("down")], exists=[True])
    with LoopRunner() as runner:
        assert runner.run(cache.get("a")) == 1
        with pytest.raises(p.UnavailableError):
            runner.run(cache.get("a"))
        assert runner.run(cache.get("a")) is None  # the neutral default
        assert runner.run(cache.exists("a")) is True
        assert runner.run(cache.get_many(["a"])) == {}
    assert [c.args for c in cache.calls_to("get")] == [("a",), ("a",), ("a",)]


def test_unscripted_call_without_default_fails_loudly() -> None:
    step = d.ScriptedPipelineStep("s", required_inputs={"x"})
    assert step.validate_input({}) == ["missing input 'x'"]
    with LoopRunner() as runner, pytest.raises(AssertionError, match="unscripted call"):
        runner.run(step.execute({"x": 1}, {}))


def test_computed_and_repeat() -> None:
    tok = d.ScriptedTokenizer(encode=[d.computed(lambda text, **_: [len(text)])], repeat=True)
    assert tok.encode("abc") == [3]
    assert tok.encode("hello") == [5]


def test_scripted_llm_scripts_and_streams() -> None:
    llm = d.ScriptedLLM(["one two three", p.RateLimitedError("slow down", retry_after=1)])
    recorder = d.RecordingLLM(llm)
    hello = [p.Message("user", "hi")]
    with LoopRunner() as runner:

        async def stream() -> list[p.CompletionChunk]:
            return [c async for c in recorder.stream(hello)]

        chunks = runner.run(stream())
        assert "".join(c.text for c in chunks) == "one two three"
        assert chunks[-1].usage == p.Usage(1, 3)
        with pytest.raises(p.RateLimitedError):
            runner.run(recorder.complete(hello))
        with pytest.raises(AssertionError, match="ran out of responses"):
            runner.run(recorder.complete(hello))
    assert [c.method for c in recorder.calls] == ["stream", "complete", "complete"]
    assert recorder.capabilities == llm.capabilities


def test_scripted_router_routes_to_registered_provider() -> None:
    router = d.ScriptedRouter()
    with LoopRunner() as runner:
        runner.run(router.register_provider(p.Provider("a", "m"), d.ScriptedLLM(default="hey")))
        assert runner.run(router.route([p.Message("user", "x")])).name == "a"
        done = runner.run(router.complete([p.Message("user", "x")]))
    assert (done.text, done.provider) == ("hey", "a")


def test_scripted_persistence_behaves_like_the_port() -> None:
    store = d.ScriptedCachePersistence()
    blocks = p.AgentBlocks("a", (1,), (), (), "spec")
    store.save("a", blocks)
    assert store.load("a", "spec") is blocks
    with pytest.raises(p.InvalidInputError):
        store.load("a", "other")
    with pytest.raises(p.NotFoundError):
        store.load("b", "spec")
    assert store.list_cached_agents() == ["a"]
    assert store.delete("a") is True
    assert store.delete("a") is False
