"""Coaching use cases without HTTP: a real SQLite database migrated like production, an injected clock,
roster rows written by the shared read model, and the outbox read back to see what each use case staged."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from contracts.fidelity import ObservationRecorded
from contracts.readiness import StaffMemberJoined, StaffMemberLeft
from services.coaching import usecases as uc
from services.coaching.domain import TaskKind, TaskStatus
from services.coaching.models import ROSTER, Task
from tests.stack import service_db
from trellis.auth import Principal
from trellis.db import Database, outbox
from trellis.envelope import Envelope
from trellis.pagination import PageParams
from trellis.problems import Problem

TODAY = date(2026, 3, 2)


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with service_db("coaching", tmp_path, lambda: TODAY) as database:
        yield database


@pytest.fixture
def agency() -> str:
    return str(uuid.uuid4())


async def rostered(db: Database, agency: str, *roles: str, left: bool = False) -> str:
    """A staff member written by the roster read model as StaffMemberJoined (then Left) would."""
    person = str(uuid.uuid4())
    joined = Envelope.wrap(StaffMemberJoined(staff_id=person, display_name="P", team_id=None, roles=list(roles),
                                             hire_date=date(2025, 1, 6)), source="tests", subject=person, agency=agency)
    async with db.unit_of_work(agency=agency) as uow:
        await ROSTER.apply(uow, joined, person, {"status": "active", "roles": sorted(roles), "team_id": None})
        if left:
            gone = Envelope.wrap(StaffMemberLeft(staff_id=person, left_on=TODAY), source="tests", subject=person,
                                 agency=agency)
            await ROSTER.apply(uow, gone, person, {"status": "left"})
    return person


def coach(agency: str) -> Principal:
    return Principal(sub=str(uuid.uuid4()), agency=agency, roles=frozenset({"coach"}))


async def staged(db: Database) -> list[dict[str, Any]]:
    async with db.reader(all_agencies=True) as s:
        rows = (await s.execute(select(outbox.c.body).order_by(outbox.c.id))).scalars().all()
    return [json.loads(b) for b in rows]


async def tasks(db: Database) -> list[Task]:
    async with db.reader(all_agencies=True) as s:
        return list((await s.scalars(select(Task).order_by(Task.id))).all())


def recorded(agency: str, practitioner: str, observed_on: date = TODAY) -> tuple[Envelope, ObservationRecorded]:
    obs = ObservationRecorded(
        observation_id=str(uuid.uuid4()), practitioner_id=practitioner, observer_id=str(uuid.uuid4()),
        instrument_id=str(uuid.uuid4()), instrument_version=1, observed_on=observed_on, setting="team_meeting",
        total_score=90.0, competency_scores={"Team process": 90.0}, passed=True)
    return Envelope.wrap(obs, source="tests", subject=obs.observation_id, agency=agency), obs


async def test_a_coach_opens_a_follow_up_and_its_event_is_staged_with_the_service_source(db: Database, agency: str):
    practitioner, who = await rostered(db, agency, "practitioner"), coach(agency)
    due = TODAY + timedelta(days=10)
    cmd = uc.OpenFollowUp(agency=agency, practitioner_id=practitioner, due_on=due, title="Rehearse", opened_by=who.sub)
    async with db.unit_of_work(agency=agency) as uow:
        task = await uc.open_follow_up(uow, cmd)
    (row,) = await tasks(db)
    assert (row.id, row.kind, row.status, row.due_on, row.opened_by) == (
        task.id, TaskKind.FOLLOW_UP, TaskStatus.OPEN, due, who.sub)
    (event,) = await staged(db)
    assert event["source"] == "trellis/coaching" and event["type"].endswith("CoachingTaskOpened.v1")
    assert event["subject"] == task.id and event["data"]["practitioner_id"] == practitioner


async def test_a_follow_up_is_refused_by_the_injected_clock_and_the_roster_and_writes_nothing(
    db: Database, agency: str
):
    leaver, stranger = await rostered(db, agency, "practitioner", left=True), str(uuid.uuid4())
    for person, due, why in (
        (stranger, TODAY - timedelta(days=1), "not on your agency's roster"),  # yesterday, by the service's clock
        (leaver, TODAY + timedelta(days=366), "has left your agency"),
    ):
        cmd = uc.OpenFollowUp(agency=agency, practitioner_id=person, due_on=due, title="t", opened_by="c")
        with pytest.raises(Problem) as caught:
            async with db.unit_of_work(agency=agency) as uow:
                await uc.open_follow_up(uow, cmd)
        problem = caught.value
        assert problem.status == 422 and problem.slug == "validation-error"
        assert [e["field"] for e in problem.errors] == ["body.due_on", "body.practitioner_id"]
        assert why in problem.errors[1]["message"]
    assert await tasks(db) == [] and await staged(db) == []


async def test_observations_of_two_agencies_open_one_debrief_each_under_their_own_agency(db: Database):
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    events = [recorded(a, str(uuid.uuid4()), date(2026, 2, 1)), recorded(b, str(uuid.uuid4())),
              recorded(a, str(uuid.uuid4()))]
    async with db.unit_of_work() as uow:  # no agency in scope, as in a batch: each row names its own
        assert await uc.open_debrief_tasks(uow, events) == 3
    rows = {t.observation_id: t for t in await tasks(db)}
    for env, obs in events:
        task = rows[obs.observation_id]
        assert (task.agency_id, task.practitioner_id, task.kind) == (env.agency, obs.practitioner_id,
                                                                      TaskKind.OBSERVATION_DEBRIEF)
        assert task.due_on == obs.observed_on + timedelta(days=7)
    opened = {e["data"]["observation_id"]: e for e in await staged(db)}
    assert {k: (e["agency"], e["subject"]) for k, e in opened.items()} == {
        o.observation_id: (env.agency, rows[o.observation_id].id) for env, o in events}


async def test_a_practitioner_lists_and_gets_only_their_own_tasks(db: Database, agency: str):
    mine, theirs = str(uuid.uuid4()), str(uuid.uuid4())
    async with db.unit_of_work() as uow:
        await uc.open_debrief_tasks(uow, [recorded(agency, mine), recorded(agency, theirs), recorded(agency, mine)])
    me = Principal(sub=mine, agency=agency, roles=frozenset({"practitioner"}))
    page = PageParams(limit=50, after=None)
    async with db.reader(agency=agency) as uow:
        own = await uc.list_tasks(uow, uc.ListTasks(me, page))
        assert len(own) == 2 and {t.practitioner_id for t in own} == {mine}
        with pytest.raises(Problem) as refused:
            await uc.list_tasks(uow, uc.ListTasks(me, page, practitioners=(theirs,)))
        assert refused.value.status == 403 and refused.value.slug == "not-your-record"
        staff = await uc.list_tasks(uow, uc.ListTasks(coach(agency), page, practitioners=(theirs,)))
        assert [t.practitioner_id for t in staff] == [theirs]
        assert await uc.list_tasks(uow, uc.ListTasks(coach(agency), page, status=TaskStatus.DONE)) == []
        assert (await uc.get_task(uow, uc.GetTask(me, own[0].id))).id == own[0].id
        for task_id in (staff[0].id, str(uuid.uuid4())):  # someone else's, or none: the same 404
            with pytest.raises(Problem) as missing:
                await uc.get_task(uow, uc.GetTask(me, task_id))
            assert missing.value.status == 404


async def test_tasks_of_another_agency_are_invisible(db: Database, agency: str):
    async with db.unit_of_work() as uow:
        await uc.open_debrief_tasks(uow, [recorded(str(uuid.uuid4()), str(uuid.uuid4()))])
    async with db.reader(agency=agency) as uow:
        assert await uc.list_tasks(uow, uc.ListTasks(coach(agency), PageParams(limit=50, after=None))) == []
