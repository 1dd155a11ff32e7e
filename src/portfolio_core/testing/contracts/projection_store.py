"""Contract suite of the ProjectionStore port (async, stateful), with its state machine.

Every test states one clause of
[portfolio_core.ports.projection_store][portfolio_core.ports.projection_store]. The state
machine (`ProjectionStoreMachine`) drives the adapter beside a pure model of
checkpoints and leases. Three clauses drive the library's projection runner
(``runner_reference``) over the adapter and a small in-kit event log: the checkpoint moves
only after the effect, no event is skipped, and a rebuild from zero equals the live result.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, ClassVar

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import precondition, rule

from portfolio_core._references import resolve_reference
from portfolio_core.ports.capabilities import supports
from portfolio_core.ports.errors import InvalidInputError, LeaseLostError
from portfolio_core.ports.event_store import RecordedEvent
from portfolio_core.ports.projection_store import (
    MAX_PROJECTION_NAME,
    Lease,
    ProjectionStore,
    ProjectionStoreCapability,
)
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.clock import FakeClock
from portfolio_core.testing.loop import accepts_keyword
from portfolio_core.testing.machines import AdapterMachine, run_machine
from portfolio_core.testing.plugin import KitSettings
from portfolio_core.testing.suite import ContractSuite

__all__ = ["KitEventLog", "ProjectionStoreContract", "ProjectionStoreMachine"]

TTL = 30.0


@dataclass
class KitEventLog:
    """The smallest event log a projection runner needs (``read_all``), with gaps in its
    positions like a real store's, for the runner clauses."""

    events: list[RecordedEvent] = field(default_factory=list)

    def add(self, count: int, *, gap_every: int = 7) -> None:
        position = self.events[-1].position if self.events else 0
        for _ in range(count):
            position += 2 if (position + 1) % gap_every == 0 else 1
            n = len(self.events) + 1
            self.events.append(
                RecordedEvent(
                    id=f"kit-{n}",
                    stream=f"{'order' if n % 3 else 'cart'}-{n % 5}",
                    type="Added" if n % 2 else "Removed",
                    data={"n": n},
                    metadata={},
                    version=n,
                    position=position,
                    recorded_at=datetime(2026, 1, 1, tzinfo=UTC),
                )
            )

    async def read_all(self, from_position: int = 1, limit: int | None = None) -> list[Any]:
        out = [e for e in self.events if e.position >= from_position]
        return out if limit is None else out[:limit]


