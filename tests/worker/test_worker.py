"""The worker: handlers by name, failures and dead letters, timeouts, graceful stop, cron."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from portfolio_core.adapters.memory.job_queue import MemoryJobQueue
from portfolio_core.ports import InvalidInputError, Job, JobState, NewJob, Reservation
from portfolio_core.testing import FakeClock
from portfolio_core.worker import CronSchedule, Handlers, Periodic, Worker

BOUND = 10.0


async def until(predicate: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll ``predicate`` (a queue's state, which has no event to wait on) for up to BOUND."""
    deadline = asyncio.get_running_loop().time() + BOUND
    while not await predicate():
        assert asyncio.get_running_loop().time() < deadline, f"never {what}"
        await asyncio.sleep(0.005)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(1_700_000_000.0)


@pytest.fixture
def queue(clock: FakeClock) -> MemoryJobQueue:
    return MemoryJobQueue(clock=clock, poll_interval=0.005)


@pytest.fixture
async def running(queue: MemoryJobQueue, clock: FakeClock) -> AsyncIterator[Callable[..., Worker]]:
    started: list[tuple[Worker, asyncio.Task[Any]]] = []

    def start(handlers: Handlers, **kw: Any) -> Worker:
        worker = Worker(queue, handlers, idle_wait=0.01, clock=clock, **kw)
        started.append((worker, asyncio.ensure_future(worker.run())))
        return worker

    yield start
    for worker, task in started:
        worker.stop()
        await asyncio.wait_for(task, BOUND)


async def state_of(queue: MemoryJobQueue, job_id: str) -> JobState:
    return (await queue.get(job_id)).state


async def test_runs_each_job_with_its_payload_and_completes_it(
    queue: MemoryJobQueue, running: Callable[..., Worker]
) -> None:
    seen: list[tuple[Any, str]] = []
    handlers = Handlers()

    @handlers.task("add")
    async def add(payload: dict[str, int], job: Job) -> None:
        seen.append((payload["a"] + payload["b"], job.task))

    @handlers.task()
    def shout(payload: str) -> None:  # a plain function runs in a thread
        seen.append((payload.upper(), "shout"))

    ids = [
        await queue.enqueue(NewJob("add", {"a": 1, "b": 2})),
        await queue.enqueue(NewJob("shout", "hi")),
    ]
    worker = running(handlers, concurrency=2)
    for job_id in ids:
        await until(lambda j=job_id: _is(queue, j, JobState.COMPLETED), "completed")
    assert sorted(seen, key=repr) == [("HI", "shout"), (3, "add")]
    assert worker.stats.completed == 2
    assert all(latency >= 0 for latency in worker.stats.latencies)


async def _is(queue: MemoryJobQueue, job_id: str, state: JobState) -> bool:
    return await state_of(queue, job_id) is state


async def test_poison_job_is_dead_lettered_with_its_error(
    queue: MemoryJobQueue, clock: FakeClock, running: Callable[..., Worker]
) -> None:
    handlers = Handlers()
    calls: list[int] = []

    @handlers.task("poison")
    async def poison(payload: Any, job: Job) -> None:
        calls.append(job.attempts)
        raise ValueError(f"cannot digest {payload!r}")

    job_id = await queue.enqueue(NewJob("poison", "x", max_attempts=3))
    worker = running(handlers)
    for attempt in (1, 2):
        await until(lambda a=attempt: _attempted(queue, job_id, a), "failed once more")
        clock.advance(300)  # past any backoff
    await until(lambda: _is(queue, job_id, JobState.DEAD), "dead")
    job = await queue.get(job_id)
    assert job.last_error == "ValueError: cannot digest 'x'"
    assert calls == [1, 2, 3]
    assert (worker.stats.failed, worker.stats.dead) == (3, 1)


async def _attempted(queue: MemoryJobQueue, job_id: str, attempts: int) -> bool:
    job = await queue.get(job_id)
    return job.attempts == attempts and job.state is not JobState.RUNNING


