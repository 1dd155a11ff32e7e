"""The Redis client every Redis adapter opens: bounded waits, reconnection, no URL quoted.

* ``connect_timeout`` bounds opening a connection; ``call_timeout`` bounds every wait for a
  reply, so a server that accepts and stays silent fails the call with a timeout instead of
  hanging it. A timeout is not retried (the call's effect is unknown, and a retry would
  double the wait).
* A connection that the server closed or reset is dropped and the command is sent again on a
  fresh one (twice at most, a few milliseconds apart): after a restart the first call
  succeeds, while a server that is down fails the call within milliseconds.
"""

from __future__ import annotations

from typing import Any

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError

from portfolio_core.adapters._shared.urls import check_url
from portfolio_core.ports.errors import InvalidInputError

__all__ = ["DEFAULT_CALL_TIMEOUT", "DEFAULT_CONNECT_TIMEOUT", "client_options", "open_client"]

DEFAULT_CONNECT_TIMEOUT = 5.0
"""Seconds to open a connection, by default."""
DEFAULT_CALL_TIMEOUT = 30.0
"""Seconds to wait for one reply, by default."""


def client_options(connect_timeout: float, call_timeout: float) -> dict[str, Any]:
    """redis-py keyword arguments for these bounds and the reconnection policy."""
    return {
        "socket_connect_timeout": connect_timeout,
        "socket_timeout": call_timeout,
        "retry": Retry(
            ExponentialWithJitterBackoff(base=0.004, cap=0.05),
            2,
            supported_errors=(RedisConnectionError,),
        ),
    }


def open_client(
    url: str, *, connect_timeout: float, call_timeout: float, port: str
) -> aioredis.Redis:
    """A client (a lazy connection pool) for ``url``; InvalidInputError for a URL that is not
    a Redis URL, without quoting it."""
    check_url(url, port=port)
    try:
        return aioredis.Redis.from_url(url, **client_options(connect_timeout, call_timeout))
    except (ValueError, TypeError):
        raise InvalidInputError(
            "url is not a valid Redis URL (not shown: it may hold a password)",
            field="url",
            port=port,
        ) from None
