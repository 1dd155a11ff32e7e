"""The one error hierarchy every port and adapter raises.

Application code catches these types, never an adapter's driver exceptions: an adapter
translates ``sqlite3.IntegrityError``, ``redis.ConnectionError`` and the like into the
matching :class:`PortError` subclass (keeping the original as ``__cause__``).

Each class states whether retrying the same call may succeed (``retryable``); the boundary's
retry policy reads that flag and nothing else.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "AccessDeniedError",
    "ConflictError",
    "CorruptDataError",
    "InvalidInputError",
    "LeaseLostError",
    "MaxIterationsExceededError",
    "NoHealthyProviderError",
    "NotFoundError",
    "PoolExhaustedError",
    "PortError",
    "PortTimeoutError",
    "QuotaExceededError",
    "RateLimitedError",
    "StaleVersionError",
    "TenantRequiredError",
    "UnavailableError",
    "UnsupportedError",
    "UpcastError",
    "WrongExpectedVersionError",
]


class PortError(Exception):
    """Base of every error a port raises.

    Attributes:
        retryable: whether the same call may succeed if repeated unchanged.
        port: name of the port that raised it, when known (e.g. ``"EventStore"``).
    """

    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, port: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.port = port

    def __str__(self) -> str:
        return self.message


class NotFoundError(PortError, LookupError):
    """The addressed item (stream, key, provider, agent, ...) does not exist."""

    def __init__(self, message: str, *, key: str | None = None, port: str | None = None) -> None:
        super().__init__(message, port=port)
        self.key = key


class ConflictError(PortError):
    """The call conflicts with the current state (a concurrent writer won, a duplicate name)."""


class WrongExpectedVersionError(ConflictError):
    """An append's ``expected_version`` did not match the stream; nothing was written.

    Attributes:
        stream: the stream appended to.
        expected: the expected version the caller passed (an int or a stream state name).
        actual: the stream's version when the append was refused (0 when it has no events).
    """

    def __init__(
        self, stream: str, expected: object, actual: int, *, port: str | None = "EventStore"
    ) -> None:
        super().__init__(
            f"wrong expected version for stream {stream!r}: expected {expected}, actual {actual}",
            port=port,
        )
        self.stream = stream
        self.expected = expected
        self.actual = actual


class StaleVersionError(ConflictError):
    """A versioned write's ``expected_version`` is not the current version (another writer
    got there first); nothing was written.

    Attributes:
        expected: the version the caller expected to be current.
        actual: the current version when the write was refused.
    """

    def __init__(self, expected: int, actual: int, *, port: str | None = "ConfigStore") -> None:
        super().__init__(
            f"stale expected version: expected {expected}, the current version is {actual}",
            port=port,
        )
        self.expected = expected
        self.actual = actual


class UnavailableError(PortError):
    """The backing service cannot serve the call right now (down, circuit open, draining)."""

    retryable: ClassVar[bool] = True

    def __init__(
        self, message: str, *, retry_after: float | None = None, port: str | None = None
    ) -> None:
        super().__init__(message, port=port)
        self.retry_after = retry_after


class RateLimitedError(UnavailableError):
    """A rate limit refused the call. ``retry_after`` is seconds until a retry can succeed."""


class NoHealthyProviderError(UnavailableError):
    """A router found no provider it may use; ``retry_after`` is when the first cools down."""


class QuotaExceededError(PortError):
    """A tenant's quota for a resource is spent. Not retryable until the window resets.

    Attributes:
        tenant: the tenant whose quota is spent.
        resource: the resource name (``"tokens"``, ``"requests"``, ...).
        retry_after: seconds until the quota window resets, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        tenant: str,
        resource: str,
        retry_after: float | None = None,
        port: str | None = None,
    ) -> None:
        super().__init__(message, port=port)
        self.tenant = tenant
        self.resource = resource
        self.retry_after = retry_after


class InvalidInputError(PortError, ValueError):
    """The caller passed something the contract does not accept; nothing was changed.

    Attributes:
        field: the argument or field at fault, when one can be named.
    """

    def __init__(self, message: str, *, field: str | None = None, port: str | None = None) -> None:
        super().__init__(message, port=port)
        self.field = field


