"""The portal and its remote adapter against a hand-written FastAPI endpoint with an httpx
client, redis-py, and a direct local call, in the same run, on loopback.

Servers run in their own processes (``portfolio-core serve`` for ours, uvicorn for the
FastAPI peer) so that client and server each have a core. Ours includes everything a
deployment pays for: the portal validates each request with the port's pydantic validator,
checks a bearer API key (constant-time) and its scope, counts the call in Prometheus
metrics, and the served entry and the client's remote entry are both wrapped by the
boundary (telemetry: metrics). The peer is the minimum a hand-written service does: a
FastAPI route reading a dict, and an ``httpx.AsyncClient``.

Goals (calls per second of a JSON cache ``get`` of a 60-byte value):
* remote ``Cache.get`` over HTTP, 1 caller: >= 2x FastAPI + httpx;
* the same with 64 concurrent callers: >= 5x;
* the same calls over our WebSocket transport (pipelined), 64 callers: >= 5x our HTTP;
* and within 2x of redis-py ``GET`` with 64 callers (ratio >= 0.5);
* report only: the time to first token that the portal adds to a streamed completion.

Rounds alternate ours and the peer; medians of the rounds are reported.
``PORTFOLIO_CORE_BENCH_SMOKE=1`` runs tiny rounds (peers included where installed).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

SMOKE = os.environ.get("PORTFOLIO_CORE_BENCH_SMOKE") == "1"
ROUND_SECONDS = 0.3 if SMOKE else 2.0
ROUNDS = 1 if SMOKE else 5
TTFT_SAMPLES = 5 if SMOKE else 200
KEY = "bench-key"
VALUE = {"user": "u-1234", "plan": "pro", "tags": ["a", "b"], "n": 42}  # 60 bytes of JSON
API_KEY = "bench-api-key-0123456789abcdef"
REDIS_URL = os.environ.get("PORTFOLIO_CORE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")


def emit(
    benchmark: str, ours: float, peer: float, unit: str, ratio: float, goal: str, met: bool
) -> None:
    print(
        json.dumps(
            {
                "benchmark": benchmark,
                "ours": round(ours, 4),
                "peer": round(peer, 4),
                "unit": unit,
                "ratio": round(ratio, 3),
                "goal": goal,
                "met": met,
            }
        ),
        flush=True,
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def process(
    args: list[str], port: int, cwd: Path, env: dict[str, str] | None = None
) -> Iterator[None]:
    proc = subprocess.Popen(
        args, cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"{args[:3]} did not start") from None
                time.sleep(0.05)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


SERVER_MANIFEST = """\
schema_version: 1
adapters:
  responses:
    port: cache
    adapter: memory
    telemetry: {{metrics: true}}
  model:
    port: llm
    adapter: scripted
    config:
      responses: ["{answer}"]
portal:
  port: {port}
  auth:
    keys:
      - name: bench
        secret: {key}
        scopes: [{{entries: ["*"], access: write}}]
"""

CLIENT_MANIFEST = """\
schema_version: 1
adapters:
  over_http:
    port: cache
    address: http://127.0.0.1:{port}/responses
    config: {{api_key: {key}}}
    telemetry: {{metrics: true}}
  over_ws:
    port: cache
    address: ws://127.0.0.1:{port}/responses
    config: {{api_key: {key}}}
    telemetry: {{metrics: true}}
  model:
    port: llm
    address: http://127.0.0.1:{port}/model
    config: {{api_key: {key}}}
"""

PEER_APP = """\
from fastapi import FastAPI, HTTPException

app = FastAPI()
store = {}


@app.get("/healthz")
async def healthz():
    return {"status": "alive"}


@app.put("/cache/{key}")
async def put(key: str, value: dict):
    store[key] = value
    return None


@app.get("/cache/{key}")
async def get(key: str):
    if key not in store:
        raise HTTPException(404)
    return store[key]
