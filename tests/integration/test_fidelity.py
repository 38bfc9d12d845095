"""Fidelity over REST with a real nats-server, on SQLite and PostgreSQL, on an injectable clock:
the certification lifecycle (certify, window, renew, lapse, re-certify, revoke) with each event exactly
once even under concurrent sweeps, drift detected and cleared, rater calibration, versioned instruments,
amendments, summaries, and bad input."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from contracts.learning import CourseCompleted
from contracts.readiness import StaffMemberJoined
from services.fidelity.domain import MIIWRAP_PRACTICE_V1, SEEDED_REFERENCES, add_months
from services.fidelity.models import ROSTER as FIDELITY_ROSTER
from services.fidelity.models import Calibration, InstrumentRow, Observation, PolicyRow, TimelineEntry
from services.fidelity.usecases import sweep_certifications
from tests.conftest import make_settings
from tests.stack import INSTRUMENT, Clock, Stack, eventually, full_scores, observation, problem, running_stack
from tests.support import NatsServer
from trellis.bus import jetstream
from trellis.db import Database, outbox
from trellis.envelope import Envelope

START = date(2026, 1, 5)
COACHING_INSTRUMENT = "0190a000-0000-7000-8000-000000000002"


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
async def st(nats_server: NatsServer, make_db_url, tmp_path: Path, clock: Clock) -> AsyncIterator[Stack]:
    settings = make_settings(nats_server.url, tmp_path)
    urls = {name: make_db_url(name) for name in ("fidelity", "coaching")}
    async with running_stack(settings, urls, clock=clock) as stack:
        yield stack



def db(st: Stack) -> Database:
    return st.apps["fidelity"].state.db  # type: ignore[no-any-return]


async def count(st: Stack, what: Any, *where: Any) -> int:
    async with db(st).reader(all_agencies=True) as s:
        return int((await s.execute(select(func.count()).select_from(what).where(*where))).scalar_one())


async def staged(st: Stack, name: str) -> int:
    """Events of one type staged in fidelity's outbox (exactly-once is judged here and on the stream)."""
    return await count(st, outbox, outbox.c.event_type == f"fidelity.{name}.v1")


async def published(st: Stack, name: str, agency: str) -> int:
    info = await jetstream(st.apps["fidelity"].state.broker).stream_info("FIDELITY",
                                                                        subjects_filter=f"fidelity.{name}.{agency}")
    return int((info.state.subjects or {}).get(f"fidelity.{name}.{agency}", 0))


async def complete_course(st: Stack, agency: str, person: str, key: str = "miiwrap-practice") -> None:
    done = CourseCompleted(enrollment_id=str(uuid.uuid4()), learner_id=person, course_id=str(uuid.uuid4()),
                           course_key=key, completed_on=START)
    env = Envelope.wrap(done, source="tests", subject=person, agency=agency)
    js = jetstream(st.apps["fidelity"].state.broker)
    await js.publish(env.nats_subject, env.to_bytes(), headers={"Nats-Msg-Id": env.id}, stream="LEARNING")


async def certification(st: Stack, agency: str, person: str, track: str = "practitioner") -> dict[str, Any]:
    r = await st.fidelity.get(f"/v1/people/{person}/certification", params={"track": track},
                              headers=st.token(agency, "supervisor"))
    assert r.status_code == 200, r.text
    return r.json()  # type: ignore[no-any-return]


async def observe(st: Stack, agency: str, person: str, on: date, value: int = 2, **extra: Any) -> dict[str, Any]:
    r = await st.fidelity.post("/v1/observations", json=observation(person, value=value, observed_on=on.isoformat(),
                                                                      **extra),
                               headers=await st.observer(agency))
    assert r.status_code == 201, r.text
    return r.json()  # type: ignore[no-any-return]


async def certified_person(st: Stack, clock: Clock, agency: str) -> tuple[str, dict[str, Any]]:
    """A practitioner certified the standard way: course, then two passes 30 days apart."""
    (person,) = await st.staffed(agency)
    await complete_course(st, agency, person)
    await eventually(lambda: _course_seen(st, agency, person))
    await observe(st, agency, person, clock.today)
    assert (await certification(st, agency, person))["status"] == "not_certified"
    clock.move(30)
    await observe(st, agency, person, clock.today)
    cert = await certification(st, agency, person)
    assert cert["status"] == "certified", cert
    return person, cert


