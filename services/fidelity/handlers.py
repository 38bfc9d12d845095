"""Fidelity event handlers: the roster read model, and course completions from learning."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from uuid6 import uuid7

from contracts.learning import CourseCompleted
from services.fidelity import workflows
from services.fidelity.models import ROSTER, CourseCompletion
from trellis.bus import Handlers
from trellis.db import today
from trellis.envelope import Envelope

handlers = Handlers()
ROSTER.register(handlers)


@handlers.on(CourseCompleted, "course-completed")
async def course_completed(env: Envelope, e: CourseCompleted, session: AsyncSession) -> None:
    """Keep the completion; the course may be the last thing a person needed to be certified."""
    seen = (await session.scalars(select(CourseCompletion).where(
        CourseCompletion.person_id == e.learner_id, CourseCompletion.course_key == e.course_key))).first()
    if seen is None:
        session.add(CourseCompletion(id=str(uuid7()), agency_id=env.agency, person_id=e.learner_id,
                                     course_key=e.course_key, course_id=e.course_id, completed_on=e.completed_on))
    elif e.completed_on < seen.completed_on:
        seen.completed_on, seen.course_id = e.completed_on, e.course_id
    await session.flush()
    policy = await workflows.policy_of(session)
    for track in ("practitioner", "coach"):
        if policy.course_for(track) == e.course_key:
            await workflows.lock_person(session, env.agency, e.learner_id)
            await workflows.evaluate(session, env.agency, e.learner_id, track, today(session))
