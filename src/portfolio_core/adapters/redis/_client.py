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

from types import TracebackType
from typing import Any
from urllib.parse import parse_qs, urlsplit

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.backoff import ExponentialWithJitterBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from portfolio_core.adapters._shared.urls import check_url
from portfolio_core.ports.errors import InvalidInputError, UnavailableError

__all__ = [
    "DEFAULT_CALL_TIMEOUT",
    "DEFAULT_CONNECT_TIMEOUT",
    "Unavailable",
    "check_redis_url",
    "client_options",
    "open_client",
]

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


_SCHEMES = ("redis", "rediss", "unix")


def check_redis_url(raw: object, *, port: str) -> str:
    """``raw`` if it is a ``redis://``, ``rediss://`` or ``unix://`` URL whose database (the
    path, or ``?db=``) is a number; otherwise InvalidInputError, quoting no part of the URL
    but its scheme. (redis-py would silently use database 0 for ``/zero``.)"""
    url = check_url(raw, port=port)
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in _SCHEMES:
        raise InvalidInputError(
            f"url must be a redis://, rediss:// or unix:// URL, not {scheme[:20]}://...",
            field="url",
            port=port,
        )
    databases = parse_qs(parts.query).get("db", [])
    if scheme != "unix" and parts.path.strip("/"):
        databases.append(parts.path.strip("/"))
    if any(not db.isdigit() for db in databases):
        raise InvalidInputError(
            "the database in url must be a number, like redis://host:6379/0",
            field="url",
            port=port,
        )
    return url


def open_client(
    url: str, *, connect_timeout: float, call_timeout: float, port: str
) -> aioredis.Redis:
    """A client (a lazy connection pool) for ``url``; InvalidInputError for a URL that is not
    a Redis URL, without quoting it."""
    check_redis_url(url, port=port)
    try:
        return aioredis.Redis.from_url(url, **client_options(connect_timeout, call_timeout))
    except (ValueError, TypeError):
        raise InvalidInputError(
            "url is not a valid Redis URL (not shown: it may hold a password)",
            field="url",
            port=port,
        ) from None


class Unavailable:
    """``with Unavailable("redis get failed", port=...)``: a RedisError raised by the block
    becomes UnavailableError ``"<what>: <error type>"`` (retryable; the driver's message is
    not quoted, it may hold a key). Other errors pass through."""

    __slots__ = ("port", "what")

    def __init__(self, what: str, *, port: str | None) -> None:
        self.what = what
        self.port = port

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if isinstance(exc, RedisError):
            raise UnavailableError(f"{self.what}: {type(exc).__name__}", port=self.port) from exc
