"""The safetensors CachePersistence: the kit's suite, plus torn files and wrong models."""
# ruff: noqa: E402  (imports after importorskip: skipped without the llm extra)

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from pathlib import Path

import pytest

np = pytest.importorskip("numpy")
pytest.importorskip("safetensors")

from portfolio_core.adapters.file.cache_persistence import SafetensorsCachePersistence
from portfolio_core.ports import CachePersistence, InvalidInputError, NotFoundError
from portfolio_core.testing.concurrency import run_in_threads
from portfolio_core.testing.contracts.cache_persistence import (
    SPEC,
    CachePersistenceContract,
    make_blocks,
    same_blocks,
)


class TestSafetensorsCachePersistence(CachePersistenceContract):
    @pytest.fixture
    def make_adapter(self, tmp_path: Path) -> Callable[[], SafetensorsCachePersistence]:
        counter = itertools.count()
        return lambda: SafetensorsCachePersistence(tmp_path / f"dir-{next(counter)}")


@pytest.fixture
def store(tmp_path: Path) -> SafetensorsCachePersistence:
    return SafetensorsCachePersistence(tmp_path / "caches")


def test_is_the_port(store: SafetensorsCachePersistence) -> None:
    assert isinstance(store, CachePersistence)


def test_file_is_plain_safetensors_with_the_spec_hash(store: SafetensorsCachePersistence) -> None:
    from safetensors import safe_open

    store.save("agent-1", make_blocks("agent-1", 1))
    with safe_open(str(store.path_of("agent-1")), framework="numpy") as fh:
        assert fh.metadata()["spec_hash"] == SPEC
        assert sorted(fh.keys()) == ["k.0", "k.1", "tokens", "v.0", "v.1"]


@pytest.mark.parametrize("keep", [0, 4, 8, 40, -1])
def test_torn_file_is_refused_not_half_loaded(
    store: SafetensorsCachePersistence, keep: int
) -> None:
    store.save("agent-1", make_blocks("agent-1", 1))
    path = store.path_of("agent-1")
    data = path.read_bytes()
    path.write_bytes(data[:keep] if keep >= 0 else data[:-3])
    with pytest.raises(InvalidInputError, match="not a complete cache file"):
        store.load("agent-1", SPEC)


def test_garbage_header_is_refused(store: SafetensorsCachePersistence) -> None:
    store.path_of("agent-1").write_bytes((12).to_bytes(8, "little") + b"{not json!!}")
    with pytest.raises(InvalidInputError):
        store.load("agent-1", SPEC)


