"""Running a portal on uvicorn."""

from __future__ import annotations

from typing import Any

import uvicorn

from portfolio_core.portal._app import Portal
from portfolio_core.portal._config import PortalConfig
from portfolio_core.registry import Registry

__all__ = ["serve", "uvicorn_options"]


def uvicorn_options(config: PortalConfig, log_level: str = "info") -> dict[str, Any]:
    """The uvicorn settings a portal config implies (address, TLS, heartbeats, limits)."""
    options: dict[str, Any] = {
        "host": config.host,
        "port": config.port,
        "ws_ping_interval": config.websocket.ping_interval,
        "ws_ping_timeout": config.websocket.ping_timeout,
        "ws_max_size": config.websocket.max_message_bytes,
        "log_level": log_level,
        "server_header": False,
        "proxy_headers": False,
    }
    if config.tls is not None:
        options["ssl_certfile"] = str(config.tls.certfile)
        options["ssl_keyfile"] = str(config.tls.keyfile)
        if config.tls.keyfile_password is not None:
            options["ssl_keyfile_password"] = config.tls.keyfile_password.get_secret_value()
        if config.tls.ca_certs is not None:
            import ssl

            options["ssl_ca_certs"] = str(config.tls.ca_certs)
            options["ssl_cert_reqs"] = ssl.CERT_REQUIRED
    return options


def serve(
    registry: Registry, config: PortalConfig | None = None, *, log_level: str = "info"
) -> None:
    """Serve ``registry`` until interrupted (uvicorn starts and, on shutdown, closes it)."""
    config = config or PortalConfig()
    app = Portal(registry, config).app(manage_registry=True)
    uvicorn.run(app, **uvicorn_options(config, log_level))
