"""The one factory every service uses: app, lifespan (db, broker, relay), health, metrics, errors."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import JSONResponse
from opentelemetry.trace import TracerProvider
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from trellis import docs_ui, housekeeping, openapi, problems, telemetry
from trellis.auth import TokenVerifier
from trellis.bus import (
    ConsumerContext,
    Handlers,
    build_broker,
    consumer_lag,
    dlq_depth,
    ensure_streams,
    jetstream,
    nats_connected,
    register_handlers,
    relay_publisher,
)
from trellis.db import Database
from trellis.idempotency import IdempotencyMiddleware
from trellis.limits import BodyLimitMiddleware
from trellis.metrics import Metrics
from trellis.outbox import OutboxRelay, outbox_stats
from trellis.settings import DevSecretExposed, Settings, get_settings, refuse_dev_secret_exposed, service_settings

log = logging.getLogger("trellis.service")
# One try at declaring the streams, then one at starting the consumers; a stalled one is retried.
START_ATTEMPT_S = 20.0
ENTRY_POINTS = "trellis.services"


@dataclass(frozen=True)
class ServiceSpec:
    """What a service package declares under `[project.entry-points."trellis.services"]`."""

    name: str
    create_app: Callable[..., FastAPI]
    migrations: Path
    chores: dict[str, housekeeping.Chore] = field(default_factory=dict)


def installed_services() -> dict[str, ServiceSpec]:
    """Every service installed with this distribution, found through entry points (not import strings)."""
    found = {}
    for ep in entry_points(group=ENTRY_POINTS):
        spec = ep.load()
        if not isinstance(spec, ServiceSpec) or spec.name != ep.name:
            raise TypeError(f"entry point {ep.name} = {ep.value} is not the ServiceSpec of '{ep.name}'")
        found[ep.name] = spec
    return found


def service_spec(name: str) -> ServiceSpec:
    services = installed_services()
    if name not in services:
        raise LookupError(f"unknown service '{name}' (installed: {', '.join(sorted(services)) or 'none'})")
    return services[name]


def serve(service: str, factory: str) -> None:
    """Entry point of `python -m services.<name>` and `python -m gateway`."""
    import uvicorn

    svc = service_settings(service)
    try:
        refuse_dev_secret_exposed(get_settings(), svc.host)
    except DevSecretExposed as e:
        print(f"{service}: error: {e}", file=sys.stderr, flush=True)
        sys.exit(2)
    uvicorn.run(factory, factory=True, host=svc.host, port=svc.port, log_config=None,
                proxy_headers=True, access_log=False)
    sys.exit(0)


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
    now: Callable[[], datetime] | None = None,
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
        db = Database(url, clock=clock or date.today, now=now, source=f"trellis/{name}",
                      lock_timeout_ms=settings.db_lock_timeout_ms,
                      statement_timeout_ms=settings.db_statement_timeout_ms,
                      pool_size=settings.db_pool_size, max_overflow=settings.db_max_overflow)
        metrics = Metrics(name)
        # A reconnect wakes the relay at once instead of at the end of its backoff.
        broker = build_broker(settings, provider, on_reconnect=db.outbox_signal.set)
        app.state.db, app.state.metrics, app.state.broker = db, metrics, broker
        telemetry.instrument_engine(db.engine, provider)
        ctx = ConsumerContext(service=name, db=db, broker=broker, settings=settings, metrics=metrics,
                              tracer_provider=provider)
        app.state.consumers = register_handlers(ctx, handlers)
        relay = OutboxRelay(db, relay_publisher(broker), batch=settings.outbox_batch, poll_s=settings.outbox_poll_s,
                            linger_s=settings.outbox_linger_s, max_attempts=settings.outbox_max_attempts,
                            on_published=metrics.events_published.inc, on_parked=metrics.outbox_parked_total.inc,
                            tracer_provider=provider)
        app.state.relay = relay
        # HTTP serves at once; messaging starts when NATS answers (writes wait in the outbox meanwhile).
        messaging = asyncio.create_task(start_messaging(name, broker, relay, settings), name=f"{name}-messaging")
        app.state.messaging = messaging
        # With NATS up, start as before: connected, consumers running. Without it, serve anyway.
        done, _ = await asyncio.wait({messaging}, timeout=settings.nats_connect_grace_s)
        if messaging in done and messaging.exception() is not None:
            raise messaging.exception()  # type: ignore[misc]
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
            await stop_messaging(name, broker, relay, messaging)
            await db.dispose()

    # Swagger UI and ReDoc from bundled assets, so /docs works offline.
    app = docs_ui.offline_fastapi(title=title or f"Trellis {name}", description=description, version="1.0.0",
                                  lifespan=lifespan)
    app.state.service = name
    app.state.settings = settings
    app.state.verifier = TokenVerifier(settings)
    problems.install(app)
    openapi.install(app)  # bearer scheme, problem+json responses, full Allow on 405
    telemetry.instrument_app(app, provider)
    app.add_middleware(IdempotencyMiddleware)

    app.add_middleware(RequestMetrics)

    # Added last, so outermost: body limits apply before idempotency, auth and parsing.
    app.add_middleware(BodyLimitMiddleware, settings=settings)
    app.include_router(router)
    app.include_router(ops_router())
    return app


class RequestMetrics:
    """Counts and times requests per route template.

    Pure ASGI: `@app.middleware("http")` (BaseHTTPMiddleware) runs every request in its own task with
    memory streams, which cost more than the counting itself.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.app(scope, receive, send_status)
        m: Metrics | None = getattr(scope["app"].state, "metrics", None)
        if m is not None:
            path = getattr(scope.get("route"), "path", "unmatched")  # the template, set by routing
            m.http_requests.labels(scope["method"], path, str(status)).inc()
            m.http_latency.labels(scope["method"], path).observe(time.perf_counter() - start)


