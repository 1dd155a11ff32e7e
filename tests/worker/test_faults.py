"""Worker processes under faults: SIGKILL mid-job, SIGTERM, and 8 workers in 2 processes on
one PostgreSQL queue. Each test starts real ``portfolio-core worker`` processes."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from portfolio_core.adapters.sql.postgres_job_queue import PostgresJobQueue
from portfolio_core.adapters.sql.sqlite_job_queue import SQLiteJobQueue
from portfolio_core.ports import JobQueue, JobState, NewJob

ROOT = Path(__file__).resolve().parents[2]
BOUND = 60.0


def start_worker(manifest: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    with log.open("ab") as out:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "portfolio_core.cli",
                "worker",
                str(manifest),
                "--import",
                "tests.worker.job_handlers",
                "--no-progress",
                *args,
            ],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


@pytest.fixture
def processes() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def tail(log: Path | None) -> str:
    return log.read_text()[-3000:] if log is not None and log.exists() else ""


def lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


async def until(predicate: object, what: str, log: Path | None = None) -> None:
    """Poll ``predicate`` (a file, a queue: nothing to wait on) for up to BOUND seconds."""
    deadline = asyncio.get_running_loop().time() + BOUND
    while True:
        result = predicate()  # type: ignore[operator]
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"never {what}\n{tail(log)}")
        await asyncio.sleep(0.05)


async def state(queue: JobQueue, job_id: str) -> JobState:
    return (await queue.get(job_id)).state


async def test_sigkill_mid_job_reruns_it_after_its_lease_and_never_a_completed_one(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    db = tmp_path / "jobs.db"
    manifest = tmp_path / "worker.yaml"
    manifest.write_text(
        "schema_version: 1\nadapters:\n  jobs:\n    port: job_queue\n    adapter: sqlite\n"
        f"    config: {{path: '{db}', poll_interval: 0.02}}\n"
    )
    log = tmp_path / "worker.log"
    queue = SQLiteJobQueue(db)
    try:
        done = await queue.enqueue(NewJob("record", {"dir": str(tmp_path)}))
        slow = await queue.enqueue(
            NewJob("slow", {"dir": str(tmp_path), "seconds": 3600, "only_attempt": 1})
        )
        first = start_worker(manifest, log, "--lease", "1", "--concurrency", "2")
        processes.append(first)
        await until(lambda: f"{slow} 1" in lines(tmp_path / "started"), "started the slow job", log)
        await until(lambda: lines(tmp_path / "ran") == [done], "ran the quick job", log)
        await until(lambda: _is(queue, done, JobState.COMPLETED), "completed the quick job", log)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        assert await state(queue, slow) is JobState.RUNNING, "the killed worker's job is leased"

        second = start_worker(manifest, log, "--lease", "1")
        processes.append(second)
        await until(lambda: _is(queue, slow, JobState.COMPLETED), "re-ran the slow job", log)
        assert lines(tmp_path / "started") == [f"{slow} 1", f"{slow} 2"]
        assert lines(tmp_path / "finished") == [f"{slow} 2"]
        assert (await queue.get(slow)).attempts == 2
        second.send_signal(signal.SIGTERM)
        assert second.wait(BOUND) == 0, "SIGTERM must shut the worker down cleanly"
        assert lines(tmp_path / "ran") == [done], "a completed job ran again"
    finally:
        await queue.aclose()


async def _is(queue: JobQueue, job_id: str, wanted: JobState) -> bool:
    return await state(queue, job_id) is wanted


async def test_sigterm_releases_a_running_job_unrun(
    tmp_path: Path, processes: list[subprocess.Popen[bytes]]
) -> None:
    db = tmp_path / "jobs.db"
    manifest = tmp_path / "worker.yaml"
    manifest.write_text(
        "schema_version: 1\nadapters:\n  jobs:\n    port: job_queue\n    adapter: sqlite\n"
        f"    config: {{path: '{db}', poll_interval: 0.02}}\n"
    )
    log = tmp_path / "worker.log"
    queue = SQLiteJobQueue(db)
    try:
        slow = await queue.enqueue(NewJob("slow", {"dir": str(tmp_path), "seconds": 3600}))
        proc = start_worker(manifest, log, "--grace", "0.2")
        processes.append(proc)
        await until(lambda: f"{slow} 1" in lines(tmp_path / "started"), "started the job", log)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(BOUND) == 0
        job = await queue.get(slow)
        assert (job.state, job.attempts) == (JobState.AVAILABLE, 0), "not released unrun"
        assert "job released" in tail(log)
    finally:
        await queue.aclose()


async def test_eight_workers_in_two_processes_run_every_job_exactly_once(
    tmp_path: Path,
    processes: list[subprocess.Popen[bytes]],
    postgres_url: str,
    unique_name: str,
) -> None:
    table = f"{unique_name}_jobs"
    manifest = tmp_path / "worker.yaml"
    manifest.write_text(
        "schema_version: 1\nadapters:\n  jobs:\n    port: job_queue\n    adapter: postgres\n"
        f"    config: {{url: '{postgres_url}', table: {table}}}\n"
    )
    queue = PostgresJobQueue(postgres_url, table=table)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    try:
        await queue.start()
        for log in logs:
            processes.append(start_worker(manifest, log, "--concurrency", "4"))
        for log in logs:
            await until(lambda lg=log: "worker started" in lg.read_text(), "started", log)
        jobs = 400
        ids = await queue.enqueue_many(
            [NewJob("record", {"dir": str(tmp_path)}) for _ in range(jobs)]
        )

        async def all_done() -> bool:
            return (await queue.counts("default")).completed == jobs

        await until(all_done, "completed every job", logs[0])
        ran = lines(tmp_path / "ran")
        assert sorted(ran) == sorted(ids), (
            f"{len(ran)} runs of {jobs} jobs, {len(ran) - len(set(ran))} duplicates"
        )
        assert len(set(lines(tmp_path / "pids"))) == 2, "both processes took jobs"
        for proc in processes:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(BOUND) == 0
        assert {
            j.attempts for j in await queue.list_jobs("default", JobState.COMPLETED, limit=jobs)
        } == {1}
    finally:
        await queue.aclose()
        with psycopg.connect(postgres_url, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")
