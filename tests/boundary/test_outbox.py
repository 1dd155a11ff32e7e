"""The outbox: failed writes recorded durably, replayed in order per key, never duplicated;
its backlog in health; its limit; its configuration."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from portfolio_core.adapters.memory.event_store import MemoryEventStore
from portfolio_core.adapters.memory.job_queue import MemoryJobQueue
from portfolio_core.boundary import (
    OutboxAcceptedError,
    OutboxFullError,
    Pending,
    boundary_problems,
    outbox_of,
    unwrap,
    wrap,
)
from portfolio_core.boundary.outbox import decode_call, encode_call
from portfolio_core.ports import (
    AppendResult,
    ExpectedVersion,
    InvalidInputError,
    JobState,
    NewEvent,
    StreamState,
    UnavailableError,
    port_by_key,
)
from portfolio_core.registry import Registry

BOUND = 10.0
EVENT_STORE = port_by_key("event_store")


class Outage(MemoryEventStore):
    """A memory event store that can be 'down': appends raise UnavailableError. With
    ``lose_replies`` an append is stored and then reported failed (the reply was lost)."""

    def __init__(self, **config: Any) -> None:
        super().__init__(**config)
        self.down = False
        self.lose_replies = False
        self.calls = 0

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = StreamState.ANY,
    ) -> AppendResult:
        self.calls += 1
        if self.lose_replies:
            await super().append(stream, events, expected_version)
            raise UnavailableError("connection lost before the reply")
        if self.down:
            raise UnavailableError("event store is down")
        return await super().append(stream, events, expected_version)


def guarded(adapter: Outage, tmp_path: Path, **outbox: Any) -> Any:
    config = {"methods": ["append"], "path": str(tmp_path / "outbox.db"), "relay_interval": 0.01}
    return wrap(
        adapter,
        port=EVENT_STORE,
        name="events",
        adapter_type="memory",
        telemetry=None,
        protection={"outbox": {**config, **outbox}},
    )


async def until(predicate: Callable[[], bool | Awaitable[bool]], what: str) -> None:
    """Poll ``predicate`` for up to BOUND seconds (the relay has no event to wait on)."""
    deadline = asyncio.get_running_loop().time() + BOUND
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        assert asyncio.get_running_loop().time() < deadline, f"never {what}"
        await asyncio.sleep(0.01)


async def types_in(store: MemoryEventStore, stream: str) -> list[str]:
    return [e.type for e in await store.read(stream)]


async def test_healthy_calls_pass_straight_through(tmp_path: Path) -> None:
    store = Outage()
    events = guarded(store, tmp_path)
    result = await events.append("s", [NewEvent("A")])
    assert isinstance(result, AppendResult)
    assert result.version == 1
    assert outbox_of(events).status().pending == 0
    assert unwrap(events) is store
    assert (await types_in(store, "s")) == ["A"]
    await outbox_of(events).aclose()


async def test_a_failed_append_is_accepted_then_replayed_once(tmp_path: Path) -> None:
    store = Outage()
    events = guarded(store, tmp_path)
    outbox = outbox_of(events)
    assert outbox is not None
    store.down = True
    first = NewEvent("A")
    with pytest.raises(OutboxAcceptedError) as accepted:
        await events.append("s", [first])
    assert accepted.value.pending.key == "s"
    assert not accepted.value.retryable, "the caller must not retry an accepted call"
    assert outbox.status().pending == 1
    await asyncio.sleep(0.05)
    assert outbox.status().pending == 1, "replayed while the store was still down"
    store.down = False
    await until(lambda: outbox.status().pending == 0, "replayed")
    got = await store.read("s")
    assert [e.id for e in got] == [first.id]
    await outbox.aclose()


async def test_calls_of_one_key_keep_their_order_and_other_keys_go_ahead(tmp_path: Path) -> None:
    store = Outage()
    events = guarded(store, tmp_path, on_pending="return", relay_interval=5.0)
    outbox = outbox_of(events)
    store.down = True
    pending = await events.append("s1", [NewEvent("A1")])
    assert isinstance(pending, Pending)
    store.down = False
    second = await events.append("s1", [NewEvent("A2")])
    assert isinstance(second, Pending), "a call behind a pending one of its key must queue"
    other = await events.append("s2", [NewEvent("B1")])
    assert isinstance(other, AppendResult), "another key is not held up"
    assert await outbox.replay_once()
    assert await types_in(store, "s1") == ["A1", "A2"]
    assert outbox.status().pending == 0
    assert isinstance(await events.append("s1", [NewEvent("A3")]), AppendResult)
    await outbox.aclose()


async def test_a_replay_of_an_append_that_did_land_writes_nothing_twice(tmp_path: Path) -> None:
    store = Outage()
    events = guarded(store, tmp_path, on_pending="return")
    outbox = outbox_of(events)
    store.lose_replies = True
    batch = [NewEvent("A"), NewEvent("B")]
    assert isinstance(await events.append("s", batch), Pending)
    store.lose_replies = False
    await until(lambda: outbox.status().pending == 0, "replayed")
    assert [e.id for e in await store.read("s")] == [e.id for e in batch]
    await outbox.aclose()


async def test_recorded_calls_survive_a_restart(tmp_path: Path) -> None:
    store = Outage()
    events = guarded(store, tmp_path, relay_interval=60.0)
    store.down = True
    for name in ("A", "B"):
        with pytest.raises(OutboxAcceptedError):
            await events.append("s", [NewEvent(name)])
    await outbox_of(events).aclose()  # the process stops with two calls pending
    store.down = False
    restarted = guarded(store, tmp_path)
    outbox = outbox_of(restarted)
    await outbox.start()
    assert outbox.status().pending == 2
    await until(lambda: outbox.status().pending == 0, "replayed after restart")
    assert await types_in(store, "s") == ["A", "B"]
    await outbox.aclose()


async def test_at_the_backlog_limit_failures_are_refused_not_recorded(tmp_path: Path) -> None:
    store = Outage()
    events = guarded(store, tmp_path, backlog_limit=2, relay_interval=60.0)
    outbox = outbox_of(events)
    store.down = True
    for stream in ("a", "b"):
        with pytest.raises(OutboxAcceptedError):
            await events.append(stream, [NewEvent("E")])
    with pytest.raises(OutboxFullError) as full:
        await events.append("c", [NewEvent("E")])
    assert isinstance(full.value.__cause__, UnavailableError)
    assert full.value.retryable
    status = outbox.status()
    assert (status.pending, status.full) == (2, True)
    await outbox.aclose()


async def test_errors_that_are_not_retryable_pass_through_unrecorded(tmp_path: Path) -> None:
    events = guarded(Outage(), tmp_path)
    with pytest.raises(InvalidInputError):
        await events.append("s", [])
    assert outbox_of(events).status().pending == 0
    await outbox_of(events).aclose()


async def test_a_replay_refused_for_good_is_dead_lettered_with_its_error(tmp_path: Path) -> None:
    store = Outage()
    queue = MemoryJobQueue()
    events = wrap(
        store,
        port=EVENT_STORE,
        name="events",
        adapter_type="memory",
        telemetry=None,
        protection={"outbox": {"methods": ["append"], "relay_interval": 60.0}},
        outbox_store=queue,
    )
    outbox = outbox_of(events)
    store.down = True
    with pytest.raises(OutboxAcceptedError):
        await events.append("s", [NewEvent("A")], expected_version=StreamState.NO_STREAM)
    store.down = False
    await store.append("s", [NewEvent("Other")])  # someone else created the stream meanwhile
    assert await outbox.replay_once()
    (dead,) = await queue.list_jobs(outbox.queue, JobState.DEAD)
    assert (dead.last_error or "").startswith("WrongExpectedVersionError")
    assert (outbox.status().pending, outbox.status().dead) == (0, 1)
    await outbox.aclose()


async def test_an_open_breaker_sends_calls_to_the_outbox(tmp_path: Path) -> None:
    store = Outage()
    events = wrap(
        store,
        port=EVENT_STORE,
        name="events",
        adapter_type="memory",
        telemetry=None,
        protection={
            "circuit_breaker": {"fail_max": 1, "reset_timeout": 60},
            "outbox": {
                "methods": ["append"],
                "path": str(tmp_path / "o.db"),
                "on_pending": "return",
            },
        },
    )
    store.down = True
    assert isinstance(await events.append("a", [NewEvent("A")]), Pending)  # opens the breaker
    calls = store.calls
    pending = await events.append("b", [NewEvent("B")])
    assert isinstance(pending, Pending)
    assert "CircuitOpenError" in pending.error
    assert store.calls == calls, "an open breaker must not reach the store"
    await outbox_of(events).aclose()


def test_configuration_names_async_methods_of_the_port() -> None:
    problems = boundary_problems(EVENT_STORE, None, {"outbox": {"methods": ["append", "nope"]}})
    assert [p for p, _ in problems] == [("protection", "outbox", "methods", 1)]
    assert boundary_problems(EVENT_STORE, None, {"outbox": {"methods": []}})


def test_arguments_round_trip_through_the_record() -> None:
    args = ("s", [NewEvent("A", {"x": 1.5, "y": [1, None]})], StreamState.NO_STREAM)
    record = encode_call(args, {"expected_version": 3})
    import json

    again = decode_call(json.loads(json.dumps(record)))
    assert again == (args, {"expected_version": 3})
    with pytest.raises(InvalidInputError):
        encode_call((object(),), {})


async def test_a_manifest_wires_the_outbox_and_health_shows_the_backlog(tmp_path: Path) -> None:
    manifest = tmp_path / "app.yaml"
    manifest.write_text(
        f"""schema_version: 1
