"""The file EventStore passes the EventStore contract suite, cuts a torn tail and refuses
every other damage without changing the file."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from portfolio_core.adapters.file.event_store import FileEventStore
from portfolio_core.ports import CorruptDataError, NewEvent, UnavailableError
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


def _damage(path: Path, offset: int) -> bytes:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))
    return bytes(data)


def _record_offsets(path: Path) -> list[int]:
    data = path.read_bytes()
    offsets, offset = [], 8
    while offset < len(data):
        offsets.append(offset)
        offset += 8 + int.from_bytes(data[offset : offset + 4], "little")
    return offsets


@pytest.mark.parametrize("where", ["first", "middle", "last"])
def test_a_damaged_record_refuses_to_open_and_changes_nothing(tmp_path: Path, where: str) -> None:
    path = tmp_path / "e.log"
    asyncio.run(_write(path, 3))
    offsets = _record_offsets(path)
    chosen = {"first": 0, "middle": 1, "last": 2}[where]
    damaged = _damage(path, offsets[chosen] + 20)  # inside the record's payload

    async def reopen() -> None:
        store = FileEventStore(path)
        with pytest.raises(CorruptDataError) as caught:
            await store.start()
        error = caught.value
        assert (error.offset, error.record) == (offsets[chosen], chosen + 1)
        assert f"record {chosen + 1} at byte offset {offsets[chosen]}" in str(error)
        assert "portfolio-core recover" in str(error)
        await store.aclose()

    asyncio.run(reopen())
    assert path.read_bytes() == damaged, "opening a damaged log changed it"


def test_a_damaged_length_field_is_not_mistaken_for_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "e.log"
    asyncio.run(_write(path, 3))
    last = _record_offsets(path)[-1]
    damaged = _damage(path, last + 2)  # the length now runs past the end of the file

    async def reopen() -> None:
        with pytest.raises(CorruptDataError):
            await FileEventStore(path).start()

    asyncio.run(reopen())
    assert path.read_bytes() == damaged


def test_a_zero_filled_tail_is_an_unwritten_tail(tmp_path: Path) -> None:
    path = tmp_path / "e.log"
    asyncio.run(_write(path, 2))
    with path.open("ab") as f:
        f.write(bytes(64))

    async def reopen() -> None:
        store = FileEventStore(path)
        await store.start()
        assert store.recovered_bytes == 64
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