class ProjectionStoreContract(ContractSuite[ProjectionStore]):
    """The promises of [ProjectionStore][portfolio_core.ports.ProjectionStore]
    (docs/ports/projection_store.md)."""

    port_key = "projection_store"
    capability_names = frozenset(c.value for c in ProjectionStoreCapability)
    #: the runner the runner clauses drive over the adapter (``module:attribute``)
    runner_reference: ClassVar[str] = "portfolio_core.services.projections:ProjectionRunner"

    async def put_probe(self, adapter: ProjectionStore) -> str:
        lease = await adapter.claim("kit-probe", "kit", TTL)
        assert lease is not None
        await adapter.commit(lease, 5)
        return "kit-probe"

    async def has_probe(self, adapter: ProjectionStore, probe: str) -> bool:
        return await adapter.checkpoint(probe) == 5

    # -- checkpoints ---------------------------------------------------------------------------

    @clause("projection_store.checkpoint", "0 at first, then the position of the last commit")
    async def test_checkpoint(self, adapter: ProjectionStore) -> None:
        assert await adapter.checkpoint("p") == 0
        lease = await adapter.claim("p", "a", TTL)
        assert lease is not None
        await adapter.commit(lease, 3)
        await adapter.commit(lease, 10)
        assert await adapter.checkpoint("p") == 10
        assert await adapter.checkpoint("other") == 0, "checkpoints of projections are mixed"

    @clause(
        "projection_store.forward_only",
        "a commit at or before the checkpoint raises InvalidInputError and changes nothing",
    )
    async def test_forward_only(self, adapter: ProjectionStore) -> None:
        lease = await adapter.claim("p", "a", TTL)
        assert lease is not None
        await adapter.commit(lease, 4)
        ran: list[int] = []

        async def effect(tx: Any) -> None:
            ran.append(1)

        for position in (4, 2):
            with pytest.raises(InvalidInputError):
                await adapter.commit(lease, position, effect)
        assert ran == [], "the effect of a refused commit ran"
        assert await adapter.checkpoint("p") == 4

    @clause(
        "projection_store.effect_first",
        "the checkpoint moves only after the effect succeeded; an effect that raises leaves it",
    )
    async def test_effect_first(self, adapter: ProjectionStore) -> None:
        lease = await adapter.claim("p", "a", TTL)
        assert lease is not None
        await adapter.commit(lease, 2)

        async def failing(tx: Any) -> None:
            raise RuntimeError("read model down")

        with pytest.raises(RuntimeError, match="read model down"):
            await adapter.commit(lease, 9, failing)
        assert await adapter.checkpoint("p") == 2, "the checkpoint moved past a failed effect"
        await adapter.commit(lease, 9)
        assert await adapter.checkpoint("p") == 9, "a failed effect broke the lease"

    @clause("projection_store.reset", "reset sets the checkpoint back to 0, keeping the lease")
    async def test_reset(self, adapter: ProjectionStore) -> None:
        lease = await adapter.claim("p", "a", TTL)
        assert lease is not None
        await adapter.commit(lease, 7)
        await adapter.reset("p")
        assert await adapter.checkpoint("p") == 0
        await adapter.commit(lease, 1)
        assert await adapter.checkpoint("p") == 1

    # -- leases ------------------------------------------------------------------------------

    @clause("projection_store.lease.exclusive", "while a lease is held, another owner gets None")
    async def test_lease_exclusive(self, adapter: ProjectionStore) -> None:
        first = await adapter.claim("p", "a", TTL)
        assert first is not None
        assert (first.projection, first.owner) == ("p", "a")
        assert await adapter.claim("p", "b", TTL) is None, "two owners hold one lease"
        again = await adapter.claim("p", "a", TTL)
        assert again is not None, "the holder could not renew"
        assert again.token == first.token, "a renewal changed the token"
        assert await adapter.claim("q", "b", TTL) is not None, "leases of projections are mixed"

    @clause(
        "projection_store.lease.concurrent",
        "of owners claiming one free lease at once, exactly one gets it",
    )
    async def test_lease_concurrent(self, adapter: ProjectionStore) -> None:
        won = await asyncio.gather(*(adapter.claim("p", f"o{i}", TTL) for i in range(8)))
        holders = [lease for lease in won if lease is not None]
        assert len(holders) == 1, f"{len(holders)} owners got the lease"

    @clause(
        "projection_store.lease.release",
        "release frees the lease for another owner, whose token is greater; the old lease "
        "can no longer commit",
    )
    async def test_release(self, adapter: ProjectionStore) -> None:
        first = await adapter.claim("p", "a", TTL)
        assert first is not None
        await adapter.release(first)
        second = await adapter.claim("p", "b", TTL)
        assert second is not None, "a released lease was not free"
        assert second.token > first.token, "a new holder did not get a greater token"
        await adapter.release(first)  # no longer that lease: nothing happens
        assert await adapter.claim("p", "c", TTL) is None, "an old lease released a new one"
        with pytest.raises(LeaseLostError):
            await adapter.commit(first, 1)
        assert await adapter.checkpoint("p") == 0

    @clause(
        "projection_store.lease.expiry",
        "an expired lease can be taken by another owner; the old holder's commit then raises "
        "LeaseLostError and does not run its effect",
    )
    async def test_expiry(
        self, adapter: ProjectionStore, make_adapter: Any, kit_clock: FakeClock
    ) -> None:
        # the kit's clock when the adapter reads it; real time (a short ttl) otherwise
        clock = kit_clock if accepts_keyword(make_adapter, "clock") else None
        ttl = 30.0 if clock is not None else 0.3
        first = await adapter.claim("p", "a", ttl)
        assert first is not None
        await adapter.commit(first, 1)
        if clock is not None:
            clock.advance(ttl + 1)
        else:
            await asyncio.sleep(ttl + 0.2)
        second = await adapter.claim("p", "b", TTL)
        assert second is not None, "an expired lease could not be taken"
        assert second.token > first.token
        ran: list[int] = []

        async def effect(tx: Any) -> None:
            ran.append(1)

        with pytest.raises(LeaseLostError) as info:
            await adapter.commit(first, 2, effect)
        assert info.value.name == "p"
        assert ran == [], "the effect of a commit under a lost lease ran"
        assert await adapter.checkpoint("p") == 1

    @clause(
        "projection_store.lease.duration",
        "a lease lasts its whole ttl: before it runs out, another owner gets None and the "
        "holder still commits",
    )
    async def test_lease_duration(
        self, adapter: ProjectionStore, make_adapter: Any, kit_clock: FakeClock
    ) -> None:
        # three quarters of the ttl: a lease that runs out early (at half its ttl, say) has
        # ended by then; real time leaves a second of slack for a loaded machine
        clock = kit_clock if accepts_keyword(make_adapter, "clock") else None
        ttl = 40.0 if clock is not None else 4.0
        first = await adapter.claim("p", "a", ttl)
        assert first is not None
        if clock is not None:
            clock.advance(ttl * 0.75)
        else:
            await asyncio.sleep(ttl * 0.5)
        assert await adapter.claim("p", "b", TTL) is None, "a lease ended before its ttl"
        await adapter.commit(first, 1)
        assert await adapter.checkpoint("p") == 1

    @clause("projection_store.invalid", "bad names, owners, ttls and positions are refused")
    @pytest.mark.parametrize(
        "case", ["empty_name", "long_name", "nul_name", "empty_owner", "ttl_zero", "ttl_nan"]
    )
    async def test_invalid(self, adapter: ProjectionStore, case: str) -> None:
        args: dict[str, tuple[str, str, Any]] = {
            "empty_name": ("", "a", TTL),
            "long_name": ("p" * (MAX_PROJECTION_NAME + 1), "a", TTL),
            "nul_name": ("a\x00b", "a", TTL),
            "empty_owner": ("p", "", TTL),
            "ttl_zero": ("p", "a", 0),
            "ttl_nan": ("p", "a", float("nan")),
        }
        with pytest.raises(InvalidInputError):
            await adapter.claim(*args[case])
        assert await adapter.claim("p", "z", TTL) is not None, f"{case}: a refused claim held"

    @clause("projection_store.invalid_position", "a commit at a position < 1 is refused")
    @pytest.mark.parametrize("position", [0, -3, True])
    async def test_invalid_position(self, adapter: ProjectionStore, position: Any) -> None:
        lease = await adapter.claim("p", "a", TTL)
        assert lease is not None
        with pytest.raises(InvalidInputError):
            await adapter.commit(lease, position)

    # -- the runner over the adapter -------------------------------------------------------------

    def _runner(
        self,
        log: KitEventLog,
        adapter: ProjectionStore,
        name: str,
        handler: Callable[[Sequence[RecordedEvent], Any], Awaitable[None]],
        **kwargs: Any,
    ) -> Any:
        runner_class: Any = resolve_reference(self.runner_reference)
        return runner_class(log, adapter, name, handler, **kwargs)

    @clause(
        "projection_store.runner.checkpoint_after_effect",
        "a runner whose handler fails does not move the checkpoint past the failed batch",
    )
    async def test_runner_checkpoint_after_effect(self, adapter: ProjectionStore) -> None:
        log = KitEventLog()
        log.add(30)
        seen: list[int] = []

        async def handler(events: Sequence[RecordedEvent], tx: Any) -> None:
            if any(e.data["n"] == 17 for e in events):
                raise RuntimeError("handler bug")
            seen.extend(e.data["n"] for e in events)

        runner = self._runner(log, adapter, "p", handler, batch_size=5)
        with pytest.raises(RuntimeError):
            await runner.run_until_caught_up(timeout=30)
        checkpoint = await adapter.checkpoint("p")
        assert checkpoint == log.events[14].position, (
            f"checkpoint {checkpoint}: it must stop at the end of the last good batch "
            f"({log.events[14].position})"
        )

    @clause(
        "projection_store.runner.no_gaps",
        "across batches, restarts and a change of runner, every event reaches a handler in "
        "position order, none skipped",
    )
    async def test_runner_no_gaps(self, adapter: ProjectionStore) -> None:
        log = KitEventLog()
        log.add(23)
        seen: list[int] = []

        async def handler(events: Sequence[RecordedEvent], tx: Any) -> None:
            seen.extend(e.position for e in events)

        first = self._runner(log, adapter, "p", handler, batch_size=4, owner="a")
        await first.run_until_caught_up(timeout=30)
        log.add(11)
        await first.step()
        await first.stop()  # releases the lease: the second runner takes over
        second = self._runner(log, adapter, "p", handler, batch_size=3, owner="b")
        await second.run_until_caught_up(timeout=30)
        positions = [e.position for e in log.events]
        assert sorted(set(seen)) == positions, "an event never reached the handler"
        assert seen == sorted(seen), "events reached the handler out of position order"
        if supports(adapter, ProjectionStoreCapability.TRANSACTIONAL):
            assert len(seen) == len(positions), "a transactional store repeated an event"

    @clause(
        "projection_store.runner.rebuild_equals_live",
        "replaying the whole log into a fresh projection gives what the live one built",
    )
    async def test_runner_rebuild_equals_live(self, adapter: ProjectionStore) -> None:
        log = KitEventLog()
        live: dict[str, int] = {}
        rebuilt: dict[str, int] = {}

        def fold(into: dict[str, int]) -> Callable[[Sequence[RecordedEvent], Any], Any]:
            async def handler(events: Sequence[RecordedEvent], tx: Any) -> None:
                for e in events:
                    sign = 1 if e.type == "Added" else -1
                    into[e.stream] = into.get(e.stream, 0) + sign * e.data["n"]

            return handler

        runner = self._runner(log, adapter, "live", fold(live), batch_size=6)
        for chunk in (5, 9, 1, 14):
            log.add(chunk)
            await runner.run_until_caught_up(timeout=30)
        fresh = self._runner(log, adapter, "rebuilt", fold(rebuilt), batch_size=50)
        await fresh.run_until_caught_up(timeout=30)
        assert rebuilt == live
        assert await adapter.checkpoint("rebuilt") == await adapter.checkpoint("live")

    @clause(
        "projection_store.model",
        "any sequence of claims, releases, commits, resets and time matches the pure model",
    )
    def test_state_machine(self, make_adapter: Any, kit_settings: KitSettings) -> None:
        run_machine(ProjectionStoreMachine, make_adapter, kit_settings)


