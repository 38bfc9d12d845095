"""Fidelity through the gateway, on SQLite and PostgreSQL, on an injectable clock: calibrate, observe and
certify through mutations, then certification, the chart and drift in one query and the agency's summary;
amendments, instrument versions, revocation and the policy, with the service's refusals arriving as
GraphQL errors."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

import gateway.fidelity
from contracts.learning import CourseCompleted
from services.fidelity.domain import MIIWRAP_PRACTICE_V1, SEEDED_REFERENCES, add_months
from tests.conftest import make_settings
from tests.gateway_harness import GraphQL, RoutingTransport, serving_gateway
from tests.stack import INSTRUMENT, Clock, Stack, eventually, full_scores, running_stack
from tests.support import NatsServer
from trellis.bus import jetstream
from trellis.envelope import Envelope

START = date(2026, 1, 5)
SERVICES = ("readiness", "fidelity", "coaching")


class Gateway(GraphQL):
    def __init__(self, st: Stack, http: httpx.AsyncClient, transport: RoutingTransport, clock: Clock) -> None:
        super().__init__(st, http, transport)
        self.clock = clock

    async def register(self, name: str) -> str:
        platform = self.st.token(str(uuid.uuid4()), "platform_admin")
        data = await self.ok("mutation($name: String!) { registerAgency(input: {name: $name}) { id } }", platform,
                             name=name)
        return data["registerAgency"]["id"]  # type: ignore[no-any-return]


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


CALIBRATE = """mutation($ref: ID, $obs: ID, $scores: [ItemScoreInput!]!) {
  calibrate(referenceId: $ref, observationId: $obs, scores: $scores) {
    id raterId family referenceId observationId agreement totalDifference itemsCompared mismatched calibratedOn
    calibrated referenceScores { item score } } }"""
RATER = """query($id: ID!) { raterStatus(raterId: $id) { raterId family calibrated reason validUntil } }"""
RECORD = """mutation($input: RecordObservationInput!) { recordObservation(input: $input) {
  id kind instrumentFamily observedOn setting score passed amendments amendableUntil } }"""
MISSING = """query($id: ID!) { practitioner(id: $id) { certification { status missing current { id } } } }"""
PRACTITIONER = """query($id: ID!) { practitioner(id: $id) {
  certification { status expiresOn missing
                  current { id certifiedOn expiresOn windowOpensOn revision evidence }
                  timeline { status reason revision observationIds actor } }
  fidelitySeries { observationId score ewma lowerLimit passThreshold flagged }
  drift { family drifting evidence metrics { metric flagged observations } } } }"""
SUMMARY = """query($id: ID!) { agency(id: $id) { fidelitySummary {
  agencyId track asOf
  agency { active certified certifiedPercent inRecertificationWindow lapsedLast90Days observationsLast90Days
           meanScoreLast90Days distributionLast90Days { from to count } drifting }
  teams { teamId active certified } } } }"""
OBSERVATION = """query($id: ID!) { observation(id: $id) {
  score amendments itemScores { item score }
  amendmentHistory { number reason previousTotal totalScore amendedBy } } }"""
AMEND = """mutation($id: ID!, $scores: [ItemScoreInput!]!, $reason: String!, $notes: String) {
  amendObservation(id: $id, scores: $scores, reason: $reason, notes: $notes) {
    id score passed notes amendments
    amendmentHistory { number reason previousTotal previousPassed totalScore passed
                       previousScores { item score } } } }"""
REVOKE = """mutation($id: ID!, $reason: String!) {
  revokeCertification(id: $id, reason: $reason) { id status revision endedOn } }"""
INSTRUMENT_FRAGMENT = """fragment I on Instrument {
  id family kind track name description version status passThreshold competencies activatedAt retiredAt
  items { key label competency scaleMin scaleMax critical criticalMin required weight } }"""
CREATE = "mutation($input: CreateInstrumentInput!) { createInstrument(input: $input) { ...I } }" + INSTRUMENT_FRAGMENT
EDIT = "mutation($id: ID!, $input: EditInstrumentInput!) { editInstrument(id: $id, input: $input) { ...I } }" + (
    INSTRUMENT_FRAGMENT)
ACTIVATE = "mutation($id: ID!) { activateInstrument(id: $id) { id version status activatedAt } }"
RETIRE = "mutation($id: ID!) { retireInstrument(id: $id) { id version status retiredAt } }"
NEW_VERSION = "mutation($id: ID!) { startInstrumentVersion(id: $id) { ...I } }" + INSTRUMENT_FRAGMENT
FAMILY = """query($family: String!) { instruments(family: $family) { id version status } }"""
SET_POLICY = """mutation($input: CertificationPolicyInput!) { setCertificationPolicy(input: $input) {
  requiredPasses lookbackDays minGapDays validMonths windowDays calibrationAgreement
  practitionerCourse coachCourse } }"""
POLICY = "{ certificationPolicy { requiredPasses practitionerCourse coachCourse } }"


def score_list(scores: dict[str, int]) -> list[dict[str, Any]]:
    return [{"item": k, "score": v} for k, v in scores.items()]


def observed(person: str, on: date, value: int = 2, **extra: Any) -> dict[str, Any]:
    return {"practitionerId": person, "instrumentId": INSTRUMENT, "observedOn": on.isoformat(),
            "setting": "team_meeting", "scores": score_list(full_scores(value)), **extra}


async def complete_course(st: Stack, agency: str, person: str) -> None:
    """What learning will publish once the person masters the course fidelity's policy asks for."""
    done = CourseCompleted(enrollment_id=str(uuid.uuid4()), learner_id=person, course_id=str(uuid.uuid4()),
                           course_key="miiwrap-practice", completed_on=START)
    env = Envelope.wrap(done, source="tests", subject=person, agency=agency)
    js = jetstream(st.apps["fidelity"].state.broker)
    await js.publish(env.nats_subject, env.to_bytes(), headers={"Nats-Msg-Id": env.id}, stream="LEARNING")


