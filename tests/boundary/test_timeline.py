"""The timeline and the panels: a bounded feed of what happened, published by the boundary."""

from __future__ import annotations

import threading

import pytest

from portfolio_core.boundary import Breaker
from portfolio_core.boundary.panels import (
    Panel,
    register_panel,
    registered_panels,
    unregister_panel,
)
from portfolio_core.boundary.timeline import (
    COALESCE_SECONDS,
    Timeline,
    default_timeline,
)
from portfolio_core.ports import UnavailableError
from tests.support.boundary import FakeClock, ScriptedCache, protect


def test_events_get_increasing_ids_and_are_read_after_an_id() -> None:
    timeline = Timeline(clock=FakeClock())
    a = timeline.publish("jobs.dead_letter", "job 7 gave up", entry="jobs", severity="error")
    b = timeline.publish("config.version", "version 3 applied", data={"version": 3})
    assert (a.id, b.id) == (1, 2)
    assert timeline.since(0) == [a, b]
    assert timeline.since(a.id) == [b]
    assert timeline.since(b.id) == []
    assert timeline.latest(1) == [b]
    assert b.data == {"version": 3}
    assert a.entry == "jobs"
    assert a.severity == "error"


def test_the_feed_is_bounded_and_long_texts_are_cut() -> None:
    timeline = Timeline(capacity=3)
    for i in range(10):
        timeline.publish("k", f"event {i}", detail="d" * 5000)
    kept = timeline.latest()
    assert [e.title for e in kept] == ["event 7", "event 8", "event 9"]
    assert len(kept[0].detail) == 2000
    assert timeline.last_id == 10
    with pytest.raises(ValueError, match="at least one"):
        Timeline(capacity=0)


def test_a_flood_under_one_key_is_one_event_with_a_count() -> None:
    clock = FakeClock()
    timeline = Timeline(clock=clock)
    first = timeline.publish("rejection", "refused", coalesce="k")
    timeline.publish("other", "in between")
    clock.now += COALESCE_SECONDS / 2
    second = timeline.publish("rejection", "refused again", coalesce="k")
    assert second.count == 2
    assert second.id > first.id
    assert [e.title for e in timeline.latest()] == ["in between", "refused again"]
    assert timeline.since(first.id) == [timeline.latest()[0], second]
    clock.now += COALESCE_SECONDS + 1  # a quiet spell: the next one starts a new event
    third = timeline.publish("rejection", "refused later", coalesce="k")
    assert third.count == 1
    assert len(timeline.latest()) == 3


def test_a_failing_listener_neither_breaks_publishing_nor_other_listeners() -> None:
    timeline = Timeline()
    seen: list[str] = []

    def broken(_event: object) -> None:
        raise RuntimeError("listener bug")

    timeline.add_listener(broken)
    timeline.add_listener(lambda e: seen.append(e.title))
    timeline.publish("k", "one")
    timeline.remove_listener(broken)
    timeline.publish("k", "two")
    assert seen == ["one", "two"]


def test_threads_publishing_at_once_lose_nothing() -> None:
    timeline = Timeline(capacity=10_000)

    def work(n: int) -> None:
        for i in range(500):
            timeline.publish("k", f"{n}-{i}")

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = timeline.latest()
    assert len(events) == 2000
    assert len({e.id for e in events}) == 2000


async def test_the_boundary_publishes_breaker_transitions_and_coalesced_refusals() -> None:
    timeline = default_timeline()
    last = timeline.last_id
    cache = ScriptedCache(errors=[UnavailableError("down")] * 2)
    proxy = protect(
        cache, {"circuit_breaker": {"fail_max": 2, "reset_timeout": 60}}, name="flaky-cache"
    )
    for _ in range(2):
        with pytest.raises(UnavailableError):
            await proxy.get("k")
    for _ in range(3):
        with pytest.raises(UnavailableError):  # refused: open
            await proxy.get("k")
    events = [e for e in timeline.since(last) if e.entry == "flaky-cache"]
    assert [(e.kind, e.title, e.count) for e in events] == [
        ("breaker", "circuit breaker of 'flaky-cache': closed -> open", 1),
        ("rejection", "'flaky-cache' refused cache.get: circuit open", 3),
    ]
    assert events[0].severity == "error"
    assert events[1].data == {"port": "cache", "method": "get", "reason": "circuit_open"}


async def test_the_boundary_publishes_fallbacks() -> None:
    timeline = default_timeline()
    last = timeline.last_id
    proxy = protect(
        ScriptedCache(errors=[UnavailableError("down")]),
        {"fallback": {"adapter": "backup"}},
        fallback=ScriptedCache(),
        name="primary-cache",
    )
    assert await proxy.get("k") == "value:k"
    (event,) = [e for e in timeline.since(last) if e.entry == "primary-cache"]
    assert event.kind == "fallback"
    assert event.title == "'primary-cache' fell back on cache.get"
    assert event.detail == "after UnavailableError"


def test_an_open_breaker_says_for_how_long_it_refuses_calls() -> None:
    clock = FakeClock()
    breaker = Breaker("b", fail_max=1, reset_timeout=30, clock=clock)
    assert breaker.refusing_for() is None
    breaker.on_failure(UnavailableError("x"), probe=False)
    assert breaker.refusing_for() == 30
    clock.now += 20
    assert breaker.refusing_for() == 10
    assert breaker.state == "open"  # reading changed nothing
    clock.now += 20
    assert breaker.refusing_for() == 0.0
    assert breaker.state == "open"
    breaker.close()
    assert breaker.refusing_for() is None


def test_panels_are_registered_replaced_and_removed_by_name() -> None:
    def source(_registry: object) -> Panel:
        return Panel("Jobs", ("state", "jobs"), [("ready", 3)])

    register_panel("test-jobs", source)
    assert registered_panels()["test-jobs"] is source
    register_panel("test-jobs", source)  # replacing is allowed
    unregister_panel("test-jobs")
    unregister_panel("test-jobs")  # idempotent
    assert "test-jobs" not in registered_panels()
    with pytest.raises(ValueError, match="non-empty name"):
        register_panel("", source)
