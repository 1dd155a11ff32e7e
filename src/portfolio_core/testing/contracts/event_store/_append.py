"""Appending: versions, expected versions, idempotent retries, validation, sizes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from portfolio_core.ports.errors import (
    ConflictError,
    InvalidInputError,
    NotFoundError,
    WrongExpectedVersionError,
)
from portfolio_core.ports.event_store import (
    EventStore,
    NewEvent,
    StreamState,
)
from portfolio_core.ports.values import MAX_VALUE_DEPTH
from portfolio_core.testing.clauses import clause
from portfolio_core.testing.concurrency import one_winner, run_concurrently
from portfolio_core.testing.contracts.event_store._common import (
    STRING_CASES,
    ev,
    event_ids,
)
from portfolio_core.testing.suite import ContractSuite


class AppendClauses(ContractSuite[EventStore]):
    """Appending: versions, expected versions, idempotent retries, validation, sizes."""

    @clause("event_store.append.result", "append returns the new version and batch positions")
    async def test_append_result(self, adapter: EventStore) -> None:
        r1 = await adapter.append("s", [ev(i=1), ev(i=2)], StreamState.NO_STREAM)
        assert r1.version == 2, r1
        assert len(r1.positions) == 2, r1
        r2 = await adapter.append("s", [ev(i=3)], 2)
        assert r2.version == 3, r2
        assert r1.positions[0] < r1.positions[1] < r2.positions[0], (r1, r2)
        events = await adapter.read("s")
        assert [e.version for e in events] == [1, 2, 3]
        assert [e.position for e in events] == [*r1.positions, *r2.positions]
        assert [e.data["i"] for e in events] == [1, 2, 3]

    @clause(
        "event_store.append.expected_version",
        "an expected version that does not match raises WrongExpectedVersionError, writes nothing",
    )
    @pytest.mark.parametrize(
        ("setup", "expected"),
        [
            (1, StreamState.NO_STREAM),
            (0, StreamState.STREAM_EXISTS),
            (2, 1),
            (2, 3),
            (0, 1),
        ],
    )
    async def test_wrong_expected_version(
        self, adapter: EventStore, setup: int, expected: Any
    ) -> None:
        if setup:
            await adapter.append("s", [ev(i=n) for n in range(setup)])
        await adapter.append("other", [ev()])
        before = await adapter.read_all()
        with pytest.raises(WrongExpectedVersionError) as info:
            await adapter.append("s", [ev(i=99)], expected)
        assert info.value.actual == setup, f"actual reported {info.value.actual}, is {setup}"
        assert event_ids(await adapter.read_all()) == event_ids(before), (
            "a refused append wrote events"
        )

    @clause("event_store.append.expected_ok", "matching expected versions (int and states) append")
    async def test_expected_version_ok(self, adapter: EventStore) -> None:
        await adapter.append("s", [ev()], StreamState.NO_STREAM)
        await adapter.append("s", [ev()], StreamState.STREAM_EXISTS)
        await adapter.append("s", [ev()], 2)
        await adapter.append("s", [ev()], StreamState.ANY)
        assert len(await adapter.read("s")) == 4

    @clause("event_store.append.idempotent", "retrying an exact batch does not duplicate it")
    async def test_idempotent_retry(self, adapter: EventStore) -> None:
        batch = [ev(i=1), ev(i=2)]
        first = await adapter.append("s", batch, StreamState.NO_STREAM)
        again = await adapter.append("s", batch, StreamState.NO_STREAM)
        assert again.version == first.version
        assert again.positions == first.positions
        again_any = await adapter.append("s", batch)
        assert again_any.positions == first.positions
        assert len(await adapter.read("s")) == 2, "an idempotent retry duplicated events"
        assert len(await adapter.read_all()) == 2

    @clause(
        "event_store.append.idempotent_not_tail",
        "a retried batch that is no longer the stream's last append returns the original "
        "result and writes nothing (int, ANY and STREAM_EXISTS alike)",
    )
    async def test_idempotent_retry_not_at_tail(self, adapter: EventStore) -> None:
        await adapter.append("s", [ev(i=0)])
        batch = [ev(i=1), ev(i=2)]
        first = await adapter.append("s", batch, 1)
        await adapter.append("s", [ev(i=3)], 3)
        await adapter.append("other", [ev(i=4)])
        before = event_ids(await adapter.read_all())
        for expected in (1, StreamState.ANY, StreamState.STREAM_EXISTS):
            again = await adapter.append("s", batch, expected)
            assert (again.version, again.positions) == (first.version, first.positions), (
                f"retrying with expected_version={expected!r} gave {again}, not {first}"
            )
        assert event_ids(await adapter.read_all()) == before, (
            "a retry of an older batch wrote events"
        )
        for wrong in (0, 2, StreamState.NO_STREAM):
            with pytest.raises(ConflictError):
                await adapter.append("s", batch, wrong)
        opening = [ev(i=5)]
        await adapter.append("fresh", opening, StreamState.NO_STREAM)
        with pytest.raises(ConflictError):
            # the original append found no stream: STREAM_EXISTS cannot be its retry
            await adapter.append("fresh", opening, StreamState.STREAM_EXISTS)
        assert event_ids(await adapter.read_all()) == [*before, opening[0].id]

    @clause("event_store.append.id_conflict", "an id stored elsewhere raises ConflictError")
    async def test_id_reused_elsewhere(self, adapter: EventStore) -> None:
        e = ev()
        await adapter.append("a", [e])
        with pytest.raises(ConflictError):
            await adapter.append("b", [ev(), e])
        with pytest.raises(NotFoundError):
            await adapter.read("b")
        assert len(await adapter.read_all()) == 1, "a conflicting batch was partly written"

    @clause("event_store.append.invalid", "bad input raises InvalidInputError, writes nothing")
    @pytest.mark.parametrize(
        "case",
        [
            "empty_batch",
            "empty_stream",
            "not_json",
            "nan",
            "oversized",
            "dup_ids",
            # what JSON would silently convert is refused, as a Cache refuses it
            "tuple",
            "int_key",
            "too_deep",
        ],
    )
    async def test_invalid_input(self, adapter: EventStore, case: str) -> None:
        await adapter.append("s", [ev()])
        limit = int(getattr(adapter, "max_event_bytes", 1_048_576))
        good = ev()
        stream = "s"
        batch: list[NewEvent]
        if case == "empty_batch":
            batch = []
        elif case == "empty_stream":
            stream, batch = "", [good]
        elif case == "not_json":
            batch = [good, NewEvent("E", {"x": object()})]
        elif case == "nan":
            batch = [good, NewEvent("E", {"x": float("nan")})]
        elif case == "oversized":
            batch = [good, NewEvent("E", {"x": "y" * (limit + 1)})]
        elif case == "tuple":
            batch = [good, NewEvent("E", {"x": [1, (2, 3)]})]
        elif case == "int_key":
            batch = [good, NewEvent("E", metadata={"m": {1: "one"}})]
        elif case == "too_deep":
            deep: Any = 1
            for _ in range(MAX_VALUE_DEPTH):
                deep = [deep]
            batch = [good, NewEvent("E", {"x": deep})]
        else:
            batch = [good, good]
        with pytest.raises(InvalidInputError):
            await adapter.append(stream, batch)
        assert len(await adapter.read_all()) == 1, f"{case}: invalid batch wrote events"

    @clause(
        "event_store.args.invalid",
        "malformed arguments raise InvalidInputError and write nothing: a batch that is not a "
        "sequence of NewEvent, an empty type, a negative or boolean expected version, a "
        "negative limit or version",
    )
    @pytest.mark.parametrize(
        "case",
        [
            "single_event",
            "not_an_event",
            "empty_type",
            "negative_expected",
            "bool_expected",
            "negative_limit",
            "negative_read_all_limit",
            "negative_version",
        ],
    )
    async def test_malformed_arguments(self, adapter: EventStore, case: str) -> None:
        await adapter.append("s", [ev()])
        store: Any = adapter  # the calls below break the port's types on purpose
        calls: dict[str, Any] = {
            "single_event": lambda: store.append("s", ev()),
            "not_an_event": lambda: store.append("s", [ev(), {"type": "E", "data": {}}]),
            "empty_type": lambda: adapter.append("s", [ev(), NewEvent("", {})]),
            "negative_expected": lambda: adapter.append("s", [ev()], -1),
            "bool_expected": lambda: adapter.append("s", [ev()], True),
            "negative_limit": lambda: adapter.read("s", 1, -1),
            "negative_read_all_limit": lambda: adapter.read_all(1, -1),
            "negative_version": lambda: adapter.read("s", -1),
        }
        with pytest.raises(InvalidInputError):
            await calls[case]()
        assert len(await adapter.read_all()) == 1, f"{case}: a refused call wrote events"

    @clause(
        "event_store.append.rejects_nul",
        "a string containing U+0000 anywhere in an event raises InvalidInputError naming the "
        "field, writes nothing",
    )
    @pytest.mark.parametrize(("case", "field"), STRING_CASES)
    async def test_rejects_nul(self, adapter: EventStore, case: str, field: str) -> None:
        await self._refused_string(adapter, case, field, "a\x00b")

    @clause(
        "event_store.append.rejects_surrogates",
        "a string holding a lone surrogate (not Unicode text) anywhere in an event raises "
        "InvalidInputError naming the field, writes nothing",
    )
    @pytest.mark.parametrize(("case", "field"), STRING_CASES)
    async def test_rejects_surrogates(self, adapter: EventStore, case: str, field: str) -> None:
        await self._refused_string(adapter, case, field, "a\udc80b")

    @staticmethod
    async def _refused_string(adapter: EventStore, case: str, field: str, nul: str) -> None:
        """Append a batch whose second event holds ``nul`` at ``case``: refused, naming
        ``field``, nothing written."""
        await adapter.append("s", [ev()])
        before = await adapter.read_all()
        stream = "s"
        bad: NewEvent
        if case == "data_value":
            bad = NewEvent("E", {"x": nul})
        elif case == "data_later_value":
            bad = NewEvent("E", {"a": {"clean": 1}, "b": "clean", "x": nul})
        elif case == "data_key":
            bad = NewEvent("E", {nul: 1})
        elif case == "data_nested":
            bad = NewEvent("E", {"x": [1, {"y": ["ok", nul]}]})
        elif case == "metadata_value":
            bad = NewEvent("E", metadata={"m": nul})
        elif case == "metadata_key":
            bad = NewEvent("E", metadata={nul: "v"})
        elif case == "type":
            bad = NewEvent(nul)
        elif case == "id":
            bad = NewEvent("E", id=nul)
        elif case == "correlation_id":
            bad = NewEvent("E", correlation_id=nul)
        elif case == "causation_id":
            bad = NewEvent("E", causation_id=nul)
        else:
            stream, bad = nul, ev()
        with pytest.raises(InvalidInputError) as info:
            await adapter.append(stream, [ev(i=1), bad])
        assert info.value.field == field, f"{case}: error names {info.value.field!r}, not {field!r}"
        assert event_ids(await adapter.read_all()) == event_ids(before), (
            f"{case}: refused batch wrote events"
        )

    @clause("event_store.append.atomic", "of N concurrent appends at one version, one wins")
    async def test_concurrent_one_winner(self, adapter: EventStore) -> None:
        await adapter.append("s", [ev()])
        results = await run_concurrently(8, lambda i: adapter.append("s", [ev(i=i), ev(i=i)], 1))
        one_winner(results, WrongExpectedVersionError)
        events = await adapter.read("s")
        assert [e.version for e in events] == [1, 2, 3], "batches interleaved or duplicated"
        assert events[1].data == events[2].data, "the winning batch was split"

    @clause("event_store.append.race", "racing writers with retries lose and duplicate nothing")
    async def test_writers_race(self, adapter: EventStore) -> None:
        per_writer = 5

        async def writer(w: int) -> int:
            done = 0
            for _ in range(200):
                if done == per_writer:
                    break
                try:
                    current = len(await adapter.read("s"))
                except NotFoundError:
                    current = 0
                try:
                    await adapter.append("s", [ev(i=w * 100 + done)], current)
                    done += 1
                except WrongExpectedVersionError:
                    await asyncio.sleep(0)
            return done

        results = await run_concurrently(8, writer)
        assert all(r == per_writer for r in results), results
        events = await adapter.read("s")
        assert [e.version for e in events] == list(range(1, 8 * per_writer + 1))
        got = sorted(e.data["i"] for e in events)
        assert got == sorted(w * 100 + k for w in range(8) for k in range(per_writer))
