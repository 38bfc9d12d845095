"""PlanActionAdded and PlanActionUpdated: staged with the change in one unit of work; refusals stage nothing.

Use cases on a migrated SQLite database with an injected clock, as in test_readiness_usecases.py. The refusals
that live in the route (not an admin, another agency) go through the real readiness router in process.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select

from contracts.readiness import PlanActionAdded, PlanActionCompleted, PlanActionUpdated, ReadinessAssessed
from services.readiness import usecases as uc
from services.readiness.api import router
from services.readiness.domain import READINESS_V1, ActionStatus
from services.readiness.models import PlanAction
from services.readiness.schemas import ActionIn, ActionPatch, AgencyIn, StaffIn
from tests.stack import Clock, service_db
from trellis import problems
from trellis.auth import TokenVerifier, mint_dev_token
from trellis.db import Database, outbox
from trellis.envelope import Envelope
from trellis.problems import Problem
from trellis.settings import DEV_SECRET, Settings

START = date(2026, 3, 2)
ADDED, UPDATED = PlanActionAdded.event_type(), PlanActionUpdated.event_type()
COMPLETED, ASSESSED = PlanActionCompleted.event_type(), ReadinessAssessed.event_type()


@pytest.fixture
async def db(tmp_path: Path) -> AsyncIterator[Database]:
    async with service_db("readiness", tmp_path, Clock(START)) as database:
        yield database


async def outbox_rows(db: Database) -> list[dict[str, Any]]:
    """Every staged outbox row, oldest first, with its envelope decoded."""
    async with db.reader() as s:
        rows = (await s.execute(select(outbox).order_by(outbox.c.id))).mappings().all()
    return [{**r, "envelope": Envelope.from_bytes(r["body"])} for r in rows]


async def staged(db: Database, *types: str) -> list[Envelope]:
    return [r["envelope"] for r in await outbox_rows(db) if r["event_type"] in types]


async def actions(db: Database, agency: str) -> list[PlanAction]:
    async with db.reader(agency=agency) as uow:
        return [v.action for v in (await uc.get_plan(uow)).actions]


async def agency_with_staff(db: Database, n: int = 1) -> tuple[str, list[str]]:
    agency = str(uuid.uuid4())
    async with db.unit_of_work(agency=agency) as uow:
        await uc.register_agency(uow, AgencyIn(name="Riverside Family Services"))
    people = []
    for i in range(n):
        async with db.unit_of_work(agency=agency) as uow:
            m = await uc.add_staff(uow, StaffIn(name=f"Person {i} Quill", roles=["supervisor"],
                                                email=f"p{i}-{uuid.uuid4().hex[:6]}@example.org"))
        people.append(m.id)
    return agency, people


async def add(db: Database, agency: str, body: ActionIn) -> str:
    async with db.unit_of_work(agency=agency) as uow:
        return (await uc.add_action(uow, body)).action.id


async def change(db: Database, agency: str, action_id: str, **patch: Any) -> None:
    async with db.unit_of_work(agency=agency) as uow:
        await uc.change_action(uow, uc.ChangeAction(uuid.UUID(action_id), ActionPatch(**patch)))


async def test_adding_an_action_stages_plan_action_added_with_the_action(db: Database) -> None:
    agency, [owner] = await agency_with_staff(db)
    due = START + timedelta(days=30)
    action_id = await add(db, agency, ActionIn(title="  Protect supervision time ", owner_id=uuid.UUID(owner),
                                               readiness_domain="supervision_capacity", due_on=due))

    [env] = await staged(db, ADDED)
    [row] = await actions(db, agency)
    assert (env.subject, env.agency, env.source) == (row.plan_id, agency, "trellis/readiness")
    assert env.nats_subject == f"readiness.PlanActionAdded.{agency}"
    assert env.payload(PlanActionAdded) == PlanActionAdded(
        plan_id=row.plan_id, action_id=action_id, title="Protect supervision time",
        readiness_domain="supervision_capacity", owner_id=owner, due_on=due, origin="manual", round_id=None)


async def test_the_event_and_the_action_commit_or_roll_back_together(db: Database) -> None:
    agency, _ = await agency_with_staff(db)
    before = await outbox_rows(db)

    class Boom(Exception):
        pass

    with pytest.raises(Boom):
        async with db.unit_of_work(agency=agency) as uow:
            await uc.add_action(uow, ActionIn(title="Never kept"))
            raise Boom  # something after the use case fails: the unit of work rolls back
    assert await outbox_rows(db) == before and await actions(db, agency) == []


async def test_closing_a_round_with_gaps_stages_one_added_event_per_suggested_action(db: Database) -> None:
    agency, people = await agency_with_staff(db, 5)
    async with db.unit_of_work(agency=agency) as uow:
        r = await uc.open_round(uow, uc.OpenRound("Spring", None, people[0]))
    for person in people:  # everyone disagrees with everything: every domain is a gap
        async with db.unit_of_work(agency=agency) as uow:
            await uc.answer_round(uow, uc.Answer(uuid.UUID(r.id), person, agency,
                                                 {i.key: 1 for i in READINESS_V1.items}))
    async with db.unit_of_work(agency=agency) as uow:
        await uc.close_round(uow, uuid.UUID(r.id))

    suggested = await actions(db, agency)
    assert suggested and {a.origin for a in suggested} == {"suggested"}
    events = await staged(db, ASSESSED, ADDED)
    assert events[0].type == ASSESSED  # the result first, then what it suggested
    added = [e.payload(PlanActionAdded) for e in events[1:]]
    assert {(a.action_id, a.title, a.readiness_domain, a.due_on) for a in added} == {
        (a.id, a.title, a.readiness_domain, a.due_on) for a in suggested}
    assert {(a.origin, a.round_id, a.owner_id) for a in added} == {("suggested", r.id, None)}
    assert {e.subject for e in events[1:]} == {suggested[0].plan_id}


@pytest.mark.parametrize("case", ["due in the past", "unknown domain", "owner of another agency",
                                  "unregistered agency"])
async def test_a_refused_add_stages_nothing(db: Database, case: str) -> None:
    agency, _ = await agency_with_staff(db)
    _, [stranger] = await agency_with_staff(db)
    body, where = ActionIn(title="Name a champion"), agency
    if case == "due in the past":
        body = ActionIn(title="Name a champion", due_on=START - timedelta(days=1))
    elif case == "unknown domain":
        body = ActionIn(title="Name a champion", readiness_domain="astrology")
    elif case == "owner of another agency":
        body = ActionIn(title="Name a champion", owner_id=uuid.UUID(stranger))
    else:
        where = str(uuid.uuid4())
    before = await outbox_rows(db)

    with pytest.raises(Problem) as caught:
        await add(db, where, body)
    assert caught.value.status in (404, 422)
    assert await outbox_rows(db) == before and await actions(db, agency) == []


def app_on(db: Database) -> FastAPI:
    """The readiness router on this database, with the service's token check and problem+json (no NATS)."""
    app = FastAPI()
    app.state.db = db
    app.state.verifier = TokenVerifier(Settings(jwt_secret=DEV_SECRET))  # type: ignore[arg-type]
    problems.install(app)
    app.include_router(router)
    return app


