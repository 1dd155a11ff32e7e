"""Who is calling and what they may call: API keys, scopes and per-key rate limits.

Keys are compared in constant time: the presented secret's SHA-256 digest is compared with
``hmac.compare_digest`` against every configured key's digest, without stopping at a match,
so the time taken does not depend on which key (if any) matched. A request without a valid
key is refused with 401 before anything about entries is looked at; a valid key outside its
scopes gets 403 whether or not the entry exists, so scopes never reveal which entries exist.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field

from portfolio_core.boundary.ratelimit import RateLimiter
from portfolio_core.portal._config import AuthConfig, Scope
from portfolio_core.ports.errors import AccessDeniedError

__all__ = ["ANONYMOUS", "Principal", "Security"]


@dataclass(slots=True)
class Principal:
    """The caller a request was authenticated as."""

    name: str
    scopes: tuple[Scope, ...]
    limiter: RateLimiter | None = None
    _decisions: dict[tuple[str, str, bool], bool] = field(default_factory=dict)

    def allows(self, entry: str, method: str, read_only: bool) -> bool:
        key = (entry, method, read_only)
        decision = self._decisions.get(key)
        if decision is None:
            decision = any(s.allows(entry, method, read_only) for s in self.scopes)
            if len(self._decisions) < 4096:
                self._decisions[key] = decision
        return decision

    def sees(self, entry: str) -> bool:
        """Whether any scope names ``entry`` (it is listed to this caller)."""
        return any("*" in s.entries or entry in s.entries for s in self.scopes)


ANONYMOUS = Principal("anonymous", (Scope(),))


class Security:
    """Authentication and authorisation for one portal."""

    def __init__(self, auth: AuthConfig) -> None:
        self.enabled = bool(auth.keys)
        self._keys: list[tuple[bytes, Principal]] = []
        storage = auth.rate_limit_storage.get_secret_value()
        for key in auth.keys:
            digest = hashlib.sha256(key.secret.get_secret_value().encode()).digest()
            limiter = None
            if key.rate_limit is not None:
                limiter = RateLimiter(
                    key.rate_limit,
                    key=f"portfolio_core:portal:{key.name}",
                    storage=storage,
                    per_tenant=False,
                    is_async=True,
                )
            self._keys.append((digest, Principal(key.name, tuple(key.scopes), limiter)))

    def authenticate(self, authorization: bytes | None, api_key: bytes | None) -> Principal:
        """The principal of the presented credentials; raises AccessDeniedError (401)."""
        if not self.enabled:
            return ANONYMOUS
        secret: bytes | None = None
        if api_key:
            secret = api_key.strip()
        elif authorization:
            scheme, _, value = authorization.partition(b" ")
            if scheme.lower() == b"bearer" and value.strip():
                secret = value.strip()
        if not secret:
            raise AccessDeniedError("credentials required: send 'Authorization: Bearer <key>'")
        digest = hashlib.sha256(secret).digest()
        found: Principal | None = None
        for candidate, principal in self._keys:
            if hmac.compare_digest(candidate, digest):
                found = principal
        if found is None:
            raise AccessDeniedError("the credentials are not valid")
        return found

    @staticmethod
    def authorize(principal: Principal, entry: str, method: str, read_only: bool) -> None:
        """Raise AccessDeniedError (403) unless ``principal`` may call ``entry.method``."""
        if not principal.allows(entry, method, read_only):
            raise AccessDeniedError("these credentials may not make this call", authenticated=True)

    @staticmethod
    async def admit(principal: Principal) -> None:
        """Take one permit of the key's rate limit; raises RateLimitedError (429)."""
        if principal.limiter is not None:
            await principal.limiter.aacquire()