async def calibrated_observer(gql: Gateway, agency: str) -> tuple[str, dict[str, str]]:
    """An observer who calibrates on the seeded reference through the gateway, scoring it exactly."""
    who = str(uuid.uuid4())
    headers = gql.st.token(agency, "observer", sub=who)
    ref = SEEDED_REFERENCES[0]
    got = (await gql.ok(CALIBRATE, headers, ref=ref.id, scores=score_list(ref.scores)))["calibrate"]
    assert got | {"id": None} == {
        "id": None, "raterId": who, "family": "miiwrap-practice", "referenceId": ref.id, "observationId": None,
        "agreement": 100.0, "totalDifference": 0.0, "itemsCompared": len(ref.scores), "mismatched": [],
        "calibratedOn": START.isoformat(), "calibrated": True, "referenceScores": score_list(ref.scores)}
    return who, headers


@dataclass
class Certified:
    agency: str
    person: str
    observer: dict[str, str]
    observations: list[str]


async def certify_through_the_gateway(gql: Gateway, agency: str) -> Certified:
    """Calibrate, complete the course, then two passing observations 30 days apart: certified."""
    st = gql.st
    (person,) = await st.staffed(agency)
    supervisor = st.token(agency, "supervisor")
    who, observer = await calibrated_observer(gql, agency)
    status = (await gql.ok(RATER, supervisor, id=who))["raterStatus"]
    assert status["calibrated"] and status["validUntil"] == (START + timedelta(days=365)).isoformat()

    await complete_course(st, agency, person)

    async def course_seen() -> bool:
        got = (await gql.ok(MISSING, supervisor, id=person))["practitioner"]["certification"]
        return not any("course" in m for m in got["missing"])

    await eventually(course_seen)

    first = (await gql.ok(RECORD, observer, input=observed(person, gql.clock.today, kind="recording_review",
                                                            setting="recording")))["recordObservation"]
    assert first | {"id": None} == {
        "id": None, "kind": "recording_review", "instrumentFamily": "miiwrap-practice",
        "observedOn": START.isoformat(), "setting": "recording", "score": 100.0, "passed": True, "amendments": 0,
        "amendableUntil": (START + timedelta(days=7)).isoformat()}
    cert = (await gql.ok(MISSING, supervisor, id=person))["practitioner"]["certification"]
    assert cert["status"] == "not_certified" and cert["current"] is None
    assert len(cert["missing"]) == 1 and "2 passing observations" in cert["missing"][0]

    gql.clock.move(30)
    second = (await gql.ok(RECORD, observer, input=observed(person, gql.clock.today)))["recordObservation"]
    assert second["kind"] == "live_observation" and second["passed"]  # the default kind
    return Certified(agency, person, observer, [first["id"], second["id"]])


