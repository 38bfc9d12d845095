"""Coaching REST API (thin)."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request
from sqlalchemy import select

from services.coaching.domain import TaskStatus
from services.coaching.models import Task
from services.coaching.schemas import TaskOut, TaskPage
from trellis.auth import Principal, require_roles
from trellis.db import Database
from trellis.pagination import PageParams, page_of, paged
from trellis.problems import Problem

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
