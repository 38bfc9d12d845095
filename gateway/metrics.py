"""The gateway's own Prometheus metrics: GraphQL operations, their latency, the upstream calls its clients make
and the live subscriptions open. One registry per app (several apps may share a process in tests), served at
`/metrics` like the services' (trellis/service.py ops_router). Recorded by gateway/instrument.py (operations)
and gateway/clients.py (upstream calls)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest


class GatewayMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.graphql_requests = Counter("trellis_gateway_requests", "GraphQL operations by type and outcome",
                                ["operation_type", "status"], registry=self.registry)
        self.graphql_latency = Histogram("trellis_gateway_request_seconds",
                                 "GraphQL query and mutation latency (subscriptions last as long as the client "
                                 "listens, so they are not timed)", registry=self.registry)
        self.upstream_calls = Counter("trellis_gateway_upstream_calls", "HTTP calls to the services, by status "
                                      "class (2xx/4xx/5xx) or error when the service was not reached",
                                      ["service", "status"], registry=self.registry)
        self.live_subscribers = Gauge("trellis_gateway_live_subscribers", "GraphQL subscriptions open",
                                      registry=self.registry)


def status_class(status: int | None) -> str:
    """An upstream call's status label: its HTTP status class, or `error` when it failed in transport."""
    return f"{status // 100}xx" if status is not None else "error"


def metrics_router(metrics: GatewayMetrics) -> APIRouter:
    r = APIRouter(tags=["operations"])

    @r.get("/metrics", summary="Prometheus metrics", response_class=Response)
    async def serve_metrics() -> Response:
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    return r