async def test_certified_through_mutations_then_read_in_one_query(gql: Gateway, monkeypatch: pytest.MonkeyPatch):
    st = gql.st
    agency = await gql.register("Riverside")
    admin = st.token(agency, "agency_admin")

    # An observer who has not calibrated is refused, with the service's reason for the field.
    (person,) = await st.staffed(agency)
    err = await gql.refused(RECORD, st.token(agency, "observer"), input=observed(person, START))
    assert err["code"] == "BAD_USER_INPUT" and err["service"] == "fidelity"
    assert [e["code"] for e in err["problem"]["errors"]] == ["rater-not-calibrated"]

    c = await certify_through_the_gateway(gql, agency)
    today = gql.clock.today
    gql.transport.calls.clear()
    got = (await gql.ok(PRACTITIONER, admin, id=c.person))["practitioner"]
    assert gql.transport.calls == {"fidelity": 3}  # one call per field asked for, the series in one page

    cert = got["certification"]
    expires = add_months(today, 24)
    assert cert["status"] == "certified" and cert["expiresOn"] == expires.isoformat() and cert["missing"] == []
    assert cert["current"] | {"id": None} == {
        "id": None, "certifiedOn": today.isoformat(), "expiresOn": expires.isoformat(),
        "windowOpensOn": (expires - timedelta(days=90)).isoformat(), "revision": 1, "evidence": c.observations}
    assert cert["timeline"] == [{"status": "certified", "revision": 1, "observationIds": c.observations,
                                 "reason": "course completed and 2 passing observations, at least 30 days apart",
                                 "actor": None}]

    series = got["fidelitySeries"]
    assert [p["observationId"] for p in series] == c.observations
    # The EWMA (λ 0.2) starts from the program's centre of 85 and climbs with two perfect scores.
    assert [(p["score"], p["ewma"], p["passThreshold"], p["flagged"]) for p in series] == [
        (100.0, 88.0, 80.0, None), (100.0, 90.4, 80.0, None)]
    assert all(p["lowerLimit"] < 85.0 for p in series)
    with monkeypatch.context() as m:  # pages of one point: the series still comes whole, in order
        m.setattr(gateway.fidelity, "MAX_PAGE", 1)
        gql.transport.calls.clear()
        paged = (await gql.ok("query($id: ID!) { practitioner(id: $id) { fidelitySeries { observationId score "
                              "ewma lowerLimit passThreshold flagged } } }", admin, id=c.person))["practitioner"]
    assert paged["fidelitySeries"] == series and gql.transport.calls == {"fidelity": 2}

    [drift] = got["drift"]
    assert drift["family"] == "miiwrap-practice" and not drift["drifting"] and drift["evidence"] == []
    assert {m["metric"] for m in drift["metrics"]} == {"total", *MIIWRAP_PRACTICE_V1.competencies}
    assert all(m["observations"] == 2 and m["flagged"] is None for m in drift["metrics"])

    gql.transport.calls.clear()
    summary = (await gql.ok(SUMMARY, admin, id=agency))["agency"]["fidelitySummary"]
    assert gql.transport.calls == {"readiness": 1, "fidelity": 1}
    assert (summary["agencyId"], summary["track"], summary["asOf"]) == (agency, "practitioner", today.isoformat())
    # Two practitioners on the roster, one of them certified; the observer is not on it.
    figures = summary["agency"]
    assert figures | {"distributionLast90Days": None} == {
        "active": 2, "certified": 1, "certifiedPercent": 50.0, "inRecertificationWindow": 0, "lapsedLast90Days": 0,
        "observationsLast90Days": 2, "meanScoreLast90Days": 100.0, "distributionLast90Days": None, "drifting": 0}
    assert figures["distributionLast90Days"][-1] == {"from": 90.0, "to": 100.0, "count": 2}
    assert sum(b["count"] for b in figures["distributionLast90Days"]) == 2
    assert summary["teams"] == [{"teamId": None, "active": 2, "certified": 1}]

    # Fields not asked for cost nothing.
    gql.transport.calls.clear()
    await gql.ok("query($id: ID!) { practitioner(id: $id) { id } agency(id: $id) { id } }", admin, id=agency)
    assert gql.transport.calls == {"readiness": 1}

    coach = (await gql.ok("query($id: ID!) { practitioner(id: $id) { certification(track: \"coach\") { status "
                          "missing } } }", admin, id=c.person))["practitioner"]["certification"]
    assert coach["status"] == "not_certified" and len(coach["missing"]) == 2
    body = await gql("query($id: ID!) { practitioner(id: $id) { certification(track: \"wizard\") { status } } }",
                     admin, id=c.person)
    assert body["errors"][0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_revocation_ends_the_certification_and_grows_the_timeline(gql: Gateway):
    agency = await gql.register("Lakeside")
    c = await certify_through_the_gateway(gql, agency)
    timeline = "query($id: ID!) { practitioner(id: $id) { certification { status expiresOn current { id } " \
               "timeline { status reason actor } } } }"
    admin_id = str(uuid.uuid4())
    admin = gql.st.token(agency, "agency_admin", sub=admin_id)
    cert_id = (await gql.ok(timeline, admin, id=c.person))["practitioner"]["certification"]["current"]["id"]

    err = await gql.refused(REVOKE, gql.st.token(agency, "coach"), id=cert_id, reason="Practice concerns")
    assert err["code"] == "FORBIDDEN" and err["status"] == 403
    err = await gql.refused(REVOKE, admin, id=cert_id, reason="no")
    assert err["code"] == "BAD_USER_INPUT"

    revoked = (await gql.ok(REVOKE, admin, id=cert_id, reason="Practice concerns confirmed by review"))
    assert revoked["revokeCertification"] == {"id": cert_id, "status": "revoked", "revision": 2,
                                              "endedOn": gql.clock.today.isoformat()}
    after = (await gql.ok(timeline, admin, id=c.person))["practitioner"]["certification"]
    assert after["status"] == "revoked" and after["current"] is None and after["expiresOn"] is None
    assert [t["status"] for t in after["timeline"]] == ["certified", "revoked"]
    assert after["timeline"][-1] == {"status": "revoked", "reason": "Practice concerns confirmed by review",
                                     "actor": admin_id}

    err = await gql.refused(REVOKE, admin, id=cert_id, reason="Again, to be sure")
    assert err["code"] == "UPSTREAM_ERROR" and err["status"] == 409
    assert err["problem"]["type"] == "urn:trellis:problem:not-current"


async def test_only_its_observer_amends_an_observation_and_only_for_a_week(gql: Gateway):
    st = gql.st
    agency = str(uuid.uuid4())  # fidelity alone: no readiness agency needed
    (person,) = await st.staffed(agency)
    observer = await st.observer(agency)
    recorded = (await gql.ok(RECORD, observer, input=observed(person, START)))["recordObservation"]
    obs = recorded["id"]
    corrected = {**full_scores(2), "actions_owned": 1}

    other = await st.observer(agency, fresh=True)  # calibrated too, but not the one who recorded it
    err = await gql.refused(AMEND, other, id=obs, scores=score_list(corrected), reason="Miscounted an item")
    assert err["code"] == "FORBIDDEN" and err["service"] == "fidelity" and err["status"] == 403
    assert err["problem"]["type"] == "urn:trellis:problem:not-your-record"
    supervisor = st.token(agency, "supervisor")
    unchanged = (await gql.ok(OBSERVATION, supervisor, id=obs))["observation"]
    assert unchanged["score"] == 100.0 and unchanged["amendments"] == 0 and unchanged["amendmentHistory"] == []

    gql.transport.calls.clear()
    twice = [*score_list(corrected), {"item": "actions_owned", "score": 2}]
    err = await gql.refused(AMEND, observer, id=obs, scores=twice, reason="Miscounted an item")
    assert err["code"] == "BAD_USER_INPUT" and gql.transport.calls == {}  # refused before any upstream call
    err = await gql.refused(AMEND, observer, id=obs, scores=score_list({"actions_owned": 1}), reason="Miscounted")
    assert err["code"] == "BAD_USER_INPUT" and len(err["problem"]["errors"]) == len(MIIWRAP_PRACTICE_V1.items) - 1

    gql.clock.move(7)  # the last day it may be amended
    amended = (await gql.ok(AMEND, observer, id=obs, scores=score_list(corrected), reason="Miscounted an item",
                            notes="Action owners were not all named."))["amendObservation"]
    assert amended["id"] == obs and amended["amendments"] == 1 and amended["passed"]
    assert amended["score"] == 95.45 and amended["notes"] == "Action owners were not all named."
    [history] = amended["amendmentHistory"]
    assert history | {"previousScores": None} == {
        "number": 1, "reason": "Miscounted an item", "previousTotal": 100.0, "previousPassed": True,
        "totalScore": 95.45, "passed": True, "previousScores": None}
    assert history["previousScores"] == score_list(full_scores(2))
    series = (await gql.ok("query($id: ID!) { practitioner(id: $id) { fidelitySeries { score } } }", supervisor,
                           id=person))["practitioner"]["fidelitySeries"]
    assert series == [{"score": 95.45}]  # the chart follows the amendment

    gql.clock.move(1)
    err = await gql.refused(AMEND, observer, id=obs, scores=score_list(full_scores(2)), reason="Changed my mind")
    assert err["code"] == "UPSTREAM_ERROR" and err["status"] == 409
    assert err["problem"]["type"] == "urn:trellis:problem:observation-final"
    assert (await gql.ok(OBSERVATION, supervisor, id=obs))["observation"]["amendments"] == 1


async def test_instrument_versions_draft_active_retired(gql: Gateway):
    st = gql.st
    platform = st.token(str(uuid.uuid4()), "platform_admin")
    family = f"dart-{uuid.uuid4().hex[:8]}"
    new = {"family": family, "kind": "record_review", "name": "DART record review", "passThreshold": 75,
           "items": [{"key": "needs_documented", "label": "Needs documented", "competency": "Documentation"},
                     {"key": "crisis_plan", "label": "Crisis plan on file", "competency": "Safety", "critical": True,
                      "criticalMin": 2, "weight": 2.5, "scaleMax": 3}]}

    err = await gql.refused(CREATE, st.token(str(uuid.uuid4()), "agency_admin"), input=new)
    assert err["code"] == "FORBIDDEN"
    draft = (await gql.ok(CREATE, platform, input=new))["createInstrument"]
    assert draft | {"id": None, "items": None} == {
        "id": None, "family": family, "kind": "record_review", "track": None, "name": "DART record review",
        "description": "", "version": 1, "status": "draft", "passThreshold": 75.0,
        "competencies": ["Documentation", "Safety"], "activatedAt": None, "retiredAt": None, "items": None}
    assert draft["items"] == [
        {"key": "needs_documented", "label": "Needs documented", "competency": "Documentation", "scaleMin": 0,
         "scaleMax": 2, "critical": False, "criticalMin": 1, "required": True, "weight": 1.0},
        {"key": "crisis_plan", "label": "Crisis plan on file", "competency": "Safety", "scaleMin": 0, "scaleMax": 3,
         "critical": True, "criticalMin": 2, "required": True, "weight": 2.5}]
    err = await gql.refused(CREATE, platform, input=new)
    assert err["status"] == 409 and err["problem"]["type"] == "urn:trellis:problem:family-exists"

    edited = (await gql.ok(EDIT, platform, id=draft["id"], input={"name": "DART review", "description": "Plans"}))
    edited = edited["editInstrument"]
    assert (edited["name"], edited["description"], edited["passThreshold"]) == ("DART review", "Plans", 75.0)
    assert edited["items"] == draft["items"]  # only the fields given changed
    err = await gql.refused(EDIT, platform, id=draft["id"], input={"items": [
        {"key": "Bad Key", "label": "x", "competency": "y", "scaleMin": 2, "scaleMax": 2}]})
    assert err["code"] == "BAD_USER_INPUT"
    assert {e["field"] for e in err["problem"]["errors"]} == {"body.items.0.key", "body.items.0.scale_max"}

    active = (await gql.ok(ACTIVATE, platform, id=draft["id"]))["activateInstrument"]
    assert active["status"] == "active" and active["activatedAt"] is not None
    err = await gql.refused(EDIT, platform, id=draft["id"], input={"passThreshold": 90})
    assert err["code"] == "UPSTREAM_ERROR" and err["service"] == "fidelity" and err["status"] == 409
    assert err["problem"]["type"] == "urn:trellis:problem:instrument-immutable"
    err = await gql.refused(ACTIVATE, platform, id=draft["id"])
    assert err["status"] == 409

    v2 = (await gql.ok(NEW_VERSION, platform, id=draft["id"]))["startInstrumentVersion"]
    assert (v2["version"], v2["status"], v2["name"], v2["items"]) == (2, "draft", "DART review", draft["items"])
    err = await gql.refused(NEW_VERSION, platform, id=draft["id"])
    assert err["problem"]["type"] == "urn:trellis:problem:draft-exists"
    changed = (await gql.ok(EDIT, platform, id=v2["id"], input={"passThreshold": 90}))["editInstrument"]
    assert changed["passThreshold"] == 90.0
    await gql.ok(ACTIVATE, platform, id=v2["id"])
    versions = (await gql.ok(FAMILY, st.token(str(uuid.uuid4()), "supervisor"), family=family))["instruments"]
    assert [(v["version"], v["status"]) for v in versions] == [(1, "retired"), (2, "active")]

    retired = (await gql.ok(RETIRE, platform, id=v2["id"]))["retireInstrument"]
    assert retired["status"] == "retired" and retired["retiredAt"] is not None
    every = (await gql.ok("{ instruments { family track items { weight criticalMin required } } }", platform))
    practice = next(i for i in every["instruments"] if i["family"] == "miiwrap-practice")
    assert practice["track"] == "practitioner"
    assert all(i["weight"] == 1.0 and i["required"] for i in practice["items"])


async def test_the_agency_policy_decides_what_certifies(gql: Gateway):
    st = gql.st
    agency = str(uuid.uuid4())
    admin = st.token(agency, "agency_admin")
    assert (await gql.ok(POLICY, admin))["certificationPolicy"] == {
        "requiredPasses": 2, "practitionerCourse": "miiwrap-practice", "coachCourse": "miiwrap-coaching"}

    err = await gql.refused(SET_POLICY, st.token(agency, "supervisor"), input={"requiredPasses": 1})
    assert err["code"] == "FORBIDDEN"
    err = await gql.refused(SET_POLICY, admin, input={"requiredPasses": 0, "windowDays": 0})
    assert err["code"] == "BAD_USER_INPUT"
    assert {e["field"] for e in err["problem"]["errors"]} == {"body.required_passes", "body.window_days"}

    got = (await gql.ok(SET_POLICY, admin, input={"requiredPasses": 1, "practitionerCourse": None}))
    assert got["setCertificationPolicy"] == {
        "requiredPasses": 1, "lookbackDays": 365, "minGapDays": 30, "validMonths": 24, "windowDays": 90,
        "calibrationAgreement": 80.0, "practitionerCourse": None, "coachCourse": "miiwrap-coaching"}
    assert (await gql.ok(POLICY, st.token(agency, "supervisor")))["certificationPolicy"] == {
        "requiredPasses": 1, "practitionerCourse": None, "coachCourse": "miiwrap-coaching"}

    # One pass and no course now certify.
    (person,) = await st.staffed(agency)
    await gql.ok(RECORD, await st.observer(agency), input=observed(person, START))
    cert = (await gql.ok(MISSING, admin, id=person))["practitioner"]["certification"]
    assert cert["status"] == "certified" and cert["missing"] == []
