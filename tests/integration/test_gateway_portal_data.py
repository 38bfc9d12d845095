"""What the portal's pages read through the gateway, on SQLite and PostgreSQL, on a moved clock: the certified
share over time against the Full Implementation line, a readiness round's instrument and the caller's own answers
(never anyone else's), and the observer's practitioner picker; another agency sees none of it."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date
from pathlib import Path

import pytest

from tests.conftest import make_settings
from tests.gateway_harness import serving_gateway
from tests.integration.test_gateway_fidelity import REVOKE, START, Gateway, certify_through_the_gateway
from tests.stack import Clock, running_stack
from tests.support import NatsServer

SERVICES = ("readiness", "fidelity", "coaching")

HISTORY = """query($id: ID!, $months: Int!, $track: String! = "practitioner") { agency(id: $id) {
  fidelitySummary { fullImplementationPercent agency { active certified } }
  certifiedShareHistory(track: $track, months: $months) { month on active certified certifiedPercent } } }"""
CURRENT = "query($id: ID!) { practitioner(id: $id) { certification { current { id certifiedOn } } } }"
ADD_STAFF = """mutation($a: ID!, $input: AddStaffMemberInput!) { addStaffMember(agencyId: $a, input: $input) { id } }"""
OPEN = """mutation($a: ID!) { openReadinessRound(agencyId: $a, title: "Spring") { id } }"""
SURVEY = """query($id: ID!) { agency(id: $id) { readinessRounds {
  id status instrumentId
  instrument { id name scaleMin scaleMax domains { key label description } items { key domain text } }
  myAnswers { roundId answers submittedAt } } } }"""
ANSWER = """mutation($a: ID!, $r: ID!, $answers: JSON!) {
  submitReadinessResponse(agencyId: $a, roundId: $r, answers: $answers) { roundId answers } }"""
PICKER = """query($id: ID!) {
  agency(id: $id) { staff(status: "active", role: "practitioner") { id name roles } }
  instruments(status: "active", kind: "practice_observation") { id items { key label scaleMin scaleMax } }
  calibrationReferences { id instrumentId title } }"""


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
async def gql(nats_server: NatsServer, make_db_url, tmp_path: Path,  # type: ignore[no-untyped-def]
              monkeypatch: pytest.MonkeyPatch, clock: Clock) -> AsyncIterator[Gateway]:
    settings = make_settings(nats_server.url, tmp_path)
    for name in SERVICES:
        monkeypatch.setenv(f"TRELLIS_{name.upper()}_BASE_URL", f"http://{name}")
    async with (running_stack(settings, {name: make_db_url(name) for name in SERVICES}, clock=clock) as st,
                serving_gateway(st, settings) as (http, transport)):
        yield Gateway(st, http, transport, clock)


async def refused(gql: Gateway, query: str, headers: dict[str, str], **variables: object) -> dict[str, object]:
    """The one error of a refused agency (`agency` is nullable, so the data is {agency: null})."""
    body = await gql(query, headers, **variables)
    assert body["data"] is None or body["data"].get("agency") is None, body
    [err] = body["errors"]
    return err["extensions"]  # type: ignore[no-any-return]


def points(got: dict[str, object]) -> list[tuple[str, int, int, float | None]]:
    return [(p["on"], p["active"], p["certified"], p["certifiedPercent"])  # type: ignore[index]
            for p in got["certifiedShareHistory"]]  # type: ignore[attr-defined]


async def test_certified_share_over_time_follows_certification_and_revocation(gql: Gateway) -> None:
    st = gql.st
    agency = await gql.register("Brookside")
    admin = st.token(agency, "agency_admin")
    c = await certify_through_the_gateway(gql, agency)  # certified on START + 30 days: 2026-02-04
    certified_on = date(2026, 2, 4)
    assert (await gql.ok(CURRENT, admin, id=c.person))["practitioner"]["certification"]["current"]["certifiedOn"] \
        == certified_on.isoformat()

    gql.clock.move(34)  # 2026-03-10
    gql.transport.calls.clear()
    got = (await gql.ok(HISTORY, admin, id=agency, months=3))["agency"]
    assert gql.transport.calls == {"readiness": 1, "fidelity": 2}
    summary = got["fidelitySummary"]
    assert summary["fullImplementationPercent"] == 50.0
    active = summary["agency"]["active"]
    assert active >= 1 and summary["agency"]["certified"] == 1
    share = round(100.0 / active, 1)
    assert points(got) == [("2026-01-31", active, 0, 0.0), ("2026-02-28", active, 1, share),
                           ("2026-03-10", active, 1, share)]
    assert [p["month"] for p in got["certifiedShareHistory"]] == ["2026-01", "2026-02", "2026-03"]

    # Revoked on 2026-03-10: not in force from that day, so March's end and later count it out.
    cert = (await gql.ok(CURRENT, admin, id=c.person))["practitioner"]["certification"]["current"]["id"]
    revoked = (await gql.ok(REVOKE, admin, id=cert, reason="Practice concerns after review"))["revokeCertification"]
    assert revoked["status"] == "revoked" and revoked["endedOn"] == "2026-03-10"
    gql.clock.move(23)  # 2026-04-02
    got = (await gql.ok(HISTORY, admin, id=agency, months=4))["agency"]
    assert points(got) == [("2026-01-31", active, 0, 0.0), ("2026-02-28", active, 1, share),
                           ("2026-03-31", active, 0, 0.0), ("2026-04-02", active, 0, 0.0)]
    assert len((await gql.ok(HISTORY, admin, id=agency, months=36))["agency"]["certifiedShareHistory"]) == 36
    coach = (await gql.ok(HISTORY, admin, id=agency, months=1, track="coach"))["agency"]["certifiedShareHistory"]
    assert [(p["active"], p["certified"], p["certifiedPercent"]) for p in coach] == [(0, 0, None)]

    # Bad input is refused with problem+json, through the gateway and directly.
    for months in (0, 37):
        body = await gql(HISTORY, admin, id=agency, months=months)
        assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT", body
        r = await st.fidelity.get(f"/v1/agencies/{agency}/fidelity-summary/history", params={"months": months},
                                  headers=admin)
        assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json"), r.text
    r = await st.fidelity.get(f"/v1/agencies/{agency}/fidelity-summary/history", params={"track": "wizard"},
                              headers=admin)
    assert r.status_code == 422 and r.headers["content-type"].startswith("application/problem+json")

    # Another agency's admin, and a practitioner of this one, read nothing.
    other = await gql.register("Elsewhere")
    stranger = st.token(other, "agency_admin")
    err = await refused(gql, HISTORY, stranger, id=agency, months=3)
    assert err["code"] == "FORBIDDEN"
    for headers in (stranger, st.token(agency, "practitioner", sub=c.person)):
        r = await st.fidelity.get(f"/v1/agencies/{agency}/fidelity-summary/history", headers=headers)
        assert r.status_code == 403 and r.headers["content-type"].startswith("application/problem+json")
    mine = (await gql.ok(HISTORY, stranger, id=other, months=2))["agency"]["certifiedShareHistory"]
    assert all(p["certified"] == 0 for p in mine)


async def test_staff_answer_an_open_round_and_see_only_their_own_answers(gql: Gateway) -> None:
    st = gql.st
    agency = await gql.register("Hillside")
    admin = st.token(agency, "agency_admin")
    people = [(await gql.ok(ADD_STAFF, admin, a=agency, input={
        "name": f"Person {i}", "email": f"p{i}@example.org", "roles": ["practitioner"]}))["addStaffMember"]["id"]
        for i in range(2)]
    round_id = (await gql.ok(OPEN, admin, a=agency))["openReadinessRound"]["id"]
    first, second = (st.token(agency, "practitioner", sub=p) for p in people)

    gql.transport.calls.clear()
    [r] = (await gql.ok(SURVEY, first, id=agency))["agency"]["readinessRounds"]
    assert gql.transport.calls == {"readiness": 4}  # agency, rounds, instruments, my answers
    assert r["id"] == round_id and r["status"] == "open" and r["myAnswers"] is None
    inst = r["instrument"]
    assert inst["id"] == r["instrumentId"] and inst["scaleMin"] < inst["scaleMax"]
    domains = {d["key"] for d in inst["domains"]}
    assert inst["items"] and all(i["domain"] in domains and i["text"] for i in inst["items"])
    assert all(d["label"] for d in inst["domains"])
    direct = (await gql.ok("query($id: ID!) { readinessInstrument(id: $id) { id items { key } } }", first,
                           id=inst["id"]))["readinessInstrument"]
    assert direct == {"id": inst["id"], "items": [{"key": i["key"]} for i in inst["items"]]}
    listed = (await gql.ok("{ readinessInstruments { id } }", first))["readinessInstruments"]
    assert {"id": inst["id"]} in listed
    err = await refused(gql, "query($id: ID!) { readinessInstrument(id: $id) { id } }", first, id=str(uuid.uuid4()))
    assert err["code"] == "NOT_FOUND"

    answers = {item["key"]: inst["scaleMax"] for item in inst["items"]}
    got = (await gql.ok(ANSWER, first, a=agency, r=round_id, answers=answers))["submitReadinessResponse"]
    assert got == {"roundId": round_id, "answers": answers}
    [r] = (await gql.ok(SURVEY, first, id=agency))["agency"]["readinessRounds"]
    assert r["myAnswers"]["roundId"] == round_id and r["myAnswers"]["answers"] == answers  # the form is prefilled
    # The other respondent sees only that they have not answered, never the first one's answers.
    [r] = (await gql.ok(SURVEY, second, id=agency))["agency"]["readinessRounds"]
    assert r["myAnswers"] is None

    # Another agency's admin sees nothing of this agency's rounds.
    other = await gql.register("Faraway")
    err = await refused(gql, SURVEY, st.token(other, "agency_admin"), id=agency)
    assert err["code"] == "FORBIDDEN"


async def test_the_observer_form_has_its_instrument_references_and_practitioner_picker(gql: Gateway) -> None:
    st = gql.st
    agency = await gql.register("Valleyside")
    admin = st.token(agency, "agency_admin")
    ids = {}
    for name, roles in (("Pat", ["practitioner"]), ("Sam", ["practitioner", "coach"]), ("Olu", ["observer"])):
        ids[name] = (await gql.ok(ADD_STAFF, admin, a=agency, input={
            "name": name, "email": f"{name.lower()}@example.org", "roles": roles}))["addStaffMember"]["id"]
    for role in ("observer", "coach", "supervisor"):
        got = await gql.ok(PICKER, st.token(agency, role), id=agency)
        assert {m["id"] for m in got["agency"]["staff"]} == {ids["Pat"], ids["Sam"]}
        [inst] = got["instruments"]
        assert inst["items"] and all(i["scaleMin"] < i["scaleMax"] for i in inst["items"])
        assert any(ref["instrumentId"] == inst["id"] for ref in got["calibrationReferences"])
    # A practitioner does not get the roster; another agency's observer gets nothing of this one.
    err = await refused(gql, PICKER, st.token(agency, "practitioner", sub=ids["Pat"]), id=agency)
    assert err["code"] == "FORBIDDEN"
    other = await gql.register("Distant")
    err = await refused(gql, PICKER, st.token(other, "observer"), id=agency)
    assert err["code"] == "FORBIDDEN"
