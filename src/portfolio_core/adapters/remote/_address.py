"""Addresses of served entries: ``http(s)://host:port[/prefix]/<entry>`` and
``ws(s)://host:port[/prefix]/<entry>``.

The scheme chooses the transport: ``http``/``https`` send each call as an HTTP request (and
use the WebSocket only for subscriptions and credit-paced iterations); ``ws``/``wss`` send
everything over one pipelined WebSocket. ``local://<port>/<entry>`` names an entry of the same
manifest and is resolved by the manifest loader, never by this adapter.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

from portfolio_core.ports.errors import InvalidInputError

__all__ = ["REMOTE_SCHEMES", "Address", "parse_address"]

REMOTE_SCHEMES = ("http", "https", "ws", "wss")
_ENTRY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")


@dataclass(frozen=True, slots=True)
class Address:
    """A parsed remote address."""

    scheme: str
    base: str
    """``http(s)://host:port[/prefix]``: where the portal's HTTP routes live."""
    entry: str

    @property
    def secure(self) -> bool:
        return self.scheme in ("https", "wss")

    @property
    def websocket(self) -> bool:
        """Whether calls go over the WebSocket (a ``ws``/``wss`` address)."""
        return self.scheme in ("ws", "wss")

    @property
    def ws_base(self) -> str:
        return ("wss" if self.secure else "ws") + self.base[self.base.index(":") :]

    def __str__(self) -> str:
        prefix = self.base.split("://", 1)[1]
        return f"{self.scheme}://{prefix}/{self.entry}"


def parse_address(text: str) -> Address:
    """Parse a remote address; raises InvalidInputError (field ``address``) saying why not."""
    if not isinstance(text, str) or "://" not in text:
        raise InvalidInputError(
            f"{text!r} is not an address: write scheme://host:port/entry", field="address"
        )
    parts = urlsplit(text)
    scheme = parts.scheme.lower()
    if scheme not in REMOTE_SCHEMES:
        raise InvalidInputError(
            f"unknown scheme {parts.scheme!r} in {text!r}: a remote address starts with "
            + ", ".join(f"{s}://" for s in REMOTE_SCHEMES),
            field="address",
        )
    if parts.username or parts.password:
        raise InvalidInputError(
            "an address must not hold credentials: configure api_key (a secret) instead",
            field="address",
        )
    if not parts.hostname:
        raise InvalidInputError(f"{text!r} names no host", field="address")
    if parts.query or parts.fragment:
        raise InvalidInputError(f"{text!r} must not have a query or fragment", field="address")
    path = parts.path.rstrip("/")
    prefix, _, entry = path.rpartition("/")
    if not _ENTRY.match(entry):
        raise InvalidInputError(
            f"{text!r} must end with an entry name (/<entry>), not {entry!r}", field="address"
        )
    try:
        port = parts.port
    except ValueError:
        raise InvalidInputError(f"{text!r} has an invalid port", field="address") from None
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    http = "https" if scheme in ("https", "wss") else "http"
    netloc = host if port is None else f"{host}:{port}"
    return Address(scheme, f"{http}://{netloc}{quote(prefix)}", entry)