class AccessDeniedError(PortError):
    """The caller may not make this call: no valid credentials, or credentials whose scope
    does not include it. Not retryable with the same credentials.

    Attributes:
        authenticated: ``False`` when the credentials were missing or not recognised (HTTP
            401), ``True`` when they were valid but insufficient (HTTP 403).
    """

    def __init__(
        self, message: str, *, authenticated: bool = False, port: str | None = None
    ) -> None:
        super().__init__(message, port=port)
        self.authenticated = authenticated


class TenantRequiredError(PortError):
    """A tenant-scoped adapter was called with no tenant in context: it fails closed."""


class PortTimeoutError(PortError, TimeoutError):
    """The call did not finish within its deadline. Its effect, if any, is unknown."""

    retryable: ClassVar[bool] = True

    def __init__(
        self, message: str, *, timeout: float | None = None, port: str | None = None
    ) -> None:
        super().__init__(message, port=port)
        self.timeout = timeout


class CorruptDataError(PortError):
    """Stored data failed its integrity check (a bad checksum, an unreadable record).

    Raised instead of returning damaged data or silently dropping it; nothing was repaired
    or deleted. Not retryable: the same call fails until the data is recovered (see the
    ``portfolio-core recover`` command for the file adapters).

    Attributes:
        location: the file (or table) holding the damaged data, when known.
        offset: byte offset of the first damaged record in that file, when known.
        record: ordinal (1-based) of the first damaged record, when known.
    """

    def __init__(
        self,
        message: str,
        *,
        location: str | None = None,
        offset: int | None = None,
        record: int | None = None,
        port: str | None = None,
    ) -> None:
        super().__init__(message, port=port)
        self.location = location
        self.offset = offset
        self.record = record


class PoolExhaustedError(PortError):
    """A fixed pool (KV blocks, connections) cannot ever satisfy the request as asked."""

    def __init__(
        self,
        message: str,
        *,
        needed: int | None = None,
        total: int | None = None,
        port: str | None = None,
    ) -> None:
        super().__init__(message, port=port)
        self.needed = needed
        self.total = total


class UnsupportedError(PortError, NotImplementedError):
    """The adapter does not declare the capability this operation needs.

    Raised instead of silently doing nothing. ``capability`` names what is missing, so a
    caller can check :func:`portfolio_core.ports.supports` first.
    """

    def __init__(
        self, message: str, *, capability: str | None = None, port: str | None = None
    ) -> None:
        super().__init__(message, port=port)
        self.capability = capability


class MaxIterationsExceededError(PortError):
    """An agent reached ``max_iterations`` without a final answer.

    Attributes:
        transcript: every message exchanged, for diagnosis.
        iterations: the number of model turns taken.
    """

    def __init__(
        self,
        message: str,
        *,
        transcript: tuple[Any, ...],
        iterations: int,
        port: str | None = "Agent",
    ) -> None:
        super().__init__(message, port=port)
        self.transcript = transcript
        self.iterations = iterations


class UpcastError(PortError):
    """An upcaster failed (raised, or returned something that is not a JSON object) while
    reading an old event or snapshot as its current schema version.

    Nothing stored was changed: the old record is still there, and the read fails until the
    upcaster is fixed. Not retryable.

    Attributes:
        record: what could not be read -- an event id, or ``snapshot:<stream>``.
        record_type: the event type (or the aggregate's name for a snapshot).
        schema_version: the version the failing upcaster was given.
    """

    def __init__(
        self,
        message: str,
        *,
        record: str,
        record_type: str,
        schema_version: int,
        port: str | None = None,
    ) -> None:
        super().__init__(message, port=port)
        self.record = record
        self.record_type = record_type
        self.schema_version = schema_version


class LeaseLostError(ConflictError):
    """A lease is no longer the caller's (it expired and another owner took it, or it was
    released): nothing was committed under it. Claim it again before going on.

    Attributes:
        name: what the lease was for (a projection's name).
    """

    def __init__(self, message: str, *, name: str, port: str | None = None) -> None:
        super().__init__(message, port=port)
        self.name = name