async def _course_seen(st: Stack, agency: str, person: str) -> bool:
    return not any("course" in m for m in (await certification(st, agency, person))["missing"])


async def sweep(st: Stack) -> int:
    return await sweep_certifications(db(st))


# ---- certification lifecycle ---------------------------------------------------------------------


async def test_certify_then_window_then_renew(st: Stack, clock: Clock):
    agency = str(uuid.uuid4())
    (person,) = await st.staffed(agency)
    await observe(st, agency, person, clock.today)
    clock.move(30)
    await observe(st, agency, person, clock.today)
    waiting = await certification(st, agency, person)
    assert waiting["status"] == "not_certified" and waiting["missing"] == ["the course 'miiwrap-practice' is not "
                                                                          "completed"]
    # The course arrives last, over NATS: the handler certifies on the evidence already there.
    await complete_course(st, agency, person)

    async def certified() -> bool:
        return (await certification(st, agency, person))["status"] == "certified"

    await eventually(certified)
    cert = (await certification(st, agency, person))["current"]
    assert cert["certified_on"] == clock.today.isoformat()
    assert cert["expires_on"] == add_months(clock.today, 24).isoformat() and len(cert["evidence"]) == 2
    expires = date.fromisoformat(cert["expires_on"])

    clock.today = expires - timedelta(days=91)
    assert await sweep(st) == 0
    clock.move(1)  # the window opens 90 days before expiry
    assert await sweep(st) == 1
    assert await sweep(st) == 0  # exactly once
    assert (await certification(st, agency, person))["status"] == "recertification_due"

    # The observer's calibration (from START) has expired by now: their observation is refused.
    r = await st.fidelity.post("/v1/observations", json=observation(person, observed_on=clock.today.isoformat()),
                               headers=await st.observer(agency))
    (error,) = problem(r, 422)["errors"]
    assert error["code"] == "rater-not-calibrated" and "expired" in error["message"]
    await st.observer(agency, fresh=True)
    await observe(st, agency, person, clock.today, value=1)  # a failing score renews nothing
    assert (await certification(st, agency, person))["status"] == "recertification_due"
    renewal = await observe(st, agency, person, clock.today)
    after = await certification(st, agency, person)
    assert after["status"] == "certified"
    assert after["current"]["expires_on"] == add_months(expires, 24).isoformat()  # counted from the old expiry
    assert [t["status"] for t in after["timeline"]] == ["certified", "recertification_due", "certified"]
    assert after["timeline"][-1]["observation_ids"] == [renewal["id"]]
    assert [t["revision"] for t in after["timeline"]] == [1, 2, 3]
    async with db(st).reader() as s:
        body = (await s.execute(select(outbox.c.body).where(
            outbox.c.event_type == "fidelity.PractitionerCertified.v1"))).scalar_one()
    assert Envelope.from_bytes(body).data["instrument_id"] == INSTRUMENT  # the version the evidence was scored on
    for name in ("PractitionerCertified", "RecertificationDue", "CertificationRenewed"):
        assert await staged(st, name) == 1

        async def on_stream(name: str = name) -> bool:
            return await published(st, name, agency) == 1

        await eventually(on_stream)
    assert await staged(st, "CertificationLapsed") == 0