def test_crash_before_rename_leaves_the_old_cache(
    store: SafetensorsCachePersistence, monkeypatch: pytest.MonkeyPatch
) -> None:
    old = make_blocks("agent-1", 1)
    store.save("agent-1", old)

    def crash(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(Exception, match="disk gone"):
        store.save("agent-1", make_blocks("agent-1", 2))
    monkeypatch.undo()
    assert same_blocks(store.load("agent-1", SPEC), old)
    assert [p.name for p in store.directory.iterdir()] == [store.path_of("agent-1").name]


def test_stray_temporary_file_is_ignored(store: SafetensorsCachePersistence) -> None:
    (store.directory / ".tmp-abc.part").write_bytes(b"half")
    store.save("b", make_blocks("b", 1))
    assert store.list_cached_agents() == ["b"]


def test_wrong_model_is_refused_and_kept(store: SafetensorsCachePersistence) -> None:
    store.save("agent-1", make_blocks("agent-1", 1, spec_hash="model-a"))
    with pytest.raises(InvalidInputError, match="model-a"):
        store.load("agent-1", "model-b")
    assert store.exists("agent-1"), "a refused cache must not be deleted"
    assert store.load("agent-1", "model-a").spec_hash == "model-a"


def test_a_file_renamed_to_another_agent_is_refused(store: SafetensorsCachePersistence) -> None:
    store.save("a", make_blocks("a", 1))
    store.path_of("a").rename(store.path_of("b"))
    with pytest.raises(InvalidInputError):
        store.load("b", SPEC)


def test_concurrent_saves_of_many_agents(store: SafetensorsCachePersistence) -> None:
    blocks = [make_blocks(f"agent-{i}", i, length=3 + i) for i in range(6)]
    results = run_in_threads(6, lambda i: store.save(f"agent-{i}", blocks[i]))
    assert not [r for r in results if isinstance(r, BaseException)]
    assert store.list_cached_agents() == [f"agent-{i}" for i in range(6)]
    for i in range(6):
        assert same_blocks(store.load(f"agent-{i}", SPEC), blocks[i])


@pytest.mark.parametrize("agent", ["with/slash", "../escape", "ünïcode id", "a" * 150])
def test_any_agent_id_round_trips(store: SafetensorsCachePersistence, agent: str) -> None:
    store.save(agent, make_blocks(agent, 1))
    assert store.list_cached_agents() == [agent]
    assert store.path_of(agent).parent == store.directory
    assert same_blocks(store.load(agent, SPEC), make_blocks(agent, 1))


@pytest.mark.parametrize("agent", ["", "a" * 151])
def test_bad_agent_ids_are_refused(store: SafetensorsCachePersistence, agent: str) -> None:
    with pytest.raises(InvalidInputError):
        store.save(agent, make_blocks(agent, 1))
    assert store.list_cached_agents() == []


def test_blocks_of_another_agent_are_refused(store: SafetensorsCachePersistence) -> None:
    with pytest.raises(InvalidInputError):
        store.save("a", make_blocks("b", 1))
    with pytest.raises(NotFoundError):
        store.load("a", SPEC)


def test_from_config(tmp_path: Path) -> None:
    config = SafetensorsCachePersistence.config_model.model_validate(
        {"directory": str(tmp_path / "x"), "fsync": False}
    )
    store = SafetensorsCachePersistence.from_config(config)  # type: ignore[arg-type]
    store.save("a", make_blocks("a", 1))
    assert store.list_cached_agents() == ["a"]


def test_a_flipped_tensor_byte_is_refused_and_the_file_kept(
    store: SafetensorsCachePersistence,
) -> None:
    store.save("agent-1", make_blocks("agent-1", 1))
    path = store.path_of("agent-1")
    data = bytearray(path.read_bytes())
    data[-5] ^= 0x10  # inside the last tensor's bytes, past the header
    path.write_bytes(bytes(data))
    with pytest.raises(InvalidInputError, match="checksum"):
        store.load("agent-1", SPEC)
    assert path.read_bytes() == bytes(data)


def test_ids_differing_only_in_case_get_files_differing_beyond_case(
    store: SafetensorsCachePersistence,
) -> None:
    for agent in ("agent", "AGENT", "Agent", "a.b", "a/b"):
        store.save(agent, make_blocks(agent, 1))
    names = [p.name.lower() for p in store.directory.iterdir()]
    assert len(set(names)) == 5
    assert store.list_cached_agents() == sorted(["agent", "AGENT", "Agent", "a.b", "a/b"])
    long_id = "é" * 70
    store.save(long_id, make_blocks(long_id, 1))
    assert long_id in store.list_cached_agents()
    assert same_blocks(store.load(long_id, SPEC), make_blocks(long_id, 1))


def test_files_named_by_the_earlier_encoding_are_still_read_then_replaced(
    store: SafetensorsCachePersistence,
) -> None:
    import base64

    store.save("Agent-7", make_blocks("Agent-7", 1))
    legacy = store.directory / (
        base64.urlsafe_b64encode(b"Agent-7").decode().rstrip("=") + ".safetensors"
    )
    store.path_of("Agent-7").rename(legacy)
    assert store.exists("Agent-7")
    assert store.list_cached_agents() == ["Agent-7"]
    assert same_blocks(store.load("Agent-7", SPEC), make_blocks("Agent-7", 1))
    store.save("Agent-7", make_blocks("Agent-7", 2))
    assert not legacy.exists()
    assert store.list_cached_agents() == ["Agent-7"]
    assert store.delete("Agent-7")
    assert not store.exists("Agent-7")


def test_a_directory_that_cannot_be_created_is_unavailable(tmp_path: Path) -> None:
    from portfolio_core.ports import UnavailableError

    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(UnavailableError, match="cannot create"):
        SafetensorsCachePersistence(blocker / "caches")


def test_blocks_whose_keys_and_values_differ_in_layers_are_refused(
    store: SafetensorsCachePersistence,
) -> None:
    from dataclasses import replace

    blocks = make_blocks("a", 1)
    with pytest.raises(InvalidInputError, match="keys and values differ in layers"):
        store.save("a", replace(blocks, values=blocks.values[:1]))
    assert store.list_cached_agents() == []


def test_an_agent_id_with_a_lone_surrogate_is_refused(store: SafetensorsCachePersistence) -> None:
    with pytest.raises(InvalidInputError):
        store.save("a\udc80", make_blocks("a\udc80", 1))
    assert store.list_cached_agents() == []
