"""Stream over JSON Lines files: a file is a source to read and a sink to append to.

Semantics beyond the port's contract:

* A source name is a relative path under the adapter's ``root`` (``"orders.jsonl"``,
  ``"2024/clicks.jsonl"``); absolute paths and ``.``, ``..`` or empty parts are refused with
  ``InvalidInputError``. Tenant scoped, it lives under ``root/_tenants/<tenant>/``, where
  ``<tenant>`` is the tenant id through the injective, case-safe name encoding every file
  adapter shares (``acme-1`` stays ``acme-1``; other characters, upper-case letters
  included, become ``%XX`` escapes of their UTF-8 bytes); unscoped names may not start with
  ``_tenants``. Do not share one root between scoped and unscoped adapters.
* Lines carry no checksum (they are plain JSON Lines, for other tools to read): a damaged
  line is reported like any invalid line (below) and never rewritten or removed.
* Each line is one JSON value, the payload; whitespace-only lines are ignored. A message's
  id is its line number (``"1"``, ``"2"``, ...). Every reader starts at line 1 (fan-out).
* A line that is not valid JSON is handled by ``on_error``: ``halt`` raises
  ``InvalidInputError`` naming ``<source>:<line>``, ``skip`` drops it, ``retry`` reads it
  again (``retry_delay`` apart, for a line another process is still writing) and then halts.
* With ``follow`` a reader at the end of the file polls for appended lines every
  ``poll_interval`` seconds (a last line without its newline counts as still being written);
  without ``follow`` it ends at the end of the file, a missing file being an empty source.
* Writes append whole lines in batches of ``buffer_size`` and never wait for readers (a file
  sink has no consumers to wait for); ``fsync=True`` syncs each batch to disk.
* No consumer groups: ``ack`` and reading with a group raise ``UnsupportedError``.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import AsyncIterable, AsyncIterator, Iterable
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, TypeVar

from pydantic import BaseModel, ConfigDict

from portfolio_core.adapters._shared import stream as shared
from portfolio_core.adapters._shared.codec import is_text
from portfolio_core.adapters._shared.configurable import Configurable
from portfolio_core.adapters._shared.names import file_name
from portfolio_core.ports.capabilities import declare, require
from portfolio_core.ports.errors import InvalidInputError, UnavailableError
from portfolio_core.ports.stream import OnError, StreamCapability, StreamMessage, StreamOptions

__all__ = ["JsonlStream", "JsonlStreamConfig"]

T = TypeVar("T")
U = TypeVar("U")

_TENANTS = "_tenants"


class JsonlStreamConfig(BaseModel):
    """Configuration of `JsonlStream`."""

    model_config = ConfigDict(extra="forbid")

    root: str
    tenant_scoped: bool = False
    fsync: bool = False
    poll_interval: float = 0.05


def _tenant_dir(tenant: str) -> str:
    return file_name(tenant, what="tenant")


def _read_lines(path: Path, offset: int, limit: int, final: bool) -> tuple[list[bytes], int]:
    """Up to ``limit`` complete lines from ``offset``; the last unterminated one only if final."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            lines: list[bytes] = []
            while len(lines) < limit:
                line = f.readline()
                if not line:
                    break
                if not line.endswith(b"\n") and not final:
                    break
                lines.append(line)
                offset += len(line)
            return lines, offset
    except FileNotFoundError:
        return [], offset


def _reread(path: Path, offset: int) -> bytes:
    with path.open("rb") as f:
        f.seek(offset)
        return f.readline()