async def test_lapse_then_certify_again(st: Stack, clock: Clock):
    agency = str(uuid.uuid4())
    person, first = await certified_person(st, clock, agency)
    expires = date.fromisoformat(first["current"]["expires_on"])
    clock.today = expires + timedelta(days=3)  # no sweep ran in the window: both steps at once, in order
    assert await sweep(st) == 2
    assert await sweep(st) == 0
    lapsed = await certification(st, agency, person)
    assert lapsed["status"] == "lapsed" and lapsed["current"] is None
    assert [t["status"] for t in lapsed["timeline"]] == ["certified", "recertification_due", "lapsed"]
    assert lapsed["timeline"][-1]["on"] == expires.isoformat()
    # The old passes are outside the 12-month look-back: certifying again takes two new ones.
    await st.observer(agency, fresh=True)
    await observe(st, agency, person, clock.today)
    assert (await certification(st, agency, person))["status"] == "lapsed"
    clock.move(31)
    await observe(st, agency, person, clock.today)
    again = await certification(st, agency, person)
    assert again["status"] == "certified" and again["current"]["id"] != first["current"]["id"]
    assert [t["status"] for t in again["timeline"]] == ["certified", "recertification_due", "lapsed", "certified"]
    assert await staged(st, "PractitionerCertified") == 2 and await staged(st, "CertificationLapsed") == 1
    assert await staged(st, "RecertificationDue") == 1


async def test_revocation(st: Stack, clock: Clock):
    agency = str(uuid.uuid4())
    person, cert = await certified_person(st, clock, agency)
    url = f"/v1/certifications/{cert['current']['id']}/revoke"
    problem(await st.fidelity.post(url, json={"reason": "x" * 10}, headers=st.token(agency, "coach")), 403)
    problem(await st.fidelity.post(url, json={"reason": ""}, headers=st.token(agency, "agency_admin")), 422)
    problem(await st.fidelity.post(url, json={"reason": "Conduct"}, headers=st.token(str(uuid.uuid4()),
                                                                                    "agency_admin")), 404)
    admin = str(uuid.uuid4())
    r = await st.fidelity.post(url, json={"reason": "Practice concerns confirmed by review"},
                               headers=st.token(agency, "agency_admin", sub=admin))
    assert r.status_code == 200 and r.json()["status"] == "revoked" and r.json()["revision"] == 2
    problem(await st.fidelity.post(url, json={"reason": "again"}, headers=st.token(agency, "platform_admin")), 409)
    after = await certification(st, agency, person)
    assert after["status"] == "revoked"
    assert after["timeline"][-1] | {"on": None} == after["timeline"][-1] | {
        "status": "revoked", "reason": "Practice concerns confirmed by review", "actor": admin, "on": None}
    # Its evidence never certifies again: a new certification needs new passes after the revocation.
    clock.move(1)
    await observe(st, agency, person, clock.today, value=0)
    await observe(st, agency, person, clock.today)
    assert (await certification(st, agency, person))["status"] == "revoked"
    assert await staged(st, "PractitionerCertified") == 1
    clock.move(400)
    assert await sweep(st) == 0  # a revoked certification never lapses
    assert await staged(st, "CertificationRevoked") == 1 and await staged(st, "CertificationLapsed") == 0


async def test_two_sweeps_at_once_record_each_transition_once(st: Stack, clock: Clock, db_backend: str):
    """Two replicas sweep the same database at the same moment: each event is staged exactly once.

    On PostgreSQL they share the work under row locks. SQLite (one process in production) may answer one
    of them "busy"; what it left is done by the next sweep, still exactly once."""
    agencies = [str(uuid.uuid4()) for _ in range(3)]
    people: list[tuple[str, str]] = []
    for agency in agencies:
        # One pass and no course: quick certifications for the sweep to work on.
        r = await st.fidelity.put("/v1/certification-policy", headers=st.token(agency, "agency_admin"),
                                  json={"required_passes": 1, "practitioner_course": None})
        assert r.status_code == 200, r.text
        for person in await st.staffed(agency, 6):
            await observe(st, agency, person, clock.today)
            people.append((agency, person))
    assert await staged(st, "PractitionerCertified") == len(people)
    clock.today = add_months(START, 24) + timedelta(days=1)
    replicas = [Database(db(st).url, clock=clock) for _ in range(2)]
    try:
        moved = await asyncio.gather(*(sweep_certifications(r) for r in replicas))
    finally:
        for r in replicas:
            await r.dispose()
    rest = await sweep(st)
    assert sum(moved) + rest == 2 * len(people)
    if db_backend == "postgres":
        assert rest == 0
    assert await staged(st, "RecertificationDue") == len(people)
    assert await staged(st, "CertificationLapsed") == len(people)
    assert await count(st, TimelineEntry) == 3 * len(people)
    assert await sweep(st) == 0


