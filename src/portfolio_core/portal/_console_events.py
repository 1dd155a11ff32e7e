"""The console's event-store tail: the latest events of a store, shown safely.

Stores are read through the adapter inside the boundary proxy, so the console's reads are
not counted as the application's calls and never move a breaker or spend a rate limit.
Every payload the console sends is

* **secret-free**: values under keys that name a secret (``password``, ``secret``,
  ``token``, ``api_key``, ``authorization``, ``credential``, ``private_key``, ``cookie``...)
  are replaced by ``'**********'`` at any depth, and every secret value the manifest
  resolved (and every fragment of one) is masked in the text;
* **size-capped**: a payload longer than ``max_payload_bytes`` (UTF-8) is cut there, and the
  event says how long it was;
* **text**: the page puts it in the document as text, never as markup.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from portfolio_core.ports.capabilities import capabilities_of
from portfolio_core.ports.event_store import EventQuery, EventStore, RecordedEvent

__all__ = ["MASK", "latest_events", "head_position", "render_event", "masked"]

MASK = "**********"
_SECRET_KEY = re.compile(
    r"pass(word|wd|phrase)?|secret|token|api[-_]?key|authori[sz]ation|credential|private[-_]?key"
    r"|cookie|session[-_]?id|signature",
    re.IGNORECASE,
)
MAX_SCANNED = 20_000
"""Events read at most to find the latest ones matching a filter."""
_MARGIN = 512


def masked(value: Any, depth: int = 0) -> Any:
    """``value`` with the values of secret-named keys replaced by `MASK`, at any
    depth (copies; the stored event is not changed)."""
    if depth > 200:
        return "…"
    if isinstance(value, Mapping):
        return {
            k: MASK if isinstance(k, str) and _SECRET_KEY.search(k) else masked(v, depth + 1)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [masked(v, depth + 1) for v in value]
    return value


def render_event(
    event: RecordedEvent, *, max_bytes: int, redact: Callable[[str], str]
) -> dict[str, Any]:
    """The JSON the console sends for ``event`` (see the module docstring)."""
    payload: dict[str, Any] = {"data": masked(event.data)}
    if event.metadata:
        payload["metadata"] = masked(event.metadata)
    text = json.dumps(payload, ensure_ascii=False, default=str, indent=1)
    size = len(text.encode())
    truncated = size > max_bytes
    if truncated:
        # redact a little more than what is shown, so a secret cut by the edge is masked too
        text = redact(text[: max_bytes + _MARGIN])
        text = text.encode()[:max_bytes].decode(errors="ignore")
    else:
        text = redact(text)
    return {
        "position": event.position,
        "stream": redact(event.stream),
        "type": redact(event.type),
        "version": event.version,
        "id": event.id,
        "recorded_at": event.recorded_at.timestamp(),
        "payload": text,
        "size": size,
        "truncated": truncated,
    }


async def head_position(store: EventStore) -> int:
    """The position of the newest event (0 for an empty store), in O(log n) reads of one
    event: positions may have gaps, but "some event at or after p" is monotonic in p."""
    first = await store.read_all(1, 1)
    if not first:
        return 0
    low = first[0].position  # an event is known here
    step = 1
    high: int | None = None
    while high is None:
        probe = low + step
        found = await store.read_all(probe, 1)
        if found:
            low = found[0].position
            step *= 2
        else:
            high = probe  # nothing at or after
    # the newest event is in [low, high)
    while high - low > 1:
        middle = (low + high) // 2
        found = await store.read_all(middle, 1)
        if found:
            low = found[0].position
        else:
            high = middle
    return low


async def latest_events(
    store: EventStore,
    *,
    limit: int,
    stream: str | None = None,
    type: str | None = None,
    head: int | None = None,
) -> tuple[list[RecordedEvent], int, bool]:
    """The ``limit`` newest events of ``store`` (of ``stream`` and ``type`` when given),
    oldest first; also the head position and whether the scan stopped at
    `MAX_SCANNED` events before the start of the store."""
    if head is None:
        head = await head_position(store)
    if head == 0:
        return [], 0, False
    query = "event_store.query" in capabilities_of(store) and (stream or type)
    found: list[RecordedEvent] = []
    end = head + 1
    window = max(limit, 64)
    scanned = 0
    while end > 1 and len(found) < limit:
        if scanned >= MAX_SCANNED:
            return found[-limit:], head, True
        start = max(1, end - window)
        if query:
            batch = await store.query(
                EventQuery(
                    types=frozenset({type}) if type else frozenset(),
                    streams=frozenset({stream}) if stream else frozenset(),
                    from_position=start,
                    limit=end - start,
                )
            )
            batch = [e for e in batch if e.position < end]
        else:
            batch = [
                e
                for e in await store.read_all(start, end - start)
                if e.position < end
                and (not stream or e.stream == stream)
                and (not type or e.type == type)
            ]
        scanned += end - start
        found = batch + found
        end = start
        window *= 4
    return found[-limit:], head, False