async def start_messaging(name: str, broker: Any, relay: OutboxRelay, settings: Settings) -> asyncio.Task[None]:
    """Connect (waiting as long as NATS is away), declare streams, start consumers, then the relay."""
    waiting = asyncio.get_running_loop().call_later(
        1.0, lambda: log.warning("%s: waiting for NATS at %s", name, ", ".join(settings.nats_servers)))
    try:
        await broker.connect()
    finally:
        waiting.cancel()
    delay = 0.5
    while True:
        try:
            # Bounded: on a cluster still electing leaders an attempt was seen to stall for good, not fail.
            await asyncio.wait_for(ensure_streams(jetstream(broker), settings), START_ATTEMPT_S)
            await asyncio.wait_for(broker.start(), START_ATTEMPT_S)
            break
        except Exception as e:  # noqa: BLE001 - JetStream not ready yet (a cluster electing leaders)
            log.warning("%s: JetStream not ready (%r); retrying in %.1fs", name, e, delay)
            for sub in broker.subscribers:  # a half-started attempt: the next one starts from scratch
                with contextlib.suppress(Exception):
                    await sub.stop()
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
    log.info("%s: connected to NATS", name)
    return asyncio.create_task(relay.run(), name=f"{name}-outbox-relay")


async def stop_messaging(name: str, broker: Any, relay: OutboxRelay, messaging: asyncio.Task[Any]) -> None:
    """Consumers stop first, then the relay publishes what they and the last requests staged."""
    if not messaging.done():
        messaging.cancel()  # never connected: nothing runs, staged events wait in the outbox
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await messaging
        with contextlib.suppress(Exception):
            await broker.stop()
        return
    relay_task = None if messaging.cancelled() or messaging.exception() else messaging.result()
    for sub in broker.subscribers:
        try:
            await sub.stop()
        except Exception as e:  # noqa: BLE001 - NATS already gone: nothing left to stop
            log.warning("%s: consumer stop: %r", name, e)
    relay.stop()
    if relay_task is not None:
        with contextlib.suppress(TimeoutError, asyncio.CancelledError):
            await asyncio.wait_for(relay_task, timeout=5)
    try:
        if await relay.leadership.acquire():
            await relay.flush(timeout=5)
            await relay.leadership.release()
    except Exception as e:  # noqa: BLE001 - what is left is published by the next start
        log.warning("%s: final outbox flush: %r", name, e)
    try:
        await broker.stop()
    except Exception as e:  # noqa: BLE001 - NATS already gone: nothing left to drain
        log.warning("%s: broker stop: %r", name, e)


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
        messaging: asyncio.Task[Any] | None = getattr(request.app.state, "messaging", None)
        if not nats_connected(request.app.state.broker):
            checks["nats"] = "error: not connected"
        elif messaging is None or not messaging.done() or messaging.cancelled() or messaging.exception():
            # Connected is not enough: a cluster may still be electing leaders, streams not yet declared.
            checks["nats"] = "error: streams and consumers not started yet"
        else:
            checks["nats"] = "ok"
        ok = all(v == "ok" for v in checks.values())
        return JSONResponse({"status": "ok" if ok else "unavailable", "checks": checks}, status_code=200 if ok else 503)

    @r.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def metrics(request: Request) -> Response:
        state = request.app.state
        m: Metrics = state.metrics
        with contextlib.suppress(Exception):
            stats = await outbox_stats(state.db, state.settings.outbox_max_attempts)
            m.outbox_unsent.set(stats.unsent)
            m.outbox_parked.set(stats.parked)
            m.outbox_oldest_age.set(stats.oldest_age_s)
        with contextlib.suppress(Exception):
            js = jetstream(state.broker)
            for durable, stream in state.consumers:
                m.consumer_lag.labels(durable).set(await asyncio.wait_for(consumer_lag(js, stream, durable), 2))
                m.dlq_depth.labels(durable).set(await asyncio.wait_for(dlq_depth(js, durable), 2))
        return Response(generate_latest(m.registry), media_type=CONTENT_TYPE_LATEST)

    return r