# ---- rater calibration ---------------------------------------------------------------------------


async def test_uncalibrated_raters_are_refused_with_a_reason(st: Stack, clock: Clock):
    agency = str(uuid.uuid4())
    (person,) = await st.staffed(agency)
    rater = str(uuid.uuid4())
    headers = st.token(agency, "observer", sub=rater)
    body = observation(person, observed_on=clock.today.isoformat())

    async def refused(why: str) -> None:
        (error,) = problem(await st.fidelity.post("/v1/observations", json=body, headers=headers), 422)["errors"]
        assert error["code"] == "rater-not-calibrated" and why in error["message"], error

    await refused("never calibrated")
    ref = SEEDED_REFERENCES[0]
    sloppy = {k: (0 if v == 2 else 2) if k != "family_perspective" else v for k, v in ref.scores.items()}
    r = await st.fidelity.post("/v1/calibrations", json={"reference_id": ref.id, "scores": sloppy}, headers=headers)
    assert r.status_code == 201 and r.json()["calibrated"] is False and r.json()["agreement"] < 80
    assert r.json()["reference_scores"] == ref.scores  # shown once the rater has scored
    await refused("below the 80% required")
    near = dict(ref.scores, strengths_used=2, natural_supports=2)  # 9 of 11 items agree: 81.82%
    # Its coding seen, that reference no longer counts for this rater; another one does, after a cooldown.
    r = await st.fidelity.post("/v1/calibrations", json={"reference_id": ref.id, "scores": near}, headers=headers)
    assert problem(r, 409)["type"].endswith("reference-seen")
    r = await st.fidelity.post("/v1/calibration-references", headers=st.token(agency, "platform_admin"), json={
        "instrument_id": INSTRUMENT, "title": "Another recording", "reference_rater": "Purveyor", "scores": ref.scores})
    another = {"reference_id": r.json()["id"], "scores": near}
    problem(await st.fidelity.post("/v1/calibrations", json=another, headers=headers), 429)
    async with db(st).unit_of_work(agency=agency) as s:  # as if the cooldown had passed
        for c in await s.scalars(select(Calibration).where(Calibration.rater_id == rater)):
            c.created_at -= timedelta(hours=1)
    r = await st.fidelity.post("/v1/calibrations", json=another, headers=headers)
    assert r.json()["calibrated"] is True and r.json()["agreement"] == 81.82
    assert r.json()["mismatched"] == ["strengths_used", "natural_supports"] and r.json()["total_difference"] > 0
    assert (await st.fidelity.post("/v1/observations", json=body, headers=headers)).status_code == 201
    # Calibration is per instrument family: the coaching observation needs its own.
    (coach,) = await st.staffed(agency)
    coaching = {"practitioner_id": coach, "instrument_id": COACHING_INSTRUMENT, "observed_on": clock.today.isoformat(),
                "setting": "office", "scores": SEEDED_REFERENCES[1].scores}
    await_refusal = problem(await st.fidelity.post("/v1/observations", json=coaching, headers=headers), 422)
    assert "miiwrap-coaching" in await_refusal["errors"][0]["message"]
    # Double-coding a live observation: another rater scores it; its calibrated observer is the reference.
    live = (await st.fidelity.get("/v1/observations", headers=st.token(agency, "coach"))).json()["items"][0]
    second = st.token(agency, "observer")
    r = await st.fidelity.post("/v1/calibrations", json={"observation_id": live["id"], "scores": full_scores()},
                               headers=second)
    assert r.status_code == 201 and r.json()["agreement"] == 100.0 and r.json()["reference_id"] is None
    problem(await st.fidelity.post("/v1/calibrations", json={"observation_id": live["id"], "scores": full_scores()},
                                   headers=headers), 422)  # not one's own observation
    clock.move(365)
    await refused("expired")
    status = (await st.fidelity.get(f"/v1/raters/{rater}/status", headers=st.token(agency, "supervisor"))).json()
    assert status["calibrated"] is False and "expired" in status["reason"]


# ---- instruments and amendments ------------------------------------------------------------------


