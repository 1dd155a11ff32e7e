"""The portal: serve a wired registry's async ports over HTTP and WebSocket.

`build_app` (or `Portal`, whose ``routes()`` can be mounted in any Starlette
application) serves every entry of an async port; `serve` runs it on uvicorn;
``portfolio-core serve MANIFEST`` does both from a manifest's ``portal:`` section. Other
processes reach the served entries with the ``remote`` adapters. See docs/portal/.
Install with ``pip install portfolio-core[portal]``.
"""

from __future__ import annotations

from portfolio_core.portal._app import Portal, build_app
from portfolio_core.portal._config import (
    ApiKey,
    AuthConfig,
    ConsoleConfig,
    CorsConfig,
    LimitsConfig,
    OpenAIConfig,
    PortalConfig,
    ReloadConfig,
    Scope,
    TlsConfig,
    WebSocketConfig,
)

__all__ = [
    "ApiKey",
    "AuthConfig",
    "ConsoleConfig",
    "CorsConfig",
    "LimitsConfig",
    "OpenAIConfig",
    "Portal",
    "PortalConfig",
    "ReloadConfig",
    "Scope",
    "TlsConfig",
    "WebSocketConfig",
    "build_app",
]
