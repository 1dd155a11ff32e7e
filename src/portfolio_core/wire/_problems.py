"""Port errors as RFC 9457 problem details, and back.

Each class of [portfolio_core.ports.errors][portfolio_core.ports.errors] has a stable problem
``type`` URI
(``urn:portfolio-core:problem:<slug>``), an HTTP status and the fields it carries
(``retry_after``, ``expected``/``actual``, ``field``, ...). `problem_for` writes an error
as a problem object; `error_from_problem` rebuilds an instance of the same class with the
same fields. A subclass that is not in the table (an adapter's own) travels as its nearest
listed base class. Nothing but the error's message and its declared fields is written: no
traceback, no cause, no internal detail.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from portfolio_core.ports.errors import (
    AccessDeniedError,
    ConflictError,
    InvalidInputError,
    MaxIterationsExceededError,
    NoHealthyProviderError,
    NotFoundError,
    PoolExhaustedError,
    PortError,
    PortTimeoutError,
    QuotaExceededError,
    RateLimitedError,
    StaleVersionError,
    TenantRequiredError,
    UnavailableError,
    UnsupportedError,
    WrongExpectedVersionError,
)

__all__ = [
    "PROBLEM_MEDIA_TYPE",
    "PROBLEM_TYPE_PREFIX",
    "ProblemType",
    "error_from_problem",
    "problem_for",
    "problem_types",
]

PROBLEM_MEDIA_TYPE = "application/problem+json"
PROBLEM_TYPE_PREFIX = "urn:portfolio-core:problem:"


@dataclass(frozen=True, slots=True)
class ProblemType:
    """One error class on the wire."""

    slug: str
    status: int
    error: type[PortError]
    fields: tuple[str, ...]
    title: str

    @property
    def uri(self) -> str:
        return PROBLEM_TYPE_PREFIX + self.slug


_TYPES: tuple[ProblemType, ...] = (
    ProblemType(
        "wrong-expected-version",
        409,
        WrongExpectedVersionError,
        ("stream", "expected", "actual"),
        "Wrong expected version",
    ),
    ProblemType(
        "stale-version", 409, StaleVersionError, ("expected", "actual"), "Stale expected version"
    ),
    ProblemType("conflict", 409, ConflictError, (), "Conflict"),
    ProblemType("not-found", 404, NotFoundError, ("key",), "Not found"),
    ProblemType("rate-limited", 429, RateLimitedError, ("retry_after",), "Rate limited"),
    ProblemType(
        "no-healthy-provider", 503, NoHealthyProviderError, ("retry_after",), "No healthy provider"
    ),
    ProblemType("unavailable", 503, UnavailableError, ("retry_after",), "Unavailable"),
    ProblemType(
        "quota-exceeded",
        429,
        QuotaExceededError,
        ("tenant", "resource", "retry_after"),
        "Quota exceeded",
    ),
    ProblemType("invalid-input", 400, InvalidInputError, ("field",), "Invalid input"),
    ProblemType("tenant-required", 400, TenantRequiredError, (), "Tenant required"),
    ProblemType("timeout", 504, PortTimeoutError, ("timeout",), "Timed out"),
    ProblemType("pool-exhausted", 422, PoolExhaustedError, ("needed", "total"), "Pool exhausted"),
    ProblemType("unsupported", 501, UnsupportedError, ("capability",), "Unsupported"),
    ProblemType(
        "max-iterations-exceeded",
        422,
        MaxIterationsExceededError,
        ("iterations", "transcript"),
        "Maximum iterations exceeded",
    ),
    ProblemType("unauthenticated", 401, AccessDeniedError, ("authenticated",), "Unauthenticated"),
    ProblemType("forbidden", 403, AccessDeniedError, ("authenticated",), "Forbidden"),
    ProblemType("port-error", 500, PortError, (), "Port error"),
)
_BY_CLASS: dict[type[PortError], ProblemType] = {}
for _t in _TYPES:
    _BY_CLASS.setdefault(_t.error, _t)
_BY_URI = {t.uri: t for t in _TYPES}
_FORBIDDEN = _BY_URI[PROBLEM_TYPE_PREFIX + "forbidden"]
_INTERNAL = {
    "type": PROBLEM_TYPE_PREFIX + "internal",
    "title": "Internal error",
    "status": 500,
    "detail": "the server failed to handle the call; its log has the details",
}


def problem_types() -> tuple[ProblemType, ...]:
    """Every problem type, most specific first."""
    return _TYPES


def _type_of(exc: PortError) -> ProblemType:
    if isinstance(exc, AccessDeniedError) and exc.authenticated:
        return _FORBIDDEN
    # PortError itself is listed, so every port error's MRO reaches a listed class
    return next(_BY_CLASS[klass] for klass in type(exc).__mro__ if klass in _BY_CLASS)


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, str | int | float | bool):
        return value
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "__dataclass_fields__"):
        return {name: _plain(getattr(value, name)) for name in value.__dataclass_fields__}
    return str(value)


def problem_for(exc: BaseException, status: int | None = None) -> dict[str, Any]:
    """The problem object of ``exc``: a port error's type, status (``status`` overrides the
    type's own, e.g. 413 for an oversized body), message and fields; any other exception
    becomes an opaque 500 that reveals nothing about it."""
    if not isinstance(exc, PortError):
        return dict(_INTERNAL)
    kind = _type_of(exc)
    body: dict[str, Any] = {
        "type": kind.uri,
        "title": kind.title,
        "status": status or kind.status,
        "detail": exc.message,
    }
    if exc.port is not None:
        body["port"] = exc.port
    for name in kind.fields:
        value = getattr(exc, name, None)
        if value is not None:
            body[name] = _plain(value)
    return body


def error_from_problem(problem: Mapping[str, Any], status: int | None = None) -> PortError:
    """An instance of the error class ``problem`` names, with its fields restored.

    An unknown or missing type is mapped by status: 401/403 to AccessDeniedError, 404 to
    NotFoundError, 408/504 to PortTimeoutError, 429 to RateLimitedError, 502/503 to
    UnavailableError, other 4xx to InvalidInputError and anything else to PortError.
    """
    uri = problem.get("type")
    detail = str(problem.get("detail") or problem.get("title") or "the server refused the call")
    port = problem.get("port") if isinstance(problem.get("port"), str) else None
    kind = _BY_URI.get(uri) if isinstance(uri, str) else None
    if kind is None:
        code = problem.get("status") if isinstance(problem.get("status"), int) else status
        return _by_status(code or 500, detail, port, problem)
    exc: PortError = kind.error.__new__(kind.error)
    Exception.__init__(exc, detail)
    exc.message = detail
    exc.port = port
    for name in kind.fields:
        setattr(exc, name, problem.get(name))
    if kind.error is AccessDeniedError:
        exc.authenticated = kind.slug == "forbidden"  # type: ignore[attr-defined]
    if kind.error is MaxIterationsExceededError:
        exc.transcript = tuple(problem.get("transcript") or ())  # type: ignore[attr-defined]
    return exc


def _by_status(status: int, detail: str, port: str | None, problem: Mapping[str, Any]) -> PortError:
    retry_after = problem.get("retry_after")
    retry = float(retry_after) if isinstance(retry_after, int | float) else None
    if status in (401, 403):
        return AccessDeniedError(detail, authenticated=status == 403, port=port)
    if status == 404:
        return NotFoundError(detail, port=port)
    if status in (408, 504):
        return PortTimeoutError(detail, port=port)
    if status == 429:
        return RateLimitedError(detail, retry_after=retry, port=port)
    if status in (502, 503):
        return UnavailableError(detail, retry_after=retry, port=port)
    if 400 <= status < 500:
        return InvalidInputError(detail, port=port)
    return PortError(detail, port=port)