"""

ANSWER = "The quick brown fox jumps over the lazy dog, twice and again."


async def rate(call: Callable[[], Awaitable[Any]], callers: int, seconds: float) -> float:
    """Calls per second of ``callers`` concurrent loops of ``call`` for ``seconds``."""
    stop = time.perf_counter() + seconds
    counts = [0] * callers

    async def loop(i: int) -> None:
        n = 0
        while time.perf_counter() < stop:
            await call()
            n += 1
        counts[i] = n

    started = time.perf_counter()
    await asyncio.gather(*(loop(i) for i in range(callers)))
    return sum(counts) / (time.perf_counter() - started)


async def measure(work: Path) -> None:
    from portfolio_core.ports import LLM, Cache, Message
    from portfolio_core.registry import Registry

    ours_port, peer_port = free_port(), free_port()
    (work / "server.yaml").write_text(
        SERVER_MANIFEST.format(port=ours_port, key=API_KEY, answer=ANSWER)
    )
    (work / "client.yaml").write_text(CLIENT_MANIFEST.format(port=ours_port, key=API_KEY))
    (work / "peer_app.py").write_text(PEER_APP)
    serve = [
        sys.executable,
        "-m",
        "portfolio_core.cli",
        "serve",
        "server.yaml",
        "--log-level",
        "warning",
    ]
    peer = [
        sys.executable,
        "-m",
        "uvicorn",
        "peer_app:app",
        "--port",
        str(peer_port),
        "--log-level",
        "warning",
        "--no-access-log",
    ]
    with process(serve, ours_port, work), process(peer, peer_port, work):
        registry = Registry.from_manifest(work / "client.yaml")
        await registry.start()
        try:
            await run_goals(registry, peer_port, Cache, LLM, Message)
        finally:
            await registry.aclose()


async def run_goals(registry: Any, peer_port: int, Cache: Any, LLM: Any, Message: Any) -> None:
    import httpx

    over_http = registry.get(Cache, "over_http")
    over_ws = registry.get(Cache, "over_ws")
    await over_http.put(KEY, VALUE)
    assert await over_ws.get(KEY) == VALUE
    client = httpx.AsyncClient(
        base_url=f"http://127.0.0.1:{peer_port}",
        limits=httpx.Limits(max_connections=100, max_keepalive_connections=100),
    )
    await client.put(f"/cache/{KEY}", json=VALUE)

    async def ours_http() -> Any:
        return await over_http.get(KEY)

    async def ours_ws() -> Any:
        return await over_ws.get(KEY)

    async def peer_get() -> Any:
        response = await client.get(f"/cache/{KEY}")
        response.raise_for_status()
        return response.json()

    redis_get = await redis_peer()
    results: dict[str, list[float]] = {
        k: [] for k in ("http1", "peer1", "http64", "peer64", "ws64", "redis64")
    }
    for _ in range(ROUNDS):
        results["http1"].append(await rate(ours_http, 1, ROUND_SECONDS))
        results["peer1"].append(await rate(peer_get, 1, ROUND_SECONDS))
        results["http64"].append(await rate(ours_http, 64, ROUND_SECONDS))
        results["peer64"].append(await rate(peer_get, 64, ROUND_SECONDS))
        results["ws64"].append(await rate(ours_ws, 64, ROUND_SECONDS))
        if redis_get is not None:
            results["redis64"].append(await rate(redis_get, 64, ROUND_SECONDS))
    await client.aclose()
    med = {k: statistics.median(v) for k, v in results.items() if v}
    print(
        "calls/s (median of rounds): " + ", ".join(f"{k}={v:,.0f}" for k, v in med.items()),
        file=sys.stderr,
    )
    r1 = med["http1"] / med["peer1"]
    emit(
        "remote Cache.get over HTTP, 1 caller",
        med["http1"],
        med["peer1"],
        "calls/s",
        r1,
        ">= 2x FastAPI + httpx",
        r1 >= 2,
    )
    r64 = med["http64"] / med["peer64"]
    emit(
        "remote Cache.get over HTTP, 64 callers",
        med["http64"],
        med["peer64"],
        "calls/s",
        r64,
        ">= 5x FastAPI + httpx",
        r64 >= 5,
    )
    rws = med["ws64"] / med["http64"]
    emit(
        "remote Cache.get over WebSocket vs our HTTP, 64 callers",
        med["ws64"],
        med["http64"],
        "calls/s",
        rws,
        ">= 5x our HTTP",
        rws >= 5,
    )
    if "redis64" in med:
        rr = med["ws64"] / med["redis64"]
        emit(
            "remote Cache.get over WebSocket vs redis-py GET, 64 callers",
            med["ws64"],
            med["redis64"],
            "calls/s",
            rr,
            "within 2x of redis-py (ratio >= 0.5)",
            rr >= 0.5,
        )
    else:
        print("redis-py GET: no Redis server answered; that line is skipped", file=sys.stderr)
    await ttft(registry, LLM, Message)
    if not SMOKE:
        await client_choice(over_http.address.base)


async def client_choice(base: str) -> None:
    """Not a goal: the same portal endpoint driven by a bare httpx and a bare aiohttp client
    (the measurement behind the remote adapter's choice of aiohttp; docs/decisions/0016)."""
    import aiohttp
    import httpx

    url = f"{base}/v1/entries/responses/get"
    body = json.dumps({"key": KEY}).encode()
    headers = {"authorization": f"Bearer {API_KEY}", "content-type": "application/json"}
    hx = httpx.AsyncClient(limits=httpx.Limits(max_connections=100, max_keepalive_connections=100))
    ah = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=100))

    async def with_httpx() -> Any:
        return (await hx.post(url, content=body, headers=headers)).json()

    async def with_aiohttp() -> Any:
        async with ah.post(url, data=body, headers=headers) as response:
            return json.loads(await response.read())

    table: dict[str, list[float]] = {
        "httpx 1": [],
        "aiohttp 1": [],
        "httpx 64": [],
        "aiohttp 64": [],
    }
    for _ in range(3):
        for callers in (1, 64):
            table[f"httpx {callers}"].append(await rate(with_httpx, callers, ROUND_SECONDS))
            table[f"aiohttp {callers}"].append(await rate(with_aiohttp, callers, ROUND_SECONDS))
    await hx.aclose()
    await ah.close()
    print(
        "client choice against the portal, calls/s (median of 3): "
        + ", ".join(f"{k}={statistics.median(v):,.0f}" for k, v in table.items()),
        file=sys.stderr,
    )


