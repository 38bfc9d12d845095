"""The one factory every service uses: app, lifespan (db, broker, relay), health, metrics, errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from opentelemetry.trace import TracerProvider
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from trellis import housekeeping, problems, telemetry
from trellis.auth import TokenVerifier
from trellis.bus import (
    ConsumerContext,
    Handlers,
    build_broker,
    consumer_lag,
    dlq_depth,
    ensure_streams,
    jetstream,
    register_handlers,
    relay_publisher,
)
from trellis.db import Database
from trellis.idempotency import IdempotencyMiddleware
from trellis.metrics import Metrics
from trellis.outbox import OutboxRelay, outbox_stats
from trellis.settings import Settings, get_settings, service_settings

log = logging.getLogger("trellis.service")


def create_service(
    name: str,
    *,
    router: APIRouter,
    handlers: Handlers | None = None,
    settings: Settings | None = None,
    database_url: str | None = None,
    tracer_provider: TracerProvider | None = None,
    title: str | None = None,
    description: str = "",
    on_startup: Callable[[FastAPI], Awaitable[None]] | None = None,
    chores: dict[str, housekeeping.Chore] | None = None,
    clock: Callable[[], date] | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    svc = service_settings(name, settings)
    url = database_url or svc.database_url
    assert url is not None
    handlers = handlers or Handlers()
    telemetry.setup_logging(settings.log_level)
    provider = tracer_provider or telemetry.tracer_provider(name)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        db = Database(url, clock=clock or date.today)
        metrics = Metrics(name)
        broker = build_broker(settings, provider)
        app.state.db, app.state.metrics, app.state.broker = db, metrics, broker
        telemetry.instrument_engine(db.engine, provider)
        ctx = ConsumerContext(service=name, db=db, broker=broker, settings=settings, metrics=metrics)
        app.state.consumers = register_handlers(ctx, handlers)
        await broker.connect()
        await ensure_streams(jetstream(broker), settings)
        await broker.start()

        relay = OutboxRelay(db, relay_publisher(broker), batch=settings.outbox_batch, poll_s=settings.outbox_poll_s,
                            linger_s=settings.outbox_linger_s,
                            on_published=metrics.events_published.inc, tracer_provider=provider)
        app.state.relay = relay
        relay_task = asyncio.create_task(relay.run(), name=f"{name}-outbox-relay")
        periodic = [asyncio.create_task(housekeeping.run(db, settings), name=f"{name}-housekeeping")]
        periodic += [asyncio.create_task(housekeeping.repeat(n, fn, db, settings.housekeeping_every_s),
                                         name=f"{name}-{n}") for n, fn in (chores or {}).items()]
        if on_startup is not None:
            await on_startup(app)
        log.info("%s ready on database %s", name, db.engine.url.render_as_string(hide_password=True))
        try:
            yield
        finally:
            for task in periodic:
                task.cancel()
            relay.stop()
            # Let a drain in progress finish and mark its rows sent.
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(relay_task, timeout=5)
            try:
                await broker.stop()
            except Exception as e:  # noqa: BLE001 - NATS already gone: nothing left to drain
                log.warning("%s: broker stop: %r", name, e)
            await db.dispose()

    app = FastAPI(title=title or f"Trellis {name}", description=description, version="1.0.0", lifespan=lifespan)
    app.state.service = name
    app.state.settings = settings
    app.state.verifier = TokenVerifier(settings)
    problems.install(app)
    telemetry.instrument_app(app, provider)
    app.add_middleware(IdempotencyMiddleware)

    @app.middleware("http")
    async def count_requests(request: Request, call_next: Any) -> Response:
        start = time.perf_counter()
        response: Response = await call_next(request)
        route = request.scope.get("route")
        path = getattr(route, "path", "unmatched")
        m: Metrics | None = getattr(request.app.state, "metrics", None)
        if m is not None:
            m.http_requests.labels(request.method, path, str(response.status_code)).inc()
            m.http_latency.labels(request.method, path).observe(time.perf_counter() - start)
        return response

    app.include_router(router)
    app.include_router(ops_router())
    return app


def ops_router() -> APIRouter:
    r = APIRouter(tags=["operations"])

    @r.get("/healthz", summary="Liveness: the process is up")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @r.get("/readyz", summary="Readiness: database and NATS reachable")
    async def readyz(request: Request) -> JSONResponse:
        checks: dict[str, str] = {}
        try:
            await asyncio.wait_for(request.app.state.db.ping(), timeout=2)
            checks["database"] = "ok"
        except Exception as e:  # noqa: BLE001 - any failure means not ready
            checks["database"] = f"error: {type(e).__name__}"
        conn = request.app.state.broker.config.connection_state.connection
        checks["nats"] = "ok" if conn is not None and conn.is_connected else "error: not connected"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)

    @r.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics(request: Request) -> Response:
        state = request.app.state
        m: Metrics = state.metrics
        with contextlib.suppress(Exception):
            stats = await outbox_stats(state.db)
            m.outbox_unsent.set(stats.unsent)
            m.outbox_oldest_age.set(stats.oldest_age_s)
        with contextlib.suppress(Exception):
            js = jetstream(state.broker)
            for durable, stream in state.consumers:
                m.consumer_lag.labels(durable).set(await asyncio.wait_for(consumer_lag(js, stream, durable), 2))
                m.dlq_depth.labels(durable).set(await asyncio.wait_for(dlq_depth(js, durable), 2))
        return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)

    return r



def ops_router_basic(nats_ok: Callable[[], bool]) -> APIRouter:
    """Health endpoints for processes without a database (the gateway)."""
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
