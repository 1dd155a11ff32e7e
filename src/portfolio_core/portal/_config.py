"""The ``portal:`` section of a manifest: what is served, to whom, and how.

Every model forbids unknown keys, so a misspelt option is a located manifest error rather than
a silently ignored one. Secrets (API keys, rate-limit storage URLs, TLS key passwords) are
``SecretStr``: they print as ``'**********'`` everywhere.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from portfolio_core.ports.values import MAX_VALUE_DEPTH

__all__ = [
    "ApiKey",
    "AuthConfig",
    "ConsoleConfig",
    "CorsConfig",
    "LimitsConfig",
    "OpenAIConfig",
    "PortalConfig",
    "ReloadConfig",
    "Scope",
    "TlsConfig",
    "WebSocketConfig",
]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Scope(_Model):
    """What a key may call: entry names (``"*"``: any), method names (``"*"``: any) and
    whether it may write (``access: write``) or only call read-only methods (``read``)."""

    entries: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    methods: list[str] = Field(default_factory=lambda: ["*"], min_length=1)
    access: Literal["read", "write"] = "write"

    def allows(self, entry: str, method: str, read_only: bool) -> bool:
        return (
            ("*" in self.entries or entry in self.entries)
            and ("*" in self.methods or method in self.methods)
            and (self.access == "write" or read_only)
        )


class ApiKey(_Model):
    """One credential: sent as ``Authorization: Bearer <secret>`` or ``X-API-Key: <secret>``.

    ``secret`` should come from a secrets backend (``${secret:env:NAME}``). ``rate_limit``
    (``limits`` notation, e.g. ``"100/second"``) bounds the calls made with this key, counted
    by the boundary's rate limiter in ``auth.rate_limit_storage``.
    """

    name: str = Field(min_length=1, max_length=100)
    secret: SecretStr
    scopes: list[Scope] = Field(default_factory=lambda: [Scope()])
    rate_limit: str | None = None

    @field_validator("secret")
    @classmethod
    def _long_enough(cls, value: SecretStr) -> SecretStr:
        if len(value.get_secret_value()) < 16:
            raise ValueError("an API key must be at least 16 characters long")
        return value

    @field_validator("rate_limit")
    @classmethod
    def _limit_parses(cls, value: str | None) -> str | None:
        if value is not None:
            from limits import parse

            try:
                parse(value)
            except ValueError:
                raise ValueError(
                    f"{value!r} is not a rate limit (write e.g. '100/second', '10 per minute')"
                ) from None
        return value


class AuthConfig(_Model):
    """Credentials. With no key configured every call is allowed (anonymous); the server then
    refuses to listen beyond the loopback interface unless ``allow_anonymous`` is true."""

    keys: list[ApiKey] = Field(default_factory=list)
    allow_anonymous: bool = False
    rate_limit_storage: SecretStr = SecretStr("memory://")

    @model_validator(mode="after")
    def _unique(self) -> AuthConfig:
        names = [k.name for k in self.keys]
        if len(set(names)) != len(names):
            raise ValueError("API key names must be unique")
        secrets = [k.secret.get_secret_value() for k in self.keys]
        if len(set(secrets)) != len(secrets):
            raise ValueError("two API keys have the same secret")
        return self


class LimitsConfig(_Model):
    """Bounds on what a request may carry (413 past ``max_body_bytes``, 400 past
    ``max_json_depth``). The default depth admits any value a port stores
    (``MAX_VALUE_DEPTH`` containers) inside the request's own envelope."""

    max_body_bytes: int = Field(default=1_048_576, ge=1024, le=1 << 30)
    max_json_depth: int = Field(default=MAX_VALUE_DEPTH + 8, ge=2, le=1000)


class CorsConfig(_Model):
    """Cross-origin access; off (no header sent) unless ``allow_origins`` lists origins."""

    allow_origins: list[str] = Field(default_factory=list)
    allow_methods: list[str] = Field(default_factory=lambda: ["GET", "POST"])
    allow_headers: list[str] = Field(
        default_factory=lambda: ["authorization", "content-type", "x-api-key"]
    )
    allow_credentials: bool = False
    max_age: int = Field(default=600, ge=0)


