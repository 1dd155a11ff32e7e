"""An event store that can be taken down: for outbox tests outside tests/boundary."""

from __future__ import annotations

from collections.abc import Sequence

from portfolio_core.adapters.memory.event_store import MemoryEventStore
from portfolio_core.ports import AppendResult, ExpectedVersion, NewEvent, StreamState
from portfolio_core.ports.errors import UnavailableError


class DownableEventStore(MemoryEventStore):
    """A memory event store whose appends raise UnavailableError while ``down``."""

    down = False

    async def append(
        self,
        stream: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = StreamState.ANY,
    ) -> AppendResult:
        if self.down:
            raise UnavailableError("event store is down")
        return await super().append(stream, events, expected_version)
