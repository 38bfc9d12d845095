"""An observer's own observations, on SQLite and PostgreSQL: `GET /v1/observations?observer_id=` (with
`order=newest` and its paging), the index it rests on, and the gateway's `observations(observerId:, first:)`
that the Record an observation page lists; never another agency's, and bad input refused."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import event

from tests.gateway_harness import GraphQL, serving_gateway
from tests.stack import Stack, observation, problem

SERVICES = ("fidelity", "coaching")
RECENT = """query($observer: ID, $practitioner: ID, $first: Int!) {
  observations(observerId: $observer, practitionerId: $practitioner, first: $first) {
    id observerId practitionerId score } }"""


@pytest.fixture
async def gql(st: Stack, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[GraphQL]:
    for name in SERVICES:
        monkeypatch.setenv(f"TRELLIS_{name.upper()}_BASE_URL", f"http://{name}")
    async with serving_gateway(st, st.settings) as (http, transport):
        yield GraphQL(st, http, transport)


@dataclass
class Recorded:
    agency: str
    people: list[str]
    observer: str  # recorded mine, oldest first
    mine: list[str]
    colleague: str
    theirs: list[str]
    elsewhere_observer: str  # another agency's observer, with one observation there
    elsewhere: str


async def record(st: Stack, headers: dict[str, str], person: str, day: int) -> str:
    r = await st.fidelity.post("/v1/observations", json=observation(person, observed_on=f"2026-10-{day:02d}"),
                               headers=headers)
    assert r.status_code == 201, r.text
    return str(r.json()["id"])


async def recorded(st: Stack) -> Recorded:
    agency, other_agency = str(uuid.uuid4()), str(uuid.uuid4())
    people = await st.staffed(agency, 2)
    (outsider,) = await st.staffed(other_agency)
    me = await st.observer(agency)
    observer = st.observers[agency]
    colleague_sub = str(uuid.uuid4())
    colleague = await st.observer(agency, sub=colleague_sub)
    mine = [await record(st, me, people[0], 1), await record(st, me, people[1], 2)]
    theirs = [await record(st, colleague, people[0], 3)]
    mine.append(await record(st, me, people[0], 4))  # recorded after the colleague's: order is by recording
    there = await st.observer(other_agency)
    elsewhere = await record(st, there, outsider, 5)
    return Recorded(agency, people, observer, mine, colleague_sub, theirs, st.observers[other_agency], elsewhere)


async def ids(st: Stack, headers: dict[str, str], params: Any) -> list[str]:
    r = await st.fidelity.get("/v1/observations", params=params, headers=headers)
    assert r.status_code == 200, r.text
    return [o["id"] for o in r.json()["items"]]


async def test_the_observer_filter_keeps_to_the_observer_and_the_agency(st: Stack) -> None:
    rec = await recorded(st)
    supervisor = st.token(rec.agency, "supervisor")
    assert await ids(st, supervisor, {"observer_id": rec.observer}) == rec.mine  # oldest first, by default
    assert await ids(st, supervisor, {"observer_id": rec.observer, "order": "newest"}) == rec.mine[::-1]
    assert await ids(st, supervisor, {"observer_id": rec.colleague}) == rec.theirs
    assert sorted(await ids(st, supervisor, [("observer_id", rec.observer), ("observer_id", rec.colleague)])) \
        == sorted(rec.mine + rec.theirs)  # repeatable, like practitioner_id
    assert await ids(st, supervisor, {"observer_id": rec.observer, "practitioner_id": rec.people[0]}) \
        == [rec.mine[0], rec.mine[2]]
    # The observer reads their own list; a practitioner still sees only their own observations.
    assert await ids(st, st.token(rec.agency, "observer", sub=rec.observer),
                     {"observer_id": rec.observer, "order": "newest"}) == rec.mine[::-1]
    assert await ids(st, st.token(rec.agency, "practitioner", sub=rec.people[1]),
                     {"observer_id": rec.observer}) == [rec.mine[1]]

    # Another agency's observer id finds nothing here, and this agency's observer nothing there.
    assert await ids(st, supervisor, {"observer_id": rec.elsewhere_observer}) == []
    there = st.token(str(uuid.uuid4()), "supervisor")
    assert await ids(st, there, {"observer_id": rec.observer}) == []
    assert await ids(st, st.token(rec.agency, "agency_admin"), {"observer_id": rec.elsewhere_observer,
                                                                 "order": "newest"}) == []


async def test_newest_first_pages_without_gaps_or_repeats(st: Stack) -> None:
    rec = await recorded(st)
    supervisor = st.token(rec.agency, "supervisor")
    params: dict[str, Any] = {"observer_id": rec.observer, "order": "newest", "limit": 2}
    r = await st.fidelity.get("/v1/observations", params=params, headers=supervisor)
    first = r.json()
    assert [o["id"] for o in first["items"]] == rec.mine[:0:-1] and first["next"]
    assert all(o["observer_id"] == rec.observer for o in first["items"])
    r = await st.fidelity.get("/v1/observations", params={**params, "after": first["next"]}, headers=supervisor)
    assert [o["id"] for o in r.json()["items"]] == [rec.mine[0]] and r.json()["next"] is None


@pytest.mark.parametrize("params", [
    {"observer_id": "not-an-id"},
    [("observer_id", str(uuid.uuid4())), ("observer_id", "1234")],
    {"observer_id": str(uuid.uuid4()), "order": "sideways"},
])
async def test_bad_input_is_a_problem(st: Stack, params: Any) -> None:
    agency = str(uuid.uuid4())
    r = await st.fidelity.get("/v1/observations", params=params, headers=st.token(agency, "supervisor"))
    body = problem(r, 422)
    assert any(e["field"].startswith(("query.observer_id", "query.order")) for e in body["errors"]), body


async def test_an_index_serves_the_observer_query(st: Stack) -> None:
    """The statement the route runs, explained by the database: it reads ix_observations_agency_observer."""
    rec = await recorded(st)
    engine = st.apps["fidelity"].state.db.engine
    seen: list[tuple[str, Any]] = []

    def capture(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if "FROM observations" in statement and "observer_id IN" in statement:
            seen.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", capture)
    try:
        assert await ids(st, st.token(rec.agency, "supervisor"),
                         {"observer_id": rec.observer, "order": "newest", "limit": 10}) == rec.mine[::-1]
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", capture)
    [(statement, parameters)] = seen
    async with engine.connect() as conn:
        if engine.dialect.name == "postgresql":
            await conn.exec_driver_sql("SET enable_seqscan = off")  # a few rows: a scan would be cheaper
            plan = (await conn.exec_driver_sql("EXPLAIN " + statement, parameters)).scalars().all()
        else:
            plan = [str(row[-1]) for row in await conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)]
    assert any("ix_observations_agency_observer" in line for line in plan), plan


async def test_the_gateway_lists_an_observers_latest(st: Stack, gql: GraphQL) -> None:
    rec = await recorded(st)
    me = st.token(rec.agency, "observer", sub=rec.observer)
    got = (await gql.ok(RECENT, me, observer=rec.observer, first=10))["observations"]
    assert [o["id"] for o in got] == rec.mine[::-1]  # newest first
    assert {o["observerId"] for o in got} == {rec.observer}
    got = (await gql.ok(RECENT, me, observer=rec.observer, first=2))["observations"]
    assert [o["id"] for o in got] == rec.mine[:0:-1]
    got = (await gql.ok(RECENT, me, observer=rec.observer, practitioner=rec.people[1], first=10))["observations"]
    assert [o["id"] for o in got] == [rec.mine[1]]
    assert (await gql.ok(RECENT, me, observer=rec.elsewhere_observer, first=10))["observations"] == []
    there = st.token(str(uuid.uuid4()), "observer", sub=rec.observer)  # the same person, another agency
    assert (await gql.ok(RECENT, there, observer=rec.observer, first=10))["observations"] == []

    gql.transport.calls.clear()
    for first in (101, 0, -1):
        err = await gql.refused(RECENT, me, observer=rec.observer, first=first)
        assert err["code"] == "BAD_USER_INPUT" and err["errors"][0]["path"] == "first", err
        assert "between 1 and 100" in err["errors"][0]["message"]
    err = await gql.refused(RECENT, me, observer="not-an-id", first=10)
    assert err["code"] == "BAD_USER_INPUT" and err["errors"][0]["path"] == "observerId", err
    assert gql.transport.calls == {}  # refused before any upstream call
    assert len((await gql.ok(RECENT, me, observer=rec.observer, first=100))["observations"]) == 3
