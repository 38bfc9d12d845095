"""Fidelity use cases without HTTP: a real SQLite database migrated like production, an injected clock,
roster rows written by the shared read model, and the outbox read back to see what each use case staged."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from contracts.readiness import StaffMemberJoined
from services.fidelity import usecases as uc
from services.fidelity.domain import MIIWRAP_PRACTICE_V1, SEEDED_REFERENCES, add_months
from services.fidelity.models import ROSTER, Certification, DriftPoint, Observation, TimelineEntry
from tests.stack import Clock, service_db
from trellis.auth import Principal
from trellis.db import Database, outbox
from trellis.envelope import Envelope
from trellis.problems import Problem

START = date(2026, 1, 5)
REFERENCE = SEEDED_REFERENCES[0]


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
async def db(tmp_path: Path, clock: Clock) -> AsyncIterator[Database]:
    async with service_db("fidelity", tmp_path, clock) as database:
        yield database


@pytest.fixture
def agency() -> str:
    return str(uuid.uuid4())


async def rostered(db: Database, agency: str, *roles: str) -> str:
    """A new active staff member, written by the roster read model as StaffMemberJoined would."""
    person = str(uuid.uuid4())
    joined = StaffMemberJoined(staff_id=person, display_name="Test Person", team_id=None, roles=list(roles),
                               hire_date=date(2025, 1, 6))
    env = Envelope.wrap(joined, source="tests", subject=person, agency=agency)
    async with db.unit_of_work(agency=agency) as uow:
        await ROSTER.apply(uow, env, person, {"status": "active", "roles": sorted(roles), "team_id": None})
    return person


async def calibrated_observer(db: Database, agency: str) -> Principal:
    who = Principal(sub=await rostered(db, agency, "observer"), agency=agency, roles=frozenset({"observer"}))
    async with db.unit_of_work(agency=agency) as uow:
        done = await uc.calibrate(uow, uc.Calibrate(who, dict(REFERENCE.scores), reference_id=REFERENCE.id))
    assert done.row.agreement == 100.0
    return who


def scores(value: int = 2) -> dict[str, int]:
    return {i.key: value for i in MIIWRAP_PRACTICE_V1.items}


def observe(observer: Principal, person: str, on: date, value: int = 2) -> uc.RecordObservation:
    return uc.RecordObservation(observer=observer.sub, agency=observer.agency, practitioner_id=person,
                                instrument_id=MIIWRAP_PRACTICE_V1.id, observed_on=on, setting="team_meeting",
                                kind="live_observation", scores=scores(value))


async def record(db: Database, cmd: uc.RecordObservation) -> Observation:
    async with db.unit_of_work(agency=cmd.agency) as uow:
        return await uc.record_observation(uow, cmd)


async def staged(db: Database, name: str | None = None) -> list[dict[str, Any]]:
    """The CloudEvents staged in the outbox, oldest first (of one type if `name` is given)."""
    stmt = select(outbox.c.body).order_by(outbox.c.id)
    if name is not None:
        stmt = stmt.where(outbox.c.event_type == f"fidelity.{name}.v1")
    async with db.reader(all_agencies=True) as uow:
        return [json.loads(body) for body in (await uow.scalars(stmt)).all()]


async def count(db: Database, model: Any) -> int:
    async with db.reader(all_agencies=True) as uow:
        return int((await uow.scalar(select(func.count()).select_from(model))) or 0)


async def complete_course(db: Database, agency: str, person: str) -> None:
    async with db.unit_of_work(agency=agency) as uow:
        await uc.record_course_completion(uow, uc.RecordCourseCompletion(
            agency=agency, person_id=person, course_key="miiwrap-practice", course_id=str(uuid.uuid4()),
            completed_on=START))


async def test_recording_an_observation_stages_its_event_with_the_change(db: Database, agency: str):
    observer = await calibrated_observer(db, agency)
    person = await rostered(db, agency, "practitioner")
    obs = await record(db, observe(observer, person, START))
    assert obs.passed and obs.total_score == 100.0 and obs.recorded_on == START
    (event,) = await staged(db, "ObservationRecorded")
    assert event["source"] == "trellis/fidelity" and event["agency"] == agency and event["subject"] == obs.id
    assert event["data"]["practitioner_id"] == person and event["data"]["observer_id"] == observer.sub
    # The consequences ran in the same unit of work: one chart point per metric (total + competencies).
    assert await count(db, DriftPoint) == 1 + len(MIIWRAP_PRACTICE_V1.competencies)
    assert await staged(db, "PractitionerCertified") == []  # one pass and no course: not yet


async def test_a_passing_streak_certifies_once(db: Database, agency: str, clock: Clock):
    observer = await calibrated_observer(db, agency)
    person = await rostered(db, agency, "practitioner")
    await complete_course(db, agency, person)
    first = await record(db, observe(observer, person, START))
    clock.today = START + timedelta(days=30)  # the default policy: two passes at least 30 days apart
    second = await record(db, observe(observer, person, clock.today))
    (event,) = await staged(db, "PractitionerCertified")
    assert event["subject"] == person
    assert event["data"]["evidence"] == [first.id, second.id]
    assert event["data"]["expires_on"] == add_months(clock.today, 24).isoformat()
    async with db.reader(agency=agency) as uow:
        (mine,) = await uc.certifications_of(uow, uc.PeopleOnTrack((person,), "practitioner"))
    assert mine.status == "certified" and mine.current is not None and mine.missing == []
    # A third pass inside the term neither certifies again nor renews (the window is not open).
    await record(db, observe(observer, person, clock.today + timedelta(days=1)))
    assert len(await staged(db, "PractitionerCertified")) == 1
    assert await staged(db, "CertificationRenewed") == []


async def test_moving_the_clock_lapses_a_certification_through_the_sweep(db: Database, agency: str, clock: Clock):
    observer = await calibrated_observer(db, agency)
    person = await rostered(db, agency, "practitioner")
    await complete_course(db, agency, person)
    await record(db, observe(observer, person, START))
    clock.today = START + timedelta(days=30)
    await record(db, observe(observer, person, clock.today))
    assert await uc.sweep_certifications(db) == 0  # nothing is due yet
    expires = add_months(START + timedelta(days=30), 24)
    clock.today = expires + timedelta(days=1)
    assert await uc.sweep_certifications(db) == 2  # the window opened, then it lapsed
    assert await uc.sweep_certifications(db) == 0  # a second sweep finds nothing left
    (due,) = await staged(db, "RecertificationDue")
    (lapsed,) = await staged(db, "CertificationLapsed")
    assert due["data"]["window_opened_on"] == (expires - timedelta(days=90)).isoformat()
    assert lapsed["data"]["lapsed_on"] == expires.isoformat()
    # Transition events have ids derived from the certification and revision: a replica staging the
    # same transition again collides in the outbox instead of publishing it twice.
    cert_id = lapsed["data"]["certification_id"]
    assert lapsed["id"] == str(uuid.uuid5(uc.TRANSITION_NS, f"{cert_id}/{lapsed['data']['revision']}"))
    assert due["id"] == str(uuid.uuid5(uc.TRANSITION_NS, f"{cert_id}/{due['data']['revision']}"))
    async with db.reader(agency=agency) as uow:
        cert = (await uow.scalars(select(Certification))).one()
    assert cert.status == "lapsed" and cert.ended_on == expires
    assert await count(db, TimelineEntry) == 3


async def test_bad_scores_write_nothing(db: Database, agency: str):
    observer = await calibrated_observer(db, agency)
    person = await rostered(db, agency, "practitioner")
    before = await staged(db)
    bad = scores() | {MIIWRAP_PRACTICE_V1.items[0].key: 9, "no_such_item": 1}
    with pytest.raises(Problem) as caught:
        await record(db, uc.RecordObservation(**{**observe(observer, person, START).__dict__, "scores": bad}))
    problem = caught.value
    assert problem.status == 422 and problem.slug == "validation-error"
    assert problem.detail == "The observation has 2 problem(s); nothing was recorded."
    fields = {e["field"] for e in problem.errors}
    assert fields == {f"body.scores.{MIIWRAP_PRACTICE_V1.items[0].key}", "body.scores.no_such_item"}, fields
    assert await count(db, Observation) == 0 and await count(db, DriftPoint) == 0
    assert await staged(db) == before


async def test_an_uncalibrated_observer_and_a_future_date_are_refused_together(db: Database, agency: str,
                                                                                clock: Clock):
    raw = Principal(sub=await rostered(db, agency, "observer"), agency=agency, roles=frozenset({"observer"}))
    person = await rostered(db, agency, "practitioner")
    with pytest.raises(Problem) as caught:
        await record(db, observe(raw, person, clock.today + timedelta(days=2)))
    codes = {(e["field"], e.get("code")) for e in caught.value.errors}
    assert codes == {("body.observed_on", None), ("observer", "rater-not-calibrated")}, codes
    assert await count(db, Observation) == 0 and await staged(db) == []


async def test_an_amendment_replays_drift_and_is_refused_after_its_window(db: Database, agency: str,
                                                                           clock: Clock):
    observer = await calibrated_observer(db, agency)
    person = await rostered(db, agency, "practitioner")
    obs = await record(db, observe(observer, person, START, value=1))
    async with db.unit_of_work(agency=agency) as uow:
        amended = await uc.amend_observation(uow, uc.AmendObservation(obs.id, observer, scores(2), "typo fixed"))
    assert amended.total_score == 100.0 and amended.amendments == 1
    async with db.reader(agency=agency) as uow:
        (total,) = await uc.fidelity_series(uow, uc.SeriesQuery((person,), MIIWRAP_PRACTICE_V1.family, "total", 10))
    assert total.score == 100.0 and total.observation_id == obs.id  # the chart was folded again, not appended
    (event,) = await staged(db, "ObservationAmended")
    assert event["data"]["amended_on"] == START.isoformat()
    clock.today = START + timedelta(days=8)
    with pytest.raises(Problem) as caught:
        async with db.unit_of_work(agency=agency) as uow:
            await uc.amend_observation(uow, uc.AmendObservation(obs.id, observer, scores(1), "too late"))
    assert caught.value.status == 409 and caught.value.slug == "observation-final"
