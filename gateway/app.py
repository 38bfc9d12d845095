"""The gateway app: strawberry on FastAPI, the caller's token passed through to services."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import httpx
from fastapi import FastAPI, Request, WebSocket
from strawberry.fastapi import GraphQLRouter
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from gateway.clients import ServiceClient
from gateway.context import Context
from gateway.live import LiveEvents
from gateway.schema import schema
from trellis import telemetry
from trellis.auth import TokenVerifier
from trellis.service import ops_router_basic
from trellis.settings import Settings, get_settings, service_settings


def create_app(settings: Settings | None = None, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    settings = settings or get_settings()
    telemetry.setup_logging(settings.log_level)
    provider = telemetry.tracer_provider("gateway")
    telemetry.instrument_httpx(provider)
    verifier = TokenVerifier(settings)
    live = LiveEvents(settings.nats_servers)
    urls = {name: service_settings(name, settings).url for name in ("fidelity", "coaching", "readiness")}

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.http = httpx.AsyncClient(timeout=15, transport=transport)
        await live.connect()
        app.state.live = live
        try:
            yield
        finally:
            await app.state.http.aclose()
            await live.close()

    async def context(request: Request = None, websocket: WebSocket = None) -> Context:  # type: ignore[assignment]
        conn = request or websocket
        assert conn is not None
        auth = conn.headers.get("authorization", "")
        http: httpx.AsyncClient = conn.app.state.http
        return Context(
            fidelity=ServiceClient("fidelity", urls["fidelity"], http, auth),
            coaching=ServiceClient("coaching", urls["coaching"], http, auth),
            readiness=ServiceClient("readiness", urls["readiness"], http, auth),
            verifier=verifier, live=live, authorization=auth,
        )

    app = FastAPI(title="Trellis gateway", lifespan=lifespan)
    graphql = GraphQLRouter(schema, context_getter=context, subscription_protocols=[GRAPHQL_TRANSPORT_WS_PROTOCOL])
    app.include_router(graphql, prefix="/graphql")
    app.include_router(ops_router_basic(lambda: live.nc is not None and live.nc.is_connected))
    telemetry.instrument_app(app, provider)
    return app
