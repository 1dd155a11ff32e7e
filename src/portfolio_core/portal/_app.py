"""The `Portal`: a wired registry served over HTTP and WebSocket, as Starlette routes."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from typing import TYPE_CHECKING, Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket

from portfolio_core.portal._config import PortalConfig
from portfolio_core.portal._dispatch import Bound, Dispatcher
from portfolio_core.portal._http import RpcEndpoint
from portfolio_core.portal._metrics import PortalMetrics
from portfolio_core.portal._security import ANONYMOUS, Principal, Security
from portfolio_core.portal._ws import serve_websocket
from portfolio_core.ports.errors import AccessDeniedError, PortError, UnsupportedError
from portfolio_core.registry import Registry
from portfolio_core.wire import (
    API_PREFIX,
    PROBLEM_MEDIA_TYPE,
    PROBLEM_TYPE_PREFIX,
    WS_PATH,
    dumps,
    problem_for,
)

if TYPE_CHECKING:
    from portfolio_core.portal._console import Console

__all__ = ["Portal", "build_app"]


def _problem_response(exc: BaseException, status: int | None = None) -> Response:
    problem = problem_for(exc, status)
    headers = {}
    if problem["status"] == 401:
        headers["www-authenticate"] = 'Bearer realm="portfolio-core"'
    return Response(
        dumps(problem), problem["status"], media_type=PROBLEM_MEDIA_TYPE, headers=headers
    )


async def reload_response(registry: Registry, drain_timeout: float) -> Response:
    """Reload ``registry`` and answer with what changed (200) or why nothing did (422, an
    ``invalid-manifest`` problem listing every located problem; secrets masked)."""
    from portfolio_core.manifest import ManifestError

    try:
        report = await registry.reload(drain_timeout=drain_timeout)
    except ManifestError as exc:
        problems = [str(p) for p in exc.problems]
    except Exception as exc:  # a new adapter failed to build or start
        problems = [registry.redact(f"{type(exc).__name__}: {exc}")]
    else:
        return JSONResponse(
            {
                "reloaded": True,
                "rebuilt": list(report.rebuilt),
                "added": list(report.added),
                "removed": list(report.removed),
                "kept": list(report.kept),
                "undrained": list(report.undrained),
            }
        )
    body = {
        "type": PROBLEM_TYPE_PREFIX + "invalid-manifest",
        "title": "Reload refused",
        "status": 422,
        "detail": "the reload failed; the running wiring stays",
        "reloaded": False,
        "problems": problems,
    }
    return Response(dumps(body), 422, media_type=PROBLEM_MEDIA_TYPE)


class Portal:
    """Serves the async-port entries of ``registry`` as ``config`` says.

    `routes` are plain Starlette routes, mountable in any Starlette application (a
    console page, another API); `app` is a complete application. The portal never
    starts or closes the registry unless `app` is asked to (``manage_registry``).
    """

    def __init__(self, registry: Registry, config: PortalConfig | None = None) -> None:
        self.registry = registry
        self.config = config or PortalConfig()
        self.metrics = PortalMetrics()
        self.security = Security(self.config.auth)
        self.dispatcher = Dispatcher(registry, self.config.expose, on_bind=self.metrics.attach)
        self.console: Console | None = None
        if self.config.console.enabled:
            from portfolio_core.portal._console import Console

            self.console = Console(self)

    # -- the one check every call goes through -------------------------------------------------

    def prepare(self, principal: Principal, entry: str, method: str) -> Bound:
        """The bound method ``entry.method`` if ``principal`` may call it.

        Raises AccessDeniedError (403) when no scope of the principal could allow it, before
        looking the entry up (so a narrow key learns nothing about other entries);
        NotFoundError when it is not served; AccessDeniedError when the scope allows only
        read-only methods and this one writes.
        """
        if principal is not ANONYMOUS and not (
            principal.allows(entry, method, True) or principal.allows(entry, method, False)
        ):
            raise AccessDeniedError("these credentials may not make this call", authenticated=True)
        bound = self.dispatcher.bound(entry, method)
        if principal is not ANONYMOUS:
            self.security.authorize(principal, entry, method, bound.spec.read_only)
        return bound

    def _principal(self, request: Request | WebSocket) -> Principal:
        return self.security.authenticate(
            request.headers.get("authorization", "").encode() or None,
            request.headers.get("x-api-key", "").encode() or None,
        )

    def _optional_principal(self, request: Request) -> Principal | None:
        if not self.security.enabled:
            return ANONYMOUS
        try:
            return self._principal(request)
        except AccessDeniedError:
            return None

    # -- endpoints -------------------------------------------------------------------------------

    async def list_entries(self, request: Request) -> Response:
        try:
            principal = self._principal(request)
        except PortError as exc:
            return _problem_response(exc)
        names = [n for n in self.dispatcher.names() if principal.sees(n)]
        return Response(
            dumps([self.dispatcher.describe(n) for n in names]), media_type="application/json"
        )

    async def describe_entry(self, request: Request) -> Response:
        name = request.path_params["entry"]
        try:
            principal = self._principal(request)
            if not principal.sees(name):
                raise AccessDeniedError(
                    "these credentials may not see this entry", authenticated=True
                )
            return Response(dumps(self.dispatcher.describe(name)), media_type="application/json")
        except PortError as exc:
            return _problem_response(exc)

    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "alive"})

    async def readyz(self, request: Request) -> Response:
        """Every entry's health (pings, open breakers, marks): 200 when all are healthy, 503
        otherwise. Callers with credentials that see an entry also get its detail."""
        report = await self.registry.health()
        body: dict[str, Any] = {"status": report.status}
        principal = self._optional_principal(request)
        if principal is not None:
            body["entries"] = {
                name: {"healthy": e.healthy, "detail": e.detail}
                for name, e in report.entries.items()
                if principal.sees(name)
            }
        return Response(dumps(body), 200 if report.healthy else 503, media_type="application/json")

    async def metrics_endpoint(self, request: Request) -> Response:
        if self.security.enabled:
            try:
                self._principal(request)
            except PortError as exc:
                return _problem_response(exc)
        return Response(
            self.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8"
        )

    async def openapi(self, request: Request) -> Response:
        from portfolio_core.portal._openapi import openapi_document

        try:
            principal = self._principal(request)
        except PortError as exc:
            return _problem_response(exc)
        names = [n for n in self.dispatcher.names() if principal.sees(n)]
        return JSONResponse(openapi_document(self, names))

    async def admin_reload(self, request: Request) -> Response:
        """``POST /admin/reload``: reload the manifest now (credentials with a write scope
        on every entry). 200 with what changed; 422 with every located problem when the
        manifest is refused or a new adapter fails to start (the running wiring stays)."""
        try:
            principal = self._principal(request)
            if principal is not ANONYMOUS and not principal.allows("*", "reload", False):
                raise AccessDeniedError(
                    "reloading needs a write scope on every entry", authenticated=True
                )
            if self.registry.manifest_source is None:
                raise UnsupportedError("this registry was not built from a manifest")
        except PortError as exc:
            return _problem_response(exc)
        return await reload_response(self.registry, self.config.reload.drain_timeout)

    async def websocket(self, websocket: WebSocket) -> None:
        await serve_websocket(self, websocket)

    # -- assembly --------------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        """The portal's routes (mount them under any prefix)."""
        routes: list[BaseRoute] = [
            Route("/healthz", self.healthz, methods=["GET"]),
            Route("/readyz", self.readyz, methods=["GET"]),
            Route(API_PREFIX, self.list_entries, methods=["GET"]),
            Route(API_PREFIX + "/{entry}", self.describe_entry, methods=["GET"]),
            Route(API_PREFIX + "/{entry}/{method}", RpcEndpoint(self), methods=["POST"]),
            WebSocketRoute(WS_PATH, self.websocket),
        ]
        if self.config.metrics:
            routes.append(Route("/metrics", self.metrics_endpoint, methods=["GET"]))
        if self.config.openapi:
            routes.append(Route("/openapi.json", self.openapi, methods=["GET"]))
        if self.config.openai.enabled:
            from portfolio_core.portal._openai import openai_routes

            routes.extend(openai_routes(self))
        if self.console is not None:
            routes.extend(self.console.routes())
        if self.config.reload.admin:
            routes.append(Route("/admin/reload", self.admin_reload, methods=["POST"]))
        return routes

    def app(
        self,
        *,
        manage_registry: bool = False,
        companions: Sequence[Callable[[], contextlib.AbstractAsyncContextManager[Any]]] = (),
    ) -> Starlette:
        """A Starlette application serving `routes` (with CORS when configured).

        With ``manage_registry`` the application's lifespan starts the registry and closes
        it on shutdown. ``companions`` are entered, in order, after the registry started
        and exited before it is closed (e.g. a reloader watching the manifest).
        """
        middleware = []
        cors = self.config.cors
        if cors.allow_origins:
            middleware.append(
                Middleware(
                    CORSMiddleware,
                    allow_origins=cors.allow_origins,
                    allow_methods=cors.allow_methods,
                    allow_headers=cors.allow_headers,
                    allow_credentials=cors.allow_credentials,
                    max_age=cors.max_age,
                )
            )
        registry = self.registry

        @contextlib.asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            if manage_registry:
                await registry.start()
            try:
                async with contextlib.AsyncExitStack() as stack:
                    for companion in companions:
                        await stack.enter_async_context(companion())
                    yield
            finally:
                if manage_registry:
                    await registry.aclose()

        return Starlette(routes=self.routes(), middleware=middleware, lifespan=lifespan)


def build_app(
    registry: Registry, config: PortalConfig | None = None, *, manage_registry: bool = False
) -> Starlette:
    """An ASGI application serving ``registry`` (see `Portal`)."""
    return Portal(registry, config).app(manage_registry=manage_registry)
