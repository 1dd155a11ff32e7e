"""The manifest config of every remote adapter."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from portfolio_core.adapters.remote._address import parse_address
from portfolio_core.ports.errors import InvalidInputError

__all__ = ["RemoteConfig"]


class RemoteConfig(BaseModel):
    """How to reach a served entry.

    ``address`` is ``http(s)://host:port[/prefix]/<entry>`` or ``ws(s)://...`` (the scheme
    chooses the transport). ``api_key`` is sent as a bearer token: make it a secret
    (``${secret:env:NAME}``). ``timeout`` bounds each call (seconds; an iteration's or
    subscription's waits are bounded by heartbeats instead); ``heartbeat`` is the WebSocket
    ping interval after which an unanswered connection counts as lost. ``credit`` is how many
    items an iteration or subscription lets the server send ahead. ``capabilities``, when
    given, is the declaration used before ``start()`` has asked the server (the server's
    answer must include them).
    """

    model_config = ConfigDict(extra="forbid")

    address: str
    api_key: SecretStr | None = None
    timeout: float = Field(default=30.0, gt=0)
    connect_timeout: float = Field(default=5.0, gt=0)
    pool_size: int = Field(default=100, ge=1, le=10_000)
    heartbeat: float = Field(default=15.0, gt=0)
    credit: int = Field(default=64, ge=1, le=65536)
    reconnect_delay: float = Field(default=0.05, gt=0)
    reconnect_max_delay: float = Field(default=5.0, gt=0)
    ca_file: Path | None = None
    """CA bundle to verify the server's certificate with (default: the system's)."""
    verify_tls: bool = True
    capabilities: list[str] | None = None

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        try:
            parse_address(value)
        except InvalidInputError as exc:
            raise ValueError(str(exc)) from None
        return value
