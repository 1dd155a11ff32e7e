"""JsonlStream: the Stream contract suite, bad lines with line numbers, following a file."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from portfolio_core.adapters.file.stream import JsonlStream, JsonlStreamConfig
from portfolio_core.ports import (
    InvalidInputError,
    OnError,
    PortTimeoutError,
    StreamMessage,
    StreamOptions,
    UnsupportedError,
    tenant_scope,
)
from portfolio_core.testing.contracts.stream import StreamContract


class TestJsonlStreamContract(StreamContract):
    @pytest.fixture
    def make_adapter(self, tmp_path: Path) -> Callable[..., Any]:
        counter = itertools.count()

        def make(*, tenant_scoped: bool = False) -> JsonlStream:
            return JsonlStream(
                tmp_path / f"root{next(counter)}", tenant_scoped=tenant_scoped, poll_interval=0.005
            )

        return make


def read(adapter: JsonlStream, source: str, **kw: Any) -> list[Any]:
    async def go() -> list[Any]:
        return [m.payload async for m in adapter.stream(source, StreamOptions(follow=False, **kw))]

    return asyncio.run(go())


@pytest.fixture
def bad_file(tmp_path: Path) -> JsonlStream:
    (tmp_path / "in.jsonl").write_text('{"a": 1}\n\n{oops\n[2]\n"tail')
    return JsonlStream(tmp_path)


def test_reads_an_existing_jsonl_file(bad_file: JsonlStream) -> None:
    assert read(bad_file, "in.jsonl", on_error=OnError.SKIP) == [{"a": 1}, [2]]


def test_halt_names_the_line(bad_file: JsonlStream) -> None:
    with pytest.raises(InvalidInputError, match=r"in\.jsonl:3: not a valid JSON line"):
        read(bad_file, "in.jsonl")


def test_retry_then_halt(bad_file: JsonlStream) -> None:
    with pytest.raises(InvalidInputError, match=r"in\.jsonl:3"):
        read(bad_file, "in.jsonl", on_error=OnError.RETRY, max_retries=2)


def test_line_numbers_are_ids(bad_file: JsonlStream) -> None:
    async def go() -> list[StreamMessage]:
        opts = StreamOptions(follow=False, on_error=OnError.SKIP)
        return [m async for m in bad_file.stream("in.jsonl", opts)]

    assert [m.id for m in asyncio.run(go())] == ["1", "4"]


async def test_follow_waits_for_a_line_being_written(tmp_path: Path) -> None:
    path = tmp_path / "s.jsonl"
    path.write_text('{"partial": ')
    adapter = JsonlStream(tmp_path, poll_interval=0.005)
    reader = adapter.stream("s.jsonl", StreamOptions(timeout=5))
    pending = asyncio.ensure_future(anext(reader))
    await asyncio.sleep(0)
    with path.open("a") as f:
        f.write("true}\n")
    assert (await asyncio.wait_for(pending, 5)).payload == {"partial": True}
    await reader.aclose()  # type: ignore[attr-defined]
    short = adapter.stream("s.jsonl", StreamOptions(timeout=0.02))
    assert (await anext(short)).payload == {"partial": True}
    with pytest.raises(PortTimeoutError):
        await anext(short)
    await short.aclose()  # type: ignore[attr-defined]


async def test_appends_survive_a_new_adapter(tmp_path: Path) -> None:
    await JsonlStream(tmp_path).write_stream(
        "d/s.jsonl", [{"é": "ü"}, 2], StreamOptions(buffer_size=1)
    )
    assert (tmp_path / "d/s.jsonl").read_text(encoding="utf-8") == '{"é":"ü"}\n2\n'
    again = JsonlStream(tmp_path, fsync=True)
    await again.write_stream("d/s.jsonl", [3])
    assert [m.payload async for m in again.stream("d/s.jsonl", StreamOptions(follow=False))] == [
        {"é": "ü"},
        2,
        3,
    ]


@pytest.mark.parametrize(
    "name",
    ["/etc/passwd", "../x", "a/../../x", "a//b", "_tenants/x/s", ".", "./a", "a/.", "a\udc80"],
)
async def test_paths_outside_the_root_and_dot_names_are_refused(tmp_path: Path, name: str) -> None:
    adapter = JsonlStream(tmp_path)
    with pytest.raises(InvalidInputError):
        await adapter.write_stream(name, [1])
    with pytest.raises(InvalidInputError):
        await adapter.count(name)
    assert await adapter.sources() == []


async def test_tenant_folder_names_are_the_shared_injective_encoding(tmp_path: Path) -> None:
    adapter = JsonlStream(tmp_path, tenant_scoped=True)
    for tenant in ("acme-1", "Acme", "a.b", "\U000e0001", "\ue000" + "1"):
        with tenant_scope(tenant):
            await adapter.write_stream("s", [tenant])
    folders = sorted(p.name for p in (tmp_path / "_tenants").iterdir())
    assert folders == sorted(["acme-1", "%41cme", "a%2Eb", "%F3%A0%80%81", "%EE%80%801"]), (
        "ids that are plain lowercase keep their folder; the rest are escaped byte by byte"
    )
    assert JsonlStream.tenant_folder("Acme") == "%41cme"


async def test_tenant_directories(tmp_path: Path) -> None:
    adapter = JsonlStream(tmp_path, tenant_scoped=True)
    with tenant_scope("a/../b"):
        await adapter.write_stream("s", [1])
        assert await adapter.sources() == ["s"]
    with tenant_scope("b"):
        assert await adapter.sources() == []
        assert await adapter.count("s") == 0
    files = await asyncio.to_thread(lambda: [p for p in tmp_path.rglob("*") if p.is_file()])
    assert files
    assert all(p.is_relative_to(tmp_path / "_tenants") for p in files)


async def test_groups_unsupported(tmp_path: Path) -> None:
    adapter = JsonlStream(tmp_path)
    with pytest.raises(UnsupportedError):
        adapter.stream("s", StreamOptions(group="g"))


def test_config(tmp_path: Path) -> None:
    made = JsonlStream.from_config(JsonlStreamConfig(root=str(tmp_path), fsync=True))
    assert made.fsync
    assert str(tmp_path) in repr(made)
    with pytest.raises(InvalidInputError):
        JsonlStream(tmp_path, poll_interval=0)
