"""The gateway's `/metrics`: each GraphQL operation counted by type and outcome and timed, and each upstream
call its clients make counted by service and status class, transport failures as `error`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager
from prometheus_client.parser import text_string_to_metric_families

from gateway.app import create_app
from gateway.settings import GatewaySettings
from tests.conftest import make_settings
from tests.integration.test_gateway_portal import first_event, listening_gateway, subscribed
from tests.support import NatsServer
from trellis.auth import mint_dev_token
from trellis.settings import Settings

AGENCIES = "{ agencies { id } }"
INSTRUMENTS = "{ instruments { id } }"


@contextlib.asynccontextmanager
async def gateway(settings: Settings, handler: Callable[[httpx.Request], httpx.Response]
                  ) -> AsyncIterator[httpx.AsyncClient]:
    """A real gateway app whose services are `handler` (an httpx MockTransport)."""
    app = create_app(settings=settings, transport=httpx.MockTransport(handler), limits=GatewaySettings())
    async with LifespanManager(app), httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://127.0.0.1:8000") as http:
        yield http


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(text) for s in fam.samples}


async def scrape(http: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    r = await http.get("/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain")
    return samples(r.text)


def requests(m: dict[tuple[str, tuple[tuple[str, str], ...]], float], kind: str, status: str) -> float:
    return m.get(("trellis_gateway_requests_total", (("operation_type", kind), ("status", status))), 0.0)


def upstream(m: dict[tuple[str, tuple[tuple[str, str], ...]], float], service: str, status: str) -> float:
    return m.get(("trellis_gateway_upstream_calls_total", (("service", service), ("status", status))), 0.0)


@pytest.fixture
def settings(nats_server: NatsServer, tmp_path: Path) -> Settings:
    return make_settings(nats_server.url, tmp_path, jwt_secret="gateway-metrics-secret-" + "x" * 24)


def auth(settings: Settings, agency: str | None = None) -> dict[str, str]:
    token = mint_dev_token(settings, sub=str(uuid.uuid4()), agency=agency or str(uuid.uuid4()),
                           roles=["coach", "agency_admin"])
    return {"Authorization": f"Bearer {token}"}


async def test_a_query_and_its_upstream_calls_are_counted(settings: Settings) -> None:
    def services(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/agencies":
            return httpx.Response(200, json={"items": [], "next": None})
        return httpx.Response(503, json={"status": 503, "title": "Service Unavailable"})

    async with gateway(settings, services) as http:
        before = await scrape(http)
        assert requests(before, "query", "ok") == 0
        assert before[("trellis_gateway_live_subscribers", ())] == 0

        r = await http.post("/graphql", json={"query": AGENCIES}, headers=auth(settings))
        assert r.json() == {"data": {"agencies": []}}
        m = await scrape(http)
        assert requests(m, "query", "ok") == 1
        assert requests(m, "query", "error") == 0
        assert upstream(m, "readiness", "2xx") == 1
        assert m[("trellis_gateway_request_seconds_count", ())] == 1
        assert m[("trellis_gateway_request_seconds_sum", ())] > 0

        # A service answering 5xx: the call counted by its status class, the operation as an error.
        r = await http.post("/graphql", json={"query": INSTRUMENTS}, headers=auth(settings))
        assert r.json()["errors"][0]["extensions"]["code"] == "UPSTREAM_ERROR"
        m = await scrape(http)
        assert upstream(m, "fidelity", "5xx") == 1
        assert requests(m, "query", "error") == 1
        assert m[("trellis_gateway_request_seconds_count", ())] == 2


async def test_a_service_that_cannot_be_reached_is_counted_as_error(settings: Settings) -> None:
    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    async with gateway(settings, unreachable) as http:
        r = await http.post("/graphql", json={"query": AGENCIES}, headers=auth(settings))
        assert r.json()["errors"][0]["extensions"]["code"] == "UPSTREAM_UNAVAILABLE"
        m = await scrape(http)
        assert upstream(m, "readiness", "error") == 1
        assert upstream(m, "readiness", "2xx") == 0
        assert requests(m, "query", "error") == 1


async def test_mutations_refusals_and_unparsable_documents_are_labelled(settings: Settings) -> None:
    called: list[str] = []

    def services(request: httpx.Request) -> httpx.Response:
        called.append(request.url.path)
        return httpx.Response(404, json={"status": 404, "title": "Not Found"})

    async with gateway(settings, services) as http:
        # Unauthenticated: refused before any resolver, so no upstream call.
        await http.post("/graphql", json={"query": AGENCIES})
        await http.post("/graphql", json={"query": "{ agencies { id "})  # does not parse
        agency = str(uuid.uuid4())
        mutation = f'mutation {{ addTeam(agencyId: "{agency}", name: "A") {{ id }} }}'
        r = await http.post("/graphql", json={"query": mutation}, headers=auth(settings, agency))
        assert r.json()["errors"][0]["extensions"]["code"] == "NOT_FOUND"
        m = await scrape(http)
        assert requests(m, "query", "error") == 1
        assert requests(m, "unknown", "error") == 1
        assert requests(m, "mutation", "error") == 1
        assert len(called) == 1 and upstream(m, "readiness", "4xx") == 1
        assert sum(v for (name, _), v in m.items() if name == "trellis_gateway_upstream_calls_total") == 1
        assert m[("trellis_gateway_request_seconds_count", ())] == 3


async def test_the_metrics_are_per_app(settings: Settings) -> None:
    """Two gateways in one process (as in tests) keep their own counts."""
    def ok(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"items": [], "next": None})

    async with gateway(settings, ok) as one, gateway(settings, ok) as two:
        await one.post("/graphql", json={"query": AGENCIES}, headers=auth(settings))
        assert requests(await scrape(one), "query", "ok") == 1
        assert requests(await scrape(two), "query", "ok") == 0


async def test_an_open_subscription_is_a_live_subscriber_until_it_ends(settings: Settings, tmp_path: Path) -> None:
    agency = str(uuid.uuid4())
    token = mint_dev_token(settings, sub=str(uuid.uuid4()), agency=agency, roles=["coach"])
    async with listening_gateway(settings, tmp_path) as url, httpx.AsyncClient(
            base_url=url.replace("ws://", "http://").removesuffix("/graphql")) as http:
        async with subscribed(url, {"Authorization": f"Bearer {token}"}, agency) as ws:
            assert (await first_event(ws, settings.nats_url, agency))["type"] == "next"
            m = await scrape(http)
            assert m[("trellis_gateway_live_subscribers", ())] == 1
            assert requests(m, "subscription", "ok") == 0  # counted when it ends
            await ws.send(json.dumps({"id": "1", "type": "complete"}))
            deadline = time.monotonic() + 10
            while (m := await scrape(http))[("trellis_gateway_live_subscribers", ())] != 0:
                assert time.monotonic() < deadline, "the subscription was never counted as ended"
                await asyncio.sleep(0.05)
        assert requests(m, "subscription", "ok") == 1
        assert m[("trellis_gateway_request_seconds_count", ())] == 0  # a subscription's lifetime is not latency
