"""HTTP transport: one pooled aiohttp session (keep-alive) per remote adapter.

aiohttp was chosen by measurement over httpx (see docs/decisions/0016): on loopback with 64
concurrent callers its pool kept several times the throughput. Every transport failure is a
port error: a refused or cut connection is `UnavailableError` (retryable), a deadline
is `PortTimeoutError`; a problem response is re-raised as its own error class.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Mapping
from typing import Any

import aiohttp

from portfolio_core.ports.errors import PortError, PortTimeoutError, UnavailableError
from portfolio_core.wire import JSONL_MEDIA_TYPE, error_from_problem, loads

__all__ = ["HttpTransport", "transport_error"]


def transport_error(exc: BaseException, what: str, timeout: float | None) -> PortError:
    """The port error for an aiohttp (or socket) failure."""
    if isinstance(exc, TimeoutError):
        return PortTimeoutError(f"{what}: no answer within {timeout} s", timeout=timeout)
    return UnavailableError(f"{what}: {type(exc).__name__}: {exc}".rstrip(": "))


def problem_error(status: int, content_type: str, body: bytes) -> PortError:
    """The port error of a non-200 response."""
    problem: Any = None
    if body and "json" in content_type:
        try:
            problem = loads(body)
        except ValueError:
            problem = None
    if not isinstance(problem, Mapping):
        problem = {"status": status, "detail": f"HTTP {status}"}
    return error_from_problem(problem, status)


class HttpTransport:
    """Calls over HTTP/1.1 with a keep-alive pool."""

    def __init__(
        self,
        *,
        headers: Mapping[str, str],
        timeout: float,
        connect_timeout: float,
        pool_size: int,
        ssl_context: ssl.SSLContext | bool,
    ) -> None:
        self._headers = dict(headers)
        self.timeout = timeout
        self._connect_timeout = connect_timeout
        self._pool_size = pool_size
        self._ssl = ssl_context
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def session(self) -> aiohttp.ClientSession:
        """The pooled session of the running loop (created on first use)."""
        loop = asyncio.get_running_loop()
        session = self._session
        if session is None or session.closed or self._loop is not loop:
            connector = aiohttp.TCPConnector(
                limit=self._pool_size, ssl=self._ssl, keepalive_timeout=30
            )
            session = aiohttp.ClientSession(
                connector=connector,
                headers=self._headers,
                timeout=aiohttp.ClientTimeout(
                    total=self.timeout, sock_connect=self._connect_timeout
                ),
                skip_auto_headers=("User-Agent",),
                auto_decompress=False,
            )
            self._session, self._loop = session, loop
        return session

    async def post(
        self,
        url: str,
        body: bytes,
        headers: Mapping[str, str] | None,
        timeout: float | None = None,
    ) -> bytes:
        """POST ``body`` and return the 200 response's body; raises the port error.
        ``timeout`` replaces the transport's own for this request."""
        options: dict[str, Any] = {}
        if timeout is not None:
            options["timeout"] = aiohttp.ClientTimeout(
                total=timeout, sock_connect=self._connect_timeout
            )
        try:
            async with self.session().post(url, data=body, headers=headers, **options) as response:
                data = await response.read()
                if response.status == 200:
                    return data
                raise problem_error(response.status, response.content_type, data)
        except PortError:
            raise
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise transport_error(exc, f"POST {url}", timeout or self.timeout) from exc

    async def get(self, url: str) -> Any:
        """GET ``url`` and return its decoded JSON; raises the port error."""
        try:
            async with self.session().get(url) as response:
                data = await response.read()
                if response.status == 200:
                    return loads(data)
                raise problem_error(response.status, response.content_type, data)
        except PortError:
            raise
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise transport_error(exc, f"GET {url}", self.timeout) from exc

    async def lines(
        self, url: str, body: bytes, headers: Mapping[str, str] | None
    ) -> AsyncIterator[Any]:
        """POST ``body`` and yield the items of a JSON-lines answer; a connection that ends
        before the final ``{"end": true}`` line raises UnavailableError."""
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._connect_timeout, sock_read=self.timeout
        )
        try:
            async with self.session().post(
                url,
                data=body,
                headers={**(headers or {}), "accept": JSONL_MEDIA_TYPE},
                timeout=timeout,
            ) as response:
                if response.status != 200:
                    raise problem_error(
                        response.status, response.content_type, await response.read()
                    )
                async for line in response.content:
                    if not line.strip():
                        continue
                    frame = loads(line)
                    if "item" in frame:
                        yield frame["item"]
                    elif frame.get("end") is True:
                        return
                    elif "error" in frame:
                        raise error_from_problem(frame["error"])
                raise UnavailableError(f"POST {url}: the stream ended before its last line")
        except PortError:
            raise
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise transport_error(exc, f"POST {url}", self.timeout) from exc

    async def close(self) -> None:
        session, self._session = self._session, None
        if session is not None and not session.closed:
            await session.close()
