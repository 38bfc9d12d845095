"""Pure coaching rules. No I/O, no framework."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from enum import StrEnum

DEBRIEF_WITHIN = timedelta(days=7)


class TaskKind(StrEnum):
    OBSERVATION_DEBRIEF = "observation_debrief"
    FOLLOW_UP = "follow_up"


class TaskStatus(StrEnum):
    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class TaskDraft:
    practitioner_id: str
    kind: TaskKind
    due_on: date
    observation_id: str | None


def debrief_for_observation(practitioner_id: str, observation_id: str, observed_on: date) -> TaskDraft:
    """Every observation is debriefed with the practitioner within a week, while it is fresh."""
    return TaskDraft(practitioner_id, TaskKind.OBSERVATION_DEBRIEF, observed_on + DEBRIEF_WITHIN, observation_id)


MAX_FOLLOW_UP = timedelta(days=365)


def follow_up_problems(due_on: date, today: date) -> list[str]:
    """A coach's follow-up is due soon enough to act before a habit hardens, and not in the past."""
    if due_on < today:
        return ["a follow-up cannot be due in the past"]
    if due_on > today + MAX_FOLLOW_UP:
        return [f"a follow-up is due within {MAX_FOLLOW_UP.days} days"]
    return []
