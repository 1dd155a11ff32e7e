"""A module that imports an optional package at import time, as most adapter modules do
(named in manifests as ``tests.support.needs_redis:Class``)."""

from __future__ import annotations

import redis  # noqa: F401  (the import is the point)

from tests.manifest.fakes import DictCache


class CacheImportingRedis(DictCache):
    pass
