"""Two processes sharing one event store through the portal.

    PORTAL_API_KEY=... portfolio-core serve examples/portal/server.yaml     # terminal 1
    PORTAL_API_KEY=... python examples/portal/share_events.py read 5       # terminal 2
    PORTAL_API_KEY=... python examples/portal/share_events.py write 5      # terminal 3

``read N`` subscribes (catch-up, then live) and prints each event until it has seen N;
``write N`` appends N events. Both wire ``client.yaml``: application code sees only the
``EventStore`` port.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from portfolio_core.ports import EventStore, NewEvent, RecordedEvent
from portfolio_core.registry import Registry

MANIFEST = Path(__file__).with_name("client.yaml")


async def write(count: int) -> None:
    async with Registry.from_manifest(MANIFEST) as registry:
        events = registry.get(EventStore)
        for i in range(count):
            result = await events.append("orders", [NewEvent("OrderPlaced", {"order": i})])
            print(f"appended order {i} at position {result.positions[0]}", flush=True)


async def read(count: int) -> None:
    async with Registry.from_manifest(MANIFEST) as registry:
        events = registry.get(EventStore)
        seen: list[RecordedEvent] = []
        done = asyncio.Event()

        async def handle(event: RecordedEvent) -> None:
            seen.append(event)
            print(f"read {event.type} {dict(event.data)} at position {event.position}", flush=True)
            if len(seen) >= count:
                done.set()

        subscription = await events.subscribe(handle, stream="orders")
        print("subscribed", flush=True)
        await asyncio.wait_for(done.wait(), 60)
        await events.unsubscribe(subscription)


if __name__ == "__main__":
    mode, n = sys.argv[1], int(sys.argv[2])
    asyncio.run(write(n) if mode == "write" else read(n))
