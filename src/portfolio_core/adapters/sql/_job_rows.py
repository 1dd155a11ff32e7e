"""What the SQLite and PostgreSQL job queues share: the columns and a row's Job."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from portfolio_core.adapters._shared.job_queue import PORT, decode_payload, queued_state
from portfolio_core.ports.errors import ConflictError, InvalidInputError
from portfolio_core.ports.job_queue import Job, JobState

__all__ = ["COLUMNS", "check_table", "holds_not", "state_filter", "to_job"]

COLUMNS = (
    "id, queue, task, payload, state, priority, attempts, max_attempts, run_at, enqueued_at, "
    "unique_key, last_error, lease_until, token"
)
_TABLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,50}$")


def check_table(name: str) -> str:
    if not _TABLE.match(name):
        raise InvalidInputError(
            "table must be a plain SQL identifier (letters, digits, underscore)", field="table"
        )
    return name


def to_job(row: Sequence[Any], now: float) -> Job:
    """A `Job` from a row of `COLUMNS`."""
    stored = row[4]
    state = queued_state(row[8], now) if stored == "queued" else JobState(stored)
    return Job(
        id=str(row[0]),
        task=row[2],
        payload=decode_payload(row[3]),
        queue=row[1],
        state=state,
        priority=row[5],
        attempts=row[6],
        max_attempts=row[7],
        run_at=row[8],
        enqueued_at=row[9],
        unique_key=row[10],
        last_error=row[11],
        lease_until=row[12],
    )


def state_filter(state: JobState) -> tuple[str, str]:
    """``(stored state, extra condition on run_at against a parameter)`` for a listed state."""
    if state is JobState.SCHEDULED:
        return "queued", "run_at > {now}"
    if state is JobState.AVAILABLE:
        return "queued", "run_at <= {now}"
    return state.value, ""


def holds_not(row_id: int, state: str) -> ConflictError:
    return ConflictError(
        f"job {row_id} is no longer held by this reservation ({state}: its lease was taken "
        "back, or it was already finished)",
        port=PORT,
    )
