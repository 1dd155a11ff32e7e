"""Consumer groups: acknowledgement, redelivery, claims."""

from __future__ import annotations

from typing import Any

import pytest

from portfolio_core.ports.errors import (
    InvalidInputError,
)
from portfolio_core.ports.stream import (
    Stream,
    StreamCapability,
    StreamOptions,
)
from portfolio_core.testing.clauses import clause, expect_unsupported, requires, requires_absent
from portfolio_core.testing.clock import FakeClock
from portfolio_core.testing.contracts.stream._common import (
    ACK,
    drain,
    group_opts,
    take,
)
from portfolio_core.testing.suite import ContractSuite


class GroupClauses(ContractSuite[Stream]):
    """Consumer groups: acknowledgement, redelivery, claims."""

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

    @clause("stream.inspect", "sources() lists the sources written; count() counts their messages")
    @requires(StreamCapability.INSPECT)
    async def test_inspect(self, adapter: Any) -> None:
        await adapter.write_stream("a", [1, 2])
        await adapter.write_stream("b", [3])
        assert {"a", "b"} <= set(await adapter.sources())
        assert await adapter.count("a") == 2
        assert await adapter.count("never-written") == 0
