"""What every Stream adapter does the same way: ``transform``, payload checks, timeouts,
the error policy and tenant namespacing of source names."""

from __future__ import annotations

import asyncio
import inspect
import math
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any, TypeVar, cast

from portfolio_core.ports.errors import InvalidInputError, PortTimeoutError
from portfolio_core.ports.stream import OnError, StreamOptions
from portfolio_core.ports.tenant import require_tenant

__all__ = [
    "DEFAULT_OPTIONS",
    "TransformingStream",
    "ack_group",
    "check_deadline",
    "check_source",
    "copy_payload",
    "iterate_items",
    "next_within",
    "scoped_tenant",
    "transform",
]

T = TypeVar("T")
U = TypeVar("U")

DEFAULT_OPTIONS = StreamOptions()

MAX_SOURCE_LENGTH = 512


def check_source(source: object, what: str = "source") -> str:
    """Validate a source/sink name: a non-empty string of at most 512 characters."""
    if not isinstance(source, str) or not source:
        raise InvalidInputError(f"{what} must be a non-empty string", field=what, port="Stream")
    if len(source) > MAX_SOURCE_LENGTH:
        raise InvalidInputError(
            f"{what} is longer than {MAX_SOURCE_LENGTH} characters", field=what, port="Stream"
        )
    if "\x00" in source:
        raise InvalidInputError(f"{what} must not contain NUL", field=what, port="Stream")
    return source


def scoped_tenant(tenant_scoped: bool) -> str | None:
    """The current tenant id when scoping is on (fail closed), else ``None``."""
    if not tenant_scoped:
        return None
    return require_tenant().tenant_id


def copy_payload(value: Any, *, index: int | None = None) -> Any:
    """Return a deep copy of a JSON-compatible ``value`` or raise ``InvalidInputError``.

    JSON-compatible: ``None``, bool, int, finite float, str, lists/tuples (copied as lists)
    and dicts with string keys of those.
    """
    where = "" if index is None else f" (item {index})"
    return _copy(value, where, 0)


def _copy(value: Any, where: str, depth: int) -> Any:
    if depth > 100:
        raise InvalidInputError(f"payload nested too deeply{where}", field="items", port="Stream")
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidInputError(
                f"payload float {value!r} is not JSON-compatible{where}",
                field="items",
                port="Stream",
            )
        return value
    if isinstance(value, list | tuple):
        return [_copy(v, where, depth + 1) for v in value]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise InvalidInputError(
                    f"payload dict key {k!r} is not a string{where}", field="items", port="Stream"
                )
            out[k] = _copy(v, where, depth + 1)
        return out
    raise InvalidInputError(
        f"payload of type {type(value).__name__} is not JSON-compatible{where}",
        field="items",
        port="Stream",
    )


async def iterate_items(items: AsyncIterable[Any] | Iterable[Any]) -> AsyncIterator[Any]:
    """Iterate a sync or async iterable of items."""
    if isinstance(items, AsyncIterable):
        async for item in items:
            yield item
    else:
        for item in items:
            yield item


async def next_within(iterator: AsyncIterator[T], timeout: float | None, what: str) -> T:
    """``anext(iterator)`` bounded by ``timeout`` (``StopAsyncIteration`` passes through)."""
    if timeout is None:
        return await anext(iterator)
    try:
        return await asyncio.wait_for(anext(iterator), timeout)
    except TimeoutError as exc:
        raise PortTimeoutError(
            f"no {what} within {timeout} s", timeout=timeout, port="Stream"
        ) from exc


async def _call(
    fn: Callable[[T], Awaitable[U]] | Callable[[T], U], item: T, timeout: float | None
) -> U:
    result = fn(item)
    if inspect.isawaitable(result):
        awaitable = cast(Awaitable[U], result)
        if timeout is None:
            return await awaitable
        try:
            return await asyncio.wait_for(awaitable, timeout)
        except TimeoutError as exc:
            raise PortTimeoutError(
                f"transform function did not finish within {timeout} s",
                timeout=timeout,
                port="Stream",
            ) from exc
    return result


async def transform(
    source: AsyncIterable[T],
    fn: Callable[[T], Awaitable[U]] | Callable[[T], U],
    opts: StreamOptions | None = None,
) -> AsyncIterator[U]:
    """Map ``fn`` over ``source`` in order honouring ``opts.on_error`` and ``opts.timeout``.

    ``halt`` re-raises the first failure of ``fn``; ``skip`` drops the item; ``retry`` calls
    ``fn`` again up to ``max_retries`` more times (``retry_delay`` apart), then re-raises the
    last failure. Failures of ``source`` itself are never swallowed.
    """
    o = opts or DEFAULT_OPTIONS
    iterator = aiter(source)
    try:
        while True:
            try:
                item = await next_within(iterator, o.timeout, "item from the transform source")
            except StopAsyncIteration:
                return
            attempts = 1 + (o.max_retries if o.on_error is OnError.RETRY else 0)
            for attempt in range(attempts):
                try:
                    value = await _call(fn, item, o.timeout)
                except Exception:
                    if o.on_error is OnError.SKIP:
                        break
                    if attempt + 1 >= attempts:
                        raise
                    if o.retry_delay:
                        await asyncio.sleep(o.retry_delay)
                    continue
                yield value
                break
    finally:
        close = getattr(iterator, "aclose", None)
        if close is not None:
            await close()


class TransformingStream:
    """Base of the Stream adapters: ``transform`` works the same on all of them."""

    def transform(
        self,
        source: AsyncIterable[T],
        fn: Callable[[T], Awaitable[U]] | Callable[[T], U],
        opts: StreamOptions | None = None,
    ) -> AsyncIterator[U]:
        """Map ``fn`` over ``source`` honouring ``opts.on_error`` and ``opts.timeout``."""
        return transform(source, fn, opts)


def ack_group(opts: StreamOptions | None) -> tuple[StreamOptions, str]:
    """The options of an ``ack`` and the consumer group it acknowledges for.

    Raises:
        InvalidInputError: ``opts`` names no group.
    """
    o = opts or DEFAULT_OPTIONS
    if o.group is None:
        raise InvalidInputError("ack needs opts.group", field="group", port="Stream")
    return o, o.group


def check_deadline(
    deadline: float | None, now: float, source: str, o: StreamOptions, what: str = "message from"
) -> None:
    """Return while ``deadline`` (a loop time; None: no deadline) lies after ``now``.

    Raises:
        PortTimeoutError: ``"no <what> <source> within <o.timeout> s"``: nothing came from
            ``source`` within the read's timeout.
    """
    if deadline is not None and now >= deadline:
        raise PortTimeoutError(
            f"no {what} {source!r} within {o.timeout} s", timeout=o.timeout, port="Stream"
        )
