"""Recording and scripted doubles: every port has both, they satisfy their ports, and they
record and answer as documented."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

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


@pytest.mark.parametrize("port", PORTS, ids=lambda info: info.key)
def test_doubles_have_every_port_method_with_its_async_ness(port: p.PortInfo) -> None:
    import inspect

    from portfolio_core.ports.introspection import MemberKind, members_of

    for kind in ("Recording", "Scripted"):
        cls = getattr(d, f"{kind}{port.name}")
        for member in members_of(port.protocol):
            if member.kind is MemberKind.ATTRIBUTE:
                continue
            method = inspect.getattr_static(cls, member.name)
            assert callable(method), f"{cls.__name__}.{member.name}"
            is_coroutine = inspect.iscoroutinefunction(method)
            assert is_coroutine is (member.kind is MemberKind.COROUTINE), member.name


def test_calls_are_recorded_by_the_ports_signature() -> None:
    cache = d.RecordingCache()
    with LoopRunner() as runner:
        runner.run(cache.put("k", 1))
        runner.run(cache.put("k", 2, 60))
        runner.run(cache.put(key="k", value=3, ttl=5))
        with pytest.raises(TypeError):
            runner.run(cache.put("k"))  # the port's put needs a value
    assert cache.calls_to("put") == [
        d.Call("put", ("k", 1), {"ttl": None}),
        d.Call("put", ("k", 2, 60), {}),
        d.Call("put", (), {"key": "k", "value": 3, "ttl": 5}),
    ]


def test_recording_doubles_are_generated_from_the_protocol() -> None:
    from typing import Protocol

    from portfolio_core.testing.doubles._core import _Recording

    class Greeter(Protocol):
        language: str

        async def greet(self, name: str, *, polite: bool = False) -> str: ...

        def count(self) -> int: ...

    class English:
        language = "en"

        async def greet(self, name: str, *, polite: bool = False) -> str:
            return f"{'Good day' if polite else 'Hi'}, {name}"

        def count(self) -> int:
            return 1

    class RecordingGreeter(_Recording[Greeter], port=Greeter):
        pass

    greeter = RecordingGreeter(English())
    with LoopRunner() as runner:
        assert runner.run(greeter.greet("Ada")) == "Hi, Ada"
    assert greeter.count() == 1
    assert greeter.language == "en"
    assert greeter.calls == [d.Call("greet", ("Ada",), {"polite": False}), d.Call("count")]
    with pytest.raises(TypeError, match="needs an adapter"):
        RecordingGreeter()


def test_scripted_answers_feed_computed_answers_the_normalised_arguments() -> None:
    cache = d.ScriptedCache(put=[d.computed(lambda key, value, ttl: (key, value, ttl))])
    with LoopRunner() as runner:
        assert runner.run(cache.put("k", "v")) == ("k", "v", None)


def test_scripted_config_store_answers_and_watches() -> None:
    change = p.ChangeSet(2, (p.ConfigChange("a", 1),), "ana", "why", datetime.now(UTC))
    store = d.ScriptedConfigStore(get=[5], watch=[[change]])
    with LoopRunner() as runner:
        assert runner.run(store.get("a")) == 5
        assert runner.run(store.apply({"a": 1})) == 1
        assert runner.run(store.current_version()) == 0

        async def drain() -> list[p.ChangeSet]:
            return [c async for c in store.watch("a", from_version=1)]

        assert runner.run(drain()) == [change]
    assert [c.method for c in store.calls] == ["get", "apply", "current_version", "watch"]


def test_scripted_router_answers_from_its_script_over_the_registered_providers() -> None:
    hello = [p.Message("user", "x")]
    scripted = p.Completion("canned", "m", p.Usage(1, 1), "stop", (), "b")
    router = d.ScriptedRouter(
        route=[p.Provider("b", "m")],
        complete=[scripted],
        health_check=[p.HealthStatus("a", False, detail="down")],
    )
    with LoopRunner() as runner:
        runner.run(router.register_provider(p.Provider("a", "m"), d.ScriptedLLM(default="hey")))
        assert runner.run(router.route(hello)).name == "b"
        assert runner.run(router.complete(hello)) is scripted
        assert runner.run(router.health_check("a")) == p.HealthStatus("a", False, detail="down")
        assert runner.run(router.health_check("a")) == p.HealthStatus("a", True)
        assert [x.name for x in runner.run(router.list_providers())] == ["a"]
        runner.run(router.set_strategy(p.RoutingStrategy.COST_OPTIMIZED))
    assert router.strategy is p.RoutingStrategy.COST_OPTIMIZED
    cheapest = p.RoutingStrategy.COST_OPTIMIZED
    assert router.calls_to("set_strategy") == [d.Call("set_strategy", (cheapest,))]


def test_scripted_router_without_providers_or_script_fails_loudly() -> None:
    with LoopRunner() as runner, pytest.raises(AssertionError, match="unscripted call"):
        runner.run(d.ScriptedRouter().route([p.Message("user", "x")]))


def test_scripted_step_reports_its_declaration_and_scripted_validation() -> None:
    step = d.ScriptedPipelineStep(
        "s",
        required_inputs={"x"},
        output_schema={"y": int},
        cacheable=True,
        validate_input=[["bad x"]],
    )
    assert (step.required_inputs, step.output_schema, step.cacheable) == (
        frozenset({"x"}),
        {"y": int},
        True,
    )
    assert step.validate_input({"x": 1}) == ["bad x"]
    assert step.validate_input({}) == ["missing input 'x'"]


def test_scripted_agent_lists_its_tools_and_answers_unknown_tools_with_an_error() -> None:
    from portfolio_core.ports.llm import ToolCall, ToolSpec

    spec = ToolSpec("search", "look things up")
    agent = d.ScriptedAgent(tools=[spec], max_iterations=3)
    assert agent.available_tools() == [spec]
    assert agent.max_iterations == 3
    with LoopRunner() as runner:
        result = runner.run(agent.execute_tool(ToolCall("c1", "nope")))
        assert (result.call_id, result.is_error) == ("c1", True)
        assert "unknown tool 'nope'" in result.content
        assert runner.run(agent.run("do it")).iterations == 1


def test_scripted_tenant_uses_the_real_tenant_context() -> None:
    from portfolio_core.ports.tenant import TenantContext

    tenant = d.ScriptedTenant()
    assert tenant.get_context() is None
    token = tenant.set_context(TenantContext("acme"))
    assert tenant.get_context() == TenantContext("acme")
    with LoopRunner() as runner:
        assert runner.run(tenant.check_quota("tokens")).tenant == "acme"
    tenant.reset_context(token)
    assert tenant.get_context() is None
    with tenant.with_tenant("globex") as ctx:
        assert ctx.tenant_id == "globex"
        assert tenant.get_context() == ctx
    assert tenant.get_context() is None
    assert [c.method for c in tenant.calls][:3] == ["get_context", "set_context", "get_context"]


def test_scripted_stream_yields_scripted_items_and_counts_what_is_written() -> None:
    from portfolio_core.ports.stream import StreamMessage

    ready = StreamMessage("m1", {"a": 1}, "src")
    stream = d.ScriptedStream(stream=[[ready, "plain"]])

    async def items() -> Any:
        yield 1
        yield 2

    async def double(x: int) -> int:
        return x * 2

    async def scenario() -> tuple[list[StreamMessage], list[StreamMessage], int, int, list[int]]:
        first = [m async for m in stream.stream("src")]
        second = [m async for m in stream.stream("src")]  # the default: nothing
        written = await stream.write_stream("sink", items())
        written += await stream.write_stream("sink", [3])
        transformed = [x async for x in stream.transform(items(), double)]
        synced = [x async for x in stream.transform(items(), lambda x: -x)]
        return first, second, written, len(stream.written["sink"]), transformed + synced

    with LoopRunner() as runner:
        first, second, written, kept, transformed = runner.run(scenario())
    assert first[0] is ready
    assert (first[1].payload, first[1].source) == ("plain", "src")
    assert second == []
    assert (written, kept) == (3, 3)
    assert stream.written["sink"] == [1, 2, 3]
    assert transformed == [2, 4, -1, -2]


def test_scripted_model_backend_reports_its_spec() -> None:
    backend = d.ScriptedModelBackend()
    assert backend.extract_model_spec().vocab_size == 257
    assert backend.calls_to("extract_model_spec") == [d.Call("extract_model_spec")]


def test_scripted_engine_finishes_pending_requests_unless_scripted() -> None:
    from portfolio_core.ports.generation_engine import CompletedGeneration, FinishReason

    engine = d.ScriptedGenerationEngine()
    first = engine.submit("agent", "hi")
    second = engine.submit("agent", [1, 2])
    assert (first, second) == ("uid-1", "uid-2")
    assert engine.has_unfinished()
    assert engine.abort(first) is True
    assert engine.abort("uid-9") is False
    assert sorted(g.uid for g in engine.step()) == ["uid-1", "uid-2"]
    assert not engine.has_unfinished()

    done = CompletedGeneration("x", "text", None, FinishReason.LENGTH, 3)
    scripted = d.ScriptedGenerationEngine(submit=["x"], step=[[done]])
    assert scripted.submit("agent", "hi") == "x"
    assert scripted.has_unfinished()
    assert scripted.step() == [done]
    assert not scripted.has_unfinished()


def test_repeat_keeps_giving_the_last_answer_of_hand_written_methods() -> None:
    """``repeat=True`` works for the methods a double writes by hand (they fall back to their
    own behaviour only when nothing was ever scripted), as for the generated ones."""
    from portfolio_core.ports.generation_engine import CompletedGeneration, FinishReason

    done = CompletedGeneration("x", "text", None, FinishReason.LENGTH, 3)
    engine = d.ScriptedGenerationEngine(submit=["x"], step=[[done]], repeat=True)
    assert [engine.submit("agent", "hi") for _ in range(3)] == ["x", "x", "x"]
    assert [engine.step() for _ in range(3)] == [[done], [done], [done]]

    blocks = p.AgentBlocks("a", (1,), (), (), "spec")
    store = d.ScriptedCachePersistence(
        load=[blocks], save=[p.UnavailableError("disk")], repeat=True
    )
    assert [store.load("a", "spec") for _ in range(2)] == [blocks, blocks]
    for _ in range(2):
        with pytest.raises(p.UnavailableError):
            store.save("a", blocks)
    assert store.saved == {}

    step = d.ScriptedPipelineStep("s", required_inputs={"x"}, validate_input=[["bad"]], repeat=True)
    assert [step.validate_input({}) for _ in range(2)] == [["bad"], ["bad"]]

    hello = [p.Message("user", "x")]
    canned = p.Completion("canned", "m", p.Usage(1, 1), "stop", (), "b")
    router = d.ScriptedRouter(
        route=[p.Provider("b", "m")],
        complete=[canned],
        health_check=[p.HealthStatus("a", False, detail="down")],
        repeat=True,
    )
    with LoopRunner() as runner:
        runner.run(router.register_provider(p.Provider("a", "m"), d.ScriptedLLM(default="hey")))
        for _ in range(2):
            assert runner.run(router.route(hello)).name == "b"
            assert runner.run(router.complete(hello)) is canned
            assert not runner.run(router.health_check("a")).healthy


def test_without_repeat_hand_written_methods_fall_back_once_the_script_is_spent() -> None:
    engine = d.ScriptedGenerationEngine(submit=["x"])
    assert engine.submit("agent", "hi") == "x"
    assert engine.submit("agent", "hi") == "uid-1"


def test_scripted_cache_store_has_no_pinning_and_empty_stats() -> None:
    store = d.ScriptedCacheStore()
    assert store.block_size == 16
    with pytest.raises(p.UnsupportedError, match="no pinning"):
        store.pin("a")
    with pytest.raises(p.UnsupportedError, match="no pinning"):
        store.unpin("a")
    assert store.stats() == p.CacheStoreStats()


def test_scripted_persistence_answers_from_its_script_first() -> None:
    blocks = p.AgentBlocks("a", (1,), (), (), "spec")
    store = d.ScriptedCachePersistence(save=[p.UnavailableError("disk")], load=[blocks])
    with pytest.raises(p.UnavailableError):
        store.save("a", blocks)
    assert store.exists("a") is False
    assert store.load("a", "spec") is blocks


def test_a_double_can_be_scripted_later_and_its_calls_forgotten() -> None:
    cache = d.ScriptedCache()
    cache.script("get", "later")
    with LoopRunner() as runner:
        assert runner.run(cache.get("a")) == "later"
    assert cache.called("get")
    assert not cache.called("put")
    cache.reset_calls()
    assert cache.calls == []
    with pytest.raises(AttributeError, match="ScriptedCache has no method 'fetch' to script"):
        cache.script("fetch", 1)


def test_a_recording_double_closes_its_target() -> None:
    closed: list[str] = []

    class Closable(d.ScriptedCache):
        async def aclose(self) -> None:
            closed.append("aclose")

    recorder = d.RecordingCache(Closable())
    with LoopRunner() as runner:
        runner.run(recorder.aclose())
    assert closed == ["aclose"]
