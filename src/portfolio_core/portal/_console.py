"""The operator console: a live page at ``/console`` showing what the wiring is doing.

Everything it shows comes from what the process already keeps: the registry (entries, where
their configuration came from, capabilities, health), the boundary's own statistics
(``registry.performance()``, no second metrics pipeline), the process timeline
(``portfolio_core.boundary.timeline``), the registered panels
(``portfolio_core.boundary.panels``), the panels and timeline entries generated from the
ConfigStore, JobQueue and outbox entries (``_console_sources``) and the event stores' own
reads.

Costs nothing while nobody watches: the sampler (`_Sampler`) runs only while at least
one page is connected, and listens to the timeline only then.

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
import contextlib
import hmac
import inspect
import time
from collections import deque
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import structlog
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from portfolio_core.boundary import boundary_of, unwrap
from portfolio_core.boundary.panels import Panel, registered_panels
from portfolio_core.boundary.timeline import Timeline, TimelineEvent, default_timeline
from portfolio_core.portal._console_events import latest_events, render_event
from portfolio_core.portal._console_sources import RegistrySources
from portfolio_core.portal._security import ANONYMOUS, Principal
from portfolio_core.ports.errors import AccessDeniedError, InvalidInputError, PortError
from portfolio_core.ports.event_store import EventStore, RecordedEvent
from portfolio_core.registry import HealthReport, Registry
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
_PANEL_BUDGET = 2.0
"""Seconds a panel source may take before it is shown as failing."""
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


def _protection_of(handle: Any) -> list[str]:
    parts: list[str] = []
    tel = handle.telemetry
    if tel is not None and tel.metrics:
        parts.append("metrics")
    prot = handle.protection
    if prot is not None:
        for name in ("rate_limit", "circuit_breaker", "bulkhead", "timeout", "retry", "fallback"):
            if getattr(prot, name, None) is not None:
                parts.append(name.replace("_", " "))
    return parts


@dataclass
class _Tail:
    """The latest events of one event store, as the page is sent them."""

    entry: str
    events: deque[dict[str, Any]]
    last: int = -1
    error: str = ""


@dataclass
class _PanelState:
    name: str
    entry: str | None
    body: dict[str, Any] = field(default_factory=dict)


class _Sampler:
    """Samples the registry for the open pages; runs only while at least one is open."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self.watchers = 0
        self.task: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.version = 0
        self._changed = asyncio.Event()
        self._wake = asyncio.Event()
        self.history: deque[tuple[float, dict[str, tuple[int, int, int]]]] = deque(
            maxlen=console.config.history
        )
        self.methods: list[dict[str, Any]] = []
        self.health: HealthReport | None = None
        self._health_at = 0.0
        self._health_due = True
        self._panels_at = 0.0
        self.tails: dict[str, _Tail] = {}
        self.panels: dict[str, _PanelState] = {}

    # -- lifecycle: first watcher starts it, last one stops it ------------------------------

    @contextlib.asynccontextmanager
    async def watching(self) -> AsyncIterator[None]:
        self.watchers += 1
        if self.task is None or self.task.done():
            self.loop = asyncio.get_running_loop()
            self._changed = asyncio.Event()
            self._wake = asyncio.Event()
            self._health_due = True
            self._panels_at = 0.0  # a new session samples every source at once
            self.console.timeline.add_listener(self._on_timeline)
            self.task = self.loop.create_task(self._run(), name="portfolio-core console")
            # the first sample is taken before the page is sent its state
            await self.sample()
        try:
            yield
        finally:
            self.watchers -= 1
            if self.watchers == 0:
                await self.stop()

    async def stop(self) -> None:
        self.console.timeline.remove_listener(self._on_timeline)
        task, self.task = self.task, None
        # forgotten before waiting: a page connecting meanwhile starts afresh
        self.tails.clear()
        self.history.clear()
        self.panels.clear()
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _on_timeline(self, event: TimelineEvent) -> None:
        # called from whichever thread published; breaker moves and reloads re-check health
        loop = self.loop
        if loop is None:
            return
        urgent = event.kind in ("breaker", "reload")
        with contextlib.suppress(RuntimeError):  # the loop is closing
            loop.call_soon_threadsafe(self._poke, urgent)

    def _poke(self, urgent: bool) -> None:
        if urgent:
            self._health_due = True
        self._wake.set()

    async def changed(self, version: int, timeout: float) -> bool:
        """Wait until a sample newer than ``version`` exists (False after ``timeout``)."""
        if self.version != version:
            return True
        event = self._changed
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout):
                await event.wait()
        return self.version != version

    async def _run(self) -> None:
        interval = self.console.config.interval
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(interval):
                    await self._wake.wait()
            self._wake.clear()
            try:
                await self.sample()
            except Exception:  # pragma: no cover - every part catches its own errors
                _log.exception("console sample failed")

    # -- one sample ----------------------------------------------------------------------

    async def sample(self) -> None:
        now = time.time()
        config = self.console.config
        if self._health_due or now - self._health_at >= config.health_interval:
            self._health_due = False
            self._health_at = now
            try:
                self.health = await self.console.registry.health(timeout=2.0)
            except Exception as exc:  # pragma: no cover - health() catches per entry
                _log.warning("console health check failed", error=type(exc).__name__)
        registry = self.console.registry
        self.methods = [
            {
                "key": f"{p.adapter}.{p.method}",
                "entry": p.adapter,
                "port": p.port,
                "method": p.method,
                "calls": p.calls,
                "errors": p.errors,
                "rejected": p.rejected,
                "p50": p.p50,
                "p95": p.p95,
                "p99": p.p99,
            }
            for p in registry.performance()
        ]
        self.history.append(
            (now, {m["key"]: (m["calls"], m["errors"], m["rejected"]) for m in self.methods})
        )
        await self._sample_tails()
        if now - self._panels_at >= max(1.0, config.interval):
            self._panels_at = now
            await self._sample_panels()
        self.version += 1
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _sample_tails(self) -> None:
        registry = self.console.registry
        limit = self.console.config.tail
        names = registry.names(EventStore)
        for gone in set(self.tails) - set(names):
            del self.tails[gone]
        for name in names:
            tail = self.tails.get(name)
            if tail is None:
                tail = self.tails[name] = _Tail(name, deque(maxlen=limit))
            store = self.console.store(name)
            try:
                fresh = tail.last < 0
                if not fresh:
                    found = await store.read_all(tail.last + 1, limit * 4)
                    fresh = len(found) == limit * 4  # far behind: jump to the latest
                if fresh:
                    found, head, _ = await latest_events(store, limit=limit)
                    tail.events.clear()
                    tail.last = max(tail.last, head)
                tail.error = ""
            except Exception as exc:
                tail.error = self.console.registry.redact(
                    f"{type(exc).__name__}: {exc}"
                    if isinstance(exc, PortError)
                    else type(exc).__name__
                )
                continue
            for event in found:
                tail.events.append(self.console.render(event))
                tail.last = max(tail.last, event.position)

    async def _sample_panels(self) -> None:
        registry = self.console.registry
        sources = {**self.console.sources.sources(registry), **registered_panels()}
        for gone in set(self.panels) - set(sources):
            del self.panels[gone]
        for name, source in sources.items():
            state = self.panels.setdefault(name, _PanelState(name, None))
            try:
                async with asyncio.timeout(_PANEL_BUDGET):
                    result = source(registry)
                    if inspect.isawaitable(result):
                        result = await result
                if not isinstance(result, Panel):
                    raise TypeError(
                        f"the panel source returned {type(result).__name__}, not a Panel"
                    )
                state.entry = result.entry
                state.body = {
                    "name": name,
                    "title": result.title,
                    "columns": [str(c) for c in result.columns][:50],
                    "rows": [
                        [
                            c if isinstance(c, int | float | bool) or c is None else str(c)
                            for c in row
                        ][:50]
                        for row in list(result.rows)[:500]
                    ],
                    "status": result.status,
                    "note": result.note,
                    "entry": result.entry,
                }
            except Exception as exc:
                reason = "took too long" if isinstance(exc, TimeoutError) else type(exc).__name__
                state.body = {
                    "name": name,
                    "title": name,
                    "columns": [],
                    "rows": [],
                    "status": "error",
                    "note": registry.redact(f"the panel source failed: {reason}: {exc}"),
                    "entry": state.entry,
                }

    # -- what one page is sent -------------------------------------------------------------

    def entries(self, principal: Principal) -> list[dict[str, Any]]:
        registry = self.console.registry
        report = self.health
        out = []
        now = time.time()
        for name in registry.names():
            if not principal.sees(name):
                continue
            info = registry.metadata(name)
            adapter = registry.get(info.port.protocol, name)
            handle = boundary_of(adapter)
            breaker: dict[str, Any] | None = None
            if handle is not None and handle.breaker is not None:
                remaining = handle.breaker.refusing_for()
                _ok, detail = handle.breaker.health()
                breaker = {
                    "state": handle.breaker.state,
                    "refuses_until": now + remaining if remaining else None,
                    "detail": detail,
                    "can_reset": principal.allows(name, "reset_breaker", False),
                }
            health = report.entries.get(name) if report is not None else None
            stats = registry.stats(name)
            out.append(
                {
                    "name": name,
                    "port": info.port.key,
                    "port_name": info.port.name,
                    "adapter": info.adapter_type,
                    "class": f"{info.adapter_class.__module__}.{info.adapter_class.__qualname__}",
                    "default": info.default,
                    "capabilities": sorted(registry.capabilities(name)),
                    "location": info.location,
                    "uses": dict(info.uses),
                    "boundary": _protection_of(handle) if handle is not None else [],
                    "healthy": None if health is None else health.healthy,
                    "detail": "" if health is None else health.detail,
                    "marked": False if health is None else health.marked,
                    "breaker": breaker,
                    "calls": None if stats is None else stats.calls,
                    "errors": None if stats is None else stats.errors,
                }
            )
        return out

    def visible_methods(self, principal: Principal) -> list[dict[str, Any]]:
        return [m for m in self.methods if principal.sees(m["entry"])]

    def history_for(self, principal: Principal) -> dict[str, Any]:
        times = [t for t, _ in self.history]
        series: dict[str, list[list[int] | None]] = {}
        for m in self.visible_methods(principal):
            key = m["key"]
            series[key] = [
                list(sample[key]) if key in sample else None for _, sample in self.history
            ]
        return {"times": times, "series": series}

    def tails_for(self, principal: Principal, after: Mapping[str, int]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, tail in self.tails.items():
            if not principal.sees(name):
                continue
            last = after.get(name, -1)
            events = [e for e in tail.events if e["position"] > last]
            out[name] = {"events": events, "error": tail.error, "last": tail.last}
        return out

    def panels_for(self, principal: Principal) -> list[dict[str, Any]]:
        return [
            p.body
            for p in self.panels.values()
            if p.body and (p.entry is None or principal.sees(p.entry))
        ]


class Console:
    """The console of one portal (its routes, sessions and sampler)."""

    def __init__(self, portal: Portal, timeline: Timeline | None = None) -> None:
        self.portal = portal
        self.registry: Registry = portal.registry
        self.config = portal.config.console
        self.security = portal.security
        self.timeline = timeline or default_timeline()
        self.sources = RegistrySources(self.timeline, self.registry.redact)
        self.sampler = _Sampler(self)

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