@dataclass
class _ModelLease:
    owner: str | None
    token: int
    expires_at: float


class ProjectionStoreMachine(AdapterMachine[ProjectionStore]):
    """Claims, releases, commits and resets of two projections by three owners, beside a
    model of checkpoints and leases. Time moves only when the factory takes the clock."""

    def __init__(self, factory: Any, **kwargs: Any) -> None:
        super().__init__(factory, **kwargs)
        self.checkpoints: dict[str, int] = {}
        self.leases: dict[str, _ModelLease] = {}
        self.held: dict[tuple[str, str], Lease] = {}
        # without a controllable clock no lease may expire during the run
        self.ttl = 30.0 if self.controls_time else 3600.0

    def _now(self) -> float:
        return self.clock() if self.controls_time else 0.0

    @rule(projection=st.sampled_from(["p", "q"]), owner=st.sampled_from(["a", "b", "c"]))
    def claim(self, projection: str, owner: str) -> None:
        got = self.run(self.adapter.claim(projection, owner, self.ttl))
        now = self._now()
        model = self.leases.get(projection)
        if model is None:
            expect: _ModelLease | None = _ModelLease(owner, 1, now + self.ttl)
        elif model.owner == owner and (not self.controls_time or model.expires_at > now):
            expect = _ModelLease(owner, model.token, now + self.ttl)
        elif model.owner is None or (self.controls_time and model.expires_at <= now):
            expect = _ModelLease(owner, model.token + 1, now + self.ttl)
        else:
            expect = None
        if expect is None:
            assert got is None, f"{owner} got the lease of {projection} held by {model}"
            return
        assert got is not None, f"{owner} was refused the lease of {projection} ({model})"
        previous = self.leases.get(projection)
        if previous is not None and expect.token != previous.token:
            assert got.token > previous.token, f"token {got.token} after {previous.token}"
        self.leases[projection] = _ModelLease(owner, got.token, now + self.ttl)
        self.held[(projection, owner)] = got

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        key = data.draw(st.sampled_from(sorted(self.held)))
        lease = self.held[key]
        self.run(self.adapter.release(lease))
        model = self.leases[lease.projection]
        if (model.owner, model.token) == (lease.owner, lease.token):
            self.leases[lease.projection] = _ModelLease(None, model.token, 0.0)

    @precondition(lambda self: bool(self.held))
    @rule(data=st.data(), step=st.integers(-1, 4))
    def commit(self, data: st.DataObject, step: int) -> None:
        key = data.draw(st.sampled_from(sorted(self.held)))
        lease = self.held[key]
        current = self.checkpoints.get(lease.projection, 0)
        position = current + step
        model = self.leases[lease.projection]
        valid = (model.owner, model.token) == (lease.owner, lease.token) and (
            not self.controls_time or model.expires_at > self._now()
        )
        if position < 1:
            return
        try:
            self.run(self.adapter.commit(lease, position))
        except LeaseLostError:
            assert not valid, f"a commit under the current lease {lease} was refused"
            return
        except InvalidInputError:
            assert valid, "a commit under a lost lease was refused as bad input, not lost"
            assert position <= current, f"a commit forward ({current} -> {position}) refused"
            return
        assert valid, f"a commit under a lost lease {lease} succeeded ({model})"
        assert position > current, f"a commit from {current} back to {position} succeeded"
        self.checkpoints[lease.projection] = position

    @rule(projection=st.sampled_from(["p", "q"]))
    def reset(self, projection: str) -> None:
        self.run(self.adapter.reset(projection))
        self.checkpoints.pop(projection, None)

    @precondition(lambda self: self.controls_time)
    @rule(seconds=st.sampled_from([1.0, 20.0, 31.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(projection=st.sampled_from(["p", "q"]))
    def checkpoint(self, projection: str) -> None:
        got = self.run(self.adapter.checkpoint(projection))
        assert got == self.checkpoints.get(projection, 0), (
            f"checkpoint of {projection} is {got}, the model has "
            f"{self.checkpoints.get(projection, 0)}"
        )
