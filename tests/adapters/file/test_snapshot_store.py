"""The file snapshot store passes the SnapshotStore contract suite, keeps snapshots across
instances and replaces a damaged file rather than failing every later save."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path

import pytest

from portfolio_core.adapters.file.snapshot_store import FileSnapshotStore
from portfolio_core.ports.errors import CorruptDataError
from portfolio_core.ports.snapshot_store import Snapshot
from portfolio_core.testing.contracts.snapshot_store import SnapshotStoreContract


class TestFileSnapshotStore(SnapshotStoreContract):
    @pytest.fixture
    def make_adapter(self, tmp_path: Path) -> Callable[[], FileSnapshotStore]:
        counter = itertools.count()
        return lambda: FileSnapshotStore(tmp_path / f"snaps-{next(counter)}", fsync=False)


async def test_snapshots_survive_a_new_instance(tmp_path: Path) -> None:
    await FileSnapshotStore(tmp_path).save(Snapshot("order-1", 4, {"n": 4}))
    loaded = await FileSnapshotStore(tmp_path).load("order-1")
    assert loaded is not None
    assert (loaded.version, loaded.state) == (4, {"n": 4})


async def test_damaged_file_is_reported_then_replaced(tmp_path: Path) -> None:
    store = FileSnapshotStore(tmp_path)
    await store.save(Snapshot("s", 9, {"n": 9}))
    (file,) = tmp_path.glob("*.json")  # noqa: ASYNC240 - a test arranging a damaged file
    file.write_bytes(b'{"v": 9, "s": 1, "t"')
    with pytest.raises(CorruptDataError) as info:
        await store.load("s")
    assert info.value.location == str(file)
    assert await store.save(Snapshot("s", 2, {"n": 2})), "a damaged snapshot blocked saves"
    loaded = await store.load("s")
    assert loaded is not None
    assert loaded.version == 2
