"""Readiness through the gateway, on SQLite and PostgreSQL: the mutations, one query for a whole agency,
and the service's refusals (another agency, bad input) arriving as GraphQL errors."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from services.readiness.domain import READINESS_V1
from tests.conftest import make_settings
from tests.gateway_harness import GraphQL, serving_gateway
from tests.stack import running_stack
from tests.support import NatsServer

TODAY = date.today()
SERVICES = ("readiness", "fidelity", "coaching")


class Gateway(GraphQL):
    async def register(self, name: str) -> str:
        platform = self.st.token(str(uuid.uuid4()), "platform_admin")
        data = await self.ok(REGISTER, platform, input={"name": name, "region": "North", "programs": ["Wraparound"]})
        return data["registerAgency"]["id"]  # type: ignore[no-any-return]


@pytest.fixture
async def gql(nats_server: NatsServer, make_db_url, tmp_path: Path,  # type: ignore[no-untyped-def]
              monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Gateway]:
    settings = make_settings(nats_server.url, tmp_path)
    for name in SERVICES:
        monkeypatch.setenv(f"TRELLIS_{name.upper()}_BASE_URL", f"http://{name}")
    async with (running_stack(settings, {name: make_db_url(name) for name in SERVICES}) as st,
                serving_gateway(st, settings) as (http, transport)):
        yield Gateway(st, http, transport)


REGISTER = """mutation($input: RegisterAgencyInput!, $key: String) {
  registerAgency(input: $input, idempotencyKey: $key) {
    id name region programs stage readinessLevel planApproved trainingClearance { cleared reasons }
    policy { readyAt conditionsAt minRespondents } } }"""
ADD_TEAM = """mutation($a: ID!, $name: String!, $key: String) {
  addTeam(agencyId: $a, name: $name, idempotencyKey: $key) { id name agencyId } }"""
IMPORT = """mutation($a: ID!, $csv: String!, $dry: Boolean!) {
  importRoster(agencyId: $a, csv: $csv, dryRun: $dry) { dryRun rows created updated unchanged } }"""
ADD_STAFF = """mutation($a: ID!, $input: AddStaffMemberInput!) {
  addStaffMember(agencyId: $a, input: $input) { id name email roles teamId hireDate status } }"""
LEFT = """mutation($a: ID!, $s: ID!) { recordStaffLeft(agencyId: $a, staffId: $s) { id status leftOn } }"""
OPEN = """mutation($a: ID!) { openReadinessRound(agencyId: $a, title: "Baseline") { id title status respondents } }"""
ANSWER = """mutation($a: ID!, $r: ID!, $answers: JSON!) {
  submitReadinessResponse(agencyId: $a, roundId: $r, answers: $answers) { roundId answers submittedAt } }"""
CLOSE = """mutation($a: ID!, $r: ID!) { closeReadinessRound(agencyId: $a, roundId: $r) {
  status level respondents results { key status } } }"""
ADD_ACTION = """mutation($a: ID!, $input: AddPlanActionInput!) {
  addPlanAction(agencyId: $a, input: $input) { id title readinessDomain ownerId dueOn status origin } }"""
UPDATE_ACTION = """mutation($a: ID!, $id: ID!, $input: UpdatePlanActionInput!) {
  updatePlanAction(agencyId: $a, actionId: $id, input: $input) { id title ownerId status } }"""
COMMENT = """mutation($a: ID!, $id: ID) { commentOnPlan(agencyId: $a, body: "Owner agreed.", actionId: $id) {
  id body actionId authorKind } }"""
APPROVE = """mutation($a: ID!) { approvePlan(agencyId: $a) { approved approvedRevision actions { id } } }"""

AGENCY = """query($id: ID!) { agency(id: $id) {
  id name stage readinessLevel planApproved
  trainingClearance { cleared reasons }
  policy { readyAt conditionsAt minRespondents }
  teams { id name }
  staff { id name status leftOn teamId roles }
  readinessRounds { title status level respondents reasons openedAt closedAt
                    results { key status respondents mean spread agreement } }
  plan { approved approvedRevision openActions overdueActions
         actions { id title readinessDomain ownerId dueOn status origin overdue completedOn }
         comments { body actionId authorKind } }
  stageHistory { stage previousStage enteredOn reason }
  turnover { asOf agency { active joined12m left12m newStaffShare turnoverRate }
             teams { teamId teamName active joined12m left12m } } } }"""


def roster(team: str, n: int, hired: date) -> str:
    rows = [f"Person {i},person{i}@example.org,{team},practitioner,{hired.isoformat()}" for i in range(n)]
    return "\n".join(["name,email,team,roles,hire_date", *rows]) + "\n"


async def test_an_agency_set_up_through_mutations_and_read_back_in_one_query(gql: Gateway):
    st = gql.st
    platform = st.token(str(uuid.uuid4()), "platform_admin")
    new = {"name": "Riverside", "region": "North", "programs": ["Wraparound"]}
    registered = (await gql.ok(REGISTER, platform, input=new, key="register-1"))["registerAgency"]
    assert registered["stage"] == "exploration" and registered["readinessLevel"] is None
    assert registered["trainingClearance"] == {"cleared": False,
                                               "reasons": ["no readiness assessment has been closed yet"]}
    again = (await gql.ok(REGISTER, platform, input=new, key="register-1"))["registerAgency"]
    assert again["id"] == registered["id"]  # the Idempotency-Key reached the service: one agency, not two
    a = registered["id"]
    admin = st.token(a, "agency_admin", sub=str(uuid.uuid4()))

    team = (await gql.ok(ADD_TEAM, admin, a=a, name="North", key="team-1"))["addTeam"]
    assert team["name"] == "North" and team["agencyId"] == a
    assert (await gql.ok(ADD_TEAM, admin, a=a, name="North", key="team-1"))["addTeam"]["id"] == team["id"]

    csv = roster("North", 6, TODAY - timedelta(days=800))
    dry = (await gql.ok(IMPORT, admin, a=a, csv=csv, dry=True))["importRoster"]
    assert dry == {"dryRun": True, "rows": 6, "created": 6, "updated": 0, "unchanged": 0}
    done = (await gql.ok(IMPORT, admin, a=a, csv=csv, dry=False))["importRoster"]
    assert done == {"dryRun": False, "rows": 6, "created": 6, "updated": 0, "unchanged": 0}
    hired = (TODAY - timedelta(days=30)).isoformat()
    nia = (await gql.ok(ADD_STAFF, admin, a=a, input={"name": "Nia New", "email": "nia@example.org", "roles": ["coach"],
                                                       "teamId": team["id"], "hireDate": hired}))["addStaffMember"]
    assert nia["status"] == "active" and nia["hireDate"] == hired and nia["teamId"] == team["id"]
    staff = (await gql.ok("query($id: ID!) { agency(id: $id) { staff(status: \"active\") { id email } } }",
                          admin, id=a))["agency"]["staff"]
    by_email = {m["email"]: m["id"] for m in staff}
    assert len(by_email) == 7
    people = [by_email[f"person{i}@example.org"] for i in range(6)]
    left = (await gql.ok(LEFT, admin, a=a, s=people[5]))["recordStaffLeft"]
    assert left == {"id": people[5], "status": "left", "leftOn": TODAY.isoformat()}

    round_ = (await gql.ok(OPEN, admin, a=a))["openReadinessRound"]
    assert round_["status"] == "open" and round_["respondents"] == 0
    answers = {i.key: 5 for i in READINESS_V1.items}
    for person in people[:5]:
        got = (await gql.ok(ANSWER, st.token(a, "practitioner", sub=person), a=a, r=round_["id"],
                            answers=answers))["submitReadinessResponse"]
        assert got["roundId"] == round_["id"] and got["answers"] == answers
    closed = (await gql.ok(CLOSE, admin, a=a, r=round_["id"]))["closeReadinessRound"]
    assert closed["status"] == "closed" and closed["level"] == "ready" and closed["respondents"] == 5

    due = (TODAY + timedelta(days=30)).isoformat()
    action = (await gql.ok(ADD_ACTION, admin, a=a, input={
        "title": "Protect supervision time", "readinessDomain": "supervision_capacity", "ownerId": nia["id"],
        "dueOn": due}))["addPlanAction"]
    assert action["origin"] == "manual" and action["status"] == "open" and action["dueOn"] == due
    moved = (await gql.ok(UPDATE_ACTION, admin, a=a, id=action["id"], input={"status": "in_progress"}))
    assert moved["updatePlanAction"]["ownerId"] == nia["id"]  # only the given field was sent
    comment = (await gql.ok(COMMENT, admin, a=a, id=action["id"]))["commentOnPlan"]
    assert comment["actionId"] == action["id"] and comment["authorKind"] == "agency"
    approved = (await gql.ok(APPROVE, admin, a=a))["approvePlan"]
    assert approved["approved"] and approved["approvedRevision"] == 1 and len(approved["actions"]) == 1

    gql.transport.calls.clear()
    got = (await gql.ok(AGENCY, admin, id=a))["agency"]
    assert gql.transport.calls == {"readiness": 8}  # the agency and one call per nested field asked for
    assert got["stage"] == "installation" and got["readinessLevel"] == "ready" and got["planApproved"]
    assert got["trainingClearance"] == {"cleared": True,
                                        "reasons": ["the latest readiness assessment found the agency ready"]}
    assert got["policy"] == {"readyAt": 4.0, "conditionsAt": 3.0, "minRespondents": 5}
    assert got["teams"] == [{"id": team["id"], "name": "North"}]
    assert len(got["staff"]) == 7
    assert {m["id"]: (m["status"], m["leftOn"]) for m in got["staff"]}[people[5]] == ("left", TODAY.isoformat())
    assert all(m["teamId"] == team["id"] for m in got["staff"])
    [r] = got["readinessRounds"]
    assert (r["title"], r["status"], r["level"], r["respondents"]) == ("Baseline", "closed", "ready", 5)
    assert r["closedAt"] >= r["openedAt"]
    assert {d["key"] for d in r["results"]} == {d.key for d in READINESS_V1.domains}
    assert all(d == {"key": d["key"], "status": "ok", "respondents": 5, "mean": 5.0, "spread": 0.0,
                     "agreement": 1.0} for d in r["results"])
    plan = got["plan"]
    assert plan["approved"] and plan["approvedRevision"] == 1 and plan["openActions"] == 1
    assert plan["actions"] == [{"id": action["id"], "title": "Protect supervision time",
                                "readinessDomain": "supervision_capacity", "ownerId": nia["id"], "dueOn": due,
                                "status": "in_progress", "origin": "manual", "overdue": False, "completedOn": None}]
    assert plan["comments"] == [{"body": "Owner agreed.", "actionId": action["id"], "authorKind": "agency"}]
    assert [(h["stage"], h["previousStage"], h["reason"]) for h in got["stageHistory"]] == [
        ("exploration", None, "the agency was registered"),
        ("installation", "exploration", "the implementation plan was approved")]
    assert all(h["enteredOn"] == TODAY.isoformat() for h in got["stageHistory"])
    turnover = got["turnover"]
    assert turnover["asOf"] == TODAY.isoformat()
    # 5 of the 6 imported still here plus Nia; Nia joined and one left in the last 12 months.
    assert turnover["agency"] == {"active": 6, "joined12m": 1, "left12m": 1, "newStaffShare": 0.167,
                                  "turnoverRate": 0.167}
    assert turnover["teams"] == [{"teamId": team["id"], "teamName": "North", "active": 6, "joined12m": 1,
                                  "left12m": 1}]

    gql.transport.calls.clear()
    assert (await gql.ok("query($id: ID!) { agency(id: $id) { name } }", admin, id=a))["agency"]["name"] == "Riverside"
    assert gql.transport.calls == {"readiness": 1}  # fields not asked for cost nothing
    mine = (await gql.ok("{ agencies { id } }", admin))["agencies"]
    assert mine == [{"id": a}]
    assert {"id": a} in (await gql.ok("{ agencies { id } }", platform))["agencies"]


async def test_an_admin_of_another_agency_is_refused_and_writes_nothing(gql: Gateway):
    a = await gql.register("A")
    b = await gql.register("B")
    admin_a = gql.st.token(a, "agency_admin")
    admin_b = gql.st.token(b, "agency_admin")

    body = await gql("query($id: ID!) { agency(id: $id) { id name teams { id } plan { id } } }", admin_b, id=a)
    assert body["data"] == {"agency": None}
    [err] = body["errors"]
    assert err["extensions"]["code"] == "FORBIDDEN" and err["extensions"]["service"] == "readiness"

    for query, variables in [(ADD_TEAM, {"a": a, "name": "Taken over"}),
                             (IMPORT, {"a": a, "csv": roster("", 1, TODAY), "dry": False})]:
        body = await gql(query, admin_b, **variables)
        assert body["data"] is None
        assert [e["extensions"]["code"] for e in body["errors"]] == ["FORBIDDEN"]
    got = (await gql.ok("query($id: ID!) { agency(id: $id) { teams { id } staff { id } } }", admin_a, id=a))["agency"]
    assert got == {"teams": [], "staff": []}
    assert (await gql.ok("{ agencies { id } }", admin_b))["agencies"] == [{"id": b}]


async def test_bad_mutation_input_comes_back_with_the_services_field_errors(gql: Gateway):
    a = await gql.register("A")
    admin = gql.st.token(a, "agency_admin")
    body = await gql(ADD_STAFF, admin, a=a, input={"name": "X", "email": "not-an-email", "roles": ["wizard"]})
    assert body["data"] is None
    [err] = body["errors"]
    assert err["extensions"]["code"] == "BAD_USER_INPUT" and err["extensions"]["status"] == 422
    assert {e["field"] for e in err["extensions"]["problem"]["errors"]} == {"body.email", "body.roles.0"}

    body = await gql(IMPORT, admin, a=a, csv="name,email,roles\nAna,ana@example.org,wizard\n", dry=False)
    [err] = body["errors"]
    assert err["extensions"]["code"] == "BAD_USER_INPUT"
    assert "unknown role 'wizard'" in err["extensions"]["problem"]["errors"][0]["message"]
    got = (await gql.ok("query($id: ID!) { agency(id: $id) { staff { id } } }", admin, id=a))["agency"]
    assert got == {"staff": []}


REJOIN = """mutation($a: ID!, $s: ID!, $roles: [String!]) {
  recordStaffRejoined(agencyId: $a, staffId: $s, roles: $roles) { id status leftOn roles hireDate } }"""


async def test_someone_who_left_rejoins(gql: Gateway):
    a = await gql.register("Comeback")
    admin = gql.st.token(a, "agency_admin")
    person = (await gql.ok(ADD_STAFF, admin, a=a, input={"name": "Ana", "email": "ana@example.org",
                                                         "roles": ["practitioner"]}))["addStaffMember"]
    refused = await gql(REJOIN, admin, a=a, s=person["id"])
    assert refused["errors"][0]["extensions"]["status"] == 409  # still active
    await gql.ok(LEFT, admin, a=a, s=person["id"])
    back = (await gql.ok(REJOIN, admin, a=a, s=person["id"], roles=["coach"]))["recordStaffRejoined"]
    assert back == {"id": person["id"], "status": "active", "leftOn": None, "roles": ["coach"],
                    "hireDate": TODAY.isoformat()}