class JsonlStream(shared.TransformingStream, Configurable):
    """Stream adapter reading and appending JSON Lines files under ``root``.

    Args:
        root: directory holding the files (created on first write).
        tenant_scoped: namespace every source by the current tenant (fail closed).
        fsync: sync each written batch to disk before returning.
        poll_interval: seconds between checks for new lines when following a file.
    """

    capabilities = declare(
        StreamCapability.PERSISTENT, StreamCapability.TENANT_SCOPED, StreamCapability.INSPECT
    )
    config_model: ClassVar[type[BaseModel]] = JsonlStreamConfig

    def __init__(
        self,
        root: str | os.PathLike[str],
        *,
        tenant_scoped: bool = False,
        fsync: bool = False,
        poll_interval: float = 0.05,
    ) -> None:
        if poll_interval <= 0:
            raise InvalidInputError("poll_interval must be positive", field="poll_interval")
        self.root = Path(root)
        self.tenant_scoped = tenant_scoped
        self.fsync = fsync
        self.poll_interval = poll_interval
        self._locks: dict[Path, asyncio.Lock] = {}

    def __repr__(self) -> str:
        return f"JsonlStream(root={str(self.root)!r}, tenant_scoped={self.tenant_scoped})"

    def close(self) -> None:
        """Nothing stays open between calls; idempotent."""

    @staticmethod
    def tenant_folder(tenant_id: str) -> str:
        """The name of ``tenant_id``'s folder under ``root/_tenants`` (the injective,
        case-safe name encoding every file adapter shares)."""
        return _tenant_dir(tenant_id)

    # -- internals ---------------------------------------------------------------------------

    def _base(self) -> Path:
        tenant = shared.scoped_tenant(self.tenant_scoped)
        if tenant is None:
            return self.root
        return self.root / _TENANTS / _tenant_dir(tenant)

    def _path(self, source: str, what: str = "source") -> Path:
        shared.check_source(source, what)
        rel = PurePosixPath(source)
        if rel.is_absolute() or any(part in ("..", ".", "") for part in source.split("/")):
            raise InvalidInputError(
                f"{what} must be a relative path without '.', '..' or empty parts: {source!r}",
                field=what,
                port="Stream",
            )
        if not is_text(source):
            raise InvalidInputError(
                f"{what} holds a lone surrogate, which is not Unicode text",
                field=what,
                port="Stream",
            )
        if not self.tenant_scoped and rel.parts[0] == _TENANTS:
            raise InvalidInputError(
                f"{what} may not start with {_TENANTS!r}", field=what, port="Stream"
            )
        return self._base() / rel

    # -- the port ----------------------------------------------------------------------------

    async def write_stream(
        self,
        sink: str,
        items: AsyncIterable[Any] | Iterable[Any],
        opts: StreamOptions | None = None,
    ) -> int:
        """Append one JSON line per item to ``sink``, in order, in ``buffer_size`` batches.

        Raises ``InvalidInputError`` for a payload that is not JSON-compatible (items before it
        are written, none after) and ``UnavailableError`` when the file cannot be written.
        """
        o = opts or shared.DEFAULT_OPTIONS
        path = self._path(sink, "sink")
        lock = self._locks.setdefault(path, asyncio.Lock())
        written = 0
        batch: list[bytes] = []
        async with lock:
            try:
                async for item in shared.iterate_items(items):
                    try:
                        payload = shared.copy_payload(item, index=written + len(batch))
                    except InvalidInputError:
                        await self._append(path, batch)
                        raise
                    line = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
                    batch.append(line.encode() + b"\n")
                    if len(batch) >= o.buffer_size:
                        await self._append(path, batch)
                        written += len(batch)
                        batch = []
                await self._append(path, batch)
                written += len(batch)
            except OSError as exc:
                raise UnavailableError(
                    f"cannot append to {sink!r}: {exc.strerror}", port="Stream"
                ) from exc
        return written

    async def _append(self, path: Path, lines: list[bytes]) -> None:
        if not lines:
            return
        data = b"".join(lines)

        def append() -> None:
            path.parent.mkdir(parents=True, exist_ok=True)
            with path.open("ab") as f:
                f.write(data)
                f.flush()
                if self.fsync:
                    os.fsync(f.fileno())

        await asyncio.to_thread(append)

    def stream(
        self, source: str, opts: StreamOptions | None = None
    ) -> AsyncIterator[StreamMessage]:
        """Iterate the lines of ``source`` from line 1; see the module docstring."""
        o = opts or shared.DEFAULT_OPTIONS
        if o.group is not None:
            require(self, StreamCapability.ACKNOWLEDGE, "reading in a consumer group")
        return self._read(source, self._path(source), o)

    async def _read(
        self, source: str, path: Path, o: StreamOptions
    ) -> AsyncIterator[StreamMessage]:
        loop = asyncio.get_running_loop()
        offset = 0
        lineno = 0
        while True:
            deadline = None if o.timeout is None else loop.time() + o.timeout
            while True:
                try:
                    lines, end = await asyncio.to_thread(
                        _read_lines, path, offset, o.buffer_size, not o.follow
                    )
                except OSError as exc:
                    raise UnavailableError(
                        f"cannot read {source!r}: {exc.strerror}", port="Stream"
                    ) from exc
                if lines:
                    break
                if not o.follow:
                    return
                shared.check_deadline(deadline, loop.time(), source, o, "line appended to")
                wait = self.poll_interval
                if deadline is not None:
                    wait = max(0.0, min(wait, deadline - loop.time()))
                await asyncio.sleep(wait)
            for line in lines:
                lineno += 1
                start = offset
                offset += len(line)
                if not line.strip():
                    continue
                payload, ok = await self._parse(source, path, start, lineno, line, o)
                if ok:
                    yield StreamMessage(str(lineno), payload, source)
            offset = end

    async def _parse(
        self, source: str, path: Path, start: int, lineno: int, line: bytes, o: StreamOptions
    ) -> tuple[Any, bool]:
        attempts = 1 + (o.max_retries if o.on_error is OnError.RETRY else 0)
        error: Exception | None = None
        for attempt in range(attempts):
            if attempt:
                if o.retry_delay:
                    await asyncio.sleep(o.retry_delay)
                line = await asyncio.to_thread(_reread, path, start)
            try:
                return json.loads(line), True
            except (ValueError, UnicodeDecodeError) as exc:
                error = exc
        if o.on_error is OnError.SKIP:
            return None, False
        raise InvalidInputError(
            f"{source}:{lineno}: not a valid JSON line ({error})", field="payload", port="Stream"
        ) from error

    async def ack(
        self, source: str, message: StreamMessage, opts: StreamOptions | None = None
    ) -> None:
        """Always raises ``UnsupportedError``: files have no consumer groups."""
        require(self, StreamCapability.ACKNOWLEDGE, "ack")

    # -- INSPECT --------------------------------------------------------------------------------

    async def sources(self) -> list[str]:
        """Relative paths of the files under the current namespace, sorted."""
        base = self._base()

        def walk() -> list[str]:
            if not base.is_dir():
                return []
            names = []
            for path in base.rglob("*"):
                rel = path.relative_to(base)
                if not self.tenant_scoped and rel.parts[0] == _TENANTS:
                    continue
                if path.is_file():
                    names.append(rel.as_posix())
            return sorted(names)

        return await asyncio.to_thread(walk)

    async def count(self, source: str) -> int:
        """Non-blank lines of ``source`` (0 when the file does not exist)."""
        path = self._path(source)

        def count_lines() -> int:
            try:
                with path.open("rb") as f:
                    return sum(1 for line in f if line.strip())
            except FileNotFoundError:
                return 0

        return await asyncio.to_thread(count_lines)
