"""The file EventStore passes the EventStore contract suite, cuts a torn tail and refuses
every other damage without changing the file."""

from __future__ import annotations

import asyncio
import gc
import itertools
import sqlite3
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from portfolio_core.adapters.file import event_store as event_store_module
from portfolio_core.adapters.file._log_index import LogIndex
from portfolio_core.adapters.file.event_store import FileEventStore
from portfolio_core.ports import CorruptDataError, EventQuery, NewEvent, UnavailableError
from portfolio_core.testing.contracts.event_store import EventStoreContract


class TestFileEventStore(EventStoreContract):
    @pytest.fixture
    def make_adapter(self, tmp_path: Path) -> Callable[..., FileEventStore]:
        counter = itertools.count()

        def make(
            tenant_scoped: bool = False, wall_clock: Callable[[], float] = time.time
        ) -> FileEventStore:
            return FileEventStore(
                tmp_path / f"events-{next(counter)}.log",
                fsync="never",
                tenant_scoped=tenant_scoped,
                wall_clock=wall_clock,
            )

        return make


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


# -- the on-disk index ------------------------------------------------------------------------


async def _fill(path: Path, batches: int, start: int = 0, size: int = 10) -> None:
    store = FileEventStore(path, fsync="never")
    await store.start()
    for b in range(start, start + batches):
        await store.append(f"s{b % 7}", [NewEvent("E", {"b": b, "k": k}) for k in range(size)])
    await store.aclose()


async def _contents(path: Path) -> list[tuple[str, int, int, int]]:
    store = FileEventStore(path)
    await store.start()
    try:
        return [(e.stream, e.version, e.position, e.data["b"]) for e in await store.read_all()]
    finally:
        await store.aclose()


def _retained_after_reading(path: Path) -> int:
    """Bytes of Python memory the open store keeps after every event was read through it."""

    async def run() -> int:
        store = FileEventStore(path)
        await store.start()
        start = 1
        while page := await store.read_all(start, 500):
            start = page[-1].position + 1
        await store.read("s1")
        await store.query(EventQuery(types=frozenset({"E"}), data={"b": 3, "k": 3}))
        del page
        gc.collect()
        retained = tracemalloc.get_traced_memory()[0]
        await store.aclose()
        return retained

    tracemalloc.start()
    try:
        return asyncio.run(run())
    finally:
        tracemalloc.stop()


def test_memory_does_not_grow_with_the_events_stored_and_read(tmp_path: Path) -> None:
    small, large = tmp_path / "small.log", tmp_path / "large.log"
    # both hold more than the decoded-record cache's budget, so both fill it
    asyncio.run(_fill(small, 40, size=100))  # 4,000 events
    asyncio.run(_fill(large, 120, size=100))  # 12,000 events
    grown = _retained_after_reading(large) - _retained_after_reading(small)
    # kept in memory, 8,000 more events would take about 4 MB of Python objects
    assert grown < 500_000, f"the store keeps {grown} more bytes for 8,000 more events"


def test_the_index_is_a_file_beside_the_log_and_reopening_reads_everything(
    tmp_path: Path,
) -> None:
    path = tmp_path / "e.log"
    asyncio.run(_fill(path, 30, size=3))
    store = FileEventStore(path)
    assert store.index_path == tmp_path / "e.log.index"
    assert store.index_path.is_file()
    contents = asyncio.run(_contents(path))
    assert [p for _, _, p, _ in contents] == list(range(1, 91))
    assert [b for _, _, _, b in contents] == [b for b in range(30) for _ in range(3)]


def _fresh_contents(path: Path, scratch: Path) -> list[tuple[str, int, int, int]]:
    """What ``path`` holds, read through an index built from nothing (a copy, elsewhere)."""
    scratch.mkdir()
    copy = scratch / path.name
    copy.write_bytes(path.read_bytes())
    return asyncio.run(_contents(copy))


