"""Coaching use cases: one function per use case, `(uow, command) -> result`.

Each loads what its rule needs, calls domain.py, writes and stages its events through the unit of
work it is given (`uow.emit`), so a task and its event commit together. Time comes from `uow.today`
only. api.py and handlers.py adapt HTTP requests and events to these functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import Table, select
from uuid6 import uuid7

from contracts.coaching import CoachingTaskOpened
from contracts.fidelity import ObservationRecorded
from services.coaching import domain
from services.coaching.domain import TaskStatus
from services.coaching.models import ROSTER, Task
from trellis.auth import Principal
from trellis.db import UnitOfWork, utcnow
from trellis.envelope import Envelope
from trellis.pagination import PageParams, paged
from trellis.problems import Problem, field_error, invalid

STAFF = ("coach", "supervisor", "agency_admin", "platform_admin", "observer")
DEBRIEF_TITLE = "Debrief the observation"
# The tasks table itself: a burst of debriefs is one Core executemany, without the ORM's per-row work.
TASKS: Table = Task.__table__  # type: ignore[assignment]


@dataclass(frozen=True)
class OpenFollowUp:
    agency: str
    practitioner_id: str
    due_on: date
    title: str
    opened_by: str


async def open_follow_up(uow: UnitOfWork, cmd: OpenFollowUp) -> Task:
    """A coach opens a follow-up for active staff of their agency, due soon but not in the past."""
    errors = [field_error("body.due_on", m) for m in domain.follow_up_problems(cmd.due_on, uow.today)]
    errors += await ROSTER.check_active(uow, cmd.agency, cmd.practitioner_id, "body.practitioner_id",
                                        what="practitioner")
    if errors:
        raise invalid(errors, "The task")
    task = Task(id=str(uuid7()), agency_id=cmd.agency, practitioner_id=cmd.practitioner_id,
                kind=domain.TaskKind.FOLLOW_UP, status=TaskStatus.OPEN, due_on=cmd.due_on, observation_id=None,
                title=cmd.title, opened_by=cmd.opened_by, created_at=utcnow())
    uow.add(task)
    opened = CoachingTaskOpened(task_id=task.id, practitioner_id=task.practitioner_id, kind=task.kind,
                                due_on=task.due_on, observation_id=None)
    await uow.emit(opened, subject=task.id, agency=cmd.agency)
    return task


async def open_debrief_tasks(uow: UnitOfWork, events: Iterable[tuple[Envelope, ObservationRecorded]]) -> int:
    """Every recorded observation opens a debrief task (domain rule), one row each, in one statement.

    Events may be of several agencies: each task and its event carry their observation's agency.
    Returns the number of tasks opened.
    """
    now = utcnow()
    rows: list[dict[str, object]] = []
    for env, obs in events:  # iterating a kernel Batch continues each event's trace for its emit
        draft = domain.debrief_for_observation(obs.practitioner_id, obs.observation_id, obs.observed_on)
        task_id = str(uuid7())
        rows.append({
            "id": task_id, "agency_id": env.agency, "practitioner_id": draft.practitioner_id, "kind": draft.kind,
            "status": TaskStatus.OPEN, "due_on": draft.due_on, "observation_id": draft.observation_id,
            "title": DEBRIEF_TITLE, "opened_by": None, "created_at": now,
        })
        opened = CoachingTaskOpened(task_id=task_id, practitioner_id=draft.practitioner_id, kind=draft.kind,
                                    due_on=draft.due_on, observation_id=draft.observation_id)
        await uow.emit(opened, subject=task_id, agency=env.agency)
    if rows:
        await uow.execute(TASKS.insert(), rows)
    return len(rows)


@dataclass(frozen=True)
class ListTasks:
    viewer: Principal
    page: PageParams
    practitioners: tuple[str, ...] = ()
    status: TaskStatus | None = None


async def list_tasks(uow: UnitOfWork, q: ListTasks) -> list[Task]:
    """Staff see their agency's tasks; a practitioner only their own (asking for others' is refused)."""
    wanted = list(q.practitioners)
    if not q.viewer.has(*STAFF):
        if any(p != q.viewer.sub for p in wanted):
            raise Problem(403, "Practitioners can only see their own coaching tasks.", slug="not-your-record")
        wanted = [q.viewer.sub]
    stmt = select(Task)
    if wanted:
        stmt = stmt.where(Task.practitioner_id.in_(wanted))
    if q.status is not None:
        stmt = stmt.where(Task.status == q.status)
    return list((await uow.scalars(paged(stmt, Task.id, q.page))).all())


@dataclass(frozen=True)
class GetTask:
    viewer: Principal
    task_id: str


async def get_task(uow: UnitOfWork, q: GetTask) -> Task:
    task = (await uow.scalars(select(Task).where(Task.id == q.task_id))).one_or_none()
    if task is None or (not q.viewer.has(*STAFF) and task.practitioner_id != q.viewer.sub):
        raise Problem(404, f"No coaching task {q.task_id} in your agency.")
    return task
