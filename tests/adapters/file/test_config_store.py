"""The file ConfigStore: passes the contract suite, survives restarts, trims only a torn tail,
refuses damage elsewhere (leaving the file as it was) and is salvaged by ``recover``."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from portfolio_core.adapters.file.config_store import FileConfigStore
from portfolio_core.adapters.file.recovery import salvage_config_log
from portfolio_core.cli import main
from portfolio_core.ports import DELETE, CorruptDataError, UnavailableError
from portfolio_core.testing.contracts.config_store import ConfigStoreContract


class TestFileConfigStore(ConfigStoreContract):
    @pytest.fixture
    def make_adapter(self, tmp_path: Path) -> Callable[..., FileConfigStore]:
        counter = itertools.count()

        def make(
            schemas: dict[str, object] | None = None, wall_clock: Callable[[], float] = time.time
        ) -> FileConfigStore:
            return FileConfigStore(
                tmp_path / f"config-{next(counter)}.log", schemas=schemas, wall_clock=wall_clock
            )

        return make


async def _write(path: Path, versions: int) -> None:
    store = FileConfigStore(path)
    for n in range(1, versions + 1):
        await store.apply({f"k{n % 3}": n, "n": n}, author="ops", reason=f"v{n}")
    await store.aclose()


async def _values(path: Path) -> tuple[int, dict[str, object]]:
    store = FileConfigStore(path)
    try:
        snap = await store.read()
        return snap.version, dict(snap)
    finally:
        await store.aclose()


def _offsets(data: bytes) -> list[int]:
    offsets, offset = [], 8
    while offset < len(data):
        offsets.append(offset)
        offset += 8 + int.from_bytes(data[offset : offset + 4], "little")
    return offsets


def test_every_version_survives_a_restart(tmp_path: Path) -> None:
    path = tmp_path / "c.log"

    async def scenario() -> None:
        store = FileConfigStore(path)
        await store.apply({"a": 1, "b": {"x": [1]}}, author="ana", reason="init")
        await store.apply({"a": DELETE})
        await store.rollback(1)
        await store.aclose()
        again = FileConfigStore(path)
        try:
            assert await again.current_version() == 3
            assert dict(await again.read()) == {"a": 1, "b": {"x": [1]}}
            assert dict(await again.read(version=2)) == {"b": {"x": [1]}}
            history = await again.history()
            assert [(c.author, c.reason, c.rollback_of) for c in history] == [
                ("ana", "init", None),
                ("", "", None),
                ("", "", 1),
            ]
            assert await again.apply({"c": 1}, expected_version=3) == 4
        finally:
            await again.aclose()

    asyncio.run(scenario())


def test_a_second_process_is_refused_while_open(tmp_path: Path) -> None:
    async def scenario() -> None:
        first = FileConfigStore(tmp_path / "c.log")
        await first.start()
        try:
            with pytest.raises(UnavailableError, match="another process"):
                await FileConfigStore(tmp_path / "c.log").start()
        finally:
            await first.aclose()

    asyncio.run(scenario())


@pytest.mark.parametrize("cut", [1, 7, 9, 30])
def test_a_torn_tail_is_trimmed_and_the_rest_kept(tmp_path: Path, cut: int) -> None:
    path = tmp_path / "c.log"
    asyncio.run(_write(path, 4))
    whole = path.read_bytes()
    last = _offsets(whole)[-1]
    path.write_bytes(whole[: last + cut])  # the last write was interrupted after `cut` bytes

    async def reopen() -> tuple[int, int]:
        store = FileConfigStore(path)
        await store.start()
        try:
            return await store.current_version(), store.recovered_bytes
        finally:
            await store.aclose()

    assert asyncio.run(reopen()) == (3, cut)
    assert path.read_bytes() == whole[:last]


def test_damage_inside_the_log_is_refused_and_the_file_left_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    asyncio.run(_write(path, 4))
    data = bytearray(path.read_bytes())
    second = _offsets(bytes(data))[1]
    data[second + 12] ^= 0x20
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptDataError) as info:
        asyncio.run(_values(path))
    assert (info.value.offset, info.value.record) == (second, 2)
    assert "portfolio-core recover" in str(info.value)
    assert path.read_bytes() == bytes(data), "opening a damaged log changed it"


def test_a_damaged_last_record_that_is_complete_is_not_trimmed(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    asyncio.run(_write(path, 3))
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01  # a whole record whose bytes changed: not an interrupted write
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptDataError):
        asyncio.run(_values(path))
    assert path.read_bytes() == bytes(data)


def test_recover_salvages_every_verifiable_version(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "c.log"
    asyncio.run(_write(path, 5))
    data = bytearray(path.read_bytes())
    second = _offsets(bytes(data))[1]
    data[second + 12] ^= 0x20
    path.write_bytes(bytes(data))

    assert main(["recover", str(path)]) == 1
    out = capsys.readouterr().out
    assert f"at offset {second}" in out
    assert "4 config versions" in out
    assert "renumbered" in out
    assert path.read_bytes() == bytes(data), "recover changed the damaged log"
    version, values = asyncio.run(_values(tmp_path / "c.log.recovered"))
    assert version == 4
    assert values == {"k0": 3, "k1": 4, "k2": 5, "n": 5}, "version 2 (k2=2) is lost, the rest kept"
    with pytest.raises(Exception, match="exists"):
        salvage_config_log(path, tmp_path / "c.log.recovered")


def test_recover_of_an_intact_log_copies_it_whole(tmp_path: Path) -> None:
    path = tmp_path / "c.log"
    asyncio.run(_write(path, 3))
    report = salvage_config_log(path, tmp_path / "copy.log")
    assert (report.versions, report.lost, report.renumbered) == (3, [], False)
    assert asyncio.run(_values(tmp_path / "copy.log")) == asyncio.run(_values(path))