def new_instrument(family: str) -> dict[str, Any]:
    return {"family": family, "kind": "record_review", "name": "DART record review", "pass_threshold": 75,
            "items": [{"key": "needs", "label": "Needs documented", "competency": "Records", "weight": 2},
                      {"key": "crisis", "label": "Crisis plan on file", "competency": "Records", "critical": True},
                      {"key": "notes", "label": "Progress notes", "competency": "Notes"}]}


async def test_instruments_are_versioned_and_an_active_version_never_changes(st: Stack, clock: Clock):
    agency = str(uuid.uuid4())
    admin = st.token(str(uuid.uuid4()), "platform_admin")
    family = f"dart-{uuid.uuid4().hex[:8]}"
    problem(await st.fidelity.post("/v1/instruments", json=new_instrument(family),
                                   headers=st.token(agency, "agency_admin")), 403)
    r = await st.fidelity.post("/v1/instruments", json=new_instrument(family), headers=admin)
    assert r.status_code == 201 and r.json()["status"] == "draft" and r.json()["version"] == 1
    v1 = r.json()["id"]
    problem(await st.fidelity.post("/v1/instruments", json=new_instrument(family), headers=admin), 409)
    r = await st.fidelity.patch(f"/v1/instruments/{v1}", json={"pass_threshold": 80}, headers=admin)
    assert r.json()["pass_threshold"] == 80  # a draft may change
    (person,) = await st.staffed(agency)
    headers = st.token(agency, "observer")
    review = {"practitioner_id": person, "instrument_id": v1, "observed_on": clock.today.isoformat(),
              "setting": "office", "kind": "record_review", "scores": {"needs": 2, "crisis": 2, "notes": 1}}
    assert "draft" in problem(await st.fidelity.post("/v1/observations", json=review, headers=headers),
                              422)["errors"][0]["message"]
    assert (await st.fidelity.post(f"/v1/instruments/{v1}/activate", headers=admin)).json()["status"] == "active"
    r = await st.fidelity.patch(f"/v1/instruments/{v1}", json={"pass_threshold": 50}, headers=admin)
    assert problem(r, 409)["type"].endswith("instrument-immutable")
    assert (await st.fidelity.get(f"/v1/instruments/{v1}", headers=admin)).json()["pass_threshold"] == 80
    # Calibrate on an agency reference, then record on v1.
    r = await st.fidelity.post("/v1/calibration-references", headers=admin, json={
        "instrument_id": v1, "title": "Reference file", "reference_rater": "Purveyor",
        "scores": {"needs": 2, "crisis": 2, "notes": 2}})
    assert r.status_code == 201
    r = await st.fidelity.post("/v1/calibrations", json={"reference_id": r.json()["id"],
                                                         "scores": {"needs": 2, "crisis": 2, "notes": 2}},
                               headers=headers)
    assert r.json()["calibrated"]
    r = await st.fidelity.post("/v1/observations", json=review, headers=headers)
    assert r.status_code == 201, r.text
    recorded = r.json()
    assert recorded["score"] == 87.5 and recorded["passed"]  # `needs` weighs 2: (2·2 + 2 + 1) / (2·2 + 2 + 2)
    # Version 2 drops an item; activating it retires v1.
    r = await st.fidelity.post(f"/v1/instruments/{v1}/versions", headers=admin)
    assert r.status_code == 201 and r.json()["version"] == 2 and r.json()["status"] == "draft"
    v2 = r.json()["id"]
    problem(await st.fidelity.post(f"/v1/instruments/{v1}/versions", headers=admin), 409)  # one draft at a time
    items = new_instrument(family)["items"][:2]
    assert (await st.fidelity.patch(f"/v1/instruments/{v2}", json={"items": items}, headers=admin)).status_code == 200
    await st.fidelity.post(f"/v1/instruments/{v2}/activate", headers=admin)
    assert (await st.fidelity.get(f"/v1/instruments/{v1}", headers=admin)).json()["status"] == "retired"
    # The observation keeps its version; an amendment is still checked against v1's items.
    again = (await st.fidelity.get(f"/v1/observations/{recorded['id']}", headers=headers)).json()
    assert again["instrument_version"] == 1 and again["score"] == recorded["score"]
    r = await st.fidelity.post(f"/v1/observations/{recorded['id']}/amendments", headers=headers,
                               json={"scores": {"needs": 2, "crisis": 2, "notes": 2}, "reason": "Misread the notes"})
    assert r.status_code == 201 and r.json()["score"] == 100.0
    assert "retired" in problem(await st.fidelity.post("/v1/observations", json=review, headers=headers),
                                422)["errors"][0]["message"]