class TlsConfig(_Model):
    """HTTPS and WSS through uvicorn's certificate options."""

    certfile: Path
    keyfile: Path
    keyfile_password: SecretStr | None = None
    ca_certs: Path | None = None
    """Clients must present a certificate signed by these CAs (mutual TLS) when set."""


class WebSocketConfig(_Model):
    """The JSON-RPC WebSocket: heartbeats and credit."""

    ping_interval: float = Field(default=20.0, gt=0)
    ping_timeout: float = Field(default=20.0, gt=0)
    max_credit: int = Field(default=1024, ge=1, le=65536)
    """Most items a client may let the server send ahead on one iteration or subscription."""
    max_message_bytes: int = Field(default=16_777_216, ge=1024)


class OpenAIConfig(_Model):
    """``/v1/chat/completions``: which LLM entries answer which model names."""

    enabled: bool = True
    models: dict[str, str] = Field(default_factory=dict)
    """Model name -> LLM entry. Empty: every served LLM entry, under its entry name."""


class ConsoleConfig(_Model):
    """The operator console at ``/console`` (see docs/portal/console.md).

    It costs nothing while nobody watches: its sampler runs only while a page is open.
    """

    enabled: bool = True
    interval: float = Field(default=1.0, ge=0.02, le=60.0)
    """Seconds between two live updates of an open page."""
    health_interval: float = Field(default=5.0, ge=0.1, le=3600.0)
    """Seconds between two health checks (pings) while a page is open; a breaker
    transition or a reload also triggers one at once."""
    history: int = Field(default=300, ge=10, le=3600)
    """Samples kept for the per-method charts (``history * interval`` seconds of them)."""
    tail: int = Field(default=50, ge=1, le=500)
    """Latest events kept and shown per event store."""
    timeline: int = Field(default=200, ge=10, le=1000)
    """Timeline events shown."""
    max_payload_bytes: int = Field(default=16_384, ge=256, le=1_048_576)
    """An event's payload longer than this is cut, with a note saying how much was cut."""
    session_hours: float = Field(default=8.0, gt=0, le=720.0)
    """How long a console login lasts (a signed cookie; rotating the key ends it)."""


class ReloadConfig(_Model):
    """Hot reload of the served manifest (``portfolio-core serve``; see
    docs/runtime/hot_reload.md). Only entries whose resolved configuration changed are
    rebuilt; a manifest that fails validation keeps the running wiring; calls in flight on a
    replaced adapter finish (up to ``drain_timeout`` seconds) before it is closed."""

    files: bool = True
    """Reload when the manifest (or a file it extends) changes on disk."""
    sighup: bool = True
    """Reload on SIGHUP."""
    admin: bool = True
    """Serve ``POST /admin/reload`` (credentials with a write scope on every entry)."""
    drain_timeout: float = Field(default=30.0, gt=0, le=3600.0)
    debounce: float = Field(default=0.1, ge=0.0, le=10.0)
    """Seconds file changes are gathered before one reload."""


class PortalConfig(_Model):
    """The ``portal:`` section. ``expose`` lists the served entries (default: every entry of an
    async port)."""

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    expose: list[str] | None = None
    auth: AuthConfig = Field(default_factory=lambda: AuthConfig())
    limits: LimitsConfig = Field(default_factory=lambda: LimitsConfig())
    cors: CorsConfig = Field(default_factory=lambda: CorsConfig())
    tls: TlsConfig | None = None
    websocket: WebSocketConfig = Field(default_factory=lambda: WebSocketConfig())
    openai: OpenAIConfig = Field(default_factory=lambda: OpenAIConfig())
    console: ConsoleConfig = Field(default_factory=lambda: ConsoleConfig())
    reload: ReloadConfig = Field(default_factory=lambda: ReloadConfig())
    metrics: bool = True
    openapi: bool = True

    @model_validator(mode="after")
    def _anonymous_only_on_loopback(self) -> PortalConfig:
        if not self.auth.keys and not self.auth.allow_anonymous and not _loopback(self.host):
            raise ValueError(
                f"serving on {self.host!r} with no API key would let anyone call every entry: "
                "configure auth.keys, or set auth.allow_anonymous: true"
            )
        return self


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
