"""Connection URLs that may hold a password: checked without ever quoting them.

A password holding ``/``, ``?``, ``#`` or ``@`` that is not percent-encoded makes a URL
parser split it in the wrong place, and its error then quotes a piece of the password as a
host or a port. `check_url` refuses such URLs up front with a message that shows none
of the URL; `display_url` is what reprs and messages may show of a URL.
"""

from __future__ import annotations

from urllib.parse import urlsplit, urlunsplit

from portfolio_core.ports.errors import InvalidInputError

__all__ = ["check_url", "display_url"]

_UNSAFE_IN_USERINFO = "/?#@"


def check_url(raw: object, *, what: str = "url", port: str | None = None) -> str:
    """``raw`` if it is a ``scheme://...`` URL whose user and password parse unambiguously;
    otherwise InvalidInputError that does not quote the URL."""
    if not isinstance(raw, str) or "://" not in raw:
        raise InvalidInputError(
            f"{what} must be a URL like scheme://host/... (not shown: it may hold a password)",
            field=what,
            port=port,
        )
    rest = raw.split("://", 1)[1]
    at = rest.rfind("@")
    if at >= 0 and not rest.startswith("/") and any(c in rest[:at] for c in _UNSAFE_IN_USERINFO):
        raise InvalidInputError(
            f"the user or password in {what} holds '/', '?', '#' or '@': percent-encode them "
            "(%2F, %3F, %23, %40). The URL is not shown because it holds a password",
            field=what,
            port=port,
        )
    try:
        parts = urlsplit(raw)
        _ = parts.port  # raises ValueError for a port that is not a number
    except ValueError:
        raise InvalidInputError(
            f"{what} is not a valid URL (not shown: it may hold a password)",
            field=what,
            port=port,
        ) from None
    return raw


def display_url(raw: str) -> str:
    """``raw`` without user, password, query or fragment (``<url>`` if it does not parse)."""
    try:
        parts = urlsplit(raw)
        host = parts.hostname or ""
        if parts.port is not None:
            host = f"{host}:{parts.port}"
        return urlunsplit((parts.scheme, host, parts.path, "", ""))
    except ValueError:
        return "<url>"
