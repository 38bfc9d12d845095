"""Events published by the learning service (the service itself comes later; fidelity already
keeps course completions from these events, because certification requires the course)."""

from datetime import date
from typing import ClassVar

from pydantic import Field

from trellis.envelope import EventPayload


class CourseCompleted(EventPayload):
    """A learner completed a course: every module mastered, not merely attended."""

    domain: ClassVar[str] = "learning"
    name: ClassVar[str] = "CourseCompleted"

    enrollment_id: str
    learner_id: str = Field(description="The person's id, the `sub` of their token")
    course_id: str
    course_key: str = Field(description="Stable key of the course across versions, e.g. `miiwrap-practice`",
                            pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")
    course_version: int = Field(default=1, ge=1)
    completed_on: date