async def test_amendments_within_seven_days_by_the_observer_only(st: Stack, clock: Clock):
    agency = str(uuid.uuid4())
    (person,) = await st.staffed(agency)
    obs = await observe(st, agency, person, clock.today, value=1)
    url = f"/v1/observations/{obs['id']}/amendments"
    mine = await st.observer(agency)
    assert obs["passed"] is False and obs["amendable_until"] == (clock.today + timedelta(days=7)).isoformat()
    problem(await st.fidelity.post(url, json={"scores": full_scores(), "reason": "Wrong column"},
                                   headers=await st.observer(agency, fresh=True)), 403)
    bad = problem(await st.fidelity.post(url, json={"scores": {"nope": 1}, "reason": "Typo"}, headers=mine), 422)
    assert {"body.scores.nope", "body.scores.family_perspective"} <= {e["field"] for e in bad["errors"]}
    clock.move(7)
    r = await st.fidelity.post(url, json={"scores": full_scores(), "reason": "Scored the wrong meeting"},
                               headers=mine)
    assert r.status_code == 201 and r.json()["passed"] and r.json()["amendments"] == 1
    history = (await st.fidelity.get(url, headers=st.token(agency, "coach"))).json()
    assert [(h["previous_passed"], h["passed"], h["reason"]) for h in history] == [
        (False, True, "Scored the wrong meeting")]
    assert history[0]["previous_scores"] == full_scores(1)
    assert await staged(st, "ObservationAmended") == 1
    clock.move(1)
    r = await st.fidelity.post(url, json={"scores": full_scores(1), "reason": "Again"}, headers=mine)
    assert problem(r, 409)["type"].endswith("observation-final")
    assert (await st.fidelity.get(f"/v1/observations/{obs['id']}", headers=mine)).json()["passed"] is True
    assert await staged(st, "ObservationAmended") == 1


async def test_an_amendment_that_turns_a_fail_into_a_pass_inside_the_window_renews(st: Stack, clock: Clock):
    agency = str(uuid.uuid4())
    person, cert = await certified_person(st, clock, agency)
    expires = date.fromisoformat(cert["current"]["expires_on"])
    clock.today = expires - timedelta(days=30)
    await st.observer(agency, fresh=True)  # the first rater's calibration has expired by now
    failed = await observe(st, agency, person, clock.today, value=1)
    assert (await certification(st, agency, person))["status"] == "recertification_due"
    r = await st.fidelity.post(f"/v1/observations/{failed['id']}/amendments", headers=await st.observer(agency),
                               json={"scores": full_scores(), "reason": "Scored against the wrong meeting"})
    assert r.status_code == 201, r.text
    renewed = await certification(st, agency, person)
    assert renewed["status"] == "certified" and renewed["timeline"][-1]["observation_ids"] == [failed["id"]]
    # Amending the same pass again does not renew a second time.
    await st.fidelity.post(f"/v1/observations/{failed['id']}/amendments", headers=await st.observer(agency),
                           json={"scores": full_scores(), "reason": "Notes only"})
    assert await staged(st, "CertificationRenewed") == 1


# ---- drift ---------------------------------------------------------------------------------------


def scores_at(lowered: int) -> dict[str, int]:
    """Full marks except `lowered` non-critical items at 1: each costs about 4.5 points."""
    soft = [i.key for i in MIIWRAP_PRACTICE_V1.items if not i.critical]
    return {k: 1 if k in soft[:lowered] else 2 for k in full_scores()}


