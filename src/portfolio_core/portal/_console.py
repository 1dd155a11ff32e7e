"""The operator console: a live page at ``/console`` showing what the wiring is doing.

Everything it shows comes from what the process already keeps: the registry (entries, where
their configuration came from, capabilities, health), the boundary's own statistics
(``registry.performance()``, no second metrics pipeline), the process timeline
(``portfolio_core.boundary.timeline``), the registered panels
(``portfolio_core.boundary.panels``), the panels and timeline entries generated from the
ConfigStore, JobQueue and outbox entries (``_console_sources``) and the event stores' own
reads.

Costs nothing while nobody watches: the sampler (`_console_sampler`) runs only while at
least one page is connected, and listens to the timeline only then.

Access: the portal's API keys. A browser logs in once with a key (``POST /console/login``)
and gets a signed, ``HttpOnly``, ``SameSite=Strict`` cookie naming the key and an expiry,
which any worker of the portal can check and which rotating the key ends. Scripts may send
the key as a header instead. Any key sees the entries its scopes name; a state-changing
action (reset a breaker, reload the manifest) needs a write scope, an explicit confirmation
in a JSON body and, when the browser sends one, a same-origin ``Origin``.
"""

from __future__ import annotations

import asyncio
import base64
import hmac
import time
from collections.abc import AsyncIterator, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from portfolio_core.boundary import boundary_of, unwrap
from portfolio_core.boundary.timeline import Timeline, TimelineEvent, default_timeline
from portfolio_core.portal._console_events import latest_events, render_event
from portfolio_core.portal._console_sampler import Sampler
from portfolio_core.portal._console_sources import RegistrySources
from portfolio_core.portal._security import ANONYMOUS, Principal
from portfolio_core.ports.errors import AccessDeniedError, InvalidInputError, PortError
from portfolio_core.ports.event_store import EventStore, RecordedEvent
from portfolio_core.registry import Registry
from portfolio_core.wire import PROBLEM_MEDIA_TYPE, dumps, loads, problem_for

if TYPE_CHECKING:
    from portfolio_core.portal._app import Portal

__all__ = ["Console"]

_log = structlog.get_logger("portfolio_core.portal.console")

COOKIE = "portfolio_console"
PREFIX = "/console"
_STATIC = {
    "console.js": "text/javascript; charset=utf-8",
    "console.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_SECURITY_HEADERS = {
    "content-security-policy": _CSP,
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}
_HEARTBEAT = 15.0


def _asset(name: str) -> bytes:
    return resources.files("portfolio_core.portal").joinpath("static", name).read_bytes()


