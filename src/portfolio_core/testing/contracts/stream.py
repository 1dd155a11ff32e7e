"""Contract suite of the Stream port (async; docs/ports/stream.md).

Clauses that need consumer groups are gated on ``StreamCapability.ACKNOWLEDGE``; the tenant
isolation property needs ``TENANT_SCOPED`` *and* a factory accepting ``tenant_scoped=``
(it is called with ``tenant_scoped=True``); ``claim_after`` under a controlled clock needs a
factory accepting ``clock=``. Timeouts are real (a few tens of milliseconds): they are the
behaviour under test, never a way to order work.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from hypothesis.stateful import rule

from portfolio_core.ports.capabilities import supports
from portfolio_core.ports.errors import (
    InvalidInputError,
    PortTimeoutError,
    TenantRequiredError,
)
from portfolio_core.ports.stream import (
    OnError,
    Stream,
    StreamCapability,
    StreamMessage,
    StreamOptions,
)
from portfolio_core.ports.tenant import tenant_scope
from portfolio_core.testing.adversarial import ADVERSARIAL_IDS, adversarial_ids
from portfolio_core.testing.clauses import clause, expect_unsupported, requires, requires_absent
from portfolio_core.testing.clock import FakeClock
from portfolio_core.testing.loop import LoopRunner, accepts_keyword, close_adapter, open_adapter
from portfolio_core.testing.machines import AdapterMachine, property_settings, run_machine
from portfolio_core.testing.plugin import KitSettings
from portfolio_core.testing.suite import ContractSuite, Factory

__all__ = ["StreamContract", "StreamMachine", "TenantIsolationMachine"]

ACK = StreamCapability.ACKNOWLEDGE
SHORT = 0.05
"""Seconds: the timeout used where a timeout is the behaviour under test."""
BOUND = 10.0
"""Seconds: an upper bound on waits that must end long before it."""


async def drain(adapter: Stream, source: str, opts: StreamOptions | None = None) -> list[Any]:
    """Payloads of a non-following read of ``source``."""
    o = opts or StreamOptions(follow=False)
    return [m.payload async for m in adapter.stream(source, o)]


async def take(iterator: AsyncIterator[StreamMessage], n: int) -> list[StreamMessage]:
    """Up to ``n`` messages from ``iterator``, which is closed afterwards."""
    out: list[StreamMessage] = []
    try:
        while len(out) < n:
            try:
                out.append(await anext(iterator))
            except StopAsyncIteration:
                break
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()
    return out


def group_opts(consumer: str, **kw: Any) -> StreamOptions:
    return StreamOptions(group="g", consumer=consumer, follow=False, **kw)


async def ensure_group(adapter: Stream, source: str, group: str = "g") -> None:
    """Create ``group`` on ``source`` by reading it (nothing there yet)."""
    it = adapter.stream(source, StreamOptions(group=group, follow=False))
    assert await take(it, 1) == [], "a new source must be empty"


async def ensure_group_read(adapter: Stream, source: str, consumer: str) -> None:
    """Read ``source`` to its end in group ``g`` as ``consumer`` (creating the group)."""
    await take(adapter.stream(source, group_opts(consumer)), 10**6)


class Flaky:
    """A transform function failing ``failures`` times per item, counting calls."""

    def __init__(self, failures: int, fail_on: Callable[[int], bool] = lambda _x: True) -> None:
        self.failures = failures
        self.fail_on = fail_on
        self.calls: dict[int, int] = {}

    def __call__(self, x: int) -> int:
        self.calls[x] = self.calls.get(x, 0) + 1
        if self.fail_on(x) and self.calls[x] <= self.failures:
            raise ValueError(f"fail {x}")
        return x * 10


async def collect(
    adapter: Stream,
    source: AsyncIterator[Any],
    fn: Callable[[Any], Any],
    opts: StreamOptions | None = None,
    into: list[Any] | None = None,
) -> list[Any]:
    """Run ``adapter.transform`` to the end, appending each output to ``into``."""
    out = [] if into is None else into
    async for x in adapter.transform(source, fn, opts):
        out.append(x)
    return out


async def items(*values: int, hang: bool = False) -> AsyncIterator[int]:
    for v in values:
        yield v
    if hang:
        await asyncio.Event().wait()


class StreamContract(ContractSuite[Stream]):
    """The promises of [Stream][portfolio_core.ports.Stream] (see docs/ports/stream.md)."""

    port_key = "stream"
    capability_names = frozenset(c.value for c in StreamCapability)

    async def put_probe(self, adapter: Stream) -> str:
        await adapter.write_stream("kit-probe", ["probe"])
        return "kit-probe"

    async def has_probe(self, adapter: Stream, probe: str) -> bool:
        return bool(await drain(adapter, probe))

    # -- writing and reading ---------------------------------------------------------------

    @clause("stream.write.order", "a reader sees exactly the items written, once each, in order")
    async def test_write_then_read(self, adapter: Stream) -> None:
        written = await adapter.write_stream("s", [1, "two", {"three": [3]}, None, 5.5])
        assert written == 5, f"write_stream returned {written}, not the 5 items written"
        more = await adapter.write_stream("s", items(6, 7))
        assert more == 2, "write_stream of an async iterable must count its items"
        got = await drain(adapter, "s")
        assert got == [1, "two", {"three": [3]}, None, 5.5, 6, 7], f"read back {got}"

    @clause("stream.write.order", "a reader sees exactly the items written, once each, in order")
    async def test_ids_unique_and_sources_separate(self, adapter: Stream) -> None:
        await adapter.write_stream("a", range(20))
        await adapter.write_stream("b", ["x"])
        messages = [m async for m in adapter.stream("a", StreamOptions(follow=False))]
        assert [m.payload for m in messages] == list(range(20))
        assert len({m.id for m in messages}) == 20, "message ids must be unique in a source"
        assert all(m.source == "a" for m in messages), "message.source is the name read"
        assert await drain(adapter, "b") == ["x"], "sources must not share messages"

    @clause("stream.read.fanout", "two readers without a group each see every message")
    async def test_fanout(self, adapter: Stream) -> None:
        await adapter.write_stream("s", [1, 2, 3])
        first = adapter.stream("s", StreamOptions(follow=False))
        second = adapter.stream("s", StreamOptions(follow=False))
        try:
            a = [await anext(first), await anext(second)]
            a += [await anext(first), await anext(second)]
            a += [await anext(first), await anext(second)]
        finally:
            await first.aclose()  # type: ignore[attr-defined]
            await second.aclose()  # type: ignore[attr-defined]
        assert [m.payload for m in a] == [1, 1, 2, 2, 3, 3]

    @clause("stream.read.empty", "a non-following read of a source never written ends at once")
    async def test_empty_source(self, adapter: Stream) -> None:
        assert await drain(adapter, "nothing-here") == []

    @clause("stream.read.follow", "a following reader receives a message written after it waits")
    async def test_follow(self, adapter: Stream) -> None:
        reader = adapter.stream("s", StreamOptions(timeout=BOUND))
        pending = asyncio.ensure_future(anext(reader))
        await asyncio.sleep(0)
        await adapter.write_stream("s", ["late"])
        message = await asyncio.wait_for(pending, BOUND)
        await reader.aclose()  # type: ignore[attr-defined]
        assert message.payload == "late"

    @clause(
        "stream.read.timeout", "waiting longer than timeout for a message raises PortTimeoutError"
    )
    async def test_read_timeout(self, adapter: Stream) -> None:
        reader = adapter.stream("s", StreamOptions(timeout=SHORT))
        with pytest.raises(PortTimeoutError):
            await asyncio.wait_for(anext(reader), BOUND)
        await reader.aclose()  # type: ignore[attr-defined]

    @clause(
        "stream.read.timeout", "waiting longer than timeout for a message raises PortTimeoutError"
    )
    async def test_read_timeout_after_messages(self, adapter: Stream) -> None:
        await adapter.write_stream("s", [1])
        reader = adapter.stream("s", StreamOptions(timeout=SHORT))
        assert (await anext(reader)).payload == 1
        with pytest.raises(PortTimeoutError):
            await asyncio.wait_for(anext(reader), BOUND)
        await reader.aclose()  # type: ignore[attr-defined]

    @clause(
        "stream.payload.invalid",
        "a payload that is not JSON-compatible raises InvalidInputError; items before it are "
        "written, none after",
    )
    @pytest.mark.parametrize(
        "bad",
        [{1, 2}, object(), float("nan"), float("inf"), [float("-inf")], {1: "int key"}],
        # a stable id: pytest-xdist workers must collect the same names
        ids=lambda bad: "object" if type(bad) is object else repr(bad),
    )
    async def test_invalid_payload(self, adapter: Stream, bad: Any) -> None:
        with pytest.raises(InvalidInputError):
            await adapter.write_stream("s", [1, bad, 3])
        assert await drain(adapter, "s") == [1]

    @clause("stream.source.invalid", "an empty source or sink name raises InvalidInputError")
    async def test_invalid_source(self, adapter: Stream) -> None:
        with pytest.raises(InvalidInputError):
            await adapter.write_stream("", [1])
        with pytest.raises(InvalidInputError):
            await drain(adapter, "")

    @clause("stream.write.snapshot", "mutating a payload after writing it changes nothing stored")
    async def test_write_copies(self, adapter: Stream) -> None:
        payload = {"list": [1]}
        await adapter.write_stream("s", [payload])
        payload["list"].append(2)
        assert await drain(adapter, "s") == [{"list": [1]}]

    # -- transform and on_error --------------------------------------------------------------

    @clause("stream.transform.map", "transform applies sync and async fn to each item, in order")
    async def test_transform_map(self, adapter: Stream) -> None:
        assert await collect(adapter, items(1, 2, 3), lambda x: x + 1) == [2, 3, 4]

        async def double(x: int) -> int:
            await asyncio.sleep(0)
            return 2 * x

        assert await collect(adapter, items(1, 2, 3), double) == [2, 4, 6]

    @clause("stream.transform.halt", "on_error=halt raises the first failure of fn")
    async def test_transform_halt(self, adapter: Stream) -> None:
        fn = Flaky(99, lambda x: x == 2)
        seen: list[int] = []
        with pytest.raises(ValueError, match="fail 2"):
            await collect(adapter, items(1, 2, 3), fn, StreamOptions(), seen)
        assert seen == [10], f"halt yielded {seen} before failing"
        assert 3 not in fn.calls, "halt must not go on to the next item"

    @clause("stream.transform.skip", "on_error=skip drops failing items and keeps the rest")
    async def test_transform_skip(self, adapter: Stream) -> None:
        fn = Flaky(99, lambda x: x % 2 == 0)
        opts = StreamOptions(on_error=OnError.SKIP)
        assert await collect(adapter, items(1, 2, 3, 4, 5), fn, opts) == [10, 30, 50]
        assert fn.calls == {1: 1, 2: 1, 3: 1, 4: 1, 5: 1}, "skip must not retry"

    @clause("stream.transform.retry", "on_error=retry calls fn again up to max_retries times")
    async def test_transform_retry_recovers(self, adapter: Stream) -> None:
        fn = Flaky(2, lambda x: x == 2)
        opts = StreamOptions(on_error=OnError.RETRY, max_retries=3)
        assert await collect(adapter, items(1, 2, 3), fn, opts) == [10, 20, 30]
        assert fn.calls[2] == 3, f"fn was called {fn.calls[2]} times for the flaky item"

    @clause("stream.transform.retry", "on_error=retry calls fn again up to max_retries times")
    async def test_transform_retry_is_bounded(self, adapter: Stream) -> None:
        fn = Flaky(10**6, lambda x: x == 1)
        opts = StreamOptions(on_error=OnError.RETRY, max_retries=2)
        with pytest.raises(ValueError, match="fail 1"):
            await collect(adapter, items(1, 2), fn, opts)
        assert fn.calls == {1: 3}, f"expected 1 call + 2 retries, got {fn.calls}"

    @clause(
        "stream.transform.timeout",
        "a source or async fn slower than timeout raises PortTimeoutError",
    )
    async def test_transform_timeouts(self, adapter: Stream) -> None:
        out: list[int] = []
        with pytest.raises(PortTimeoutError):
            await collect(
                adapter, items(1, hang=True), lambda x: x, StreamOptions(timeout=SHORT), out
            )
        assert out == [1]

        async def stuck(x: int) -> int:
            await asyncio.Event().wait()
            return x

        with pytest.raises(PortTimeoutError):
            await collect(adapter, items(1), stuck, StreamOptions(timeout=SHORT))
        opts = StreamOptions(timeout=SHORT, on_error=OnError.SKIP)
        assert await collect(adapter, items(1), stuck, opts) == []

    # -- backpressure --------------------------------------------------------------------------

    @clause(
        "stream.backpressure.waits",
        "a writer whose sink holds buffer_size unconsumed messages waits, then times out; "
        "nothing is dropped",
    )
    @requires(ACK)
    async def test_backpressure_times_out(self, adapter: Stream) -> None:
        await ensure_group(adapter, "s")
        with pytest.raises(PortTimeoutError):
            await adapter.write_stream("s", [1, 2, 3], StreamOptions(buffer_size=2, timeout=SHORT))
        assert await drain(adapter, "s") == [1, 2], "the writer wrote past its buffer"
        got = await take(adapter.stream("s", group_opts("c1")), 5)
        assert [m.payload for m in got] == [1, 2]
        for m in got:
            await adapter.ack("s", m, group_opts("c1"))
        assert (
            await adapter.write_stream("s", [3], StreamOptions(buffer_size=2, timeout=BOUND)) == 1
        )
        got = await take(adapter.stream("s", group_opts("c1")), 5)
        assert [m.payload for m in got] == [3], "after the consumer caught up, 3 is next"

    @clause(
        "stream.backpressure.resumes",
        "a waiting writer resumes as its consumer acknowledges, and every item arrives once",
    )
    @requires(ACK)
    async def test_backpressure_resumes(self, adapter: Stream) -> None:
        await ensure_group(adapter, "s")
        writer = asyncio.ensure_future(
            adapter.write_stream("s", range(6), StreamOptions(buffer_size=2, timeout=BOUND))
        )
        got: list[int] = []
        reader = adapter.stream("s", StreamOptions(group="g", consumer="c", timeout=BOUND))
        try:
            while len(got) < 6:
                message = await anext(reader)
                got.append(message.payload)
                await adapter.ack("s", message, StreamOptions(group="g"))
        finally:
            await reader.aclose()  # type: ignore[attr-defined]
        assert await asyncio.wait_for(writer, BOUND) == 6
        assert got == list(range(6))

    @clause(
        "stream.backpressure.plain_reader",
        "a writer blocked on a full sink and a plain reader reading it never deadlock: the "
        "reader releases what it has read, and gets every item once, in order",
    )
    async def test_backpressure_plain_reader(self, adapter: Stream) -> None:
        reader = adapter.stream("s", StreamOptions(timeout=BOUND, buffer_size=1))
        writer = asyncio.ensure_future(
            adapter.write_stream("s", range(8), StreamOptions(buffer_size=2, timeout=BOUND))
        )
        got: list[int] = []
        try:
            while len(got) < 8:
                got.append((await anext(reader)).payload)
            assert await asyncio.wait_for(writer, BOUND) == 8
        finally:
            await reader.aclose()  # type: ignore[attr-defined]
            if not writer.done():
                writer.cancel()
        assert got == list(range(8)), f"the plain reader got {got}"

    @clause(
        "stream.ids.opaque",
        "message ids are non-empty strings, unique within a source; two sources may reuse them",
    )
    async def test_ids_are_non_empty_strings(self, adapter: Stream) -> None:
        await adapter.write_stream("a", range(12))
        for name in ("p:q", "p/q", "pq"):
            await adapter.write_stream(name, [name, name])
        messages = [m async for m in adapter.stream("a", StreamOptions(follow=False))]
        ids = [m.id for m in messages]
        assert all(isinstance(i, str) and i for i in ids), f"ids {ids!r}"
        assert len(set(ids)) == 12, f"ids repeat within a source: {ids!r}"
        assert [m.payload for m in messages] == list(range(12))
        for name in ("p:q", "p/q", "pq"):
            got = await drain(adapter, name)
            assert got == [name, name], f"source {name!r} holds {got!r}: names collided"

    # -- consumer groups -----------------------------------------------------------------------

    @clause("stream.group.shared", "consumers of one group never both hold the same message")
    @requires(ACK)
    async def test_group_shares(self, adapter: Stream) -> None:
        await adapter.write_stream("s", range(6))
        one = adapter.stream(
            "s", StreamOptions(group="g", consumer="c1", follow=False, buffer_size=1)
        )
        two = adapter.stream(
            "s", StreamOptions(group="g", consumer="c2", follow=False, buffer_size=1)
        )
        try:
            a = [await anext(one), await anext(two), await anext(one), await anext(two)]
        finally:
            await one.aclose()  # type: ignore[attr-defined]
            await two.aclose()  # type: ignore[attr-defined]
        payloads = [m.payload for m in a]
        assert len(set(payloads)) == 4, f"two consumers of a group got {payloads}"

    @clause("stream.group.fanout", "every group receives every message")
    @requires(ACK)
    async def test_groups_fan_out(self, adapter: Stream) -> None:
        await adapter.write_stream("s", [1, 2, 3])
        for group in ("g1", "g2"):
            got = await drain(adapter, "s", StreamOptions(group=group, follow=False))
            assert got == [1, 2, 3], f"group {group} received {got}"

    @clause("stream.group.ack", "an acknowledged message is never delivered to its group again")
    @requires(ACK)
    async def test_ack_stops_redelivery(self, adapter: Stream) -> None:
        await adapter.write_stream("s", [1, 2, 3])
        got = await take(adapter.stream("s", group_opts("c1")), 2)
        await adapter.ack("s", got[0], group_opts("c1"))
        await adapter.ack("s", got[1], group_opts("c1"))
        rest = await take(adapter.stream("s", group_opts("c2")), 10)
        assert [m.payload for m in rest] == [3], f"after acking 1 and 2 the group got {rest}"

    @clause(
        "stream.group.ack.idempotent", "acknowledging twice, or an unknown message, does nothing"
    )
    @requires(ACK)
    async def test_ack_idempotent(self, adapter: Stream) -> None:
        await adapter.write_stream("s", [1, 2])
        got = await take(adapter.stream("s", group_opts("c1")), 1)
        for _ in range(3):
            await adapter.ack("s", got[0], group_opts("c1"))
        await adapter.ack("s", got[0], StreamOptions(group="other-group"))
        await adapter.ack("never-written", got[0], group_opts("c1"))
        rest = await take(adapter.stream("s", group_opts("c2")), 10)
        assert [m.payload for m in rest] == [2], "repeated acks must not lose or revive messages"

    @clause("stream.group.ack.needs_group", "ack without opts.group raises InvalidInputError")
    @requires(ACK)
    async def test_ack_needs_group(self, adapter: Stream) -> None:
        await adapter.write_stream("s", [1])
        got = await take(adapter.stream("s", group_opts("c1")), 1)
        with pytest.raises(InvalidInputError):
            await adapter.ack("s", got[0])

    @clause(
        "stream.group.redelivery.stopped",
        "a consumer's unacknowledged messages go to another consumer once it stops",
    )
    @requires(ACK)
    async def test_redelivery_after_consumer_stops(self, adapter: Stream) -> None:
        await adapter.write_stream("s", [1, 2, 3])
        first = await take(adapter.stream("s", group_opts("c1")), 2)
        await adapter.ack("s", first[0], group_opts("c1"))
        again = await take(adapter.stream("s", group_opts("c2")), 10)
        assert [m.payload for m in again] == [2, 3], f"after c1 stopped, c2 got {again}"
        assert again[0].id == first[1].id, "a redelivered message keeps its id"

    @clause(
        "stream.group.redelivery.claim_after",
        "a message pending claim_after seconds with a consumer that died is redelivered",
    )
    @requires(ACK)
    async def test_redelivery_after_claim_after(self, adapter: Stream, clock: FakeClock) -> None:
        await adapter.write_stream("s", [1, 2])
        dead = adapter.stream("s", group_opts("dead", claim_after=10))
        held = await anext(dead)  # the consumer "dies" holding message 1: never acked nor closed
        other = group_opts("live", claim_after=10)
        first = await take(adapter.stream("s", other), 10)
        assert [m.payload for m in first] == [2], "a pending message was redelivered too early"
        await adapter.ack("s", first[0], other)
        clock.advance(10.5)
        late = await take(adapter.stream("s", other), 10)
        assert [m.payload for m in late] == [1], f"after claim_after the group got {late}"
        assert late[0].id == held.id
        await dead.aclose()  # type: ignore[attr-defined]

    @clause(
        "stream.group.redelivery.claim_after",
        "a message pending claim_after seconds with a consumer that died is redelivered",
    )
    @requires(ACK)
    async def test_redelivery_claim_after_zero(self, adapter: Stream) -> None:
        await adapter.write_stream("s", [1])
        dead = adapter.stream("s", group_opts("dead"))
        held = await anext(dead)
        late = await take(adapter.stream("s", group_opts("live", claim_after=0)), 1)
        assert [m.id for m in late] == [held.id], "claim_after=0 must hand the message over"
        await dead.aclose()  # type: ignore[attr-defined]

    @clause(
        "stream.group.unsupported",
        "without ACKNOWLEDGE, ack and group reads raise UnsupportedError",
    )
    @requires_absent(ACK)
    async def test_groups_unsupported(self, adapter: Stream) -> None:
        await adapter.write_stream("s", [1])
        message = (await take(adapter.stream("s", StreamOptions(follow=False)), 1))[0]
        with expect_unsupported(ACK):
            await adapter.ack("s", message, StreamOptions(group="g"))
        with expect_unsupported(ACK):
            await drain(adapter, "s", StreamOptions(group="g", follow=False))

    # -- inspection ------------------------------------------------------------------------------

    @clause("stream.inspect", "sources() lists the sources written; count() counts their messages")
    @requires(StreamCapability.INSPECT)
    async def test_inspect(self, adapter: Any) -> None:
        await adapter.write_stream("a", [1, 2])
        await adapter.write_stream("b", [3])
        assert {"a", "b"} <= set(await adapter.sources())
        assert await adapter.count("a") == 2
        assert await adapter.count("never-written") == 0

    # -- tenants ---------------------------------------------------------------------------------

    @clause(
        "stream.tenant.fail_closed",
        "a tenant-scoped adapter raises TenantRequiredError when no tenant is set",
    )
    @requires(StreamCapability.TENANT_SCOPED)
    async def test_tenant_fail_closed(self, make_adapter: Factory) -> None:
        if not accepts_keyword(make_adapter, "tenant_scoped"):
            pytest.skip("the factory does not accept tenant_scoped=, so the kit cannot scope it")
        scoped: Stream = await open_adapter(functools.partial(make_adapter, tenant_scoped=True))
        try:
            with pytest.raises(TenantRequiredError):
                await scoped.write_stream("s", [1])
            with pytest.raises(TenantRequiredError):
                await drain(scoped, "s")
            with tenant_scope("a"):
                await scoped.write_stream("s", [1])
                assert await drain(scoped, "s") == [1]
            with tenant_scope("b"):
                assert await drain(scoped, "s") == []
        finally:
            await close_adapter(scoped)

    @clause(
        "stream.tenant.isolation",
        "no sequence of operations lets one tenant read, list, count or ack another's messages",
    )
    @requires(StreamCapability.TENANT_SCOPED)
    def test_tenant_isolation(self, make_adapter: Factory, kit_settings: KitSettings) -> None:
        if not accepts_keyword(make_adapter, "tenant_scoped"):
            pytest.skip("the factory does not accept tenant_scoped=, so the kit cannot scope it")
        # a partial keeps offering the factory's other parameters (clock=) to the kit
        factory = functools.partial(make_adapter, tenant_scoped=True)
        run_machine(TenantIsolationMachine, factory, kit_settings)

    @clause(
        "stream.tenant.adversarial_ids",
        "two different tenant ids, however alike (case only, separators, '..', astral "
        "characters, escapes written literally), never see each other's messages",
    )
    @requires(StreamCapability.TENANT_SCOPED)
    def test_tenant_ids_never_collide(
        self, make_adapter: Factory, kit_settings: KitSettings
    ) -> None:
        if not accepts_keyword(make_adapter, "tenant_scoped"):
            pytest.skip("the factory does not accept tenant_scoped=, so the kit cannot scope it")
        runner = LoopRunner(timeout=kit_settings.timeout)
        try:
            scoped: Stream = runner.run(
                open_adapter(functools.partial(make_adapter, tenant_scoped=True))
            )

            @property_settings(kit_settings)
            @given(first=adversarial_ids(), second=adversarial_ids())
            def check(first: str, second: str) -> None:
                assume(first != second)

                async def body() -> None:
                    with tenant_scope(first):
                        await scoped.write_stream("s", [{"tenant": first}])
                    with tenant_scope(second):
                        await scoped.write_stream("s", [{"tenant": second}])
                    with tenant_scope(first):
                        seen = {m["tenant"] for m in await drain(scoped, "s")}
                    assert seen == {first}, f"tenant {first!r} read messages of {seen!r}"

                runner.run(body())

            async def every_fixed_id() -> None:
                for tenant in ADVERSARIAL_IDS:
                    with tenant_scope(tenant):
                        await scoped.write_stream("fixed", [{"tenant": tenant}])
                for tenant in ADVERSARIAL_IDS:
                    with tenant_scope(tenant):
                        seen = [m["tenant"] for m in await drain(scoped, "fixed")]
                    assert seen == [tenant], f"tenant {tenant!r} read messages of {seen!r}"

            try:
                runner.run(every_fixed_id())
                check()
            finally:
                runner.run(close_adapter(scoped))
        finally:
            runner.close()

    @clause(
        "stream.tenant.ack_isolated",
        "acknowledging, for one tenant, the ids of another tenant's messages (ids may collide "
        "across tenants) leaves the other tenant's messages pending for its group",
    )
    @requires(ACK, StreamCapability.TENANT_SCOPED)
    async def test_tenant_ack_isolated(self, make_adapter: Factory) -> None:
        if not accepts_keyword(make_adapter, "tenant_scoped"):
            pytest.skip("the factory does not accept tenant_scoped=, so the kit cannot scope it")
        scoped: Stream = await open_adapter(functools.partial(make_adapter, tenant_scoped=True))
        g = StreamOptions(group="g")
        try:
            with tenant_scope("alice"):
                await scoped.write_stream("s", [{"t": "alice"}])
            with tenant_scope("bob"):
                await scoped.write_stream("s", [{"t": "bob"}, {"t": "bob"}])
                bobs = await take(scoped.stream("s", group_opts("bob")), 10)
            assert [m.payload for m in bobs] == [{"t": "bob"}] * 2
            with tenant_scope("alice"):
                for m in bobs:  # alice has no group yet: nothing of hers to acknowledge
                    await scoped.ack("s", m, g)
                    await scoped.ack("other", m, g)
                await ensure_group_read(scoped, "s", "alice")
                for m in bobs:  # alice's group now exists and may hold a colliding id
                    await scoped.ack("s", m, g)
            with tenant_scope("bob"):
                again = await take(scoped.stream("s", group_opts("bob")), 10)
            assert [m.id for m in again] == [m.id for m in bobs], (
                f"alice's acks took bob's pending messages away: bob now gets {again}"
            )
            assert all(m.payload == {"t": "bob"} for m in again)
        finally:
            await close_adapter(scoped)

    @clause(
        "stream.tenant.isolation",
        "no sequence of operations lets one tenant read, list, count or ack another's messages",
    )
    @requires(StreamCapability.TENANT_SCOPED)
    def test_tenant_isolation_known_sequences(
        self, make_adapter: Factory, kit_settings: KitSettings
    ) -> None:
        """Replay, every run, sequences the isolation machine once needed luck to find."""
        if not accepts_keyword(make_adapter, "tenant_scoped"):
            pytest.skip("the factory does not accept tenant_scoped=, so the kit cannot scope it")
        factory = functools.partial(make_adapter, tenant_scoped=True)
        for steps in TENANT_ISOLATION_SEQUENCES:
            machine = TenantIsolationMachine(factory, timeout=kit_settings.timeout)
            try:
                for rule_name, kwargs in steps:
                    getattr(machine, rule_name)(**kwargs)
            finally:
                machine.teardown()

    # -- the model -------------------------------------------------------------------------------

    @clause("stream.model", "any sequence of writes, group reads and acks behaves like the model")
    def test_state_machine(self, make_adapter: Factory, kit_settings: KitSettings) -> None:
        run_machine(StreamMachine, make_adapter, kit_settings)


# -- state machines (pure reference models written from the port docstring) ----------------------

SOURCES = st.sampled_from(["s1", "s2"])
PAYLOADS = st.lists(st.integers(-5, 5) | st.text(max_size=3), max_size=4)


class StreamMachine(AdapterMachine[Stream]):
    """Writes, reads and acks against a model: per source, the written payloads and which are
    acknowledged.

    With ``ACKNOWLEDGE`` every read is a group read that is closed afterwards, so the model's
    rule is: a read of ``n`` yields the first ``n`` unacknowledged messages in write order
    (closed consumers hand their pending messages back at once). Without it, a plain read
    yields everything written, in order.
    """

    def __init__(self, factory: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(factory, **kwargs)
        self.groups = supports(self.adapter, ACK)
        self.written: dict[str, list[Any]] = {"s1": [], "s2": []}
        self.acked: dict[str, set[int]] = {"s1": set(), "s2": set()}
        self.delivered: dict[str, dict[str, int]] = {"s1": {}, "s2": {}}
        """source -> message id -> index in ``written``"""
        if self.groups:
            for source in self.written:
                self.run(ensure_group(self.adapter, source))

    @rule(source=SOURCES, payloads=PAYLOADS)
    def write(self, source: str, payloads: list[Any]) -> None:
        count = self.run(self.adapter.write_stream(source, payloads))
        assert count == len(payloads)
        self.written[source].extend(payloads)

    def _unacked(self, source: str) -> list[int]:
        return [i for i in range(len(self.written[source])) if i not in self.acked[source]]

    @rule(source=SOURCES, n=st.integers(0, 5), consumer=st.sampled_from(["c1", "c2"]))
    def read(self, source: str, n: int, consumer: str) -> None:
        if not self.groups:
            got = self.run(drain(self.adapter, source))
            assert got == self.written[source], f"plain read gave {got}"
            return
        messages = self.run(take(self.adapter.stream(source, group_opts(consumer)), n))
        expected = self._unacked(source)[:n]
        assert [m.payload for m in messages] == [self.written[source][i] for i in expected], (
            f"group read of {n} from {source} gave {[m.payload for m in messages]}"
        )
        for m, index in zip(messages, expected, strict=True):
            known = self.delivered[source].setdefault(m.id, index)
            assert known == index, f"id {m.id} now names another message"

    @rule(source=SOURCES, data=st.data())
    def ack(self, source: str, data: st.DataObject) -> None:
        if not self.groups or not self.delivered[source]:
            return
        message_id = data.draw(st.sampled_from(sorted(self.delivered[source])))
        index = self.delivered[source][message_id]
        message = StreamMessage(message_id, self.written[source][index], source)
        self.run(self.adapter.ack(source, message, StreamOptions(group="g")))
        self.acked[source].add(index)


TENANTS = st.sampled_from(["alice", "bob"])

TENANT_ISOLATION_SEQUENCES: list[list[tuple[str, dict[str, Any]]]] = [
    # a tenant acks, in its own source, ids equal to its own pending ids: that acknowledges
    # its own messages (ids are per source), which the other tenant's check must not blame
    # on the other tenant's acks
    [
        ("write", {"tenant": "bob", "source": "s2", "n": 1}),
        ("write", {"tenant": "alice", "source": "s1", "n": 1}),
        ("read", {"tenant": "alice", "source": "s1", "grouped": False}),
        ("read", {"tenant": "bob", "source": "s2", "grouped": True}),
        ("ack_foreign", {"tenant": "bob", "source": "s2"}),
        ("ack_foreign", {"tenant": "alice", "source": "s2"}),
    ],
    # alice writes, bob writes, bob reads in group g, alice acks bob's ids (colliding with
    # hers), alice's group holding her own message with the same id
    [
        ("write", {"tenant": "alice", "source": "s1", "n": 1}),
        ("write", {"tenant": "bob", "source": "s1", "n": 1}),
        ("read", {"tenant": "alice", "source": "s1", "grouped": True}),
        ("read", {"tenant": "bob", "source": "s1", "grouped": True}),
        ("ack_foreign", {"tenant": "alice", "source": "s1"}),
        ("ack_foreign", {"tenant": "bob", "source": "s1"}),
    ],
]
"""Explicit step sequences of `TenantIsolationMachine` replayed on every run."""


class TenantIsolationMachine(AdapterMachine[Stream]):
    """Two tenants use the same source names; every payload is tagged with its writer.

    Whatever they do, a tenant only ever reads its own tags, lists only sources it used, counts
    at most what it wrote, and its acks with the other tenant's ids never take the other
    tenant's messages away. Such an ack does acknowledge the caller's *own* pending message
    with the same id in the same source (ids are only unique within a source), so the model
    drops those ids from the caller's pending set.
    """

    def __init__(self, factory: Callable[..., Any], **kwargs: Any) -> None:
        super().__init__(factory, **kwargs)
        self.groups = supports(self.adapter, ACK)
        self.inspect = supports(self.adapter, StreamCapability.INSPECT)
        self.written: dict[tuple[str, str], int] = {}
        self.used: dict[str, set[str]] = {"alice": set(), "bob": set()}
        self.seen_ids: dict[str, list[StreamMessage]] = {"alice": [], "bob": []}
        self.grouped: dict[tuple[str, str], set[str]] = {}
        """(tenant, source) -> ids its group reads delivered (never acknowledged by it)"""

    def _as(self, tenant: str, coro_fn: Callable[[], Any]) -> Any:
        async def call() -> Any:
            with tenant_scope(tenant):
                return await coro_fn()

        return self.run(call())

    @rule(tenant=TENANTS, source=SOURCES, n=st.integers(1, 3))
    def write(self, tenant: str, source: str, n: int) -> None:
        start = self.written.get((tenant, source), 0)
        payloads = [{"tenant": tenant, "n": start + i} for i in range(n)]
        self._as(tenant, lambda: self.adapter.write_stream(source, payloads))
        self.written[(tenant, source)] = start + n
        self.used[tenant].add(source)

    @rule(tenant=TENANTS, source=SOURCES, grouped=st.booleans())
    def read(self, tenant: str, source: str, grouped: bool) -> None:
        opts = StreamOptions(follow=False)
        if grouped and self.groups:
            opts = StreamOptions(group="g", consumer=tenant, follow=False)
        messages = self._as(tenant, lambda: take(self.adapter.stream(source, opts), 50))
        self.used[tenant].add(source)
        for m in messages:
            assert m.payload["tenant"] == tenant, f"{tenant} read {m.payload} from {source}"
        self.seen_ids[tenant].extend(messages)
        if opts.group is not None:
            self.grouped.setdefault((tenant, source), set()).update(m.id for m in messages)

    @rule(tenant=TENANTS, source=SOURCES)
    def ack_foreign(self, tenant: str, source: str) -> None:
        if not self.groups:
            return
        other = "bob" if tenant == "alice" else "alice"
        foreign = self.seen_ids[other][-5:]
        for m in foreign:
            ack = functools.partial(self.adapter.ack, source, m, StreamOptions(group="g"))
            self._as(tenant, ack)
        # ids are per source, so they collide across tenants (and sources): an ack names a
        # message of the caller's own ``source``, and these acks legitimately acknowledged
        # any of ``tenant``'s own pending messages there with the same ids
        self.grouped.get((tenant, source), set()).difference_update(m.id for m in foreign)
        # the other tenant's unacknowledged messages are all still there for its group
        self.used[other].add(source)
        mine = self._as(
            other,
            lambda: take(
                self.adapter.stream(source, StreamOptions(group="g", consumer=other, follow=False)),
                10**6,
            ),
        )
        assert all(m.payload["tenant"] == other for m in mine)
        lost = self.grouped.get((other, source), set()) - {m.id for m in mine}
        assert not lost, f"{tenant}'s acks took {other}'s messages {lost} away"

    @rule(tenant=TENANTS)
    def inspect_sources(self, tenant: str) -> None:
        if not self.inspect:
            return
        adapter: Any = self.adapter
        names: set[str] = set(self._as(tenant, adapter.sources))
        assert names <= self.used[tenant], f"{tenant} lists {names}, used {self.used[tenant]}"
        for source in ("s1", "s2"):
            counted: int = self._as(tenant, functools.partial(adapter.count, source))
            written = self.written.get((tenant, source), 0)
            assert counted <= written, f"{tenant} counts {counted} in {source}, wrote {written}"

    @rule(source=SOURCES)
    def no_tenant(self, source: str) -> None:
        async def call() -> None:
            try:
                await self.adapter.write_stream(source, [{"tenant": None}])
            except TenantRequiredError:
                return
            raise AssertionError("a scoped adapter accepted a write with no tenant set")

        self.run(call())