async def test_job_without_handler_fails_naming_the_task(
    queue: MemoryJobQueue, running: Callable[..., Worker]
) -> None:
    job_id = await queue.enqueue(NewJob("nobody", max_attempts=1))
    running(Handlers())
    await until(lambda: _is(queue, job_id, JobState.DEAD), "dead")
    assert "no handler registered for task 'nobody'" in ((await queue.get(job_id)).last_error or "")


async def test_a_job_over_its_timeout_fails(
    queue: MemoryJobQueue, running: Callable[..., Worker]
) -> None:
    handlers = Handlers()

    @handlers.task("stuck")
    async def stuck(payload: Any) -> None:
        await asyncio.Event().wait()

    job_id = await queue.enqueue(NewJob("stuck", max_attempts=1))
    running(handlers, job_timeout=0.05)
    await until(lambda: _is(queue, job_id, JobState.DEAD), "dead")
    assert (await queue.get(job_id)).last_error == (
        "TimeoutError: the handler ran longer than 0.05 s"
    )


async def test_stop_lets_quick_jobs_finish_and_releases_the_rest(
    queue: MemoryJobQueue, clock: FakeClock
) -> None:
    handlers = Handlers()
    quick_may_finish = asyncio.Event()

    @handlers.task("quick")
    async def quick(payload: Any) -> None:
        await quick_may_finish.wait()

    @handlers.task("endless")
    async def endless(payload: Any) -> None:
        await asyncio.Event().wait()

    quick_id = await queue.enqueue(NewJob("quick"))
    endless_id = await queue.enqueue(NewJob("endless"))
    worker = Worker(queue, handlers, concurrency=2, grace=0.2, idle_wait=0.01, clock=clock)
    task = asyncio.ensure_future(worker.run())
    await until(lambda: _is(queue, endless_id, JobState.RUNNING), "running")
    await until(lambda: _is(queue, quick_id, JobState.RUNNING), "running")
    worker.stop()
    quick_may_finish.set()
    stats = await asyncio.wait_for(task, BOUND)
    assert await state_of(queue, quick_id) is JobState.COMPLETED
    released = await queue.get(endless_id)
    assert (released.state, released.attempts) == (JobState.AVAILABLE, 0)
    assert (stats.completed, stats.released) == (1, 1)


async def test_a_lost_lease_cancels_the_handler_and_is_not_completed(
    queue: MemoryJobQueue, clock: FakeClock
) -> None:
    handlers = Handlers()
    cancelled = asyncio.Event()

    @handlers.task("long")
    async def long(payload: Any) -> None:
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            cancelled.set()
            raise

    job_id = await queue.enqueue(NewJob("long"))
    worker = Worker(queue, handlers, lease=0.06, idle_wait=0.01, clock=clock)
    task = asyncio.ensure_future(worker.run())
    await until(lambda: _is(queue, job_id, JobState.RUNNING), "running")
    (held,) = [await queue.get(job_id)]
    clock.advance(60)  # the lease runs out before the next heartbeat
    (taken,) = await queue.reserve("default")  # another worker takes it back
    assert taken.id == held.id
    await asyncio.wait_for(cancelled.wait(), BOUND)
    worker.stop()
    stats = await asyncio.wait_for(task, BOUND)
    assert stats.lost == 1
    assert stats.completed == 0
    await queue.complete(taken)  # the other worker still holds it


async def test_cron_ticks_are_enqueued_once_across_many_schedulers(
    queue: MemoryJobQueue, clock: FakeClock
) -> None:
    clock.set(1_700_000_000.0)  # 2023-11-14T22:13:20Z
    every_minute = Periodic("report", "* * * * *", payload={"kind": "daily"})
    schedules = [CronSchedule(queue, [every_minute], clock=clock) for _ in range(5)]
    clock.advance(40)  # past the first tick, at 22:14:00
    first = [await s.enqueue_due() for s in schedules]
    assert len({i for ids in first for i in ids}) == 1, f"first tick: {first}"
    (held,) = await queue.reserve("default")
    await queue.complete(held)
    late = CronSchedule(queue, [every_minute], clock=clock)
    assert await late.enqueue_due() == [], "a scheduler started after a tick does not back-fill"
    clock.advance(120)  # two more ticks
    again = [await s.enqueue_due() for s in schedules]
    assert all(len(ids) == 2 for ids in again)
    assert len({i for ids in again for i in ids}) == 2, "each tick is one job, whoever enqueues"
    counts = await queue.counts("default")
    assert (counts.completed, counts.available) == (1, 2)