async def test_drift_is_flagged_while_still_passing_and_clears_on_recovery(st: Stack, clock: Clock):
    agency = str(uuid.uuid4())
    await st.fidelity.put("/v1/certification-policy", headers=st.token(agency, "agency_admin"),
                          json={"required_passes": 1, "practitioner_course": None})
    (person,) = await st.staffed(agency)
    headers = await st.observer(agency)

    async def record(lowered: int) -> dict[str, Any]:
        clock.move(14)
        r = await st.fidelity.post("/v1/observations", headers=headers, json={
            "practitioner_id": person, "instrument_id": INSTRUMENT, "observed_on": clock.today.isoformat(),
            "setting": "team_meeting", "scores": scores_at(lowered)})
        assert r.status_code == 201, r.text
        return r.json()  # type: ignore[no-any-return]

    for lowered in (0, 1, 0, 0, 1, 0):  # the baseline, up to and after certification
        await record(lowered)
    assert (await certification(st, agency, person))["status"] == "certified"
    slipping = [await record(n) for n in (1, 2, 3, 4)]
    assert all(o["passed"] for o in slipping) and slipping[-1]["score"] >= 80
    assert await staged(st, "FidelityDriftDetected") == 1

    async def detected() -> list[Envelope]:
        return await read_events(st, f"fidelity.FidelityDriftDetected.{agency}")

    await eventually(lambda: _nonempty(detected))
    (event,) = await detected()
    data = event.data
    assert data["practitioner_id"] == person and data["instrument_family"] == "miiwrap-practice"
    assert data["ewma"] > 80 and data["latest_score"] >= data["pass_threshold"] == 80
    # The evidence: the observations since the EWMA last stood at its centre, the latest among them.
    assert slipping[-1]["id"] in data["observation_ids"] and len(data["observation_ids"]) <= 12
    assert {m["rule"] for m in data["metrics"]} <= {"ewma_below_limit", "run_of_declines"}
    reader = st.token(agency, "coach")
    (drift,) = (await st.fidelity.get(f"/v1/people/{person}/drift", headers=reader)).json()
    assert drift["drifting"] and drift["family"] == "miiwrap-practice"
    series = (await st.fidelity.get(f"/v1/people/{person}/fidelity-series", headers=reader,
                                    params={"limit": 4})).json()
    assert [p["seq"] for p in series["points"]] == [1, 2, 3, 4] and series["next"]
    rest = (await st.fidelity.get(f"/v1/people/{person}/fidelity-series", headers=reader,
                                  params={"after": series["next"], "limit": 100})).json()
    points = series["points"] + rest["points"]
    assert len(points) == 10 and points[-1]["flagged"] and points[-1]["pass_threshold"] == 80
    assert all(p["lower_limit"] < p["centre"] < p["upper_limit"] for p in points)
    for _ in range(8):
        await record(0)
    assert await staged(st, "FidelityDriftCleared") == 1
    (drift,) = (await st.fidelity.get(f"/v1/people/{person}/drift", headers=reader)).json()
    assert not drift["drifting"]
    # A practitioner sees their own chart, not a colleague's.
    problem(await st.fidelity.get(f"/v1/people/{uuid.uuid4()}/drift", headers=st.token(agency, "practitioner")), 403)


async def _nonempty(fetch: Any) -> bool:
    return bool(await fetch())


async def read_events(st: Stack, subject: str) -> list[Envelope]:
    js = jetstream(st.apps["fidelity"].state.broker)
    sub = await js.pull_subscribe(subject, stream="FIDELITY")
    try:
        msgs = await sub.fetch(100, timeout=0.5)
    except TimeoutError:
        return []
    finally:
        await sub.unsubscribe()
    return [Envelope.from_bytes(m.data) for m in msgs]


# ---- summaries -----------------------------------------------------------------------------------