@pytest.mark.parametrize("who", ["supervisor", "another agency's admin"])
async def test_a_refused_add_through_the_route_stages_nothing(db: Database, who: str) -> None:
    agency, _ = await agency_with_staff(db)
    other, _ = await agency_with_staff(db)
    settings = Settings(jwt_secret=DEV_SECRET)  # type: ignore[arg-type]
    claims = {"supervisor": (agency, ["supervisor"]), "another agency's admin": (other, ["agency_admin"])}[who]
    token = mint_dev_token(settings, sub=str(uuid.uuid4()), agency=claims[0], roles=claims[1])
    admin = mint_dev_token(settings, sub=str(uuid.uuid4()), agency=agency, roles=["agency_admin"])
    before = await outbox_rows(db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app_on(db)), base_url="http://t") as c:
        url = f"/v1/agencies/{agency}/plan/actions"
        r = await c.post(url, json={"title": "Taken over"}, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 403 and r.headers["content-type"] == "application/problem+json", r.text
        assert await outbox_rows(db) == before and await actions(db, agency) == []
        # The same request by the agency's own admin does stage it: the refusal above was the caller.
        ok = await c.post(url, json={"title": "Taken over"}, headers={"Authorization": f"Bearer {admin}"})
    assert ok.status_code == 201, ok.text
    [env] = await staged(db, ADDED)
    assert env.data["action_id"] == ok.json()["id"] and env.agency == agency


async def test_changes_stage_plan_action_updated_only_for_fields_that_moved(db: Database) -> None:
    agency, [owner] = await agency_with_staff(db)
    action_id = await add(db, agency, ActionIn(title="Name a champion", due_on=START + timedelta(days=10)))
    later = START + timedelta(days=20)

    await change(db, agency, action_id, due_on=later.isoformat(), owner_id=owner)
    await change(db, agency, action_id, due_on=later.isoformat())  # the same value: nothing to publish
    await change(db, agency, action_id, status="in_progress")
    updates = [e.payload(PlanActionUpdated) for e in await staged(db, UPDATED)]
    assert [(u.changed, u.status, u.owner_id, u.due_on) for u in updates] == [
        (["owner_id", "due_on"], "open", owner, later), (["status"], "in_progress", owner, later)]

    # Renaming and finishing in one change: the rename, then the completion, in the plan's order.
    await change(db, agency, action_id, title="Name two champions", status="done")
    rows = [r for r in await outbox_rows(db) if r["event_type"] in (ADDED, UPDATED, COMPLETED)]
    assert [r["event_type"] for r in rows] == [ADDED, UPDATED, UPDATED, UPDATED, COMPLETED]
    assert len({r["aggregate"] for r in rows}) == 1  # one ordering key: the plan
    last = rows[-2]["envelope"].payload(PlanActionUpdated)
    assert (last.changed, last.title, last.status) == (["title"], "Name two champions", "in_progress")
    done = rows[-1]["envelope"].payload(PlanActionCompleted)
    assert (done.title, done.completed_on) == ("Name two champions", START)
    [row] = await actions(db, agency)
    assert row.status == ActionStatus.DONE


async def test_a_plain_completion_stages_only_completed_and_a_refused_change_stages_nothing(db: Database) -> None:
    agency, _ = await agency_with_staff(db)
    action_id = await add(db, agency, ActionIn(title="Name a champion"))
    await change(db, agency, action_id, status="done")
    assert [e.type for e in await staged(db, UPDATED, COMPLETED)] == [COMPLETED]

    before = await outbox_rows(db)
    for patch in ({"title": "Rewritten"}, {"status": "open"}, {"owner_id": str(uuid.uuid4())}):
        with pytest.raises(Problem) as caught:
            await change(db, agency, action_id, **patch)
        assert caught.value.status == 422
    assert await outbox_rows(db) == before
