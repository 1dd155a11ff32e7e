"""Run by test_redis.py in a separate process: hit a shared Redis limiter N times and print
how many calls were admitted."""

from __future__ import annotations

import asyncio
import sys

from portfolio_core.boundary.ratelimit import RateLimiter
from portfolio_core.ports import RateLimitedError


async def main(url: str, key: str, attempts: int, lease: int, strategy: str) -> None:
    limiter = RateLimiter(
        "20/minute", key=key, storage=url, is_async=True, lease=lease, strategy=strategy
    )
    admitted = 0
    for _ in range(attempts):
        try:
            await limiter.aacquire()
            admitted += 1
        except RateLimitedError:
            pass
    print(admitted)


if __name__ == "__main__":
    url, key, attempts, lease, strategy = sys.argv[1:6]
    asyncio.run(main(url, key, int(attempts), int(lease), strategy))