async def test_agency_and_team_summary(st: Stack, clock: Clock):
    agency, north, south = (str(uuid.uuid4()) for _ in range(3))
    js = jetstream(st.apps["fidelity"].state.broker)
    people = {str(uuid.uuid4()): team for team in (north, north, north, south)}
    for person, team in people.items():
        env = Envelope.wrap(StaffMemberJoined(staff_id=person, display_name="P", team_id=team, roles=["practitioner"],
                                              hire_date=START), source="tests", subject=person, agency=agency)
        await js.publish(env.nats_subject, env.to_bytes(), headers={"Nats-Msg-Id": env.id}, stream="READINESS")

    async def rostered() -> bool:
        async with db(st).reader() as s:
            return len(await FIDELITY_ROSTER.active_ids(s, agency)) == len(people)

    await eventually(rostered)
    await st.fidelity.put("/v1/certification-policy", headers=st.token(agency, "agency_admin"),
                          json={"required_passes": 1, "practitioner_course": None})
    ids = list(people)
    await observe(st, agency, ids[0], clock.today)            # certified
    await observe(st, agency, ids[1], clock.today, value=1)   # 50%: not certified
    r = await st.fidelity.get(f"/v1/agencies/{agency}/fidelity-summary", headers=st.token(agency, "agency_admin"))
    assert r.status_code == 200, r.text
    whole = r.json()["agency"]
    assert whole["active"] == 4 and whole["certified"] == 1 and whole["certified_percent"] == 25.0
    assert whole["observations_last_90_days"] == 2 and whole["mean_score_last_90_days"] == 75.0
    assert [b["count"] for b in whole["distribution_last_90_days"]] == [1, 0, 0, 0, 1]
    teams = {t["team_id"]: t for t in r.json()["teams"]}
    assert teams[north]["active"] == 3 and teams[north]["certified"] == 1 and teams[south]["certified"] == 0
    assert teams[north]["certified_percent"] == 33.3 and teams[south]["observations_last_90_days"] == 0
    problem(await st.fidelity.get(f"/v1/agencies/{agency}/fidelity-summary",
                                  headers=st.token(str(uuid.uuid4()), "agency_admin")), 403)


# ---- bad input -----------------------------------------------------------------------------------


async def test_bad_input_gets_problem_json_and_writes_nothing(st: Stack, clock: Clock):
    agency = str(uuid.uuid4())
    (person,) = await st.staffed(agency)
    observer = await st.observer(agency)
    admin, platform = st.token(agency, "agency_admin"), st.token(agency, "platform_admin")
    tables = (Observation, Calibration, InstrumentRow, PolicyRow, TimelineEntry, outbox)
    before = [await count(st, t) for t in tables]
    bad_instrument = new_instrument("dup-keys") | {"items": [new_instrument("x")["items"][0]] * 2}
    cases = [
        ("put", "/v1/certification-policy", admin, {"required_passes": 0}, 422),
        ("put", "/v1/certification-policy", admin, {"required_passes": 3, "min_gap_days": 200}, 422),
        ("put", "/v1/certification-policy", admin, {"surprise": 1}, 422),
        ("put", "/v1/certification-policy", observer, {}, 403),
        ("post", "/v1/calibrations", observer, {"scores": {}}, 422),
        ("post", "/v1/calibrations", observer, {"reference_id": str(uuid.uuid4()), "scores": full_scores()}, 404),
        ("post", "/v1/calibrations", observer, {"reference_id": SEEDED_REFERENCES[0].id, "scores": {"x": 9}}, 422),
        ("post", "/v1/instruments", platform, bad_instrument, 422),
        ("post", "/v1/instruments", platform, new_instrument("Bad Family"), 422),
        ("post", "/v1/instruments", platform, new_instrument("ok-fam") | {"pass_threshold": 0}, 422),
        ("post", "/v1/observations", observer, observation(person, kind="record_review"), 422),
        ("post", "/v1/observations", observer, observation(person, kind="hearsay"), 422),
        ("post", f"/v1/certifications/{uuid.uuid4()}/revoke", admin, {"reason": "No such"}, 404),
        ("post", f"/v1/observations/{uuid.uuid4()}/amendments", observer, {"scores": {}, "reason": "x y"}, 404),
        ("get", f"/v1/people/{person}/fidelity-series?after=zz", observer, None, 400),
        ("get", f"/v1/people/{person}/certification?track=wizard", observer, None, 422),
    ]
    for method, url, headers, body, status in cases:
        r = await st.fidelity.request(method, url, headers=headers, json=body)
        p = problem(r, status)
        assert p["status"] == status and p["detail"], (url, p)
    assert [await count(st, t) for t in tables] == before
