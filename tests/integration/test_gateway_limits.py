"""The gateway does bounded work per request: per-person fields in one call per field for everyone, no
upstream call without a token, document limits that refuse in milliseconds while /healthz answers, a cap
on lists, a budget of upstream calls, masked bugs and quiet logs of client mistakes."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from graphql import parse

from gateway.readiness import Agency
from tests.conftest import make_settings
from tests.gateway_harness import GraphQL, serving_gateway
from tests.stack import Stack, eventually, observation, running_stack
from tests.support import NatsServer
from trellis.settings import Settings

SERVICES = ("readiness", "fidelity", "coaching")
EVERY_FIELD = """query($ids: [ID!]!) { practitioners(ids: $ids) {
  id
  observations { id score competencyScores amendments amendmentHistory { number } }
  coachingTasks { id kind }
  certification { status missing current { id } timeline { status } }
  drift { family drifting metrics { metric observations } }
  fidelitySeries { observationId seq score ewma } } }"""


@pytest.fixture
async def stack(nats_server: NatsServer, make_db_url, tmp_path: Path,  # type: ignore[no-untyped-def]
                monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tuple[Stack, Settings]]:
    settings = make_settings(nats_server.url, tmp_path)
    for name in SERVICES:
        monkeypatch.setenv(f"TRELLIS_{name.upper()}_BASE_URL", f"http://{name}")
    async with running_stack(settings, {name: make_db_url(name) for name in SERVICES}) as st:
        async def connected() -> bool:  # services answer before NATS is up; events need it
            return all([(await c.get("/readyz")).status_code == 200 for c in st.clients.values()])

        await eventually(connected)
        yield st, settings


@contextlib.asynccontextmanager
async def gateway(st: Stack, settings: Settings, monkeypatch: pytest.MonkeyPatch,
                  **limits: object) -> AsyncIterator[GraphQL]:
    """The gateway, its limits set the way an operator sets them: TRELLIS_GATEWAY_* variables."""
    with monkeypatch.context() as m:
        for k, v in limits.items():
            m.setenv(f"TRELLIS_GATEWAY_{k.upper()}", str(v))
        async with serving_gateway(st, settings) as (http, transport):
            yield GraphQL(st, http, transport)


async def test_every_per_person_field_is_one_call_for_200_people(stack: tuple[Stack, Settings],
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    st, settings = stack
    agency = str(uuid.uuid4())
    observed = await st.staffed(agency, 3)
    observer = await st.observer(agency)
    for person in observed:
        for day in ("2026-11-02", "2026-11-03"):
            r = await st.fidelity.post("/v1/observations", json=observation(person, observed_on=day), headers=observer)
            assert r.status_code == 201, r.text
    ids = [*observed, *(str(uuid.uuid4()) for _ in range(197))]
    coach = st.token(agency, "coach")

    async with gateway(st, settings, monkeypatch) as gql:
        gql.transport.calls.clear()
        started = time.perf_counter()
        got = (await gql.ok(EVERY_FIELD, coach, ids=ids))["practitioners"]
        elapsed = time.perf_counter() - started
        # One level of per-person fields: observations, certification, drift and the series from
        # fidelity, tasks from coaching. One call per field, whatever the number of people.
        assert gql.transport.calls == {"fidelity": 4, "coaching": 1}
        gql.transport.calls.clear()
        few = (await gql.ok(EVERY_FIELD, coach, ids=ids[:2]))["practitioners"]
        assert gql.transport.calls == {"fidelity": 4, "coaching": 1}

    assert [p["id"] for p in got] == ids and got[:2] == few
    for p in got[:3]:
        assert [o["score"] for o in p["observations"]] == [100.0, 100.0]
        assert [s["seq"] for s in p["fidelitySeries"]] == [1, 2]
        assert [s["observationId"] for s in p["fidelitySeries"]] == [o["id"] for o in p["observations"]]
        [drift] = p["drift"]
        assert drift["family"] == "miiwrap-practice" and not drift["drifting"]
        assert all(m["observations"] == 2 for m in drift["metrics"])
        assert p["certification"]["status"] == "not_certified" and p["certification"]["missing"]
    for p in got[3:]:
        assert p["observations"] == p["drift"] == p["fidelitySeries"] == p["coachingTasks"] == []
        assert p["certification"]["status"] == "not_certified" and p["certification"]["timeline"] == []
    assert elapsed < 30, f"200 people took {elapsed:.1f} s"


async def test_without_a_token_nothing_is_called_upstream(stack: tuple[Stack, Settings],
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    st, settings = stack
    agency = str(uuid.uuid4())
    aliases = "query($id: ID!) { " + " ".join(f"a{i}: agency(id: $id) {{ id }}" for i in range(500)) + " }"
    async with gateway(st, settings, monkeypatch, max_aliases=1000, max_tokens=10_000) as gql:
        for headers in ({}, {"Authorization": "Bearer not-a-token"}, {"Authorization": "Basic abc"}):
            gql.transport.calls.clear()
            err = await gql.refused(aliases, headers, id=agency)
            assert err["code"] == "UNAUTHENTICATED" and err["status"] == 401
            assert gql.transport.calls == {}, "refused before any resolver ran"

        # Introspection needs no token (GraphiQL's docs), and calls nothing.
        data = await gql.ok("{ __schema { queryType { name } } __typename }", {})
        assert data["__schema"]["queryType"]["name"] == "Query" and gql.transport.calls == {}

        # With a token the same document runs (the alias limit was raised for this test) until the
        # request's budget of upstream calls is spent.
        admin = st.token(agency, "agency_admin")
        gql.transport.calls.clear()
        body = await gql(aliases, admin, id=agency)
        assert {e["extensions"]["code"] for e in body["errors"]} == {"NOT_FOUND", "UPSTREAM_BUDGET_EXCEEDED"}
        assert gql.transport.calls == {"readiness": 50}

    async with gateway(st, settings, monkeypatch) as gql:  # the default limits refuse it outright
        gql.transport.calls.clear()
        body = await gql(aliases, admin, id=agency)
        assert body["data"] is None and "more than 2000 tokens" in body["errors"][0]["message"]
        assert gql.transport.calls == {}


async def test_over_limit_documents_are_refused_in_milliseconds_while_healthz_answers(
        stack: tuple[Stack, Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    st, settings = stack
    agency = str(uuid.uuid4())
    admin = st.token(agency, "agency_admin")
    # 300k tokens in 0.9 MB (under the body limit), no alias, depth 1: only the token limit applies.
    huge = "{ __typename(" + " ".join(f"b{i}:1" for i in range(100_000)) + ") }"
    async with gateway(st, settings, monkeypatch) as gql:

        async def timed(query: str) -> tuple[float, dict[str, Any]]:
            started = time.perf_counter()
            body = await gql(query, admin)
            return time.perf_counter() - started, body

        refusal = asyncio.create_task(timed(huge))
        slowest_health = 0.0
        while True:
            started = time.perf_counter()
            r = await gql.http.get("/healthz")
            slowest_health = max(slowest_health, time.perf_counter() - started)
            assert r.status_code == 200
            if refusal.done():
                break
            await asyncio.sleep(0.005)
        took, body = await refusal
        # Against an anchor in the same run, not a wall-clock bound: parsing the whole document is what the
        # token limit saves, and a loaded machine slows both alike.
        started = time.perf_counter()
        parse(huge)
        full_parse = time.perf_counter() - started
        assert took < full_parse / 2, f"refusing took {took:.2f} s, a full parse {full_parse:.2f} s"
        assert slowest_health < 0.5, f"/healthz waited {slowest_health:.2f} s"
        assert body["data"] is None and "more than 2000 tokens" in gql_message(body), body["errors"][0]

        gql.transport.calls.clear()
        many = "{ " + " ".join(f"a{i}: __typename" for i in range(31)) + " }"
        took, body = await timed(many)
        assert body["data"] is None and body["errors"][0]["message"] == "31 aliases found. Allowed: 30"
        assert took < 0.5 and gql.transport.calls == {}

    deep = "query($id: ID!) { practitioner(id: $id) { certification { current { id } } } }"  # depth 3
    async with gateway(st, settings, monkeypatch, max_depth=2) as gql:
        gql.transport.calls.clear()
        body = await gql(deep, admin, id=str(uuid.uuid4()))
        assert body["data"] is None and "exceeds maximum operation depth of 2" in body["errors"][0]["message"]
        assert gql.transport.calls == {}


async def test_lists_are_capped(stack: tuple[Stack, Settings], monkeypatch: pytest.MonkeyPatch) -> None:
    st, settings = stack
    agency = str(uuid.uuid4())
    coach = st.token(agency, "coach")
    ids = [str(uuid.uuid4()) for _ in range(201)]
    query = "query($ids: [ID!]!) { practitioners(ids: $ids) { id certification { status } } }"
    async with gateway(st, settings, monkeypatch) as gql:
        gql.transport.calls.clear()
        err = await gql.refused(query, coach, ids=ids)
        assert err["code"] == "BAD_USER_INPUT" and err["limit"] == 200 and gql.transport.calls == {}
        listed = ", ".join(f'"{i}"' for i in ids)
        literal = "{ practitioners(ids: [" + listed + "]) { id certification { status } } }"
        err = await gql.refused(literal, coach)
        assert err["code"] == "BAD_USER_INPUT" and gql.transport.calls == {}

        # 200 pass; an id that is not one fails alone, before any call.
        assert len((await gql.ok(query, coach, ids=ids[:200]))["practitioners"]) == 200
        gql.transport.calls.clear()
        err = await gql.refused(query, coach, ids=[*ids[:3], "../v1/agencies"])
        assert err["code"] == "BAD_USER_INPUT" and gql.transport.calls == {}

    async with gateway(st, settings, monkeypatch, max_list=10) as gql:
        body = await gql(query, coach, ids=ids[:11])
        assert body["errors"][0]["extensions"]["limit"] == 10 and "$ids" in gql_message(body)


def gql_message(body: dict[str, Any]) -> str:
    return str(body["errors"][0]["message"])


async def test_a_request_has_a_budget_of_upstream_calls(stack: tuple[Stack, Settings],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    st, settings = stack
    platform = st.token(str(uuid.uuid4()), "platform_admin")
    query = "query($id: ID!) { agency(id: $id) { id teams { id } staff { id } readinessRounds { id } " \
            "stageHistory { stage } turnover { asOf } } }"  # the agency and 5 nested fields: 6 calls
    async with gateway(st, settings, monkeypatch) as gql:
        agency = (await gql.ok('mutation { registerAgency(input: {name: "Budget"}) { id } }', platform)
                  )["registerAgency"]["id"]
        gql.transport.calls.clear()
        await gql.ok(query, platform, id=agency)
        assert gql.transport.calls == {"readiness": 6}
    async with gateway(st, settings, monkeypatch, upstream_budget=4) as gql:
        gql.transport.calls.clear()
        body = await gql(query, platform, id=agency)
        codes = {e["extensions"]["code"] for e in body["errors"]}
        assert codes == {"UPSTREAM_BUDGET_EXCEEDED"}
        assert "more than 4 calls" in gql_message(body)
        assert gql.transport.calls == {"readiness": 4}


async def test_bugs_are_masked_and_client_mistakes_logged_quietly_without_the_query(
        stack: tuple[Stack, Settings], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    st, settings = stack
    agency = str(uuid.uuid4())
    email = "ann.private@example.org"
    add = ("mutation($a: ID!) { addStaffMember(agencyId: $a, input: {name: \"Ann Private\", email: \""
           + email + '", roles: ["practitioner"]}) { id } }')
    async with gateway(st, settings, monkeypatch) as gql:
        caplog.clear()
        with caplog.at_level(logging.INFO):
            err = await gql.refused(add, st.token(agency, "coach"), a=agency)  # a coach may not: 403
            assert err["code"] == "FORBIDDEN" and err["status"] == 403
            body = await gql('{ nosuchfield(email: "' + email + '") }', st.token(agency, "coach"))
            assert "nosuchfield" in gql_message(body)  # the client still sees what was wrong
        refused = [r for r in caplog.records if r.name == "gateway.graphql"]
        assert [r.levelno for r in refused] == [logging.INFO, logging.INFO]
        assert getattr(refused[0], "code", None) == "FORBIDDEN"
        assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert email not in caplog.text and "Ann Private" not in caplog.text
        assert all(email not in str(r.__dict__) for r in caplog.records)

        def broken(cls: Any, row: dict[str, Any]) -> Any:
            raise RuntimeError(f"internal detail {row['id']}")

        monkeypatch.setattr(Agency, "from_rest", classmethod(broken))
        platform = st.token(agency, "platform_admin")
        caplog.clear()
        body = await gql('mutation { registerAgency(input: {name: "Masked"}) { id } }', platform)
        assert gql_message(body) == "Unexpected error; it has been logged."
        assert "internal detail" not in str(body)
        [logged] = [r for r in caplog.records if r.name == "gateway.graphql"]
        assert logged.levelno == logging.ERROR and logged.exc_info is not None


async def test_the_batch_endpoints_check_access_and_size(stack: tuple[Stack, Settings]) -> None:
    st, _ = stack
    agency = str(uuid.uuid4())
    me, other = str(uuid.uuid4()), str(uuid.uuid4())
    practitioner = st.token(agency, "practitioner", sub=me)
    for path in ("/v1/people/certification", "/v1/people/drift", "/v1/people/fidelity-series"):
        r = await st.fidelity.get(path, params=[("person_id", me)], headers=practitioner)
        assert r.status_code == 200, r.text
        r = await st.fidelity.get(path, params=[("person_id", me), ("person_id", other)], headers=practitioner)
        assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json"
        many = [("person_id", str(uuid.uuid4())) for _ in range(201)]
        r = await st.fidelity.get(path, params=many, headers=st.token(agency, "coach"))
        assert r.status_code == 422, r.text
    for bad in ("wrI", "OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk"):  # not base64 of an id; 27 digits
        r = await st.fidelity.get("/v1/people/fidelity-series", params=[("person_id", me), ("after", bad)],
                                  headers=practitioner)
        assert r.status_code == 400, r.text


async def test_a_service_that_does_not_answer_is_a_clear_error(stack: tuple[Stack, Settings],
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    st, settings = stack
    agency = str(uuid.uuid4())

    async def timing_out(self: Any, request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("timed out", request=request)

    async with gateway(st, settings, monkeypatch, upstream_timeout_s=0.5) as gql:
        monkeypatch.setattr(type(gql.transport), "handle_async_request", timing_out)
        body = await gql("query($id: ID!) { agency(id: $id) { id } }", st.token(agency, "coach"), id=agency)
        assert body["data"] == {"agency": None}
        assert body["errors"][0]["extensions"] == {"code": "UPSTREAM_UNAVAILABLE", "service": "readiness"}
        assert (await gql.http.get("/healthz")).status_code == 200
