"""RedisStream against a real server: the Stream contract suite, redelivery across consumers,
bad entries under each on_error policy, and configuration."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis
from pydantic import SecretStr

from portfolio_core.adapters.redis.stream import RedisStream, RedisStreamConfig
from portfolio_core.ports import InvalidInputError, OnError, StreamOptions, UnavailableError
from portfolio_core.testing.contracts.stream import StreamContract, take


def _delete_namespace(url: str, namespace: str) -> None:
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{namespace}:*", count=500))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def namespaces(redis_url: str, unique_name: str) -> Iterator[Callable[[], str]]:
    """Fresh key namespaces for this test; every key under them is deleted afterwards."""
    made: list[str] = []

    def new() -> str:
        made.append(f"pctest:{unique_name}:{len(made)}")
        return made[-1]

    yield new
    for namespace in made:
        _delete_namespace(redis_url, namespace)


class TestRedisStreamContract(StreamContract):
    @pytest.fixture
    def make_adapter(self, redis_url: str, namespaces: Callable[[], str]) -> Callable[..., Any]:
        def make(*, tenant_scoped: bool = False) -> RedisStream:
            return RedisStream(
                redis_url, namespace=namespaces(), tenant_scoped=tenant_scoped, poll_interval=0.005
            )

        return make


@pytest.fixture
async def adapter(redis_url: str, namespaces: Callable[[], str]) -> Any:
    made = RedisStream(redis_url, namespace=namespaces(), poll_interval=0.005)
    await made.start()
    yield made
    await made.aclose()


async def test_consumer_dies_and_another_claims(adapter: RedisStream) -> None:
    await adapter.write_stream("jobs", ["a", "b"])
    opts = StreamOptions(group="workers", consumer="w1", follow=False, claim_after=0.05)
    dying = adapter.stream("jobs", opts)
    held = [await anext(dying), await anext(dying)]  # "dies": neither acked nor closed
    other = StreamOptions(group="workers", consumer="w2", follow=False, claim_after=0.05)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 5
    claimed: list[Any] = []
    while len(claimed) < 2 and loop.time() < deadline:  # claim_after is server time
        claimed += await take(adapter.stream("jobs", other), 2)
    assert [m.id for m in claimed] == [m.id for m in held]
    for m in claimed:
        await adapter.ack("jobs", m, other)
    assert await take(adapter.stream("jobs", other), 5) == []
    await dying.aclose()  # type: ignore[attr-defined]
    assert await take(adapter.stream("jobs", other), 5) == [], "acked entries stay acked"


async def _add_raw(adapter: RedisStream, source: str, fields: dict[str, str]) -> None:
    client: aioredis.Redis = adapter._redis()
    await client.xadd(adapter._key(source), fields)  # type: ignore[arg-type]


async def test_bad_entries_follow_on_error(adapter: RedisStream) -> None:
    await adapter.write_stream("s", [1])
    await _add_raw(adapter, "s", {"p": "{not json"})
    await _add_raw(adapter, "s", {"other": "1"})
    await adapter.write_stream("s", [2])
    with pytest.raises(InvalidInputError, match="not a JSON payload"):
        [m async for m in adapter.stream("s", StreamOptions(follow=False))]
    retry = StreamOptions(follow=False, on_error=OnError.RETRY, max_retries=2)
    with pytest.raises(InvalidInputError):
        [m async for m in adapter.stream("s", retry)]
    skip = StreamOptions(follow=False, on_error=OnError.SKIP)
    assert [m.payload async for m in adapter.stream("s", skip)] == [1, 2]
    group_skip = StreamOptions(group="g", follow=False, on_error=OnError.SKIP)
    got = [m async for m in adapter.stream("s", group_skip)]
    assert [m.payload for m in got] == [1, 2]
    for m in got:
        await adapter.ack("s", m, group_skip)
    assert await take(adapter.stream("s", group_skip), 5) == [], "skipped entries are acked"


async def test_ack_rejects_malformed_id(adapter: RedisStream) -> None:
    from portfolio_core.ports import StreamMessage

    with pytest.raises(InvalidInputError):
        await adapter.ack("s", StreamMessage("7", 1), StreamOptions(group="g"))


async def test_unreachable_server_is_unavailable() -> None:
    down = RedisStream("redis://127.0.0.1:1/0")
    with pytest.raises(UnavailableError):
        await down.ping()
    retry = StreamOptions(on_error=OnError.RETRY, max_retries=1, retry_delay=0.01)
    with pytest.raises(UnavailableError):
        await down.write_stream("s", [1], retry)
    await down.aclose()


async def test_config_hides_the_url(redis_url: str, namespaces: Callable[[], str]) -> None:
    config = RedisStreamConfig.model_validate(
        {"url": "redis://:hunter2@127.0.0.1:6379/0", "namespace": namespaces()}
    )
    made = RedisStream.from_config(config)
    assert "hunter2" not in repr(made)
    assert "hunter2" not in repr(config)
    with pytest.raises(InvalidInputError):
        RedisStream()
    with pytest.raises(ValueError, match="extra"):
        RedisStreamConfig.model_validate({"url": redis_url, "bogus": 1})
    await made.aclose()


async def test_the_url_may_be_given_as_a_secret(
    redis_url: str, namespaces: Callable[[], str]
) -> None:
    made = RedisStream(SecretStr(redis_url), namespace=namespaces())
    try:
        await made.ping()
    finally:
        await made.aclose()
    with pytest.raises(InvalidInputError):
        RedisStream(SecretStr("http://127.0.0.1:6379/0"))


async def test_existing_client_is_not_closed(redis_url: str, namespaces: Callable[[], str]) -> None:
    client = aioredis.Redis.from_url(redis_url)
    made = RedisStream(client=client, namespace=namespaces())
    await made.write_stream("s", [1])
    await made.aclose()
    assert await client.ping()
    await client.aclose()


async def test_closing_releases_every_pending_entry_in_batches(
    adapter: RedisStream, monkeypatch: pytest.MonkeyPatch
) -> None:
    from portfolio_core.adapters.redis import stream as module

    monkeypatch.setattr(module, "_RELEASE_BATCH", 2)
    await adapter.write_stream("s", range(5))
    held = await take(adapter.stream("s", StreamOptions(group="g", consumer="a", follow=False)), 5)
    assert len(held) == 5
    again = await take(adapter.stream("s", StreamOptions(group="g", consumer="b", follow=False)), 9)
    assert [m.payload for m in again] == [0, 1, 2, 3, 4]
