"""Test-local adapters named in manifests as ``tests.manifest.fakes:Class``."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Self

from pydantic import BaseModel, ConfigDict, SecretStr

from portfolio_core.ports import Cache, CacheCapability, declare

EVENTS: list[str] = []


class CacheConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    max_entries: int = 100
    namespace: str = "default"
    password: SecretStr | None = None


class DictCache:
    """A tiny Cache adapter following the adapter contract."""

    config_model: ClassVar[type[BaseModel]] = CacheConfig
    capabilities = declare(CacheCapability.BOUNDED)

    def __init__(self, config: CacheConfig, backing: Cache | None = None) -> None:
        self.config = config
        self.backing = backing
        self.items: dict[str, Any] = {}
        self.started = False
        self.closed = False

    @classmethod
    def from_config(cls, config: CacheConfig, *, backing: Cache | None = None) -> Self:
        return cls(config, backing)

    async def start(self) -> None:
        EVENTS.append(f"start {self.config.namespace}")
        self.started = True

    async def aclose(self) -> None:
        EVENTS.append(f"stop {self.config.namespace}")
        self.closed = True

    async def ping(self) -> None:
        return None

    async def get(self, key: str) -> Any | None:
        return self.items.get(key)

    async def put(self, key: str, value: Any, ttl: float | None = None) -> None:
        self.items[key] = value

    async def delete(self, key: str) -> bool:
        return self.items.pop(key, None) is not None

    async def clear(self) -> None:
        self.items.clear()

    async def exists(self, key: str) -> bool:
        return key in self.items

    async def get_many(self, keys: Sequence[str]) -> dict[str, Any]:
        return {k: self.items[k] for k in keys if k in self.items}

    async def put_many(self, items: Mapping[str, Any], ttl: float | None = None) -> None:
        self.items.update(items)


class TTLCache(DictCache):
    capabilities = declare(CacheCapability.BOUNDED, CacheCapability.TTL)


class RouterConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")


class MultiCache(DictCache):
    """Takes several caches by name (like a router takes its providers)."""

    @classmethod
    def from_config(  # type: ignore[override]
        cls, config: CacheConfig, *, members: Mapping[str, Cache]
    ) -> Self:
        instance = cls(config)
        instance.members = dict(members)  # type: ignore[attr-defined]
        return instance


class SyncGetCache(DictCache):
    def get(self, key: str) -> Any | None:  # type: ignore[override]
        return self.items.get(key)


class MissingClear:
    config_model: ClassVar[type[BaseModel]] = CacheConfig

    @classmethod
    def from_config(cls, config: CacheConfig) -> Self:
        return cls()

    async def get(self, key: str) -> Any | None:
        return None


class ExplodingCache(DictCache):
    @classmethod
    def from_config(cls, config: CacheConfig, *, backing: Cache | None = None) -> Self:
        secret = config.password.get_secret_value() if config.password else ""
        raise RuntimeError(f"cannot connect with password {secret}")


class PieceQuotingCache(DictCache):
    """Fails the way URL parsers do: quoting pieces of the password it could not parse."""

    @classmethod
    def from_config(cls, config: CacheConfig, *, backing: Cache | None = None) -> Self:
        secret = config.password.get_secret_value() if config.password else ""
        pieces = [p for p in re.split(r"[/#?@:]", secret) if p]
        raise ValueError(
            f"Port could not be cast to integer value as {pieces[2]!r}; "
            f"failed to resolve host '{pieces[1]}@...'; unexpected {pieces[-2]!r}"
        )


class FailingStart(DictCache):
    """Its start fails quoting the password, as a driver's connection error might."""

    async def start(self) -> None:
        secret = self.config.password.get_secret_value() if self.config.password else ""
        raise ConnectionError(f"cannot log in with {secret}")


class FailingStop(DictCache):
    async def aclose(self) -> None:
        EVENTS.append(f"stop {self.config.namespace}")
        raise RuntimeError("stop failed")


class NotAnAdapter:
    pass


class DownCache(DictCache):
    """Every read fails as unavailable (to exercise protection.fallback)."""

    async def get(self, key: str) -> Any | None:
        from portfolio_core.ports import UnavailableError

        raise UnavailableError("down")


class LaxConfig(BaseModel):
    max_entries: int = 1


class LaxCache(DictCache):
    """Its config model ignores unknown keys: the loader refuses it."""

    config_model: ClassVar[type[BaseModel]] = LaxConfig
