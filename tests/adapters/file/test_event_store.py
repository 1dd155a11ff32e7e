"""The file EventStore passes the EventStore contract suite, and recovers a torn tail."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from portfolio_core.adapters.file.event_store import FileEventStore
from portfolio_core.ports import NewEvent, UnavailableError
from portfolio_core.testing.contracts.event_store import EventStoreContract


class TestFileEventStore(EventStoreContract):
    @pytest.fixture
    def make_adapter(self, tmp_path: Path) -> Callable[[], FileEventStore]:
        counter = itertools.count()
        return lambda: FileEventStore(tmp_path / f"events-{next(counter)}.log", fsync="never")


async def _write(path: Path, batches: int) -> None:
    store = FileEventStore(path)
    await store.start()
    for b in range(batches):
        await store.append(f"s{b}", [NewEvent("E", {"b": b, "k": k}) for k in range(3)])
    await store.aclose()


@pytest.mark.parametrize("cut", [1, 5, 9, 40])
def test_torn_tail_is_truncated(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "e.log"
    asyncio.run(_write(path, 3))
    size = path.stat().st_size
    with path.open("r+b") as f:
        f.truncate(size - cut)

    async def reopen() -> None:
        store = FileEventStore(path)
        await store.start()
        assert store.recovered_bytes > 0
        events = await store.read_all()
        assert [e.data["b"] for e in events] == [0, 0, 0, 1, 1, 1], "a partial batch survived"
        await store.append("s9", [NewEvent("E")])
        await store.aclose()
        again = FileEventStore(path)
        await again.start()
        assert again.recovered_bytes == 0
        assert len(await again.read_all()) == 7
        await again.aclose()

    asyncio.run(reopen())


def test_corrupt_record_is_truncated(tmp_path: Path) -> None:
    path = tmp_path / "e.log"
    asyncio.run(_write(path, 3))
    data = bytearray(path.read_bytes())
    data[-3] ^= 0xFF  # flip a byte inside the last record's payload
    path.write_bytes(bytes(data))

    async def reopen() -> None:
        store = FileEventStore(path)
        await store.start()
        assert len(await store.read_all()) == 6
        await store.aclose()

    asyncio.run(reopen())


def test_second_opener_is_refused(tmp_path: Path) -> None:
    async def run() -> None:
        first = FileEventStore(tmp_path / "e.log")
        await first.start()
        second = FileEventStore(tmp_path / "e.log")
        with pytest.raises(UnavailableError):
            await second.start()
        await first.aclose()
        await second.start()
        await second.aclose()

    asyncio.run(run())


def test_not_an_event_log(tmp_path: Path) -> None:
    path = tmp_path / "e.log"
    path.write_bytes(b"hello world, not a log")

    async def run() -> None:
        with pytest.raises(UnavailableError):
            await FileEventStore(path).start()

    asyncio.run(run())
