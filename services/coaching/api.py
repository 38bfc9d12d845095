"""Coaching REST API (thin)."""

from __future__ import annotations

from datetime import date
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import select
from uuid6 import uuid7

from contracts.coaching import CoachingTaskOpened
from services.coaching import domain
from services.coaching.domain import TaskStatus
from services.coaching.models import ROSTER, Task
from services.coaching.schemas import FollowUpIn, TaskOut, TaskPage
from trellis.auth import Principal, require_roles
from trellis.db import Database, add_event, utcnow
from trellis.envelope import Envelope
from trellis.pagination import PageParams, page_of, paged
from trellis.problems import Problem, field_error

router = APIRouter(prefix="/v1", tags=["coaching"])
STAFF = ("coach", "supervisor", "agency_admin", "platform_admin", "observer")


def db_of(request: Request) -> Database:
    return request.app.state.db  # type: ignore[no-any-return]


DB = Annotated[Database, Depends(db_of)]


def task_out(t: Task) -> TaskOut:
    return TaskOut.model_validate(t, from_attributes=True)


@router.get("/tasks", response_model=TaskPage, summary="Coaching tasks in the caller's agency")
async def list_tasks(
    db: DB, principal: Annotated[Principal, require_roles(*STAFF, "practitioner")],
    page: Annotated[PageParams, Depends()],
    practitioner_id: Annotated[list[UUID] | None, Query(description="Repeat to ask for several")] = None,
    status: TaskStatus | None = None,
) -> dict[str, object]:
    wanted = [str(p) for p in practitioner_id or []]
    if not principal.has(*STAFF):
        if any(p != principal.sub for p in wanted):
            raise Problem(403, "Practitioners can only see their own coaching tasks.", slug="not-your-record")
        wanted = [principal.sub]
    stmt = select(Task)
    if wanted:
        stmt = stmt.where(Task.practitioner_id.in_(wanted))
    if status is not None:
        stmt = stmt.where(Task.status == status)
    async with db.reader(agency=principal.agency) as s:
        rows = list((await s.scalars(paged(stmt, Task.id, page))).all())
    return page_of(rows, page, task_out, lambda t: t.id)


@router.get("/tasks/{task_id}", response_model=TaskOut)
async def get_task(
    task_id: UUID, db: DB, principal: Annotated[Principal, require_roles(*STAFF, "practitioner")]
) -> TaskOut:
    async with db.reader(agency=principal.agency) as s:
        task = (await s.scalars(select(Task).where(Task.id == str(task_id)))).one_or_none()
    if task is None or (not principal.has(*STAFF) and task.practitioner_id != principal.sub):
        raise Problem(404, f"No coaching task {task_id} in your agency.")
    return task_out(task)


@router.post("/tasks", status_code=201, response_model=TaskOut, summary="Open a follow-up task for a practitioner")
async def open_follow_up(
    body: FollowUpIn, db: DB, response: Response,
    principal: Annotated[Principal, require_roles("coach", "supervisor")],
) -> TaskOut:
    practitioner = str(body.practitioner_id)
    errors = [field_error("body.due_on", m) for m in domain.follow_up_problems(body.due_on, date.today())]
    async with db.unit_of_work(agency=principal.agency) as s:
        errors += await ROSTER.check_active(s, principal.agency, practitioner, "body.practitioner_id",
                                            what="practitioner")
        if errors:
            raise Problem(422, f"The task has {len(errors)} problem(s); nothing was opened.",
                          slug="validation-error", errors=errors)
        task = Task(id=str(uuid7()), agency_id=principal.agency, practitioner_id=practitioner,
                    kind=domain.TaskKind.FOLLOW_UP, status=TaskStatus.OPEN, due_on=body.due_on,
                    observation_id=None, title=body.title, opened_by=principal.sub, created_at=utcnow())
        s.add(task)
        opened = CoachingTaskOpened(task_id=task.id, practitioner_id=practitioner, kind=task.kind,
                                    due_on=task.due_on, observation_id=None)
        await add_event(s, Envelope.wrap(opened, source="trellis/coaching", subject=task.id, agency=principal.agency))
    response.headers["Location"] = f"/v1/tasks/{task.id}"
    return task_out(task)