def test_periodic_refuses_a_bad_expression() -> None:
    with pytest.raises(InvalidInputError):
        Periodic("report", "every day")


def test_handlers_by_decorator_and_by_path() -> None:
    handlers = Handlers()
    handlers.register_paths({"record": "tests.worker.job_handlers:record"})
    assert "record" in handlers
    with pytest.raises(InvalidInputError):
        handlers.register_paths({"x": "tests.worker.job_handlers"})
    with pytest.raises(InvalidInputError):
        handlers.register_paths({"x": "tests.worker.no_such_module:f"})
    with pytest.raises(InvalidInputError):
        handlers.register("record", print)  # another function under a taken name


class RoundTrips(MemoryJobQueue):
    """A memory queue whose complete and extend yield to the loop, as a network queue does."""

    async def complete(self, reservation: Reservation) -> None:
        await asyncio.sleep(0.001)
        await super().complete(reservation)

    async def extend(self, reservation: Reservation, lease: float) -> Reservation:
        await asyncio.sleep(0.001)
        return await super().extend(reservation, lease)


async def test_heartbeats_racing_completions_lose_nothing(clock: FakeClock) -> None:
    queue = RoundTrips(clock=clock, poll_interval=0.005)
    handlers = Handlers()

    @handlers.task("quick")
    async def quick(payload: Any) -> None:
        await asyncio.sleep(0.001)

    ids = await queue.enqueue_many([NewJob("quick") for _ in range(80)])
    worker = Worker(queue, handlers, concurrency=4, lease=0.003, idle_wait=0.01, clock=clock)
    task = asyncio.ensure_future(worker.run())
    await until(lambda: _all_completed(queue, len(ids)), "completed all")
    worker.stop()
    stats = await asyncio.wait_for(task, BOUND)
    assert (stats.completed, stats.lost) == (80, 0), "a heartbeat reported a finished job lost"


async def _all_completed(queue: MemoryJobQueue, n: int) -> bool:
    return (await queue.counts("default")).completed == n


def test_a_bad_worker_section_is_a_manifest_error_at_load(tmp_path: Path) -> None:
    from portfolio_core.manifest import ManifestError, load

    manifest = tmp_path / "app.yaml"
    manifest.write_text(
        "schema_version: 1\nadapters:\n  jobs: {port: job_queue, adapter: memory}\n"
        "worker:\n  handlers: {send: not-a-path}\n  periodic:\n"
        "    - {task: report, cron: every day}\n  retries: 3\n"
    )
    with pytest.raises(ManifestError) as info:
        load(manifest)
    text = str(info.value)
    for where in ("worker.handlers", "worker.periodic[0].cron", "worker.retries"):
        assert where in text, f"{where} not reported in:\n{text}"


async def test_the_progress_view_shows_the_worker_and_its_queue(
    queue: MemoryJobQueue, clock: FakeClock
) -> None:
    import io

    from portfolio_core.worker._progress import ProgressView

    handlers = Handlers()

    @handlers.task("noop")
    async def noop(payload: Any) -> None:
        return None

    await queue.enqueue_many([NewJob("noop") for _ in range(3)])
    await queue.enqueue(NewJob("noop", delay=60))
    worker = Worker(queue, handlers, concurrency=2, idle_wait=0.01, clock=clock)
    running = asyncio.ensure_future(worker.run())
    await until(lambda: _all_completed(queue, 3), "completed")
    out = io.StringIO()
    view = asyncio.ensure_future(ProgressView(worker, stream=out, interval=0.001).run())
    deadline = asyncio.get_running_loop().time() + BOUND
    while not out.getvalue():
        assert asyncio.get_running_loop().time() < deadline, "the view printed nothing"
        await asyncio.sleep(0.005)
    view.cancel()
    worker.stop()
    await running
    line = out.getvalue().splitlines()[0]
    assert "default: running 0/2  done 3  failed 0  dead 0" in line, line
    assert "queue: available 0  scheduled 1  running 0  dead 0" in line, line