async def redis_peer() -> Callable[[], Awaitable[Any]] | None:
    try:
        import redis.asyncio as aioredis
    except ImportError:
        return None
    client = aioredis.Redis.from_url(REDIS_URL, max_connections=100)
    key = f"bench-portal-{os.getpid()}"
    try:
        await client.set(key, json.dumps(VALUE), ex=600)
    except Exception:
        return None

    async def get() -> Any:
        return json.loads(await client.get(key))

    return get


async def ttft(registry: Any, LLM: Any, Message: Any) -> None:
    from portfolio_core.adapters.memory.simulated_llm import SimulatedLLM

    remote = registry.get(LLM, "model")
    local = SimulatedLLM([ANSWER])
    conversation = [Message("user", "Say something.")]

    async def first_token(llm: Any) -> float:
        started = time.perf_counter()
        stream = llm.stream(conversation)
        await anext(stream)
        elapsed = time.perf_counter() - started
        async for _ in stream:
            pass
        return elapsed

    remote_times, local_times = [], []
    for _ in range(TTFT_SAMPLES):
        remote_times.append(await first_token(remote))
        local_times.append(await first_token(local))
    added = (statistics.median(remote_times) - statistics.median(local_times)) * 1000
    emit(
        "time to first token added by the portal (report only)",
        statistics.median(remote_times) * 1000,
        statistics.median(local_times) * 1000,
        "ms",
        statistics.median(local_times) / statistics.median(remote_times),
        f"report only: {added:.2f} ms added",
        True,
    )


def main() -> None:
    try:
        import fastapi  # noqa: F401
        import httpx  # noqa: F401
    except ImportError as exc:
        print(f"bench_portal: the peer needs {exc.name} (pip install 'portfolio-core[bench]')")
        return
    with tempfile.TemporaryDirectory(prefix="bench-portal-") as tmp:
        asyncio.run(measure(Path(tmp)))


if __name__ == "__main__":
    main()