def _problem(exc: BaseException, status: int | None = None) -> Response:
    problem = problem_for(exc, status)
    headers = dict(_SECURITY_HEADERS)
    if problem["status"] == 401:
        headers["www-authenticate"] = 'Bearer realm="portfolio-core"'
    return Response(
        dumps(problem), problem["status"], media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


def _json(value: Any, status: int = 200) -> Response:
    return Response(dumps(value), status, media_type="application/json", headers=_SECURITY_HEADERS)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


# -- what the page is sent ------------------------------------------------------------------


def _timeline_json(event: TimelineEvent, principal: Principal) -> dict[str, Any] | None:
    if event.entry is not None and not principal.sees(event.entry):
        return None
    data: Mapping[str, Any] = event.data
    detail = event.detail
    if event.kind == "reload" and not principal.sees("*"):
        # a key that does not see every entry sees the diff of its own entries only
        data = {
            **data,
            **{
                key: [c for c in data.get(key, []) if principal.sees(str(c.get("entry")))]
                for key in ("added", "removed", "changed")
                if isinstance(data.get(key), list)
            },
        }
        detail = "; ".join(
            f"{c['entry']}: " + ", ".join(f["path"] for f in c["fields"])
            for c in data.get("changed", [])
        )
    return {
        "id": event.id,
        "kind": event.kind,
        "title": event.title,
        "time": event.time,
        "entry": event.entry,
        "severity": event.severity,
        "detail": detail,
        "data": data,
        "count": event.count,
    }


class Console:
    """The console of one portal (its routes, sessions and sampler)."""

    def __init__(self, portal: Portal, timeline: Timeline | None = None) -> None:
        self.portal = portal
        self.registry: Registry = portal.registry
        self.config = portal.config.console
        self.security = portal.security
        self.timeline = timeline or default_timeline()
        self.sources = RegistrySources(self.timeline, self.registry.redact)
        self.sampler = Sampler(self)

    # -- helpers used by the sampler -------------------------------------------------------

    def store(self, name: str) -> EventStore:
        """The event store ``name`` without its boundary proxy (the console's reads are not
        the application's calls)."""
        return unwrap(self.registry.get(EventStore, name))

    def render(self, event: RecordedEvent) -> dict[str, Any]:
        return render_event(
            event, max_bytes=self.config.max_payload_bytes, redact=self.registry.redact
        )

    # -- who is asking -----------------------------------------------------------------------

    def principal(self, request: Request) -> Principal | None:
        """The caller (API key header, or session cookie); ``None`` when not logged in."""
        if not self.security.enabled:
            return ANONYMOUS
        authorization = request.headers.get("authorization")
        api_key = request.headers.get("x-api-key")
        if authorization or api_key:
            try:
                return self.security.authenticate(
                    authorization.encode() if authorization else None,
                    api_key.encode() if api_key else None,
                )
            except AccessDeniedError:
                return None
        return self._session(request.cookies.get(COOKIE, ""))

    def _sign(self, name: str, expires: int) -> str | None:
        found = self.security.signing_key(name)
        if found is None:
            return None
        key, _ = found
        message = f"{_b64(name.encode())}.{expires}"
        mac = hmac.digest(key, message.encode(), "sha256")
        return f"{message}.{_b64(mac)}"

    def _session(self, token: str) -> Principal | None:
        try:
            encoded, expires_text, mac_text = token.split(".")
            name = _unb64(encoded).decode()
            expires = int(expires_text)
            mac = _unb64(mac_text)
        except (ValueError, UnicodeDecodeError):
            return None
        if expires < time.time():
            return None
        found = self.security.signing_key(name)
        if found is None:
            return None
        key, principal = found
        expected = hmac.digest(key, f"{encoded}.{expires}".encode(), "sha256")
        return principal if hmac.compare_digest(expected, mac) else None

    # -- pages ---------------------------------------------------------------------------

    def _page(self, name: str, status: int = 200, message: str = "") -> Response:
        html = _asset(name).decode()
        html = html.replace("{{message}}", _escape(message))
        return Response(
            html, status, media_type="text/html; charset=utf-8", headers=_SECURITY_HEADERS
        )

    async def page(self, request: Request) -> Response:
        if self.principal(request) is None:
            return self._page("login.html", 401)
        return self._page("console.html")

    async def slash(self, request: Request) -> Response:
        return RedirectResponse(PREFIX, 308)

    async def static(self, request: Request) -> Response:
        name = request.path_params["name"]
        media = _STATIC.get(name)
        if media is None:
            return Response("not found", 404, media_type="text/plain")
        headers = {**_SECURITY_HEADERS, "cache-control": "no-cache"}
        return Response(_asset(name), media_type=media, headers=headers)

    async def login(self, request: Request) -> Response:
        if not self.security.enabled:
            return RedirectResponse(PREFIX, 303)
        body = await request.body()
        if len(body) > 4096:
            return self._page("login.html", 413, "That request is too large.")
        key = (parse_qs(body.decode(errors="replace")).get("key") or [""])[0].strip()
        try:
            principal = self.security.authenticate(None, key.encode() or None)
        except AccessDeniedError:
            await asyncio.sleep(0.25)  # a wrong key costs the guesser time
            return self._page("login.html", 401, "That key is not valid.")
        expires = int(time.time() + self.config.session_hours * 3600)
        token = self._sign(principal.name, expires)
        response = RedirectResponse(PREFIX, 303)
        if token is not None:
            response.set_cookie(
                COOKIE,
                token,
                max_age=int(self.config.session_hours * 3600),
                path=PREFIX,
                httponly=True,
                samesite="strict",
                secure=request.url.scheme == "https",
            )
        return response

    async def logout(self, request: Request) -> Response:
        response = RedirectResponse(PREFIX, 303)
        response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="strict")
        return response

    # -- data ------------------------------------------------------------------------------

    def _who(self, principal: Principal) -> dict[str, Any]:
        return {
            "name": principal.name,
            "auth": self.security.enabled,
            "can_reload": principal.allows("*", "reload", False),
        }

    async def _state(self, principal: Principal) -> dict[str, Any]:
        sampler = self.sampler
        timeline = [
            shown
            for e in self.timeline.latest(self.config.timeline)
            if (shown := _timeline_json(e, principal)) is not None
        ]
        return {
            "who": self._who(principal),
            "config": {
                "interval": self.config.interval,
                "history": self.config.history,
                "tail": self.config.tail,
                "timeline": self.config.timeline,
                "max_payload_bytes": self.config.max_payload_bytes,
            },
            "time": time.time(),
            "version": sampler.version,
            "entries": sampler.entries(principal),
            "methods": sampler.visible_methods(principal),
            "history": sampler.history_for(principal),
            "timeline": timeline,
            "timeline_last": self.timeline.last_id,
            "tails": sampler.tails_for(principal, {}),
            "panels": sampler.panels_for(principal),
        }

    async def state(self, request: Request) -> Response:
        principal = self.principal(request)
        if principal is None:
            return _problem(AccessDeniedError("log in to the console first"))
        async with self.sampler.watching():
            return _json(await self._state(principal))

    async def live(self, request: Request) -> Response:
        principal = self.principal(request)
        if principal is None:
            return _problem(AccessDeniedError("log in to the console first"))
        return StreamingResponse(
            self._frames(principal),
            media_type="text/event-stream",
            headers={**_SECURITY_HEADERS, "x-accel-buffering": "no"},
        )

    async def _frames(self, principal: Principal) -> AsyncIterator[bytes]:
        sampler = self.sampler
        async with sampler.watching():
            state = await self._state(principal)
            yield b"retry: 1000\n" + _frame("hello", state)
            version = sampler.version
            timeline_last = state["timeline_last"]
            seen = {name: tail["last"] for name, tail in state["tails"].items()}
            while True:
                if not await sampler.changed(version, _HEARTBEAT):
                    yield b": heartbeat\n\n"
                    continue
                version = sampler.version
                new = [
                    shown
                    for e in self.timeline.since(timeline_last)
                    if (shown := _timeline_json(e, principal)) is not None
                ]
                timeline_last = self.timeline.last_id
                tails = sampler.tails_for(principal, seen)
                for name, tail in tails.items():
                    seen[name] = tail["last"]
                    if not tail["events"]:
                        del tail["events"]
                yield _frame(
                    "tick",
                    {
                        "time": time.time(),
                        "version": version,
                        "entries": sampler.entries(principal),
                        "methods": sampler.visible_methods(principal),
                        "sample": [
                            sampler.history[-1][0],
                            {
                                k: list(v)
                                for k, v in sampler.history[-1][1].items()
                                if principal.sees(k.rpartition(".")[0])
                            },
                        ]
                        if sampler.history
                        else None,
                        "timeline": new,
                        "tails": tails,
                        "panels": sampler.panels_for(principal),
                    },
                )

    async def events(self, request: Request) -> Response:
        """``GET /console/api/events?entry=&stream=&type=&limit=``: the latest events of a
        store matching the filters (oldest first)."""
        principal = self.principal(request)
        if principal is None:
            return _problem(AccessDeniedError("log in to the console first"))
        params = request.query_params
        entry = params.get("entry", "")
        try:
            if not principal.sees(entry):
                raise AccessDeniedError(
                    "these credentials may not see this entry", authenticated=True
                )
            if entry not in self.registry.names(EventStore):
                raise InvalidInputError(f"no event store named {entry!r}", field="entry")
            try:
                limit = min(max(1, int(params.get("limit", self.config.tail))), 500)
            except ValueError:
                raise InvalidInputError("limit must be a whole number", field="limit") from None
            store = self.store(entry)
            found, head, partial = await latest_events(
                store,
                limit=limit,
                stream=params.get("stream") or None,
                type=params.get("type") or None,
            )
        except PortError as exc:
            return _problem(exc)
        return _json(
            {
                "entry": entry,
                "head": head,
                "partial": partial,
                "events": [self.render(e) for e in found],
            }
        )

    # -- actions (need a write scope and a confirmation) ------------------------------------

    async def _action_principal(self, request: Request, entry: str, action: str) -> Principal:
        principal = self.principal(request)
        if principal is None:
            raise AccessDeniedError("log in to the console first")
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
            raise AccessDeniedError(
                "a console action must come from the console's own page", authenticated=True
            )
        if not principal.allows(entry, action, False):
            raise AccessDeniedError(
                "these credentials may not change this (a write scope is needed)",
                authenticated=True,
            )
        body = await request.body()
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            raise InvalidInputError("send the confirmation as JSON", field="body")
        try:
            confirmed = loads(body[:1024]).get("confirm") is True
        except (ValueError, AttributeError):
            confirmed = False
        if not confirmed:
            raise InvalidInputError('confirm the action: send {"confirm": true}', field="confirm")
        return principal

    async def reset_breaker(self, request: Request) -> Response:
        entry = request.path_params["entry"]
        try:
            principal = await self._action_principal(request, entry, "reset_breaker")
            info = self.registry.metadata(entry)
            handle = boundary_of(self.registry.get(info.port.protocol, entry))
            if handle is None or handle.breaker is None:
                raise InvalidInputError(f"{entry!r} has no circuit breaker", field="entry")
            handle.breaker.close()
        except PortError as exc:
            return _problem(exc)
        self.timeline.publish(
            "console",
            f"{principal.name} reset the circuit breaker of {entry!r}",
            entry=entry,
            severity="warning",
        )
        return _json({"entry": entry, "state": handle.breaker.state})

    async def reload(self, request: Request) -> Response:
        try:
            principal = await self._action_principal(request, "*", "reload")
            self.timeline.publish(
                "console", f"{principal.name} asked for a reload", severity="warning"
            )
            try:
                await self.registry.reload()
            except RuntimeError as exc:
                raise InvalidInputError(str(exc)) from None
            except Exception as exc:
                raise InvalidInputError(
                    self.registry.redact(f"the reload failed, the previous wiring stays: {exc}")
                ) from None
        except PortError as exc:
            return _problem(exc)
        return _json({"reloaded": True, "entries": self.registry.names()})

    def routes(self) -> list[BaseRoute]:
        return [
            Route(PREFIX, self.page, methods=["GET"]),
            Route(PREFIX + "/", self.slash, methods=["GET"]),
            Route(PREFIX + "/login", self.login, methods=["POST"]),
            Route(PREFIX + "/logout", self.logout, methods=["POST"]),
            Route(PREFIX + "/static/{name}", self.static, methods=["GET"]),
            Route(PREFIX + "/api/state", self.state, methods=["GET"]),
            Route(PREFIX + "/api/live", self.live, methods=["GET"]),
            Route(PREFIX + "/api/events", self.events, methods=["GET"]),
            Route(PREFIX + "/api/reload", self.reload, methods=["POST"]),
            Route(PREFIX + "/api/breakers/{entry}/reset", self.reset_breaker, methods=["POST"]),
        ]


def _frame(kind: str, value: Any) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + dumps(value) + b"\n\n"


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace('"', "&quot;")
        .replace("'", "&#x27;")
    )
