"""The gateway over real in-process services: batching, token pass-through, errors."""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path

import httpx
import pytest
from asgi_lifespan import LifespanManager

from gateway.app import create_app as gateway_app
from tests.conftest import make_settings
from tests.stack import INSTRUMENT, Stack, eventually, observation, running_stack
from tests.support import NatsServer

QUERY = """query($ids: [ID!]!) { practitioners(ids: $ids) {
  id observations { id score competencyScores competencies { competency score } } coachingTasks { id kind dueOn } } }"""


class CountingTransport(httpx.AsyncBaseTransport):
    """Routes http://<service>/ to the in-process app and counts upstream requests per service."""

    def __init__(self, st: Stack) -> None:
        self.routes = {"fidelity": httpx.ASGITransport(app=st.apps["fidelity"]),
                       "coaching": httpx.ASGITransport(app=st.apps["coaching"])}
        self.calls: Counter[str] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.calls[request.url.host] += 1
        return await self.routes[request.url.host].handle_async_request(request)


async def test_one_upstream_call_per_service_per_level(
    nats_server: NatsServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    settings = make_settings(nats_server.url, tmp_path)
    urls = {"fidelity": f"sqlite+aiosqlite:///{tmp_path}/f.db", "coaching": f"sqlite+aiosqlite:///{tmp_path}/c.db"}
    monkeypatch.setenv("TRELLIS_FIDELITY_BASE_URL", "http://fidelity")
    monkeypatch.setenv("TRELLIS_COACHING_BASE_URL", "http://coaching")
    agency = str(uuid.uuid4())
    practitioners = [str(uuid.uuid4()) for _ in range(6)]
    async with running_stack(settings, urls) as st:
        await st.enrol(agency, *practitioners)
        observer = await st.observer(agency)
        for p in practitioners:
            for _ in range(2):
                r = await st.fidelity.post("/v1/observations", json=observation(p), headers=observer)
                assert r.status_code == 201
        coach = st.token(agency, "coach")

        async def all_tasks() -> bool:
            r = await st.coaching.get("/v1/tasks", params={"limit": 100}, headers=coach)
            return len(r.json()["items"]) == 12

        await eventually(all_tasks)
        transport = CountingTransport(st)
        app = gateway_app(settings=settings, transport=transport)
        async with LifespanManager(app), httpx.AsyncClient(transport=httpx.ASGITransport(app=app),
                                                           base_url="http://gateway") as gql:
            r = await gql.post("/graphql", json={"query": QUERY, "variables": {"ids": practitioners}}, headers=coach)
            body = r.json()
            assert "errors" not in body, body
            got = body["data"]["practitioners"]
            assert [p["id"] for p in got] == practitioners
            assert all(len(p["observations"]) == 2 and len(p["coachingTasks"]) == 2 for p in got)
            first = got[0]["observations"][0]
            assert first["competencyScores"] == {c["competency"]: c["score"] for c in first["competencies"]}
            assert first["competencyScores"]["Team process"] == 100.0
            assert transport.calls == {"fidelity": 1, "coaching": 1}  # not one per practitioner

            # The caller's token goes upstream: another agency sees nothing through the gateway.
            transport.calls.clear()
            other = st.token(str(uuid.uuid4()), "coach")
            r = await gql.post("/graphql", json={"query": QUERY, "variables": {"ids": practitioners}}, headers=other)
            assert all(p["observations"] == [] and p["coachingTasks"] == [] for p in r.json()["data"]["practitioners"])

            # No token: the service's 401 becomes a GraphQL error with its problem details.
            r = await gql.post("/graphql", json={"query": QUERY, "variables": {"ids": practitioners[:1]}})
            err = r.json()["errors"][0]
            assert err["extensions"]["code"] == "UNAUTHENTICATED" and err["extensions"]["status"] == 401

            mutation = """mutation($input: RecordObservationInput!) { recordObservation(input: $input) { id score } }"""
            variables = {"input": {"practitionerId": practitioners[0], "instrumentId": INSTRUMENT,
                                   "observedOn": "2026-11-01", "setting": "office",
                                   "scores": [{"item": "family_perspective", "score": 2}]}}
            r = await gql.post("/graphql", json={"query": mutation, "variables": variables},
                               headers=await st.observer(agency))
            err = r.json()["errors"][0]
            assert err["extensions"]["code"] == "BAD_USER_INPUT"
            assert len(err["extensions"]["problem"]["errors"]) == 10  # every unscored required item is named
