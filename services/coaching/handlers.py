"""Coaching event handlers (thin: domain rule, write, stage the event; idempotent via the inbox)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession
from uuid6 import uuid7

from contracts.coaching import CoachingTaskOpened
from contracts.fidelity import ObservationRecorded
from services.coaching import domain
from services.coaching.models import ROSTER, Task
from trellis.bus import Handlers
from trellis.db import add_event, utcnow
from trellis.envelope import Envelope

handlers = Handlers()
ROSTER.register(handlers)
SOURCE = "trellis/coaching"


@handlers.on(ObservationRecorded, "open-debrief-task")
async def open_debrief_task(event: Envelope, obs: ObservationRecorded, session: AsyncSession) -> None:
    draft = domain.debrief_for_observation(obs.practitioner_id, obs.observation_id, obs.observed_on)
    task = Task(
        id=str(uuid7()), agency_id=event.agency, practitioner_id=draft.practitioner_id, kind=draft.kind,
        status=domain.TaskStatus.OPEN, due_on=draft.due_on, observation_id=draft.observation_id,
        title="Debrief the observation", created_at=utcnow(),
    )
    session.add(task)
    opened = CoachingTaskOpened(task_id=task.id, practitioner_id=task.practitioner_id, kind=task.kind,
                                due_on=task.due_on, observation_id=task.observation_id)
    await add_event(session, Envelope.wrap(opened, source=SOURCE, subject=task.id, agency=event.agency))
