"""Coaching REST API: parse, call a use case, shape the answer."""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response

from services.coaching import usecases
from services.coaching.domain import TaskStatus
from services.coaching.models import Task
from services.coaching.schemas import FollowUpIn, TaskOut, TaskPage
from trellis.auth import Principal, require_roles
from trellis.deps import DB, Page
from trellis.pagination import page_of

router = APIRouter(prefix="/v1", tags=["coaching"])
Reader = Annotated[Principal, require_roles(*usecases.STAFF, "practitioner")]


def task_out(t: Task) -> TaskOut:
    return TaskOut.model_validate(t, from_attributes=True)


@router.get("/tasks", response_model=TaskPage, summary="Coaching tasks in the caller's agency")
async def list_tasks(
    db: DB, principal: Reader, page: Page,
    practitioner_id: Annotated[list[UUID] | None, Query(description="Repeat to ask for several")] = None,
    status: TaskStatus | None = None,
) -> dict[str, object]:
    q = usecases.ListTasks(principal, page, tuple(str(p) for p in practitioner_id or []), status)
    async with db.reader(agency=principal.agency) as uow:
        rows = await usecases.list_tasks(uow, q)
    return page_of(rows, page, task_out, lambda t: t.id)


@router.get("/tasks/{task_id}", response_model=TaskOut)
async def get_task(task_id: UUID, db: DB, principal: Reader) -> TaskOut:
    async with db.reader(agency=principal.agency) as uow:
        return task_out(await usecases.get_task(uow, usecases.GetTask(principal, str(task_id))))


@router.post("/tasks", status_code=201, response_model=TaskOut, summary="Open a follow-up task for a practitioner")
async def open_follow_up(
    body: FollowUpIn, db: DB, response: Response,
    principal: Annotated[Principal, require_roles("coach", "supervisor")],
) -> TaskOut:
    cmd = usecases.OpenFollowUp(agency=principal.agency, practitioner_id=str(body.practitioner_id),
                                due_on=body.due_on, title=body.title, opened_by=principal.sub)
    async with db.unit_of_work(agency=principal.agency) as uow:
        task = await usecases.open_follow_up(uow, cmd)
    response.headers["Location"] = f"/v1/tasks/{task.id}"
    return task_out(task)