adapters:
  events:
    port: event_store
    adapter: tests.boundary.test_outbox:Outage
    protection:
      outbox:
        methods: [append]
        path: {tmp_path / "outbox.db"}
        relay_interval: 60
"""
    )
    registry = Registry.from_manifest(manifest)
    try:
        await registry.start()
        from portfolio_core.ports import EventStore

        events = registry.get(EventStore)
        outbox = outbox_of(events)
        assert outbox is not None
        unwrap(events).down = True  # type: ignore[attr-defined]
        with pytest.raises(OutboxAcceptedError):
            await events.append("s", [NewEvent("A")])
        report = await registry.health()
        assert "outbox: 1 pending" in report.entries["events"].detail
    finally:
        await registry.aclose()
    assert outbox._relay is None, "closing the registry stops the relay"


def test_the_record_keeps_datetimes_mappings_tuples_and_lists_apart() -> None:
    import json
    from datetime import UTC, datetime

    at = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    args = ({"when": at, "pair": (1, "a"), "list": [2.5]},)
    again = decode_call(json.loads(json.dumps(encode_call(args, {}))))
    assert again == (args, {})
    assert type(again[0][0]["pair"]) is tuple
    assert type(again[0][0]["list"]) is list


def test_the_record_refuses_what_it_could_not_rebuild() -> None:
    from dataclasses import dataclass

    @dataclass
    class Foreign:
        x: int

    with pytest.raises(InvalidInputError, match=r"cannot record a .*Foreign"):
        encode_call((Foreign(1),), {})
    with pytest.raises(InvalidInputError, match="string keys only"):
        encode_call(({1: "a"},), {})
    with pytest.raises(InvalidInputError, match="cannot record a set"):
        encode_call(({1},), {})


def test_a_record_naming_a_foreign_type_or_unknown_tag_is_refused() -> None:
    with pytest.raises(InvalidInputError, match="only rebuilds portfolio_core types"):
        decode_call({"args": [{"d": "os:system", "v": {}}], "kwargs": {}})
    with pytest.raises(InvalidInputError, match="not an outbox record"):
        decode_call({"args": [{"zz": 1}], "kwargs": {}})


def test_an_outbox_key_that_is_not_an_argument_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError, match="outbox key 'nope' is not an argument"):
        guarded(Outage(), tmp_path, key="nope")


async def test_calls_are_ordered_by_the_configured_key_given_by_name_or_position(
    tmp_path: Path,
) -> None:
    store = Outage()
    events = guarded(store, tmp_path, key="events")
    outbox = outbox_of(events)
    assert outbox is not None
    batch = [NewEvent("A")]
    assert outbox.key_of("append", ("s", batch), {}) == str(batch)
    assert outbox.key_of("append", ("s",), {"events": batch}) == str(batch)


async def test_an_outbox_store_names_a_job_queue_adapter(tmp_path: Path) -> None:
    def with_store(adapter: str) -> Any:
        return guarded(Outage(), tmp_path, store={"adapter": adapter})

    outbox = outbox_of(with_store("memory"))
    assert outbox is not None
    try:
        await outbox.start()
        assert isinstance(outbox.store, MemoryJobQueue)
    finally:
        await outbox.aclose()
    unknown = outbox_of(with_store("nope"))
    assert unknown is not None
    with pytest.raises(InvalidInputError, match="no job_queue adapter named 'nope'"):
        await unknown.start()
