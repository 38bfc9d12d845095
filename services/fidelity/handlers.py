"""Fidelity event handlers (adapters: event -> use case): the roster read model, and course completions."""

from __future__ import annotations

from contracts.learning import CourseCompleted
from services.fidelity import usecases as uc
from services.fidelity.models import ROSTER
from trellis.bus import Handlers
from trellis.db import UnitOfWork
from trellis.envelope import Envelope

handlers = Handlers()
ROSTER.register(handlers)


@handlers.on(CourseCompleted, "course-completed")
async def course_completed(env: Envelope, e: CourseCompleted, uow: UnitOfWork) -> None:
    await uc.record_course_completion(uow, uc.RecordCourseCompletion(
        agency=env.agency, person_id=e.learner_id, course_key=e.course_key, course_id=e.course_id,
        completed_on=e.completed_on))
