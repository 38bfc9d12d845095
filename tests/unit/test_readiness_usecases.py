"""Readiness use cases without HTTP: a migrated SQLite database, the unit of work, and a clock the test moves."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from contracts.fidelity import PractitionerCertified
from services.readiness import usecases as uc
from services.readiness.domain import READINESS_V1, Level, Stage
from services.readiness.models import Staff
from services.readiness.schemas import ActionIn, AgencyIn, StaffIn
from tests.stack import Clock, service_db
from trellis.db import Database, outbox
from trellis.envelope import Envelope
from trellis.pagination import PageParams
from trellis.problems import Problem

START = date(2026, 3, 2)  # not the wall clock's date: every date below comes from the injected clock


@pytest.fixture
def clock() -> Clock:
    return Clock(START)


@pytest.fixture
async def db(tmp_path: Path, clock: Clock) -> AsyncIterator[Database]:
    async with service_db("readiness", tmp_path, clock) as database:
        yield database


async def staged(db: Database) -> list[Envelope]:
    """The events waiting in the outbox, oldest first."""
    async with db.reader() as s:
        rows = (await s.execute(select(outbox.c.body).order_by(outbox.c.id))).scalars().all()
    return [Envelope.from_bytes(b) for b in rows]


async def register(db: Database) -> str:
    agency = str(uuid.uuid4())
    async with db.unit_of_work(agency=agency) as uow:
        await uc.register_agency(uow, AgencyIn(name="Riverside Family Services"))
    return agency


async def hire(db: Database, agency: str, *roles: str, hire_date: date | None = None) -> str:
    async with db.unit_of_work(agency=agency) as uow:
        m = await uc.add_staff(uow, StaffIn(name="Ana Ruiz", email=f"{uuid.uuid4().hex[:8]}@example.org",
                                            roles=list(roles or ["practitioner"]), hire_date=hire_date))
    return m.id


async def test_registering_an_agency_and_a_staff_join_stage_their_events_in_the_outbox(db: Database) -> None:
    agency = await register(db)
    person = await hire(db, agency, "practitioner")
    events = await staged(db)
    assert [e.type for e in events] == ["readiness.AgencyRegistered.v1", "readiness.ImplementationStageChanged.v1",
                                        "readiness.StaffMemberJoined.v1"]
    assert {e.source for e in events} == {"trellis/readiness"} and {e.agency for e in events} == {agency}
    joined = events[-1]
    assert joined.subject == person and joined.nats_subject == f"readiness.StaffMemberJoined.{agency}"
    assert joined.data["staff_id"] == person and joined.data["hire_date"] == START.isoformat()  # the clock's today
    async with db.reader(agency=agency) as uow:
        view = await uc.get_agency(uow)
    assert (view.agency.stage, view.agency.stage_entered_on) == (Stage.EXPLORATION, START)
    assert not view.plan_approved and not view.clearance.cleared


async def test_a_validation_error_writes_nothing_and_the_clock_decides_what_is_in_the_future(
        db: Database, clock: Clock) -> None:
    agency = await register(db)
    before = len(await staged(db))
    with pytest.raises(Problem) as caught:
        await hire(db, agency, "practitioner", hire_date=START + timedelta(days=1))
    assert caught.value.status == 422 and caught.value.slug == "validation-error"
    assert [e["field"] for e in caught.value.errors] == ["body.hire_date"]
    async with db.reader(agency=agency) as uow:
        assert await uow.scalar(select(func.count()).select_from(Staff)) == 0
    assert len(await staged(db)) == before  # no event either

    clock.today = START + timedelta(days=1)  # the same date is no longer in the future
    await hire(db, agency, "practitioner", hire_date=START + timedelta(days=1))
    assert [e.type for e in await staged(db)][-1] == "readiness.StaffMemberJoined.v1"


async def test_closing_a_round_suggests_actions_and_approving_the_plan_moves_the_stage(db: Database) -> None:
    agency = await register(db)
    people = [await hire(db, agency, "practitioner") for _ in range(5)]
    async with db.unit_of_work(agency=agency) as uow:
        r = await uc.open_round(uow, uc.OpenRound("Spring", None, people[0]))
    for person in people:  # everyone disagrees with everything: every domain is a gap
        async with db.unit_of_work(agency=agency) as uow:
            _, new = await uc.answer_round(uow, uc.Answer(uuid.UUID(r.id), person, agency,
                                                          {i.key: 1 for i in READINESS_V1.items}))
            assert new
    async with db.unit_of_work(agency=agency) as uow:
        closed = await uc.close_round(uow, uuid.UUID(r.id))
    assert closed.status == "closed" and closed.level == Level.NOT_READY and closed.respondents == 5
    assessed = [e for e in await staged(db) if e.type == "readiness.ReadinessAssessed.v1"]
    assert len(assessed) == 1 and assessed[0].data["closed_on"] == START.isoformat()

    async with db.unit_of_work(agency=agency) as uow:
        plan = await uc.approve_plan(uow, people[0])  # the suggested actions are the plan
    assert plan.plan.approved and plan.actions and all(a.action.origin == "suggested" for a in plan.actions)
    async with db.reader(agency=agency) as uow:
        agency_row, history = await uc.stage_history(uow)
    assert agency_row.stage == Stage.INSTALLATION
    assert [h.stage for h in history] == [Stage.EXPLORATION, Stage.INSTALLATION]
    moved = [e for e in await staged(db) if e.type == "readiness.ImplementationStageChanged.v1"][-1]
    assert moved.data["stage"] == "installation" and moved.data["previous_stage"] == "exploration"


async def test_an_action_becomes_overdue_when_the_clock_passes_its_due_date(db: Database, clock: Clock) -> None:
    agency = await register(db)
    async with db.unit_of_work(agency=agency) as uow:
        await uc.add_action(uow, ActionIn(title="Name a champion", due_on=START + timedelta(days=10)))
    page = PageParams(limit=50, after=None)

    async def overdue() -> tuple[list[bool], int]:
        async with db.reader(agency=agency) as uow:
            plan = await uc.get_plan(uow)
            only = await uc.list_actions(uow, uc.ActionQuery(page, overdue=True))
        return [a.overdue for a in plan.actions], len(only)

    clock.today = START + timedelta(days=10)
    assert await overdue() == ([False], 0)  # due today is not late
    clock.today = START + timedelta(days=11)
    assert await overdue() == ([True], 1)


async def test_certifications_move_the_stage_and_the_sweep_follows_the_clock(db: Database, clock: Clock) -> None:
    agency = await register(db)
    person = await hire(db, agency, "practitioner")
    async with db.unit_of_work(agency=agency) as uow:
        await uc.add_action(uow, ActionIn(title="Name a champion"))
    async with db.unit_of_work(agency=agency) as uow:
        await uc.approve_plan(uow, person)

    certified = PractitionerCertified(certification_id=str(uuid.uuid4()), practitioner_id=person,
                                      instrument_id="i", certified_on=START, expires_on=START + timedelta(days=365))
    async with db.unit_of_work(agency=agency) as uow:  # as the bus opens it for fidelity's event
        assert await uc.record_certification(uow, uc.CertificationChanged(certified, current=True)) == [
            Stage.INITIAL, Stage.FULL]
    async with db.unit_of_work(agency=agency) as uow:  # redelivered: nothing changes
        assert await uc.record_certification(uow, uc.CertificationChanged(certified, current=True)) == []

    clock.today = START + timedelta(days=364)
    assert await uc.sweep_stages(db) == 0
    clock.today = START + timedelta(days=365)
    assert await uc.sweep_stages(db) == 1
    assert await uc.sweep_stages(db) == 0  # a second sweep finds nothing to do
    async with db.reader(agency=agency) as uow:
        row, history = await uc.stage_history(uow)
    assert row.stage == Stage.SUSTAINMENT and history[-1].entered_on == START + timedelta(days=365)
