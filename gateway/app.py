"""The gateway app: strawberry on FastAPI, the caller's token passed through to services; the web portal at `/`."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from functools import partial

import httpx
from fastapi import APIRouter, FastAPI, Request, WebSocket
from fastapi.responses import JSONResponse
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from gateway.clients import Budget, ServiceClient
from gateway.community import community_router
from gateway.context import Context
from gateway.devauth import auth_router, dev_mode, dev_router
from gateway.graphiql import OfflineGraphQLRouter
from gateway.instrument import RequestMetrics
from gateway.live import LiveEvents
from gateway.metrics import GatewayMetrics, metrics_router
from gateway.portal import serve_portal
from gateway.schema import build_schema
from gateway.settings import GatewaySettings
from trellis import telemetry
from trellis.auth import TokenVerifier
from trellis.docs_ui import offline_fastapi
from trellis.limits import BodyLimitMiddleware
from trellis.problems import Problem, problem_response
from trellis.settings import Settings, get_settings, service_settings


def create_app(settings: Settings | None = None, transport: httpx.AsyncBaseTransport | None = None,
               limits: GatewaySettings | None = None) -> FastAPI:
    settings = settings or get_settings()
    limits = limits or GatewaySettings()
    telemetry.setup_logging(settings.log_level)
    provider = telemetry.tracer_provider("gateway")
    telemetry.instrument_httpx(provider)
    verifier = TokenVerifier(settings)
    live = LiveEvents(settings.nats_servers)
    urls = {name: service_settings(name, settings).url for name in ("fidelity", "coaching", "readiness", "community")}
    metrics = GatewayMetrics()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        # Bounded: a slow service holds at most max_connections sockets, each call at most the timeouts.
        timeout = httpx.Timeout(limits.upstream_timeout_s, connect=limits.upstream_connect_timeout_s)
        pool = httpx.Limits(max_connections=limits.upstream_max_connections,
                            max_keepalive_connections=limits.upstream_max_keepalive)
        app.state.http = httpx.AsyncClient(timeout=timeout, limits=pool, transport=transport)
        app.state.live = live
        # As the services do: serve at once (/healthz 200, /readyz 503) and connect when NATS answers.
        connecting = asyncio.create_task(live.connect(), name="gateway-live")
        done, _ = await asyncio.wait({connecting}, timeout=settings.nats_connect_grace_s)
        if connecting in done and connecting.exception() is not None:
            raise connecting.exception()  # type: ignore[misc]
        try:
            yield
        finally:
            connecting.cancel()
            await app.state.http.aclose()
            await live.close()

    async def context(request: Request = None, websocket: WebSocket = None) -> Context:  # type: ignore[assignment]
        conn = request or websocket
        assert conn is not None
        auth = conn.headers.get("authorization", "")
        http: httpx.AsyncClient = conn.app.state.http
        budget = Budget(limits.upstream_budget)  # shared by the request's clients
        return Context(
            fidelity=ServiceClient("fidelity", urls["fidelity"], http, auth, budget, metrics),
            coaching=ServiceClient("coaching", urls["coaching"], http, auth, budget, metrics),
            readiness=ServiceClient("readiness", urls["readiness"], http, auth, budget, metrics),
            verifier=verifier, live=live, authorization=auth, limits=limits,
            community=ServiceClient("community", urls["community"], http, auth, budget, metrics),
        )

    app = offline_fastapi(title="Trellis gateway", lifespan=lifespan)  # /docs and GraphiQL work offline
    schema = build_schema(limits)
    schema.extensions = (*schema.extensions, partial(RequestMetrics, metrics))  # this app's registry
    graphql = OfflineGraphQLRouter(schema, context_getter=context,
                                   subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL])
    app.include_router(graphql, prefix="/graphql")
    app.include_router(health_router(lambda: live.nc is not None and live.nc.is_connected))
    app.include_router(metrics_router(metrics))
    app.include_router(auth_router(settings, limits))
    # Calendar feeds, certificate verification and PDFs: plain HTTP routes, matched before the portal's fallback.
    app.include_router(community_router(urls["community"], verifier, metrics))
    if dev_mode(settings):  # not even mounted otherwise
        app.include_router(dev_router(settings))
    app.add_exception_handler(Problem, problem_response)  # type: ignore[arg-type]
    # The portal answers only what no route above matched: API routes always win.
    serve_portal(app.router, limits.portal_dir, settings.oidc_issuer if settings.oidc_enabled else None)
    telemetry.instrument_app(app, provider)
    app.add_middleware(BodyLimitMiddleware, settings=settings)  # outermost: before auth and parsing
    return app


def health_router(nats_ok: Callable[[], bool]) -> APIRouter:
    """Liveness and readiness; the gateway has no database, so ready means its live feed reaches NATS."""
    r = APIRouter(tags=["operations"])

    @r.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @r.get("/readyz")
    async def readyz() -> JSONResponse:
        ok = nats_ok()
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": {"nats": "ok" if ok else "error"}},
                            status_code=200 if ok else 503)

    return r
