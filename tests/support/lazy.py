"""An adapter that imports an optional package only when started, as real adapters do with
their drivers (named in manifests as ``tests.support.lazy:Class``)."""

from __future__ import annotations

from tests.manifest.fakes import DictCache


class CacheNeedingRedisAtStart(DictCache):
    async def start(self) -> None:
        import redis  # noqa: F401  (the import is the point)

        await super().start()
