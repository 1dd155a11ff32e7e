"""One rule stops an adapter: ``aclose()`` when it has one, else ``close()`` (awaited when
async), from async code and from sync code alike, inside a running loop too."""

from __future__ import annotations

import asyncio

import pytest

from portfolio_core.ports.lifecycle import close_adapter, close_adapter_blocking


class Calls:
    def __init__(self) -> None:
        self.calls: list[str] = []


class AsyncOnly(Calls):
    async def aclose(self) -> None:
        await asyncio.sleep(0)
        self.calls.append("aclose")


class SyncOnly(Calls):
    def close(self) -> None:
        self.calls.append("close")


class AsyncClose(Calls):
    async def close(self) -> None:
        await asyncio.sleep(0)
        self.calls.append("async close")


class Both(AsyncOnly):
    def close(self) -> None:
        self.calls.append("close")


class Failing(Calls):
    async def aclose(self) -> None:
        raise OSError("disk gone")


CASES = [(AsyncOnly, ["aclose"]), (SyncOnly, ["close"]), (AsyncClose, ["async close"])]
CASES += [(Both, ["aclose"]), (Calls, [])]
IDS = ["aclose", "sync-close", "async-close", "both-prefers-aclose", "neither"]


@pytest.mark.parametrize(("kind", "expected"), CASES, ids=IDS)
async def test_from_async_code(kind: type[Calls], expected: list[str]) -> None:
    adapter = kind()
    await close_adapter(adapter)
    assert adapter.calls == expected


@pytest.mark.parametrize(("kind", "expected"), CASES, ids=IDS)
def test_from_sync_code(kind: type[Calls], expected: list[str]) -> None:
    adapter = kind()
    close_adapter_blocking(adapter)
    assert adapter.calls == expected


@pytest.mark.parametrize(("kind", "expected"), CASES, ids=IDS)
async def test_from_sync_code_called_inside_a_running_loop(
    kind: type[Calls], expected: list[str]
) -> None:
    adapter = kind()
    close_adapter_blocking(adapter)  # a sync call from async code: no await possible here
    assert adapter.calls == expected


async def test_errors_propagate_on_every_path() -> None:
    with pytest.raises(OSError, match="disk gone"):
        await close_adapter(Failing())
    with pytest.raises(OSError, match="disk gone"):
        close_adapter_blocking(Failing())  # inside this test's running loop


def test_errors_propagate_without_a_loop() -> None:
    with pytest.raises(OSError, match="disk gone"):
        close_adapter_blocking(Failing())
