"""``portfolio-core recover``: salvages what it can verify, never changes or deletes the damaged
file, and the salvaged data opens again."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from portfolio_core.adapters.file.cache import FileCache
from portfolio_core.adapters.file.event_store import FileEventStore
from portfolio_core.adapters.file.recovery import salvage_event_log
from portfolio_core.cli import main
from portfolio_core.ports import CorruptDataError, InvalidInputError, NewEvent, tenant_scope


async def _write(path: Path, batches: int, *, tenant_scoped: bool = False) -> None:
    store = FileEventStore(path, tenant_scoped=tenant_scoped)
    await store.start()
    for b in range(batches):
        await store.append(f"s{b % 2}", [NewEvent("E", {"b": b, "k": k}) for k in range(2)])
    await store.aclose()


def _offsets(data: bytes) -> list[int]:
    offsets, offset = [], 8
    while offset < len(data):
        offsets.append(offset)
        offset += 8 + int.from_bytes(data[offset : offset + 4], "little")
    return offsets


async def _events(path: Path) -> list[tuple[str, int, int, int]]:
    store = FileEventStore(path)
    await store.start()
    try:
        return [(e.stream, e.version, e.position, e.data["b"]) for e in await store.read_all()]
    finally:
        await store.aclose()


def test_recover_copies_every_verifiable_record_and_keeps_the_damaged_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "e.log"
    asyncio.run(_write(path, 5))
    data = bytearray(path.read_bytes())
    second = _offsets(bytes(data))[1]
    data[second + 30] ^= 0x55  # batch b=1 (stream s1) is damaged
    path.write_bytes(bytes(data))

    assert main(["recover", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"at offset {second}" in out
    assert "4 records (8 events)" in out
    assert path.read_bytes() == bytes(data), "recover changed the damaged log"

    salvaged = asyncio.run(_events(tmp_path / "e.log.recovered"))
    assert [b for *_, b in salvaged] == [0, 0, 2, 2, 3, 3, 4, 4]
    # renumbered gaplessly: positions 1..8, versions per stream from 1
    assert [p for _, _, p, _ in salvaged] == list(range(1, 9))
    assert [(s, v) for s, v, _, _ in salvaged] == [
        ("s0", 1),
        ("s0", 2),
        ("s0", 3),
        ("s0", 4),
        ("s1", 1),
        ("s1", 2),
        ("s0", 5),
        ("s0", 6),
    ]


def test_a_record_whose_length_alone_is_damaged_is_recovered_whole(tmp_path: Path) -> None:
    path = tmp_path / "e.log"
    asyncio.run(_write(path, 3))
    data = bytearray(path.read_bytes())
    data[_offsets(bytes(data))[1] + 1] ^= 0x01  # the length field of the middle record
    path.write_bytes(bytes(data))
    report = salvage_event_log(path, tmp_path / "out.log")
    assert report.lost == []
    assert report.events == 6
    assert not report.renumbered
    assert [b for *_, b in asyncio.run(_events(tmp_path / "out.log"))] == [0, 0, 1, 1, 2, 2]


def test_tenants_keep_their_own_positions(tmp_path: Path) -> None:
    path = tmp_path / "e.log"

    async def write() -> None:
        store = FileEventStore(path, tenant_scoped=True)
        for tenant in ("a", "b", "a"):
            with tenant_scope(tenant):
                await store.append("s", [NewEvent("E", {"t": tenant})])
        await store.aclose()

    asyncio.run(write())
    salvage_event_log(path, tmp_path / "out.log")

    async def read() -> dict[str, list[int]]:
        store = FileEventStore(tmp_path / "out.log", tenant_scoped=True)
        out = {}
        for tenant in ("a", "b"):
            with tenant_scope(tenant):
                out[tenant] = [e.position for e in await store.read_all()]
        await store.aclose()
        return out

    assert asyncio.run(read()) == {"a": [1, 2], "b": [1]}


def test_recover_refuses_to_overwrite_and_what_is_no_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "e.log"
    asyncio.run(_write(path, 1))
    (tmp_path / "taken").write_text("mine")
    assert main(["recover", str(path), "--output", str(tmp_path / "taken")]) == 2
    assert (tmp_path / "taken").read_text() == "mine"
    (tmp_path / "notes.txt").write_text("not an event log")
    assert main(["recover", str(tmp_path / "notes.txt")]) == 2
    assert "holds no event log record" in capsys.readouterr().err
    with pytest.raises(InvalidInputError):
        salvage_event_log(path, tmp_path / "taken")


def test_recover_of_an_intact_log_copies_it_all(tmp_path: Path) -> None:
    path = tmp_path / "e.log"
    asyncio.run(_write(path, 4))
    assert main(["recover", str(path)]) == 0
    assert asyncio.run(_events(tmp_path / "e.log.recovered")) == asyncio.run(_events(path))


def test_recover_moves_damaged_cache_entries_aside_and_the_cache_serves_the_rest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    async def fill() -> FileCache:
        cache = FileCache(tmp_path, namespace="ns")
        await cache.put_many({f"k{i}": {"i": i} for i in range(5)})
        return cache

    cache = asyncio.run(fill())
    entries = sorted(p for p in tmp_path.rglob("*.entry"))
    victim = entries[2]
    damaged = bytearray(victim.read_bytes())
    damaged[-2] ^= 0x08
    victim.write_bytes(bytes(damaged))
    with pytest.raises(CorruptDataError):
        asyncio.run(cache.keys())

    assert main(["recover", str(tmp_path)]) == 1
    assert "5 cache entries checked, 1 damaged" in capsys.readouterr().out
    moved = victim.parent / ".damaged" / victim.name
    assert moved.read_bytes() == bytes(damaged), "the damaged entry must be kept as it was"
    assert len(asyncio.run(cache.keys())) == 4
    assert main(["recover", str(tmp_path)]) == 0
