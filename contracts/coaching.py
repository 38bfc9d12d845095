"""Events published by the coaching service."""

from datetime import date
from typing import ClassVar

from trellis.envelope import EventPayload


class CoachingTaskOpened(EventPayload):
    """A coaching follow-up task was opened for a practitioner."""

    domain: ClassVar[str] = "coaching"
    name: ClassVar[str] = "CoachingTaskOpened"

    task_id: str
    practitioner_id: str
    kind: str
    due_on: date
    observation_id: str | None = None
