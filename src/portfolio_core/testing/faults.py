"""Faults on demand, for tests: the network between an adapter and its server, and the
backend behind an adapter.

**Network faults**: a loopback TCP proxy that a test puts between an adapter and its server,
to cut, stall and restore the connection without touching the server.

* `FaultProxy` runs on the caller's event loop (``async with FaultProxy(url) as
  proxy``; ``await proxy.cut()``...). Use it when the code under test never blocks that loop.
* `BackgroundFaultProxy` runs the same proxy on its own event loop in a daemon thread,
  with plain methods (``with BackgroundFaultProxy(url) as proxy: proxy.cut()``). Use it from
  synchronous tests, and whenever the code under test may block the caller's loop (a
  synchronous driver): the proxy keeps forwarding regardless.

The proxy listens on ``127.0.0.1`` on an ephemeral port (`FaultProxy.port`) and
forwards every connection to the target. `FaultProxy.url` rewrites a server URL to go
through it, keeping user, password, path and query. States:

* **forwarding** (the start, and after `restore`): bytes flow both ways;
* **cut** (`cut`): every live connection is aborted (both ends see a reset)
  and every new one is reset as soon as it is accepted -- the server looks dead;
* **stalled** (`stall`): connections stay open and new ones are accepted,
  but no byte is forwarded in either direction -- the server looks hung. Bytes received
  meanwhile are held and delivered on `restore`.

`drop` aborts the live connections but keeps accepting (a blip). Nothing here
ever connects beyond the target given; the listener is loopback only.

**Backend faults**: what the conformance kit injects, as it injects a clock.

An adapter factory that accepts a ``faults`` parameter receives a `FaultInjector`. The
adapter calls it with the name of the operation (``faults("get")``) at the point where it
talks to its backend -- where a real driver would raise when the server is gone -- and lets
whatever it raises take the adapter's ordinary error path. Clauses then arm a fault and check
that the failure reaches the caller as the documented port error (a lost connection as
[UnavailableError][portfolio_core.ports.errors.UnavailableError], never a bare ``ConnectionError``),
that
nothing was half written, and that the adapter works again once the fault clears.

The contract for an adapter taking ``faults``:

* call it before every backend operation (reads and writes), in the task or thread that
  performs the operation, with a short operation name;
* never call it while holding a partial write: a fault raised there must leave the backend
  as it was before the call (as a real backend that is unreachable would).

Factories that do not accept ``faults`` simply do not get the fault clauses (they are
skipped with that reason).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import threading
from collections.abc import Collection, Coroutine
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "BackgroundFaultProxy",
    "FaultInjector",
    "FaultProxy",
    "InjectedFault",
    "ProxyState",
]

T = TypeVar("T")
_CHUNK = 65536
_DEFAULT_PORTS = {"postgresql": 5432, "postgres": 5432, "redis": 6379, "http": 80, "ws": 80}


class ProxyState(enum.Enum):
    """What the proxy does with bytes and connections."""

    FORWARDING = "forwarding"
    CUT = "cut"
    STALLED = "stalled"


def _target(target: str | tuple[str, int]) -> tuple[str, int]:
    if isinstance(target, tuple):
        return target
    if "://" not in target:
        host, _, number = target.rpartition(":")
        return host or "127.0.0.1", int(number)
    parts = urlsplit(target)
    port = parts.port or _DEFAULT_PORTS.get(parts.scheme.split("+")[0])
    if port is None:
        raise ValueError("the target URL must name a port")
    return parts.hostname or "127.0.0.1", port


class _Link:
    """One proxied connection: the client's end, the server's end and the two pumps."""

    def __init__(self, client: asyncio.StreamWriter) -> None:
        self.client = client
        self.server: asyncio.StreamWriter | None = None
        self.tasks: set[asyncio.Task[None]] = set()
        self._dead = False

    def dead(self) -> bool:
        return self._dead

    def abort(self) -> None:
        self._dead = True
        for writer in (self.client, self.server):
            if writer is not None:
                writer.transport.abort()
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()


class FaultProxy:
    """A loopback TCP proxy to ``target`` (``(host, port)``, ``"host:port"`` or a URL with a
    port) that the test cuts, stalls and restores; runs on the current event loop.

    Use as ``async with FaultProxy(target) as proxy`` or ``await proxy.start()`` ...
    ``await proxy.aclose()``. Every control method takes effect before it returns.
    """

    def __init__(self, target: str | tuple[str, int]) -> None:
        self.target = _target(target)
        self.port = 0
        """The port the proxy listens on (on 127.0.0.1), once started."""
        self.accepted = 0
        """How many connections the proxy has accepted, refused ones included."""
        self._state = ProxyState.FORWARDING
        self._server: asyncio.Server | None = None
        self._links: set[_Link] = set()
        self._flowing: asyncio.Event | None = None

    @property
    def state(self) -> ProxyState:
        return self._state

    @property
    def connections(self) -> int:
        """How many proxied connections are open now."""
        return len(self._links)

    def url(self, url: str) -> str:
        """``url`` with its host and port replaced by the proxy's (user, password, path,
        query and fragment kept)."""
        parts = urlsplit(url)
        userinfo, at, _ = parts.netloc.rpartition("@")
        return urlunsplit(parts._replace(netloc=f"{userinfo}{at}127.0.0.1:{self.port}"))

    async def start(self) -> Self:
        """Listen (on the same port again if it was started before); idempotent."""
        if self._server is None:
            self._flowing = self._flowing or asyncio.Event()
            if self._state is not ProxyState.STALLED:
                self._flowing.set()
            self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
            self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def aclose(self) -> None:
        """Abort every connection and stop listening; idempotent."""
        server, self._server = self._server, None
        await self._abort_all()
        if server is not None:
            server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), 2)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def cut(self) -> None:
        """Abort every live connection and reset new ones until `restore`."""
        self._state = ProxyState.CUT
        await self._abort_all()

    async def drop(self) -> None:
        """Abort every live connection; new connections are handled as before."""
        await self._abort_all()

    async def stall(self) -> None:
        """Forward nothing, keeping connections open and accepting new ones, until
        `restore`."""
        self._state = ProxyState.STALLED
        if self._flowing is not None:
            self._flowing.clear()

    async def restore(self) -> None:
        """Forward again: held bytes are delivered, new connections are served."""
        self._state = ProxyState.FORWARDING
        if self._flowing is not None:
            self._flowing.set()

    async def _abort_all(self) -> None:
        links, self._links = list(self._links), set()
        tasks = [t for link in links for t in link.tasks]
        for link in links:
            link.abort()
        for task in tasks:
            if task is not asyncio.current_task():
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # the server's callback task: cut() and close() cancel it, which ends it quietly
        with contextlib.suppress(asyncio.CancelledError):
            await self._serve(reader, writer)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self._state is ProxyState.CUT:
            writer.transport.abort()
            return
        link = _Link(writer)
        self._links.add(link)
        current = asyncio.current_task()
        if current is not None:
            link.tasks.add(current)
        try:
            assert self._flowing is not None
            await self._flowing.wait()  # a stalled proxy holds a new connection silently
            if link.dead():
                return
            try:
                up_reader, up_writer = await asyncio.open_connection(*self.target)
            except OSError:
                link.abort()
                return
            link.server = up_writer
            if link.dead():  # cut while connecting
                up_writer.transport.abort()
                return
            pumps = [
                asyncio.ensure_future(self._pump(link, reader, up_writer)),
                asyncio.ensure_future(self._pump(link, up_reader, writer)),
            ]
            link.tasks.update(pumps)
            await asyncio.gather(*pumps, return_exceptions=True)
        finally:
            if current is not None:
                link.tasks.discard(current)
            self._links.discard(link)
            for end in (link.client, link.server):
                if end is not None and not end.is_closing():
                    end.close()

    async def _pump(
        self, link: _Link, src: asyncio.StreamReader, dst: asyncio.StreamWriter
    ) -> None:
        assert self._flowing is not None
        try:
            while data := await src.read(_CHUNK):
                await self._flowing.wait()
                if link.dead():
                    return
                dst.write(data)
                await dst.drain()
            await self._flowing.wait()  # an orderly close is passed on only while forwarding
            if dst.can_write_eof():
                dst.write_eof()
        except (ConnectionError, OSError):
            link.abort()


class BackgroundFaultProxy:
    """`FaultProxy` on its own event loop in a daemon thread, with plain methods.

    ``with BackgroundFaultProxy(target) as proxy:`` starts it and closes it. Each method
    returns once the proxy applied it; calling them from a coroutine blocks that loop only for
    that moment.
    """

    def __init__(self, target: str | tuple[str, int]) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fault-proxy", daemon=True
        )
        self._thread.start()
        self.proxy = FaultProxy(target)
        """The proxy itself (its methods must run on its own loop)."""
        try:
            self._run(self.proxy.start())
        except BaseException:
            self._stop_loop()
            raise

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(30)

    @property
    def port(self) -> int:
        return self.proxy.port

    @property
    def state(self) -> ProxyState:
        return self.proxy.state

    @property
    def connections(self) -> int:
        return self.proxy.connections

    @property
    def accepted(self) -> int:
        return self.proxy.accepted

    def url(self, url: str) -> str:
        """See `FaultProxy.url`."""
        return self.proxy.url(url)

    def cut(self) -> None:
        """See `FaultProxy.cut`."""
        self._run(self.proxy.cut())

    def drop(self) -> None:
        """See `FaultProxy.drop`."""
        self._run(self.proxy.drop())

    def stall(self) -> None:
        """See `FaultProxy.stall`."""
        self._run(self.proxy.stall())

    def restore(self) -> None:
        """See `FaultProxy.restore`."""
        self._run(self.proxy.restore())

    def close(self) -> None:
        """Abort every connection, stop listening and stop the thread; idempotent."""
        if self._loop.is_closed():
            return
        with contextlib.suppress(Exception):
            self._run(self.proxy.aclose())
        self._stop_loop()

    def _stop_loop(self) -> None:
        async def cancel_rest() -> None:
            rest = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in rest:
                task.cancel()
            await asyncio.gather(*rest, return_exceptions=True)

        with contextlib.suppress(Exception):
            self._run(cancel_rest())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        if not self._thread.is_alive():
            self._loop.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class InjectedFault(ConnectionError):
    """What an armed `FaultInjector` raises by default: the backend is unreachable.

    A `ConnectionError` (so an `OSError`), like the ones drivers raise when a
    server goes away.
    """


_DEFAULT = InjectedFault("the default fault")


class FaultInjector:
    """Raises armed faults when the adapter reaches its backend.

    >>> faults = FaultInjector()
    >>> faults("get")                 # nothing armed: a no-op
    >>> faults.arm(times=1)
    >>> try:
    ...     faults("get")
    ... except InjectedFault:
    ...     print("unreachable")
    unreachable
    >>> faults("get")                 # the fault was used up
    """

    __slots__ = ("_error", "_only", "_remaining", "calls")

    def __init__(self) -> None:
        self._error: BaseException | None = None
        self._only: frozenset[str] | None = None
        self._remaining = 0
        #: every operation the adapter reported, in order (to check the adapter calls it)
        self.calls: list[str] = []

    def arm(
        self,
        error: BaseException | None = None,
        *,
        times: int | None = None,
        operations: Collection[str] | None = None,
    ) -> None:
        """Make the next backend operations fail with ``error`` (default
        `InjectedFault`), ``times`` times (``None``: until `clear`), only for
        ``operations`` when given."""
        self._error = error if error is not None else _DEFAULT
        self._remaining = -1 if times is None else times
        self._only = frozenset(operations) if operations is not None else None

    def clear(self) -> None:
        """The backend is healthy again."""
        self._error = None
        self._remaining = 0

    @property
    def armed(self) -> bool:
        return self._error is not None and self._remaining != 0

    def __call__(self, operation: str) -> None:
        self.calls.append(operation)
        if not self.armed or (self._only is not None and operation not in self._only):
            return
        if self._remaining > 0:
            self._remaining -= 1
        if self._error is _DEFAULT:
            raise InjectedFault(f"injected fault: the backend is unreachable during {operation}")
        raise self._error  # type: ignore[misc]  # armed, so not None