@pytest.mark.parametrize(
    "damage", ["missing", "garbage", "damaged pages", "stale", "behind", "ahead"]
)
def test_an_index_that_does_not_describe_the_log_is_rebuilt_from_it(
    tmp_path: Path, damage: str
) -> None:
    path = tmp_path / "e.log"
    index = tmp_path / "e.log.index"
    asyncio.run(_fill(path, 5))
    if damage == "missing":
        index.unlink()
    elif damage == "garbage":
        index.write_bytes(b"not a database" * 100)
    elif damage == "damaged pages":  # a readable header, then pages SQLite cannot read
        data = bytearray(index.read_bytes())
        data[4096:] = bytes(range(256)) * ((len(data) - 4096) // 256 + 1)
        index.write_bytes(bytes(data[: len(index.read_bytes())]))
    elif damage == "stale":  # the log was replaced by another one (say, a salvaged copy)
        (tmp_path / "other").mkdir()
        other = tmp_path / "other" / "e.log"
        asyncio.run(_fill(other, 5, start=100))
        path.write_bytes(other.read_bytes())
    elif damage == "behind":  # the index lost its last transactions (e.g. in a power loss)
        saved = index.read_bytes()
        asyncio.run(_fill(path, 5, start=5))
        index.write_bytes(saved)
    elif damage == "ahead":  # the log lost a tail the index kept (fsync="never", power loss)
        saved = path.read_bytes()
        asyncio.run(_fill(path, 5, start=5))
        path.write_bytes(saved)
    expected = _fresh_contents(path, tmp_path / "fresh")
    assert len(expected) == (100 if damage == "behind" else 50)
    assert asyncio.run(_contents(path)) == expected

    async def append_after() -> None:  # the rebuilt index continues the log
        store = FileEventStore(path)
        await store.start()
        result = await store.append("s1", [NewEvent("E", {"b": -1})])
        assert result.positions == (len(expected) + 1,)
        assert result.version == 1 + sum(1 for s, *_ in expected if s == "s1")
        await store.aclose()

    asyncio.run(append_after())


def test_a_record_damaged_after_opening_is_refused_when_read(tmp_path: Path) -> None:
    path = tmp_path / "e.log"
    asyncio.run(_write(path, 3))
    second = _record_offsets(path)[1]

    async def run() -> None:
        store = FileEventStore(path)
        await store.start()
        _damage(path, second + 20)
        assert [e.data["b"] for e in await store.read("s0")] == [0, 0, 0]
        with pytest.raises(CorruptDataError) as caught:
            await store.read("s1")
        assert caught.value.offset == second
        assert f"byte offset {second}" in str(caught.value)
        with pytest.raises(CorruptDataError):
            await store.read_all()
        await store.aclose()

    asyncio.run(run())


def test_an_append_the_index_cannot_take_is_not_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "e.log"
    asyncio.run(_write(path, 2))
    size = path.stat().st_size

    def full(*args: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    async def run() -> None:
        store = FileEventStore(path)
        await store.start()
        monkeypatch.setattr(LogIndex, "add", full)
        with pytest.raises(UnavailableError, match="disk is full"):
            await store.append("s0", [NewEvent("E", {"b": 9})])
        monkeypatch.undo()
        assert path.stat().st_size == size, "the log kept an append that failed"
        assert len(await store.read_all()) == 6
        result = await store.append("s0", [NewEvent("E", {"b": 10})])
        assert (result.version, result.positions) == (4, (7,))
        await store.aclose()

    asyncio.run(run())
    assert [e[3] for e in asyncio.run(_contents(path))] == [0, 0, 0, 1, 1, 1, 10]


def test_a_failed_index_commit_is_caught_up_from_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "e.log"
    failures = [sqlite3.OperationalError("disk I/O error")]
    commit = LogIndex.commit

    def flaky(self: LogIndex) -> None:
        if failures:
            self.rollback()  # what SQLite does to a transaction whose commit fails
            raise failures.pop()
        commit(self)

    async def run() -> None:
        store = FileEventStore(path)
        await store.start()
        await store.append("a", [NewEvent("E", {"b": 1})])
        monkeypatch.setattr(LogIndex, "commit_due", flaky)
        result = await store.append("a", [NewEvent("E", {"b": 2})])
        assert not failures
        assert result.positions == (2,)
        assert [e.data["b"] for e in await store.read("a")] == [1, 2]
        await store.append("a", [NewEvent("E", {"b": 3})], expected_version=2)
        await store.aclose()

    asyncio.run(run())
    assert [e[3] for e in asyncio.run(_contents(path))] == [1, 2, 3]


def test_a_retried_append_is_recognised_after_reopening(tmp_path: Path) -> None:
    path = tmp_path / "e.log"
    batch = [NewEvent("E", {"b": k}) for k in range(3)]

    async def run() -> None:
        store = FileEventStore(path)
        await store.start()
        first = await store.append("a", batch)
        await store.aclose()
        again = FileEventStore(path)
        await again.start()
        assert await again.append("a", batch) == first
        assert len(await again.read_all()) == 3
        await again.aclose()

    asyncio.run(run())


def test_opening_decodes_only_the_records_the_index_does_not_cover(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "e.log"
    index = tmp_path / "e.log.index"
    asyncio.run(_fill(path, 40))
    saved = index.read_bytes()  # an index that lags by the next 3 records
    asyncio.run(_fill(path, 3, start=40))
    index.write_bytes(saved)
    decoded: list[int] = []
    decode = event_store_module._decode_record

    def counting(payload: bytes) -> Any:
        decoded.append(len(payload))
        return decode(payload)

    monkeypatch.setattr(event_store_module, "_decode_record", counting)
    assert [b for *_, b in asyncio.run(_contents(path))][-4:] == [42, 42, 42, 42]
    assert len(decoded) == 3, "opening decoded records the index already covered"
    decoded.clear()
    asyncio.run(_contents(path))
    assert decoded == []


def test_an_index_that_cannot_be_caught_up_closes_until_the_store_is_reopened(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "e.log"

    def broken(*args: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    async def run() -> None:
        store = FileEventStore(path)
        await store.start()
        await store.append("a", [NewEvent("E", {"b": 1})])
        with monkeypatch.context() as patch:
            patch.setattr(LogIndex, "add", broken)
            patch.setattr(LogIndex, "rollback", broken)
            with pytest.raises(UnavailableError, match="disk I/O error"):
                await store.append("a", [NewEvent("E", {"b": 2})])
        with pytest.raises(UnavailableError, match="reopen the store"):
            await store.read("a")
        with pytest.raises(UnavailableError, match="reopen the store"):
            await store.append("a", [NewEvent("E", {"b": 3})])
        await store.aclose()
        again = FileEventStore(path)
        await again.start()
        assert [e.data["b"] for e in await again.read("a")] == [1]
        await again.append("a", [NewEvent("E", {"b": 4})], expected_version=1)
        await again.aclose()

    asyncio.run(run())


def test_an_index_damaged_while_open_is_removed_and_rebuilt_on_reopening(tmp_path: Path) -> None:
    path = tmp_path / "e.log"
    index = tmp_path / "e.log.index"
    asyncio.run(_fill(path, 5))
    expected = _fresh_contents(path, tmp_path / "fresh")
    data = bytearray(index.read_bytes())
    page = 4096
    # keep the schema, meta and partitions pages (1-5): opening finds the index valid; damage
    # the pages of the events table and its indexes (6-), which the first read needs
    data[5 * page :] = bytes(range(256)) * ((len(data) - 5 * page) // 256)
    index.write_bytes(bytes(data))

    async def run() -> None:
        store = FileEventStore(path)
        await store.start()
        with pytest.raises(UnavailableError, match="damaged") as caught:
            await store.read_all()
        assert "reopening the store rebuilds it" in str(caught.value)
        assert not index.exists(), "the damaged index was kept"
        with pytest.raises(UnavailableError):
            await store.read("s1")
        await store.aclose()

    asyncio.run(run())
    assert asyncio.run(_contents(path)) == expected


# -- reading bodies from the log ----------------------------------------------------------------


def _counting_preads(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The sizes of the store's reads of the log from now on."""
    sizes: list[int] = []
    real = event_store_module.os.pread

    def pread(fd: int, n: int, offset: int) -> bytes:
        sizes.append(n)
        return real(fd, n, offset)

    monkeypatch.setattr(event_store_module.os, "pread", pread)
    return sizes


def test_adjacent_records_are_read_with_one_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "e.log"
    asyncio.run(_fill(path, 20, size=5))
    offsets = _record_offsets(path)

    async def run() -> None:
        store = FileEventStore(path)
        await store.start()
        sizes = _counting_preads(monkeypatch)
        page = await store.read_all(1, 100)
        assert [(e.position, e.data["b"], e.data["k"]) for e in page] == [
            (5 * b + k + 1, b, k) for b in range(20) for k in range(5)
        ]
        assert sizes == [path.stat().st_size - offsets[0]]
        await store.aclose()

    asyncio.run(run())


def test_a_read_spans_at_most_read_span_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "e.log"
    asyncio.run(_fill(path, 12, size=5))
    offsets = [*_record_offsets(path), path.stat().st_size]
    sizes_of = [b - a for a, b in itertools.pairwise(offsets)]
    # room for two records (the largest two), not three
    monkeypatch.setattr(event_store_module, "READ_SPAN_BYTES", 2 * max(sizes_of))
    assert 3 * min(sizes_of) > event_store_module.READ_SPAN_BYTES

    async def run() -> None:
        store = FileEventStore(path)
        await store.start()
        sizes = _counting_preads(monkeypatch)
        events = await store.read_all()
        assert [e.position for e in events] == list(range(1, 61))
        assert [e.data["b"] for e in events] == [b for b in range(12) for _ in range(5)]
        assert sizes == [sizes_of[i] + sizes_of[i + 1] for i in range(0, 12, 2)]
        await store.aclose()

    asyncio.run(run())


def test_a_damaged_record_within_a_read_is_named_by_its_own_offset(tmp_path: Path) -> None:
    path = tmp_path / "e.log"
    asyncio.run(_fill(path, 6, size=4))
    fourth = _record_offsets(path)[3]

    async def run() -> None:
        store = FileEventStore(path)
        await store.start()
        _damage(path, fourth + 30)
        with pytest.raises(CorruptDataError) as caught:
            await store.read_all()
        assert caught.value.offset == fourth
        assert f"byte offset {fourth}" in str(caught.value)
        # the records before it are intact and still read
        assert [e.position for e in await store.read_all(1, 12)] == list(range(1, 13))
        await store.aclose()

    asyncio.run(run())


def test_a_log_cut_short_after_opening_is_refused_when_read(tmp_path: Path) -> None:
    path = tmp_path / "e.log"
    asyncio.run(_fill(path, 4, size=4))
    last = _record_offsets(path)[-1]

    async def run() -> None:
        store = FileEventStore(path)
        await store.start()
        with path.open("r+b") as f:
            f.truncate(last + 20)
        with pytest.raises(CorruptDataError) as caught:
            await store.read_all()
        assert caught.value.offset == last
        await store.aclose()

    asyncio.run(run())


def test_changing_a_read_event_does_not_change_the_next_read(tmp_path: Path) -> None:
    path = tmp_path / "e.log"
    asyncio.run(_fill(path, 2, size=3))

    async def run() -> None:
        store = FileEventStore(path)
        await store.start()
        first = await store.read("s0")
        first[0].data["b"] = 99  # type: ignore[index]
        assert [e.data for e in await store.read("s0")] == [{"b": 0, "k": k} for k in range(3)]
        await store.aclose()

    asyncio.run(run())


def test_a_scan_does_not_push_small_reads_out_of_the_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "e.log"
    store = FileEventStore(path, fsync="never")

    async def run() -> None:
        await store.start()
        big = "x" * 2000
        for b in range(200):  # about 4 MB of records, far more than the cache holds
            await store.append(f"s{b}", [NewEvent("E", {"b": b, "pad": big}) for _ in range(10)])
        await store.aclose()
        await store.start()
        assert [e.data["b"] for e in await store.read("s3")] == [3] * 10
        sizes = _counting_preads(monkeypatch)
        assert [e.data["b"] for e in await store.read("s3")] == [3] * 10
        assert sizes == []  # the small read's record came from the cache
        assert len(await store.read_all()) == 2000
        assert len(sizes) > 1
        sizes.clear()
        assert [e.data["b"] for e in await store.read("s3")] == [3] * 10
        assert sizes == []  # still there after the scan
        await store.aclose()

    asyncio.run(run())
